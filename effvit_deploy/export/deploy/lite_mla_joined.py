"""LiteMLA for ONNX Runtime: q, k, v from ONE conv (and one conv per scale branch), split once, no pad, no transpose.

Why a second deploy form: `DeployLiteMLA` computes q, k and v with three convs each (projection, depthwise, grouped)
because that keeps TFLite's and ExecuTorch's XNNPACK graph in one partition. ONNX Runtime has no delegate to keep
whole, but it pays per node: at B0 224 the three-conv form runs 169 nodes after ORT's fusions against the plain
export's 116. This form keeps the official single qkv conv and single depthwise + grouped conv per scale branch, with
the output channels permuted from per-head [q k v | q k v | ...] to [q (all heads) | k | v], so one Reshape makes
q|k|v an axis of its own, one Split separates them, and the core runs on the 6-D pieces (ONNX MatMul batches over
leading axes: no per-tensor Reshape). Against the plain graph it drops the head-major Transpose, the Slices, the Pad of
v's ones row (the normaliser is the key sum, a ReduceMean, as in `DeployLiteMLA`) and the slices around the division;
B0 224: 125 nodes after ORT's fusions (plain 116, three convs 169).

Which blocks: the Split copies the whole q|k|v tensor, which the three-conv form never materialises. On large maps that
copy costs more than the nodes saved (B1 1024, 1-thread CPU ms, `bench/onnx_attention_forms.py`: as built 286.5,
three convs 273.0, joined everywhere 290.3), on small maps the nodes dominate. The ONNX target joins the blocks of at
most `OnnxTarget.joined_qkv_max_tokens` (256) tokens; the numbers are in the README ("Against the peers").

ReLU attention in fp32 only: the softmax twin and the int8 / fp16 forms stay `DeployLiteMLA` (the pass picks). Same
function as LiteMLA up to float rounding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from effvit_deploy.export.deploy.fold_batch_norm import fold_conv_bn
from effvit_deploy.export.deploy.lite_mla_deploy import _gather_conv, _proj_folded, attention_order
from effvit_deploy.models.efficientvit import LiteMLA


class JoinedLiteMLA(nn.Module):
    """LiteMLA with q|k|v-major channels; build it with `from_lite_mla`."""

    def __init__(self, dim: int, heads: int, eps: float, order: str, qkv: nn.Conv2d, aggreg: nn.ModuleList,
                 proj: nn.Module) -> None:
        super().__init__()
        assert order in ("linear", "quadratic"), order
        self.dim, self.heads, self.eps, self.order = dim, heads, eps, order
        self.qkv, self.aggreg, self.proj = qkv, aggreg, proj

    @property
    def groups(self) -> int:
        return self.heads * (1 + len(self.aggreg))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, _, height, width = x.shape
        tokens = height * width
        y = self.qkv(x)
        joined = torch.cat([y] + [branch(y) for branch in self.aggreg], dim=1) if len(self.aggreg) else y
        # (B, scales, q|k|v, heads, dim, N): the channel order makes this one Reshape, and q, k, v one Split; the core
        # runs on these 6-D tensors (ONNX MatMul batches over leading axes), so no per-tensor Reshape is needed
        joined = joined.reshape(batch, 1 + len(self.aggreg), 3, self.heads, self.dim, tokens)
        q, k, v = torch.chunk(joined, 3, dim=2)
        q, k = F.relu(q), F.relu(k)
        k_sum = k.mean(dim=-1, keepdim=True) * float(tokens)  # (..., dim, 1)
        den = torch.matmul(k_sum.transpose(-1, -2), q) + self.eps  # (..., 1, N); ORT fuses the transpose (transA)
        if self.order == "linear":
            num = torch.matmul(torch.matmul(v, k.transpose(-1, -2)), q)  # (d x d) first: O(N·d²)
        else:
            num = torch.matmul(v, torch.matmul(k.transpose(-1, -2), q))  # (N x N) first: O(N²·d)
        return self.proj((num / den).reshape(batch, -1, height, width))

    @classmethod
    def from_lite_mla(cls, m: LiteMLA, tokens: int) -> JoinedLiteMLA | None:
        """The joined form of `m` at `tokens` positions, or None (softmax twin; the caller keeps another form)."""
        if m.softmax:
            return None
        dim, heads = m.dim, m.heads
        # official channel c = h*3*dim + which*dim + d  ->  new position which*heads*dim + h*dim + d
        order = torch.arange(3 * heads * dim).reshape(heads, 3, dim).transpose(0, 1).reshape(-1)
        qkv = m.qkv.conv if m.qkv.norm is None else fold_conv_bn(m.qkv.conv, m.qkv.norm)
        aggreg = nn.ModuleList(
            nn.Sequential(_gather_conv(agg[0], order, 1.0, 1.0), _gather_conv(agg[1], order, 1.0, 1.0))
            for agg in m.aggreg
        )
        return cls(dim, heads, m.eps, attention_order(tokens, dim, False), _gather_conv(qkv, order, 1.0, 1.0),
                   aggreg, _proj_folded(m.proj))
