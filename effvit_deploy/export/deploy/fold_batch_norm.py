"""Folds every inference-mode BatchNorm2d into the Conv2d that feeds it, so runtimes see one conv with a bias.

    conv(x) * s + t  with  s = gamma / sqrt(var + eps),  t = beta - mean * s
    ==  conv'(x)     with  W' = W * s (per output channel),  b' = b * s + t

Matched patterns (the only places a conv feeds a BN in the registry's models):
- EfficientViT `ConvLayer` (`conv`, `norm`, `act`): the fold sets `norm = None`;
- any `nn.Sequential` holding a Conv2d immediately followed by a BatchNorm2d (torchvision-style conv-norm-act layers
  and MobileNetV2's projection `Sequential(..., Conv2d, BatchNorm2d)`): the BN becomes `nn.Identity()`, so
  indices and the module tree keep their shape.
The arithmetic runs in float64 and is cast back to the conv's dtype, so folding adds no rounding of its own beyond
one final cast. A BN without running statistics (`track_running_stats=False`) is skipped: it normalises with batch
statistics and has nothing to fold. LayerNorm (EfficientViT's head) is not foldable and is left alone.
"""

from __future__ import annotations

import torch
from torch import nn

from effvit_deploy.export.deploy._base import DeployContext, PassResult, empty_conv_like
from effvit_deploy.models.efficientvit import ConvLayer


def can_fold(conv: nn.Module, bn: nn.Module) -> bool:
    """A plain 2-D conv followed by a BN with running stats over the same channels."""
    return (
        type(conv) is nn.Conv2d
        and isinstance(bn, nn.BatchNorm2d)
        and bn.running_mean is not None
        and bn.running_var is not None
        and bn.num_features == conv.out_channels
    )


@torch.no_grad()
def fold_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A new Conv2d (with bias) computing `bn(conv(x))` in inference mode; inputs are not modified."""
    dtype = conv.weight.dtype
    weight = conv.weight.double()
    bias = conv.bias.double() if conv.bias is not None else torch.zeros(conv.out_channels, dtype=torch.float64)
    gamma = bn.weight.double() if bn.weight is not None else torch.ones(bn.num_features, dtype=torch.float64)
    beta = bn.bias.double() if bn.bias is not None else torch.zeros(bn.num_features, dtype=torch.float64)
    scale = gamma / torch.sqrt(bn.running_var.double() + bn.eps)
    fused = empty_conv_like(
        conv, in_channels=conv.in_channels, out_channels=conv.out_channels, groups=conv.groups, bias=True
    )
    fused.weight.copy_((weight * scale.reshape(-1, 1, 1, 1)).to(dtype))
    fused.bias.copy_(((bias - bn.running_mean.double()) * scale + beta).to(dtype))
    return fused.train(conv.training)


class FoldBatchNormPass:
    """Fold BatchNorm2d into the preceding Conv2d in ConvLayer and nn.Sequential; record each folded BN's name."""

    name = "fold_bn"

    def __call__(self, model: nn.Module, ctx: DeployContext) -> PassResult:
        folded: list[str] = []
        for prefix, module in list(model.named_modules()):
            if isinstance(module, ConvLayer):
                if module.norm is not None and can_fold(module.conv, module.norm):
                    module.conv = fold_conv_bn(module.conv, module.norm)
                    module.norm = None
                    folded.append(_join(prefix, "norm"))
            elif isinstance(module, nn.Sequential):
                folded += _fold_in_sequential(module, prefix)
        return PassResult(modified=bool(folded), records=[{"module": name} for name in folded])


def _fold_in_sequential(seq: nn.Sequential, prefix: str) -> list[str]:
    """Fold each (Conv2d, BatchNorm2d) neighbour pair of `seq`; the BN slot becomes nn.Identity."""
    folded = []
    keys = list(seq._modules)
    for first, second in zip(keys, keys[1:], strict=False):
        conv, bn = seq._modules[first], seq._modules[second]
        if not can_fold(conv, bn):
            continue
        seq._modules[first] = fold_conv_bn(conv, bn)
        seq._modules[second] = nn.Identity()
        folded.append(_join(prefix, second))
    return folded


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name
