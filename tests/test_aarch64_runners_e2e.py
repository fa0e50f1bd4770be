"""The aarch64 runners (`effvit-bench runners build --arch aarch64`) executing real ARM code under qemu-user: on the
emulated Snapdragon 8 Gen 1 phone through the real adb client (pushed, run under `taskset`, parsed, device parity
from the ARM kernels' outputs) and on this machine; records flagged emulated; an x86-64 folder refused by the ARM64
phone. (A missing cross compiler: test_runners_build_errors.py.)

The folder comes from $EFFVIT_RUNNER_DIR_AARCH64 (`make test` builds it first) or is built here (cached in
~/.cache/effvit-deploy/runners: only a fresh machine compiles, a few minutes).
"""

from __future__ import annotations

import json
import platform
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from effvit_deploy.bench import report
from effvit_deploy.bench.devices import DEVICE_ROOT, open_devices
from effvit_deploy.bench.emulation import NOT_PHONE_LATENCY
from effvit_deploy.bench.records import BenchRecord
from effvit_deploy.bench.store import ResultStore
from effvit_deploy.runners import build_runners, cache_root
from effvit_deploy.runners.folder import FILE_NAME
from tests.adb_emulator import AdbEmulator
from tests.adb_emulator.arm64 import QemuUser
from tests.bench_cli import exit_code
from tests.runner_folders import runner_folder

# the folder's qemu-user is an x86-64 binary: these tests emulate ARM on an x86-64 host (as CI is)
pytestmark = [pytest.mark.slow, pytest.mark.skipif(platform.machine() != "x86_64", reason="needs an x86-64 host")]

MODEL, RES = "efficientvit-b0", "64"
TARGETS = ("tflite", "onnx", "executorch")
RUNTIMES = {"tflite": ("ai-edge-litert", "1.4.0"), "onnx": ("onnxruntime", "1.32.0"),
            "executorch": ("executorch", "1.5.1")}
BINARIES = ("benchmark_model", "onnxruntime_perf_test", "executor_runner")


@pytest.fixture(scope="session")
def aarch64_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return runner_folder("EFFVIT_RUNNER_DIR_AARCH64", "aarch64", tmp_path_factory)


@pytest.fixture(scope="session")
def export_dir() -> Path:
    """fp32 b0 @64 for every target, in the export cache the x86 runner tests use too."""
    from effvit_deploy.export import ExportOptions, export

    out = cache_root().parent / "test-exports" / "native-runners"
    for target in TARGETS:
        export(MODEL, ExportOptions(target, RES, "fp32", out))
    return out


def elf_machine(path: Path) -> int:
    head = path.read_bytes()[:20]
    assert head[:4] == b"\x7fELF", path
    return int.from_bytes(head[18:20], "little")


def run_args(device: str, runner_dir: Path, export_dir: Path, out: Path) -> list[Any]:
    return ["run", "-d", device, "-m", MODEL, "-r", RES, *[a for t in TARGETS for a in ("-t", t)], "--runs", "2",
            "--warmup", "1", "--runner", "native", "--runner-dir", runner_dir, "--export-dir", export_dir,
            "--out", out]


def fake_x86_folder(aarch64_dir: Path, dest: Path) -> Path:
    """A runner folder declaring x86_64 whose binaries are a host x86-64 ELF (never to be pushed or run)."""
    dest.mkdir(parents=True)
    manifest = json.loads((aarch64_dir / FILE_NAME).read_text())
    manifest.update(arch="x86_64", abi="x86_64")
    for key in ("sysroot", "emulation"):
        manifest.pop(key)
    (dest / FILE_NAME).write_text(json.dumps(manifest))
    for name in BINARIES:
        shutil.copy2(shutil.which("true") or "/bin/true", dest / name)
    return dest


def check_emulated_records(recs: list[BenchRecord], how: str) -> None:
    assert sorted(r.target for r in recs) == sorted(TARGETS)
    for rec in recs:
        assert rec.ok, (rec.target, rec.error, rec.stderr_tail)
        assert rec.runner.startswith("native-") and rec.stats["mean_ms"] > 0
        package, version = RUNTIMES[rec.target]
        assert rec.versions[package] == version, rec.versions
        assert rec.extra["emulated"] is True and how in rec.extra["emulation"], rec.extra
        assert rec.extra["latency_note"] == NOT_PHONE_LATENCY
        if rec.target == "tflite":  # our C-API benchmark_model's VmHWM line
            assert rec.extra["peak_rss_kb"] > 0 and "VmHWM" in rec.extra["memory_source"], rec.extra
        # the ARM kernels' output against the PyTorch reference stored at export
        parity = rec.device_parity
        assert parity["status"] == "pass" and parity["cosine"] > 0.9999 and parity["top1_equal"], parity
    table = report.render(recs, "md")
    assert re.search(r"\\?\[emulated\\?\]", table) and "NOT phone latency" in table  # markdown escapes [ ]


