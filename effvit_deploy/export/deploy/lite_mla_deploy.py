"""Replaces each LiteMLA with `DeployLiteMLA`: the same function, with plumbing a mobile converter maps cleanly.

Why: converted as built, LiteMLA becomes per layer 1 CONCATENATION + 3 TRANSPOSE + 5 SLICE + 1 PADV2 around its two
BATCH_MATMULs in TFLite, and PADV2 (the ones row padded onto v for the normaliser) is not supported by XNNPACK, so every
LiteMLA splits the graph into another delegate partition (8 partitions for EfficientViT-B1). The rewrite, worked out by
converting candidates with litert-torch and counting ops (bench/inspect_tflite_graph.py):

- q, k, v come from three 1x1 convs instead of one conv with per-head interleaved channels [q k v | q k v | ...]; the
  multi-scale branch (depthwise 5x5, grouped 1x1 with groups = heads) is split the same way, weights gathered from
  the official tensors. No SLICE is left: each of q, k, v is one `cat([identity, scale branches])` in NHWC followed
  by the layout TRANSPOSE into head-major (groups, dim, tokens) that any per-head batched matmul needs.
- The normaliser comes without the ones row: ks = Σ_tokens k (a global-average-pool MEAN times N), den = ks·q
  (BATCH_MATMUL), out = num / (den + eps).
- Products are `torch.bmm` (not `matmul`, which adds an `expand_copy` per operand in torch.export that ExecuTorch's
  XNNPACK partitioner does not take), and transposed operands are written as `bmm(a, b.transpose(1, 2))`, which
  litert maps to BATCH_MATMUL adj_x/adj_y flags (XNNPACK delegates both): the attention core has no TRANSPOSE.
- Matmul order is fixed from the static token count N at this resolution: linear (v·kᵀ)·q, O(N·d²), when N > d, else
  quadratic v·(kᵀ·q), O(N²·d). The normaliser is ks·q either way, so the quadratic form divides the (d, N) result
  rather than the (N, N) map (the same numbers in exact arithmetic).
- The grouped 1x1 of v's multi-scale branch is folded into the proj conv (v enters the output linearly and the
  division is per token, so proj·(W_v v_dw ⋯)/den = (proj·W_v)·(v_dw ⋯)/den): one conv fewer, no extra MACs.
- Softmax twin: the 1/√d scale is folded into q's weights, scores are qᵀk (BATCH_MATMUL adj_x) so the softmax runs on
  the last axis (keys), and out = v·attᵀ (adj_y).
- ReLU is applied per branch, so on the scale branches it fuses into the grouped conv.
- fp16: in the original form (softmax twin, int8's joined core), when the module runs in half precision, q, k, v are
  cast to fp32 before the matmuls and the result back after the division (official issue #110: the normaliser
  overflows in fp16); the convs stay in the module's dtype. fp16 exports keep this: on XNNPACK's fp16 kernels
  (executorch fp16 .pte, aarch64 runner under qemu -cpu max) the fp16-safe form below run in fp16 gave inf with the
  2⁻²⁴ floor and cosine 0.9977 (< 0.999) with a 2⁻¹⁴ one, because those kernels flushed fp16 subnormals and the
  1/√N-scaled k, v of small activations live there (README "Numerics on ARM kernels").
- fp16-safe scaling (opt-in, `to_deploy_form(..., fp16_safe_attention=True)`, fp32 only; not used by export: its
  denominator floor is a MAXIMUM/Clip op, which the export census reserves as the sign of a decomposed hard-swish,
  and on the ARM fp16 kernels measured it did not help, see the fp16 bullet): k and v are multiplied by s = 1/√N through
  their projection weights and biases (ReLU and the depthwise/grouped branch convs commute with a positive scale),
  and the key sum is
  mean(k)·√N instead of mean(k)·N. Numerator and denominator both shrink by exactly 1/N, so the quotient is the same
  function: v·kᵀ becomes a mean over tokens (bounded by max|v|·max|k| whatever N) instead of a sum that grows with
  N and overflows fp16's 65504 when a runtime runs the graph in fp16 (XNNPACK's force-fp16 path converts the whole
  delegated graph; no fp32 island survives it). The denominator is max(ks·q, 2⁻²⁴) instead of ks·q + eps: the
  official eps 1e-15 is 0 in fp16, where a token whose q is all zero after the ReLU then gives 0/0 = NaN (seen in
  EfficientViT-B1 at 512 with the seeded weights); 2⁻²⁴, fp16's smallest subnormal, is never 0, and the maximum
  equals ks·q + eps/N wherever ks·q ≥ 2⁻²⁴ (to 1e-15), so fp32 parity is unchanged. A max replaces the add: no op is
  added, one delegate partition stays one. Numbers: bench/fp16_attention.py, README "fp16 linear attention".
- fp16 guard (TFLite fp16 exports, `to_deploy_form(..., fp16_guard=True)`): out = where(den > 0, num / den, 0)
  instead of num / (den + eps). XNNPACK's force-fp16 path (`--xnnpack_force_fp16`) converts the whole delegated graph
  to fp16, the casts of the fp32 core included, so eps = 1e-15 becomes 0 and a token whose q is all zero after the
  ReLU gives 0/0 = NaN, which then spreads to every logit (EfficientViT-B0 at 64 with the seeded weights: 1000 of
  1000 logits NaN on qemu -cpu max). GREATER and SELECT_V2 are not XNNPACK ops, so they run in the builtin fp32
  kernels, where a runtime cannot turn them into fp16: a NaN from 0/0 is discarded there. The function is unchanged
  (den = 0 exactly where q = 0, and then num = 0 and the official 0 / eps is 0; elsewhere den >> eps), so fp32
  parity holds. Price: each attention block splits the XNNPACK graph (B0: 5 partitions instead of 1), which is why
  only the fp16 .tflite (the artifact meant for fp16 arithmetic) has it. It does not protect the matmuls themselves
  from fp16 overflow (the sums over N tokens still run in fp16 in the delegate).
- int8 (`join_qkv`, set for precision int8): q, k, v are concatenated along the head-group axis after their layout
  transposes and split again inside the core (`head_split.split_heads`: one SPLIT / Split / delegated slices); the
  ReLU kernel and the key sum follow the split. The fp32 island of an int8 graph then has one entry (a dequantize of the
  joined tensor) and one exit instead of three-plus entries. fp32 exports skip the join: it is one concatenation
  and one split more per block, and made B1 at 512 2.4% slower on LiteRT fp32 (2 threads, interleaved).

What remains in TFLite per LiteMLA: one TRANSPOSE for each of q, k, v (NHWC -> head-major) and one for the output
(head-major -> NHWC before proj). They are the layout boundary between the conv world (NHWC) and per-head batched
matmuls (heads leading); avoiding them would need a dense (all heads at once, block-masked) matmul with `heads`
times the attention MACs.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from effvit_deploy.export.deploy._base import DeployContext, PassResult, empty_conv_like, set_submodule
from effvit_deploy.export.deploy._shapes import input_sizes
from effvit_deploy.export.deploy.fold_batch_norm import can_fold, fold_conv_bn
from effvit_deploy.export.deploy.head_split import split_heads
from effvit_deploy.models.efficientvit import ConvLayer, LiteMLA

ORDERS = ("linear", "quadratic", "softmax")
# Lower bound of the fp16-safe denominator: fp16's smallest subnormal (equal to den + eps wherever den >= 2^-24, so
# fp32 parity is unchanged). A kernel that flushes fp16 subnormals (XNNPACK's fp16 path on qemu -cpu max did) loses
# it: then 2^-14, fp16's smallest normal, is needed (`floor=`), which changes fp32 results (README).
FP16_SAFE_FLOOR = 2.0**-24
FP16_SAFE_FLOOR_NORMAL = 2.0**-14


def attention_order(tokens: int, dim: int, softmax: bool) -> str:
    """The official rule: linear (KᵀV first) when the token count exceeds the head dim, quadratic otherwise."""
    if softmax:
        return "softmax"
    return "linear" if tokens > dim else "quadratic"


def map_bytes(order: str, tokens: int, dim: int, groups: int) -> int:
    """fp32 bytes of the attention core's largest product for one image: the N×N map (softmax, quadratic) or the
    d×d key-value product (linear). The softmax twin at 1024x2048 needs GBs here; the manifest records it."""
    side = tokens if order != "linear" else dim
    return 4 * groups * side * side


class DeployLiteMLA(nn.Module):
    """LiteMLA in deploy form (see module docstring); build it with `from_lite_mla`."""

    def __init__(
        self,
        dim: int,
        heads: int,
        eps: float,
        order: str,
        projections: nn.ModuleList,
        branches: nn.ModuleList,
        proj: nn.Module,
        join_qkv: bool = False,
        split_style: str = "chunk",
        token_scale: float | None = None,
        fp32_core: bool = True,
        floor: float = FP16_SAFE_FLOOR,
        guard_division: bool = False,
    ) -> None:
        super().__init__()
        assert order in ORDERS, order
        self.dim, self.heads, self.eps, self.order = dim, heads, eps, order
        # fp16-safe form: the 1/√N_export folded into k's and v's weights (None: original scale). The key sum is then
        # mean(k)·N·token_scale with N the run-time token count, so the function is exact at any input size.
        self.token_scale = token_scale
        # Half-precision modules: cast q, k, v to fp32 for the core (the original form needs it); the fp16-safe form
        # runs it in the module's dtype, so an fp16 graph has no casts (ExecuTorch's XNNPACK takes no dtype
        # conversion: each cast would cut the delegated graph).
        self.fp32_core = fp32_core
        self.floor = floor
        # TFLite fp16: out = where(den > 0, num / den, 0) (module docstring, "fp16 guard")
        self.guard_division = guard_division
        self.join_qkv = join_qkv  # one tensor enters the attention core (int8: one dequantize), see module docstring
        self.split_style = split_style  # how the joined tensor is split: the op the target's converter delegates
        # projections[i] / branches[i] for i = q, k, v; branches[i] holds one module per multi-scale branch.
        self.projections = projections
        self.branches = branches
        self.proj = proj

    @property
    def groups(self) -> int:
        """Head groups per image: the identity heads plus one set per multi-scale branch."""
        return self.heads * (1 + len(self.branches[0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, _, height, width = x.shape
        kernel = self.order != "softmax"  # the ReLU kernel of linear attention; the softmax twin has none
        # joined: the kernel runs after the split, in the core (TFLite's XNNPACK takes a standalone RELU only in fp32)
        relu_maps = kernel and not self.join_qkv
        q = self._head_major(self._maps(x, 0, relu=relu_maps))
        k_maps = self._maps(x, 1, relu=relu_maps)
        k = self._head_major(k_maps)
        v = self._head_major(self._maps(x, 2, relu=False))
        if self.join_qkv:
            q, k, v = split_heads(torch.cat([q, k, v], dim=0), style=self.split_style)
            k_maps = None
            if kernel:
                q, k = F.relu(q), F.relu(k)
        if self.order == "softmax":
            att = torch.softmax(torch.bmm(q.transpose(1, 2), k), dim=-1)  # (G, N_q, N_k); 1/sqrt(d) folded into q
            out = torch.bmm(v, att.transpose(1, 2))
        else:
            out = self._relu_attention(q, k, v, self._key_sum(k_maps, k))
        return self.proj(out.to(x.dtype).reshape(batch, -1, height, width))

    def _relu_attention(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, k_sum: torch.Tensor) -> torch.Tensor:
        """(v·kᵀ·q) / (Σ_m k_m·q + eps) per head group, associated as `self.order` says."""
        den = torch.bmm(k_sum, q)  # (G, 1, N)
        if self.order == "linear":
            num = torch.bmm(torch.bmm(v, k.transpose(1, 2)), q)  # (d x d) first: O(N·d²)
        else:
            num = torch.bmm(v, torch.bmm(k.transpose(1, 2), q))  # (N x N) first: O(N²·d)
        if self.guard_division:  # den = 0 only where q = 0, and then num = 0: the official 0 / eps is 0
            return torch.where(den > 0, num / den, torch.zeros_like(num))
        # fp16-safe: max(den, floor) instead of den + eps: equal wherever den >= floor, and never 0 in fp16
        den = den + self.eps if self.token_scale is None else torch.clamp(den, min=self.floor)
        return num / den

    def _key_sum(self, k_maps: torch.Tensor | None, k: torch.Tensor) -> torch.Tensor:
        """Σ over tokens of k per head group, as (G, 1, dim) in fp32.

        A 4-D mean over the two innermost dims (a global average pool: one op in TFLite, ONNX and ExecuTorch's
        XNNPACK partitioner, which takes no `sum`) times N as a float, so no integer constant needs a cast. In fp32 it
        pools the NHWC maps before the layout transpose (one reshape fewer); in half precision it pools the fp32
        head-major k instead, because a runtime may accumulate an fp16 mean in fp16 and N values overflow it; with
        `join_qkv` (no maps given) it pools the head-major k from the split, inside the fp32 core.
        """
        tokens = k.shape[-1]
        if k_maps is not None and k_maps.dtype == torch.float32:
            pooled = k_maps.mean(dim=(2, 3), keepdim=True)
        else:
            pooled = k.reshape(k.shape[0], self.dim, tokens, 1).mean(dim=(2, 3), keepdim=True)
        multiplier = float(tokens) * (1.0 if self.token_scale is None else self.token_scale)
        return pooled.reshape(-1, 1, self.dim) * multiplier

    def _maps(self, x: torch.Tensor, which: int, relu: bool) -> torch.Tensor:
        """q, k or v of every head group as NCHW maps (B, groups*dim, H, W): the projection and its scale branches."""
        y = self.projections[which](x)
        parts = [y] + [branch(y) for branch in self.branches[which]]
        if relu:
            parts = [F.relu(part) for part in parts]
        return torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]

    def _head_major(self, maps: torch.Tensor) -> torch.Tensor:
        """(B, groups*dim, H, W) -> (B*groups, dim, H*W), in fp32 whatever the module's dtype."""
        t = maps.reshape(-1, self.dim, maps.shape[-2] * maps.shape[-1])
        return t if t.dtype == torch.float32 or not self.fp32_core else t.float()

    @classmethod
    def from_lite_mla(cls, m: LiteMLA, tokens: int, join_qkv: bool = False,
                      split_style: str = "chunk", fp16_safe: bool = False,
                      floor: float = FP16_SAFE_FLOOR, guard_division: bool = False) -> DeployLiteMLA | None:
        """The deploy form of `m` for a feature map of `tokens` positions, or None if `m` has an unexpected layout.

        `join_qkv`: q, k, v enter the attention core as one tensor (what int8 exports want, see module docstring),
        split again in `split_style` (`head_split`). `fp16_safe`: the 1/√N scaling of k and v and an eps that fp16
        represents (module docstring); ReLU attention only. `guard_division`: the TFLite fp16 guard (module
        docstring); ReLU attention in its original scale only.
        """
        if not _supported(m):
            return None
        dim, heads = m.dim, m.heads
        safe = fp16_safe and not m.softmax
        token_scale = tokens**-0.5 if safe else 1.0  # on k and on v: num and den shrink by exactly 1/N
        qkv = m.qkv.conv if m.qkv.norm is None else fold_conv_bn(m.qkv.conv, m.qkv.norm)
        scale = dim**-0.5 if m.softmax else 1.0
        # Official channel layout: head h owns 3*dim consecutive channels [q(dim) k(dim) v(dim)].
        layout = torch.arange(3 * heads * dim).reshape(heads, 3, dim)
        projections, branches = nn.ModuleList(), nn.ModuleList()
        for which in range(3):
            index = layout[:, which].reshape(-1)
            # The softmax scale on q's projection carries through the (linear) branch convs; only biases need it too.
            factor = scale if which == 0 else token_scale
            projections.append(_gather_conv(qkv, index, factor, factor))
            scale_branches = nn.ModuleList()
            for agg in m.aggreg:
                depthwise = _gather_conv(agg[0], index, 1.0, factor)
                if which == 2 and agg[1].bias is None:
                    scale_branches.append(depthwise)  # v's grouped 1x1 is folded into proj below
                else:
                    scale_branches.append(nn.Sequential(depthwise, _gather_conv(agg[1], index, 1.0, factor)))
            branches.append(scale_branches)
        proj = _fold_value_mixing(m, _proj_folded(m.proj))
        order = attention_order(tokens, dim, m.softmax)
        eps = m.eps / tokens if safe else m.eps  # (the fp16-safe form replaces it by the floor, see module docstring)
        return cls(dim, heads, eps, order, projections, branches, proj, join_qkv=join_qkv, split_style=split_style,
                   token_scale=token_scale if safe else None, fp32_core=not safe, floor=floor,
                   guard_division=guard_division and not safe and not m.softmax)


