"""MobileNetV2 and MobileNetV3-Large baselines, written from scratch with torchvision's module tree.

Why: the benchmark compares EfficientViT with the usual mobile baselines, and users have torchvision checkpoints for
them. Every attribute name, submodule index and parameter shape here equals torchvision's
(`torchvision/models/mobilenetv2.py`, `mobilenetv3.py`, `ops/misc.py`), so
`model.load_state_dict(torch.load("mobilenet_v3_large-8738ca79.pth"))` works with no renaming.

The small conv-norm-act and squeeze-excitation layers also live here because EfficientNet's MBConv is the same
inverted residual; `efficientnet.py` imports them. Differences from torchvision that do not touch the state_dict:
activations are not in-place and residual adds are out-of-place (cleaner graphs for export), and MobileNetV3's
hard-swish/hard-sigmoid are always `nn.Hardswish`/`nn.Hardsigmoid` modules so exporters see one op each.

Papers: MobileNetV2 https://arxiv.org/abs/1801.04381, MobileNetV3 https://arxiv.org/abs/1905.02244.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import NamedTuple

import torch
from torch import nn

from ..errors import InvalidInputError
from .registry import register_model

NormLayer = Callable[[int], nn.Module]

# ---------------------------------------------------------------------------------------------------------------------
# helpers


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round a channel count to a multiple of `divisor`, never dropping more than 10% (the TF/torchvision rule)."""
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def check_num_classes(num_classes: int) -> int:
    """Reject a class count the classifier cannot have."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise InvalidInputError(f"num_classes must be a positive integer, got {num_classes!r}")
    return num_classes


def init_weights(model: nn.Module, linear_init: Callable[[nn.Linear], None]) -> None:
    """torchvision's initialisation: kaiming fan-out convs, unit norms, zero biases, family-specific linears."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d | nn.GroupNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            linear_init(m)


def _normal_linear_init(m: nn.Linear) -> None:
    """MobileNet head init: N(0, 0.01) weights, zero bias."""
    nn.init.normal_(m.weight, 0, 0.01)
    nn.init.zeros_(m.bias)


# ---------------------------------------------------------------------------------------------------------------------
# blocks


class ConvNormAct(nn.Sequential):
    """Conv (no bias) -> norm -> optional activation; children `0`, `1`, `2` like torchvision's Conv2dNormActivation."""

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel: int = 3,
        stride: int = 1,
        groups: int = 1,
        norm: NormLayer = nn.BatchNorm2d,
        act: type[nn.Module] | None = nn.ReLU,
        dilation: int = 1,
    ) -> None:
        pad = (kernel - 1) // 2 * dilation
        layers: list[nn.Module] = [
            nn.Conv2d(cin, cout, kernel, stride, padding=pad, dilation=dilation, groups=groups, bias=False),
            norm(cout),
        ]
        if act is not None:
            layers.append(act())
        super().__init__(*layers)


class SqueezeExcitation(nn.Module):
    """Channel gate: global pool -> 1x1 conv `fc1` -> act -> 1x1 conv `fc2` -> gate act -> scale the input."""

    def __init__(
        self,
        channels: int,
        squeeze: int,
        act: type[nn.Module] = nn.ReLU,
        gate: type[nn.Module] = nn.Sigmoid,
    ) -> None:
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        self.activation = act()
        self.scale_activation = gate()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x)))))
        return x * scale


