"""LR-ASPP with a dilated MobileNetV3-Large backbone: the mobile segmentation baseline, torchvision's module tree.

Keys equal torchvision's `lraspp_mobilenet_v3_large` (`torchvision/models/segmentation/lraspp.py`): `backbone.0` …
`backbone.16` (MobileNetV3-Large `features` with `dilated=True`: the last stage keeps stride 16 and dilates its
depthwise convs by 2), `classifier.cbr`, `classifier.scale`, `classifier.low_classifier`,
`classifier.high_classifier`. The head reads `backbone.4` ("low", 40 channels, stride 8) and `backbone.16` ("high",
960 channels, stride 16): cbr(high) · sigmoid(conv(pool(high))), bilinear x2 to the low map, then
low_classifier(low) + high_classifier(x).

One deliberate difference in the forward: torchvision ends with a bilinear upsampling of the logits to the input size
(and returns `{"out": ...}`); this model returns the stride-8 logits as a tensor, like the EfficientViT seg models, so
the two are compared at the same output (export `--full-res-output` appends an x8 upsampling for both, bicubic).
Default 19 classes (Cityscapes, for comparing with EfficientViT-seg at 1024x2048); torchvision's weights have 21.
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from .mobilenet import MOBILENETV3_LARGE, BlockV3, ConvNormAct, InvertedResidualV3, check_num_classes, init_weights
from .registry import register_model

LOW, HIGH = 4, 16  # torchvision: stage_indices[-4] (C2, stride 8) and the last feature layer (C5, stride 16)
INTER_CHANNELS = 128


def _dilated_blocks() -> tuple[BlockV3, ...]:
    """MobileNetV3-Large bnecks with torchvision's `dilated=True`: dilation 2 on the last three (the 160-wide stage)."""
    return tuple(b._replace(dilation=2) if b.cout == 160 else b for b in MOBILENETV3_LARGE)


class LRASPPHead(nn.Module):
    """torchvision `LRASPPHead`: keys `cbr.{0,1}`, `scale.1`, `low_classifier`, `high_classifier`."""

    def __init__(self, low_channels: int, high_channels: int, num_classes: int, inter: int = INTER_CHANNELS) -> None:
        super().__init__()
        self.cbr = nn.Sequential(nn.Conv2d(high_channels, inter, 1, bias=False), nn.BatchNorm2d(inter), nn.ReLU())
        self.scale = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(high_channels, inter, 1, bias=False), nn.Sigmoid()
        )
        self.low_classifier = nn.Conv2d(low_channels, num_classes, 1)
        self.high_classifier = nn.Conv2d(inter, num_classes, 1)

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        x = self.cbr(high) * self.scale(high)
        x = F.interpolate(x, size=low.shape[-2:], mode="bilinear", align_corners=False)
        return self.low_classifier(low) + self.high_classifier(x)


class LRASPPMobileNetV3(nn.Module):
    """Backbone `backbone.0..16` then LRASPPHead; returns (B, classes, H/8, W/8) logits (H, W multiples of 16)."""

    MACS_COUNT_NORMS = False  # torchvision convention: conv + linear only
    OUTPUT_STRIDE = 8

    def __init__(self, num_classes: int = 19) -> None:
        super().__init__()
        norm = partial(nn.BatchNorm2d, eps=0.001, momentum=0.01)
        blocks = _dilated_blocks()
        layers: list[nn.Module] = [ConvNormAct(3, blocks[0].cin, stride=2, norm=norm, act=nn.Hardswish)]
        layers += [InvertedResidualV3(cfg, norm) for cfg in blocks]
        layers.append(ConvNormAct(blocks[-1].cout, 6 * blocks[-1].cout, kernel=1, norm=norm, act=nn.Hardswish))
        self.backbone = nn.Sequential(*layers)
        self.classifier = LRASPPHead(blocks[LOW - 1].cout, 6 * blocks[-1].cout, num_classes)
        init_weights(self, lambda m: None)  # no linears; convs kaiming fan-out as torchvision

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        low = None
        for index, layer in enumerate(self.backbone):
            x = layer(x)
            if index == LOW:
                low = x
        assert low is not None
        return self.classifier(low, x)


@register_model("lraspp-mobilenetv3-large")
def lraspp_mobilenetv3_large(*, num_classes: int = 19) -> LRASPPMobileNetV3:
    """LR-ASPP MobileNetV3-Large, torchvision layout (3,221,538 params at torchvision's 21 classes)."""
    return LRASPPMobileNetV3(check_num_classes(num_classes))
