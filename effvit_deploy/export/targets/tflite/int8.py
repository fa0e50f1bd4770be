"""TFLite int8: fp32 .tflite from this target, then AI Edge Quantizer static int8 with calibration; its int8 census.

Recipe: `static_wi8_ai8` (int8 per-channel symmetric weights, int8 per-tensor asymmetric activations, min/max
calibration on the real TFLite kernels) for every op, with these exceptions:
- the graph INPUT and OUTPUT stay float32 (one QUANTIZE after the input, one DEQUANTIZE before the logits), so the
  artifact takes the same tensor as the fp32 one;
- the attention islands chosen fp32 (see `islands.find_islands`) are left unquantized: AEQ inserts one DEQUANTIZE in
  front and one QUANTIZE behind each;
- HARD_SWISH and the (converter-decomposed) LayerNorm stay fp32 too: TFLite's XNNPACK delegate takes HARD_SWISH
  and RSQRT only in fp32, so int8 versions would run outside XNNPACK and split the graph (measured on b1 at 224:
  33 partitions and 3.4x slower than keeping them fp32 inside the one partition). Everything else (convolutions,
  fully-connected, residual adds, concatenations, pooling, reshapes) runs in int8.

Why AEQ and not litert-torch's PT2E path (`PT2EQuantizer` + `QuantConfig(pt2e_quantizer=...)`), measured once on
efficientvit-b1 at 224, random weights, 32 calibration photos, 2 threads, interleaved (2026-11-26):

    AEQ (this module)   held-out cosine 0.99983, SQNR 34.6 dB, 1 XNNPACK partition,  9.9 ms (fp32: 17.2 ms)
    litert-torch PT2E   held-out cosine 0.99694, SQNR 22.1 dB, 32 partitions,        28.8 ms

litert-torch 0.10's STATIC qdq conversion folds the first quantize and the last dequantize into int8 graph I/O,
its PT2EQuantizer has no hard-swish annotation, so every HARD_SWISH ends up int8 outside XNNPACK (31 of them), and
residual ADDs and the LayerNorm pieces stay fp32 between DEQUANTIZE/QUANTIZE pairs.
"""

from __future__ import annotations

import re
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from effvit_deploy.errors import MissingDependencyError, QuantizationError
from effvit_deploy.export.quantize.census import NeighbourOps, boundary_kind, summary
from effvit_deploy.export.quantize.islands import GraphNode, find_groups, find_islands
from effvit_deploy.export.targets.tflite import graph as tflite_graph
from effvit_deploy.export.targets.tflite.ops import ATTENTION_OPS, COMPUTE_OPS, INT_TYPES, NORM_ANCHORS, NORM_OPS

NEIGHBOURS = NeighbourOps(hardswish=frozenset({"HARD_SWISH"}),
                          norm=frozenset({"MEAN", "RSQRT", "SQUARED_DIFFERENCE", "SUB"}))


def graph_nodes(flatbuffer: bytes) -> list[GraphNode]:
    """Operators of subgraph 0 as GraphNodes (activation inputs only); `extra` holds in/out dtypes, all input
    tensors' dtypes, output names and graph I/O flags."""
    graph = tflite_graph.read(flatbuffer)
    graph_inputs, graph_outputs = set(graph.inputs), set(graph.outputs)
    nodes = []
    for op in graph.ops:
        ins = [t for t in op.inputs if t >= 0]
        act_ins = [t for t in ins if t not in graph.constants]
        nodes.append(
            GraphNode(
                index=op.index,
                op=op.op,
                inputs=[str(t) for t in act_ins],
                outputs=[str(t) for t in op.outputs],
                name=";".join(graph.tensor_names[t] for t in op.outputs),
                extra={
                    "in_types": [graph.tensor_types[t] for t in act_ins],
                    "all_in_types": [graph.tensor_types[t] for t in ins],
                    "out_types": [graph.tensor_types[t] for t in op.outputs],
                    "out_names": [graph.tensor_names[t] for t in op.outputs],
                    "graph_input": any(t in graph_inputs for t in act_ins),
                    "graph_output": any(t in graph_outputs for t in op.outputs),
                },
            )
        )
    return nodes


def attention_islands(flatbuffer: bytes) -> list[list[GraphNode]]:
    """Attention islands of a TFLite graph, in graph order."""
    return find_islands(graph_nodes(flatbuffer), ATTENTION_OPS)


def norm_islands(flatbuffer: bytes) -> list[list[GraphNode]]:
    """LayerNorm groups (decomposed by the converter) of a TFLite graph, in graph order."""
    return find_groups(graph_nodes(flatbuffer), NORM_ANCHORS, NORM_OPS)


def build_recipe(fp32_islands: Sequence[Sequence[GraphNode]], *, hardswish_fp32: bool = False) -> list[dict]:
    """static_wi8_ai8 for all ops, float I/O, no quantization for the ops of `fp32_islands` (and hard-swish)."""
    from ai_edge_quantizer import recipe

    rules = list(recipe.static_wi8_ai8())
    rules += [
        {"regex": ".*", "operation": "INPUT", "algorithm_key": "no_quantize"},
        {"regex": ".*", "operation": "OUTPUT", "algorithm_key": "no_quantize"},
    ]
    scopes = [node.name for island in fp32_islands for node in island]
    if scopes:
        # AEQ matches the regex against "<output tensor names>;" of each op (ModelExplorer scope)
        pattern = "^(?:" + "|".join(re.escape(s) for s in scopes) + ");$"
        rules.append({"regex": pattern, "operation": "*", "algorithm_key": "no_quantize"})
    if hardswish_fp32:
        rules.append({"regex": ".*", "operation": "HARD_SWISH", "algorithm_key": "no_quantize"})
    return rules


