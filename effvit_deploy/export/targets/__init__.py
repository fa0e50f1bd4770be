"""Export targets: one backend per runtime (ONNX Runtime, TFLite/LiteRT, ExecuTorch) behind one small interface.

Each backend converts any eval-mode `nn.Module` that maps an NCHW image tensor to logits (plain models as built, or
their deploy forms), runs the artifact in its own host runtime, and counts what is inside it:

    backend = get_target("tflite")
    extra = backend.convert(model, example, tmp_path, precision="fp32", nhwc=False)   # dict | None
    run = backend.load_runner(path, threads=1)      # NCHW float32 ndarray -> logits ndarray
    census = backend.census(path) | (extra or {})   # {"ops", "partitions", "delegated_ops", "total_ops", "undelegated"}
    backend.versions()                              # {"torch": ..., "litert-torch": ..., ...}

Heavy runtime packages are imported only inside the methods, so importing this package needs none of them; a missing
one raises MissingDependencyError naming the pip extra. `precisions` lists what `convert` accepts (int8 artifacts are
written by `effvit_deploy.export.quantize`, not by `convert`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import torch
from torch import nn

from effvit_deploy.errors import InvalidInputError
from effvit_deploy.export.targets._common import ConversionError, Fp32IO, Runner
from effvit_deploy.export.targets.executorch import ExecutorchTarget
from effvit_deploy.export.targets.onnx import OnnxTarget
from effvit_deploy.export.targets.tflite import TfliteTarget

__all__ = ["TARGETS", "ConversionError", "Fp32IO", "Runner", "TargetBackend", "get_target", "target_names"]


class TargetBackend(Protocol):
    name: str
    suffix: str
    precisions: tuple[str, ...]

    def convert(
        self, module: nn.Module, example: torch.Tensor, out_path: Path, *, precision: str, nhwc: bool = False
    ) -> dict | None: ...

    def load_runner(self, path: Path, *, threads: int = 1) -> Runner: ...

    def census(self, path: Path) -> dict: ...

    def versions(self) -> dict[str, str]: ...


TARGETS: dict[str, TargetBackend] = {t.name: t for t in (OnnxTarget(), TfliteTarget(), ExecutorchTarget())}


def target_names() -> list[str]:
    return list(TARGETS)


def get_target(name: str) -> TargetBackend:
    """The backend registered under `name`; InvalidInputError listing the valid names otherwise."""
    try:
        return TARGETS[name]
    except KeyError:
        raise InvalidInputError(f"unknown export target {name!r}; choose one of: {', '.join(TARGETS)}") from None
