"""Deploy form: pure rewrites of a PyTorch model into the same function with a graph mobile converters map cleanly.

>>> from effvit_deploy import models
>>> from effvit_deploy.export.deploy import to_deploy_form
>>> deploy, info = to_deploy_form(models.build("efficientvit-b1"), (512, 512))
>>> info["optimizations"], info["attention"][0]["order"]
(['fold_bn', 'attention_deploy_form', 'decompose_layer_norm'], 'linear')

Passes, in order (one rewrite per file): `fold_batch_norm.FoldBatchNormPass` (BN into the preceding conv),
`lite_mla_deploy.LiteMLADeployPass` (LiteMLA -> DeployLiteMLA, matmul order fixed per resolution; for ONNX Runtime
small maps get `lite_mla_joined.JoinedLiteMLA` instead, one qkv conv) and
`decompose_layer_norm.DecomposeLayerNormPass` (LayerNorm as ops every XNNPACK partitioner takes) and
`bicubic_upsample_deploy.BicubicUpsampleDeployPass` (exact bicubic upsampling by an integer factor from delegated ops:
the segmentation head and `--full-res-output`) and, for int8 only, `avg_pool_depthwise.AvgPoolAsDepthwisePass` (the
paper model's 2x2 average pools as depthwise convs: TFLite's XNNPACK takes no int8 AVERAGE_POOL_2D). Hard-swish stays an
`nn.Hardswish` module: every converter maps it to one op. The passes are plain module rewrites; what they buy on each
runtime is measured in bench/inspect_tflite_graph.py.
"""

from __future__ import annotations

import copy
from typing import Any

from torch import nn

from effvit_deploy.errors import InvalidInputError
from effvit_deploy.export.deploy._base import DeployContext, DeployPass, PassResult
from effvit_deploy.export.deploy.avg_pool_depthwise import AvgPoolAsDepthwisePass
from effvit_deploy.export.deploy.bicubic_upsample_deploy import BicubicUpsampleDeployPass
from effvit_deploy.export.deploy.decompose_layer_norm import DecomposeLayerNormPass
from effvit_deploy.export.deploy.fold_batch_norm import FoldBatchNormPass
from effvit_deploy.export.deploy.head_split import check_style
from effvit_deploy.export.deploy.lite_mla_deploy import DeployLiteMLA, LiteMLADeployPass
from effvit_deploy.vocabulary import PRECISIONS

__all__ = ["to_deploy_form", "DEFAULT_PASSES", "DeployLiteMLA", "DeployContext", "PassResult", "PRECISIONS"]

DEFAULT_PASSES: tuple[DeployPass, ...] = (
    FoldBatchNormPass(),
    LiteMLADeployPass(),
    DecomposeLayerNormPass(),
    BicubicUpsampleDeployPass(),
    AvgPoolAsDepthwisePass(),
)


def to_deploy_form(
    model: nn.Module, resolution: tuple[int, int], *, precision: str = "fp32", split: str = "chunk",
    fp16_safe_attention: bool = False, fp16_guard: bool = False, joined_qkv_max_tokens: int = 0,
) -> tuple[nn.Module, dict[str, Any]]:
    """A new module in deploy form for inputs of `resolution`, and what was done to it.

    The input model is deep-copied and never modified. The result is in eval mode and keeps the input's dtype
    (float32 for the registry models) whatever `precision` says: the fp16 targets cast the module themselves, and
    `DeployLiteMLA` then runs its matmuls and division in fp32 (it casts whenever its input is not fp32); int8
    quantizers start from the float deploy form.

    Args:
        model: any module; the passes rewrite what they recognise (BN after conv, LiteMLA) and leave the rest.
        resolution: input (height, width); fixes each attention's token count and hence its matmul order.
        precision: "fp32", "fp16" or "int8"; recorded; int8 makes each DeployLiteMLA join q, k, v into one tensor
            entering its attention core (one dequantize into an fp32 island, see `lite_mla_deploy`).
        split: how that joined tensor is split again, as the target's converter delegates it ("chunk" ONNX, "slice"
            ExecuTorch, "tfl" LiteRT; the target backend's `split_style`, see `head_split`).
        fp16_safe_attention: fp32 precision only: the fp16-safe linear attention form (`lite_mla_deploy`); off by
            default, because on the ARM fp16 kernels measured it did not help (README "Numerics on ARM kernels").
        fp16_guard: the linear attention's division as where(den > 0, num / den, 0), whose select XNNPACK leaves
            to fp32 kernels (`lite_mla_deploy`, "fp16 guard"); the export sets it for TFLite fp16.
        joined_qkv_max_tokens: fp32 only: each ReLU LiteMLA whose map has at most this many tokens becomes
            `lite_mla_joined.JoinedLiteMLA` (one qkv conv, one Split), the rest `DeployLiteMLA`; 0 (default): none.
            The target backend's `joined_qkv_max_tokens` (ONNX Runtime: see `lite_mla_joined` for the measurements).

    Returns:
        (module, info) with info = {"optimizations": [pass names that changed something], "attention": [{"module",
        "tokens", "dim", "order", "groups", "joined_qkv", "qkv_convs", "map_bytes"} per LiteMLA], "folded_bn": n,
        "precision": precision}
        and, for models with bicubic upsampling, "upsample": [{"module", "channels", "factor", "input"}]; for int8
        models with the v1 downsampling shortcut, "avg_pools": [{"module", "channels", "kernel"}].

    Raises:
        InvalidInputError: resolution is not two positive ints, or precision or split style is unknown.
    """
    size = _check_resolution(resolution)
    if precision not in PRECISIONS:
        raise InvalidInputError(f"unknown precision {precision!r}; choose one of: {', '.join(PRECISIONS)}")
    ctx = DeployContext(resolution=size, precision=precision, split=check_style(split),
                        fp16_safe_attention=fp16_safe_attention, fp16_guard=fp16_guard,
                        joined_qkv_max_tokens=joined_qkv_max_tokens)
    new = copy.deepcopy(model).eval()
    info: dict[str, Any] = {"optimizations": [], "attention": [], "folded_bn": 0, "precision": precision}
    for deploy_pass in DEFAULT_PASSES:
        result = deploy_pass(new, ctx)
        if not result.modified:
            continue
        info["optimizations"].append(deploy_pass.name)
        if isinstance(deploy_pass, FoldBatchNormPass):
            info["folded_bn"] = len(result.records)
        elif isinstance(deploy_pass, LiteMLADeployPass):
            info["attention"] = result.records
        elif isinstance(deploy_pass, BicubicUpsampleDeployPass):
            info["upsample"] = result.records
        elif isinstance(deploy_pass, AvgPoolAsDepthwisePass):
            info["avg_pools"] = result.records
    return new, info


def _check_resolution(resolution: object) -> tuple[int, int]:
    """(H, W) as two positive ints; anything else is the caller's mistake, named in the message."""
    if (
        isinstance(resolution, tuple | list)
        and len(resolution) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in resolution)
    ):
        return int(resolution[0]), int(resolution[1])
    raise InvalidInputError(f"resolution must be (height, width) as two positive integers, got {resolution!r}")
