"""EfficientNet-B0..B3 baselines, written from scratch with torchvision's module tree.

Why: EfficientNet is the accuracy/latency reference the EfficientViT paper compares against, and users have
torchvision checkpoints for it. Every attribute name, submodule index and parameter shape here equals torchvision's
`torchvision/models/efficientnet.py` (v1 path), so `efficientnet_b0_rwightman-3dd342df.pth` loads with no renaming.

Structure: `features` = [stem conv, 7 stages of MBConv blocks, 1x1 conv to 4x channels], global pool, `classifier` =
(dropout, linear). MBConv = [1x1 expand] -> kxk depthwise -> SE (SiLU / sigmoid, squeeze = block input // 4) -> 1x1
project, with stochastic depth on the residual branch (identity in eval). B0..B3 differ only in width/depth multipliers
and dropout (the VARIANTS table). BatchNorm is PyTorch's default (eps 1e-5, momentum 0.1), as torchvision uses for
B0..B4. Activations are not in-place and the residual add is out-of-place (cleaner export graphs; same numbers).

Paper: https://arxiv.org/abs/1905.11946
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn

from .mobilenet import ConvNormAct, NormLayer, SqueezeExcitation, check_num_classes, init_weights, make_divisible
from .registry import register_model

# ---------------------------------------------------------------------------------------------------------------------
# helpers


class StageCfg(NamedTuple):
    """One row of the B0 table (paper Table 1): expand ratio, kernel, first stride, in/out channels, repeats."""

    expand: int
    kernel: int
    stride: int
    cin: int
    cout: int
    repeats: int


class BlockCfg(NamedTuple):
    """One MBConv block after width/depth scaling."""

    expand: int
    kernel: int
    stride: int
    cin: int
    cout: int


def scale_stages(stages: tuple[StageCfg, ...], width: float, depth: float) -> list[list[BlockCfg]]:
    """Apply the compound multipliers: channels rounded to multiples of 8, repeats rounded up."""
    scaled = []
    for s in stages:
        cin, cout = make_divisible(s.cin * width, 8), make_divisible(s.cout * width, 8)
        repeats = int(math.ceil(s.repeats * depth))
        # only the first block of a stage changes stride or width
        scaled.append(
            [
                BlockCfg(s.expand, s.kernel, s.stride if i == 0 else 1, cin if i == 0 else cout, cout)
                for i in range(repeats)
            ]
        )
    return scaled


def _uniform_linear_init(m: nn.Linear) -> None:
    """EfficientNet head init: U(-1/sqrt(out), 1/sqrt(out)) weights, zero bias."""
    bound = 1.0 / math.sqrt(m.out_features)
    nn.init.uniform_(m.weight, -bound, bound)
    nn.init.zeros_(m.bias)


# ---------------------------------------------------------------------------------------------------------------------
# blocks


class StochasticDepth(nn.Module):
    """Drop the whole residual branch per sample with probability `p` while training ("row" mode); identity in eval."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep if keep > 0.0 else x * mask

    def extra_repr(self) -> str:
        return f"p={self.p}"


