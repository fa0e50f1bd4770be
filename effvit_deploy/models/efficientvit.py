"""EfficientViT (MIT Han Lab) B-series classifiers, the paper's first configuration, and softmax-attention twins.

The module tree mirrors the official code (`efficientvit/models/nn/ops.py`, `backbone.py`, `cls.py`) attribute for
attribute, so an official checkpoint's state_dict loads with no renaming: `backbone.input_stem.op_list.0.conv.weight`,
`backbone.stages.3.op_list.1.context_module.main.qkv.conv.weight`, `head.op_list.2.linear.weight`, ...

Paper: "EfficientViT: Multi-Scale Linear Attention for High-Resolution Dense Prediction", Cai et al., ICCV 2023
(arXiv 2205.14756). Facts used here: ../shared/reference/efficientvit_official_facts.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .registry import register_model

ActLayer = type[nn.Module] | None

# Official B-series uses BN/LN eps 1e-5; the attention normaliser eps is 1e-15 (timm's 1e-5 changes fp32 logits ~1e-4).
ATTENTION_EPS = 1e-15


# --------------------------------------------------------------------------------------------------------------------
# Layers (official names: ConvLayer, LinearLayer, DSConv, MBConv, LiteMLA, EfficientViTBlock, ResidualBlock)
# --------------------------------------------------------------------------------------------------------------------


class ConvLayer(nn.Module):
    """Conv2d (same padding) -> optional BatchNorm -> optional activation; keys `conv`, `norm`."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        groups: int = 1,
        use_bias: bool = False,
        norm: bool = True,
        act: ActLayer = nn.Hardswish,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride, padding=kernel_size // 2, groups=groups, bias=use_bias
        )
        self.norm = nn.BatchNorm2d(out_channels) if norm else None
        self.act = act() if act is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.norm is not None:
            x = self.norm(x)
        if self.act is not None:
            x = self.act(x)
        return x


class LinearLayer(nn.Module):
    """Flatten -> Linear -> optional LayerNorm -> optional activation; keys `linear`, `norm`."""

    def __init__(self, in_features: int, out_features: int, use_bias: bool, norm: bool, act: ActLayer) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, out_features, bias=use_bias)
        self.norm = nn.LayerNorm(out_features) if norm else None
        self.act = act() if act is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.linear(torch.flatten(x, start_dim=1))
        if self.norm is not None:
            x = self.norm(x)
        if self.act is not None:
            x = self.act(x)
        return x


class DSConv(nn.Module):
    """Depthwise kxk + BN + act, then pointwise 1x1 + BN (no activation)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, act: ActLayer, kernel_size: int = 3) -> None:
        super().__init__()
        self.depth_conv = ConvLayer(in_channels, in_channels, kernel_size, stride, groups=in_channels, act=act)
        self.point_conv = ConvLayer(in_channels, out_channels, 1, act=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.point_conv(self.depth_conv(x))


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand -> kxk depthwise -> 1x1 project (BN, no activation).

    `fewer_norm` is the official variant used from the first attention stage on: the expand and depthwise convs carry
    a bias and no BatchNorm.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int,
        expand_ratio: float,
        act: ActLayer,
        fewer_norm: bool = False,
        kernel_size: int = 3,
    ) -> None:
        super().__init__()
        mid = round(in_channels * expand_ratio)
        self.inverted_conv = ConvLayer(in_channels, mid, 1, use_bias=fewer_norm, norm=not fewer_norm, act=act)
        self.depth_conv = ConvLayer(
            mid, mid, kernel_size, stride, groups=mid, use_bias=fewer_norm, norm=not fewer_norm, act=act
        )
        self.point_conv = ConvLayer(mid, out_channels, 1, act=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.point_conv(self.depth_conv(self.inverted_conv(x)))


class ResidualBlock(nn.Module):
    """`main(x) + x` with an identity shortcut, or `main(x)` alone (stride-2 blocks); key `main`."""

    def __init__(self, main: nn.Module, shortcut: bool) -> None:
        super().__init__()
        self.main = main
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x) + x if self.shortcut else self.main(x)


class DownsampleShortcut(nn.Module):
    """The first paper version's extra shortcut around a stride-2 block: 2x2 average pool, then 1x1 conv + BN."""

    def __init__(self, main: nn.Module, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.main = main
        # count_include_pad=False: the same function here (no padding), and ExecuTorch's XNNPACK partitioner only
        # delegates average pooling in that form (the default left 4 avg_pool2d ops outside: 5 partitions)
        pool = nn.AvgPool2d(2, count_include_pad=False)
        self.shortcut = nn.Sequential(pool, ConvLayer(in_channels, out_channels, 1, act=None))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x) + self.shortcut(x)


