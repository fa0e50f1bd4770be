"""Export pipeline: weights, verification, manifest, cache, atomicity and bad input (fast, with an in-file backend),
then real ONNX / TFLite / ExecuTorch exports of a tiny EfficientViT and of efficientvit-b0 (slow).

The in-file `FakeBackend` follows the target contract (convert/load_runner/census/versions) with torch.save, so the
pipeline's own logic (cache, corruption, locking, failure cleanup) is tested in milliseconds; the real targets are
tested end to end below.
"""

from __future__ import annotations

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
from effvit_deploy.export import ExportOptions, VerificationError, api, export, seeded_model
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
    model = kw.pop("model", None) or tiny_model()
    return export(model, ExportOptions(target="fake", resolution=kw.pop("resolution", "64x96"), out_dir=out, **kw))


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


def _export_in_child(out: str, precision: str, force: bool) -> None:
    torch.set_num_threads(1)  # as DataLoader workers do: no OpenMP pool inherited across fork
    _export_tiny(Path(out), precision=precision, force=force)


def test_parallel_exports_into_one_folder(tmp_path: Path, fake: FakeBackend) -> None:
    """Two processes write the same artifact and a third another one: the manifest matches the files on disk."""
    ctx = mp.get_context("fork")  # children inherit the monkeypatched backend
    jobs = [("fp32", True), ("fp32", True), ("fp16", True)]
    procs = [ctx.Process(target=_export_in_child, args=(str(tmp_path), p, f)) for p, f in jobs]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(120)
        assert proc.exitcode == 0
    from effvit_deploy.fileio import sha256_file

    folder = tmp_path / "EfficientViTCls" / "64x96"
    entries = mf.read_manifest(folder)["artifacts"]
    assert sorted(entries) == ["fake-fp16-noopt.pt", "fake-fp32-noopt.pt"]
    for name, entry in entries.items():
        assert sha256_file(folder / name) == entry["sha256"]
    assert _leftovers(tmp_path) == []


def test_export_many_validates_everything_first(tmp_path: Path, fake: FakeBackend) -> None:
    with pytest.raises(InvalidInputError, match="multiple of 32"):
        api.export_many([tiny_model()], ["fake"], ["64x96", "100"], ExportOptions("", out_dir=tmp_path, optimize=False))
    assert fake.converted == 0 and not any(tmp_path.rglob("*.pt"))
    options = ExportOptions("", out_dir=tmp_path, optimize=False)
    entries = api.export_many([tiny_model()], ["fake"], ["64x96", 64], options)
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
    args = {"target": "fake", "resolution": "64x96", "out_dir": tmp_path / "out"}
    args.update(kwargs)
    model = args.pop("model", tiny_model())
    with pytest.raises(error, match=pattern):
        export(model, ExportOptions(**args))
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
        export("efficientvit-b1", ExportOptions("fake", 224, out_dir=tmp_path / "out", checkpoint=ckpt, optimize=False))
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


class FakeQuantize:
    """Stands in for effvit_deploy.export.quantize (and the fake target's int8): records what the pipeline passes,
    writes a pickled module."""

    TARGETS = ("fake",)
    ATTENTION_MODES = ("auto", "int8", "fp32")

    def __init__(self) -> None:
        self.calls: list[dict] = []
        self.offset = 0.0

    def check_options(self, target, attention):
        if target.name not in self.TARGETS:
            raise InvalidInputError(f"int8 export is available for {', '.join(self.TARGETS)}, not for {target.name}")
        if attention not in self.ATTENTION_MODES:
            raise InvalidInputError(f"unknown int8 attention mode {attention!r}")

    def calibration_images(self, folder, count, resolution):
        n = count or 3
        calib = [np.full((1, 3, *resolution), i + self.offset, np.float32) for i in range(n)]
        return calib, calib[:1]

    def quantize_for_target(self, target, module, example, out_path, *, calib, attention, heldout, nhwc):
        self.calls.append({"target": target.name, "calib": len(calib), "attention": attention, "nhwc": nhwc})
        torch.save(module, out_path)
        return {"method": "fake", "attention_mode": attention}


