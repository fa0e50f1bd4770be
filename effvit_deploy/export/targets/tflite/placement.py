"""Where layout ops sit in a converted graph relative to attention (the deploy form's contract: none inside it).

An "attention world" op is one only attention produces (BATCH_MATMUL, SOFTMAX, DIV, SUM, the slices and pads of the
official plumbing); walking through pass-through ops (RESHAPE, RELU, MUL, ADD, ...) from a TRANSPOSE, SLICE or PAD,
the first other op above and below it decides its place: `model io`, `conv->heads`, `heads->conv`, `attention core`
(both sides attention), or `conv` (e.g. the PAD before a stride-2 conv).
"""

from __future__ import annotations

from collections import Counter, defaultdict

from effvit_deploy.export.targets.tflite.graph import TfliteGraph, TfliteOp

ATTENTION_WORLD = frozenset({"BATCH_MATMUL", "SOFTMAX", "DIV", "SUM", "SLICE", "STRIDED_SLICE", "PADV2", "SPLIT",
                             "SPLIT_V"})
PASS_THROUGH = frozenset({"RESHAPE", "RELU", "MUL", "ADD", "SQUEEZE", "EXPAND_DIMS", "CAST", "MEAN"})
FORBIDDEN_IN_ATTENTION = ("TRANSPOSE", "SLICE", "STRIDED_SLICE", "PAD", "PADV2")


def _world(graph: TfliteGraph, op: TfliteOp, up: bool) -> str:
    """'attention', 'conv' or 'io': the first non-pass-through op above (up=True) or below `op`."""
    producers = {t: o for o in graph.ops for t in o.outputs}
    consumers: dict[int, list[TfliteOp]] = defaultdict(list)
    for o in graph.ops:
        for t in o.inputs:
            consumers[t].append(o)
    seen: set[int] = set()
    frontier = [op]
    kinds: set[str] = set()
    while frontier:
        current = frontier.pop()
        tensors = [t for t in current.inputs if t not in graph.constants] if up else current.outputs
        for t in tensors:
            if t < 0:
                continue
            if up and t in graph.inputs or not up and t in graph.outputs:
                kinds.add("io")
            nexts = [producers[t]] if up and t in producers else ([] if up else consumers[t])
            for n in nexts:
                if n.index in seen:
                    continue
                seen.add(n.index)
                if n.op in PASS_THROUGH:
                    frontier.append(n)
                else:
                    kinds.add("attention" if n.op in ATTENTION_WORLD else "conv")
    if "conv" in kinds:
        return "conv"
    if "attention" in kinds:
        return "attention"
    return "io"


def locate(graph: TfliteGraph, names: tuple[str, ...] = FORBIDDEN_IN_ATTENTION) -> Counter:
    """(op, place) -> count for the ops named in `names` (see the module docstring for the places)."""
    places: Counter = Counter()
    for op in graph.ops:
        if op.op not in names:
            continue
        above, below = _world(graph, op, up=True), _world(graph, op, up=False)
        if "io" in (above, below) and op.op == "TRANSPOSE":
            place = "model io"
        elif above == below == "attention":
            place = "attention core"
        elif above == "conv" and below == "attention":
            place = "conv->heads"
        elif above == "attention" and below == "conv":
            place = "heads->conv"
        elif above == "attention" or below == "attention":
            place = "attention core"
        else:
            place = "conv"
        places[(op.op, place)] += 1
    return places