class InvertedResidualV2(nn.Module):
    """MobileNetV2 block: [1x1 expand] -> 3x3 depthwise -> 1x1 linear project, under `conv` as torchvision has it."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int, norm: NormLayer = nn.BatchNorm2d) -> None:
        super().__init__()
        hidden = int(round(cin * expand))
        self.use_res_connect = stride == 1 and cin == cout
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(ConvNormAct(cin, hidden, kernel=1, norm=norm, act=nn.ReLU6))
        layers += [
            ConvNormAct(hidden, hidden, stride=stride, groups=hidden, norm=norm, act=nn.ReLU6),
            nn.Conv2d(hidden, cout, 1, bias=False),
            norm(cout),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        return x + out if self.use_res_connect else out


class BlockV3(NamedTuple):
    """One MobileNetV3 bneck row (paper Table 1): input, kernel, expanded, output channels, SE, hard-swish, stride."""

    cin: int
    kernel: int
    expanded: int
    cout: int
    use_se: bool
    use_hs: bool
    stride: int
    dilation: int = 1  # torchvision's `dilated=True` (segmentation): 2 in the last stage, whose stride then is 1


class InvertedResidualV3(nn.Module):
    """MobileNetV3 bneck: [1x1 expand] -> kxk depthwise -> [SE with hard-sigmoid gate] -> 1x1 project, under `block`."""

    def __init__(self, cfg: BlockV3, norm: NormLayer) -> None:
        super().__init__()
        self.use_res_connect = cfg.stride == 1 and cfg.cin == cfg.cout
        act = nn.Hardswish if cfg.use_hs else nn.ReLU
        layers: list[nn.Module] = []
        if cfg.expanded != cfg.cin:
            layers.append(ConvNormAct(cfg.cin, cfg.expanded, kernel=1, norm=norm, act=act))
        stride = 1 if cfg.dilation > 1 else cfg.stride
        layers.append(
            ConvNormAct(
                cfg.expanded, cfg.expanded, cfg.kernel, stride, cfg.expanded, norm=norm, act=act, dilation=cfg.dilation
            )
        )
        if cfg.use_se:
            squeeze = make_divisible(cfg.expanded // 4, 8)
            layers.append(SqueezeExcitation(cfg.expanded, squeeze, act=nn.ReLU, gate=nn.Hardsigmoid))
        layers.append(ConvNormAct(cfg.expanded, cfg.cout, kernel=1, norm=norm, act=None))
        self.block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return x + out if self.use_res_connect else out


# ---------------------------------------------------------------------------------------------------------------------
# models


class MobileNetV2(nn.Module):
    """MobileNetV2: `features` (stem, 17 inverted residuals, 1x1 conv), global pool, `classifier` (dropout, linear)."""

    def __init__(
        self,
        stages: tuple[tuple[int, int, int, int], ...],
        stem: int = 32,
        last_channel: int = 1280,
        dropout: float = 0.2,
        num_classes: int = 1000,
    ) -> None:
        super().__init__()
        features: list[nn.Module] = [ConvNormAct(3, stem, stride=2, act=nn.ReLU6)]
        cin = stem
        for expand, cout, repeats, stride in stages:
            for i in range(repeats):
                features.append(InvertedResidualV2(cin, cout, stride if i == 0 else 1, expand))
                cin = cout
        features.append(ConvNormAct(cin, last_channel, kernel=1, act=nn.ReLU6))
        self.features = nn.Sequential(*features)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(last_channel, num_classes))
        init_weights(self, _normal_linear_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


class MobileNetV3(nn.Module):
    """MobileNetV3: `features` (hard-swish stem, bnecks, 1x1 conv to 6x), pool, `classifier` (linear, hswish, dropout,
    linear). BatchNorm eps 1e-3, momentum 0.01 as torchvision."""

    def __init__(
        self,
        blocks: tuple[BlockV3, ...],
        last_channel: int,
        dropout: float = 0.2,
        num_classes: int = 1000,
    ) -> None:
        super().__init__()
        norm = partial(nn.BatchNorm2d, eps=0.001, momentum=0.01)
        last_conv = 6 * blocks[-1].cout
        features: list[nn.Module] = [ConvNormAct(3, blocks[0].cin, stride=2, norm=norm, act=nn.Hardswish)]
        features += [InvertedResidualV3(cfg, norm) for cfg in blocks]
        features.append(ConvNormAct(blocks[-1].cout, last_conv, kernel=1, norm=norm, act=nn.Hardswish))
        self.features = nn.Sequential(*features)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(
            nn.Linear(last_conv, last_channel),
            nn.Hardswish(),
            nn.Dropout(dropout),
            nn.Linear(last_channel, num_classes),
        )
        init_weights(self, _normal_linear_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


# ---------------------------------------------------------------------------------------------------------------------
# variants

# MobileNetV2 stages (expand t, channels c, repeats n, first stride s), paper Table 2, width 1.0.
MOBILENETV2_STAGES: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)

_RE, _HS = False, True
# MobileNetV3-Large bnecks, paper Table 1, width 1.0 (all counts already multiples of 8).
MOBILENETV3_LARGE: tuple[BlockV3, ...] = (
    BlockV3(16, 3, 16, 16, False, _RE, 1),
    BlockV3(16, 3, 64, 24, False, _RE, 2),
    BlockV3(24, 3, 72, 24, False, _RE, 1),
    BlockV3(24, 5, 72, 40, True, _RE, 2),
    BlockV3(40, 5, 120, 40, True, _RE, 1),
    BlockV3(40, 5, 120, 40, True, _RE, 1),
    BlockV3(40, 3, 240, 80, False, _HS, 2),
    BlockV3(80, 3, 200, 80, False, _HS, 1),
    BlockV3(80, 3, 184, 80, False, _HS, 1),
    BlockV3(80, 3, 184, 80, False, _HS, 1),
    BlockV3(80, 3, 480, 112, True, _HS, 1),
    BlockV3(112, 3, 672, 112, True, _HS, 1),
    BlockV3(112, 5, 672, 160, True, _HS, 2),
    BlockV3(160, 5, 960, 160, True, _HS, 1),
    BlockV3(160, 5, 960, 160, True, _HS, 1),
)

# ---------------------------------------------------------------------------------------------------------------------
# builders


@register_model("mobilenetv2")
def mobilenetv2(*, num_classes: int = 1000) -> MobileNetV2:
    """MobileNetV2 1.0, torchvision `mobilenet_v2` layout (3,504,872 params at 1000 classes)."""
    return MobileNetV2(MOBILENETV2_STAGES, dropout=0.2, num_classes=check_num_classes(num_classes))


@register_model("mobilenetv3-large")
def mobilenetv3_large(*, num_classes: int = 1000) -> MobileNetV3:
    """MobileNetV3-Large 1.0, torchvision `mobilenet_v3_large` layout (5,483,032 params at 1000 classes)."""
    return MobileNetV3(MOBILENETV3_LARGE, last_channel=1280, dropout=0.2, num_classes=check_num_classes(num_classes))
