"""Export targets: one package per runtime (`onnx/`, `tflite/`, `executorch/`) behind one small interface.

Each package holds everything about its runtime: conversion, int8 quantization, its graph reader and op census, the
runner used for verification. A backend converts any eval-mode `nn.Module` that maps an NCHW image tensor to logits
(plain models as built, or their deploy forms), runs the artifact in its own host runtime, and counts what is inside:

    backend = get_target("tflite")
    extra = backend.convert(model, example, tmp_path, precision="fp32", nhwc=False)   # dict | None (fp32, fp16)
    built = backend.quantize(model, example, tmp_path, calib=..., fp32_attention=[...], simulation=fq,
                             attention_modules=[...])   # int8: {"islands", "census", "extra"}
    run = backend.load_runner(path, threads=1)      # NCHW float32 ndarray -> logits ndarray
    census = backend.census(path) | (extra or {})   # {"ops", "partitions", "delegated_ops", "total_ops", "undelegated"}
    backend.versions()                              # {"torch": ..., "litert-torch": ..., ...}

`precisions` lists every precision the target exports; `convert` writes the float ones and `quantize` the int8 one,
driven by the runtime-agnostic steps in `effvit_deploy.export.quantize.quantize_for_target` (calibration, PT2E
simulation, per-core decisions, accuracy). Heavy runtime packages are imported only inside the methods, so importing
this package needs none of them; a missing one raises MissingDependencyError naming the pip extra.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import torch
from torch import nn

from effvit_deploy import vocabulary
from effvit_deploy.errors import InvalidInputError
from effvit_deploy.export.targets._common import ConversionError, Fp32IO, Runner
from effvit_deploy.export.targets.executorch import ExecutorchTarget
from effvit_deploy.export.targets.onnx import OnnxTarget
from effvit_deploy.export.targets.tflite import TfliteTarget

__all__ = ["TARGETS", "ConversionError", "Fp32IO", "Runner", "TargetBackend", "get_target"]


class TargetBackend(Protocol):
    name: str
    suffix: str
    precisions: tuple[str, ...]  # every precision exported: ("fp32", "fp16", "int8")
    nhwc_input: bool  # can artifacts take an NHWC input
    split_style: str  # how the deploy form splits a joined q|k|v for this converter (deploy.head_split.STYLES)
    joined_qkv_max_tokens: int  # fp32 attention up to this many tokens with one qkv conv (deploy.lite_mla_joined)
    int8_method: str  # how int8 artifacts are made, for the manifest
    int8_attention: tuple[bool, str]  # can attention matmuls run in int8 in the runtime's fast path; why (not)
    int8_from_simulation: bool  # the PT2E simulation is the artifact (calibrate it on every image)

    def convert(
        self, module: nn.Module, example: torch.Tensor, out_path: Path, *, precision: str, nhwc: bool = False
    ) -> dict | None: ...

    def quantize(self, module: nn.Module, example: torch.Tensor, out_path: Path, *, calib, fp32_attention,
                 simulation, attention_modules, nhwc: bool = False) -> dict: ...

    def load_runner(self, path: Path, *, threads: int = 1) -> Runner: ...

    def census(self, path: Path) -> dict: ...

    def versions(self) -> dict[str, str]: ...


TARGETS: dict[str, TargetBackend] = {t.name: t for t in (OnnxTarget(), TfliteTarget(), ExecutorchTarget())}
assert set(TARGETS) == set(vocabulary.TARGETS), "one backend per target name of effvit_deploy.vocabulary"


def get_target(name: str) -> TargetBackend:
    """The backend registered under `name`; InvalidInputError listing the valid names otherwise."""
    try:
        return TARGETS[name]
    except KeyError:
        raise InvalidInputError(f"unknown export target {name!r}; choose one of: {', '.join(TARGETS)}") from None
