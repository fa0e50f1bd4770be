"""Int8 op census of an artifact: which ops compute in int8, and where the graph still crosses int8 <-> fp32.

A *boundary* is a place where a tensor changes domain: a QUANTIZE (float -> int8) or DEQUANTIZE (int8 -> float) in
TFLite, a QuantizeLinear / DequantizeLinear pair around an op that has no int8 kernel in ONNX (or the graph input /
output), a quantize / dequantize node next to an fp32 op in the ExecuTorch edge graph. Each boundary is listed with
its position and its neighbours' op types, and classified as "input", "output", "attention k" (entering or leaving
attention island k), "hardswish" (around a hard-swish, which every runtime here computes in fp32), "norm" (around a
LayerNorm / mean the runtime has no int8 kernel for) or "other".
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from .islands import GraphNode

INT_TYPES = {"INT8", "UINT8", "INT16"}
TFLITE_COMPUTE_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


# ---------------------------------------------------------------------------------------------------------------------
# TFLite
# ---------------------------------------------------------------------------------------------------------------------


def tflite_graph(flatbuffer: bytes) -> list[GraphNode]:
    """Operators of subgraph 0 as GraphNodes; `extra` holds in/out dtypes, all input tensors and graph I/O flags."""
    from ai_edge_litert import schema_py_generated as schema

    op_names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    type_names = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    model = schema.Model.GetRootAs(flatbuffer, 0)
    graph = model.Subgraphs(0)

    def is_const(t: int) -> bool:
        buffer = model.Buffers(graph.Tensors(t).Buffer())
        return buffer is not None and (buffer.DataLength() > 0 or buffer.Size() > 0)

    def tensor_name(t: int) -> str:
        return graph.Tensors(t).Name().decode(errors="replace")

    graph_inputs = {graph.Inputs(i) for i in range(graph.InputsLength())}
    graph_outputs = {graph.Outputs(i) for i in range(graph.OutputsLength())}
    nodes = []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        name = op_names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "CUSTOM")
        ins = [op.Inputs(j) for j in range(op.InputsLength()) if op.Inputs(j) >= 0]
        outs = [op.Outputs(j) for j in range(op.OutputsLength())]
        act_ins = [t for t in ins if not is_const(t)]
        nodes.append(
            GraphNode(
                index=i,
                op=name,
                inputs=[str(t) for t in act_ins],
                outputs=[str(t) for t in outs],
                name=";".join(tensor_name(t) for t in outs),
                extra={
                    "in_types": [type_names[graph.Tensors(t).Type()] for t in act_ins],
                    "all_in_types": [type_names[graph.Tensors(t).Type()] for t in ins],
                    "out_types": [type_names[graph.Tensors(t).Type()] for t in outs],
                    "out_names": [tensor_name(t) for t in outs],
                    "graph_input": any(t in graph_inputs for t in act_ins),
                    "graph_output": any(t in graph_outputs for t in outs),
                },
            )
        )
    return nodes


def tflite_census(path: Path, islands: Sequence[Sequence[int]] = ()) -> dict:
    """Int8 census of a .tflite: ops per domain, conv/FC check, QUANTIZE/DEQUANTIZE boundaries and where they are.

    `islands` (op indices of fp32 attention islands, in the int8 graph) lets boundaries be classified as "attention".
    """
    nodes = tflite_graph(Path(path).read_bytes())
    if not islands:
        from .islands import TFLITE_OPS, find_islands

        islands = [[n.index for n in isl] for isl in find_islands(nodes, TFLITE_OPS)]
    producer = {t: n for n in nodes for t in n.outputs}
    consumers: dict[str, list[GraphNode]] = {}
    for n in nodes:
        for t in n.inputs:
            consumers.setdefault(t, []).append(n)
    island_of = {i: k for k, isl in enumerate(islands) for i in isl}

    int_ops: Counter = Counter()
    float_ops: Counter = Counter()
    boundaries = []
    requantize = 0
    for n in nodes:
        ins, outs = n.extra["in_types"], n.extra["out_types"]
        if n.op in ("QUANTIZE", "DEQUANTIZE"):
            if ins and ins[0] in INT_TYPES and outs[0] in INT_TYPES:
                requantize += 1
                continue
            before = [producer[t].op for t in n.inputs if t in producer]
            after = [c.op for t in n.outputs for c in consumers.get(t, [])]
            neighbours = [producer[t].index for t in n.inputs if t in producer]
            neighbours += [c.index for t in n.outputs for c in consumers.get(t, [])]
            if n.extra["graph_input"]:
                where = "input"
            elif n.extra["graph_output"]:
                where = "output"
            elif any(i in island_of for i in neighbours):
                where = f"attention {island_of[next(i for i in neighbours if i in island_of)]}"
            else:
                where = _kind(before + after)
            boundaries.append({"index": n.index, "op": n.op, "after": before, "before": after, "where": where})
            continue
        domain = outs[0] if outs else (ins[0] if ins else "FLOAT32")
        (int_ops if domain in INT_TYPES else float_ops)[n.op] += 1
    compute = [n for n in nodes if n.op in TFLITE_COMPUTE_OPS]
    float_compute = [
        f"{n.op}#{n.index}"
        for n in compute
        if not all(t in INT_TYPES for t in n.extra["all_in_types"][:2]) or n.extra["out_types"][0] not in INT_TYPES
    ]
    return _summary(int_ops, float_ops, boundaries, float_compute, len(compute), requantize=requantize)


# ---------------------------------------------------------------------------------------------------------------------
# ONNX (QDQ)
# ---------------------------------------------------------------------------------------------------------------------

ONNX_COMPUTE_OPS = ("Conv", "Gemm", "MatMul")
# Op types ONNX Runtime's CPU EP runs in int8 when wrapped in DQ -> op -> Q (its QDQ fusions to QLinear*/QGemm, or
# pure data movement). Others (HardSwish, LayerNormalization, ReduceMean, Div, ...) compute in fp32 between the DQ
# and the Q even when the quantizer wrapped them, so their Q/DQ are boundaries.
ONNX_INT8_KERNELS = {"Conv", "MatMul", "Gemm", "Add", "Mul", "Concat", "AveragePool", "GlobalAveragePool", "MaxPool",
                     "LeakyRelu", "Sigmoid", "Softmax", "Where", "Resize", "Reshape", "Transpose", "Squeeze",
                     "Unsqueeze", "Flatten", "Slice", "Split", "Gather", "Pad", "Relu", "Clip", "ArgMax"}
_QDQ = ("QuantizeLinear", "DequantizeLinear")
# Ops that merely move int8 data: a Q/DQ pair around them does not make them fp32.
_ONNX_SHAPE_OPS = {"Reshape", "Transpose", "Squeeze", "Unsqueeze", "Flatten", "Slice", "Split", "Gather", "Pad",
                   "Concat", "MaxPool", "Relu", "Clip"}


def onnx_census(path: Path, island_nodes: Sequence[Sequence[str]] = ()) -> dict:
    """Int8 census of a QDQ .onnx: an op counts as int8 when all its activation inputs come from DequantizeLinear
    and all its outputs go to QuantizeLinear (what ONNX Runtime fuses into an int8 kernel); a boundary is a DQ that
    feeds an fp32 op or a Q fed by one (the graph input's Q and the output's DQ included)."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    graph = proto.graph
    initializers = {i.name for i in graph.initializer}
    graph_inputs = {i.name for i in graph.input}
    graph_outputs = {o.name for o in graph.output}
    producer = {o: n for n in graph.node for o in n.output}
    consumers: dict[str, list] = {}
    for n in graph.node:
        for t in n.input:
            consumers.setdefault(t, []).append(n)
    island_of = {name: k for k, isl in enumerate(island_nodes) for name in isl}
    index = {n.name: i for i, n in enumerate(graph.node)}

    def is_weight_path(tensor: str) -> bool:
        node = producer.get(tensor)
        return tensor in initializers or (node is not None and all(t in initializers for t in node.input if t))

    int_ops: Counter = Counter()
    float_ops: Counter = Counter()
    fp32_nodes = set()
    for n in graph.node:
        if n.op_type in _QDQ or n.op_type == "Constant":
            continue
        acts = [t for t in n.input if t and not is_weight_path(t)]
        ins_q = all(producer.get(t) is not None and producer[t].op_type == "DequantizeLinear" for t in acts)
        outs_q = all(any(c.op_type == "QuantizeLinear" for c in consumers.get(o, [])) for o in n.output)
        if acts and ins_q and outs_q and n.op_type in ONNX_INT8_KERNELS:
            int_ops[n.op_type] += 1
        else:
            float_ops[n.op_type] += 1
            fp32_nodes.add(n.name)

    boundaries = []
    for i, n in enumerate(graph.node):
        if n.op_type not in _QDQ or is_weight_path(n.input[0]):
            continue
        if n.op_type == "DequantizeLinear":
            users = consumers.get(n.output[0], [])
            float_users = [u for u in users if u.name in fp32_nodes]
            if not float_users and n.output[0] not in graph_outputs:
                continue
            src = producer.get(n.input[0])
            if src is not None and src.op_type == "QuantizeLinear":
                src = producer.get(src.input[0])
            before = [src.op_type] if src is not None else ["<input>"]
            neighbours = [u.name for u in float_users]
            after = [u.op_type for u in float_users] or ["<output>"]
            where = "output" if n.output[0] in graph_outputs or any(
                o in graph_outputs for u in float_users for o in u.output) else None
        else:
            src = producer.get(n.input[0])
            if src is not None and src.name not in fp32_nodes:
                continue
            neighbours = [src.name] if src is not None else []
            before = [src.op_type] if src is not None else ["<input>"]
            after = [u.op_type for u in consumers.get(n.output[0], [])]
            where = "input" if n.input[0] in graph_inputs else None
        if where is None:
            hit = _island_near(neighbours, island_of, _onnx_hops(producer, consumers))
            where = f"attention {hit}" if hit is not None else _kind(before + after)
        boundaries.append({"index": i, "op": n.op_type, "after": before, "before": after, "where": where})
    compute = [n for n in graph.node if n.op_type in ONNX_COMPUTE_OPS]
    float_compute = [f"{n.op_type}#{index[n.name]}" for n in compute if n.name in fp32_nodes]
    return _summary(int_ops, float_ops, boundaries, float_compute, len(compute))


