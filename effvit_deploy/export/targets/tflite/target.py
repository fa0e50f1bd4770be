"""TFLite target: litert-torch 0.10 (`litert_torch.convert`) -> .tflite, run by ai-edge-litert's interpreter + XNNPACK.

Everything about LiteRT lives in this package: conversion, runner and census here; the one flatbuffer reader and
XNNPACK partition count in `graph.py`; int8 (AI Edge Quantizer) and its int8 census in `int8.py`; the op tables the
attention-island finder needs in `ops.py`.

- Layout: NCHW input by default; `nhwc=True` wraps the module with `litert_torch.to_channel_last_io(module, args=[0])`
  so the artifact's input is (1, H, W, 3) and the converter can drop the leading TRANSPOSE. The output is logits
  (2-D) in both cases. The layout is read back from the artifact's input shape, the one fact that cannot drift from
  the graph: (1, H, W, 3) with H != 3 is NHWC. `load_runner` always takes NCHW and transposes for NHWC artifacts.
- fp16 = the standard TFLite "float16 quantization": conv / depthwise / fully-connected weights stored as fp16 with a
  DEQUANTIZE in front (litert-torch's `full_fp16_recipe()`, i.e. AI Edge Quantizer FLOAT_CASTING, weight-only).
  Only those ops have weights to cast, so attention BATCH_MATMULs, the DIV and the eps ADD stay fp32 in the graph.
  On this x86 host XNNPACK folds the DEQUANTIZEs and computes in fp32. Note for the bench: on ARMv8.2+ phones the
  TFLite XNNPACK delegate may run such fp16-weight models with fp16 arithmetic, attention included.
- Census: op types from the flatbuffer; partitions from the interpreter after XNNPACK delegation (see
  `tflite_graph.delegation`; the runtime's "Replacing N out of M node(s)" line is a VERBOSE log that ai-edge-litert
  2.3.0 does not print, so we recompute the same numbers from the delegated graph).
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn

from effvit_deploy.export.targets._common import (
    Runner,
    check_options,
    conversion_error,
    package_versions,
    prepare,
    quiet_stdout,
    require,
)
from effvit_deploy.export.targets.tflite import graph as tflite_graph
from effvit_deploy.export.targets.tflite import inline


class TfliteTarget:
    name = "tflite"
    suffix = ".tflite"
    precisions = ("fp32", "fp16", "int8")
    split_style = "tfl"  # how the deploy form splits a joined q|k|v for this converter (deploy.head_split)
    joined_qkv_max_tokens = 0  # separate q, k, v convs keep one XNNPACK partition
    nhwc_input = True  # can the artifact take an NHWC (1, H, W, 3) input
    int8_method = "ai-edge-quantizer static_wi8_ai8 on the fp32 .tflite (min/max calibration), float I/O"
    # can the attention matmuls run in int8 inside the runtime's fast path, and if not, why
    int8_attention = (
        False,
        "TFLite's XNNPACK delegate has no int8 BATCH_MATMUL (it would split the graph) and TFLite's int8 DIV aborts "
        "when a denominator rounds to its zero point",
    )
    int8_from_simulation = False  # the artifact is calibrated by AEQ; the PT2E simulation only guides decisions

    def convert(
        self, module: nn.Module, example: torch.Tensor, out_path: Path, *, precision: str, nhwc: bool = False
    ) -> dict | None:
        """Convert `module` at `example`'s (NCHW) shape to `out_path` (.tflite). Returns extra census info (none here).

        Raises:
            InvalidInputError: precision not fp32/fp16.
            MissingDependencyError: litert-torch missing.
            ConversionError: litert-torch failed on the model.
        """
        check_options(self.name, precision, nhwc, nhwc_ok=self.nhwc_input)
        litert_torch = require("litert_torch", self.name)
        # fp16 is a weight format applied by the converter, not a .half() module
        work = prepare(module, "fp32", self.split_style)
        args = (example.float(),)
        if nhwc:
            work = litert_torch.to_channel_last_io(work, args=[0]).eval()
            args = (example.float().permute(0, 2, 3, 1).contiguous(),)
        quant_config = None
        if precision == "fp16":
            from litert_torch.generative.quantize import quant_recipes

            quant_config = quant_recipes.full_fp16_recipe()
        _register_split_lowering()
        try:
            with _litert_progress_off(), quiet_stdout():
                edge = litert_torch.convert(work, args, quant_config=quant_config)
                edge.export(str(out_path))
        except Exception as exc:  # the converter raises many types; all mean "this model did not convert"
            raise conversion_error(self.name, module, exc) from exc
        inline.inline_in_place(out_path)  # fp16 weights come after the flatbuffer; not every runtime reads them there
        return None

    def quantize(self, module: nn.Module, example: torch.Tensor, out_path: Path, *, calib, fp32_attention,
                 simulation, attention_modules, nhwc: bool = False) -> dict:
        """int8 artifact at `out_path` (AEQ over this target's fp32 conversion); see `int8.py`.

        Returns {"islands": attention islands found, "census": int8 census, "extra": {}}.
        """
        from effvit_deploy.export.targets.tflite import int8

        def fp32(work: nn.Module, x: torch.Tensor, path: Path, *, nhwc: bool = False) -> None:
            self.convert(work, x, path, precision="fp32", nhwc=nhwc)

        built = int8.quantize(fp32, module, example, out_path, calib, fp32_attention, hardswish_fp32=True, nhwc=nhwc)
        inline.inline_in_place(out_path)  # AEQ, too, writes the weights after the flatbuffer
        return {"islands": built["islands"], "census": int8.census(out_path), "extra": {}}

    def load_runner(self, path: Path, *, threads: int = 1) -> Runner:
        """TFLite interpreter with the default XNNPACK delegate and `threads` threads: NCHW float32 in, logits out."""
        interpreter = _interpreter(path, threads)
        interpreter.allocate_tensors()
        inp = interpreter.get_input_details()[0]
        out = interpreter.get_output_details()[0]
        channels_last = _is_nhwc(tuple(inp["shape"]))

        def run(x: np.ndarray) -> np.ndarray:
            x = np.asarray(x, dtype=np.float32)
            if channels_last:
                x = x.transpose(0, 2, 3, 1)
            interpreter.set_tensor(inp["index"], np.ascontiguousarray(x, dtype=inp["dtype"]))
            interpreter.invoke()
            return np.array(interpreter.get_tensor(out["index"]), dtype=np.float32)

        return run

    def census(self, path: Path) -> dict:
        """Builtin op name -> count, plus XNNPACK partitions / delegated / undelegated ops and the input layout."""
        ops = tflite_graph.op_counts(Path(path).read_bytes())
        interpreter = _interpreter(path, 1)
        shape = tuple(int(d) for d in interpreter.get_input_details()[0]["shape"])
        interpreter.allocate_tensors()  # the default XNNPACK delegate is applied here
        delegated = tflite_graph.delegation(interpreter)
        return {
            "ops": dict(sorted(ops.items())),
            "partitions": delegated.partitions,
            "delegated_ops": delegated.delegated_ops,
            "total_ops": delegated.total_ops,
            "undelegated": dict(sorted(delegated.undelegated.items())),
            "layout": "NHWC" if _is_nhwc(shape) else "NCHW",
        }

    def input_name(self, path: Path) -> str:
        """Name of the graph's input tensor (benchmark_model needs it to feed a file: --input_layer=NAME)."""
        return str(_interpreter(path, 1).get_input_details()[0]["name"])

    def versions(self) -> dict[str, str]:
        """Tool versions that shape the artifact; imports them first, so a missing one raises MissingDependencyError."""
        for module in ("litert_torch", "ai_edge_litert.interpreter"):
            require(module, self.name)
        return package_versions("torch", "litert-torch", "ai-edge-litert", "ai-edge-quantizer")


def _interpreter(path: Path, threads: int):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError:
            require("ai_edge_litert.interpreter", "tflite")  # raises MissingDependencyError naming the extra
            raise
    return Interpreter(model_path=str(path), num_threads=threads)


@functools.cache
def _register_split_lowering() -> None:
    """Lower `effvit::split_heads` (deploy.head_split) to one TFLite SPLIT, once per process.

    litert-torch turns every torch split into SLICE ops; its own lowering registry (the one its `tfl.*` ops use)
    takes a custom op and emits `tfl.split`, which XNNPACK delegates.
    """
    from litert_torch.backend.experimental.torch_tfl import _lowerings as tfl_lowerings
    from litert_torch.backend.lowerings import utils as lowering_utils

    @tfl_lowerings.lower(torch.ops.effvit.split_heads.default)
    def _split_heads_lowering(lctx, x, parts: int):  # noqa: ANN001, ANN202 - litert-torch's lowering signature
        axis = lowering_utils.numpy_array_constant(np.array(0, dtype=np.int32))
        count = tfl_lowerings.ir.IntegerAttr.get(tfl_lowerings.ir.IntegerType.get_signless(32), parts)
        return tfl_lowerings._ir_operation(  # noqa: SLF001 - the helper litert-torch's own tfl lowerings use
            "tfl.split", results=lowering_utils.node_meta_to_ir_types(lctx.node), operands=[axis, x],
            attributes={"num_splits": count},
        )


def _is_nhwc(shape: tuple[int, ...]) -> bool:
    return len(shape) == 4 and shape[3] == 3 and shape[1] != 3


@contextlib.contextmanager
def _litert_progress_off() -> Iterator[None]:
    """litert-torch draws progress lines on stderr; the pipeline reports progress itself.

    (The AI Edge Quantizer's tqdm bars in fp16 conversions pass `disable=` explicitly, so no switch silences them.)
    """
    key = "LITERT_TORCH_SHOW_PROGRESS"
    before = os.environ.get(key)
    os.environ[key] = "n"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = before
