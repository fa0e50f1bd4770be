"""PT2E int8 simulation shared by every target: annotate, calibrate, convert (fake-quant), compare layer by layer.

The quantizer is ExecuTorch's `XNNPACKQuantizer` (symmetric int8 per-channel weights, asymmetric int8 per-tensor
activations, histogram observers), which annotates conv, linear, add, mul, cat and average pooling, plus
annotations it lacks:
- hard-swish (optional, off by default): quantized input and output. Off, hard-swish is one fp32 op between a
  dequantize and a quantize, which is how every runtime here runs it (XNNPACK takes hard-swish only in fp32);
- the attention matmuls of the modules in `int8_attention` (module names): int8 inputs, fp32 output (int32
  accumulation rescaled, as ONNX Runtime's MatMulIntegerToFloat does). The matmul outputs (numerator and the
  normaliser's denominator) and the division stay fp32: quantizing the denominator to int8 rounds small ones to
  zero, and no runtime here has a usable int8 division (TFLite's int8 DIV aborts when a denominator rounds to its
  zero point, XNNPACK has no QS8 divide, onnxruntime has no QLinearDiv).

The converted GraphModule is the reference for per-layer SQNR (see `layer_sqnr`) and, for ExecuTorch, exactly the
graph that gets lowered.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import fx

from ...errors import MissingDependencyError
from ..deploy.head_split import with_split_style
from .metrics import db_from_sums

log = logging.getLogger(__name__)

aten = torch.ops.aten
QDQ = torch.ops.quantized_decomposed

HARDSWISH_OPS = (aten.hardswish.default, aten.hardswish_.default)
MATMUL_OPS = (aten.matmul.default, aten.bmm.default, aten.mm.default)
# Ops whose outputs are "layers" in the per-layer SQNR table.
LAYER_OPS = {
    aten.conv2d.default: "conv",
    aten.convolution.default: "conv",
    aten.linear.default: "linear",
    aten.matmul.default: "matmul",
    aten.bmm.default: "matmul",
    aten.mm.default: "matmul",
    aten.div.Tensor: "div",
    aten.hardswish.default: "hardswish",
    aten.add.Tensor: "add",
    aten.layer_norm.default: "layer_norm",
    aten.adaptive_avg_pool2d.default: "avgpool",
    aten.mean.dim: "mean",
}
QUANTIZE_TARGETS = {"quantize_per_tensor", "quantize_per_channel"}
DEQUANTIZE_TARGETS = {"dequantize_per_tensor", "dequantize_per_channel"}


def _op_name(node: fx.Node) -> str:
    target = node.target
    name = getattr(target, "__name__", str(target))
    return name.split(".")[0]


def module_path(node: fx.Node) -> str:
    """The innermost module a node was traced in ('' for the root)."""
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return ""
    return list(stack.values())[-1][0]


def _in_module(node: fx.Node, names: Iterable[str]) -> bool:
    stack = node.meta.get("nn_module_stack") or {}
    paths = {value[0] for value in stack.values()}
    return any(name in paths for name in names)


def export_graph(module: torch.nn.Module, example: torch.Tensor) -> fx.GraphModule:
    """torch.export the module (eval, no grad) and return its GraphModule (aten ops, nn_module_stack kept).

    A joined q|k|v is split with slices (`head_split`): this graph is the one ExecuTorch lowers, and XNNPACK's
    partitioner delegates `slice_copy` but not `split_with_sizes_copy`.
    """
    with torch.no_grad():
        return torch.export.export(with_split_style(module, "slice").eval(), (example,), strict=False).module()


# Ops inside an attention core that may stay int8 (data movement, the ReLU kernel, the multi-scale concat); every
# other op of the core (sum/mean, mul, add eps, bmm, div) is left unannotated, i.e. fp32.
CORE_INT8_OPS = {aten.cat.default, aten.relu.default, aten.reshape.default, aten.view.default,
                 aten.permute.default, aten.transpose.int, aten.flatten.using_ints}


def _quantizer(attention: set[str], int8_attention: set[str], hardswish: bool = False, observer: str = "histogram",
               all_patterns: bool = False):
    try:
        from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
            XNNPACKQuantizer,
            get_symmetric_quantization_config,
        )
    except ImportError as exc:
        raise MissingDependencyError(
            f"int8 export simulates quantization with ExecuTorch's XNNPACKQuantizer for every target ({exc}); "
            "install it with: pip install 'effvit-deploy[executorch]'"
        ) from exc
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer_utils import _is_share_obs_or_fq_op
    from torchao.quantization.pt2e.observer import MinMaxObserver
    from torchao.quantization.pt2e.quantizer import QuantizationAnnotation, QuantizationSpec, SharedQuantizationSpec
    from torchao.quantization.pt2e.quantizer.quantizer import Q_ANNOTATION_KEY

    config = get_symmetric_quantization_config(is_per_channel=True)
    act = config.input_activation
    if observer == "minmax":  # what ai-edge-quantizer and onnxruntime's default calibration do
        act = QuantizationSpec(
            dtype=act.dtype, quant_min=act.quant_min, quant_max=act.quant_max, qscheme=act.qscheme,
            is_dynamic=False, observer_or_fake_quant_ctr=MinMaxObserver.with_args(eps=2**-12),
        )
        config = type(config)(act, act, config.weight, config.bias, config.is_qat)

    def _annotate(node: fx.Node, inputs: Sequence[fx.Node], output: bool = True) -> None:
        if Q_ANNOTATION_KEY in node.meta and node.meta[Q_ANNOTATION_KEY]._annotated:
            return
        node.meta[Q_ANNOTATION_KEY] = QuantizationAnnotation(
            input_qspec_map={arg: act for arg in inputs}, output_qspec=act if output else None, _annotated=True
        )

    class EffvitQuantizer(XNNPACKQuantizer):
        """XNNPACKQuantizer + whole-op hard-swish + int8 attention matmuls for the chosen modules."""

        def transform_for_annotation(self, model: fx.GraphModule) -> fx.GraphModule:
            # XNNPACKQuantizer turns scalar operands of add/mul into 0-dim tensor constants so they can be quantized;
            # the only scalar here is the attention's `+ eps` (fp32 island), and XNNPACK's channels-last pass fails
            # on the 0-dim constant at lowering. Keep scalars as they are.
            return model

        def annotate(self, model: fx.GraphModule) -> fx.GraphModule:
            if not all_patterns and not any("batch_norm" in str(n.target) for n in model.graph.nodes):
                # The conv-bn annotators can only match a batch norm (the deploy form has none: folded), yet each
                # torch.exports its pattern graphs: ~5 s per prepare at any resolution. Without a batch norm they
                # annotate nothing; their one side effect, dead-code elimination, is done here.
                model.graph.eliminate_dead_code()
                model.recompile()
                self.SUPPORTED_PATTERNS = [p for p in XNNPACKQuantizer.SUPPORTED_PATTERNS if "_bn" not in p.name]
            for node in model.graph.nodes:
                if node.op != "call_function":
                    continue
                if hardswish and node.target in HARDSWISH_OPS:
                    _annotate(node, [node.args[0]])
                elif node.target in MATMUL_OPS and _in_module(node, int8_attention):
                    # int8 x int8 -> int32 accumulate -> fp32 output: the normaliser and the division stay fp32
                    _annotate(node, [a for a in node.args[:2] if isinstance(a, fx.Node)], output=False)
            model = self._annotate_for_quantization_config(model)
            _propagate_outside_cores(model)
            return model

    def _propagate_outside_cores(model: fx.GraphModule) -> None:
        """XNNPACK's `propagate_annotation` (shape ops and means share their input's qparams), except inside the
        attention cores: there a shared int8 mean would round the normaliser's key sum to zero for small sums and
        the division by (0 + eps) would blow the output up by ~1e15."""
        for n in model.graph.nodes:
            if n.op != "call_function" or not _is_share_obs_or_fq_op(n.target) or not outside_cores(n):
                continue
            prev = n.args[0]
            if not isinstance(prev, fx.Node):
                continue
            annotation = prev.meta.get(Q_ANNOTATION_KEY)
            if annotation is None or annotation.output_qspec is None:
                continue
            if Q_ANNOTATION_KEY in n.meta and n.meta[Q_ANNOTATION_KEY]._annotated:
                continue
            shared = SharedQuantizationSpec(prev)
            n.meta[Q_ANNOTATION_KEY] = QuantizationAnnotation(
                input_qspec_map={prev: shared}, output_qspec=shared, _annotated=True
            )

    def outside_cores(node: fx.Node) -> bool:
        return module_path(node) not in attention or node.target in CORE_INT8_OPS

    return EffvitQuantizer().set_global(config).set_filter_function(outside_cores)


# Observers whose state is exactly a running min and max: calibration order does not matter, so the state of one
# calibrated graph can be handed to another graph that observes the same tensors.
_MINMAX_OBSERVERS = ("MinMaxObserver", "PerChannelMinMaxObserver")


@dataclass
class ObserverStats:
    """(min_val, max_val) of every min/max observer of a calibrated prepared graph, keyed by the set of tensors
    (node names of the fp32 graph) it observed.

    Why: the simulations `quantize_for_target` compares differ only in which attention matmuls are annotated; their
    prepared graphs run fp32 values through pass-through observers, so an observer that watches the same tensors
    sees the same values in every one of them. Calibrating the graph with every core int8 (whose observers are a
    superset) once and loading its ranges into the others gives them the state their own calibration would reach,
    without running the calibration images again.
    """

    ranges: dict[frozenset[str], tuple[str, torch.Tensor, torch.Tensor]]  # (observer type, min_val, max_val)
    samples: int

    @staticmethod
    def of(prepared: fx.GraphModule, samples: int) -> ObserverStats | None:
        """The ranges of a calibrated prepared graph; None when an observer is not a plain min/max one."""
        groups = _observer_groups(prepared)
        if groups is None:
            return None
        ranges = {}
        for target, sources in groups.items():
            obs = prepared.get_submodule(target)
            ranges[sources] = (type(obs).__name__, obs.min_val.detach().clone(), obs.max_val.detach().clone())
        return ObserverStats(ranges, samples)

    def load_into(self, prepared: fx.GraphModule) -> bool:
        """Set every observer of `prepared` from these ranges; False (nothing changed) unless all of them match."""
        groups = _observer_groups(prepared)
        if groups is None:
            return False
        for target, sources in groups.items():
            if sources not in self.ranges or self.ranges[sources][0] != type(prepared.get_submodule(target)).__name__:
                return False
        for target, sources in groups.items():
            obs = prepared.get_submodule(target)
            _, lo, hi = self.ranges[sources]
            obs.min_val, obs.max_val = lo.clone(), hi.clone()
        return True


def _observer_groups(prepared: fx.GraphModule) -> dict[str, frozenset[str]] | None:
    """Observer module name -> the names of the tensors it is called on (None if one is not a min/max observer)."""
    groups: dict[str, set[str]] = {}
    for node in prepared.graph.nodes:
        if node.op != "call_module" or not node.target.startswith("activation_post_process"):
            continue
        if type(prepared.get_submodule(node.target)).__name__ not in _MINMAX_OBSERVERS:
            return None
        source = node.args[0]
        groups.setdefault(node.target, set()).add(source.name if isinstance(source, fx.Node) else repr(source))
    return {target: frozenset(sources) for target, sources in groups.items()}


@dataclass
class FakeQuant:
    """The fp32 graph (prepared, observers inert) and its int8 simulation with the same node names."""

    fp32: fx.GraphModule
    quant: fx.GraphModule
    int8_attention: frozenset[str]
    calib_samples: int
    stats: ObserverStats | None = None  # the calibrated observer ranges (min/max observers only)
    reused_ranges: bool = False  # True: ranges loaded from `stats` of another simulation, calibration not re-run


def fake_quantize(
    module: torch.nn.Module,
    example: torch.Tensor,
    calib: Sequence[np.ndarray],
    *,
    attention: Iterable[str] = (),
    int8_attention: Iterable[str] = (),
    fp32_graph: fx.GraphModule | None = None,
    observer: str = "histogram",
    hardswish: bool = False,
    stats: ObserverStats | None = None,
    all_patterns: bool = False,
) -> FakeQuant:
    """prepare_pt2e -> calibration images -> convert_pt2e (int8 weight constants, q/dq pairs on activations).

    attention: names of all attention modules: their cores' compute ops (normaliser sum, eps add, matmuls, division)
        are kept out of the global annotation, so a core is an fp32 island unless listed in `int8_attention`.
    observer: "histogram" (XNNPACKQuantizer's default, used for ExecuTorch) or "minmax" (to mirror AEQ / ORT).
    hardswish: annotate hard-swish as int8 (off: it stays fp32 between q/dq, as every runtime here runs it).
    stats: observer ranges of an earlier calibration on the same images (`FakeQuant.stats`) whose observers cover
        this graph's: loaded instead of calibrating again (same ranges, see `ObserverStats`); when they do not
        cover it, the images in `calib` are run as usual.
    all_patterns: run every XNNPACKQuantizer annotator, also the conv-bn ones on a graph without batch norm (the
        tests check that this changes nothing).
    """
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    fp32 = fp32_graph if fp32_graph is not None else export_graph(module, example)
    names = frozenset(int8_attention)
    quantizer = _quantizer(set(attention) | set(names), set(names), hardswish=hardswish, observer=observer,
                           all_patterns=all_patterns)
    prepared = prepare_pt2e(copy.deepcopy(fp32), quantizer)
    reused = stats is not None and stats.samples == len(calib) and stats.load_into(prepared)
    if not reused:
        with torch.no_grad():
            for sample in calib:
                prepared(torch.from_numpy(np.ascontiguousarray(sample, dtype=np.float32)))
    ranges = ObserverStats.of(prepared, len(calib))
    # The prepared graph (observers pass values through) is the fp32 reference: prepare_pt2e rewrites some ops
    # (matmul -> bmm), so it, not `fp32`, has the converted graph's node names.
    reference = copy.deepcopy(prepared)
    for name, _ in list(reference.named_children()):
        if name.startswith("activation_post_process"):  # observers return their input: the reference need not
            setattr(reference, name, torch.nn.Identity())  # keep recording ranges on every run
    quant = convert_pt2e(prepared, fold_quantize=True)  # int8 weight constants, as XNNPACK lowering expects
    return FakeQuant(fp32=reference, quant=quant, int8_attention=names, calib_samples=len(calib), stats=ranges,
                     reused_ranges=reused)


# ---------------------------------------------------------------------------------------------------------------------
# per-layer SQNR
# ---------------------------------------------------------------------------------------------------------------------


def layer_nodes(gm: fx.GraphModule) -> dict[str, fx.Node]:
    """Name -> node for every node that is a 'layer' (conv, linear, matmul, div, hard-swish, add, pooling, norm)."""
    return {n.name: n for n in gm.graph.nodes if n.op == "call_function" and n.target in LAYER_OPS}


def _effective_output(node: fx.Node) -> fx.Node:
    """A layer's output as the int8 pipeline sees it: after its quantize -> dequantize pair when there is one."""
    users = list(node.users)
    if len(users) == 1 and _op_name(users[0]) in QUANTIZE_TARGETS:
        q = users[0]
        dqs = [u for u in q.users if _op_name(u) in DEQUANTIZE_TARGETS]
        if dqs:
            return dqs[0]
    return node


def _layer_outputs(gm: fx.GraphModule, watch: dict[str, str], x: torch.Tensor) -> Iterator[tuple[str, torch.Tensor]]:
    """Run `gm` on `x` node by node and yield (layer name, output) for the watched nodes as they are computed.

    Values are freed after their last use as `fx.Interpreter.run` frees them; a yielded output lives only as long as
    the caller holds it. That is what keeps the per-layer SQNR pass at a few layers' memory instead of every
    layer's output of two graphs (3x the model's activations: 34 GiB for seg-B3 at 1024x2048).
    """
    interp = fx.Interpreter(gm)
    interp.env = {}
    interp.args_iter = iter((x,))
    for node in gm.graph.nodes:
        value = interp.run_node(node)
        interp.env[node] = value
        for dead in interp.user_to_last_uses.get(node, []):
            del interp.env[dead]
        name = watch.get(node.name)
        if name is not None and isinstance(value, torch.Tensor):
            yield name, value.detach()
        if node.op == "output":
            return


class _Pending:
    """One simulation's quantized stream, read as far as the reference asks; what it yields early waits here."""

    def __init__(self, stream: Iterator[tuple[str, torch.Tensor]]) -> None:
        self.stream = stream
        self.early: dict[str, torch.Tensor] = {}

    def take(self, name: str) -> torch.Tensor | None:
        """The output of layer `name`, reading on until it comes; None if the graph ends without it."""
        if name in self.early:
            return self.early.pop(name)
        for got, value in self.stream:
            if got == name:
                return value
            self.early[got] = value
        return None


def layer_sqnr(fq: FakeQuant, inputs: Sequence[np.ndarray]) -> list[dict]:
    """Accumulated SQNR (dB) at every layer output of the int8 simulation against fp32, over `inputs`.

    Returns one row per layer in graph order: {"layer": node name, "op", "module", "sqnr_db", "input_sqnr_db",
    "inputs"} where input_sqnr_db is the worst SQNR among the layers feeding this one ("inputs", found through
    reshapes/slices), so input_sqnr_db - sqnr_db is the error this layer adds.
    """
    return layer_sqnr_many([fq], inputs)[0]


def _layer_signature(gm: fx.GraphModule) -> list[tuple]:
    """(name, op, input node names) of every layer: two prepared graphs with the same signature compute the same
    fp32 value at every layer (their observers pass values through), so one reference run serves both."""
    def source(node: fx.Node) -> str:
        while node.op == "call_module" and node.args and isinstance(node.args[0], fx.Node):  # observers
            node = node.args[0]
        return node.name

    return [(n.name, n.target, tuple(source(a) for a in n.all_input_nodes)) for n in layer_nodes(gm).values()]


def layer_sqnr_many(fqs: Sequence[FakeQuant], inputs: Sequence[np.ndarray]) -> list[list[dict]]:
    """`layer_sqnr` of several simulations of one model: per input, the fp32 reference runs once for every
    simulation whose reference graph has the first one's layer signature (the others run their own)."""
    signature = _layer_signature(fqs[0].fp32)
    plans = []
    for fq in fqs:
        ref_layers, q_layers = layer_nodes(fq.fp32), layer_nodes(fq.quant)
        common = [name for name in ref_layers if name in q_layers]
        plans.append({
            "ref_layers": ref_layers, "common": common, "quant": fq.quant,
            "watch_q": {_effective_output(q_layers[name]).name: name for name in common},
            "shared": fq is fqs[0] or _layer_signature(fq.fp32) == signature,
            "signal": dict.fromkeys(common, 0.0), "noise": dict.fromkeys(common, 0.0),
        })
    # Each reference graph runs once per input: the first simulation's for every plan that shares its layer
    # signature, its own for the others. Reference and quantized graphs advance together, one layer at a time.
    groups: list[tuple[fx.GraphModule, list[dict]]] = [(fqs[0].fp32, [p for p in plans if p["shared"]])]
    groups += [(fq.fp32, [plan]) for fq, plan in zip(fqs, plans, strict=True) if not plan["shared"]]
    watches = [{name: name for plan in members for name in plan["common"]} for _, members in groups]
    with torch.no_grad():
        for sample in inputs:
            x = torch.from_numpy(np.ascontiguousarray(sample, dtype=np.float32))
            for (ref_graph, members), watch in zip(groups, watches, strict=True):
                quantized = [_Pending(_layer_outputs(plan["quant"], plan["watch_q"], x)) for plan in members]
                for name, r in _layer_outputs(ref_graph, watch, x):
                    for plan, pending in zip(members, quantized, strict=True):
                        if name not in plan["signal"]:
                            continue
                        q = pending.take(name)
                        if q is None or r.shape != q.shape:
                            continue
                        r64, e64 = r.double(), (r.double() - q.double())
                        plan["signal"][name] += float((r64 * r64).sum())
                        plan["noise"][name] += float((e64 * e64).sum())
                        del q, r64, e64
    return [_rows(plan) for plan in plans]


def _rows(plan: dict) -> list[dict]:
    ref_layers, common = plan["ref_layers"], plan["common"]
    sqnr = {name: db_from_sums(plan["signal"][name], plan["noise"][name]) for name in common}
    rows = []
    for name in common:
        node = ref_layers[name]
        upstream = [_nearest_layer(a, ref_layers) for a in node.all_input_nodes]
        upstream_db = [sqnr[u] for u in upstream if u is not None and u in sqnr]
        rows.append(
            {
                "layer": name,
                "op": LAYER_OPS[node.target],
                "module": module_path(node),
                "sqnr_db": sqnr[name],
                "input_sqnr_db": min(upstream_db) if upstream_db else math.inf,
                "inputs": [u for u in upstream if u is not None],
            }
        )
    return rows


def _nearest_layer(node: fx.Node, layers: dict[str, fx.Node]) -> str | None:
    """Walk back through plumbing (reshape, slice, relu, observers, q/dq) to the closest layer node, if any."""
    seen = 0
    while node is not None and seen < 32:
        if node.name in layers:
            return node.name
        if node.op not in ("call_function", "call_module") or not node.all_input_nodes:
            return None  # placeholders, weights
        node = node.all_input_nodes[0]
        seen += 1
    return None
