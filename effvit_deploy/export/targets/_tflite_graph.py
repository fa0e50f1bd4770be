"""Read a .tflite graph: op census from the flatbuffer, XNNPACK partitioning from a delegated interpreter.

Partitioning: after `allocate_tensors()` the interpreter still lists every original node and appends one `DELEGATE`
node per XNNPACK partition; the execution plan (which originals were replaced) is not exposed to Python. A TFLite
delegate partition is a convex node subset whose boundary tensors are the DELEGATE node's inputs and outputs, so the
nodes it replaced are exactly those reached by walking producers back from its outputs without crossing its inputs.
That yields the same numbers as the runtime's "Replacing N out of M node(s) with delegate ..., yielding K partitions"
log line (K = DELEGATE nodes, N = replaced nodes, M = original nodes), plus which op types stayed outside.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from effvit_deploy.export.targets._common import require


@dataclass
class Delegation:
    partitions: int
    delegated_ops: int
    total_ops: int
    undelegated: Counter = field(default_factory=Counter)


def op_counts(flatbuffer: bytes) -> Counter:
    """Builtin operator name (custom ops: their custom code) -> count, over all subgraphs of the model."""
    schema = require("ai_edge_litert.schema_py_generated", "tflite")
    names = {value: key for key, value in vars(schema.BuiltinOperator).items() if not key.startswith("_")}
    model = schema.Model.GetRootAs(flatbuffer, 0)
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
    counts: Counter = Counter()
    for s in range(model.SubgraphsLength()):
        subgraph = model.Subgraphs(s)
        for o in range(subgraph.OperatorsLength()):
            counts[codes[subgraph.Operators(o).OpcodeIndex()]] += 1
    return counts


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
