"""Rewrites LayerNorm (over the last dim) into mean / sub / mul / rsqrt / add that every mobile runtime delegates.

Why: ExecuTorch 1.4.1's XNNPACK partitioner has no LayerNorm config, so EfficientViT's head LayerNorm stays a
portable kernel between two XNNPACK partitions. Written as ops the partitioner takes, the graph is one delegate.
TFLite is unaffected (litert-torch decomposes LayerNorm into the same kind of ops itself); ONNX trades one
LayerNormalization node for a handful of element-wise nodes on a single feature vector (negligible).

The means are 4-D means over the two innermost dims (`x.reshape(-1, 1, C, 1).mean((2, 3), keepdim=True)`), the one
form of mean ExecuTorch's XNNPACK partitioner accepts (global average pooling). In half precision the statistics are
computed in fp32, as PyTorch's own LayerNorm kernel does (fp16 variance overflows, official issue #142).
"""

from __future__ import annotations

import torch
from torch import nn

from effvit_deploy.export.deploy._base import DeployContext, PassResult, set_submodule


class DecomposedLayerNorm(nn.Module):
    """`nn.LayerNorm(C)` on (..., C) as explicit ops; same parameters, same numbers up to rounding."""

    def __init__(self, ln: nn.LayerNorm) -> None:
        super().__init__()
        (self.features,) = ln.normalized_shape
        self.eps = ln.eps
        self.weight = ln.weight
        self.bias = ln.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        h = x.reshape(-1, 1, self.features, 1)
        if h.dtype != torch.float32:
            h = h.float()
        centered = h - h.mean(dim=(2, 3), keepdim=True)
        var = (centered * centered).mean(dim=(2, 3), keepdim=True)
        y = (centered * torch.rsqrt(var + self.eps)).to(x.dtype).reshape(shape)
        if self.weight is not None:
            y = y * self.weight
        if self.bias is not None:
            y = y + self.bias
        return y


class DecomposeLayerNormPass:
    """Replace every nn.LayerNorm over one trailing dim by DecomposedLayerNorm."""

    name = "decompose_layer_norm"

    def __call__(self, model: nn.Module, ctx: DeployContext) -> PassResult:
        records = []
        for name, module in list(model.named_modules()):
            if type(module) is nn.LayerNorm and len(module.normalized_shape) == 1 and name:
                set_submodule(model, name, DecomposedLayerNorm(module))
                records.append({"module": name})
        return PassResult(modified=bool(records), records=records)