def _onnx_hops(producer: dict, consumers: dict):
    """Neighbours of a node across data-movement ops (so a Q after an island's trailing Reshape counts as its exit)."""
    by_name = {n.name: n for n in producer.values()} | {n.name: n for ns in consumers.values() for n in ns}

    def hops(name: str) -> list[str]:
        node = by_name.get(name)
        if node is None or node.op_type not in _ONNX_SHAPE_OPS | set(_QDQ):
            return []
        near = [producer[t].name for t in node.input if t in producer]
        return near + [c.name for o in node.output for c in consumers.get(o, [])]

    return hops


def _island_near(start: list[str], island_of: dict[str, int], hops, depth: int = 3) -> int | None:
    """The island a node list touches directly or through at most `depth` data-movement hops."""
    frontier, seen = list(start), set(start)
    for _ in range(depth + 1):
        hit = next((island_of[m] for m in frontier if m in island_of), None)
        if hit is not None:
            return hit
        nxt = [m for f in frontier for m in hops(f) if m not in seen]
        seen.update(nxt)
        frontier = nxt
    return None


# ---------------------------------------------------------------------------------------------------------------------
# ExecuTorch (edge graph before lowering)
# ---------------------------------------------------------------------------------------------------------------------

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
_ET_SHAPE_OPS = {"view_copy", "permute_copy", "slice_copy", "clone", "_to_copy", "expand_copy", "unsqueeze_copy",
                 "squeeze_copy", "cat", "relu", "constant_pad_nd", "max_pool2d", "alias_copy", "_clone_dim_order",
                 "_to_dim_order_copy"}


