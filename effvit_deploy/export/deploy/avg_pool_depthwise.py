"""int8 only: the first paper version's 2x2 average pool (its downsampling shortcut) as a 2x2 stride-2 depthwise conv.

Why: TFLite's XNNPACK delegate takes AVERAGE_POOL_2D in float only (its visitor checks for a float32 input), so an
int8 `efficientvit-paper-seg` left its four int8 pools to TFLite's builtin kernels, between five XNNPACK partitions.
A depthwise conv whose weights are all 1/4 and whose bias is 0 is the same function (no padding: the sizes are even),
and int8 depthwise convs are delegated everywhere; 1/4 is exact in per-channel int8 (scale 1/(4*127), value 127).
Float exports keep the pool: it is delegated there and reads no weights.
"""

from __future__ import annotations

import torch
from torch import nn

from effvit_deploy.export.deploy._base import DeployContext, PassResult, set_submodule
from effvit_deploy.models.efficientvit import DownsampleShortcut


def depthwise_mean(channels: int, kernel: int, like: torch.Tensor) -> nn.Conv2d:
    """Conv2d(channels, channels, kernel, stride=kernel, groups=channels) computing the kernel x kernel mean."""
    conv = nn.Conv2d(channels, channels, kernel, stride=kernel, groups=channels, bias=False,
                     device=like.device, dtype=like.dtype)
    with torch.no_grad():
        conv.weight.fill_(1.0 / (kernel * kernel))
    return conv.eval()


class AvgPoolAsDepthwisePass:
    """Replace each DownsampleShortcut's AvgPool2d(k) (stride k, no padding) by `depthwise_mean`, for int8."""

    name = "avg_pool_as_depthwise"

    def __call__(self, model: nn.Module, ctx: DeployContext) -> PassResult:
        if ctx.precision != "int8":
            return PassResult(modified=False)
        records = []
        for name, module in list(model.named_modules()):
            if not isinstance(module, DownsampleShortcut):
                continue
            pool, conv_layer = module.shortcut[0], module.shortcut[1]
            if not (isinstance(pool, nn.AvgPool2d) and _plain(pool)):
                continue
            weight = conv_layer.conv.weight
            kernel = _pair(pool.kernel_size)[0]
            set_submodule(model, f"{name}.shortcut.0", depthwise_mean(weight.shape[1], kernel, weight))
            records.append({"module": f"{name}.shortcut.0", "channels": int(weight.shape[1]), "kernel": kernel})
        return PassResult(modified=bool(records), records=records)


def _plain(pool: nn.AvgPool2d) -> bool:
    """A square pool with stride = kernel, no padding, no ceil mode: exactly a depthwise mean conv."""
    kernel, stride, padding = (_pair(v) for v in (pool.kernel_size, pool.stride, pool.padding))
    return kernel[0] == kernel[1] and stride == kernel and padding == (0, 0) and not pool.ceil_mode \
        and pool.divisor_override is None


def _pair(value: int | tuple[int, ...]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))
