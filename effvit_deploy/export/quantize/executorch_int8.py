"""ExecuTorch int8: XNNPACKQuantizer (PT2E) -> prepare / calibrate / convert -> XNNPACK lowering -> .pte.

The converted GraphModule from `pt2e.fake_quantize` is exported again and lowered with `XnnpackPartitioner` through
`to_edge_transform_and_lower` (the flow that keeps hard-swish whole). What runs in int8 is decided by the quantizer's
annotations, so the census is taken on that GraphModule (`census.edge_census`): quantize/dequantize nodes are explicit
there, and the XNNPACK partitioner turns each into a convert op inside the delegate.

What ExecuTorch 1.4.1's XNNPACK partitioner accepts in int8 (STATIC_QUANT configs): conv, linear, add, mul, cat,
mean/avg-pool, ReLU/clamp, reshape/permute/slice. It takes batched matmul (bmm), division and hard-swish only in fp32,
so the attention core and every hard-swish run in fp32 inside the delegate, between a dequantize and a quantize;
`--int8-attention int8` cannot be honoured here (see `__init__.RUNTIME_INT8_ATTENTION`).
"""

from __future__ import annotations

from pathlib import Path

import torch

from .pt2e import FakeQuant


def lower(fq: FakeQuant, example: torch.Tensor, out_path: Path) -> dict:
    """Lower the converted (fake-quant) graph to XNNPACK and write the .pte. Returns {"lowered_ops": {...}}."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.backends.xnnpack.utils.configs import get_transform_passes
    from executorch.exir import to_edge_transform_and_lower
    from executorch.exir.lowered_backend_module import get_lowered_submodules

    with torch.no_grad():
        exported = torch.export.export(fq.quant, (example,), strict=False)
    edge = to_edge_transform_and_lower(
        exported, partitioner=[XnnpackPartitioner()], transform_passes=get_transform_passes()
    )
    lowered: dict[str, int] = {}
    for _, sub, _ in get_lowered_submodules(edge.exported_program().graph_module):
        for node in sub.original_module.graph_module.graph.nodes:
            if node.op == "call_function":
                op = getattr(node.target, "_op", node.target)
                name = str(op)
                lowered[name] = lowered.get(name, 0) + 1
    program = edge.to_executorch()
    Path(out_path).write_bytes(program.buffer)
    return {"lowered_ops": dict(sorted(lowered.items()))}
