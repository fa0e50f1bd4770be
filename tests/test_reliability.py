"""Faults and limits (issue 15): the memory guard, one harness per device, results not measured twice, active
reconnects, and nothing left behind by a killed run. The random-fault sweep is in test_chaos.py."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from effvit_deploy import memory_guard
from effvit_deploy.bench import engine
from effvit_deploy.bench.adb import AdbDevice
from effvit_deploy.bench.device_lock import DeviceLock
from effvit_deploy.bench.devices import DEVICE_ROOT, open_devices
from effvit_deploy.bench.store import ResultStore
from effvit_deploy.bench.sweep import Configuration, SweepSpec, interleave
from effvit_deploy.cli import converter_log
from effvit_deploy.cli import export as export_cli
from effvit_deploy.errors import DeviceError, InvalidInputError
from effvit_deploy.export import ExportOptions, api
from effvit_deploy.fileio import atomic_write_text, owned_temp_dir, remove_stale_temps
from tests.adb_emulator import AdbEmulator
from tests.test_bench_adb_e2e import BENCHMARK_MODEL
from tests.test_engine import FakeDevice

GiB = 1 << 30


# --- memory guard -----------------------------------------------------------------------------------------------


def test_memory_estimate_grows_with_resolution_and_is_instant() -> None:
    started = time.monotonic()
    small = memory_guard.export_estimate("efficientvit-b1", (224, 224), "tflite")
    huge = memory_guard.export_estimate("efficientvit-b1", (9984, 9984), "tflite")
    assert small is not None and huge is not None and huge > 40 * GiB > 40 * small
    assert 700 << 20 < small < 2 * GiB  # measured 1077 MiB at 768x768; the base alone is ~800 MiB
    assert time.monotonic() - started < 30  # meta tensors: nothing of the 9984x9984 activations is allocated
    assert memory_guard.export_estimate("not-a-model", (224, 224), "onnx") is None


def test_export_too_big_for_this_machine_is_refused_before_any_work(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(InvalidInputError, match=r"needs ~\d+\.\d GiB of memory \(estimate\) but this machine has"):
        api.check_request("efficientvit-b3", ExportOptions("onnx", 9984, out_dir=out))
    assert not out.exists()  # refused before the output folder was even created


def test_max_memory_overrides_the_limit(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"\(--max-memory\)"):
        api.check_request("efficientvit-b0", ExportOptions("onnx", 224, out_dir=tmp_path, max_memory=100 << 20))
    api.check_request("efficientvit-b0", ExportOptions("onnx", 224, out_dir=tmp_path, max_memory=64 * GiB))


@pytest.mark.parametrize(("text", "value"), [("8G", 8 * GiB), ("512M", 512 << 20), ("1.5GiB", 3 * GiB // 2),
                                             ("4096", 4096), ("2 gb", 2 * GiB)])
def test_parse_size(text: str, value: int) -> None:
    assert memory_guard.parse_size(text) == value


@pytest.mark.parametrize("text", ["", "lots", "-1G", "0", "8Q", "８G"])
def test_parse_size_refuses_nonsense(text: str) -> None:
    with pytest.raises(InvalidInputError, match="--max-memory"):
        memory_guard.parse_size(text)


def test_export_cli_memory_refusal_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        export_cli.main(["--target", "onnx", "--model", "efficientvit-b0", "--resolution", "9984", "--out",
                         str(tmp_path / "o"), "--max-memory", "4G"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.count("\n") == 1 and "GiB of memory (estimate)" in err
    assert "but this machine has 4.0 GiB (--max-memory)" in err
    assert not (tmp_path / "o").exists()


def _native_runner_dir(tmp_path: Path) -> Path:
    runners = tmp_path / "runners"
    runners.mkdir(exist_ok=True)
    (runners / "benchmark_model").write_text(BENCHMARK_MODEL)
    (runners / "benchmark_model").chmod(0o755)
    return runners


def _fake_artifact(tmp_path: Path) -> Callable[[Configuration, Path], dict[str, Any]]:
    def exporter(config: Configuration, _d: Path) -> dict[str, Any]:
        path = tmp_path / f"{config.model}-{config.resolution_text}.tflite"
        path.write_bytes(b"fake tflite " + config.model.encode())
        return {"path": str(path), "artifact": path.name}

    return exporter


def _sweep(phone: AdbEmulator, tmp_path: Path, configs: list[Configuration], **opts: Any) -> engine.SweepSummary:
    spec = SweepSpec(name="r", configurations=tuple(interleave(configs)), runs=3, warmup=1)
    options = engine.RunOptions.from_sweep(spec, runner="native", runner_dir=_native_runner_dir(tmp_path), **opts)
    devices = open_devices([f"adb:{phone.serial}"])
    plans = engine.plan_sweep(devices, spec, options)
    arts, _ = engine.export_artifacts(spec.configurations, tmp_path, exporter=_fake_artifact(tmp_path))
    return engine.run_sweep(plans, arts, ResultStore(tmp_path / "r.jsonl"), options)


@pytest.mark.slow
def test_phone_without_enough_memory_gets_an_error_record_before_the_push(
        adb_phone_factory: Callable[..., AdbEmulator], tmp_path: Path) -> None:
    phone = adb_phone_factory("sm8150")
    phone.set_mem_available(40 << 10)  # 40 MiB: less than any runtime needs
    summary = _sweep(phone, tmp_path, [Configuration("efficientvit-b0", (224, 224), "tflite")])
    [rec] = summary.records
    assert summary.failed == 1 and not summary.device_errors  # the device is fine; the next configuration may fit
    assert "(MemAvailable)" in (rec.error or "") and "needs ~" in (rec.error or "")
    assert not phone.host_path(f"{DEVICE_ROOT}/models").exists() or not list(
        phone.host_path(f"{DEVICE_ROOT}/models").iterdir())  # nothing was pushed
    phone.set_mem_available(3 << 20)
    assert _sweep(phone, tmp_path, [Configuration("efficientvit-b0", (224, 224), "tflite")]).measured == 1


# --- one harness per device -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_one_harness_per_device_and_one_device_under_two_addresses(
        adb_phone_factory: Callable[..., AdbEmulator], tmp_path: Path) -> None:
    phone = adb_phone_factory("sm8150")
    [first] = open_devices([f"adb:{phone.serial}"], lock=True)
    with pytest.raises(DeviceError, match=rf"in use by another effvit-bench \(pid {os.getpid()}"):
        open_devices([f"adb:{phone.serial}"], lock=True)
    # the same phone through another address is the same phone
    with pytest.raises(DeviceError, match="in use"):
        open_devices([f"adb:localhost:{phone.port}"], lock=True)
    first.unlock()
    with pytest.raises(InvalidInputError, match="are the same device"):
        open_devices([f"adb:127.0.0.1:{phone.port}", f"adb:localhost:{phone.port}"])
    other = adb_phone_factory("sm8150")  # same model, another phone: both may run
    both = open_devices([f"adb:{phone.serial}", f"adb:{other.serial}"], lock=True)
    for dev in both:
        dev.unlock()


_HOLD = """
import sys, time
from effvit_deploy.bench.device_lock import DeviceLock
lock = DeviceLock(sys.argv[1], "adb:held")  # kept referenced: a collected lock is a released lock
lock.acquire()
print("held", flush=True)
time.sleep(120)
"""


def test_a_killed_harness_does_not_hold_the_device(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EFFVIT_LOCK_DIR", str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-c", _HOLD, "SERIAL1/boot-a"], stdout=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[1], env=dict(os.environ))
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        with pytest.raises(DeviceError, match=rf"pid {proc.pid}, adb:held"):
            DeviceLock("SERIAL1/boot-a", "adb:again").acquire()
        DeviceLock("SERIAL1/boot-b", "adb:rebooted").acquire()  # same serial, another boot: another lock
        proc.kill()  # kill -9: no cleanup code runs in the holder
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    lock = DeviceLock("SERIAL1/boot-a", "adb:again")
    lock.acquire()
    lock.release()


def test_second_bench_run_on_a_held_device_exits_2_before_exporting(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str],
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from effvit_deploy.cli import bench

    [held] = open_devices(["local"], lock=True)
    exported: list[object] = []
    monkeypatch.setattr(bench.engine, "export_artifacts", lambda *a, **k: exported.append(a))
    try:
        with pytest.raises(SystemExit) as info:
            bench.main(["run", "-d", "local", "-m", "efficientvit-b0", "-t", "onnx", "--out", str(tmp_path)])
    finally:
        held.unlock()
    err = capsys.readouterr().err
    assert info.value.code == 2 and "local is in use by another effvit-bench" in err and exported == []


def test_configuration_measured_meanwhile_by_another_run_is_not_measured_again(tmp_path: Path) -> None:
    art = tmp_path / "a.tflite"
    art.write_bytes(b"a" * 10)
    configs = [Configuration("efficientvit-b0", (224, 224), "tflite", threads=t) for t in (1, 2)]
    spec = SweepSpec(name="x", configurations=tuple(configs), runs=3, warmup=1)
    options = engine.RunOptions.from_sweep(spec)
    arts, _ = engine.export_artifacts(configs, tmp_path, exporter=lambda c, d: {"path": str(art), "artifact": "a"})
    elsewhere = ResultStore(tmp_path / "elsewhere.jsonl")
    engine.run_sweep(engine.plan_sweep([FakeDevice()], spec, options), arts, elsewhere, options)
    second = next(r for r in elsewhere.records() if r.threads == 2)

    store = ResultStore(tmp_path / "shared.jsonl")

    def other_run_finishes_t2(event: engine.ProgressEvent) -> None:
        if event.kind == "start" and event.index == 0:
            store.append(second)  # another process appends while this one measures t1

    dev = FakeDevice()
    summary = engine.run_sweep(engine.plan_sweep([dev], spec, options), arts, store, options,
                               progress=other_run_finishes_t2)
    assert (summary.measured, summary.skipped) == (1, 1)
    assert sorted(r.threads for r in store.records()) == [1, 2]


# --- reconnect ----------------------------------------------------------------------------------------------------

_FAKE_ADB = """#!/bin/sh
echo "$@" >> "$(dirname "$0")/calls"
case "$*" in
  devices) printf 'List of devices attached\\nR58M123\\tdevice\\n' ;;