def test_int8_plumbing(tmp_path: Path, fake: FakeBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    quant = FakeQuantize()
    monkeypatch.setattr(api, "quantize", quant)
    entry = _export_tiny(tmp_path, precision="int8", calib_count=5, int8_attention="fp32")
    assert quant.calls == [{"target": "fake", "calib": 5, "attention": "fp32", "nhwc": False}]
    assert fake.converted == 0, "int8 artifacts are written by the quantizer, not by the target's convert"
    assert entry["int8"] == {"method": "fake", "attention_mode": "fp32"}
    assert entry["options"]["calib_count"] == 5 and entry["options"]["int8_attention"] == "fp32"
    assert Path(entry["path"]).name == "fake-int8-noopt.pt" and entry["parity"]["criterion"].startswith("cosine")
    assert _export_tiny(tmp_path, precision="int8", calib_count=5, int8_attention="fp32")["cached"]
    quant.offset = 0.5  # other calibration data -> another artifact
    assert not _export_tiny(tmp_path, precision="int8", calib_count=5, int8_attention="fp32")["cached"]
    with pytest.raises(InvalidInputError, match="unknown int8 attention mode 'fp16'"):
        _export_tiny(tmp_path, precision="int8", int8_attention="fp16")
    with pytest.raises(MissingFileError, match="calibration folder"):
        _export_tiny(tmp_path, precision="int8", calib=tmp_path / "nowhere")
    quant.TARGETS = ("tflite",)
    with pytest.raises(InvalidInputError, match="int8 export is available for tflite, not for fake"):
        _export_tiny(tmp_path, precision="int8")


def test_unknown_target_lists_valid_ones(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"onnx.*tflite.*executorch|executorch.*onnx"):
        export(tiny_model(), ExportOptions("coreml", "64x96", out_dir=tmp_path))
    assert not any(tmp_path.rglob("*.*"))


def test_nhwc_on_a_target_without_it_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="NHWC"):
        export(tiny_model(), ExportOptions("onnx", "64x96", out_dir=tmp_path, nhwc=True, optimize=False))
    assert not any(tmp_path.rglob("*.onnx")) and _leftovers(tmp_path) == []


# ---------------------------------------------------------------------------------------------------------------------
# real targets: the tiny EfficientViT (module passed directly) and efficientvit-b0; exports are shared per module
# ---------------------------------------------------------------------------------------------------------------------

REAL_TARGETS = ("onnx", "tflite", "executorch")
HARDSWISH_OP = {"onnx": "HardSwish", "tflite": "HARD_SWISH", "executorch": "XNNHardswish"}
DIV_OP = {"onnx": "Div", "tflite": "DIV", "executorch": "XNNDiv"}
# A decomposed hard-swish shows up as one of these (HardSigmoid*Mul, Clip/Relu6 + Div, ...); BN must be folded.
FORBIDDEN = {
    "onnx": {"BatchNormalization", "HardSigmoid", "Clip", "Sigmoid"},
    "tflite": {"RELU6", "RELU_N1_TO_1", "LOGISTIC", "MINIMUM", "MAXIMUM"},
    "executorch": {"XNNSigmoid", "XNNMinimum", "XNNMaximum"},
}
# ExecuTorch 1.4.1 does not delegate dtype casts, so fp16 artifacts run their fp16<->fp32 casts (I/O and LiteMLA's
# fp32 attention) as portable kernels between XNNPACK partitions; fp32 artifacts are one fully delegated partition.
EXECUTORCH_FP16_UNDELEGATED = {"dim_order_ops::_to_dim_order_copy.out"}
B0_DIR = "b0-exports"  # under pytest's session basetemp; test_cli_export re-uses it (a cache hit when both run)


def _count(model: nn.Module, kind: type[nn.Module]) -> int:
    return sum(isinstance(m, kind) for m in model.modules())


