"""ExecuTorch int8: XNNPACKQuantizer (PT2E) -> prepare / calibrate / convert -> XNNPACK lowering -> .pte.

The converted GraphModule from `pt2e.fake_quantize` is exported again and lowered with `XnnpackPartitioner` through
`to_edge_transform_and_lower` (the flow that keeps hard-swish whole). What runs in int8 is decided by the quantizer's
annotations, so the census is taken on that GraphModule (`census` below): quantize/dequantize nodes are explicit
there, and the XNNPACK partitioner turns each into a convert op inside the delegate.

What ExecuTorch 1.4.1's XNNPACK partitioner accepts in int8 (STATIC_QUANT configs): conv, linear, add, mul, cat,
mean/avg-pool, ReLU/clamp, reshape/permute/slice. It takes batched matmul (bmm), division and hard-swish only in fp32,
so the attention core and every hard-swish run in fp32 inside the delegate, between a dequantize and a quantize;
`--int8-attention int8` cannot be honoured here (see `ExecutorchTarget.int8_attention`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import torch

from effvit_deploy.export.quantize.census import NeighbourOps, boundary_kind, summary
from effvit_deploy.export.quantize.pt2e import FakeQuant
from effvit_deploy.export.targets.executorch.lowering import lower

NEIGHBOURS = NeighbourOps(hardswish=frozenset({"hardswish"}),
                          norm=frozenset({"mean", "rsqrt", "sub", "layer_norm", "var_mean"}))


def write_pte(fq: FakeQuant, example: torch.Tensor, out_path: Path) -> dict:
    """Lower the converted (fake-quant) graph to XNNPACK and write the .pte. Returns {"lowered_ops": {...}}."""
    with torch.no_grad():
        exported = torch.export.export(fq.quant, (example,), strict=False)
    buffer, lowered = lower(exported)
    Path(out_path).write_bytes(buffer)
    return {"lowered_ops": dict(sorted(lowered.items()))}


_ET_COMPUTE = ("conv2d", "convolution", "linear", "addmm", "mm", "bmm", "matmul")
# Ops ExecuTorch 1.4.1's XNNPACK partitioner lowers in int8 (its STATIC_QUANT configs); anything else between a
# dequantize and a quantize (hardswish, bmm, div, sum, layer_norm) computes in fp32.
ET_INT8_KERNELS = {"conv2d", "convolution", "linear", "addmm", "mm", "add", "sub", "mul", "cat", "relu", "hardtanh",
                   "clamp", "max_pool2d", "mean", "adaptive_avg_pool2d", "reshape", "view", "view_copy", "flatten",
                   "permute", "permute_copy", "transpose", "slice", "slice_copy", "unsqueeze", "squeeze"}
# Activations XNNPACK fuses into the preceding conv/linear (the quantize sits after them).
_ET_FUSED_ACTS = {"relu", "hardtanh", "clamp"}
# Graph bookkeeping, not computation.
_ET_IGNORE = {"getitem", "_assert_tensor_metadata", "to", "alias", "detach", "clone"}


def _fx_op(node) -> str:
    target = node.target
    name = getattr(target, "__name__", None) or str(target)
    name = str(getattr(target, "_op", None) and target._op.__name__ or name)
    return name.split(".")[0]


def census(graph_module, island_nodes: Sequence[Sequence[str]] = ()) -> dict:
    """Int8 census of a PT2E-converted GraphModule (q/dq nodes explicit; what ExecuTorch lowers to XNNPACK): same
    rules as the ONNX census. Placeholders are the user inputs; weights are get_attr nodes."""
    nodes = [n for n in graph_module.graph.nodes if n.op == "call_function"]
    is_q = {n.name: _fx_op(n).startswith("quantize_per") for n in nodes}
    is_dq = {n.name: _fx_op(n).startswith("dequantize_per") for n in nodes}
    island_of = {name: k for k, isl in enumerate(island_nodes) for name in isl}
    index = {n.name: i for i, n in enumerate(nodes)}
    constant: dict[str, bool] = {}

    def user_input(arg) -> bool:
        return getattr(arg, "op", None) == "placeholder"

    def weight_path(arg) -> bool:
        """True for parameters/buffers and anything computed from them alone (e.g. a weight's q -> dq chain)."""
        if getattr(arg, "op", None) == "get_attr":
            return True
        if getattr(arg, "op", None) != "call_function":
            return False
        if arg.name not in constant:
            inputs = arg.all_input_nodes
            constant[arg.name] = bool(inputs) and all(weight_path(a) for a in inputs)
        return constant[arg.name]

    fused = {  # an activation right after a conv/linear that is its only user: one XNNPACK op with it
        n.name
        for n in nodes
        if _fx_op(n) in _ET_FUSED_ACTS
        and n.all_input_nodes
        and _fx_op(n.all_input_nodes[0]) in _ET_COMPUTE
        and len(n.all_input_nodes[0].users) == 1
    }
    int_ops: Counter = Counter()
    float_ops: Counter = Counter()
    fp32 = set()
    for n in nodes:
        if is_q[n.name] or is_dq[n.name] or _fx_op(n) in _ET_IGNORE or weight_path(n) or n.name in fused:
            continue
        acts = [a for a in n.all_input_nodes if not weight_path(a)]
        ins_q = bool(acts) and all(is_dq.get(a.name, False) for a in acts)
        outs_q = bool(n.users) and all(
            is_q.get(u.name, False)
            or (_fx_op(u) in _ET_FUSED_ACTS and u.users and all(is_q.get(v.name, False) for v in u.users))
            for u in n.users
        )
        if ins_q and outs_q and _fx_op(n) in ET_INT8_KERNELS:
            int_ops[_fx_op(n)] += 1
        else:
            float_ops[_fx_op(n)] += 1
            fp32.add(n.name)
    boundaries = []
    for n in nodes:
        if is_dq[n.name]:
            src = n.args[0]
            if weight_path(src):
                continue
            float_users = [u for u in n.users if u.name in fp32 or u.op == "output"]
            if not float_users:
                continue
            where = "output" if any(u.op == "output" for u in float_users) else None
            neighbours = [u.name for u in float_users]
            before = [_fx_op(src.args[0])] if src.all_input_nodes and src.args[0].op == "call_function" else []
            after = [_fx_op(u) if u.op == "call_function" else "<output>" for u in float_users]
        elif is_q[n.name]:
            src = n.args[0]
            if getattr(src, "op", None) == "call_function" and src.name not in fp32:
                continue
            where = "input" if user_input(src) else None
            neighbours = [src.name]
            before = [_fx_op(src) if src.op == "call_function" else "<input>"]
            after = [_fx_op(u) for u in n.users]
        else:
            continue
        if where is None:
            hit = next((island_of[m] for m in neighbours if m in island_of), None)
            where = f"attention {hit}" if hit is not None else boundary_kind(before + after, NEIGHBOURS)
        boundaries.append({"index": index[n.name], "op": "DEQUANTIZE" if is_dq[n.name] else "QUANTIZE",
                           "after": before, "before": after, "where": where})
    compute = [n for n in nodes if _fx_op(n) in _ET_COMPUTE]
    float_compute = [f"{_fx_op(n)}#{index[n.name]}" for n in compute if n.name in fp32]
    return summary(int_ops, float_ops, boundaries, float_compute, len(compute))