def _fx_op(node) -> str:
    target = node.target
    name = getattr(target, "__name__", None) or str(target)
    name = str(getattr(target, "_op", None) and target._op.__name__ or name)
    return name.split(".")[0]


def edge_census(graph_module, island_nodes: Sequence[Sequence[str]] = ()) -> dict:
    """Int8 census of a PT2E-converted GraphModule (q/dq nodes explicit; what ExecuTorch lowers to XNNPACK): same
    rules as `onnx_census`. Placeholders are the user inputs; weights are get_attr nodes."""
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
            where = f"attention {hit}" if hit is not None else _kind(before + after)
        boundaries.append({"index": index[n.name], "op": "DEQUANTIZE" if is_dq[n.name] else "QUANTIZE",
                           "after": before, "before": after, "where": where})
    compute = [n for n in nodes if _fx_op(n) in _ET_COMPUTE]
    float_compute = [f"{_fx_op(n)}#{index[n.name]}" for n in compute if n.name in fp32]
    return _summary(int_ops, float_ops, boundaries, float_compute, len(compute))


# ---------------------------------------------------------------------------------------------------------------------


_HARDSWISH = {"HARD_SWISH", "HardSwish", "hardswish"}
_NORM = {"MEAN", "RSQRT", "SQUARED_DIFFERENCE", "SUB", "ReduceMean", "Sqrt", "Reciprocal", "Sub", "LayerNormalization",
         "mean", "rsqrt", "sub", "layer_norm", "var_mean"}


def _kind(neighbour_ops: list[str]) -> str:
    """Why a boundary outside attention exists: next to a hard-swish, a (decomposed) norm/mean, or something else."""
    if any(op in _HARDSWISH for op in neighbour_ops):
        return "hardswish"
    if any(op in _NORM for op in neighbour_ops):
        return "norm"
    return "other"


def _summary(int_ops: Counter, float_ops: Counter, boundaries: list[dict], float_compute: list[str], n_compute: int,
             *, requantize: int = 0) -> dict:
    where = Counter(b["where"].split(" ")[0] for b in boundaries)
    per_island = Counter(b["where"] for b in boundaries if b["where"].startswith("attention"))
    return {
        "int8_ops": dict(sorted(int_ops.items())),
        "float_ops": dict(sorted(float_ops.items())),
        "int8_op_count": sum(int_ops.values()),
        "float_op_count": sum(float_ops.values()),
        "compute_ops": n_compute,
        "compute_ops_not_int8": float_compute,
        "boundaries": len(boundaries),
        "boundaries_by_place": dict(sorted(where.items())),
        "max_boundaries_per_attention": max(per_island.values(), default=0),
        "boundary_list": boundaries,
        "requantize_ops": requantize,
    }
