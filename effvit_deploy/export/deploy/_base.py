"""What every deploy pass shares: the request it runs for and the result it reports.

A pass is a small class with a `name` (the string recorded in the manifest's `optimizations`) and
`__call__(model, ctx) -> PassResult`. It rewrites the module it is given in place: `to_deploy_form` hands it a deep
copy, so the caller's model is never touched. Unsupported patterns are skipped, never raised (STYLE rule 10).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import nn


@dataclass(frozen=True)
class DeployContext:
    """The static facts a pass may specialise on: input resolution (H, W), target precision, and what the target's
    converter needs (`split`: how a joined q|k|v is split into one delegated op, see `head_split`)."""

    resolution: tuple[int, int]
    precision: str = "fp32"
    split: str = "chunk"
    fp16_safe_attention: bool = False  # lite_mla_deploy's fp16-safe scaling (opt-in: README "Numerics on ARM kernels")
    fp16_guard: bool = False  # lite_mla_deploy's where(den > 0, num / den, 0) (TFLite fp16 exports)
    joined_qkv_max_tokens: int = 0  # fp32 ReLU attention up to this many tokens as `lite_mla_joined` (ONNX Runtime)


@dataclass
class PassResult:
    """`modified` says whether the pass changed anything; `records` carries per-module facts for the manifest."""

    modified: bool
    records: list[dict[str, Any]] = field(default_factory=list)


class DeployPass(Protocol):
    name: str

    def __call__(self, model: nn.Module, ctx: DeployContext) -> PassResult: ...


def set_submodule(root: nn.Module, qualified_name: str, new: nn.Module) -> None:
    """Replace the submodule at dotted path `qualified_name` (ModuleList/Sequential indices included)."""
    parent_name, _, child = qualified_name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, new)


def empty_conv_like(conv: nn.Conv2d, *, in_channels: int, out_channels: int, groups: int, bias: bool) -> nn.Conv2d:
    """An uninitialised Conv2d with `conv`'s geometry, device and dtype (skip_init: no random init to throw away)."""
    return torch.nn.utils.skip_init(
        nn.Conv2d,
        in_channels,
        out_channels,
        conv.kernel_size,
        conv.stride,
        conv.padding,
        conv.dilation,
        groups,
        bias=bias,
        padding_mode=conv.padding_mode,
        device=conv.weight.device,
        dtype=conv.weight.dtype,
    )
