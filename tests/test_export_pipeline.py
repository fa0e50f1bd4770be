"""Export pipeline: weights, verification, manifest, cache, atomicity and bad input (fast, with an in-file backend),
then real ONNX / TFLite / ExecuTorch exports of a tiny EfficientViT and of efficientvit-b0 (slow).

The in-file `FakeBackend` follows the target contract (convert/load_runner/census/versions) with torch.save, so the
pipeline's own logic (cache, corruption, locking, failure cleanup) is tested in milliseconds; the real targets are
tested end to end below.
"""

from __future__ import annotations

import importlib
import logging
import multiprocessing as mp
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from effvit_deploy import models
from effvit_deploy.errors import CheckpointError, InvalidInputError, MissingDependencyError, MissingFileError
from effvit_deploy.export import VerificationError, api, export, seeded_model
from effvit_deploy.export import manifest as mf
from effvit_deploy.export.verify import compare, fixed_input
from effvit_deploy.export.weights import randomize_bn_stats, weights_sha256
from effvit_deploy.models.efficientvit import EfficientViTCls, EfficientViTConfig

TINY_CFG = EfficientViTConfig((8, 16, 16, 32, 32), (1, 1, 1, 1, 1), dim=8, head_widths=(64, 64))


def tiny_model(softmax: bool = False) -> nn.Module:
    """The tiny EfficientViT of the brief, seeded, with random BN statistics (so folding is exercised)."""
    torch.manual_seed(0)
    return randomize_bn_stats(EfficientViTCls(TINY_CFG, num_classes=10, softmax=softmax)).eval()


# ---------------------------------------------------------------------------------------------------------------------
# an in-file backend that follows the target contract
# ---------------------------------------------------------------------------------------------------------------------


