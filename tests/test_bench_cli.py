"""`effvit-bench` in-process: run/devices/report, and every bad input ends in one line on stderr and exit code 2.

Exports are replaced by the session's tiny EfficientViT artifact (monkeypatched `engine.library_exporter`), so these
tests measure real runners on real (emulated) devices without converting full-size models.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from effvit_deploy.bench import engine
from effvit_deploy.bench.store import ResultStore
from effvit_deploy.bench.sweep import Configuration
from effvit_deploy.cli import bench
from tests.adb_emulator import AdbEmulator
from tests.adb_fixtures import AdbServer

Cli = Callable[..., tuple[int, str, str]]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Cli:
    def invoke(*argv: str) -> tuple[int, str, str]:
        try:
            bench.main([str(a) for a in argv])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        out, err = capsys.readouterr()
        return code, out, err

    return invoke


@pytest.fixture
def tiny_exports(monkeypatch: pytest.MonkeyPatch, tiny_artifact: Callable[[str], dict[str, Any]],
                 tmp_path: Path) -> list[Configuration]:
    """Every export request is answered with the tiny artifact (a copy per model, so artifacts differ by model)."""
    calls: list[Configuration] = []

    def exporter(config: Configuration, export_dir: Path) -> dict[str, Any]:
        calls.append(config)
        entry = tiny_artifact(config.target)
        path = tmp_path / "exports" / config.model / Path(entry["path"]).name
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(Path(entry["path"]).read_bytes() + config.model.encode())  # distinct sha per model
        return {**entry, "path": str(path), "sha256": None, "params": 1000, "macs": 2000}

    monkeypatch.setattr(engine, "library_exporter", exporter)
    monkeypatch.setattr(engine, "library_checker", lambda config, export_dir: None)
    return calls


def one_error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.startswith("error: ")]
    assert len(lines) == 1, err
    return lines[0]


QUICK_ARGS = ("--model", "efficientvit-b0", "--model", "efficientvit-b0-softmax", "--resolution", "224",
              "--target", "tflite", "--threads", "1,2", "--runs", "3", "--warmup", "1")


def test_run_local_prints_table_and_resumes(cli: Cli, tiny_exports: list[Configuration], tmp_path: Path) -> None:
    out_dir = tmp_path / "results"
    code, out, err = cli("run", "--device", "local", *QUICK_ARGS, "--out", out_dir, "--export-dir", tmp_path / "e")
    assert code == 0, err
    assert "| efficientvit-b0@224x224" in out or "efficientvit-b0" in out
    assert "4 measured, 0 failed" in err and "sweep adhoc: 4 configurations × 1 device" in err
    results = out_dir / "adhoc.jsonl"
    recs = list(ResultStore(results).records())
    assert len(recs) == 4 and all(r.ok for r in recs) and {r.threads for r in recs} == {1, 2}
    assert len({c.artifact_key for c in tiny_exports}) == 2  # one export per artifact, not per thread count
    code, out, err = cli("run", "--device", "local", *QUICK_ARGS, "--out", out_dir, "--export-dir", tmp_path / "e")
    assert code == 0 and "0 measured, 0 failed, 4 already in" in err
    assert len(list(ResultStore(results).records())) == 4
    code, _, err = cli("run", "--device", "local", *QUICK_ARGS[:8], "--threads", "1", "--runs", "3", "--warmup",
                       "1", "--out", out_dir, "--export-dir", tmp_path / "e", "--rerun")
    assert code == 0 and "2 measured" in err


def test_run_with_a_sweep_file(cli: Cli, tiny_exports: list[Configuration], tmp_path: Path) -> None:
    sweep = tmp_path / "mini.toml"
    sweep.write_text('[sweep]\nname = "mini"\nruns = 2\nwarmup = 0\n\n[[group]]\nmodels = ["efficientnet-b0"]\n'
                     'resolutions = [224]\ntargets = ["tflite"]\n')
    code, out, err = cli("run", "-d", "local", "--sweep", sweep, "--out", tmp_path, "--runs", "4")
    assert code == 0, err
    [rec] = ResultStore(tmp_path / "mini.jsonl").records()
    assert (rec.runs, rec.warmup, rec.model) == (4, 0, "efficientnet-b0")  # --runs overrides the file


def test_failed_measurement_exits_1_and_is_recorded(cli: Cli, monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(b"not a model")
    monkeypatch.setattr(engine, "library_exporter", lambda c, d: {"path": str(broken), "artifact": broken.name})
    monkeypatch.setattr(engine, "library_checker", lambda c, d: None)
    code, _, err = cli("run", "-d", "local", "-m", "efficientvit-b0", "-t", "tflite", "--runs", "2", "--out",
                       tmp_path)
    assert code == 1 and "0 measured, 1 failed" in err and "python runner exited with 1" in err
    [rec] = ResultStore(tmp_path / "adhoc.jsonl").records()
    assert rec.error and rec.stderr_tail


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("run", "--device", "phone1", "-m", "efficientvit-b0", "-t", "tflite"), "unknown device 'phone1'"),
        (("run", "--device", "local", "-m", "efficientvit-b9", "-t", "tflite"), "unknown model 'efficientvit-b9'"),
        (("run", "--device", "local", "-m", "efficientvit-b0", "-t", "tensorrt"), "unknown target 'tensorrt'"),
        (("run", "--device", "local", "-m", "efficientvit-b0", "-t", "tflite", "--threads", "1,x"), "--threads"),
        (("run", "--device", "local", "-m", "efficientvit-b0", "-t", "tflite", "--cores", "zz"), "cores"),
        (("run", "--device", "local", "-m", "efficientvit-b0", "-t", "tflite", "--runner", "fast"), "--runner"),
        (("run", "--device", "local", "-t", "tflite"), "nothing to measure"),
        (("run", "--device", "local", "--sweep", "bench/sweeps/quick.toml", "-m", "efficientvit-b0"),
         "either --sweep"),
        (("run", "--device", "local", "--sweep", "no/such.toml"), "sweep file no/such.toml does not exist"),
        (("run", "--device", "local", "--device", "local", "-m", "efficientvit-b0", "-t", "tflite"), "given twice"),
        (("report", "no/such.jsonl"), "does not exist"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(cli: Cli, args: tuple[str, ...], fragment: str) -> None:
    code, _, err = cli(*args)
    assert code == 2, err
    assert fragment in one_error_line(err)


def test_invalid_and_empty_sweep_files(cli: Cli, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[sweep]\nruns = 5\n\n[[group]]\nmodels = ["efficientvit-b0"]\nresolutions = [224]\n'
                   'targets = ["tflite"]\nthreads = ["four"]\n')
    code, _, err = cli("run", "-d", "local", "--sweep", bad)
    assert code == 2 and f"{bad}:8: [[group]] 1: 'threads'" in one_error_line(err)
    empty = tmp_path / "empty.toml"
    empty.write_text('[sweep]\nname = "empty"\n')
    code, _, err = cli("run", "-d", "local", "--sweep", empty)
    assert code == 2 and "nothing to measure" in one_error_line(err)


def test_runner_dir_without_the_binary(cli: Cli, tiny_exports: list[Configuration], tmp_path: Path) -> None:
    (tmp_path / "runners").mkdir()
    code, _, err = cli("run", "-d", "local", "-m", "efficientvit-b0", "-t", "onnx", "--runner", "native",
                       "--runner-dir", tmp_path / "runners", "--out", tmp_path)
    line = one_error_line(err)
    assert code == 2 and f"expected {tmp_path / 'runners' / 'onnxruntime_perf_test'}" in line
    code, _, err = cli("run", "-d", "local", "-m", "efficientvit-b0", "-t", "onnx", "--runner-dir",
                       tmp_path / "nope")
    assert code == 2 and "is not a folder" in one_error_line(err)
    assert not tiny_exports  # nothing exported before the runner check failed


def test_adb_missing(cli: Cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    code, _, err = cli("run", "-d", "adb:R58M123", "-m", "efficientvit-b0", "-t", "tflite")
    assert code == 2 and "adb client not found" in one_error_line(err)
    code, _, err = cli("devices")
    assert code == 2 and "adb client not found" in one_error_line(err)


@pytest.mark.slow
@pytest.mark.parametrize(("mode", "fragment"), [("unauthorized", "accept the USB debugging prompt"),
                                                ("offline", "is offline")])
def test_unauthorized_or_offline_device(cli: Cli, adb_phone_factory: Callable[..., AdbEmulator], mode: str,
                                        fragment: str, tmp_path: Path) -> None:
    phone = adb_phone_factory("sm8150", python3=True)
    phone.auth_mode = mode
    code, _, err = cli("run", "-d", f"adb:{phone.serial}", "-m", "efficientvit-b0", "-t", "tflite", "--out",
                       tmp_path)
    assert code == 2 and fragment in one_error_line(err)
    assert not (tmp_path / "adhoc.jsonl").exists()


@pytest.mark.slow
def test_adb_run_storage_full_then_disconnect_then_resume(cli: Cli, adb_phone_factory: Callable[..., AdbEmulator],
                                                          tiny_exports: list[Configuration], tmp_path: Path) -> None:
    phone = adb_phone_factory("sm8150", python3=True)
    device = f"adb:{phone.serial}"
    common = ("-d", device, "-t", "tflite", "--runs", "3", "--warmup", "1", "--out", tmp_path)
    code, _, err = cli("run", *common, "-m", "efficientvit-b0")
    assert code == 0, err
    # a second model needs a new artifact on the phone, whose storage is now full
    phone.storage_full = True
    code, _, err = cli("run", *common, "-m", "efficientvit-b0", "-m", "efficientnet-b0")
    line = one_error_line(err)
    assert code == 2 and "No space left on device" in line and device in line
    results = tmp_path / "adhoc.jsonl"
    recs = list(ResultStore(results).records())
    assert [r.ok for r in recs] == [True, False]  # results so far kept; the failed push is recorded
    # space again, but the cable is pulled mid-run and the phone does not come back
    phone.storage_full = False
    phone.accepting = False
    phone.drop_after(3)
    code, _, err = cli("run", *common, "-m", "efficientvit-b0", "-m", "efficientnet-b0", "-m", "mobilenetv2")
    assert code == 2 and "disconnected" in one_error_line(err)
    phone.accepting = True
    code, _, err = cli("run", *common, "-m", "efficientvit-b0", "-m", "efficientnet-b0", "-m", "mobilenetv2")
    assert code == 0, err
    ok = [r for r in ResultStore(results).records() if r.ok]
    assert sorted(r.model for r in ok) == ["efficientnet-b0", "efficientvit-b0", "mobilenetv2"]


@pytest.mark.slow
def test_devices_lists_emulated_phones(cli: Cli, adb_server: AdbServer,
                                       adb_phone_factory: Callable[..., AdbEmulator], tmp_path: Path) -> None:
    pixel = adb_phone_factory("sm8150", python3=True)
    galaxy = adb_phone_factory("sm8450")
    offline = adb_phone_factory("sm8150")
    offline.auth_mode = "offline"
    for phone in (pixel, galaxy, offline):
        adb_server.run("connect", phone.serial)
    (tmp_path / "benchmark_model").write_text("#!/bin/sh\n")
    code, out, err = cli("devices", "--runner-dir", tmp_path)
    assert code == 0, err
    flat = " ".join(out.split())
    for fragment in ("Pixel 4", "SM8150", "13 (SDK 33)", "arm64-v8a", "4×1.79 GHz + 3×2.42 GHz + 1×2.84 GHz",
                     "schedutil", "tflite, onnx, executorch", "SM-S901U", "SM8450", "walt", "no python3",
                     "benchmark_model (runner dir)", "offline"):
        assert fragment in flat, fragment
    code, out, _ = cli("devices", "--device", "local")
    assert code == 0 and "local" in out


def test_report_formats(cli: Cli, tmp_path: Path) -> None:
    from effvit_deploy.bench.records import BenchRecord

    store = ResultStore(tmp_path / "r.jsonl")
    for model, median in (("efficientvit-b0", 3.0), ("efficientvit-b0-softmax", 4.5)):
        store.append(BenchRecord(device_serial="s1", device={"model": "Pixel 4"}, model=model, resolution="224x224",
                                 target="tflite", precision="fp32", artifact_sha256=model * 2, runner="python-litert",
                                 threads=1, runs=3, warmup=1,
                                 stats={"median_ms": median, "mean_ms": median, "p90_ms": median, "min_ms": median,
                                        "max_ms": median, "std_ms": 0.0, "n": 3, "basis": "samples"}))
    code, out, _ = cli("report", tmp_path / "r.jsonl")
    assert code == 0 and "Pixel 4" in out and "1.50" in out  # softmax twin / EfficientViT
    code, out, _ = cli("report", tmp_path / "r.jsonl", "--format", "csv")
    assert code == 0 and out.splitlines()[0].count(",") >= 3
    code, out, _ = cli("report", tmp_path, "--format", "html", "--out", tmp_path / "r.html")
    assert code == 0 and (tmp_path / "r.html").read_text().lstrip().lower().startswith("<!doctype html")
    code, _, err = cli("report", tmp_path / "r.jsonl", "--format", "pdf")
    assert code == 2 and "pdf" in one_error_line(err)
    (tmp_path / "bad.jsonl").write_text(json.dumps({"hello": 1}) + "\n")
    code, _, err = cli("report", tmp_path / "bad.jsonl")
    assert code == 2 and "bad.jsonl:1" in one_error_line(err)


def test_demo_runs_a_sweep_through_the_library(tiny_exports: list[Configuration], tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from effvit_deploy import demo

    sweep = tmp_path / "demo.toml"
    sweep.write_text('[sweep]\nname = "demo"\nruns = 2\nwarmup = 1\n\n[[group]]\nmodels = ["efficientvit-b0"]\n'
                     'resolutions = [224]\ntargets = ["tflite"]\nthreads = [1]\n')
    args = ["--sweep", str(sweep), "--out", str(tmp_path), "--export-dir", str(tmp_path / "e"), "--skip-zoo"]
    assert demo.main(args) == 0
    out, err = capsys.readouterr()
    assert "efficientvit-b0" in out and "[1/1] efficientvit-b0 224x224 tflite fp32 t1:" in err
    assert demo.main(args) == 0 and "already measured" in capsys.readouterr().err
    assert demo.main([*args, "--device", "phone"]) == 2
