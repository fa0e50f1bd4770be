"""ONNX int8: fp32 .onnx from the onnx target, then onnxruntime static quantization (QDQ, per-channel).

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
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ...errors import MissingDependencyError, QuantizationError
from .islands import ONNX_OPS, GraphNode, find_islands


def fp32_onnx(module: nn.Module, example: torch.Tensor, path: Path) -> None:
    """The fp32 artifact exactly as the onnx target writes it (dynamo export, safe optimizer passes, onnxsim)."""
    from ..targets import get_target

    get_target("onnx").convert(module, example, path, precision="fp32")


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
    return find_islands(onnx_graph(proto), ONNX_OPS)


class _Reader:
    """onnxruntime CalibrationDataReader over preprocessed NCHW arrays."""

    def __init__(self, input_name: str, samples: Sequence[np.ndarray]) -> None:
        self._it: Iterator[dict] = iter([{input_name: np.ascontiguousarray(x, dtype=np.float32)} for x in samples])

    def get_next(self) -> dict | None:
        return next(self._it, None)

    def rewind(self) -> None:  # pragma: no cover - only used by some calibrators
        pass


def quantize(module: nn.Module, example: torch.Tensor, out_path: Path, calib: Sequence[np.ndarray],
             fp32_attention: Sequence[bool] | None) -> dict:
    """fp32 .onnx -> QDQ int8 at `out_path`. `fp32_attention[k]` keeps island k fp32 (None: all fp32).

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
        fp32_onnx(module, example, fp32_path)
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
            if fp32 or n.op not in ONNX_OPS.matmul
        ]
        extra = {"ActivationSymmetric": False, "WeightSymmetric": True}
        if not all(keep):
            extra["OpTypesToExcludeOutputQuantization"] = ["MatMul"]  # only attention matmuls are MatMul (FC: Gemm)
        quantize_static(
            str(pre_path),
            str(out_path),
            _Reader(proto.graph.input[0].name, calib),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=exclude,
            calibrate_method=CalibrationMethod.MinMax,
            extra_options=extra,
        )
    return {"islands": len(islands), "island_nodes": [[n.name for n in isl] for isl in islands]}