class _Exports:
    """Export on first request, then hand out the same entry (keeps the slow suite to one conversion per artifact)."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.entries: dict[tuple, dict] = {}

    def get(self, model: str | nn.Module, target: str, resolution: str, precision: str = "fp32", **kw) -> dict:
        key = (kw.get("name", model), target, resolution, precision, tuple(sorted(kw.items())))
        if key not in self.entries:
            self.entries[key] = export(model, ExportOptions(target, resolution, precision, self.out, **kw))
        return self.entries[key]


@pytest.fixture(scope="module")
def tiny_exports(tmp_path_factory: pytest.TempPathFactory) -> _Exports:
    return _Exports(tmp_path_factory.mktemp("tiny-exports"))


@pytest.fixture(scope="module")
def b0_exports(tmp_path_factory: pytest.TempPathFactory) -> _Exports:
    out = tmp_path_factory.getbasetemp() / B0_DIR
    out.mkdir(exist_ok=True)
    return _Exports(out)


def _check_artifact(entry: dict, model: nn.Module, target: str, resolution: tuple[int, int]) -> None:
    """Re-verify the written file independently of the pipeline, and check the graph's structure."""
    from effvit_deploy.export.targets import get_target
    from effvit_deploy.fileio import sha256_file
    from effvit_deploy.models.efficientvit import LiteMLA

    path = Path(entry["path"])
    assert entry["parity"]["passed"] and path.is_file()
    assert sha256_file(path) == entry["sha256"] and path.stat().st_size == entry["size_bytes"]
    stored = mf.read_entry(path.parent, path.name)
    assert stored is not None and stored["sha256"] == entry["sha256"]
    x = fixed_input(resolution)
    with torch.no_grad():
        reference = model(x).numpy()
    rerun = compare(reference, get_target(target).load_runner(path)(x.numpy()), entry["precision"])
    assert rerun["passed"], rerun

    ops = entry["census"]["ops"]
    assert ops.get(HARDSWISH_OP[target], 0) == _count(model, nn.Hardswish), ops
    assert not FORBIDDEN[target] & set(ops), ops
    linear_attention = [m for m in model.modules() if isinstance(m, LiteMLA) and not m.softmax]
    if entry["precision"] == "fp32" and entry["optimize"]:
        # one division per linear-attention module (the normaliser); a decomposed hard-swish would add more
        assert ops.get(DIV_OP[target], 0) == len(linear_attention), ops
    census = entry["census"]
    if target == "tflite" and entry["precision"] == "fp16":  # the fp16 guard: each block's select stays fp32
        blocks = len(linear_attention)
        assert census["partitions"] == 1 + blocks, census
        assert census["undelegated"] == ({"GREATER": blocks, "SELECT_V2": blocks} if blocks else {}), census
    elif target == "tflite":  # the whole graph in one XNNPACK partition
        assert census["partitions"] == 1 and census["undelegated"] == {}, census
    if target == "executorch":
        assert census["lowered_ops"]["aten.hardswish.default"] == _count(model, nn.Hardswish)
        if entry["precision"] == "fp32":
            assert census["partitions"] == 1 and census["undelegated"] == {}, census
        else:
            assert set(census["undelegated"]) <= EXECUTORCH_FP16_UNDELEGATED, census


