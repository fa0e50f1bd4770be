"""Params and MACs at any resolution: convolutions, linears and attention matmuls, counted by forward hooks.

Published MAC figures come from two counting conventions, and `profile` follows the one each family was published with
so the numbers can be checked against the papers:
- EfficientViT (official repo, torchprofile): conv + linear + matmul, plus one MAC per element of every affine
  normalisation (BatchNorm, LayerNorm). Models opt in with a class attribute `MACS_COUNT_NORMS = True`.
- torchvision baselines (EfficientNet, MobileNet): conv + linear only.
`count_norms=False` gives the deploy view for any model (BatchNorm folds into the conv at export and costs nothing).
Activations, pooling and other element-wise ops are counted by neither convention.
"""

from __future__ import annotations

import torch
from torch import nn

from ..resolution import Resolution, parse_resolution


def _conv_macs(module: nn.Conv2d, output: torch.Tensor) -> int:
    kh, kw = module.kernel_size
    return output.numel() * (module.in_channels // module.groups) * kh * kw


def _linear_macs(module: nn.Linear, output: torch.Tensor) -> int:
    return output.numel() * module.in_features


_NORMS = (nn.BatchNorm2d, nn.LayerNorm)


def profile(
    model: nn.Module,
    resolution: Resolution | str | int | tuple[int, int],
    *,
    count_norms: bool | None = None,
    multiple: int = 32,
) -> tuple[int, int]:
    """Return (params, MACs) of `model` for one image of `resolution` (batch 1).

    Args:
        model: any module; modules with an `attention_macs(height, width)` method add their matmul MACs.
        resolution: `224`, `"512x1024"` or `(512, 1024)` (height, width); a positive multiple of 32.
        count_norms: count affine norms as one MAC per element; default: the model's `MACS_COUNT_NORMS`
            (False if unset).
        multiple: each side must be a multiple of this (output stride 32); 1 profiles a baseline at a native
            torchvision size such as 240 or 300.
    """
    height, width = parse_resolution(resolution, multiple=multiple)
    if count_norms is None:
        count_norms = bool(getattr(model, "MACS_COUNT_NORMS", False))
    macs = 0

    def on_forward(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal macs
        if isinstance(module, nn.Conv2d):
            macs += _conv_macs(module, output)
        elif isinstance(module, nn.Linear):
            macs += _linear_macs(module, output)
        elif count_norms and isinstance(module, _NORMS):
            macs += output.numel()
        if hasattr(module, "attention_macs"):
            # LiteMLA sees the qkv map at its input's resolution.
            macs += module.attention_macs(*inputs[0].shape[-2:])

    handles = [m.register_forward_hook(on_forward) for m in model.modules()]
    try:
        device = next(model.parameters()).device
        with torch.no_grad():
            model(torch.zeros(1, 3, height, width, device=device))
    finally:
        for handle in handles:
            handle.remove()
    params = sum(p.numel() for p in model.parameters())
    return params, macs
