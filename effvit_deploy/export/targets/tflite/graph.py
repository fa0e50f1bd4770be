"""The one reader of .tflite graphs: operators, tensors and XNNPACK partitioning.

- `read(flatbuffer)`: subgraph 0 as a `TfliteGraph` (ops with tensor ids, tensor names/types/shapes, constants,
  graph I/O, BATCH_MATMUL adjoint flags). The op census, the int8 census, the attention-island finder and
  `bench/inspect_tflite_graph.py` all read graphs through it.
- `op_counts(flatbuffer)`: op name -> count over every subgraph.
- `delegation(interpreter)`: XNNPACK partitions of an allocated interpreter. After `allocate_tensors()` the
  interpreter still lists every original node and appends one `DELEGATE` node per partition; the execution plan is
  not exposed to Python. A delegate partition is a convex node subset whose boundary tensors are the DELEGATE node's
  inputs and outputs, so the nodes it replaced are exactly those reached by walking producers back from its outputs
  without crossing its inputs. That gives the runtime's "Replacing N out of M node(s) with delegate ..., yielding K
  partitions" numbers (K = DELEGATE nodes, N = replaced, M = original nodes), plus which op types stayed outside.

Op names: builtin operator names from the schema (`CONV_2D`), a custom op's custom code, `BUILTIN_<n>` for a code the
schema does not name.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from effvit_deploy.export.targets._common import require


@dataclass
class TfliteOp:
    index: int
    op: str
    inputs: list[int]  # tensor ids; -1 marks an omitted optional input
    outputs: list[int]
    options: dict[str, int] = field(default_factory=dict)  # BATCH_MATMUL: adj_x, adj_y


@dataclass
class TfliteGraph:
    ops: list[TfliteOp]
    inputs: list[int]
    outputs: list[int]
    constants: set[int]  # tensors backed by a buffer (weights, constant shapes)
    tensor_names: list[str]
    tensor_types: list[str]  # "FLOAT32", "INT8", ...
    shapes: list[tuple[int, ...]]

    def census(self) -> Counter:
        return Counter(op.op for op in self.ops)

    def shape(self, tensor: int) -> tuple[int, ...] | None:
        return self.shapes[tensor] if tensor >= 0 else None


def _schema():
    return require("ai_edge_litert.schema_py_generated", "tflite")


def _op_names(model, schema) -> list[str]:
    """Op name per operator-code index of `model`."""
    names = {value: key for key, value in vars(schema.BuiltinOperator).items() if not key.startswith("_")}
    codes = []
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        # builtin codes >= 127 live in BuiltinCode(); older ones in DeprecatedBuiltinCode() (schema v3a rule)
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        custom = code.CustomCode()
        if builtin == schema.BuiltinOperator.CUSTOM and custom:
            codes.append(custom.decode())
        else:
            codes.append(names.get(builtin, f"BUILTIN_{builtin}"))
    return codes


def op_counts(flatbuffer: bytes) -> Counter:
    """Op name -> count, over all subgraphs of the model."""
    schema = _schema()
    model = schema.Model.GetRootAs(flatbuffer, 0)
    codes = _op_names(model, schema)
    counts: Counter = Counter()
    for s in range(model.SubgraphsLength()):
        subgraph = model.Subgraphs(s)
        for o in range(subgraph.OperatorsLength()):
            counts[codes[subgraph.Operators(o).OpcodeIndex()]] += 1
    return counts


def read(flatbuffer: bytes) -> TfliteGraph:
    """Subgraph 0 of a .tflite model."""
    schema = _schema()
    model = schema.Model.GetRootAs(flatbuffer, 0)
    codes = _op_names(model, schema)
    type_names = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    sub = model.Subgraphs(0)
    names, types, shapes, constants = [], [], [], set()
    for t in range(sub.TensorsLength()):
        tensor = sub.Tensors(t)
        names.append(tensor.Name().decode(errors="replace"))
        types.append(type_names.get(tensor.Type(), str(tensor.Type())))
        shapes.append(tuple(int(v) for v in tensor.ShapeAsNumpy()) if tensor.ShapeLength() else ())
        buffer = model.Buffers(tensor.Buffer())
        if buffer is not None and (buffer.DataLength() > 0 or buffer.Size() > 0):
            constants.add(t)
    ops = []
    for i in range(sub.OperatorsLength()):
        op = sub.Operators(i)
        name = codes[op.OpcodeIndex()]
        options: dict[str, int] = {}
        if name == "BATCH_MATMUL":
            opts = schema.BatchMatMulOptions()
            table = op.BuiltinOptions()
            opts.Init(table.Bytes, table.Pos)
            options = {"adj_x": int(opts.AdjX()), "adj_y": int(opts.AdjY())}
        ops.append(TfliteOp(i, name, [int(op.Inputs(j)) for j in range(op.InputsLength())],
                            [int(op.Outputs(j)) for j in range(op.OutputsLength())], options))
    inputs = [int(sub.Inputs(j)) for j in range(sub.InputsLength())]
    outputs = [int(sub.Outputs(j)) for j in range(sub.OutputsLength())]
    return TfliteGraph(ops, inputs, outputs, constants, names, types, shapes)


@dataclass
class Delegation:
    partitions: int
    delegated_ops: int
    total_ops: int
    undelegated: Counter = field(default_factory=Counter)


def delegation(interpreter) -> Delegation:
    """Partitions, replaced-node count, node count and undelegated op types of an allocated (delegated) interpreter."""
    wrapper = interpreter._interpreter  # the pybind InterpreterWrapper: NumNodes / NodeName / NodeInputs / NodeOutputs
    nodes = [
        (wrapper.NodeName(i), [int(t) for t in wrapper.NodeInputs(i)], [int(t) for t in wrapper.NodeOutputs(i)])
        for i in range(wrapper.NumNodes())
    ]
    original = [i for i, (name, _, _) in enumerate(nodes) if name != "DELEGATE"]
    delegates = [i for i, (name, _, _) in enumerate(nodes) if name == "DELEGATE"]
    producer = {tensor: i for i in original for tensor in nodes[i][2]}
    replaced: set[int] = set()
    for d in delegates:
        boundary = set(nodes[d][1])
        stack = list(nodes[d][2])
        while stack:
            node = producer.get(stack.pop())
            if node is None or node in replaced:
                continue
            replaced.add(node)
            stack.extend(t for t in nodes[node][1] if t >= 0 and t not in boundary)
    leftover = Counter(nodes[i][0] for i in original if i not in replaced)
    return Delegation(len(delegates), len(replaced), len(original), leftover)
