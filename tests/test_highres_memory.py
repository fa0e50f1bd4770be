"""High resolution and memory (issue 14): the softmax twins' N×N attention map enters the memory guard, so a twin
that cannot fit at 1024x2048 is refused with that figure before any work; the export matrix's table cells.
Everything here runs on meta tensors or refuses before converting: cheap enough for the default `make test`."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from effvit_deploy import memory_guard
from effvit_deploy.cli import export as export_cli
from effvit_deploy.errors import InvalidInputError
from effvit_deploy.export import ExportOptions, api, quantize, seeded_model
from effvit_deploy.export.deploy import to_deploy_form
from effvit_deploy.models.memory import attention_map_bytes

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

MiB, GiB = 1 << 20, 1 << 30
B0 = "efficientvit-seg-b0-cityscapes"
HIGH = (1024, 2048)


@pytest.mark.parametrize("name", [B0, f"{B0}-softmax", "efficientvit-paper-seg-softmax"])
def test_attention_map_bytes_equal_the_deploy_info(name: str) -> None:
    _, info = to_deploy_form(seeded_model(name), (256, 512))
    assert attention_map_bytes(name, (256, 512)) == max(a["map_bytes"] for a in info["attention"])


def test_attention_map_grows_with_the_square_of_the_tokens() -> None:
    # seg-B3 twin, stage 3: 8 heads x 2 (q|k|v and its 5x5 aggregate) groups of (H/16 * W/16)^2 fp32 scores
    assert attention_map_bytes("efficientvit-seg-b3-cityscapes-softmax", HIGH) == 4 * 16 * (64 * 128) ** 2 == 4 * GiB
    assert attention_map_bytes("efficientvit-seg-b3-cityscapes-softmax", (512, 1024)) == 256 * MiB
    # linear: d×d only, largest in stage 4 (16 heads, 32 groups)
    assert attention_map_bytes("efficientvit-seg-b3-cityscapes", HIGH) == 4 * 32 * 32 * 32
    assert attention_map_bytes("lraspp-mobilenetv3-large", HIGH) == 0


@pytest.mark.parametrize(
    ("name", "target", "measured_mib"),  # export peaks measured by bench/bench_highres.py (see memory_guard's doc)
    [(f"{B0}-softmax", "tflite", 9099), ("efficientvit-paper-seg-softmax", "tflite", 7123),
     (f"{B0}-softmax", "onnx", 5 * 1024), (f"{B0}-softmax", "executorch", 5 * 1024)],
)
def test_twin_export_estimate_covers_its_measured_peak(name: str, target: str, measured_mib: int) -> None:
    need = memory_guard.export_estimate(name, HIGH, target)
    linear = memory_guard.export_estimate(name.removesuffix("-softmax"), HIGH, target)
    assert need is not None and linear is not None
    assert measured_mib * MiB < need < 1.5 * measured_mib * MiB  # above the peak, not absurdly so
    assert linear < 2 * GiB < need  # the map term is what makes the difference


def test_twin_runtime_estimate_includes_the_map() -> None:
    twin = memory_guard.runtime_estimate(f"{B0}-softmax", HIGH, "tflite", 0)
    assert twin is not None and twin > 4489 * MiB  # measured run peak of the B0 twin at 1024x2048 (TFLite)


def test_twin_that_does_not_fit_is_refused_with_its_map(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(InvalidInputError) as info:
        api.check_request("efficientvit-seg-b3-cityscapes-softmax",
                          ExportOptions("onnx", "1024x2048", out_dir=out, max_memory=9 * GiB))
    message = str(info.value)
    assert "its largest N×N map is 4.0 GiB per block" in message and "(--max-memory)" in message
    assert "\n" not in message and not out.exists()
    # the linear model at the same size fits the same limit; no note for a model without a big map
    api.check_request("efficientvit-seg-b3-cityscapes", ExportOptions("onnx", "1024x2048", out_dir=out,
                                                                       max_memory=9 * GiB))
    assert memory_guard.attention_note("efficientvit-seg-b3-cityscapes", HIGH) == ""


def test_cli_twin_refusal_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        export_cli.main(["--target", "tflite", "--model", "efficientvit-seg-b1-ade20k-softmax", "--resolution",
                         "1024x2048", "--out", str(tmp_path / "o"), "--max-memory", "9G"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.count("\n") == 1, err
    assert "N×N map is 4.0 GiB per block" in err and "9.0 GiB (--max-memory)" in err
    assert not (tmp_path / "o").exists()


def test_export_matrix_cells() -> None:
    from bench_highres_exports import PLAN, SEG, describe

    refused = describe({"refused": "exporting x needs ~14 GiB"}, "fp32")
    assert refused[0] == "refused by the memory guard: exporting x needs ~14 GiB" and refused[1:] == ["–"] * 3
    ok = describe({"passed": True, "max_abs": 2.4e-7, "cosine": 1.0, "pixel_agreement": 1.0, "cached": False,
                   "partitions": 1, "export_seconds": 51.2, "peak_rss_mib": 1282.4}, "fp32")
    assert ok == ["verified (max abs diff 2.4e-07, pixel top-1 agreement 100.000%)", "1", "51", "1282"]
    half = describe({"passed": False, "max_abs": 0.1, "cosine": 0.9876543, "pixel_agreement": 0.5, "cached": True,
                     "partitions": None, "export_seconds": 3.0, "peak_rss_mib": 900.0}, "fp16")
    assert half[0].startswith("FAILED parity (cosine 0.987654") and half[1:] == ["–", "3 (cached)", "900 (cached)"]
    assert describe(None, "int8")[0].startswith("failed")
    # the plan covers the matrix: every seg model and twin fp32 at 1024x2048, fp16/int8 at both sizes
    covered = {(m, r, p) for models_, res, precs in PLAN for m in models_ for r in res for p in precs}
    assert {(m, "1024x2048", "fp32") for m in SEG + [f"{s}-softmax" for s in SEG]} <= covered
    assert {(m, r, p) for m in SEG for r in ("512x1024", "1024x2048") for p in ("fp16", "int8")} <= covered


# int8 export peaks, MiB, by target (bench/bench_highres_exports.py --calib-count N; see memory_guard's doc)
INT8_PEAKS = [
    # (model, resolution, calibration images, {target: measured MiB})
    ("efficientvit-seg-b1-cityscapes", (512, 1024), 8, {"onnx": 1467, "tflite": 1366, "executorch": 1190}),
    ("efficientvit-seg-b2-ade20k", (512, 1024), 8, {"onnx": 2162, "tflite": 1924, "executorch": 1774}),
    ("efficientvit-seg-b3-ade20k", (512, 1024), 8, {"onnx": 3240, "tflite": 2670, "executorch": 2385}),
    (B0, HIGH, 8, {"onnx": 2709, "tflite": 2535, "executorch": 2292}),
    (B0, HIGH, 32, {"onnx": 2944, "tflite": 2907, "executorch": 2585}),
    ("efficientvit-seg-b2-cityscapes", HIGH, 8, {"onnx": 4225, "tflite": 3959, "executorch": 3930}),
    ("efficientvit-seg-b1-ade20k", HIGH, 8, {"onnx": 4072, "tflite": 3588, "executorch": 3361}),
    ("efficientvit-seg-b2-ade20k", HIGH, 8, {"onnx": 5230, "tflite": 3918, "executorch": 3892}),
    ("efficientvit-paper-seg", HIGH, 8, {"onnx": 3135, "tflite": 3181, "executorch": 2733}),
    ("lraspp-mobilenetv3-large", HIGH, 8, {"onnx": 2985, "tflite": 2989, "executorch": 2813}),
    ("efficientvit-seg-b3-cityscapes", HIGH, 8, {"onnx": 5992, "tflite": 5335, "executorch": 5001}),
    ("efficientvit-seg-b3-ade20k", HIGH, 8, {"onnx": 7083, "tflite": 5161, "executorch": 5121}),
]


@pytest.mark.parametrize(("model", "resolution", "calib", "target", "measured_mib"), [
    (model, res, calib, target, mib) for model, res, calib, peaks in INT8_PEAKS for target, mib in peaks.items()
])
def test_int8_export_estimate_covers_its_measured_peak(model: str, resolution: tuple[int, int], calib: int,
                                                       target: str, measured_mib: int) -> None:
    need = memory_guard.export_estimate(model, resolution, target, "int8", calib)
    assert need is not None and measured_mib * MiB < need < 1.5 * measured_mib * MiB


def test_int8_estimate_counts_the_calibration_images(tmp_path: Path) -> None:
    # each calibration image is held through the export: more images, a larger estimate, and a folder's images count
    few, many = (memory_guard.export_estimate(B0, HIGH, "tflite", "int8", n) for n in (8, 64))
    assert few is not None and many is not None and many - few > 56 * 3 * HIGH[0] * HIGH[1] * 4 * 0.5
    folder = tmp_path / "calib"
    folder.mkdir()
    for i in range(3):
        (folder / f"{i}.png").write_bytes(b"")
    (folder / "notes.txt").write_text("not an image")
    (folder / ".thumbnail.png").write_bytes(b"")  # hidden: the loader skips it, so the count does too
    assert quantize.planned_count(folder, None) == 3 and quantize.planned_count(folder, 2) == 2
    assert quantize.planned_count(None, None) == quantize.DEFAULT_CALIB_COUNT
    # the CLI's check uses the planned count: a limit between the two estimates refuses only the larger set
    between = (few + many) // 2
    options = {"precision": "int8", "out_dir": tmp_path / "out", "max_memory": between}
    api.check_request(B0, ExportOptions("tflite", HIGH, calib_count=8, **options))
    with pytest.raises(InvalidInputError, match="needs ~"):
        api.check_request(B0, ExportOptions("tflite", HIGH, calib_count=64, **options))


def test_b2_twin_onnx_estimate_covers_its_measured_peak() -> None:
    # measured by bench/bench_highres_exports.py --max-memory 14G (2026-12-01): 7146 MiB peak, verified
    need = memory_guard.export_estimate("efficientvit-seg-b2-cityscapes-softmax", HIGH, "onnx")
    assert need is not None and 7146 * MiB < need < 1.5 * 7146 * MiB
