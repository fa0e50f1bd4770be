"""Int8 export: calibration images, bad input, and end to end per target (tiny EfficientViT; efficientvit-b0 slow).

End-to-end runs are shared per (model, target, mode) through a module-scoped cache, so each artifact is built once
and several tests read its int8 manifest section.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from effvit_deploy.errors import InvalidInputError, MissingFileError
from effvit_deploy.export.deploy import to_deploy_form
from effvit_deploy.export.quantize import calibration, metrics, quantize_for_target, sensitivity
from effvit_deploy.export.quantize.calibration import CALIB_PHOTOS, HELDOUT_PHOTOS, calibration_images, preprocess
from effvit_deploy.export.quantize.islands import GraphNode, find_islands
from effvit_deploy.export.quantize.metrics import compare_logits, db_from_sums, sqnr_db
from effvit_deploy.export.targets.tflite.ops import ATTENTION_OPS as TFLITE_OPS
from effvit_deploy.export.weights import randomize_bn_stats, seeded_model
from effvit_deploy.models.efficientvit import EfficientViTCls, EfficientViTConfig

TINY_RES = (128, 128)  # stage 3 has 8x8 tokens, stage 4 4x4: both > dim 8, so both cores use the linear order
TINY_CALIB = 8
# Floors for the tiny model with random weights (measured: cosine >= 0.9998, SQNR >= 33 dB on all three targets).
TINY_MIN_COSINE = 0.995
TINY_MIN_SQNR_DB = 25.0
# The targets, checked on efficientvit-b0.
B0_MIN_COSINE = 0.99
B0_MIN_SQNR_DB = 20.0


def tiny_model() -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = EfficientViTCls(EfficientViTConfig((8, 16, 16, 32, 32), (1, 1, 1, 1, 1), dim=8, head_widths=(64, 64)),
                                num_classes=10)
    return randomize_bn_stats(model).eval()


def _hardswish_modules(model: nn.Module) -> int:
    return sum(isinstance(m, nn.Hardswish) for m in model.modules())


_RUNS: dict[tuple, tuple[dict, nn.Module, Path]] = {}


def _run(tmp_path_factory: pytest.TempPathFactory, model_name: str, target: str, attention: str = "auto",
         res: tuple[int, int] = TINY_RES, calib_count: int = TINY_CALIB) -> tuple[dict[str, Any], nn.Module, Path]:
    key = (model_name, target, attention, res, calib_count)
    if key not in _RUNS:
        model = tiny_model() if model_name == "tiny" else seeded_model(model_name)
        deploy, _ = to_deploy_form(model, res, precision="int8")
        calib, heldout = calibration_images(None, calib_count, res)
        out = tmp_path_factory.mktemp("int8") / f"{model_name}-{attention}.{target}"
        info = quantize_for_target(target, deploy, torch.from_numpy(calib[0]), out, calib=calib, attention=attention,
                                   heldout=heldout)
        _RUNS[key] = (info, model, out)
    return _RUNS[key]


# ---------------------------------------------------------------------------------------------------------------------
# calibration images
# ---------------------------------------------------------------------------------------------------------------------


def _save(folder: Path, name: str, image: Image.Image) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    image.save(folder / name)


def test_calibration_reader_handles_odd_sizes_grayscale_rgba_palette_and_16bit(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    _save(tmp_path, "a_odd.png", Image.fromarray(rng.integers(0, 255, (37, 301, 3), dtype=np.uint8)))
    _save(tmp_path, "b_gray.jpg", Image.fromarray(rng.integers(0, 255, (480, 97), dtype=np.uint8), "L"))
    _save(tmp_path, "c_rgba.png", Image.fromarray(rng.integers(0, 255, (64, 64, 4), dtype=np.uint8), "RGBA"))
    _save(tmp_path, "d_palette.png", Image.fromarray(rng.integers(0, 255, (50, 70, 3), dtype=np.uint8)).convert("P"))
    _save(tmp_path, "e_16bit.png", Image.fromarray(rng.integers(0, 65535, (40, 40), dtype=np.uint16)))
    calib, heldout = calibration_images(tmp_path, None, (96, 64))
    assert len(calib) == 5
    for array in calib:
        assert array.shape == (1, 3, 96, 64) and array.dtype == np.float32 and np.isfinite(array).all()
    assert calib.source["kind"] == "user folder" and calib.source["samples"] == 5
    assert len(heldout) > 0 and heldout[0].shape == (1, 3, 96, 64)


def test_preprocess_is_official_eval_transform() -> None:
    # a uniform mid-grey image: bicubic resize + crop keep the value; normalisation gives (0.5 - mean) / std
    image = Image.new("RGB", (300, 200), (128, 128, 128))
    array = preprocess(image, (224, 224))
    expected = (128 / 255 - np.array(calibration.IMAGENET_MEAN)) / np.array(calibration.IMAGENET_STD)
    np.testing.assert_allclose(array[0].mean(axis=(1, 2)), expected, atol=1e-5)
    # grayscale and its RGB copy give the same tensor; RGBA is composited over white
    gray = Image.fromarray(np.arange(64 * 48, dtype=np.uint32).reshape(48, 64).astype(np.uint8), "L")
    np.testing.assert_allclose(preprocess(gray, (32, 32)), preprocess(gray.convert("RGB"), (32, 32)))
    clear = Image.new("RGBA", (40, 40), (0, 0, 0, 0))
    np.testing.assert_allclose(preprocess(clear, (32, 32)), preprocess(Image.new("RGB", (40, 40), "white"), (32, 32)),
                               atol=1e-6)


def test_unreadable_files_are_skipped_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _save(tmp_path, "good.png", Image.new("RGB", (50, 40), (10, 200, 30)))
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg at all")
    (tmp_path / "notes.txt").write_text("hello")
    with caplog.at_level(logging.WARNING):
        calib, _ = calibration_images(tmp_path, 1, (32, 32))
    assert len(calib) == 1
    assert "broken.jpg" in caplog.text and "notes.txt" in caplog.text


def test_calibration_bad_input_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(MissingFileError, match="does not exist"):
        calibration_images(tmp_path / "missing", 4, (32, 32))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidInputError, match="is empty"):
        calibration_images(tmp_path / "empty", 4, (32, 32))
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "a.png").write_bytes(b"\x89PNG broken")
    (tmp_path / "junk" / "b.txt").write_text("x")
    with pytest.raises(InvalidInputError, match="no readable images"):
        calibration_images(tmp_path / "junk", 1, (32, 32))
    _save(tmp_path / "two", "a.png", Image.new("RGB", (20, 20)))
    _save(tmp_path / "two", "b.png", Image.new("RGB", (20, 20)))
    with pytest.raises(InvalidInputError, match="only 2 readable images.*--calib-count 2"):
        calibration_images(tmp_path / "two", 5, (32, 32))
    with pytest.raises(InvalidInputError, match="at least 1"):
        calibration_images(None, 0, (32, 32))
    with pytest.raises(InvalidInputError, match="bundled photos give only"):
        calibration_images(None, 10_000, (32, 32))


def test_bundled_sets_are_deterministic_and_disjoint_by_source_photo() -> None:
    assert not set(CALIB_PHOTOS) & set(HELDOUT_PHOTOS)
    calib, heldout = calibration_images(None, 20, (64, 64))
    again, _ = calibration_images(None, 20, (64, 64))
    assert len(calib) == 20 and all(np.array_equal(a, b) for a, b in zip(calib, again, strict=True))
    assert set(calib.source["photos"]) <= set(CALIB_PHOTOS)
    assert set(heldout.source["photos"]) <= set(HELDOUT_PHOTOS)
    assert heldout.source["disjoint_from_calibration"] == "at the source-photo level"
    # the first 12 samples are the plain views of 12 different photos, then their mirrors
    assert not np.array_equal(calib[0], calib[1]) and not np.array_equal(calib[0], calib[12])


# ---------------------------------------------------------------------------------------------------------------------
# small pieces
# ---------------------------------------------------------------------------------------------------------------------


def test_metrics() -> None:
    ref = np.array([[1.0, 2.0, 3.0], [3.0, 1.0, 0.0]])
    assert math.isinf(sqnr_db(ref, ref))
    assert sqnr_db(ref, ref * 1.1) == pytest.approx(20.0)
    result = compare_logits(ref, ref + np.array([[0.0, 0.0, -2.5], [0.0, 0.0, 0.0]]))
    assert result["top1_agreement"] == 0.5 and result["top5_agreement"] == 1.0 and result["samples"] == 2


def test_compare_logits_row_by_row_equals_the_whole_array_figures() -> None:
    # seg-shaped outputs (N, classes, H, W), compared one sample at a time; the figures are the whole-array ones,
    # with top-k agreement per pixel over the class axis
    rng = np.random.default_rng(3)
    ref = rng.standard_normal((6, 19, 8, 16)).astype(np.float32)
    quant = ref + 0.05 * rng.standard_normal(ref.shape).astype(np.float32)
    quant[2] = -quant[2]  # one sample far off: its pixels' top-1 and top-5 disagree
    flat_r, flat_q = ref.reshape(6, -1).astype(np.float64), quant.reshape(6, -1).astype(np.float64)
    cosines = [float(r @ q / np.linalg.norm(r) / np.linalg.norm(q)) for r, q in zip(flat_r, flat_q, strict=True)]
    got = compare_logits(ref, quant.reshape(6, -1))  # a runner's flat output takes the reference's shape
    assert got["cosine"] == round(float(np.mean(cosines)), 6) and got["cosine_min"] == round(min(cosines), 6)
    assert got["sqnr_db"] == round(sqnr_db(flat_r, flat_q), 2)
    best = ref.argmax(axis=1)  # (N, H, W): the fp32 class of every pixel
    pixel_top1 = float(np.mean(best == quant.argmax(axis=1)))
    assert got["top1_agreement"] == round(pixel_top1, 4) and 0.75 < pixel_top1 < 5 / 6  # sample 2 keeps none
    top5 = np.argsort(-quant, axis=1)[:, :5]  # (N, 5, H, W)
    assert got["top5_agreement"] == round(float(np.mean((top5 == best[:, None]).any(axis=1))), 4)
    assert got["top_k_over"] == "classes of every pixel" and got["samples"] == 6
    assert "top_k_over" not in compare_logits(flat_r[:, :10], flat_q[:, :10])  # a classifier: one position each
    with pytest.raises(ValueError, match="shapes differ"):
        compare_logits(ref, quant[:, :18])


def test_run_all_keeps_a_segmentation_map_and_a_classifier_row() -> None:
    maps = metrics.run_all(lambda x: np.ones((1, 19, 2, 4)) * x.sum(), [np.ones((1, 3)), 2 * np.ones((1, 3))])
    assert maps.shape == (2, 19, 2, 4) and maps.dtype == np.float32 and maps[1].max() == 6.0
    rows = metrics.run_all(lambda x: np.zeros((1, 1000)), [np.ones((1, 3))] * 3)
    assert rows.shape == (3, 1000)


def test_islands_cover_the_core_and_leave_int8_plumbing_out() -> None:
    def node(i: int, op: str, ins: list[str], out: str) -> GraphNode:
        return GraphNode(index=i, op=op, inputs=ins, outputs=[out])

    graph = [
        node(0, "CONV_2D", ["x"], "q0"), node(1, "CONV_2D", ["x"], "k0"), node(2, "CONV_2D", ["x"], "v0"),
        node(3, "RELU", ["q0"], "q1"), node(4, "RELU", ["k0"], "k1"),
        node(5, "TRANSPOSE", ["q1"], "q"), node(6, "TRANSPOSE", ["k1"], "k"), node(7, "TRANSPOSE", ["v0"], "v"),
        node(8, "SUM", ["k"], "ks"), node(9, "BATCH_MATMUL", ["v", "k"], "kv"),
        node(10, "BATCH_MATMUL", ["kv", "q"], "n"),
        node(11, "BATCH_MATMUL", ["ks", "q"], "d"), node(12, "ADD", ["d"], "de"), node(13, "DIV", ["n", "de"], "o"),
        node(14, "RESHAPE", ["o"], "o2"), node(15, "CONV_2D", ["o2"], "y"), node(16, "HARD_SWISH", ["y"], "z"),
    ]
    islands = find_islands(graph, TFLITE_OPS)
    assert len(islands) == 1
    ops = [n.op for n in islands[0]]
    # the transposes of v only lead in (int8 data movement); RELU has no int8 XNNPACK kernel so it joins the island
    assert ops == ["RELU", "RELU", "TRANSPOSE", "TRANSPOSE", "SUM", "BATCH_MATMUL", "BATCH_MATMUL", "BATCH_MATMUL",
                   "ADD", "DIV"]


def test_joined_qkv_island_starts_at_the_split() -> None:
    """The int8 deploy form joins q|k|v in int8 and splits in the core: one tensor (one dequantize) enters."""
    def node(i: int, op: str, ins: list[str], outs: list[str]) -> GraphNode:
        return GraphNode(index=i, op=op, inputs=ins, outputs=outs)

    graph = [
        node(0, "CONV_2D", ["x"], ["q0"]), node(1, "CONV_2D", ["x"], ["k0"]), node(2, "CONV_2D", ["x"], ["v0"]),
        node(3, "TRANSPOSE", ["q0"], ["q"]), node(4, "TRANSPOSE", ["k0"], ["k"]), node(5, "TRANSPOSE", ["v0"], ["v"]),
        node(6, "CONCATENATION", ["q", "k", "v"], ["qkv"]), node(7, "SPLIT", ["qkv"], ["qs", "ks", "vs"]),
        node(8, "RELU", ["qs"], ["qr"]), node(9, "RELU", ["ks"], ["kr"]), node(10, "MEAN", ["kr"], ["km"]),
        node(11, "BATCH_MATMUL", ["vs", "kr"], ["kv"]), node(12, "BATCH_MATMUL", ["kv", "qr"], ["n"]),
        node(13, "BATCH_MATMUL", ["km", "qr"], ["d"]), node(14, "DIV", ["n", "d"], ["o"]),
        node(15, "CONV_2D", ["o"], ["y"]),
    ]
    (island,) = find_islands(graph, TFLITE_OPS)
    assert island[0].op == "SPLIT" and [n.index for n in island] == list(range(7, 15))
    inside = {t for n in island for t in n.outputs}
    entering = {t for n in island for t in n.inputs if t not in inside}
    assert entering == {"qkv"}


@pytest.mark.parametrize(
    ("target", "attention", "message"),
    [
        ("coreml", "auto", "supports targets onnx, tflite, executorch"),  # registry order
        ("onnx", "int4", "unknown int8 attention mode 'int4'"),
        ("tflite", "int8", "not possible for tflite: .*BATCH_MATMUL.*use --int8-attention auto or fp32"),
        ("executorch", "int8", "not possible for executorch: .*bmm and div only in fp32"),
    ],
)
def test_impossible_requests_are_refused_before_any_work(tmp_path: Path, target: str, attention: str,
                                                         message: str) -> None:
    out = tmp_path / "never.bin"
    example = torch.zeros(1, 3, 32, 32)
    with pytest.raises(InvalidInputError, match=message):
        quantize_for_target(target, tiny_model(), example, out, calib=[example.numpy()], attention=attention)
    assert not out.exists()


def test_empty_or_misshaped_calibration_is_refused(tmp_path: Path) -> None:
    example = torch.zeros(1, 3, 32, 32)
    with pytest.raises(InvalidInputError, match="at least one calibration image"):
        quantize_for_target("onnx", tiny_model(), example, tmp_path / "x.onnx", calib=[])
    with pytest.raises(InvalidInputError, match="example's shape"):
        quantize_for_target("onnx", tiny_model(), example, tmp_path / "x.onnx", calib=[np.zeros((1, 3, 64, 64))])
    with pytest.raises(InvalidInputError, match="NCHW only"):
        quantize_for_target("onnx", tiny_model(), example, tmp_path / "x.onnx", calib=[example.numpy()], nhwc=True)
    assert not list(tmp_path.iterdir())


# ---------------------------------------------------------------------------------------------------------------------
# end to end, tiny model
# ---------------------------------------------------------------------------------------------------------------------


# onnx runs with --int8-attention fp32 here (auto on onnx measures twice; the b0 test covers it, and the choice
# logic is unit-tested below); tflite and executorch run auto, where the runtime decides.
E2E_MODE = {"tflite": "auto", "executorch": "auto", "onnx": "fp32"}


@pytest.mark.parametrize("target", ["tflite", "executorch", "onnx"])
def test_tiny_end_to_end(tmp_path_factory: pytest.TempPathFactory, target: str) -> None:
    info, model, out = _run(tmp_path_factory, "tiny", target, attention=E2E_MODE[target])
    assert out.is_file() and out.stat().st_size > 0
    acc = info["accuracy"]
    assert acc["cosine"] >= TINY_MIN_COSINE and acc["sqnr_db"] >= TINY_MIN_SQNR_DB, acc
    assert acc["samples"] == len(HELDOUT_PHOTOS) * calibration.HELDOUT_VARIANTS
    census = info["census"]
    # every conv and fully-connected op runs in int8; only attention matmuls may be fp32
    assert all(op.split("#")[0] in ("BATCH_MATMUL", "MatMul", "bmm", "matmul") for op in census["compute_ops_not_int8"])
    conv_ops = {"tflite": ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"), "onnx": ("Conv", "Gemm"),
                "executorch": ("conv2d", "linear")}[target]
    assert all(census["int8_ops"].get(op, 0) > 0 for op in conv_ops)
    assert all(op not in census["float_ops"] for op in conv_ops)
    # one quantize at the input, one dequantize at the output
    assert census["boundaries_by_place"]["input"] == 1 and census["boundaries_by_place"]["output"] == 1
    # an fp32 attention island is entered through one dequantize (q|k|v joined) and left through one quantize
    exits = Counter(b["where"] for b in census["boundary_list"] if b["where"].startswith("attention")
                    and b["op"] in ("QUANTIZE", "QuantizeLinear"))
    entries = Counter(b["where"] for b in census["boundary_list"] if b["where"].startswith("attention")
                      and b["op"] in ("DEQUANTIZE", "DequantizeLinear"))
    for k, core in enumerate(info["attention"]):
        # an fp32 island is left through one quantize; an int8 core (onnx) has its fp32 normaliser/division inside
        if core["choice"] == "fp32":
            assert (entries[f"attention {k}"], exits[f"attention {k}"]) == (1, 1)
        else:  # an int8 core (onnx) quantizes its matmul inputs; its fp32 normaliser/division sit inside
            assert 1 <= exits[f"attention {k}"] <= 2 and entries[f"attention {k}"] >= 1
    # hard-swish is one op per nn.Hardswish, never decomposed
    runtime = info["census"]["runtime"]
    swish = _hardswish_modules(model)
    if target == "tflite":
        assert runtime["ops"]["HARD_SWISH"] == swish and runtime["partitions"] == 1 and not runtime["undelegated"]
    elif target == "onnx":
        assert runtime["ops"]["HardSwish"] == swish and "HardSigmoid" not in runtime["ops"]
    else:
        assert runtime["lowered_ops"]["aten.hardswish.default"] == swish
        assert runtime["partitions"] == 1 and not runtime["undelegated"]
    # the manifest section names the attention choice per core, and the five worst layers
    assert [d["module"] for d in info["attention"]] == [
        "backbone.stages.2.op_list.1.context_module.main", "backbone.stages.3.op_list.1.context_module.main"
    ]
    assert len(info["worst_layers"]) == 5
    ranked = [row["sqnr_db"] for row in info["worst_layers"]]
    assert ranked == sorted(ranked)


def test_onnx_attention_fallback_is_taken_when_forced(tmp_path_factory: pytest.TempPathFactory) -> None:
    fp32, _, _ = _run(tmp_path_factory, "tiny", "onnx", attention="fp32")
    int8, _, _ = _run(tmp_path_factory, "tiny", "onnx", attention="int8")
    assert {d["choice"] for d in fp32["attention"]} == {"fp32"}
    assert {d["choice"] for d in int8["attention"]} == {"int8"}
    assert fp32["census"]["int8_ops"].get("MatMul", 0) == 0 and fp32["census"]["float_ops"]["MatMul"] == 6
    assert int8["census"]["int8_ops"]["MatMul"] >= 2  # v·kᵀ of both cores runs int8 x int8 -> float
    assert int8["census"]["float_ops"]["Div"] == 2  # the division never runs in int8
    assert all("int8_cost_db" in d for d in int8["attention"])
    for info in (fp32, int8):
        assert info["accuracy"]["cosine"] >= TINY_MIN_COSINE


def test_auto_keeps_int8_only_where_it_costs_little() -> None:
    island = [{"module": m, "sqnr_in_db": 40.0, "sqnr_out_db": 30.0, "drop_db": 10.0} for m in ("a", "b", "c")]
    int8 = [{"module": "a", "sqnr_in_db": 40.0, "sqnr_out_db": 29.5, "drop_db": 10.5},
            {"module": "b", "sqnr_in_db": 40.0, "sqnr_out_db": 20.0, "drop_db": 20.0},
            {"module": "c", "sqnr_in_db": 40.0, "sqnr_out_db": "-inf", "drop_db": "inf"}]
    auto = sensitivity.decide("auto", island, int8, True, "")
    assert [d["choice"] for d in auto] == ["int8", "fp32", "fp32"]
    assert auto[0]["int8_cost_db"] == 0.5 and auto[1]["int8_cost_db"] == 10.0
    assert [d["choice"] for d in sensitivity.decide("auto", island, int8, False, "no int8 bmm")] == ["fp32"] * 3
    assert [d["choice"] for d in sensitivity.decide("int8", island, int8, True, "")] == ["int8"] * 3
    assert [d["choice"] for d in sensitivity.decide("fp32", island, None, True, "")] == ["fp32"] * 3


def test_tflite_and_executorch_keep_attention_fp32_in_auto(tmp_path_factory: pytest.TempPathFactory) -> None:
    for target in ("tflite", "executorch"):
        info, _, _ = _run(tmp_path_factory, "tiny", target)
        assert {d["choice"] for d in info["attention"]} == {"fp32"}
        assert all("XNNPACK" in d["reason"] or "xnnpack" in d["reason"].lower() for d in info["attention"])


# ---------------------------------------------------------------------------------------------------------------------
# efficientvit-b0 (slow)
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("target", ["tflite", "executorch", "onnx"])
def test_b0_meets_the_int8_targets(tmp_path_factory: pytest.TempPathFactory, target: str) -> None:
    info, model, _ = _run(tmp_path_factory, "efficientvit-b0", target, res=(224, 224), calib_count=16)
    acc = info["accuracy"]
    assert acc["cosine"] >= B0_MIN_COSINE and acc["sqnr_db"] >= B0_MIN_SQNR_DB, acc
    census = info["census"]
    assert all(op.split("#")[0] in ("BATCH_MATMUL", "MatMul", "bmm") for op in census["compute_ops_not_int8"])
    runtime = census["runtime"]
    if target != "onnx":
        assert runtime["partitions"] == 1 and not runtime["undelegated"]
    swish = _hardswish_modules(model)
    ops = runtime.get("lowered_ops", runtime["ops"])
    assert ops.get("HARD_SWISH", ops.get("HardSwish", ops.get("aten.hardswish.default"))) == swish
    if all(core["choice"] == "fp32" for core in info["attention"]):  # the target: <= 2 boundaries per attention block
        assert census["max_boundaries_per_attention"] == 2


# ---------------------------------------------------------------------------------------------------------------------
# one calibration for every simulation (the speed-up of `auto` on onnx): the same ranges, the same SQNR figures
# ---------------------------------------------------------------------------------------------------------------------


def _qparams(gm: torch.fx.GraphModule) -> list[tuple]:
    """(node, scale, zero point) of every activation quantize node of a converted graph."""
    return [(n.name, *n.args[1:3]) for n in gm.graph.nodes
            if n.op == "call_function" and "quantize_per_tensor" in str(n.target) and "dequantize" not in str(n.target)]


def test_simulations_reuse_one_calibration_with_identical_results() -> None:
    from effvit_deploy.export.quantize import pt2e
    from effvit_deploy.export.quantize.int8 import attention_modules

    # the tiny model's last two stages (two attention cores): small enough to prepare five times in seconds
    deploy, _ = to_deploy_form(tiny_model(), TINY_RES, precision="int8")
    block = nn.Sequential(*deploy.backbone.stages[2:]).eval()
    rng = np.random.default_rng(0)
    calib = [rng.standard_normal((1, 16, 16, 16), dtype=np.float32) for _ in range(3)]
    example = torch.from_numpy(calib[0])
    names = attention_modules(block)
    assert len(names) == 2
    fp32 = pt2e.export_graph(block, example)

    def sim(cores: list[str], stats: pt2e.ObserverStats | None = None) -> pt2e.FakeQuant:
        return pt2e.fake_quantize(block, example, calib, attention=names, int8_attention=cores, fp32_graph=fp32,
                                  observer="minmax", stats=stats)

    superset = sim(names)
    x = torch.from_numpy(rng.standard_normal((1, 16, 16, 16), dtype=np.float32))
    # skipping the conv-bn annotators on a graph without batch norm gives the same graph
    every = pt2e.fake_quantize(block, example, calib, attention=names, int8_attention=names, fp32_graph=fp32,
                               observer="minmax", all_patterns=True)
    assert every.quant.code == superset.quant.code and _qparams(every.quant) == _qparams(superset.quant)
    with torch.no_grad():
        assert torch.equal(every.quant(x), superset.quant(x))
    for cores in ([], names[:1]):  # every core an island; one core int8 and one island
        calibrated, reused = sim(cores), sim(cores, stats=superset.stats)
        assert not calibrated.reused_ranges and reused.reused_ranges
        assert _qparams(reused.quant) == _qparams(calibrated.quant) and _qparams(calibrated.quant)
        with torch.no_grad():
            assert torch.equal(reused.quant(x), calibrated.quant(x))
    together = pt2e.layer_sqnr_many([reused, superset], calib[:2])
    assert together == [pt2e.layer_sqnr(reused, calib[:2]), pt2e.layer_sqnr(superset, calib[:2])]
    assert any(row["module"] in names and row["op"] == "matmul" for row in together[1])


def _record_all_sqnr(fq, inputs: list[np.ndarray]) -> dict[str, float]:
    """Per-layer SQNR the direct way: keep every layer output of both graphs, then compare (what the streaming pass
    must reproduce)."""
    from effvit_deploy.export.quantize import pt2e

    class Keep(torch.fx.Interpreter):
        def __init__(self, gm: torch.fx.GraphModule, watch: dict[str, str]) -> None:
            super().__init__(gm)
            self.watch, self.values = watch, {}

        def run_node(self, n: torch.fx.Node) -> Any:
            out = super().run_node(n)
            if n.name in self.watch:
                self.values[self.watch[n.name]] = out
            return out

    ref_layers, q_layers = pt2e.layer_nodes(fq.fp32), pt2e.layer_nodes(fq.quant)
    common = [name for name in ref_layers if name in q_layers]
    signal, noise = dict.fromkeys(common, 0.0), dict.fromkeys(common, 0.0)
    with torch.no_grad():
        for sample in inputs:
            x = torch.from_numpy(sample)
            ref, quant = Keep(fq.fp32, {n: n for n in common}), Keep(
                fq.quant, {pt2e._effective_output(q_layers[n]).name: n for n in common})
            ref.run(x)
            quant.run(x)
            for name in common:
                r, e = ref.values[name].double(), ref.values[name].double() - quant.values[name].double()
                signal[name] += float((r * r).sum())
                noise[name] += float((e * e).sum())
    return {name: db_from_sums(signal[name], noise[name]) for name in common}


def test_streaming_layer_sqnr_equals_keeping_every_output() -> None:
    from effvit_deploy.export.quantize import pt2e
    from effvit_deploy.export.quantize.int8 import attention_modules

    deploy, _ = to_deploy_form(tiny_model(), TINY_RES, precision="int8")
    block = nn.Sequential(*deploy.backbone.stages[2:]).eval()
    rng = np.random.default_rng(1)
    calib = [rng.standard_normal((1, 16, 16, 16), dtype=np.float32) for _ in range(2)]
    names = attention_modules(block)
    fq = pt2e.fake_quantize(block, torch.from_numpy(calib[0]), calib, attention=names, int8_attention=names[:1],
                            observer="minmax")
    rows = pt2e.layer_sqnr(fq, calib)
    expected = _record_all_sqnr(fq, calib)
    assert [row["layer"] for row in rows] == list(expected)
    assert {row["layer"]: row["sqnr_db"] for row in rows} == expected
    assert any(math.isfinite(db) for db in expected.values())


def test_pending_stream_keeps_early_outputs_until_asked() -> None:
    from effvit_deploy.export.quantize.pt2e import _Pending

    a, b, c = torch.zeros(1), torch.ones(1), torch.full((1,), 2.0)
    pending = _Pending(iter([("b", b), ("a", a), ("c", c)]))
    assert pending.take("a") is a and set(pending.early) == {"b"}  # b came first: kept, not lost
    assert pending.take("b") is b and not pending.early
    assert pending.take("missing") is None  # reads to the end: c is kept, the missing layer is None
    assert pending.take("c") is c


def test_tflite_profiler_calibration_gives_the_preserve_all_tensors_ranges(tmp_path: Path) -> None:
    # the export calibrates with TFLite's profiler (one inference's memory); AEQ's default keeps every tensor
    from effvit_deploy.export.targets import TARGETS
    from effvit_deploy.export.targets.tflite import int8 as tflite_int8

    deploy, _ = to_deploy_form(tiny_model(), TINY_RES, precision="int8")
    calib, _ = calibration_images(None, 3, TINY_RES)
    fp32_path = tmp_path / "fp32.tflite"
    TARGETS["tflite"].convert(deploy, torch.from_numpy(calib[0]), fp32_path, precision="fp32")
    graph = fp32_path.read_bytes()
    rules = tflite_int8.build_recipe(tflite_int8.attention_islands(graph) + tflite_int8.norm_islands(graph),
                                     hardswish_fp32=True)
    _, profiled = tflite_int8.calibrate(fp32_path, calib, rules, mode="profiler")
    _, preserved = tflite_int8.calibrate(fp32_path, calib, rules, mode="preserve")
    assert len(preserved) > 20 and set(preserved) <= set(profiled)  # the profiler also sees the fp32 islands' tensors
    for name, qsv in preserved.items():
        for key in ("min", "max"):
            np.testing.assert_allclose(profiled[name][key].ravel(), qsv[key].ravel(), rtol=1e-5, atol=1e-6,
                                       err_msg=f"{name} {key}")


def test_onnx_calibration_in_priority_order_gives_quantize_static_its_own_ranges(tmp_path: Path) -> None:
    # the export calibrates in its own session (priority-based order: a few activations alive, not all of them)
    # and hands the ranges to quantize_static through its calibration cache: the int8 file must be the same bytes
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from effvit_deploy.export.targets import TARGETS
    from effvit_deploy.export.targets.onnx import int8 as onnx_int8

    deploy, _ = to_deploy_form(tiny_model(), TINY_RES, precision="int8")
    calib, _ = calibration_images(None, 3, TINY_RES)
    fp32_path, pre_path = tmp_path / "fp32.onnx", tmp_path / "pre.onnx"
    TARGETS["onnx"].convert(deploy, torch.from_numpy(calib[0]), fp32_path, precision="fp32")
    quant_pre_process(str(fp32_path), str(pre_path), skip_symbolic_shape=True, skip_optimization=True)
    settings = dict(quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax,
                    extra_options={"ActivationSymmetric": False, "WeightSymmetric": True})
    input_name = onnx.load(str(pre_path)).graph.input[0].name
    quantize_static(str(pre_path), str(tmp_path / "own.onnx"), onnx_int8._Reader(input_name, calib), **settings)
    ranges = tmp_path / "ranges.json"
    onnx_int8.calibrate_ranges(pre_path, input_name, calib, ranges)
    quantize_static(str(pre_path), str(tmp_path / "cached.onnx"), None, calibration_cache_path=ranges, **settings)
    assert (tmp_path / "own.onnx").read_bytes() == (tmp_path / "cached.onnx").read_bytes()
    assert b"QuantizeLinear" in (tmp_path / "cached.onnx").read_bytes()
