"""Segmentation export: exact bicubic upsampling from delegated ops, its deploy pass, 4-D verification, the smallest
seg model at 512x1024 on every target (one partition, parity) and `--full-res-output`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from effvit_deploy import models
from effvit_deploy.errors import InvalidInputError
from effvit_deploy.export import ExportOptions, api, export, seeded_model
from effvit_deploy.export.deploy import to_deploy_form
from effvit_deploy.export.deploy._base import DeployContext
from effvit_deploy.export.deploy.bicubic import BicubicUpsample, phase_taps
from effvit_deploy.export.deploy.bicubic_upsample_deploy import BicubicUpsampleDeployPass
from effvit_deploy.export.verify import compare, fixed_input
from effvit_deploy.models.efficientvit_seg import FullResolutionOutput, UpSampleLayer

SEG = "efficientvit-seg-b0-cityscapes"
TARGETS = ["onnx", "tflite", "executorch"]


# ------------------------------------------------------------------------------------------ exact bicubic


@pytest.mark.parametrize(
    ("channels", "factor", "height", "width"),
    [(3, 2, 5, 7), (32, 4, 4, 8), (19, 8, 4, 6), (2, 3, 1, 1), (2, 8, 2, 1), (5, 2, 1, 9)],
)
def test_bicubic_equals_interpolate(channels: int, factor: int, height: int, width: int) -> None:
    x = torch.randn(2, channels, height, width, generator=torch.Generator().manual_seed(factor)) * 3
    reference = F.interpolate(x, scale_factor=factor, mode="bicubic", align_corners=False)
    with torch.no_grad():
        out = BicubicUpsample(channels, factor)(x)
    assert out.shape == reference.shape
    # fp32 rounding only (a few ulp of the largest value); bilinear is ~0.1 off here
    torch.testing.assert_close(out, reference, rtol=0, atol=1e-6 * float(reference.abs().max()))
    if height > 1 and width > 1:  # a 1-pixel side is constant along it: every interpolation agrees there
        assert (F.interpolate(x, scale_factor=factor, mode="bilinear") - reference).abs().max() > 1e-2


def test_phase_taps_are_a_partition_of_unity() -> None:
    for factor in (2, 3, 4, 8):
        taps = phase_taps(factor)
        torch.testing.assert_close(taps.sum(dim=1), torch.ones(factor, dtype=torch.float64))
        # four cubic taps of the five slots; an odd factor's middle phase samples the source pixel itself
        nonzero = (taps.abs() > 1e-12).sum(dim=1).tolist()
        assert nonzero == [1 if factor % 2 and r == factor // 2 else 4 for r in range(factor)]


def test_bicubic_half_precision_is_close() -> None:
    x = torch.randn(1, 4, 6, 5)
    out = BicubicUpsample(4, 4, dtype=torch.float16)(x.half())
    assert out.dtype == torch.float16
    torch.testing.assert_close(out.float(), F.interpolate(x, scale_factor=4, mode="bicubic"), rtol=0, atol=1e-2)


def test_bad_factor_is_refused() -> None:
    with pytest.raises(ValueError, match="factor"):
        BicubicUpsample(3, 0)


# ------------------------------------------------------------------------------------------ deploy pass


def test_deploy_pass_replaces_every_bicubic_and_keeps_the_function() -> None:
    model = seeded_model(SEG)
    deploy, info = to_deploy_form(model, (96, 160))
    assert not any(isinstance(m, UpSampleLayer) for m in deploy.modules())
    assert [(r["module"], r["channels"], r["factor"], r["input"]) for r in info["upsample"]] == [
        ("head.input_ops.0.op_list.1", 32, 4, [3, 5]),
        ("head.input_ops.1.op_list.1", 32, 2, [6, 10]),
    ]
    assert "bicubic_upsample" in info["optimizations"]
    assert sum(isinstance(m, UpSampleLayer) for m in model.modules()) == 2  # the input model is untouched
    x = torch.randn(1, 3, 96, 160)
    with torch.no_grad():
        torch.testing.assert_close(deploy(x), model(x), rtol=0, atol=1e-5 * float(model(x).abs().max()))


def test_deploy_pass_is_a_no_op_without_upsampling() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.Upsample(scale_factor=2, mode="bicubic")).eval()
    assert not BicubicUpsampleDeployPass()(model, DeployContext((8, 8))).modified
    assert isinstance(model[1], nn.Upsample)


def test_full_resolution_output_deploy_form() -> None:
    model = FullResolutionOutput(seeded_model(SEG), 8).eval()
    deploy, info = to_deploy_form(model, (64, 96))
    assert info["upsample"][-1] == {"module": "upsample", "channels": 19, "factor": 8, "input": [8, 12]}
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        ref = model(x)
        assert ref.shape == (1, 19, 64, 96)
        torch.testing.assert_close(deploy(x), ref, rtol=0, atol=1e-5 * float(ref.abs().max()))


# ------------------------------------------------------------------------------------------ verification


def test_compare_dense_logits_checks_every_clear_pixel() -> None:
    ref = np.random.default_rng(0).standard_normal((1, 19, 8, 12)).astype(np.float32)
    ok = compare(ref, ref + 1e-6, "fp32")
    assert ok["passed"] and ok["top1_equal"] and ok["pixel_agreement"] == 1.0
    flipped = ref.copy()
    flipped[0, :, 0, 0] = flipped[0, ::-1, 0, 0]  # one pixel's classes reversed: a clear winner changes
    bad = compare(ref, flipped, "fp16")
    assert not bad["top1_equal"] and bad["pixel_agreement"] == pytest.approx(1 - 1 / 96)
    tie = ref.copy()
    tie[0, :2, 0, 0] = [1.0, 1.0 + 1e-5]  # a near-tie within tolerance may flip without failing
    near = tie.copy()
    near[0, :2, 0, 0] = [1.0 + 2e-5, 1.0]
    assert compare(tie, near, "fp32")["top1_equal"]


def test_full_res_output_is_refused_for_classifiers(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="full-res-output applies to segmentation models"):
        api.check_request("efficientvit-b0", ExportOptions(target="onnx", resolution="224", out_dir=tmp_path,
                                                            full_res_output=True))
    options = ExportOptions(target="onnx", resolution="64x96", out_dir=tmp_path, full_res_output=True)
    assert api.check_request(SEG, options).options.full_res_output


# ------------------------------------------------------------------------------------------ real exports


@pytest.fixture(scope="module")
def seg_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("seg-exports")


@pytest.mark.slow
@pytest.mark.parametrize("target", TARGETS)
def test_smallest_seg_model_512x1024(seg_out: Path, target: str) -> None:
    entry = export(SEG, ExportOptions(target=target, resolution="512x1024", out_dir=seg_out))
    parity, census = entry["parity"], entry["census"]
    assert parity["passed"] and parity["max_abs"] <= 1e-4 and parity["top1_equal"], parity
    assert entry["num_classes"] == 19
    assert entry["output"] == {"shape": [1, 19, 64, 128], "kind": "dense", "stride": 8}
    assert {"fold_bn", "attention_deploy_form", "bicubic_upsample"} <= set(entry["optimizations"])
    assert (entry["params"], entry["macs"]) == models.profile(seeded_model(SEG), (512, 1024))
    if target != "onnx":  # ONNX Runtime has no delegate partitions to count
        assert census["partitions"] == 1 and census["undelegated"] == {}, census
    ops = census["ops"]
    assert not {"Resize", "RESIZE_BILINEAR", "aten.upsample_bicubic2d.vec"} & set(ops), ops


@pytest.mark.slow
def test_full_res_output_onnx(seg_out: Path) -> None:
    entry = export(SEG, ExportOptions(target="onnx", resolution="256x512", out_dir=seg_out, full_res_output=True))
    assert Path(entry["path"]).name == "onnx-fp32-fullres.onnx"
    assert entry["output"] == {"shape": [1, 19, 256, 512], "kind": "dense", "stride": 1}
    assert entry["parity"]["passed"] and entry["options"]["full_res_output"] is True
    from effvit_deploy.export.targets import get_target

    x = fixed_input((256, 512))
    logits = seeded_model(SEG)(x).detach()
    official = F.interpolate(logits, scale_factor=8, mode="bicubic", align_corners=False).numpy()
    out = get_target("onnx").load_runner(Path(entry["path"]))(x.numpy())
    assert np.abs(out - official).max() <= 1e-4


def test_attention_map_bytes_are_recorded() -> None:
    """The softmax twin's N×N maps at 1024x2048 (what an export needs in memory) are in the deploy info/manifest."""
    _, info = to_deploy_form(seeded_model(f"{SEG}-softmax"), (1024, 2048))
    stage3 = [a for a in info["attention"] if a["module"].startswith("backbone.stages.2.")]
    assert stage3 and all(a["tokens"] == 64 * 128 and a["groups"] == 8 for a in stage3)
    assert all(a["map_bytes"] == 4 * 8 * (64 * 128) ** 2 for a in stage3)  # 2 GiB per block
    _, info = to_deploy_form(seeded_model(SEG), (1024, 2048))
    assert all(a["order"] == "linear" and a["map_bytes"] == 4 * a["groups"] * 16 * 16 for a in info["attention"])