def test_aarch64_folder_is_self_contained_arm64(aarch64_dir: Path, tmp_path: Path) -> None:
    manifest = json.loads((aarch64_dir / FILE_NAME).read_text())
    assert manifest["arch"] == "aarch64" and manifest["abi"] == "arm64-v8a"
    assert manifest["sysroot"]["loader"] == "/lib/ld-linux-aarch64.so.1"
    assert manifest["sysroot"]["libc"] == "glibc >= 2.38"
    assert Path(manifest["emulation"]["qemu"]).is_file() and Path(manifest["emulation"]["sysroot"]).is_dir()
    for target, (package, version) in RUNTIMES.items():
        entry = manifest["runners"][target]
        assert (entry["runtime_package"], entry["runtime_version"], entry["abi"]) == (package, version, "arm64-v8a")
        assert elf_machine(aarch64_dir / entry["binary"]) == 183  # EM_AARCH64
        for lib in entry["libraries"]:
            assert elf_machine(aarch64_dir / lib) == 183, lib
        assert "libstdc++.so.6" in entry["libraries"]
    assert manifest["runners"]["tflite"]["xnnpack"] is True  # our benchmark_model on LiteRT's C API library
    assert "libLiteRtRuntimeCApi.so" in manifest["runners"]["tflite"]["libraries"]
    again = build_runners("aarch64", tmp_path / "again")
    assert again.cached == dict.fromkeys(TARGETS, True)
    assert sorted(p.name for p in again.folder.iterdir()) == sorted(p.name for p in aarch64_dir.iterdir())


def test_emulated_arm64_phone_runs_the_aarch64_runners(adb_phone_factory: Callable[..., AdbEmulator],
                                                       aarch64_dir: Path, export_dir: Path, tmp_path: Path) -> None:
    phone = adb_phone_factory("sm8450", qemu=QemuUser.from_runner_folder(aarch64_dir))
    parent = tmp_path / "runners"  # one --runner-dir for every ABI: the phone's arm64-v8a subfolder is chosen
    fake_x86_folder(aarch64_dir, parent / "x86_64")
    (parent / "aarch64").symlink_to(aarch64_dir.resolve())
    assert exit_code(*run_args(f"adb:{phone.serial}", parent, export_dir, tmp_path / "phone")) == 0
    recs = list(ResultStore(tmp_path / "phone" / "adhoc.jsonl").records())
    check_emulated_records(recs, "-cpu cortex-a710")
    assert all(r.device["abi"] == "arm64-v8a" and r.device["soc"] == "SM8450" for r in recs)
    bin_dir = phone.host_path(f"{DEVICE_ROOT}/bin")
    for name in BINARIES:  # what was pushed is the aarch64 build, which this x86-64 kernel cannot run by itself
        assert elf_machine(bin_dir / name) == 183
    assert (bin_dir / "libLiteRtRuntimeCApi.so").is_file()
    # the timed runs go through the phone's taskset (big core mask 80: the Cortex-X2), as on a real phone
    for name in BINARIES:
        assert any(f"(taskset 80 env LD_LIBRARY_PATH={DEVICE_ROOT}/bin {DEVICE_ROOT}/bin/{name} " in c
                   for c in phone.commands), name


def test_local_aarch64_folder_runs_under_qemu(aarch64_dir: Path, export_dir: Path, tmp_path: Path) -> None:
    assert exit_code(*run_args("local", aarch64_dir, export_dir, tmp_path / "local")) == 0
    recs = list(ResultStore(tmp_path / "local" / "adhoc.jsonl").records())
    check_emulated_records(recs, "-cpu max, on x86_64")
    assert all("aarch64 under qemu" in (r.device_model or "") for r in recs)  # never the same column as x86 runs


def test_real_arm64_phone_profile_is_not_flagged(adb_phone_factory: Callable[..., AdbEmulator]) -> None:
    phone = adb_phone_factory("sm8450")  # no qemu: as a phone, it says nothing about emulation
    [dev] = open_devices([f"adb:{phone.serial}"])
    assert dev.facts()["emulated"] is None and dev.facts()["abi"] == "arm64-v8a"


