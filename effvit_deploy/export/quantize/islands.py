"""Find the attention cores (matmuls + normaliser) in a converted graph, so they can stay fp32 as one island.

Works on any dataflow graph given as `GraphNode`s (TFLite operators, ONNX nodes), fed the op-type names of that format
(`OpClasses`, defined by each target in `targets/<runtime>/ops.py`): the converted graphs lose the module names, but
the structure is unmistakable. An attention core is a connected group of "plumbing" ops (reshape, slice,
transpose, ReLU, pad, add, ...) that holds activation x activation matmuls and a normaliser (division, softmax or
reciprocal); convolutions, fully-connected ops and hard-swish cut the groups apart. The island of one core is every
op of its group that feeds its last matmul/normaliser, minus the data-movement ops that only lead into it (ReLU
kernel, multi-scale concat, head-major reshape/transpose: they have int8 kernels and stay int8). With an island in
fp32 the int8 graph has one dequantize per tensor entering the core and one quantize leaving it: with the int8 deploy
form (q|k|v joined, `DeployLiteMLA.join_qkv`) that is one dequantize, of the joined tensor, in front of the split.

Islands come back in graph order, which is the order the attention modules run in.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass
class GraphNode:
    index: int
    op: str
    inputs: list[str]  # activation inputs only (constants/weights left out)
    outputs: list[str]
    name: str = ""
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class OpClasses:
    """Op-type names of one graph format."""

    matmul: frozenset[str]
    normaliser: frozenset[str]
    plumbing: frozenset[str]  # ops that may sit inside a core
    movement: frozenset[str]  # data movement with int8 kernels: left int8 when it only leads into the core


def find_islands(nodes: Sequence[GraphNode], ops: OpClasses) -> list[list[GraphNode]]:
    """Attention-core islands in graph order (each a list of nodes in graph order)."""
    core_types = ops.matmul | ops.normaliser | ops.plumbing
    candidates = [n for n in nodes if n.op in core_types]
    producer = {t: n for n in candidates for t in n.outputs}
    consumers: dict[str, list[GraphNode]] = defaultdict(list)
    for n in candidates:
        for t in n.inputs:
            consumers[t].append(n)

    # connected components over tensors shared by candidate ops
    component: dict[int, int] = {}
    groups: list[list[GraphNode]] = []
    for start in candidates:
        if start.index in component:
            continue
        members, stack = [], [start]
        component[start.index] = len(groups)
        while stack:
            node = stack.pop()
            members.append(node)
            neighbours = [producer[t] for t in node.inputs if t in producer]
            neighbours += [c for t in node.outputs for c in consumers.get(t, [])]
            for other in neighbours:
                if other.index not in component:
                    component[other.index] = len(groups)
                    stack.append(other)
        groups.append(sorted(members, key=lambda n: n.index))

    islands = []
    for members in groups:
        anchors = [n for n in members if n.op in ops.matmul | ops.normaliser]
        if not any(n.op in ops.matmul for n in anchors) or not any(n.op in ops.normaliser for n in anchors):
            continue
        inside = {n.index for n in members}
        last = max(anchors, key=lambda n: n.index)
        keep: set[int] = set()
        stack = [last]
        while stack:  # ancestors of the last anchor inside the group
            node = stack.pop()
            if node.index in keep:
                continue
            keep.add(node.index)
            stack.extend(producer[t] for t in node.inputs if t in producer and producer[t].index in inside)
        island = [n for n in members if n.index in keep]
        leading: set[int] = set()
        for n in island:  # graph order: producers come first
            feeders = [producer[t] for t in n.inputs if t in producer and producer[t].index in keep]
            if n.op in ops.movement and all(f.index in leading for f in feeders):
                leading.add(n.index)
        island = [n for n in island if n.index not in leading]
        if island:
            islands.append(island)
    islands.sort(key=lambda isl: isl[0].index)
    return islands


def find_groups(nodes: Sequence[GraphNode], anchors: frozenset[str], members: frozenset[str]) -> list[list[GraphNode]]:
    """Connected groups of `members` ops (sharing activation tensors) that contain an `anchors` op, in graph order."""
    candidates = [n for n in nodes if n.op in members | anchors]
    producer = {t: n for n in candidates for t in n.outputs}
    consumers: dict[str, list[GraphNode]] = defaultdict(list)
    for n in candidates:
        for t in n.inputs:
            consumers[t].append(n)
    seen: set[int] = set()
    groups = []
    for start in candidates:
        if start.index in seen:
            continue
        group, stack = [], [start]
        seen.add(start.index)
        while stack:
            node = stack.pop()
            group.append(node)
            for other in [producer[t] for t in node.inputs if t in producer] + [
                c for t in node.outputs for c in consumers.get(t, [])
            ]:
                if other.index not in seen:
                    seen.add(other.index)
                    stack.append(other)
        if any(n.op in anchors for n in group):
            groups.append(sorted(group, key=lambda n: n.index))
    return sorted(groups, key=lambda g: g[0].index)
