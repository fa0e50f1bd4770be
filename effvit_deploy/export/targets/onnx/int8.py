"""ONNX int8: fp32 .onnx from this target, then onnxruntime static quantization (QDQ, per-channel); its int8 census.

Settings: QDQ format, int8 activations (asymmetric, min/max calibration) and int8 symmetric per-channel weights
(`QuantType.QInt8` both: ONNX Runtime's CPU kernels and mobile NNAPI/XNNPACK EPs all take S8S8), ONNX shape
inference first (`quant_pre_process` without its optimiser, which would rewrite HardSwish as HardSigmoid·Mul), and a
calibration reader over the same preprocessed images as the other targets. Attention islands chosen fp32 are passed
as `nodes_to_exclude`; the rest of every core (Reshape/Concat/Relu) stays quantized. ONNX Runtime has no int8
HardSwish or LayerNormalization kernel: they compute in fp32 between a DequantizeLinear and a QuantizeLinear.

Note for reading latency: int8 activations (S8S8) are what ONNX Runtime's ARM kernels prefer; on x86 it prefers uint8
activations (its own guidance in `quantize_static`), so the x86 latency of this artifact (bench/bench_quant.py) says
little about a phone.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from effvit_deploy.errors import MissingDependencyError, QuantizationError
from effvit_deploy.export.quantize.census import NeighbourOps, boundary_kind, summary
from effvit_deploy.export.quantize.islands import GraphNode, find_islands
from effvit_deploy.export.targets.onnx.ops import ATTENTION_OPS, COMPUTE_OPS, INT8_KERNELS, QDQ, SHAPE_OPS

NEIGHBOURS = NeighbourOps(hardswish=frozenset({"HardSwish"}),
                          norm=frozenset({"ReduceMean", "Sqrt", "Reciprocal", "Sub", "LayerNormalization"}))


def onnx_graph(proto) -> list[GraphNode]:
    """Nodes of an ONNX graph as GraphNodes (initializers and Constant outputs left out of the inputs)."""
    constants = {i.name for i in proto.graph.initializer}
    constants |= {o for n in proto.graph.node if n.op_type == "Constant" for o in n.output}
    return [
        GraphNode(index=i, op=n.op_type, inputs=[t for t in n.input if t and t not in constants],
                  outputs=list(n.output), name=n.name)
        for i, n in enumerate(proto.graph.node)
    ]


def attention_islands(proto) -> list[list[GraphNode]]:
    return find_islands(onnx_graph(proto), ATTENTION_OPS)


class _Reader:
    """onnxruntime CalibrationDataReader over preprocessed NCHW arrays."""

    def __init__(self, input_name: str, samples: Sequence[np.ndarray]) -> None:
        self._it: Iterator[dict] = iter([{input_name: np.ascontiguousarray(x, dtype=np.float32)} for x in samples])

    def get_next(self) -> dict | None:
        return next(self._it, None)

    def rewind(self) -> None:  # pragma: no cover - only used by some calibrators
        pass


def calibrate_ranges(model_path: Path, input_name: str, calib: Sequence[np.ndarray], out: Path) -> None:
    """ONNX Runtime's MinMax calibration of `model_path` on `calib`, written as its calibration cache at `out`.

    The same calibrator `quantize_static` builds (same tensors, same augmented graph, same ranges), run in a session
    with priority-based execution order. `quantize_static`'s own session keeps the default order, which runs the
    min/max reductions it appends late and so keeps nearly every activation alive: 710 vs 273 MiB for seg-B0 at
    512x1024 (calibration alone), ~2.3x the model's activations in a whole int8 export.
    """
    import onnxruntime as ort
    from onnxruntime.quantization.calibrate import MinMaxCalibrater, save_tensors_data
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    op_types = list(set(QLinearOpsRegistry) | set(QDQRegistry))  # quantize_static's default
    with tempfile.TemporaryDirectory(prefix="effvit-calib-") as tmp:
        calibrator = MinMaxCalibrater(model_path, op_types, augmented_model_path=str(Path(tmp) / "augmented.onnx"))
        calibrator.augment_graph()
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # as ONNX Runtime's calibrator
        options.execution_order = ort.ExecutionOrder.PRIORITY_BASED
        calibrator.infer_session = ort.InferenceSession(calibrator.augmented_model_path, sess_options=options,
                                                        providers=["CPUExecutionProvider"])
        calibrator.collect_data(_Reader(input_name, calib))
        save_tensors_data(calibrator.compute_data(), out)


def quantize(convert_fp32, module: nn.Module, example: torch.Tensor, out_path: Path, calib: Sequence[np.ndarray],
             fp32_attention: Sequence[bool] | None) -> dict:
    """fp32 .onnx (written by `convert_fp32(module, example, path)`, the target's own converter) -> QDQ int8 at
    `out_path`. `fp32_attention[k]` keeps island k fp32 (None: all fp32).

    An int8 island quantizes only its MatMul inputs; MatMul outputs stay float (ONNX Runtime fuses DQ -> MatMul into
    an int8 matmul with float output) and the normaliser and division stay fp32, as in the PT2E simulation. ORT only
    quantizes a MatMul whose inputs both carry calibrated int8 tensors (v·kᵀ); a matmul fed by another matmul's float
    output or by the normaliser stays fp32, so the simulation's int8 cost is an upper bound.

    Returns {"islands": n, "island_nodes": [[node names] per island of the fp32 graph]}.
    """
    try:
        import onnx
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError as exc:
        raise MissingDependencyError(
            f"onnx int8 needs onnxruntime's quantization tools ({exc}); install: pip install 'effvit-deploy[onnx]'"
        ) from exc
    with tempfile.TemporaryDirectory(prefix="effvit-int8-") as tmp:
        fp32_path, pre_path = Path(tmp) / "fp32.onnx", Path(tmp) / "pre.onnx"
        convert_fp32(module, example, fp32_path)
        # skip_optimization: ORT's pre-quantization optimiser rewrites HardSwish as HardSigmoid·Mul
        quant_pre_process(str(fp32_path), str(pre_path), skip_symbolic_shape=True, skip_optimization=True)
        proto = onnx.load(str(pre_path))
        islands = attention_islands(proto)
        keep = [True] * len(islands) if fp32_attention is None else list(fp32_attention)
        if len(keep) != len(islands):
            raise QuantizationError(f"found {len(islands)} attention islands in the ONNX graph, expected {len(keep)}")
        exclude = [
            n.name
            for island, fp32 in zip(islands, keep, strict=True)
            for n in island
            if fp32 or n.op not in ATTENTION_OPS.matmul
        ]
        extra = {"ActivationSymmetric": False, "WeightSymmetric": True}
        if not all(keep):
            extra["OpTypesToExcludeOutputQuantization"] = ["MatMul"]  # only attention matmuls are MatMul (FC: Gemm)
        ranges = Path(tmp) / "ranges.json"
        calibrate_ranges(pre_path, proto.graph.input[0].name, calib, ranges)
        quantize_static(
            str(pre_path),
            str(out_path),
            None,  # the ranges come from `calibrate_ranges`, through ONNX Runtime's calibration cache
            calibration_cache_path=ranges,
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=exclude,
            calibrate_method=CalibrationMethod.MinMax,
            extra_options=extra,
        )
    return {"islands": len(islands), "island_nodes": [[n.name for n in isl] for isl in islands]}


def census(path: Path, island_nodes: Sequence[Sequence[str]] = ()) -> dict:
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
        if n.op_type in QDQ or n.op_type == "Constant":
            continue
        acts = [t for t in n.input if t and not is_weight_path(t)]
        ins_q = all(producer.get(t) is not None and producer[t].op_type == "DequantizeLinear" for t in acts)
        outs_q = all(any(c.op_type == "QuantizeLinear" for c in consumers.get(o, [])) for o in n.output)
        if acts and ins_q and outs_q and n.op_type in INT8_KERNELS:
            int_ops[n.op_type] += 1
        else:
            float_ops[n.op_type] += 1
            fp32_nodes.add(n.name)

    boundaries = []
    for i, n in enumerate(graph.node):
        if n.op_type not in QDQ or is_weight_path(n.input[0]):
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
            where = f"attention {hit}" if hit is not None else boundary_kind(before + after, NEIGHBOURS)
        boundaries.append({"index": i, "op": n.op_type, "after": before, "before": after, "where": where})
    compute = [n for n in graph.node if n.op_type in COMPUTE_OPS]
    float_compute = [f"{n.op_type}#{index[n.name]}" for n in compute if n.name in fp32_nodes]
    return summary(int_ops, float_ops, boundaries, float_compute, len(compute))


def _onnx_hops(producer: dict, consumers: dict):
    """Neighbours of a node across data-movement ops (so a Q after an island's trailing Reshape counts as its exit)."""
    by_name = {n.name: n for n in producer.values()} | {n.name: n for ns in consumers.values() for n in ns}

    def hops(name: str) -> list[str]:
        node = by_name.get(name)
        if node is None or node.op_type not in SHAPE_OPS | set(QDQ):
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