esac
"""


def test_usb_reconnect_is_reconnect_then_wait_for_device(tmp_path: Path) -> None:
    adb = tmp_path / "adb"
    adb.write_text(_FAKE_ADB)
    adb.chmod(0o755)
    dev = AdbDevice("R58M123", adb=str(adb))
    dev.reconnect(timeout=5)
    calls = (tmp_path / "calls").read_text().splitlines()
    assert calls[:3] == ["-s R58M123 reconnect", "-s R58M123 wait-for-device", "devices"]


def test_tcp_reconnect_gives_up_within_its_bound(tmp_path: Path) -> None:
    adb = tmp_path / "adb"
    adb.write_text(_FAKE_ADB)
    adb.chmod(0o755)
    dev = AdbDevice("10.0.0.9:5555", adb=str(adb))  # never listed: never comes back
    started = time.monotonic()
    with pytest.raises(DeviceError, match="did not come back within 2s"):
        dev.reconnect(timeout=2)
    assert time.monotonic() - started < 6
    calls = (tmp_path / "calls").read_text().splitlines()
    assert calls[:2] == ["disconnect 10.0.0.9:5555", "connect 10.0.0.9:5555"]


# --- leftovers ----------------------------------------------------------------------------------------------------


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_a_dead_runs_temp_files_are_removed_by_the_next_write(tmp_path: Path) -> None:
    dead, me = _dead_pid(), os.getpid()
    stale = tmp_path / f".tflite-fp32.{dead}-k2j3.tmp.tflite"
    live = tmp_path / f".tflite-fp32.{me}-aaaa.tmp.tflite"
    user = tmp_path / f".notes.{dead}-x"  # not one of ours: no .tmp
    old = tmp_path / ".tflite-fp32.abcd1234.tmp.tflite"  # an older version's name: owner unknown, left alone
    for p in (stale, live, user, old):
        p.write_bytes(b"x" * 1000)
    atomic_write_text(tmp_path / "manifest.json", "{}")
    assert not stale.exists() and live.exists() and user.exists() and old.exists()
    assert (tmp_path / "manifest.json").read_text() == "{}"


def test_pull_folders_of_dead_runs_are_removed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    stale = tmp_path / f"effvit-pull-{_dead_pid()}-abc123"
    stale.mkdir()
    (stale / "result.json").write_text("{}")
    with owned_temp_dir("pull") as mine:
        assert Path(mine).name.startswith(f"effvit-pull-{os.getpid()}-")
        assert not stale.exists()
    assert remove_stale_temps(tmp_path) == 0


def test_converter_log_lives_in_the_output_folder(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    with converter_log.capture(True, out) as (_console, log):
        assert log is not None and log.parent == out and log.name.startswith(f".effvit-export.{os.getpid()}-")
        os.write(sys.stderr.fileno(), b"C++ converter noise\n")  # the fd C++ code writes to (pytest moves it)
        kept = log
    kept_final = converter_log.keep(kept, out / "m" / "224x224" / "export.log")
    assert kept_final.read_text() == "C++ converter noise\n" and not kept.exists()
    import tempfile

    assert not list(Path(tempfile.gettempdir()).glob(f"effvit-export.*{os.getpid()}*"))


def test_bench_memory_refusal_comes_before_any_device_work(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from effvit_deploy.cli import bench

    opened: list[object] = []
    monkeypatch.setattr(bench, "open_devices", lambda specs, **kw: opened.append(specs) or [])
    with pytest.raises(SystemExit) as info:
        bench.main(["run", "-d", "adb:R58M123", "-m", "efficientvit-b3", "-r", "9984", "-t", "onnx",
                    "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "needs ~" in err and err.count("\n") == 1 and opened == []


@pytest.mark.slow
def test_device_strings_are_not_rich_markup(adb_phone_factory: Callable[..., AdbEmulator], tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from effvit_deploy.cli import bench

    phone = adb_phone_factory("sm8150")
    phone.setprop("ro.product.model", "[/] [bold red]Pwn[/]")  # a stray closing tag crashed rich before
    monkeypatch.setattr(engine, "library_exporter", _fake_artifact(tmp_path))
    monkeypatch.setattr(engine, "library_checker", lambda c, d: None)
    for argv in (["devices", "-d", f"adb:{phone.serial}"],
                 ["run", "-d", f"adb:{phone.serial}", "-m", "efficientvit-b0", "-t", "tflite", "--runner", "native",
                  "--runner-dir", str(_native_runner_dir(tmp_path)), "--runs", "3", "--warmup", "1", "--out",
                  str(tmp_path / "r")]):
        try:
            bench.main(argv)
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        assert code == 0 and "Traceback" not in err, err
        assert "[/] [bold red]Pwn[/]" in (out if argv[0] == "devices" else err)
