"""EfficientViT B-series semantic segmentation (official `EfficientViTSeg` = B backbone + `SegHead`), softmax twins.

The module tree mirrors the official code (`efficientvit/models/efficientvit/seg.py`, `nn/ops.py` DAGBlock,
UpSampleLayer) attribute for attribute, so an official seg checkpoint loads with no renaming:
`head.input_ops.0.op_list.0.conv.weight`, `head.middle.op_list.0.main.inverted_conv.conv.weight`,
`head.output_ops.0.op_list.1.conv.bias`, ... The zoo names are the official ones (`efficientvit-seg-b0-cityscapes`).

The head reads stages 4, 3, 2 (strides 32, 16, 8), projects each with a 1x1 conv + BN (no activation), upsamples
stage 4 x4 and stage 3 x2 with bicubic interpolation (align_corners=False, after the projection), adds them as
f4 + (f3 + f2), runs `head_depth` residual MBConvs and a classifier (optionally behind a 1x1 expansion). The model
returns logits at 1/8 of the input resolution, as the official one does; the official evaluation upsamples them x8
with bicubic interpolation to the label size (the export option `--full-res-output` appends exactly that).

Facts used (official code read and run): ../shared/reference/efficientvit_seg_facts.md.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .efficientvit import VARIANTS, ConvLayer, EfficientViTBackbone, MBConv, OpSequential, ResidualBlock
from .mobilenet import check_num_classes
from .registry import register_model

CITYSCAPES_CLASSES = 19
ADE20K_CLASSES = 150
HEAD_STRIDE = 8


class UpSampleLayer(nn.Module):
    """Bicubic x`factor` (align_corners=False), computed in fp32 for half inputs as the official layer does."""

    def __init__(self, factor: int) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
        # size, not scale_factor: the same 1/factor source scale, and it also runs on the meta device (profiling)
        size = (y.shape[-2] * self.factor, y.shape[-1] * self.factor)
        y = F.interpolate(y, size=size, mode="bicubic", align_corners=False)
        return y.to(x.dtype)


@dataclass(frozen=True)
class SegHeadConfig:
    """One official head: width, residual MBConv count, optional final 1x1 expansion, classes."""

    width: int
    depth: int
    final_expand: int | None
    num_classes: int
    expand_ratio: float = 4.0


class SegHead(nn.Module):
    """Official `SegHead` (a DAGBlock): keys `input_ops.{0,1,2}`, `middle.op_list.i`, `output_ops.0.op_list.j`."""

    # the official fid_list order: stage4, stage3, stage2 (strides 32, 16, 8)
    STAGES = (4, 3, 2)

    def __init__(self, in_channels: tuple[int, int, int], cfg: SegHeadConfig, act: type[nn.Module] = nn.Hardswish):
        super().__init__()
        width = cfg.width
        inputs: list[nn.Module] = []
        for stage, channels in zip(self.STAGES, in_channels, strict=True):
            factor = 2 ** (stage + 1) // HEAD_STRIDE  # stage i has stride 2^(i+1)
            project = ConvLayer(channels, width, 1, act=None)
            # factor 1 is a bare ConvLayer in the official tree (no OpSequential, so no `op_list.0` in its keys)
            inputs.append(project if factor == 1 else OpSequential([project, UpSampleLayer(factor)]))
        self.input_ops = nn.ModuleList(inputs)
        self.middle = OpSequential(
            [
                ResidualBlock(MBConv(width, width, 1, cfg.expand_ratio, act), shortcut=True)
                for _ in range(cfg.depth)
            ]
        )
        out: list[nn.Module] = []
        if cfg.final_expand is not None:
            out.append(ConvLayer(width, width * cfg.final_expand, 1, act=act))
        out.append(
            ConvLayer(width * (cfg.final_expand or 1), cfg.num_classes, 1, use_bias=True, norm=False, act=None)
        )
        self.output_ops = nn.ModuleList([OpSequential(out)])

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        f4, f3, f2 = (op(features[stage]) for op, stage in zip(self.input_ops, self.STAGES, strict=True))
        # official list_sum order: x0 + (x1 + x2); float addition is not associative
        return self.output_ops[0](self.middle(f4 + (f3 + f2)))


class EfficientViTSeg(nn.Module):
    """Backbone then SegHead; returns (B, classes, H/8, W/8) logits. H and W must be multiples of 32."""

    # The published seg MACs are conv + attention matmuls without BN (facts §4), unlike the classifiers' figures.
    MACS_COUNT_NORMS = False
    OUTPUT_STRIDE = HEAD_STRIDE

    def __init__(self, backbone_variant: str, head: SegHeadConfig, softmax: bool = False) -> None:
        super().__init__()
        cfg = VARIANTS[backbone_variant]
        self.backbone = EfficientViTBackbone(cfg, softmax=softmax)
        self.head = SegHead((cfg.widths[4], cfg.widths[3], cfg.widths[2]), head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone.features(x))


# (backbone, dataset) -> head; official builders `efficientvit_seg_b{0..3}(dataset)`. There is no B0 ADE20K model.
HEADS: dict[str, tuple[str, SegHeadConfig]] = {
    "efficientvit-seg-b0-cityscapes": ("efficientvit-b0", SegHeadConfig(32, 1, 4, CITYSCAPES_CLASSES)),
    "efficientvit-seg-b1-cityscapes": ("efficientvit-b1", SegHeadConfig(64, 3, 4, CITYSCAPES_CLASSES)),
    "efficientvit-seg-b2-cityscapes": ("efficientvit-b2", SegHeadConfig(96, 3, 4, CITYSCAPES_CLASSES)),
    "efficientvit-seg-b3-cityscapes": ("efficientvit-b3", SegHeadConfig(128, 3, 4, CITYSCAPES_CLASSES)),
    "efficientvit-seg-b1-ade20k": ("efficientvit-b1", SegHeadConfig(64, 3, None, ADE20K_CLASSES)),
    "efficientvit-seg-b2-ade20k": ("efficientvit-b2", SegHeadConfig(96, 3, None, ADE20K_CLASSES)),
    "efficientvit-seg-b3-ade20k": ("efficientvit-b3", SegHeadConfig(128, 3, None, ADE20K_CLASSES)),
}


def _register(name: str, backbone: str, head: SegHeadConfig, softmax: bool) -> None:
    def build(*, num_classes: int = head.num_classes) -> nn.Module:
        cfg = dataclasses.replace(head, num_classes=check_num_classes(num_classes))
        return EfficientViTSeg(backbone, cfg, softmax=softmax)

    build.__doc__ = f"{name}: {backbone} backbone, {head}"
    register_model(name)(build)


for _name, (_backbone, _head) in HEADS.items():
    _register(_name, _backbone, _head, softmax=False)
for _name, (_backbone, _head) in HEADS.items():
    _register(f"{_name}-softmax", _backbone, _head, softmax=True)


class FullResolutionOutput(nn.Module):
    """A dense model followed by the official evaluation's bicubic upsampling of its logits to the input size."""

    def __init__(self, model: nn.Module, stride: int) -> None:
        super().__init__()
        self.model = model
        self.upsample = UpSampleLayer(stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.upsample(self.model(x))


def output_stride(model: nn.Module) -> int | None:
    """The input/output resolution ratio of a dense-prediction model (8 for EfficientViT seg), None for others."""
    stride = getattr(model, "OUTPUT_STRIDE", None)
    return int(stride) if stride is not None else None
