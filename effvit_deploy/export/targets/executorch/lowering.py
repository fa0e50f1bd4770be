"""The one XNNPACK lowering of this project: an exported program -> `.pte` bytes and the ops the delegates took.

fp32/fp16 (`target.py`) and int8 (`int8.py`) both lower through here, with the documented flow:
`to_edge_transform_and_lower(XnnpackPartitioner, get_transform_passes())` (pre-partition rewrites that expose
patterns to the partitioner; hard-swish reaches it as one `aten.hardswish` and is delegated whole, PR #12360).
"""

from __future__ import annotations

from collections import Counter

import torch


def lower(exported: torch.export.ExportedProgram) -> tuple[bytes, Counter]:
    """(.pte bytes, edge op name -> count over every XNNPACK delegate) of `exported`."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.backends.xnnpack.utils.configs import get_transform_passes
    from executorch.exir import to_edge_transform_and_lower

    edge = to_edge_transform_and_lower(exported, partitioner=[XnnpackPartitioner()],
                                       transform_passes=get_transform_passes())
    lowered = lowered_ops(edge.exported_program().graph_module)
    return edge.to_executorch().buffer, lowered


def lowered_ops(graph_module: torch.fx.GraphModule) -> Counter:
    """Edge op name -> count inside every lowered (delegated) submodule of the top-level graph."""
    from executorch.exir.lowered_backend_module import get_lowered_submodules

    counts: Counter = Counter()
    for _, lowered, _ in get_lowered_submodules(graph_module):
        for node in lowered.original_module.graph_module.graph.nodes:
            op = getattr(node.target, "_op", node.target)
            if node.op == "call_function" and isinstance(op, torch._ops.OpOverload):
                counts[str(op)] += 1
    return counts