class FakeBackend:
    """Target backend that pickles the module; `perturb` adds to the runner's logits to force a parity failure."""

    name = "fake"
    suffix = ".pt"
    precisions = ("fp32", "fp16")

    def __init__(self, perturb: float = 0.0, version: str = "1", fail_convert: bool = False) -> None:
        self.perturb = perturb
        self.version = version
        self.fail_convert = fail_convert
        self.converted = 0

    def convert(self, module: nn.Module, example: torch.Tensor, out_path: Path, *, precision: str, nhwc: bool = False):
        assert out_path.name.startswith(".") and out_path.exists(), "the pipeline passes a temp path"
        self.converted += 1
        if self.fail_convert:
            out_path.write_bytes(b"half")
            raise RuntimeError("converter crashed")
        torch.save(module, out_path)

    def load_runner(self, path: Path, *, threads: int = 1) -> Callable[[np.ndarray], np.ndarray]:
        module = torch.load(path, weights_only=False)

        def run(x: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return module(torch.from_numpy(x)).numpy() + self.perturb

        return run

    def census(self, path: Path) -> dict:
        module = torch.load(path, weights_only=False)
        ops = {"HARDSWISH": sum(isinstance(m, nn.Hardswish) for m in module.modules())}
        return {
            "ops": ops,
            "partitions": None,
            "delegated_ops": None,
            "total_ops": sum(ops.values()),
            "undelegated": {},
        }

    def versions(self) -> dict[str, str]:
        return {"fake-runtime": self.version}


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeBackend:
    """Route target name "fake" to a FakeBackend (other names go to the real targets)."""
    backend = FakeBackend()
    real = api._backend
    monkeypatch.setattr(api, "_backend", lambda name: backend if name == "fake" else real(name))
    return backend


def _leftovers(folder: Path) -> list[str]:
    """Temp files the pipeline might leave behind (atomic_path names them `.<stem>.*.tmp<suffix>`)."""
    return sorted(p.name for p in folder.rglob("*") if ".tmp" in p.name)


# ---------------------------------------------------------------------------------------------------------------------
# weights and verification
# ---------------------------------------------------------------------------------------------------------------------


def test_seeded_model_is_reproducible_and_leaves_global_rng_alone() -> None:
    torch.manual_seed(42)
    before = torch.rand(3)
    torch.manual_seed(42)
    a = seeded_model("efficientvit-b0")
    after = torch.rand(3)
    assert torch.equal(before, after), "seeded_model must not consume the caller's RNG"
    b = seeded_model("efficientvit-b0")
    assert weights_sha256(a) == weights_sha256(b)
    bn = a.backbone.input_stem.op_list[0].norm
    assert 0.5 <= bn.running_var.min() and bn.running_var.max() <= 1.5
    assert bn.running_mean.abs().max() > 0 and bn.running_mean.std() < 0.3
    assert not a.training


def test_weights_hash_sees_one_changed_value() -> None:
    model = tiny_model()
    digest = weights_sha256(model)
    with torch.no_grad():
        model.head.op_list[3].linear.bias[0] += 1e-6
    assert weights_sha256(model) != digest


def test_fixed_input_is_deterministic_and_normalized() -> None:
    x = fixed_input((64, 96))
    assert x.shape == (1, 3, 64, 96)
    assert torch.equal(x, fixed_input((64, 96)))
    assert -2.2 < x.min() < -1.5 and 2.0 < x.max() < 2.7  # ImageNet-normalised [0, 1) noise


def test_compare_thresholds() -> None:
    ref = np.linspace(-3, 3, 10, dtype=np.float32)[None]
    assert compare(ref, ref + 5e-5, "fp32")["passed"]
    failing = compare(ref, ref + 2e-4, "fp32")
    assert not failing["passed"] and failing["max_abs"] == pytest.approx(2e-4, rel=1e-3)
    swapped = ref.copy()
    swapped[0, [-1, -2]] = swapped[0, [-2, -1]]  # tiny error but top-1 changes
    assert not compare(ref, ref + (swapped - ref) * 1e-5 + np.where(swapped != ref, 1e-3, 0), "fp32")["passed"]
    assert compare(ref, ref * 1.01 + 0.01, "fp16")["passed"]
    assert not compare(ref, ref[:, ::-1], "fp16")["passed"]
    assert not compare(ref, np.full_like(ref, np.nan), "fp16")["passed"]
    assert not compare(ref, ref[:, :5], "fp32")["passed"]


# ---------------------------------------------------------------------------------------------------------------------
# manifest
# ---------------------------------------------------------------------------------------------------------------------


def _put_many(folder: str, worker: int, count: int) -> None:
    for i in range(count):
        mf.put_entry(folder, f"w{worker}-{i}.bin", {"worker": worker, "i": i})


def test_parallel_manifest_updates_lose_nothing(tmp_path: Path) -> None:
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_put_many, args=(str(tmp_path), w, 15)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    entries = mf.read_manifest(tmp_path)["artifacts"]
    assert len(entries) == 60
    assert _leftovers(tmp_path) == []


def test_artifact_names() -> None:
    assert mf.artifact_name("tflite", "fp32", ".tflite") == "tflite-fp32.tflite"
    assert mf.artifact_name("onnx", "fp16", ".onnx", nhwc=True, optimize=False) == "onnx-fp16-nhwc-noopt.onnx"


def test_unreadable_manifest_is_treated_as_empty(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / mf.MANIFEST_NAME).write_text("{not json")
    with caplog.at_level(logging.WARNING):
        assert mf.read_manifest(tmp_path) == {"artifacts": {}}
    assert "unreadable" in caplog.text


# ---------------------------------------------------------------------------------------------------------------------
# pipeline with the in-file backend: layout, cache, corruption, failure cleanup
# ---------------------------------------------------------------------------------------------------------------------


def _export_tiny(out: Path, **kw) -> dict:
    kw.setdefault("optimize", False)
    return export(kw.pop("model", None) or tiny_model(), "fake", kw.pop("resolution", "64x96"), out_dir=out, **kw)


def test_layout_and_manifest_fields(tmp_path: Path, fake: FakeBackend) -> None:
    entry = _export_tiny(tmp_path, name="tiny")
    path = tmp_path / "tiny" / "64x96" / "fake-fp32-noopt.pt"
    assert entry["path"] == str(path) and path.is_file() and not entry["cached"]
    stored = mf.read_manifest(path.parent)["artifacts"]["fake-fp32-noopt.pt"]
    assert {k: v for k, v in entry.items() if k not in ("cached", "path")} == stored
    assert stored["model"] == "tiny" and stored["resolution"] == "64x96" and stored["num_classes"] == 10
    assert (stored["params"], stored["macs"]) == models.profile(tiny_model(), (64, 96))
    assert stored["parity"]["passed"] and stored["parity"]["max_abs"] == 0.0
    assert stored["census"]["ops"]["HARDSWISH"] == sum(isinstance(m, nn.Hardswish) for m in tiny_model().modules())
    assert stored["versions"]["fake-runtime"] == "1" and stored["versions"]["torch"] == torch.__version__
    assert stored["checkpoint_sha256"] is None and stored["export_seconds"] > 0
    assert stored["input"]["shape"] == [1, 3, 64, 96]
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    assert _leftovers(tmp_path) == []


def test_module_name_defaults_to_class_name(tmp_path: Path, fake: FakeBackend) -> None:
    entry = _export_tiny(tmp_path)
    assert entry["model"] == "EfficientViTCls"
    assert Path(entry["path"]).parent == tmp_path / "EfficientViTCls" / "64x96"


def test_cache_hit_miss_corrupt_and_force(tmp_path: Path, fake: FakeBackend, caplog: pytest.LogCaptureFixture) -> None:
    first = _export_tiny(tmp_path)
    path = Path(first["path"])
    mtime = path.stat().st_mtime_ns
    again = _export_tiny(tmp_path)
    assert again["cached"] and fake.converted == 1 and path.stat().st_mtime_ns == mtime
    assert again["sha256"] == first["sha256"]

    fake.version = "2"  # a tool version change invalidates the cache
    assert not _export_tiny(tmp_path)["cached"] and fake.converted == 2

    model = tiny_model()
    with torch.no_grad():
        model.head.op_list[3].linear.bias[0] += 0.5  # other weights, same file name
    assert not _export_tiny(tmp_path, model=model)["cached"] and fake.converted == 3
    assert not _export_tiny(tmp_path)["cached"] and fake.converted == 4  # back to the original weights

    path.write_bytes(path.read_bytes()[:100])  # truncated artifact
    with caplog.at_level(logging.WARNING):
        redone = _export_tiny(tmp_path)
    assert not redone["cached"] and fake.converted == 5
    assert f"artifact {path} is corrupt (sha256 mismatch): re-exporting" in caplog.text

    assert _export_tiny(tmp_path)["cached"]
    assert not _export_tiny(tmp_path, force=True)["cached"] and fake.converted == 6


def test_option_change_is_another_artifact(tmp_path: Path, fake: FakeBackend) -> None:
    a = _export_tiny(tmp_path)
    b = _export_tiny(tmp_path, precision="fp16")
    c = _export_tiny(tmp_path, resolution=64)
    assert len({a["path"], b["path"], c["path"]}) == 3 and not (b["cached"] or c["cached"])
    assert len({a["cache_key"], b["cache_key"], c["cache_key"]}) == 3
    assert sorted(mf.read_manifest(Path(a["path"]).parent)["artifacts"]) == ["fake-fp16-noopt.pt", "fake-fp32-noopt.pt"]


def test_checkpoint_changes_cache_key_and_is_recorded(tmp_path: Path, fake: FakeBackend) -> None:
    model = tiny_model()
    ckpt = tmp_path / "w.pt"
    torch.save({k: v + 0.01 if v.is_floating_point() else v for k, v in model.state_dict().items()}, ckpt)
    plain = _export_tiny(tmp_path / "out")
    loaded = _export_tiny(tmp_path / "out", checkpoint=ckpt)
    assert not loaded["cached"] and loaded["cache_key"] != plain["cache_key"]
    assert loaded["checkpoint_sha256"] is not None and len(loaded["checkpoint_sha256"]) == 64


def test_verification_failure_leaves_nothing(tmp_path: Path, fake: FakeBackend) -> None:
    fake.perturb = 1e-3
    with pytest.raises(VerificationError, match=r"max_abs=0\.001 .*needs max_abs <= 0\.0001") as info:
        _export_tiny(tmp_path)
    assert info.value.parity["max_abs"] == pytest.approx(1e-3, rel=1e-3)
    folder = tmp_path / "EfficientViTCls" / "64x96"
    assert not (folder / "fake-fp32-noopt.pt").exists()
    assert mf.read_manifest(folder)["artifacts"] == {}
    assert _leftovers(tmp_path) == []


def test_verification_failure_keeps_the_previous_good_artifact(tmp_path: Path, fake: FakeBackend) -> None:
    good = _export_tiny(tmp_path)
    fake.perturb = 1.0
    with pytest.raises(VerificationError):
        _export_tiny(tmp_path, force=True)
    assert Path(good["path"]).is_file()
    assert mf.read_entry(Path(good["path"]).parent, good["artifact"])["sha256"] == good["sha256"]


def test_converter_crash_leaves_nothing(tmp_path: Path, fake: FakeBackend) -> None:
    fake.fail_convert = True
    with pytest.raises(RuntimeError, match="converter crashed"):
        _export_tiny(tmp_path)
    assert not (tmp_path / "EfficientViTCls" / "64x96" / "fake-fp32-noopt.pt").exists()
    assert _leftovers(tmp_path) == []


def test_export_many_validates_everything_first(tmp_path: Path, fake: FakeBackend) -> None:
    with pytest.raises(InvalidInputError, match="multiple of 32"):
        api.export_many([tiny_model()], ["fake"], ["64x96", "100"], out_dir=tmp_path, optimize=False)
    assert fake.converted == 0 and not any(tmp_path.rglob("*.pt"))
    entries = api.export_many([tiny_model()], ["fake"], ["64x96", 64], out_dir=tmp_path, optimize=False)
    assert [e["resolution"] for e in entries] == ["64x96", "64x64"]


# ---------------------------------------------------------------------------------------------------------------------
# bad input: one clear error, nothing written
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "pattern"),
    [
        ({"precision": "fp64"}, InvalidInputError, r"unknown precision 'fp64'; choose one of: fp32, fp16, int8"),
        ({"resolution": "100"}, InvalidInputError, r"resolution 100x100 is invalid.*multiple of 32"),
        ({"resolution": "2x3x4"}, InvalidInputError, r"not understood"),
        ({"model": "efficientvit-b9"}, InvalidInputError, r"unknown model 'efficientvit-b9'; choose one of: .*b0"),
        ({"checkpoint": "nope.pt"}, MissingFileError, r"checkpoint nope.pt does not exist"),
        ({"name": "a/b"}, InvalidInputError, r"cannot be a folder name"),
    ],
)
def test_bad_input(tmp_path: Path, fake: FakeBackend, kwargs: dict, error: type, pattern: str) -> None:
    args = {"model": tiny_model(), "target": "fake", "resolution": "64x96", "out_dir": tmp_path / "out"}
    args.update(kwargs)
    with pytest.raises(error, match=pattern):
        export(**args)
    assert fake.converted == 0
    assert not any(p.is_file() for p in tmp_path.rglob("*"))


