"""Split a joined (3·G, d, N) q|k|v tensor into q, k, v with the one op each converter delegates.

Why: in int8 the attention core is an fp32 island; when q, k and v enter it as one tensor (concatenated in int8 along
the head-group axis) the graph crosses into fp32 once instead of three times. The split that follows must be a single
op the runtime's XNNPACK path takes, and which op that is depends on the converter:

- "chunk" (default; ONNX): `torch.chunk` -> one ONNX `Split`.
- "slice" (ExecuTorch): three leading-axis slices -> `slice_copy`, which the XNNPACK partitioner delegates
  (`split_with_sizes_copy`, what `chunk` becomes, stays outside the delegate).
- "tfl" (LiteRT): the custom op `effvit::split_heads`, lowered by the tflite target to one TFLite `SPLIT` (XNNPACK
  delegates it); litert-torch lowers `chunk` / `unbind` / `split` to three `SLICE` ops.

Targets pick the style with `split_style(...)` around their export; the default needs nothing.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

import torch

STYLES = ("chunk", "slice", "tfl")
_STYLE: contextvars.ContextVar[str] = contextvars.ContextVar("effvit_split_style", default="chunk")


@torch.library.custom_op("effvit::split_heads", mutates_args=())
def _split_heads(x: torch.Tensor, parts: int) -> list[torch.Tensor]:
    """`parts` equal chunks of `x` along dim 0 (fresh tensors: a custom op must not alias its input)."""
    return [t.clone() for t in torch.chunk(x, parts, dim=0)]


@_split_heads.register_fake
def _(x: torch.Tensor, parts: int) -> list[torch.Tensor]:
    return [t.new_empty(t.shape) for t in torch.chunk(x, parts, dim=0)]


@contextlib.contextmanager
def split_style(style: str) -> Iterator[None]:
    """Within the block, `split_heads` emits the split of `style` (see the module docstring)."""
    if style not in STYLES:
        raise ValueError(f"unknown split style {style!r}; choose one of {STYLES}")
    token = _STYLE.set(style)
    try:
        yield
    finally:
        _STYLE.reset(token)


def split_heads(qkv: torch.Tensor, parts: int = 3) -> tuple[torch.Tensor, ...]:
    """`parts` equal pieces of `qkv` along dim 0, written the way the active converter maps to one delegated op."""
    style = _STYLE.get()
    if style == "tfl":
        return tuple(torch.ops.effvit.split_heads(qkv, parts))
    if style == "slice":
        size = qkv.shape[0] // parts
        return tuple(qkv[i * size : (i + 1) * size] for i in range(parts))
    return tuple(torch.chunk(qkv, parts, dim=0))
