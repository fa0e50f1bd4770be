"""Read an ExecuTorch .pte: delegate calls and portable-kernel calls of `forward`, and the XNNPACK nodes per delegate.

The program is deserialized with ExecuTorch's own reader (`deserialize_pte_binary`, which also pulls delegate
segments back inline). Each XNNPACK delegate blob is an `XH00` header followed by an XNNGraph flatbuffer; we decode
it to JSON with the flatc that ships inside the executorch wheel and the schema.fbs beside the XNNPACK serializer,
and count `xnode_union_type`s (XNNConv2d, XNNHardswish, ...) and tensor value datatypes (fp32, fp16, qint8, ...).
These are the ops XNNPACK will actually run, including the layout transposes the delegate inserts itself.
"""

from __future__ import annotations

import re
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

_XNODE = re.compile(rb'"xnode_union_type"\s*:\s*"(\w+)"')
_DATATYPE = re.compile(rb'"datatype"\s*:\s*"xnn_datatype_(\w+)"')


@dataclass
class PteCensus:
    delegate_calls: int
    backends: Counter = field(default_factory=Counter)
    kernels: Counter = field(default_factory=Counter)  # portable/optimized kernels outside any delegate
    delegated: Counter = field(default_factory=Counter)  # XNNPACK node types inside the delegates
    value_dtypes: Counter = field(default_factory=Counter)  # XNNPACK tensor values (activations, weights) by dtype


def read(path: Path, method: str = "forward") -> PteCensus:
    from executorch.exir._serialize._program import deserialize_pte_binary
    from executorch.exir.schema import DelegateCall, KernelCall

    program = deserialize_pte_binary(Path(path).read_bytes()).program
    plan = next(p for p in program.execution_plan if p.name == method)
    census = PteCensus(delegate_calls=0)
    for chain in plan.chains:
        for instruction in chain.instructions:
            args = instruction.instr_args
            if isinstance(args, DelegateCall):
                census.delegate_calls += 1
                census.backends[plan.delegates[args.delegate_index].id] += 1
            elif isinstance(args, KernelCall):
                op = plan.operators[args.op_index]
                census.kernels[f"{op.name}.{op.overload}" if op.overload else op.name] += 1
    for delegate in plan.delegates:
        if delegate.id == "XnnpackBackend" and delegate.processed.location.name == "INLINE":
            nodes, dtypes = _xnn_graph(program.backend_delegate_data[delegate.processed.index].data)
            census.delegated.update(nodes)
            census.value_dtypes.update(dtypes)
    return census


def _xnn_graph(blob: bytes) -> tuple[Counter, Counter]:
    """(node type -> count, tensor value dtype -> count) of one XNNPACK delegate blob."""
    from executorch.backends.xnnpack.serialization.xnnpack_graph_serialize import XNNHeader, _get_schema_bytes
    from executorch.exir._serialize._flatbuffer import _flatc_decompile

    header = XNNHeader.from_bytes(blob[: XNNHeader.EXPECTED_LENGTH])
    graph = blob[header.flatbuffer_offset : header.flatbuffer_offset + header.flatbuffer_size]
    with tempfile.TemporaryDirectory() as tmp:
        schema, binary = Path(tmp, "schema.fbs"), Path(tmp, "graph.bin")
        schema.write_bytes(_get_schema_bytes())
        binary.write_bytes(graph)
        _flatc_decompile(tmp, str(schema), str(binary), ["--raw-binary"])
        text = Path(tmp, "graph.json").read_bytes()
    return Counter(m.decode() for m in _XNODE.findall(text)), Counter(m.decode() for m in _DATATYPE.findall(text))