@pytest.mark.slow
@pytest.mark.parametrize("target", REAL_TARGETS)
@pytest.mark.parametrize("resolution", [(64, 96)], ids=["64x96"])  # b0 adds 224x224 and 160x224 below
def test_tiny_end_to_end(tiny_exports: _Exports, target: str, resolution: tuple[int, int]) -> None:
    res = models.format_resolution(resolution)
    entry = tiny_exports.get(tiny_model(), target, res, name="tiny")
    suffix = {"onnx": ".onnx", "tflite": ".tflite", "executorch": ".pte"}[target]
    assert Path(entry["path"]) == tiny_exports.out / "tiny" / res / f"{target}-fp32{suffix}"
    assert entry["model"] == "tiny" and entry["resolution"] == res and entry["target"] == target
    assert entry["parity"]["max_abs"] <= 1e-4 and entry["parity"]["top1_equal"]
    assert {"fold_bn", "attention_deploy_form"} <= set(entry["optimizations"])
    tokens = sorted(a["tokens"] for a in entry["attention"])
    h, w = resolution
    assert tokens == [(h // 32) * (w // 32), (h // 16) * (w // 16)]  # stage 4 and stage 3 token counts
    assert entry["versions"]["torch"] == torch.__version__ and entry["export_seconds"] > 0
    _check_artifact(entry, tiny_model(), target, resolution)


@pytest.mark.slow
@pytest.mark.parametrize("target", REAL_TARGETS)
def test_tiny_softmax_twin(tiny_exports: _Exports, target: str) -> None:
    entry = tiny_exports.get(tiny_model(softmax=True), target, "64x96", name="tiny-softmax")
    assert {a["order"] for a in entry["attention"]} == {"softmax"}
    _check_artifact(entry, tiny_model(softmax=True), target, (64, 96))


@pytest.mark.slow
@pytest.mark.parametrize("target", REAL_TARGETS)
def test_tiny_fp16(tiny_exports: _Exports, target: str) -> None:
    entry = tiny_exports.get(tiny_model(), target, "64x96", "fp16", name="tiny")
    assert entry["parity"]["cosine"] >= 0.999 and entry["parity"]["passed"]
    assert Path(entry["path"]).name == f"{target}-fp16{Path(entry['path']).suffix}"
    _check_artifact(entry, tiny_model(), target, (64, 96))


@pytest.mark.slow
def test_tiny_tflite_nhwc(tiny_exports: _Exports) -> None:
    entry = tiny_exports.get(tiny_model(), "tflite", "64x96", name="tiny", nhwc=True)
    assert Path(entry["path"]).name == "tflite-fp32-nhwc.tflite"
    assert entry["input"] == {**entry["input"], "layout": "NHWC", "shape": [1, 64, 96, 3]}
    assert entry["census"]["layout"] == "NHWC"
    _check_artifact(entry, tiny_model(), "tflite", (64, 96))


@pytest.mark.slow
def test_real_cache_hit_keeps_the_file(tiny_exports: _Exports) -> None:
    first = tiny_exports.get(tiny_model(), "onnx", "64x96", name="tiny")
    path = Path(first["path"])
    mtime = path.stat().st_mtime_ns
    again = export(tiny_model(), ExportOptions("onnx", "64x96", out_dir=tiny_exports.out, name="tiny"))
    assert again["cached"] and again["export_seconds"] == first["export_seconds"]
    assert path.stat().st_mtime_ns == mtime and again["sha256"] == first["sha256"]


@pytest.mark.slow
@pytest.mark.parametrize("target", REAL_TARGETS)
def test_b0_224(b0_exports: _Exports, target: str) -> None:
    entry = b0_exports.get("efficientvit-b0", target, "224x224")
    model = seeded_model("efficientvit-b0")
    assert (entry["params"], entry["macs"]) == models.profile(model, (224, 224))
    assert entry["checkpoint_sha256"] is None and entry["num_classes"] == 1000
    _check_artifact(entry, model, target, (224, 224))
    ops = entry["census"]["ops"]
    print(
        f"b0 {target}: {entry['census']['total_ops']} ops, partitions {entry['census']['partitions']}, "
        f"TRANSPOSE {ops.get('TRANSPOSE', 0)} SLICE {ops.get('SLICE', 0) + ops.get('STRIDED_SLICE', 0)} "
        f"PAD {ops.get('PAD', 0) + ops.get('PADV2', 0)}, {entry['export_seconds']}s"
    )


@pytest.mark.slow
def test_b0_non_square_tflite(b0_exports: _Exports) -> None:
    entry = b0_exports.get("efficientvit-b0", "tflite", "160x224")
    assert entry["resolution"] == "160x224" and entry["input"]["shape"] == [1, 3, 160, 224]
    _check_artifact(entry, seeded_model("efficientvit-b0"), "tflite", (160, 224))


@pytest.mark.slow
def test_tiny_int8_tflite(tiny_exports: _Exports) -> None:
    """int8 goes through the quantize package; the pipeline still verifies against the model as built."""
    entry = tiny_exports.get(tiny_model(), "tflite", "64x96", "int8", name="tiny", calib_count=8)
    assert Path(entry["path"]).name == "tflite-int8.tflite"
    assert entry["parity"]["passed"] and entry["parity"]["criterion"].startswith("cosine")
    assert entry["int8"]["accuracy"]["cosine"] > 0.98 and entry["options"]["calib_count"] == 8
    assert entry["census"]["ops"].get("HARD_SWISH", 0) == _count(tiny_model(), nn.Hardswish)


def test_verification_files_beside_the_artifact_and_added_to_old_cached_entries(tmp_path: Path,
                                                                               fake: FakeBackend) -> None:
    """The device parity check needs the export's input and PyTorch output: stored as .npy, named in the entry."""
    entry = _export_tiny(tmp_path, name="tiny")
    folder = Path(entry["path"]).parent
    info = entry["verification"]
    x, y = np.load(folder / info["input"]), np.load(folder / info["reference"])
    assert info["input"] == "fake-fp32-noopt.pt.input.npy" and info["input_layout"] == "NCHW"
    np.testing.assert_array_equal(x, fixed_input((64, 96)).numpy())
    assert y.shape == (1, 10) and info["input_shape"] == [1, 3, 64, 96] and info["input_name"] is None
    # an entry cached before these files existed gets them on the next (cached) export, without re-converting
    stored = mf.read_entry(folder, "fake-fp32-noopt.pt")
    del stored["verification"]
    mf.put_entry(folder, "fake-fp32-noopt.pt", stored)
    (folder / info["input"]).unlink()
    converted = fake.converted
    again = _export_tiny(tmp_path, name="tiny")
    assert again["cached"] and fake.converted == converted
    assert again["verification"] == info and (folder / info["input"]).is_file()
