"""ONNX target: torch.onnx (dynamo exporter) -> onnxscript optimizer without its no-op rules -> onnxsim -> .onnx.

Everything about ONNX Runtime lives in this package: conversion, runner and census here; int8 (onnxruntime QDQ) and
its int8 census in `int8.py`; the op tables the attention-island finder and the census need in `ops.py`.

Graph: static shapes, opset 18 (LayerNormalization is native from 17; 18 is old enough for every mobile ONNX Runtime
we care about), one input "input" (NCHW float32) and one output "logits" (float32). The exporter emits `HardSwish`
for `aten.hardswish` directly, one node per `nn.Hardswish`.

Why not `torch.onnx.export(..., optimize=True)`: onnxscript 0.7.2's default rewrite rules include `x + 0 -> x`, and its
pattern matcher compares constants with `abs_tol=1e-8`, so LiteMLA's `+ 1e-15` before the division is deleted as a
no-op and any all-zero ReLU column then gives 0/0 = NaN in ONNX Runtime (PyTorch gives 0). We run the same optimizer
passes ourselves with the no-op rules (`x+0`, `x-0`, `x*1`, `x/1`, dropout) left out; everything else (constant
folding, BatchNorm->Conv fusion, reshape/transpose clean-ups) is unchanged.

fp16: the module is exported in half precision behind float32 I/O (`Cast` after the input and before the output), so
the artifact takes the same tensor as the fp32 one; attention runs in fp32 because LiteMLA casts to float itself.

The artifact carries `metadata_props` `effvit_deploy.simplified` = "true"/"false" (whether onnxsim succeeded), which
`census` reports.
"""

from __future__ import annotations

import logging
from collections import Counter
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

logger = logging.getLogger(__name__)

OPSET = 18
INPUT_NAME = "input"
OUTPUT_NAME = "logits"
_SIMPLIFIED_KEY = "effvit_deploy.simplified"
_ORT_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}