def test_x86_64_folder_is_refused_by_the_arm64_phone(adb_phone_factory: Callable[..., AdbEmulator],
                                                     aarch64_dir: Path, export_dir: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    phone = adb_phone_factory("sm8450", qemu=QemuUser.from_runner_folder(aarch64_dir))
    x86 = fake_x86_folder(aarch64_dir, tmp_path / "x86_64")
    capsys.readouterr()
    assert exit_code(*run_args(f"adb:{phone.serial}", x86, export_dir, tmp_path / "out")) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error:")]
    assert len(err) == 1 and "holds runners for x86_64 but" in err[0] and "is arm64-v8a" in err[0], err
    assert "runners build --arch aarch64" in err[0]
    bin_dir = phone.host_path(f"{DEVICE_ROOT}/bin")
    assert not bin_dir.exists() or not list(bin_dir.iterdir())
    assert not any("/bin/" in c and any(b in c for b in BINARIES) for c in phone.commands)


def qemu_benchmark_model(aarch64_dir: Path, cpu: str, *flags: str) -> subprocess.CompletedProcess:
    emu = json.loads((aarch64_dir / FILE_NAME).read_text())["emulation"]
    return subprocess.run([emu["qemu"], "-cpu", cpu, "-L", emu["sysroot"], str(aarch64_dir / "benchmark_model"),
                           *flags], capture_output=True, text=True, timeout=300)


def test_aarch64_benchmark_model_flags_and_xnnpack_options(aarch64_dir: Path, export_dir: Path) -> None:
    """Our C-API benchmark_model: a bad flag or value is one line and exit 2; --xnnpack_force_fp16 reaches the
    delegate (its flags read back: QS8|QU8 defaults + FORCE_FP16 = 0x7, which checks the options offsets); on a CPU
    without FEAT_FP16 (cortex-a57) XNNPACK refuses the fp16 runtime instead of running fp32 silently."""
    graph = f"--graph={export_dir / MODEL / f'{RES}x{RES}' / 'tflite-fp32.tflite'}"
    one = ("--warmup_runs=0", "--num_runs=1", "--min_secs=0", "--warmup_min_secs=0")
    for bad, says in ((("--bogus=1",), "unknown flag --bogus"),
                      (("--xnnpack_force_fp16=maybe",), "--xnnpack_force_fp16=maybe is not true or false"),
                      (("--use_xnnpack=false", "--xnnpack_force_fp16=true"), "needs --use_xnnpack=true")):
        proc = qemu_benchmark_model(aarch64_dir, "max", graph, *one, *bad)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and says in lines[0], (bad, proc.stderr)
    fp16 = qemu_benchmark_model(aarch64_dir, "max", graph, *one, "--xnnpack_force_fp16=true")
    assert fp16.returncode == 0 and "XNNPACK delegate flags: 0x7 (FORCE_FP16)" in fp16.stdout, fp16.stderr
    builtin = qemu_benchmark_model(aarch64_dir, "max", graph, *one, "--use_xnnpack=false")
    assert builtin.returncode == 0 and "XNNPACK" not in builtin.stdout + builtin.stderr
    a57 = qemu_benchmark_model(aarch64_dir, "cortex-a57", graph, *one, "--xnnpack_force_fp16=true")
    assert a57.returncode == 1 and "failed to create XNNPACK runtime" in a57.stderr, a57.stderr


def test_fp16_and_int8_tflite_run_on_the_aarch64_folder(aarch64_dir: Path, tmp_path: Path) -> None:
    """litert-torch and the int8 quantizer write weights after the flatbuffer, which ai-edge-litert 1.4.0's C API
    ignores ("Input tensor N lacks data"); the export moves them inside, so `effvit-bench run` runs these files on
    the ARM kernels with parity (fp16 here through XNNPACK's default fp32 arithmetic on fp16 weights)."""
    out = cache_root().parent / "test-exports" / "native-runners"
    argv = ["run", "-d", "local", "-m", MODEL, "-r", RES, "-t", "tflite", "--precision", "fp16", "--precision", "int8",
            "--runs", "2", "--warmup", "1", "--runner", "native", "--runner-dir", aarch64_dir, "--export-dir", out,
            "--out", tmp_path / "low"]
    assert exit_code(*argv) == 0
    recs = list(ResultStore(tmp_path / "low" / "adhoc.jsonl").records())
    assert sorted(r.precision for r in recs) == ["fp16", "int8"]
    for rec in recs:
        assert rec.ok and rec.extra["emulated"] is True, (rec.precision, rec.error, rec.stderr_tail)
        assert rec.device_parity["status"] == "pass", (rec.precision, rec.device_parity)