class LiteMLA(nn.Module):
    """Lightweight multi-scale linear attention with a ReLU kernel (official `LiteMLA`).

    qkv channels are interleaved per head, [q(dim) k(dim) v(dim)] for each head; the multi-scale branch (depthwise 5x5
    then a grouped 1x1 with groups=3*heads) doubles the head groups. `softmax=True` builds the twin used to measure
    what linear attention buys: same modules and parameter shapes, softmax(QᵀK/√d) per head instead of the ReLU kernel.
    """

    def __init__(
        self, in_channels: int, out_channels: int, dim: int, scales: tuple[int, ...] = (5,), softmax: bool = False
    ) -> None:
        super().__init__()
        self.dim = dim
        self.heads = in_channels // dim
        self.softmax = softmax
        self.eps = ATTENTION_EPS
        total_dim = self.heads * dim
        self.qkv = ConvLayer(in_channels, 3 * total_dim, 1, norm=False, act=None)
        self.aggreg = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(3 * total_dim, 3 * total_dim, s, padding=s // 2, groups=3 * total_dim, bias=False),
                nn.Conv2d(3 * total_dim, 3 * total_dim, 1, groups=3 * self.heads, bias=False),
            )
            for s in scales
        )
        self.kernel_func = nn.ReLU(inplace=False)
        self.proj = ConvLayer(total_dim * (1 + len(scales)), out_channels, 1, act=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        qkv = self.qkv(x)
        qkv = torch.cat([qkv] + [op(qkv) for op in self.aggreg], dim=1)
        height, width = qkv.shape[-2:]
        if self.softmax:
            out = self.softmax_att(qkv)
        elif height * width > self.dim:
            out = self.relu_linear_att(qkv)
        else:
            out = self.relu_quadratic_att(qkv)
        return self.proj(out.to(x.dtype))

    def _split_qkv(self, qkv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, groups*3*dim, H, W) -> q, k, v each (B, groups, dim, N), computed in fp32 for fp16/bf16 inputs."""
        batch, _, height, width = qkv.shape
        # fp16 overflows in the normaliser (official issue #110): the official code casts the attention to fp32.
        if qkv.dtype in (torch.float16, torch.bfloat16):
            qkv = qkv.float()
        qkv = torch.reshape(qkv, (batch, -1, 3 * self.dim, height * width))
        return qkv[:, :, : self.dim], qkv[:, :, self.dim : 2 * self.dim], qkv[:, :, 2 * self.dim :]

    def relu_linear_att(self, qkv: torch.Tensor) -> torch.Tensor:
        """O(N·d²): (v|1)·kᵀ then ·q; the ones row of v yields the normaliser in the same matmul chain."""
        batch, _, height, width = qkv.shape
        q, k, v = self._split_qkv(qkv)
        q, k = self.kernel_func(q), self.kernel_func(k)
        v = F.pad(v, (0, 0, 0, 1), mode="constant", value=1.0)
        out = torch.matmul(torch.matmul(v, k.transpose(-1, -2)), q)
        out = out[:, :, :-1] / (out[:, :, -1:] + self.eps)
        return torch.reshape(out, (batch, -1, height, width))

    def relu_quadratic_att(self, qkv: torch.Tensor) -> torch.Tensor:
        """O(N²·d): the N×N map kᵀq, normalised over keys; cheaper than the linear form when N ≤ dim."""
        batch, _, height, width = qkv.shape
        q, k, v = self._split_qkv(qkv)
        q, k = self.kernel_func(q), self.kernel_func(k)
        att_map = torch.matmul(k.transpose(-1, -2), q)
        att_map = att_map / (torch.sum(att_map, dim=2, keepdim=True) + self.eps)
        return torch.reshape(torch.matmul(v, att_map), (batch, -1, height, width))

    def softmax_att(self, qkv: torch.Tensor) -> torch.Tensor:
        """Softmax twin: per head group, softmax over keys of kᵀq/√d (scores[m, n] = k_m·q_n), then v·scores."""
        batch, _, height, width = qkv.shape
        q, k, v = self._split_qkv(qkv)
        scores = torch.matmul(k.transpose(-1, -2), q) * (self.dim**-0.5)
        att_map = torch.softmax(scores, dim=2)
        return torch.reshape(torch.matmul(v, att_map), (batch, -1, height, width))

    def attention_macs(self, height: int, width: int) -> int:
        """Multiply-accumulates of the attention matmuls (not the convs) at a feature map of height x width."""
        tokens, dim = height * width, self.dim
        groups = self.heads * (1 + len(self.aggreg))
        if self.softmax or tokens <= dim:
            per_group = 2 * tokens * tokens * dim  # kᵀq and v·map
        else:
            per_group = 2 * (dim + 1) * dim * tokens  # (v|1)·kᵀ and ·q
        return groups * per_group


class EfficientViTBlock(nn.Module):
    """Residual LiteMLA (context) followed by a residual fewer-norm MBConv (local)."""

    def __init__(
        self,
        channels: int,
        dim: int,
        expand_ratio: float,
        act: ActLayer,
        softmax: bool,
        kernel_size: int = 3,
        scales: tuple[int, ...] = (5,),
    ) -> None:
        super().__init__()
        attention = LiteMLA(channels, channels, dim, scales=scales, softmax=softmax)
        self.context_module = ResidualBlock(attention, shortcut=True)
        local = MBConv(channels, channels, 1, expand_ratio, act, fewer_norm=True, kernel_size=kernel_size)
        self.local_module = ResidualBlock(local, shortcut=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.local_module(self.context_module(x))


class OpSequential(nn.Module):
    """Official container: keys `op_list.{i}`."""

    def __init__(self, ops: list[nn.Module]) -> None:
        super().__init__()
        self.op_list = nn.ModuleList(ops)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for op in self.op_list:
            x = op(x)
        return x


# --------------------------------------------------------------------------------------------------------------------
# Backbone, head, classifier
# --------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EfficientViTConfig:
    """One variant. widths/depths: stem then stages 1-4; attention in the last two stages."""

    widths: tuple[int, int, int, int, int]
    depths: tuple[int, int, int, int, int]
    dim: int
    head_widths: tuple[int, int]
    expand_ratio: float = 4.0
    stage_kernel: int = 3
    # LayerNorm after the head's first linear (official B); the paper's MobileNetV3 head has none.
    head_norm: bool = True
    # multi-scale aggregation kernels of q/k/v (ICCV version: (5,)); the first paper version has none
    scales: tuple[int, ...] = (5,)
    # first paper version: every stride-2 stage block gets an avg-pool + 1x1 conv shortcut
    down_shortcut: bool = False


class EfficientViTBackbone(nn.Module):
    def __init__(self, cfg: EfficientViTConfig, softmax: bool = False, act: ActLayer = nn.Hardswish) -> None:
        super().__init__()
        stem_width = cfg.widths[0]
        stem: list[nn.Module] = [ConvLayer(3, stem_width, 3, stride=2, act=act)]
        stem += [ResidualBlock(DSConv(stem_width, stem_width, 1, act), shortcut=True) for _ in range(cfg.depths[0])]
        self.input_stem = OpSequential(stem)

        k = cfg.stage_kernel
        stages: list[nn.Module] = []
        in_ch = stem_width
        for width, depth in zip(cfg.widths[1:3], cfg.depths[1:3], strict=True):
            blocks: list[nn.Module] = []
            for i in range(depth):
                stride = 2 if i == 0 else 1
                block = MBConv(in_ch, width, stride, cfg.expand_ratio, act, kernel_size=k)
                blocks.append(_stage_block(block, in_ch, width, stride, cfg.down_shortcut))
                in_ch = width
            stages.append(OpSequential(blocks))
        for width, depth in zip(cfg.widths[3:], cfg.depths[3:], strict=True):
            down = MBConv(in_ch, width, 2, cfg.expand_ratio, act, fewer_norm=True, kernel_size=k)
            blocks = [_stage_block(down, in_ch, width, 2, cfg.down_shortcut)]
            blocks += [
                EfficientViTBlock(width, cfg.dim, cfg.expand_ratio, act, softmax, k, cfg.scales) for _ in range(depth)
            ]
            stages.append(OpSequential(blocks))
            in_ch = width
        self.stages = nn.ModuleList(stages)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.input_stem(x)
        for stage in self.stages:
            x = stage(x)
        return x

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every stage's output, official "stage0" (stem, stride 2) to "stage4" (stride 32): what a dense head reads."""
        outputs = [self.input_stem(x)]
        for stage in self.stages:
            outputs.append(stage(outputs[-1]))
        return outputs


def _stage_block(block: nn.Module, in_ch: int, out_ch: int, stride: int, down_shortcut: bool) -> nn.Module:
    """Identity residual at stride 1; at stride 2 no shortcut (official B) or the v1 paper's pooled one."""
    if stride == 1:
        return ResidualBlock(block, shortcut=True)
    return DownsampleShortcut(block, in_ch, out_ch) if down_shortcut else ResidualBlock(block, shortcut=False)


class ClsHead(nn.Module):
    """1x1 conv + BN + act -> global average pool -> linear (no bias) + LayerNorm + act -> linear classifier."""

    def __init__(self, in_channels: int, cfg: EfficientViTConfig, num_classes: int, act: ActLayer) -> None:
        super().__init__()
        w0, w1 = cfg.head_widths
        self.op_list = nn.ModuleList(
            [
                ConvLayer(in_channels, w0, 1, act=act),
                nn.AdaptiveAvgPool2d(1),
                LinearLayer(w0, w1, use_bias=not cfg.head_norm, norm=cfg.head_norm, act=act),
                LinearLayer(w1, num_classes, use_bias=True, norm=False, act=None),
            ]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for op in self.op_list:
            x = op(x)
        return x


class EfficientViTCls(nn.Module):
    """EfficientViT classifier: `backbone` then `head`, returning logits (the official model returns the same)."""

    MACS_COUNT_NORMS = True  # the official figures were counted with torchprofile, which counts BN/LN (see profile.py)

    def __init__(self, cfg: EfficientViTConfig, num_classes: int = 1000, softmax: bool = False) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone = EfficientViTBackbone(cfg, softmax=softmax)
        self.head = ClsHead(cfg.widths[-1], cfg, num_classes, nn.Hardswish)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


# --------------------------------------------------------------------------------------------------------------------
# Variants and builders
# --------------------------------------------------------------------------------------------------------------------

VARIANTS: dict[str, EfficientViTConfig] = {
    "efficientvit-b0": EfficientViTConfig((8, 16, 32, 64, 128), (1, 2, 2, 2, 2), dim=16, head_widths=(1024, 1280)),
    "efficientvit-b1": EfficientViTConfig((16, 32, 64, 128, 256), (1, 2, 3, 3, 4), dim=16, head_widths=(1536, 1600)),
    "efficientvit-b2": EfficientViTConfig((24, 48, 96, 192, 384), (1, 3, 4, 4, 6), dim=32, head_widths=(2304, 2560)),
    "efficientvit-b3": EfficientViTConfig((32, 64, 128, 256, 512), (1, 4, 6, 6, 9), dim=32, head_widths=(2304, 2560)),
    # The paper's first version (arXiv 2205.14756 v1), as its text describes it (the seed review's reading):
    # widths 16 (stem), 24, 48, 96, 192 and depths 2, 3, 5, 2 for stages 1-4, kernel 5 outside the stem, hard-swish
    # everywhere, expand ratio 4, attention from stage 3 on; the block is ReLU linear attention (head dim 16) plus an
    # FFN with a depthwise conv, with NO multi-scale 5x5 aggregation of q/k/v (that is the later ICCV version);
    # downsampling blocks carry an extra shortcut (average pooling + 1x1 conv); about 400M MACs at 224.
    # Choices the text leaves open, each written here:
    # - every stage is a stride-2 MBConv followed by `depth` blocks (MBConvs in stages 1-2, attention blocks in 3-4);
    #   this table counts the stride-2 block into the MBConv stages' depth (3 = 1 + 2, 4 = 1 + 3), so the four
    #   stages hold 2, 3, 5, 2 blocks after their stride-2 block;
    # - the stem is the 3x3 s2 conv plus one DSConv block, as in every later B model;
    # - the downsampling shortcut is AvgPool2d(2) then a 1x1 conv + BatchNorm (no activation), added to the stride-2
    #   MBConv's output, on all four stage entries (not the stem); attention stages use the fewer-norm MBConv there;
    # - the FFN is the official fewer-norm MBConv (1x1 expand 4 + bias, 5x5 depthwise + bias, 1x1 project + BN);
    # - with no aggregation branch the attention has `heads` head groups and proj reads C channels (not 2C);
    # - the head is MobileNetV3-Large's: 1x1 conv to 960 + hard-swish, pool, linear 960->1280 with bias + hard-swish
    #   (no LayerNorm), linear classifier.
    # Measured with effvit_deploy.models.profile at 224x224: 4.51M params, 0.355 GMACs (torchprofile convention, BN
    # counted; 0.350 without norms), 11% under the text's "about 400M" (counting the stride-2 block into every
    # stage's depth instead would give fewer still). tests/test_models.py pins these figures.
    "efficientvit-paper": EfficientViTConfig(
        (16, 24, 48, 96, 192),
        (1, 3, 4, 5, 2),
        dim=16,
        head_widths=(960, 1280),
        stage_kernel=5,
        head_norm=False,
        scales=(),
        down_shortcut=True,
    ),
    # What `efficientvit-paper` was before it followed the v1 text: the v1 widths/depths/kernel/head with the ICCV
    # version's blocks (multi-scale 5x5 aggregation, no downsampling shortcut). 4.71M params, 0.381 GMACs at 224.
    "efficientvit-paper-widths-iccv-blocks": EfficientViTConfig(
        (16, 24, 48, 96, 192), (1, 3, 4, 5, 2), dim=16, head_widths=(960, 1280), stage_kernel=5, head_norm=False
    ),
}


def _register(name: str, cfg: EfficientViTConfig, softmax: bool) -> None:
    def build(*, num_classes: int = 1000) -> nn.Module:
        return EfficientViTCls(cfg, num_classes=num_classes, softmax=softmax)

    build.__doc__ = f"{name}: {cfg}"
    register_model(name)(build)


for _name, _cfg in VARIANTS.items():
    _register(_name, _cfg, softmax=False)
for _name, _cfg in VARIANTS.items():
    _register(f"{_name}-softmax", _cfg, softmax=True)