class LiteMLADeployPass:
    """Swap every LiteMLA for DeployLiteMLA, with the matmul order fixed for its token count at ctx.resolution."""

    name = "attention_deploy_form"

    def __call__(self, model: nn.Module, ctx: DeployContext) -> PassResult:
        targets = [(name, m) for name, m in model.named_modules() if type(m) is LiteMLA]
        if not targets:
            return PassResult(modified=False)
        sizes = input_sizes(model, ctx.resolution, LiteMLA)
        records = []
        for name, m in targets:
            if name not in sizes:
                continue  # not reached by forward (an unused module): nothing to specialise on
            height, width = sizes[name]
            # fp16-safe scaling only when asked, for fp32 graphs; fp16 (.half()) exports keep the original form with
            # its fp32 core, which measured better on ARM fp16 kernels (module docstring)
            safe = ctx.fp16_safe_attention and ctx.precision == "fp32"
            # ONNX Runtime: one qkv conv for the blocks small enough that its per-node cost beats the Split's copy
            joined = ctx.precision == "fp32" and not safe and height * width <= ctx.joined_qkv_max_tokens
            new = _joined(m, height * width) if joined else None
            new = new or DeployLiteMLA.from_lite_mla(m, tokens=height * width, join_qkv=ctx.precision == "int8",
                                                     split_style=ctx.split, fp16_safe=safe,
                                                     guard_division=ctx.fp16_guard)
            if new is None:
                continue
            set_submodule(model, name, new.train(m.training))
            records.append(
                {"module": name, "tokens": height * width, "dim": m.dim, "order": new.order, "groups": new.groups,
                 "joined_qkv": getattr(new, "join_qkv", True),
                 "fp16_safe": getattr(new, "token_scale", None) is not None,
                 "fp16_guard": getattr(new, "guard_division", False),
                 "qkv_convs": "separate" if isinstance(new, DeployLiteMLA) else "joined",
                 "map_bytes": map_bytes(new.order, height * width, m.dim, new.groups)}
            )
        return PassResult(modified=bool(records), records=records)