def test_precision_the_target_cannot_take(tmp_path: Path, fake: FakeBackend) -> None:
    fake.precisions = ("fp32",)
    with pytest.raises(InvalidInputError, match="target fake cannot export fp16; it takes: fp32"):
        _export_tiny(tmp_path, precision="fp16")


def test_checkpoint_for_another_model(tmp_path: Path, fake: FakeBackend) -> None:
    ckpt = tmp_path / "b0.pt"
    torch.save(seeded_model("efficientvit-b0").state_dict(), ckpt)
    with pytest.raises(CheckpointError, match="does not fit"):
        export("efficientvit-b1", "fake", 224, out_dir=tmp_path / "out", checkpoint=ckpt, optimize=False)
    assert not any((tmp_path / "out").rglob("*.pt"))


def test_unwritable_output_dir(tmp_path: Path, fake: FakeBackend) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")  # a file where a folder must go (chmod does not stop root)
    with pytest.raises(InvalidInputError, match=rf"cannot write to output folder {blocker}/out .*writable folder"):
        _export_tiny(blocker / "out")


def test_missing_runtime_is_reported_before_any_work(
    tmp_path: Path, fake: FakeBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    def missing() -> dict:
        raise MissingDependencyError("fake runtime is not installed; pip install 'effvit-deploy[fake]'")

    monkeypatch.setattr(fake, "versions", missing)
    with pytest.raises(MissingDependencyError, match=r"effvit-deploy\[fake\]"):
        _export_tiny(tmp_path)
    assert fake.converted == 0


def test_int8_is_refused_until_the_quantizer_exists(tmp_path: Path, fake: FakeBackend) -> None:
    fake.precisions = ("fp32", "fp16", "int8")
    if hasattr(importlib.import_module("effvit_deploy.export.quantize"), "quantize_for_target"):
        pytest.skip("the quantize package is present; int8 is tested with it")
    with pytest.raises(InvalidInputError, match="int8 export is not available yet"):
        _export_tiny(tmp_path, precision="int8")


def test_unknown_target_lists_valid_ones(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"onnx.*tflite.*executorch|executorch.*onnx"):
        export(tiny_model(), "coreml", "64x96", out_dir=tmp_path)
    assert not any(tmp_path.rglob("*.*"))
