"""Per-op time of a .tflite under XNNPACK, by isolation (ai-edge-litert's Python interpreter has no op profiler).

Each operator of subgraph 0 is cut out into a one-op model: the flatbuffer is copied and its subgraph reduced to that
operator, with the same tensors and weights, its activation inputs becoming the model inputs. Each is run with XNNPACK
and timed alone (`bench/profile_tflite_ops.py` reports the split). The sum of isolated ops is not the model's latency:
in the real graph XNNPACK fuses a PAD into the following convolution, keeps data in cache between ops, and pays one
thread barrier per op.
"""

from __future__ import annotations

import collections
import copy
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

# Op types (nearly) only attention produces in EfficientViT: every conv, depthwise conv, hard-swish, add, pooling, FC
# and the LayerNorm pieces (MEAN, MUL, ...) are shared by the plain and the deploy graph; of the types below only the
# model-input TRANSPOSE and the head's flatten RESHAPE are not attention's. PAD is left out of every total: XNNPACK
# fuses it into the next conv in a real graph.
ATTENTION_ONLY = frozenset({"BATCH_MATMUL", "DIV", "SLICE", "STRIDED_SLICE", "PADV2", "TRANSPOSE", "RESHAPE",
                            "CONCATENATION", "SPLIT", "RELU", "SUM"})
FUSED_IN_GRAPH = frozenset({"PAD"})


def one_op_models(path: Path) -> Iterator[tuple[int, str, bytes]]:
    """(index, op type, flatbuffer bytes of a model holding only that op) for every operator of subgraph 0."""
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(path))
    graph = model.subgraphs[0]

    def is_constant(tensor: int) -> bool:
        data = model.buffers[graph.tensors[tensor].buffer].data
        return data is not None and len(data) > 0

    for index, op in enumerate(graph.operators):
        single = copy.copy(graph)
        single.operators = [op]
        single.inputs = np.array([t for t in op.inputs if t >= 0 and not is_constant(t)], dtype=np.int32)
        single.outputs = np.array(list(op.outputs), dtype=np.int32)
        reduced = copy.copy(model)
        reduced.subgraphs, reduced.signatureDefs = [single], []
        name = flatbuffer_utils.opcode_to_name(model, op.opcodeIndex)
        yield index, name, bytes(flatbuffer_utils.convert_object_to_bytearray(reduced))


def profile(path: Path, runs: int, threads: int) -> list[tuple[int, str, float, list[tuple[int, ...]]]]:
    """(index, op type, median ms, output shapes) per operator, each timed alone with XNNPACK."""
    from ai_edge_litert.interpreter import Interpreter

    rng = np.random.default_rng(0)
    rows = []
    for index, name, blob in one_op_models(path):
        interpreter = Interpreter(model_content=blob, num_threads=threads)
        interpreter.allocate_tensors()
        for detail in interpreter.get_input_details():
            interpreter.set_tensor(detail["index"], rng.random(detail["shape"]).astype(detail["dtype"]))
        for _ in range(3):
            interpreter.invoke()
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            interpreter.invoke()
            times.append((time.perf_counter() - start) * 1e3)
        shapes = [tuple(int(v) for v in d["shape"]) for d in interpreter.get_output_details()]
        rows.append((index, name, statistics.median(times), shapes))
    return rows


def report(path: Path, rows: list, top: int) -> str:
    by_type: collections.Counter[str] = collections.Counter()
    counts: collections.Counter[str] = collections.Counter()
    for _, name, ms, _ in rows:
        by_type[name] += ms
        counts[name] += 1
    total = sum(ms for name, ms in by_type.items() if name not in FUSED_IN_GRAPH)
    attention = sum(ms for name, ms in by_type.items() if name in ATTENTION_ONLY)
    lines = [f"## {path}", "", f"{len(rows)} ops; isolated sum {total:.2f} ms without PAD (fused in the real graph); "
             f"attention-only op types {attention:.2f} ms = {100 * attention / total:.1f}% -> bound on any attention "
             f"rewrite: {total / (total - attention):.3f}x", "", "| op | count | ms | share |", "|---|---|---|---|"]
    for name, ms in by_type.most_common():
        lines.append(f"| {name} | {counts[name]} | {ms:.3f} | {100 * ms / total:.1f}% |")
    lines += ["", f"slowest {top}:", ""]
    for index, name, ms, shapes in sorted(rows, key=lambda r: -r[2])[:top]:
        lines.append(f"- #{index} {name} {ms:.3f} ms -> {shapes}")
    return "\n".join(lines) + "\n"