class OnnxTarget:
    name = "onnx"
    suffix = ".onnx"
    precisions = ("fp32", "fp16", "int8")
    split_style = "chunk"  # how the deploy form splits a joined q|k|v for this converter (deploy.head_split)
    joined_qkv_max_tokens = 256  # small maps: one qkv conv (ORT pays per node); larger: three (deploy.lite_mla_joined)
    nhwc_input = False  # can the artifact take an NHWC (1, H, W, 3) input
    int8_method = "onnxruntime quantize_static QDQ, per-channel, min/max calibration"
    int8_attention = (True, "ONNX Runtime has int8 MatMul (the division stays fp32: there is no int8 Div kernel)")
    int8_from_simulation = False

    def convert(
        self, module: nn.Module, example: torch.Tensor, out_path: Path, *, precision: str, nhwc: bool = False
    ) -> dict | None:
        """Export `module` traced at `example`'s shape to `out_path` (.onnx). Returns extra census info (none here).

        Raises:
            InvalidInputError: precision not fp32/fp16, or nhwc requested.
            MissingDependencyError: onnx, onnxscript or onnxsim missing.
            ConversionError: torch.onnx failed on the model.
        """
        check_options(self.name, precision, nhwc, nhwc_ok=self.nhwc_input)
        onnx = require("onnx", self.name)
        require("onnxscript", self.name)
        onnxsim = require("onnxsim", self.name)
        work = prepare(module, precision, self.split_style)
        try:
            with quiet_stdout():
                program = torch.onnx.export(
                    work,
                    (example.float(),),
                    None,
                    dynamo=True,
                    optimize=False,
                    opset_version=OPSET,
                    input_names=[INPUT_NAME],
                    output_names=[OUTPUT_NAME],
                    verbose=False,
                )
            proto = _optimize(program.model)
        except Exception as exc:  # the exporter raises many types; all mean "this model did not convert"
            raise conversion_error(self.name, module, exc) from exc
        simplified = False
        try:
            candidate, ok = onnxsim.simplify(proto)
            if ok:
                proto, simplified = candidate, True
            else:
                logger.warning("onnxsim could not verify its result; keeping the unsimplified ONNX graph")
        except Exception as exc:  # onnxsim failing is not fatal: the unsimplified graph is correct, just less tidy
            logger.warning("onnxsim failed (%s); keeping the unsimplified ONNX graph", exc)
        onnx.helper.set_model_props(proto, {_SIMPLIFIED_KEY: "true" if simplified else "false"})
        onnx.save(proto, str(out_path))
        return None

    def quantize(self, module: nn.Module, example: torch.Tensor, out_path: Path, *, calib, fp32_attention,
                 simulation, attention_modules, nhwc: bool = False) -> dict:
        """int8 QDQ artifact at `out_path` (onnxruntime over this target's fp32 export); see `int8.py`.

        Returns {"islands": attention islands found, "census": int8 census, "extra": {}}.
        """
        from effvit_deploy.export.targets.onnx import int8

        def fp32(work: nn.Module, x: torch.Tensor, path: Path) -> None:
            self.convert(work, x, path, precision="fp32")

        built = int8.quantize(fp32, module, example, out_path, calib, fp32_attention)
        return {"islands": built["islands"], "census": int8.census(out_path, built["island_nodes"]), "extra": {}}

    def load_runner(self, path: Path, *, threads: int = 1) -> Runner:
        """ONNX Runtime CPU session (intra-op `threads`, inter-op 1, all graph optimizations): NCHW -> logits."""
        ort = require("onnxruntime", self.name)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        feed = session.get_inputs()[0]
        dtype = _ORT_DTYPES.get(feed.type, np.float32)

        def run(x: np.ndarray) -> np.ndarray:
            return np.asarray(session.run(None, {feed.name: np.ascontiguousarray(x, dtype=dtype)})[0], np.float32)

        return run

    def census(self, path: Path) -> dict:
        """Op type -> count in the main graph; ONNX Runtime's CPU provider has no delegate, so partitions is None."""
        onnx = require("onnx", self.name)
        proto = onnx.load(str(path), load_external_data=False)
        ops = Counter(node.op_type for node in proto.graph.node)
        props = {p.key: p.value for p in proto.metadata_props}
        simplified = props.get(_SIMPLIFIED_KEY)
        return {
            "ops": dict(sorted(ops.items())),
            "partitions": None,
            "delegated_ops": None,
            "total_ops": sum(ops.values()),
            "undelegated": {},
            "opset": next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None),
            "simplified": None if simplified is None else simplified == "true",
        }

    def versions(self) -> dict[str, str]:
        """Tool versions that shape the artifact; imports them first, so a missing one raises MissingDependencyError."""
        for module in ("onnx", "onnxscript", "onnxsim", "onnxruntime"):
            require(module, self.name)
        return package_versions("torch", "onnx", "onnxscript", "onnxsim", "onnxruntime")


def _optimize(model):  # onnx_ir.Model -> onnx.ModelProto
    """onnxscript's default optimizer (optimize_ir) minus the no-op rules that delete `+ eps` (see module docstring)."""
    import onnx_ir as ir
    import onnx_ir.passes.common as common_passes
    from onnxscript import optimizer, rewriter
    from onnxscript.rewriter.rules.common import _no_op

    unsafe = set(_no_op.rules.rules)
    rules = [rule for rule in rewriter._DEFAULT_REWRITE_RULES if rule not in unsafe]
    common_passes.InlinePass()(model)
    for _ in range(2):  # optimize_ir's default: two rounds of fold + rewrite
        optimizer.fold_constants(model)
        rewriter.rewrite(model, pattern_rewrite_rules=rules)
    optimizer.remove_unused_nodes(model)
    common_passes.LiftConstantsToInitializersPass(lift_all_constants=True, size_limit=0)(model)
    common_passes.DeduplicateInitializersPass()(model)
    common_passes.CommonSubexpressionEliminationPass()(model)
    return ir.serde.serialize_model(model)