def calibrate(fp32_path: Path, calib: Sequence[np.ndarray], recipe_rules: list[dict], *, nhwc: bool = False,
              mode: str = "profiler") -> tuple[Any, dict]:
    """(AEQ Quantizer for `fp32_path` with `recipe_rules`, its calibration result on `calib` (NCHW float32)).

    mode "profiler": TFLite's C++ engine tracks each tensor's min/max while the model runs, so memory is one
    inference's. "preserve" (AEQ's default): the interpreter keeps every intermediate tensor and AEQ copies all of
    them into a dict per image, ~3.8x the model's activations (6.1 GiB for seg-B0 int8 at 1024x2048). Both give the
    same ranges (AEQ's own test compares them; tests/test_quantize.py does on our graph).
    """
    try:
        from ai_edge_litert.interpreter import Interpreter
        from ai_edge_quantizer import calibrator, quantizer
    except ImportError as exc:
        raise MissingDependencyError(
            f"tflite int8 needs ai-edge-quantizer ({exc}); install it with: pip install 'effvit-deploy[tflite]'"
        ) from exc
    modes = {"profiler": calibrator.CalibrationMode.CALIBRATION_PROFILER_BASED,
             "preserve": calibrator.CalibrationMode.CALIBRATION_PRESERVE_ALL_TENSORS}
    signatures = Interpreter(model_path=str(fp32_path)).get_signature_list()
    key = next(iter(signatures))
    input_name = signatures[key]["inputs"][0]
    samples = [np.ascontiguousarray(x.transpose(0, 2, 3, 1) if nhwc else x, dtype=np.float32) for x in calib]
    qt = quantizer.Quantizer(str(fp32_path), recipe_rules)
    return qt, qt.calibrate({key: [{input_name: x} for x in samples]}, num_threads=2, mode=modes[mode])


def quantize_tflite_file(fp32_path: Path, out_path: Path, calib: Sequence[np.ndarray], recipe_rules: list[dict],
                         *, nhwc: bool = False) -> None:
    """Calibrate `fp32_path` on `calib` (NCHW float32) with AEQ and write the int8 model to `out_path`."""
    qt, result = calibrate(fp32_path, calib, recipe_rules, nhwc=nhwc)
    quantized = qt.quantize(result, enable_progress_report=False)
    Path(out_path).write_bytes(bytes(quantized.quantized_model))


def quantize(convert_fp32, module: nn.Module, example: torch.Tensor, out_path: Path, calib: Sequence[np.ndarray],
             fp32_attention: Sequence[bool] | None, *, hardswish_fp32: bool = True, nhwc: bool = False) -> dict:
    """fp32 .tflite (written by `convert_fp32(module, example, path, nhwc=...)`, the target's own converter) -> AEQ
    int8 at `out_path`. `fp32_attention[k]` keeps island k fp32 (None: all fp32).

    Returns {"islands": n, "island_ops": [op types per island in the fp32 graph], "norm_islands": [...]}.
    """
    with tempfile.TemporaryDirectory(prefix="effvit-int8-") as tmp:
        fp32_path = Path(tmp) / "fp32.tflite"
        convert_fp32(module, example, fp32_path, nhwc=nhwc)
        islands = attention_islands(fp32_path.read_bytes())
        keep = [True] * len(islands) if fp32_attention is None else list(fp32_attention)
        if len(keep) != len(islands):
            raise QuantizationError(f"found {len(islands)} attention islands in the TFLite graph, expected {len(keep)}")
        chosen = [island for island, fp32 in zip(islands, keep, strict=True) if fp32]
        norms = norm_islands(fp32_path.read_bytes())
        recipe_rules = build_recipe(chosen + norms, hardswish_fp32=hardswish_fp32)
        quantize_tflite_file(fp32_path, out_path, calib, recipe_rules, nhwc=nhwc)
    return {"islands": len(islands), "island_ops": [[n.op for n in isl] for isl in islands],
            "norm_islands": [[n.op for n in isl] for isl in norms]}


def census(path: Path, islands: Sequence[Sequence[int]] = ()) -> dict:
    """Int8 census of a .tflite: ops per domain, conv/FC check, QUANTIZE/DEQUANTIZE boundaries and where they are.

    `islands` (op indices of fp32 attention islands, in the int8 graph) lets boundaries be classified as "attention".
    """
    nodes = graph_nodes(Path(path).read_bytes())
    if not islands:
        islands = [[n.index for n in isl] for isl in find_islands(nodes, ATTENTION_OPS)]
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
                where = boundary_kind(before + after, NEIGHBOURS)
            boundaries.append({"index": n.index, "op": n.op, "after": before, "before": after, "where": where})
            continue
        domain = outs[0] if outs else (ins[0] if ins else "FLOAT32")
        (int_ops if domain in INT_TYPES else float_ops)[n.op] += 1
    compute = [n for n in nodes if n.op in COMPUTE_OPS]
    float_compute = [
        f"{n.op}#{n.index}"
        for n in compute
        if not all(t in INT_TYPES for t in n.extra["all_in_types"][:2]) or n.extra["out_types"][0] not in INT_TYPES
    ]
    return summary(int_ops, float_ops, boundaries, float_compute, len(compute), requantize=requantize)
