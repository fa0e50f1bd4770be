"""Split a joined (3·G, d, N) q|k|v tensor into q, k, v with the one op each converter delegates.

Why: in int8 the attention core is an fp32 island; when q, k and v enter it as one tensor (concatenated in int8 along
the head-group axis) the graph crosses into fp32 once instead of three times. The split that follows must be a single
op the runtime's XNNPACK path takes, and which op that is depends on the converter:

- "chunk" (default; ONNX): `torch.chunk` -> one ONNX `Split`.
- "slice" (ExecuTorch): three leading-axis slices -> `slice_copy`, which the XNNPACK partitioner delegates
  (`split_with_sizes_copy`, what `chunk` becomes, stays outside the delegate).
- "tfl" (LiteRT): the custom op `effvit::split_heads`, lowered by the tflite target to one TFLite `SPLIT` (XNNPACK
  delegates it); litert-torch lowers `chunk` / `unbind` / `split` to three `SLICE` ops.

Each target names its style (`split_style` on the target backend); the export passes it to `to_deploy_form`
through the deploy context, and every `DeployLiteMLA` keeps it as a plain attribute (no global state). A target also
sets its style on the private copy it converts (`set_split_style`), so a deploy form built for another target still
converts to the one op this converter delegates; the PT2E simulation exports a copy with slices.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from effvit_deploy.errors import InvalidInputError

STYLES = ("chunk", "slice", "tfl")


@torch.library.custom_op("effvit::split_heads", mutates_args=())
def _split_heads(x: torch.Tensor, parts: int) -> list[torch.Tensor]:
    """`parts` equal chunks of `x` along dim 0 (fresh tensors: a custom op must not alias its input)."""
    return [t.clone() for t in torch.chunk(x, parts, dim=0)]


@_split_heads.register_fake
def _(x: torch.Tensor, parts: int) -> list[torch.Tensor]:
    return [t.new_empty(t.shape) for t in torch.chunk(x, parts, dim=0)]


def check_style(style: str) -> str:
    if style not in STYLES:
        raise InvalidInputError(f"unknown split style {style!r}; choose one of {STYLES}")
    return style


def set_split_style(module: nn.Module, style: str) -> nn.Module:
    """Make every attention module of `module` split a joined q|k|v in `style` (in place; returns `module`)."""
    check_style(style)
    for child in module.modules():
        if hasattr(child, "split_style"):
            child.split_style = style
    return module


def with_split_style(module: nn.Module, style: str) -> nn.Module:
    """A deep copy of `module` whose attention modules split a joined q|k|v in `style`."""
    return set_split_style(copy.deepcopy(module), style)


def split_heads(qkv: torch.Tensor, parts: int = 3, style: str = "chunk") -> tuple[torch.Tensor, ...]:
    """`parts` equal pieces of `qkv` along dim 0, written the way the `style` converter maps to one delegated op."""
    if style == "tfl":
        return tuple(torch.ops.effvit.split_heads(qkv, parts))
    if style == "slice":
        size = qkv.shape[0] // parts
        return tuple(qkv[i * size : (i + 1) * size] for i in range(parts))
    return tuple(torch.chunk(qkv, parts, dim=0))