def test_highres_sweep_is_valid() -> None:
    from effvit_deploy.bench.sweep import load_sweep

    spec = load_sweep(Path(__file__).resolve().parents[1] / "bench/sweeps/highres.toml")
    configs = spec.configurations
    assert {c.model for c in configs} <= set(models.names())
    assert {"efficientvit-seg-b3-cityscapes-softmax", "lraspp-mobilenetv3-large"} <= {c.model for c in configs}
    assert {c.resolution for c in configs} == {(512, 1024), (1024, 2048), (960, 1920), (896, 1792), (1184, 2368)}
    assert {c.target for c in configs} == set(TARGETS) and {c.threads for c in configs} == {1, 4}


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_seg_fp16_and_int8_tflite(seg_out: Path, precision: str) -> None:
    """Half and int8 go through the same 4-D verification (cosine over the dense logits); one XNNPACK partition, but
    for the fp16 guard's GREATER/SELECT_V2 pair per attention block (kept in TFLite's fp32 kernels)."""
    options = {"calib_count": 8} if precision == "int8" else {}
    entry = export(SEG, ExportOptions(target="tflite", resolution="128x256", precision=precision, out_dir=seg_out,
                                      **options))
    assert entry["parity"]["passed"] and "pixel_agreement" in entry["parity"]
    census = entry["census"]
    if precision == "fp16":
        blocks = census["undelegated"]["GREATER"]
        assert blocks > 0 and census["undelegated"] == {"GREATER": blocks, "SELECT_V2": blocks}, census
        assert census["partitions"] == 1 + blocks, census
    else:
        assert census["partitions"] == 1, census
        accuracy = entry["int8"]["accuracy"]  # on the held-out photos: top-k per pixel, not over the flattened map
        assert accuracy["top_k_over"] == "classes of every pixel" and accuracy["samples"] > 1, accuracy
        assert accuracy["top1_agreement"] >= entry["parity"]["pixel_agreement"] - 0.2, (accuracy, entry["parity"])
    assert entry["output"]["shape"] == [1, 19, 16, 32]


def test_cli_full_res_output_on_a_classifier_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from effvit_deploy.cli.export import main

    argv = ["--target", "onnx", "--model", "efficientvit-b0", "--full-res-output", "--out", str(tmp_path)]
    with pytest.raises(SystemExit) as info:
        main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert info.value.code == 2 and len(err) == 1 and "applies to segmentation models" in err[0], err
    assert not any(tmp_path.rglob("*.onnx"))


@pytest.mark.slow
@pytest.mark.parametrize(("target", "precision"), [("tflite", "fp32"), ("executorch", "fp32"), ("tflite", "int8")])
def test_paper_seg_is_one_partition(seg_out: Path, target: str, precision: str) -> None:
    """The v1 downsampling shortcut's average pool must be delegated too: ExecuTorch takes it without pad counting,
    and in int8 (which TFLite's XNNPACK pools do not take) it is a depthwise mean conv."""
    options = {"calib_count": 8} if precision == "int8" else {}
    entry = export("efficientvit-paper-seg", ExportOptions(target=target, resolution="128x256", precision=precision,
                                                           out_dir=seg_out, **options))
    assert entry["parity"]["passed"]
    assert entry["census"]["partitions"] == 1 and entry["census"]["undelegated"] == {}, entry["census"]