def _joined(m: LiteMLA, tokens: int) -> nn.Module | None:
    """ONNX Runtime's form (`lite_mla_joined`); imported here so that module may import this one's helpers."""
    from effvit_deploy.export.deploy.lite_mla_joined import JoinedLiteMLA

    return JoinedLiteMLA.from_lite_mla(m, tokens) if _supported(m) else None


def _supported(m: LiteMLA) -> bool:
    """The layout the rewrite assumes: bare 1x1 qkv conv, ReLU kernel, aggreg = (depthwise, grouped 1x1) per scale."""
    total = m.heads * m.dim
    qkv_ok = (
        m.qkv.act is None
        and (m.qkv.norm is None or can_fold(m.qkv.conv, m.qkv.norm))
        and m.qkv.conv.out_channels == 3 * total
        and m.qkv.conv.groups == 1
    )
    kernel_ok = m.softmax or type(m.kernel_func) is nn.ReLU
    aggreg_ok = all(
        len(agg) == 2
        and type(agg[0]) is nn.Conv2d
        and type(agg[1]) is nn.Conv2d
        and agg[0].groups == agg[0].in_channels == agg[0].out_channels == 3 * total
        and agg[1].groups == 3 * m.heads
        and agg[1].in_channels == agg[1].out_channels == 3 * total
        and agg[1].kernel_size == (1, 1)
        for agg in m.aggreg
    )
    proj_ok = type(m.proj.conv) is nn.Conv2d and m.proj.conv.groups == 1
    return qkv_ok and kernel_ok and aggreg_ok and proj_ok


