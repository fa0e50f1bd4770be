"""`efficientvit-paper-seg`: the first paper version's backbone (`efficientvit-paper`) with the segmentation head its
text describes: P2 (stride 8) and P4 (stride 32) fused, then a few convolutions, Fast-SCNN style.

arXiv 2205.14756 v1 names P2, P3, P4 as the feature outputs and a head that fuses P2 and P4 and runs a few
convolutions, like Fast-SCNN (Poudel et al. 2019: feature fusion module = upsample the low-resolution branch, depthwise
conv + 1x1 conv + BN; 1x1 conv + BN on the high-resolution branch; add; activation; classifier = two depthwise
separable convs and a 1x1 conv). Choices the text leaves open, each written here:
- width 128 for the fused features (Fast-SCNN's);
- P4 is upsampled x4 with bicubic interpolation (align_corners=False, as the ICCV head; exact in the deploy form),
  then a 3x3 depthwise conv + BN + hard-swish and a 1x1 conv + BN; P2 gets a 1x1 conv + BN; sum then hard-swish
  ("hard-swish everywhere" in place of Fast-SCNN's ReLU; Fast-SCNN's dilated depthwise conv is a plain 3x3 here);
- the classifier is two depthwise-separable blocks (3x3 depthwise + BN + hard-swish, 1x1 + BN + hard-swish) and a
  1x1 conv with bias to the classes; no dropout;
- output: logits at stride 8, as EfficientViT-seg (19 Cityscapes classes by default).
Measured with effvit_deploy.models.profile (BN not counted, as the seg figures): 1.89M params (the classifier head of
`efficientvit-paper` is not part of it), 16.43 GMACs at 1024x2048, 4.11 GMACs at 512x1024. There are no published
weights or figures for this model.
"""

from __future__ import annotations

import torch
from torch import nn

from .efficientvit import VARIANTS, ConvLayer, EfficientViTBackbone
from .efficientvit_seg import CITYSCAPES_CLASSES, HEAD_STRIDE, UpSampleLayer
from .mobilenet import check_num_classes
from .registry import register_model

FUSE_WIDTH = 128


def _separable(channels: int, out_channels: int, act: type[nn.Module]) -> nn.Sequential:
    return nn.Sequential(
        ConvLayer(channels, channels, 3, groups=channels, act=act), ConvLayer(channels, out_channels, 1, act=act)
    )


class FastSCNNHead(nn.Module):
    """Fuse P2 (stride 8) with x4-upsampled P4 (stride 32), then two separable convs and a 1x1 classifier."""

    def __init__(self, p2_channels: int, p4_channels: int, num_classes: int, act: type[nn.Module] = nn.Hardswish):
        super().__init__()
        self.low = nn.Sequential(
            UpSampleLayer(4),
            ConvLayer(p4_channels, p4_channels, 3, groups=p4_channels, act=act),
            ConvLayer(p4_channels, FUSE_WIDTH, 1, act=None),
        )
        self.high = ConvLayer(p2_channels, FUSE_WIDTH, 1, act=None)
        self.fuse_act = act()
        self.classifier = nn.Sequential(
            _separable(FUSE_WIDTH, FUSE_WIDTH, act),
            _separable(FUSE_WIDTH, FUSE_WIDTH, act),
            ConvLayer(FUSE_WIDTH, num_classes, 1, use_bias=True, norm=False, act=None),
        )

    def forward(self, p2: torch.Tensor, p4: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.fuse_act(self.high(p2) + self.low(p4)))


class EfficientViTPaperSeg(nn.Module):
    """`efficientvit-paper` backbone + FastSCNNHead; (B, classes, H/8, W/8) logits, H and W multiples of 32."""

    MACS_COUNT_NORMS = False
    OUTPUT_STRIDE = HEAD_STRIDE

    def __init__(self, num_classes: int = CITYSCAPES_CLASSES, softmax: bool = False) -> None:
        super().__init__()
        cfg = VARIANTS["efficientvit-paper"]
        self.backbone = EfficientViTBackbone(cfg, softmax=softmax)
        self.head = FastSCNNHead(cfg.widths[2], cfg.widths[4], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.backbone.features(x)
        return self.head(features[2], features[4])  # P2 = stage 2 (stride 8), P4 = stage 4 (stride 32)


@register_model("efficientvit-paper-seg")
def efficientvit_paper_seg(*, num_classes: int = CITYSCAPES_CLASSES) -> EfficientViTPaperSeg:
    """The first paper version's segmentation model (see module docstring)."""
    return EfficientViTPaperSeg(check_num_classes(num_classes))


@register_model("efficientvit-paper-seg-softmax")
def efficientvit_paper_seg_softmax(*, num_classes: int = CITYSCAPES_CLASSES) -> EfficientViTPaperSeg:
    """Its softmax-attention twin."""
    return EfficientViTPaperSeg(check_num_classes(num_classes), softmax=True)
