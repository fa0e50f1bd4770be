"""The REAL native runners (`effvit-bench runners build`) through the harness: on this machine and pushed to an
emulated x86-64 phone through the real adb client, on fp32/fp16/int8 exports of efficientvit-b0 at 64x64.

Every record must carry real latency, the runner's runtime version and device parity against the PyTorch reference
stored at export. Bad input: a runner folder for another ABI (refused before pushing), a crashing runner, a model the
runner cannot load, and an output that does not match the reference (a flagged record, not a crash).

The runner folder comes from $EFFVIT_RUNNER_DIR (`make test` builds it first) or is built here: the build is cached
in ~/.cache/effvit-deploy/runners, so only a fresh machine compiles (about 1.5 minutes).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from effvit_deploy.bench import report
from effvit_deploy.bench.devices import DEVICE_ROOT, open_devices
from effvit_deploy.bench.native import native_runner
from effvit_deploy.bench.records import BenchRecord
from effvit_deploy.bench.store import ResultStore
from effvit_deploy.errors import DeviceError
from effvit_deploy.runners import build_runners, cache_root
from effvit_deploy.runners.folder import FILE_NAME
from tests.adb_emulator import AdbEmulator
from tests.bench_cli import exit_code
from tests.runner_folders import runner_folder
from tests.test_bench_adb_e2e import measure, sweep

pytestmark = pytest.mark.slow

MODEL, RES = "efficientvit-b0", "64"
TARGETS = ("tflite", "onnx", "executorch")
PRECISIONS = ("fp32", "fp16", "int8")
RUNTIME_PACKAGES = {"tflite": ("tflite-runtime", "2.14.0"), "onnx": ("onnxruntime", "1.32.0"),
                    "executorch": ("executorch", "1.5.1")}
SUFFIX = {"tflite": ".tflite", "onnx": ".onnx", "executorch": ".pte"}


@pytest.fixture(scope="session")
def runner_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return runner_folder("EFFVIT_RUNNER_DIR", "x86_64", tmp_path_factory)


@pytest.fixture(scope="session")
def export_dir() -> Path:
    """fp32, fp16 and int8 artifacts of b0 @64 for every target (with their verification files).

    Kept in a cache folder beside the runner builds: the export pipeline's own cache (manifest key + sha256 checks)
    makes a second `make test` reuse them; a fresh machine converts all nine once (minutes, mostly int8).
    """
    from effvit_deploy.export import ExportOptions, export

    out = cache_root().parent / "test-exports" / "native-runners"
    for precision in PRECISIONS:
        for target in TARGETS:
            export(MODEL, ExportOptions(target, RES, precision, out))
    return out


def records(path: Path) -> list[BenchRecord]:
    return list(ResultStore(path).records())


def test_runner_folder_describes_every_binary(runner_dir: Path, tmp_path: Path) -> None:
    manifest = json.loads((runner_dir / FILE_NAME).read_text())
    assert manifest["arch"] == "x86_64" and manifest["abi"] == "x86_64"
    for target, (package, version) in RUNTIME_PACKAGES.items():
        entry = manifest["runners"][target]
        assert entry["runtime"] == target and entry["runtime_package"] == package
        assert entry["runtime_version"] == version
        assert os.access(runner_dir / entry["binary"], os.X_OK)
        assert all((runner_dir / lib).is_file() for lib in entry["libraries"])
        assert entry["sources"] and all(len(s["sha256"]) == 64 for s in entry["sources"])
    tf = {s["role"]: s["name"] for s in manifest["runners"]["tflite"]["sources"] if "role" in s}
    assert tf["tensorflow"] == "tensorflow_2.14.1+dfsg.orig.tar.xz" and tf["tflite-runtime"].startswith(
        "tflite_runtime-2.14.0-")
    # a second build reuses the cached compile and writes an identical folder elsewhere
    again = build_runners("x86_64", tmp_path / "again")
    assert again.cached == {"tflite": True, "onnx": True, "executorch": True}
    assert sorted(p.name for p in again.folder.iterdir()) == sorted(p.name for p in runner_dir.iterdir())


def test_local_native_and_python_runners_with_device_parity(runner_dir: Path, export_dir: Path,
                                                           tmp_path: Path) -> None:
    common = ["run", "-d", "local", "-m", MODEL, "-r", RES, *[a for t in TARGETS for a in ("-t", t)],
              *[a for p in PRECISIONS for a in ("--precision", p)], "--runs", "5", "--warmup", "2",
              "--export-dir", export_dir]
    assert exit_code(*common, "--runner", "native", "--runner-dir", runner_dir, "--out", tmp_path / "native") == 0
    native = records(tmp_path / "native" / "adhoc.jsonl")
    assert len(native) == 9
    for rec in native:
        label = f"{rec.target} {rec.precision}"
        assert rec.ok, (label, rec.error)
        assert rec.runner.startswith("native-") and rec.stats["mean_ms"] > 0, label
        package, version = RUNTIME_PACKAGES[rec.target]
        assert rec.versions[package] == version, label
        assert rec.device_parity["status"] == "pass", (label, rec.device_parity)
        assert rec.device_parity["top1_equal"] is not None and rec.device_parity["cosine"] > 0.9, label
    by_target = {r.target: r for r in native if r.precision == "fp32"}
    assert by_target["tflite"].stats["median_ms"] is None  # benchmark_model 2.14: mean only, and labelled so
    assert by_target["executorch"].samples_ms is not None and len(by_target["executorch"].samples_ms) == 5
    assert by_target["onnx"].stats["p90_ms"] is not None

    assert exit_code(*common, "--runner", "python", "--out", tmp_path / "python") == 0
    python = records(tmp_path / "python" / "adhoc.jsonl")
    assert len(python) == 9 and all(r.ok and r.runner.startswith("python-") for r in python)
    assert all(r.device_parity["status"] == "pass" for r in python), [r.device_parity for r in python]
    table = report.render(native + python, "md")
    assert "parity · " in table and "MISS cos=" not in table and table.count(" | ok |") == 9


def test_runners_pushed_to_an_emulated_x86_64_phone(adb_phone_factory: Callable[..., AdbEmulator],
                                                     runner_dir: Path, export_dir: Path, tmp_path: Path) -> None:
    from effvit_deploy.export import ExportOptions, export

    phone = adb_phone_factory("x86_64")  # no python3 there: only the native runners can measure
    [dev] = open_devices([f"adb:{phone.serial}"])
    cfgs = [c for t in TARGETS for c in _configs(t)]
    store = ResultStore(tmp_path / "phone.jsonl")
    summary = measure([dev], sweep(cfgs, runs=3, warmup=1), store,
                      lambda c, d: export(c.model, ExportOptions(c.target, c.resolution, c.precision, export_dir)),
                      runner_dir=runner_dir, runner="native")
    assert (summary.measured, summary.failed, summary.device_errors) == (3, 0, {}), \
        [r.error for r in summary.records]
    for rec in store.records():
        assert rec.device["abi"] == "x86_64" and rec.device_serial == phone.serial
        assert rec.stats["mean_ms"] > 0 and rec.device_parity["status"] == "pass", rec.device_parity
    bin_dir = phone.host_path(f"{DEVICE_ROOT}/bin")
    assert {"benchmark_model", "onnxruntime_perf_test", "executor_runner", "libonnxruntime.so.1"} <= {
        p.name for p in bin_dir.iterdir()}
    assert any("/bin/executor_runner" in c and "--inputs=" in c for c in phone.commands)  # the parity run
    assert not list(phone.host_path(f"{DEVICE_ROOT}/results").iterdir())  # output files pulled and removed


def test_runner_folder_for_another_abi_is_refused_before_pushing(adb_phone_factory: Callable[..., AdbEmulator],
                                                                 runner_dir: Path, tmp_path: Path) -> None:
    phone = adb_phone_factory("sm8150")  # arm64-v8a
    [dev] = open_devices([f"adb:{phone.serial}"])
    with pytest.raises(DeviceError, match=r"holds runners for x86_64 but adb:.* is arm64-v8a "
                                          r"\(ro.product.cpu.abi\); build runners for it"):
        measure([dev], sweep(_configs("onnx")), ResultStore(tmp_path / "r.jsonl"), lambda c, d: {},
                runner_dir=runner_dir, runner="native")
    assert not phone.host_path(f"{DEVICE_ROOT}/bin").exists() or not list(
        phone.host_path(f"{DEVICE_ROOT}/bin").iterdir())


def test_crash_unloadable_model_and_mismatching_output_are_records(runner_dir: Path, export_dir: Path,
                                                                   tmp_path: Path) -> None:
    from effvit_deploy.export import ExportOptions, export

    broken = tmp_path / "runners"
    shutil.copytree(runner_dir, broken)
    (broken / "benchmark_model").write_text("#!/bin/sh\nkill -SEGV $$\n")  # dies from a signal like a real crash

    # a model the runner cannot load: a truncated .pte (with its real manifest entry otherwise)
    def garbage_pte(config: Any, _d: Path) -> dict[str, Any]:
        entry = export(config.model, ExportOptions(config.target, config.resolution, config.precision, export_dir))
        bad = tmp_path / "bad" / "executorch-fp32.pte"
        bad.parent.mkdir(exist_ok=True)
        bad.write_bytes(Path(entry["path"]).read_bytes()[:4096])
        return {**entry, "path": str(bad), "sha256": None}

    # an output that does not match: the same artifact, its stored reference perturbed
    def wrong_reference(config: Any, _d: Path) -> dict[str, Any]:
        entry = export(config.model, ExportOptions(config.target, config.resolution, config.precision, export_dir))
        folder = tmp_path / "wrong"
        folder.mkdir(exist_ok=True)
        src = Path(entry["path"])
        for name in (src.name, entry["verification"]["input"], entry["verification"]["reference"]):
            shutil.copy2(src.parent / name, folder / name)
        ref = folder / entry["verification"]["reference"]
        y = np.load(ref)
        np.save(ref, (-y).astype(np.float32))  # negated logits: cosine -1, another top-1
        return {**entry, "path": str(folder / src.name)}

    [dev] = open_devices(["local"])
    cases = (("tflite", lambda c, d: export(c.model, ExportOptions(c.target, c.resolution, c.precision, export_dir))),
             ("executorch", garbage_pte), ("onnx", wrong_reference))
    recs = {}
    for target, exporter in cases:
        store = ResultStore(tmp_path / f"{target}.jsonl")
        measure([dev], sweep(_configs(target)), store, exporter, runner_dir=broken, runner="native")
        [recs[target]] = store.records()
    # started through a forked `sh` (so its peak memory is its own), as through adb: the shell reports 128 + 11
    assert recs["tflite"].error == "benchmark_model exited with 139 (killed by SIGSEGV): Segmentation fault"
    assert not recs["executorch"].ok and recs["executorch"].error.startswith("executor_runner exited with 1: ")
    assert "Failed to parse model file" in recs["executorch"].error or "0x" in recs["executorch"].error
    flagged = recs["onnx"]
    assert flagged.ok and flagged.device_parity["status"] == "fail" and flagged.device_parity["cosine"] < 0
    assert flagged.device_parity["top1_equal"] is False
    table = report.render([flagged], "md")
    assert " ✗" in table and "MISS cos=" in table and "parity fail: " in table


def _configs(target: str) -> list[Any]:
    from effvit_deploy.bench.sweep import Configuration

    return [Configuration(MODEL, (64, 64), target, threads=1)]


def test_real_native_runners_hold_the_stop_rule_and_report_memory(runner_dir: Path, export_dir: Path,
                                                                  tmp_path: Path) -> None:
    argv = ["run", "-d", "local", "-m", MODEL, "-r", RES, *[a for t in TARGETS for a in ("-t", t)],
            "--runs", "5", "--warmup", "2", "--min-seconds", "0.3", "--max-seconds", "30", "--export-dir", export_dir,
            "--runner", "native", "--runner-dir", runner_dir, "--out", tmp_path]
    assert exit_code(*argv) == 0
    recs = {r.target: r for r in records(tmp_path / "adhoc.jsonl")}
    assert set(recs) == set(TARGETS)
    for target, rec in recs.items():
        assert rec.ok, (target, rec.error)
        assert rec.stop_rule == {"min_runs": 5, "min_seconds": 0.3, "max_seconds": 30.0,
                                 "applied_by": native_runner(target).stop_rule_basis()}
        # b0 @64 runs in milliseconds: 5 runs are far below 0.3 s, so the runner went on for the time rule
        n = rec.stats["n"]
        timed_s = rec.extra.get("timed_s", n * rec.stats["mean_ms"] / 1000)
        assert n > 5 and timed_s >= 0.3 * 0.95, (target, n, timed_s)
        assert rec.peak_rss_kb and 10_000 < rec.peak_rss_kb < 4_000_000, target
        assert rec.init_ms and rec.init_ms > 0 and rec.first_ms and rec.first_ms > 0, target
    assert recs["executorch"].extra["memory_source"] == "executor_runner: VmHWM of its own process"
    assert recs["executorch"].arena_bytes is not None and recs["executorch"].arena_bytes >= 0
    assert recs["onnx"].arena_bytes and recs["onnx"].arena_bytes > 0 and "MaxInUse" in recs["onnx"].extra[
        "arena_source"]
    assert recs["tflite"].arena_bytes is None and "benchmark_model" in recs["tflite"].extra["arena_reason"]
    assert "report_peak_memory_footprint" in recs["tflite"].extra["memory_source"]


def test_benchmark_model_peak_memory_is_its_own_not_the_harness_s(runner_dir: Path, export_dir: Path,
                                                                   tmp_path: Path) -> None:
    """ru_maxrss survives exec: started straight from this large Python process, benchmark_model would report this
    process's peak. The local device starts it from a forked shell, so the figure is the tool's own."""
    ballast = np.ones(300 * 2**20 // 8)  # 300 MB resident in the harness while it measures
    assert exit_code("run", "-d", "local", "-m", MODEL, "-r", RES, "-t", "tflite", "--runs", "5", "--warmup", "1",
                   "--export-dir", export_dir, "--runner", "native", "--runner-dir", runner_dir, "--out", tmp_path) == 0
    [rec] = records(tmp_path / "adhoc.jsonl")
    assert rec.ok and rec.peak_rss_kb is not None and ballast.sum() > 0
    assert 10_000 < rec.peak_rss_kb < 250_000, rec.peak_rss_kb  # b0 @64 in benchmark_model: ~36 MB here
