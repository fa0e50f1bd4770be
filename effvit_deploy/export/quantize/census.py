"""The int8 census every target reports: which ops compute in int8, and where the graph crosses int8 <-> fp32.

A *boundary* is a place where a tensor changes domain (a QUANTIZE / DEQUANTIZE in TFLite, a QuantizeLinear /
DequantizeLinear around an op with no int8 kernel in ONNX, a quantize / dequantize node next to an fp32 op in the
ExecuTorch edge graph). Each target reads its own graph format (`targets/<runtime>/int8.py`) and hands the boundaries
here; each is listed with its position and its neighbours' op types and classified as "input", "output",
"attention k" (entering or leaving attention island k), "hardswish" (around a hard-swish, which every runtime here
computes in fp32), "norm" (around a LayerNorm / mean the runtime has no int8 kernel for) or "other".
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass


@dataclass(frozen=True)
class NeighbourOps:
    """A graph format's names for the ops whose boundaries have a known reason."""

    hardswish: frozenset[str]
    norm: frozenset[str]


def boundary_kind(neighbour_ops: list[str], names: NeighbourOps) -> str:
    """Why a boundary outside attention exists: next to a hard-swish, a (decomposed) norm/mean, or something else."""
    if any(op in names.hardswish for op in neighbour_ops):
        return "hardswish"
    if any(op in names.norm for op in neighbour_ops):
        return "norm"
    return "other"


def summary(int_ops: Counter, float_ops: Counter, boundaries: list[dict], float_compute: list[str], n_compute: int,
            *, requantize: int = 0) -> dict:
    """The census dict a manifest's int8 section carries (same keys for every target)."""
    where = Counter(b["where"].split(" ")[0] for b in boundaries)
    per_island = Counter(b["where"] for b in boundaries if b["where"].startswith("attention"))
    return {
        "int8_ops": dict(sorted(int_ops.items())),
        "float_ops": dict(sorted(float_ops.items())),
        "int8_op_count": sum(int_ops.values()),
        "float_op_count": sum(float_ops.values()),
        "compute_ops": n_compute,
        "compute_ops_not_int8": float_compute,
        "boundaries": len(boundaries),
        "boundaries_by_place": dict(sorted(where.items())),
        "max_boundaries_per_attention": max(per_island.values(), default=0),
        "boundary_list": boundaries,
        "requantize_ops": requantize,
    }
