"""`quantize_for_target`: one int8 artifact for one runtime, with its accuracy, layer sensitivity and op census.

Steps, the same for every target:
1. check the request (target, attention mode, calibration arrays; a combination the runtime cannot take is refused
   with one line before any work);
2. simulate int8 with PT2E on the calibration images and measure SQNR layer by layer (`pt2e`, `sensitivity`);
3. choose per attention core int8 or an fp32 island (`--int8-attention auto|int8|fp32`);
4. the target writes the artifact to exactly `out_path` and counts what runs in int8 (`backend.quantize`: each
   runtime's recipe and graph reader live with its target, `targets/<runtime>/int8.py`);
5. run it in its own runtime on the held-out images and compare with the fp32 PyTorch module.

What each runtime can run in int8 decides what `auto` may choose (`backend.int8_attention`): ExecuTorch's XNNPACK
partitioner and TFLite's XNNPACK delegate take batched matmul only in fp32, and TFLite's int8 DIV aborts when a
denominator rounds to its zero point, so there every core is an fp32 island; ONNX Runtime has int8 MatMul, so there
`auto` measures.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ...errors import InvalidInputError, QuantizationError
from . import metrics, pt2e, sensitivity
from .calibration import heldout_images

log = logging.getLogger(__name__)

ATTENTION_MODES = ("auto", "int8", "fp32")
# Activation observers of the PT2E simulation (for ExecuTorch it is the artifact): min/max everywhere, as
# ai-edge-quantizer and onnxruntime calibrate. XNNPACKQuantizer's default histogram observer gave the same accuracy
# on efficientvit-b1 at 224 (logits SQNR 31.0 vs 31.2 dB, random weights) at 15x the calibration time (74 s vs 5 s).
SIM_OBSERVER = "minmax"
SIM_SAMPLES = 16  # calibration images used by the simulation when it only guides decisions (tflite, onnx)
SQNR_SAMPLES = 4  # calibration images for the per-layer SQNR pass
SCHEME = "int8 weights symmetric per output channel; int8 activations asymmetric per tensor; int32 bias"
HARDSWISH_NOTE = (
    "one op per nn.Hardswish, computed in fp32 between a dequantize and a quantize: TFLite's XNNPACK delegate and "
    "ExecuTorch's XNNPACK partitioner take hard-swish only in fp32 (an int8 HARD_SWISH would run outside XNNPACK "
    "and split the graph), ONNX Runtime has no int8 HardSwish kernel"
)


def attention_modules(module: nn.Module) -> list[str]:
    """Qualified names of the attention modules (deploy form or not), in module order (= execution order)."""
    names = []
    for name, child in module.named_modules():
        kind = type(child).__name__
        if kind in ("DeployLiteMLA", "LiteMLA"):
            names.append(name)
    return names


def _backend(target: Any) -> Any:
    """A target backend from its name (or the backend itself); imported late, targets import this package."""
    if not isinstance(target, str):
        return target
    from ..targets import TARGETS

    if target not in TARGETS:
        able = [name for name, t in TARGETS.items() if "int8" in t.precisions]
        raise InvalidInputError(f"int8 export supports targets {', '.join(able)}, not {target!r}")
    return TARGETS[target]


def check_options(target: Any, attention: str) -> None:
    """Refuse an int8 target / attention combination the runtime cannot take (cheap; for early request checks).

    Args:
        target: a target name or backend (`effvit_deploy.export.targets`).
    Raises:
        InvalidInputError: a target without int8, an unknown attention mode, or `--int8-attention int8` where the
            runtime has no int8 attention matmul.
    """
    backend = _backend(target)
    if "int8" not in backend.precisions:
        from ..targets import TARGETS

        able = [name for name, t in TARGETS.items() if "int8" in t.precisions]
        raise InvalidInputError(f"int8 export is available for {', '.join(able)}, not for {backend.name}")
    if attention not in ATTENTION_MODES:
        raise InvalidInputError(
            f"unknown int8 attention mode {attention!r}; choose one of: {', '.join(ATTENTION_MODES)}"
        )
    capable, reason = backend.int8_attention
    if attention == "int8" and not capable:
        raise InvalidInputError(
            f"--int8-attention int8 is not possible for {backend.name}: {reason}; use --int8-attention auto or fp32"
        )


def check_request(target: Any, attention: str, calib: Sequence[np.ndarray], example: torch.Tensor) -> None:
    """Refuse, in one line, anything that cannot work, before any work is done."""
    check_options(target, attention)
    if not calib:
        raise InvalidInputError("int8 export needs at least one calibration image; pass --calib DIR with images")
    shape = tuple(example.shape)
    for array in calib:
        if tuple(np.shape(array)) != shape:
            raise InvalidInputError(
                f"calibration arrays must have the example's shape {shape}, got {tuple(np.shape(array))}"
            )


def quantize_for_target(
    target: Any,
    module: nn.Module,
    example: torch.Tensor,
    out_path: Path,
    *,
    calib: Sequence[np.ndarray],
    attention: str = "auto",
    heldout: Sequence[np.ndarray] | None = None,
    nhwc: bool = False,
) -> dict[str, Any]:
    """Write the int8 artifact for `target` to exactly `out_path` and return its int8 manifest section.

    Args:
        target: a target backend with int8 in its precisions, or its name ("tflite", "executorch", "onnx").
        module: the fp32 model (usually its deploy form), eval mode; it is the accuracy reference and is not modified.
        example: (1, 3, H, W) float32 input fixing the traced shape.
        out_path: file to write (the pipeline passes a temp path and renames it after verification).
        calib: preprocessed NCHW float32 calibration arrays (see `calibration_images`).
        attention: "auto" (measure per core), "int8" or "fp32" (every core).
        heldout: evaluation arrays, disjoint from `calib`; default: the bundled held-out photos at this resolution.
        nhwc: NHWC artifact input (tflite only).

    Returns:
        {"method", "scheme", "attention_mode",
         "attention": [per core: module, choice, reason, island_sqnr_in_db, island_sqnr_out_db
                       (+ int8_sqnr_in_db, int8_sqnr_out_db, int8_cost_db where simulated)],
         "accuracy": {cosine, cosine_min, sqnr_db, top1_agreement, top5_agreement, samples, reference},
         "worst_layers": [5 x {layer, op, module, sqnr_db, added_db}], "layer_sqnr_source",
         "census": {int8/float ops, boundaries, ..., "runtime": the target's own census},
         "calibration", "heldout", "hardswish", "seconds"}.

    Raises:
        InvalidInputError: unknown target or mode, a mode the runtime cannot take, empty or mis-shaped calibration,
            NHWC for a target other than tflite.
        MissingDependencyError: the runtime's package (or its quantization tool) is not installed.
    """
    backend = _backend(target)
    check_request(backend, attention, calib, example)
    if nhwc and not backend.nhwc_input:
        raise InvalidInputError(f"{backend.name} int8 artifacts are NCHW only; NHWC input is a tflite option")
    module = module.eval()
    example = example.float()
    started = time.perf_counter()
    seconds: dict[str, float] = {}
    names = attention_modules(module)
    height, width = int(example.shape[-2]), int(example.shape[-1])
    if heldout is None:
        heldout = heldout_images((height, width))
    capable, reason = backend.int8_attention

    # 1. simulation: what int8 costs per layer, and per attention core if the runtime could run it in int8
    tick = time.perf_counter()
    observer = SIM_OBSERVER
    sim_calib = list(calib) if backend.int8_from_simulation else list(calib)[:SIM_SAMPLES]
    probe = list(calib)[:SQNR_SAMPLES]
    fp32_graph = pt2e.export_graph(module, example)

    def simulate(int8_cores: Sequence[str], stats: pt2e.ObserverStats | None = None) -> pt2e.FakeQuant:
        return pt2e.fake_quantize(module, example, sim_calib, attention=names, int8_attention=int8_cores,
                                  fp32_graph=fp32_graph, observer=observer, stats=stats)

    int8_rows = None
    if names and capable and attention != "fp32":
        # every core int8 first: its observers cover the island simulation's, which then reuses its ranges
        fq_int8 = simulate(names)
        fq = simulate([], stats=fq_int8.stats)
        rows, int8_rows = pt2e.layer_sqnr_many([fq, fq_int8], probe)
    else:
        fq = simulate([])
        rows = pt2e.layer_sqnr(fq, probe)
    island_cores = sensitivity.attention_cores(rows, names)
    decisions = sensitivity.decide(
        attention, island_cores, sensitivity.attention_cores(int8_rows, names) if int8_rows else None, capable, reason
    )
    int8_cores = [d["module"] for d in decisions if d["choice"] == "int8"]
    if int8_cores and len(int8_cores) == len(names):
        fq, rows = fq_int8, int8_rows
    elif int8_cores:
        fq = simulate(int8_cores, stats=fq_int8.stats)
        rows = pt2e.layer_sqnr(fq, probe)
    seconds["simulate"] = round(time.perf_counter() - tick, 2)

    # 2. the artifact
    tick = time.perf_counter()
    keep_fp32 = [d["choice"] == "fp32" for d in decisions]
    built = backend.quantize(module, example, Path(out_path), calib=calib, fp32_attention=keep_fp32, simulation=fq,
                             attention_modules=names, nhwc=nhwc)
    int8_census, extra = built["census"], built["extra"]
    if built["islands"] != len(names):
        raise QuantizationError(
            f"{backend.name}: {built['islands']} attention islands in the graph, {len(names)} modules"
        )
    seconds["convert"] = round(time.perf_counter() - tick, 2)

    # 3. accuracy of the artifact in its runtime against the fp32 PyTorch module, on held-out images
    tick = time.perf_counter()
    runner = backend.load_runner(Path(out_path), threads=1)
    with torch.no_grad():
        reference = metrics.run_all(lambda x: module(torch.from_numpy(x)).numpy(), heldout)
    quantized = metrics.run_all(runner, heldout)
    accuracy = metrics.compare_logits(reference, quantized)
    accuracy["reference"] = "fp32 PyTorch module (as passed: the deploy form) on the held-out images"
    seconds["evaluate"] = round(time.perf_counter() - tick, 2)

    runtime_census = backend.census(Path(out_path))
    int8_census["boundary_list"] = int8_census["boundary_list"][:64]
    seconds["total"] = round(time.perf_counter() - started, 2)
    return {
        "method": backend.int8_method,
        "scheme": SCHEME,
        "attention_mode": attention,
        "attention": decisions,
        "accuracy": accuracy,
        "worst_layers": sensitivity.worst_layers(rows),
        "layer_sqnr_source": f"PT2E int8 simulation ({observer} observers) on {len(probe)} calibration images",
        "census": {**int8_census, "runtime": {**runtime_census, **extra}},
        "calibration": _describe(calib, "calibration"),
        "heldout": _describe(heldout, "held-out"),
        "hardswish": HARDSWISH_NOTE,
        "seconds": seconds,
    }


def _describe(images: Sequence[np.ndarray], what: str) -> dict:
    source = getattr(images, "source", None)
    if source:
        return dict(source)
    return {"kind": f"{what} arrays passed by the caller", "samples": len(images)}
