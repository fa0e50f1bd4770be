"""The peers benchmark's own logic (bench/bench_peers.py and its peers_* modules): census reduction, table rendering,
the artifact cache, layout matching and the parity check on a tiny model. None of it needs a peer installed."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import bench_peers  # noqa: E402
import peers_census  # noqa: E402
import peers_routes  # noqa: E402
import peers_table  # noqa: E402

from .conftest import TINY_RES, tiny_model  # noqa: E402


def test_census_counts_layout_ops_across_formats() -> None:
    tflite = {"ops": {"TRANSPOSE": 3, "SLICE": 2, "STRIDED_SLICE": 1, "PADV2": 1, "PAD": 4, "CONV_2D": 9},
              "partitions": 2, "delegated_ops": 18, "total_ops": 20, "layout": "NHWC"}
    c = peers_census.summarize(tflite)
    assert (c.transposes, c.slices, c.pads, c.ops, c.partitions, c.layout) == (3, 3, 5, 20, 2, "NHWC")
    assert c.delegated_share == pytest.approx(0.9)
    assert c.cell() == "3/3/5 of 20; 2 part., 90% delegated"
    onnx = peers_census.summarize({"ops": {"Transpose": 4, "Slice": 2, "Conv": 5}, "partitions": None,
                                   "delegated_ops": None, "total_ops": 11})
    assert (onnx.transposes, onnx.slices, onnx.pads, onnx.partitions) == (4, 2, 0, None)
    assert onnx.cell() == "4/2/0 of 11"
    pte = peers_census.summarize({"ops": {"xnn_static_transpose": 2, "aten.permute_copy.default": 1,
                                          "aten.constant_pad_nd.default": 1}, "partitions": 1, "delegated_ops": 2,
                                  "total_ops": 4})
    assert (pte.transposes, pte.pads) == (3, 1)


def _row(route: str, runtime: str, threads: int, times: list[float], passed: bool = True) -> peers_table.Row:
    return peers_table.Row("m", "224x224", runtime, threads, route, times, {"max_abs": 1e-6, "passed": passed},
                           peers_census.Census(10, 1, 0, 0, 1, 1.0))


def test_table_ratios_and_best_peer_per_group() -> None:
    rows = [
        _row("ours", "litert", 2, [10.0, 11.0, 12.0]),
        _row("onnx2tf defaults", "litert", 2, [13.0, 12.0, 14.0]),
        _row("fast but wrong", "litert", 2, [5.0], passed=False),  # a wrong artifact is never the best peer
        _row("ours", "litert", 1, [20.0]),
        _row("onnx2tf defaults", "litert", 1, [18.0]),
        peers_table.Row("m", "224x224", "litert", 0, "nobuco", note="not built: nobuco failed: X"),
    ]
    rows[3].cpu_ms, rows[4].cpu_ms = [8.0, 9.0, 10.0], [12.0]
    assert peers_table.ratio_to_ours(rows, rows[1]) == pytest.approx(13.0 / 11.0)
    assert peers_table.ratio_to_ours(rows, rows[1], "best") == pytest.approx(12.0 / 10.0)
    assert peers_table.ratio_to_ours(rows, rows[4], "cpu") == pytest.approx(12.0 / 9.0)
    assert peers_table.ratio_to_ours(rows, rows[1], "cpu") is None  # no CPU time at 2 threads
    assert peers_table.best_peer(rows, ("m", "224x224", "litert", 2)).route == "onnx2tf defaults"
    text = peers_table.markdown(rows, "# header")
    assert text.startswith("# header\n")
    assert ("| m | 224x224 | litert | 2 | onnx2tf defaults | 13.00 (12.00) | 1.18x / 1.20x | - | 1.0e-06 ok "
            "| 1/0/0 of 10; 1 part., 100% delegated |") in text
    assert "| fast but wrong | 5.00 (5.00) | 0.45x / 0.50x | - | 1.0e-06 FAIL |" in text
    assert "| 1 | onnx2tf defaults | 18.00 (18.00) | 0.90x / 0.90x | 12.00 (1.33x) |" in text
    assert "| nobuco | not built: nobuco failed: X |" in text
    assert ("litert 2t, best peer by median: onnx2tf defaults 13.00 vs ours 11.00 ms = 1.18x; "
            "min: onnx2tf defaults 12.00 vs ours 10.00 ms = 1.20x") in text
    assert "litert 1t, best peer by median: onnx2tf defaults 18.00 vs ours 20.00 ms = 0.90x" in text
    assert "CPU: onnx2tf defaults 12.00 vs ours 9.00 ms = 1.33x" in text
    data = json.loads(json.dumps(peers_table.to_json(rows, {"cpu": "x"}), default=str))
    assert data["rows"][1]["x_ours_median"] == pytest.approx(13.0 / 11.0)
    assert data["rows"][4]["cpu_ms_median"] == 12.0


def test_match_layout_brings_channels_last_dense_outputs_back() -> None:
    ref = np.zeros((1, 19, 4, 8), np.float32)
    nhwc = np.arange(19 * 32, dtype=np.float32).reshape(1, 4, 8, 19)
    assert bench_peers.match_layout(nhwc, ref).shape == ref.shape
    np.testing.assert_array_equal(bench_peers.match_layout(nhwc, ref)[0, 3, 2, 1], nhwc[0, 2, 1, 3])
    logits = np.zeros((1, 1000), np.float32)
    assert bench_peers.match_layout(logits, np.zeros((1, 1000))) is logits


def test_cached_build_reuses_only_the_same_recipe_and_never_leaves_half_files(tmp_path: Path) -> None:
    calls = []

    def build(tmp: Path) -> None:
        calls.append(tmp)
        tmp.write_bytes(b"artifact")

    out = tmp_path / "peers" / "x.tflite"
    assert peers_routes.cached_build(out, {"flags": []}, build) == out
    peers_routes.cached_build(out, {"flags": []}, build)
    assert len(calls) == 1
    peers_routes.cached_build(out, {"flags": ["-ebu"]}, build)
    assert len(calls) == 2

    def failing(tmp: Path) -> None:
        tmp.write_bytes(b"half")
        raise peers_routes.RouteUnavailable("converter failed")

    other = tmp_path / "peers" / "y.tflite"
    with pytest.raises(peers_routes.RouteUnavailable):
        peers_routes.cached_build(other, {}, failing)
    assert sorted(p.name for p in other.parent.iterdir()) == ["x.tflite", "x.tflite.json"]


def test_missing_peer_is_one_line_naming_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(peers_routes.RouteUnavailable, match=r"not-a-peer is not installed \(pip install '\.\[peers\]'"):
        peers_routes._version("not-a-peer")


def test_onnx2tf_sample_images_have_the_shape_it_downloads(tmp_path: Path) -> None:
    pytest.importorskip("skimage")
    path = tmp_path / peers_routes.ONNX2TF_SAMPLE_FILE
    peers_routes.write_onnx2tf_sample_images(path)
    images = np.load(path)
    assert images.shape == (20, 128, 128, 3) and images.dtype == np.float32
    assert 0.0 <= images.min() < images.max() <= 1.0


def test_time_group_checks_parity_and_times_every_artifact(tiny_artifact) -> None:
    pytest.importorskip("ai_edge_litert")
    pytest.importorskip("onnxruntime")

    from effvit_deploy.export.verify import fixed_input, reference_logits

    res = (TINY_RES, TINY_RES)
    ref = reference_logits(tiny_model(), fixed_input(res))
    artifacts = [peers_routes.Artifact("ours", "litert", Path(tiny_artifact("tflite")["path"]), "ours"),
                 peers_routes.Artifact("ours", "onnxruntime", Path(tiny_artifact("onnx")["path"]), "ours"),
                 peers_routes.Artifact("other model", "litert", Path(tiny_artifact("tflite")["path"]), "wrong")]
    wrong = ref + 1e-2  # a route whose PyTorch model differs must fail its parity check
    rows = bench_peers.time_group("tiny", res, artifacts, {"ours": ref, "wrong": wrong}, runs=3, warmup=1)
    assert {(r.route, r.runtime, r.threads) for r in rows} == {
        ("ours", "litert", 1), ("ours", "litert", 2), ("ours", "onnxruntime", 1), ("ours", "onnxruntime", 2),
        ("other model", "litert", 1), ("other model", "litert", 2)}
    assert all(len(r.times_ms) == 3 and r.median > 0 for r in rows)
    assert all(len(r.cpu_ms) == 3 and r.cpu > 0 for r in rows if r.threads == 1)
    assert not any(r.cpu_ms for r in rows if r.threads == 2)
    assert all(r.parity["passed"] for r in rows if r.route == "ours")
    assert not any(r.parity["passed"] for r in rows if r.route == "other model")
    tflite = next(r for r in rows if r.runtime == "litert")
    assert tflite.census.ops > 0 and tflite.census.partitions >= 1


def test_artifact_the_runtime_cannot_run_becomes_a_row_saying_why(monkeypatch: pytest.MonkeyPatch) -> None:
    """onnx2tf's seg graph holds FlexResizeBicubic, which LiteRT without the Flex delegate refuses: a row, no crash."""
    flex = ("Select TensorFlow op(s), included in the given model, is(are) not supported by this interpreter. Make "
            "sure you apply/link the Flex delegate before inference. See instructions: https://www.tensorflow.org/"
            "lite/guide/ops_selectNode number 159 (FlexResizeBicubic) failed to prepare.")

    def refuse(artifact):
        raise RuntimeError(flex)

    monkeypatch.setattr(bench_peers, "census_of", refuse)
    artifact = peers_routes.Artifact("onnx2tf defaults", "litert", Path("seg.tflite"), "ours")
    rows = bench_peers.time_group("seg", (16, 32), [artifact], {"ours": np.zeros((1, 2, 2, 4))}, runs=1, warmup=0)
    assert len(rows) == 1 and not rows[0].times_ms
    assert rows[0].note.startswith("built, does not run here: Select TensorFlow op(s)")
    assert "FlexResizeBicubic" in rows[0].note and "Make sure" not in rows[0].note


def test_shuffled_rounds_time_every_runner_in_changing_orders() -> None:
    calls: list[str] = []

    def runner(name: str):
        return lambda _x: calls.append(name)

    runners = {name: runner(name) for name in "abcd"}
    times = bench_peers.shuffled_rounds(runners, np.zeros(1), runs=6, warmup=1, gap_s=0.0)
    assert {k: len(v) for k, v in times.items()} == {k: 6 for k in "abcd"}
    rounds = [tuple(calls[i:i + 4]) for i in range(4, len(calls), 4)]  # after the warm-up round
    assert all(sorted(r) == list("abcd") for r in rounds) and len(set(rounds)) > 1