class MBConv(nn.Module):
    """Mobile inverted bottleneck with squeeze-excitation; layers under `block` as torchvision names them."""

    def __init__(self, cfg: BlockCfg, drop_path: float, norm: NormLayer = nn.BatchNorm2d) -> None:
        super().__init__()
        self.use_res_connect = cfg.stride == 1 and cfg.cin == cfg.cout
        hidden = make_divisible(cfg.cin * cfg.expand, 8)
        layers: list[nn.Module] = []
        if hidden != cfg.cin:
            layers.append(ConvNormAct(cfg.cin, hidden, kernel=1, norm=norm, act=nn.SiLU))
        layers += [
            ConvNormAct(hidden, hidden, cfg.kernel, cfg.stride, groups=hidden, norm=norm, act=nn.SiLU),
            SqueezeExcitation(hidden, max(1, cfg.cin // 4), act=nn.SiLU, gate=nn.Sigmoid),
            ConvNormAct(hidden, cfg.cout, kernel=1, norm=norm, act=None),
        ]
        self.block = nn.Sequential(*layers)
        self.stochastic_depth = StochasticDepth(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return x + self.stochastic_depth(out) if self.use_res_connect else out


# ---------------------------------------------------------------------------------------------------------------------
# model


class EfficientNet(nn.Module):
    """EfficientNet v1: stem, scaled MBConv stages, 1x1 head conv, pool, dropout + linear classifier."""

    def __init__(
        self,
        stages: list[list[BlockCfg]],
        dropout: float,
        drop_path: float = 0.2,
        num_classes: int = 1000,
        norm: NormLayer = nn.BatchNorm2d,
    ) -> None:
        super().__init__()
        stem, last_in = stages[0][0].cin, stages[-1][-1].cout
        last_conv = 4 * last_in
        total = sum(len(stage) for stage in stages)
        features: list[nn.Module] = [ConvNormAct(3, stem, stride=2, norm=norm, act=nn.SiLU)]
        index = 0
        for stage in stages:
            blocks = []
            for cfg in stage:
                # stochastic depth grows linearly with block index, 0 for the first block
                blocks.append(MBConv(cfg, drop_path * index / total, norm))
                index += 1
            features.append(nn.Sequential(*blocks))
        features.append(ConvNormAct(last_in, last_conv, kernel=1, norm=norm, act=nn.SiLU))
        self.features = nn.Sequential(*features)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(last_conv, num_classes))
        init_weights(self, _uniform_linear_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


# ---------------------------------------------------------------------------------------------------------------------
# variants

# EfficientNet-B0 stages (paper Table 1, same as torchvision's `_efficientnet_conf`).
B0_STAGES: tuple[StageCfg, ...] = (
    StageCfg(1, 3, 1, 32, 16, 1),
    StageCfg(6, 3, 2, 16, 24, 2),
    StageCfg(6, 5, 2, 24, 40, 2),
    StageCfg(6, 3, 2, 40, 80, 3),
    StageCfg(6, 5, 1, 80, 112, 3),
    StageCfg(6, 5, 2, 112, 192, 4),
    StageCfg(6, 3, 1, 192, 320, 1),
)

# Compound scaling per variant: width multiplier, depth multiplier, classifier dropout (torchvision's builders).
VARIANTS: dict[str, dict[str, float]] = {
    "b0": dict(width=1.0, depth=1.0, dropout=0.2),
    "b1": dict(width=1.0, depth=1.1, dropout=0.2),
    "b2": dict(width=1.1, depth=1.2, dropout=0.3),
    "b3": dict(width=1.2, depth=1.4, dropout=0.3),
}


def _build(variant: str, num_classes: int) -> EfficientNet:
    """EfficientNet for one row of VARIANTS."""
    v = VARIANTS[variant]
    stages = scale_stages(B0_STAGES, v["width"], v["depth"])
    return EfficientNet(stages, dropout=v["dropout"], num_classes=check_num_classes(num_classes))


# ---------------------------------------------------------------------------------------------------------------------
# builders


@register_model("efficientnet-b0")
def efficientnet_b0(*, num_classes: int = 1000) -> EfficientNet:
    """EfficientNet-B0, torchvision `efficientnet_b0` layout (5,288,548 params at 1000 classes)."""
    return _build("b0", num_classes)


@register_model("efficientnet-b1")
def efficientnet_b1(*, num_classes: int = 1000) -> EfficientNet:
    """EfficientNet-B1, torchvision `efficientnet_b1` layout (7,794,184 params at 1000 classes)."""
    return _build("b1", num_classes)


@register_model("efficientnet-b2")
def efficientnet_b2(*, num_classes: int = 1000) -> EfficientNet:
    """EfficientNet-B2, torchvision `efficientnet_b2` layout (9,109,994 params at 1000 classes)."""
    return _build("b2", num_classes)


@register_model("efficientnet-b3")
def efficientnet_b3(*, num_classes: int = 1000) -> EfficientNet:
    """EfficientNet-B3, torchvision `efficientnet_b3` layout (12,233,232 params at 1000 classes)."""
    return _build("b3", num_classes)