@torch.no_grad()
def _gather_conv(conv: nn.Conv2d, index: torch.Tensor, weight_scale: float, bias_scale: float) -> nn.Conv2d:
    """The conv computing output channels `index` of `conv`, weight and bias multiplied by the given scales.

    Dense convs keep all inputs; depthwise convs take the matching inputs; a grouped conv keeps the groups the
    selected outputs belong to (the index must select whole groups, in order within each group).
    """
    out_channels = len(index)
    if conv.groups == 1:
        in_channels, groups = conv.in_channels, 1
    else:
        group_out = conv.out_channels // conv.groups
        groups = out_channels // group_out
        in_channels = groups * (conv.in_channels // conv.groups)
    new = empty_conv_like(
        conv, in_channels=in_channels, out_channels=out_channels, groups=groups, bias=conv.bias is not None
    )
    new.weight.copy_(conv.weight[index] * weight_scale)
    if conv.bias is not None:
        new.bias.copy_(conv.bias[index] * bias_scale)
    return new


def _proj_folded(layer: ConvLayer) -> ConvLayer:
    """A copy of proj with its BatchNorm folded (if any), so its weight can be rewritten without touching `layer`."""
    new = copy.deepcopy(layer)
    if new.norm is not None and can_fold(new.conv, new.norm):
        new.conv, new.norm = fold_conv_bn(new.conv, new.norm), None
    return new


@torch.no_grad()
def _fold_value_mixing(m: LiteMLA, proj: ConvLayer) -> ConvLayer:
    """Fold v's grouped 1x1 of every scale branch into the proj columns that read that branch's heads.

    For head g of branch s: proj_g · (W_g v_dw ⋯) / den = (proj_g · W_g) · (v_dw ⋯) / den, since v enters the
    attention output linearly and the division is per token. Skipped (the grouped conv stays) when it has a bias.
    """
    dim, heads = m.dim, m.heads
    total = heads * dim
    v_index = torch.arange(3 * total).reshape(heads, 3, dim)[:, 2].reshape(-1)
    weight = proj.conv.weight.double()  # (C_out, (1 + scales) * total, kh, kw)
    for s, agg in enumerate(m.aggreg, start=1):
        if agg[1].bias is not None:
            continue
        mixing = agg[1].weight[v_index, :, 0, 0].double().reshape(heads, dim, dim)  # [g, out i, in j]
        cols = weight[:, s * total : (s + 1) * total]
        cols = cols.reshape(cols.shape[0], heads, dim, *cols.shape[2:])
        folded = torch.einsum("ogi...,gij->ogj...", cols, mixing)
        weight[:, s * total : (s + 1) * total] = folded.reshape(weight.shape[0], total, *weight.shape[2:])
    proj.conv.weight.copy_(weight.to(proj.conv.weight.dtype))
    return proj
