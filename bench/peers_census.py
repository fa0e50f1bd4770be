"""Op census of one artifact, reduced to what the peers table prints: layout ops and how much the delegate took.

Works on the dicts the targets' `census()` return (`effvit_deploy.export.targets.*`), so a .tflite from any converter
(ours, onnx2tf, timm through litert-torch) is counted by the same reader. Op names differ per format (TFLite
`TRANSPOSE`, ONNX `Transpose`, ExecuTorch `aten.permute_copy.default` / XNNPACK `xnn_static_transpose`), so they are
matched by a normalised word, not by exact name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

# normalised-name patterns per column (names are lower-cased, non-alphanumerics dropped)
_TRANSPOSE = re.compile(r"transpose|permute")
_SLICE = re.compile(r"slice")  # SLICE, STRIDED_SLICE, Slice, aten.slice_copy
_PAD = re.compile(r"pad")  # PAD, PADV2, MIRROR_PAD, Pad, constant_pad_nd


@dataclass(frozen=True)
class Census:
    ops: int
    transposes: int
    slices: int
    pads: int
    partitions: int | None  # delegate partitions (None: the runtime has no delegate, e.g. ONNX Runtime CPU)
    delegated_share: float | None  # delegated ops / all ops
    layout: str | None = None  # input layout of a .tflite (NCHW / NHWC)

    def cell(self) -> str:
        """One table cell: `T/S/P ops, partitions (share delegated)`."""
        text = f"{self.transposes}/{self.slices}/{self.pads} of {self.ops}"
        if self.partitions is not None:
            share = "" if self.delegated_share is None else f", {100 * self.delegated_share:.0f}% delegated"
            text += f"; {self.partitions} part.{share}"
        return text


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _count(ops: Mapping[str, int], pattern: re.Pattern[str]) -> int:
    return sum(n for name, n in ops.items() if pattern.search(_norm(name)))


def summarize(census: Mapping) -> Census:
    """Reduce a target's census dict ({"ops": {name: n}, "partitions", "delegated_ops", "total_ops", ...})."""
    ops: Mapping[str, int] = census.get("ops") or {}
    total = int(census.get("total_ops") or sum(ops.values()))
    delegated = census.get("delegated_ops")
    share = None if delegated is None or not total else float(delegated) / total
    return Census(
        ops=total,
        transposes=_count(ops, _TRANSPOSE),
        slices=_count(ops, _SLICE),
        pads=_count(ops, _PAD),
        partitions=census.get("partitions"),
        delegated_share=share,
        layout=census.get("layout"),
    )
