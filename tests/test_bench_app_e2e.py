"""`--runner app` end to end: the real adb client, an emulated phone whose `am start` runs the app's own Java core
(tests/adb_emulator/android_app.py), and the APK that `make android-app` builds."""

from __future__ import annotations

import shutil
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from effvit_deploy.bench import engine
from effvit_deploy.bench.app_runner import RESULT_DIR, AppPackage
from effvit_deploy.bench.devices import LocalDevice, open_devices
from effvit_deploy.bench.store import ResultStore
from effvit_deploy.bench.sweep import Configuration, SweepSpec, interleave
from effvit_deploy.errors import DeviceError, MissingFileError
from effvit_deploy.fileio import sha256_file
from tests.adb_emulator import AdbEmulator
from tests.adb_emulator.android_app import EmulatedApp
from tests.android_build import build_apk, compile_host_classes

pytestmark = pytest.mark.slow

MAGIC = {"tflite": b"\x1c\x00\x00\x00TFL3" + bytes(200), "onnx": b"\x08\x08\x12\x07pytorch" + bytes(200),
         "executorch": b"\x00\x00\x00\x00ET12" + bytes(200)}
SUFFIX = {"tflite": "tflite", "onnx": "onnx", "executorch": "pte"}


@pytest.fixture(scope="module")
def classes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return compile_host_classes(tmp_path_factory.mktemp("standin"))


@pytest.fixture(scope="module")
def apk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the offline APK (tests change copies, never the build output)."""
    built = build_apk()
    copy = tmp_path_factory.mktemp("apk") / "effvit-bench.apk"
    shutil.copyfile(built, copy)
    return copy


@pytest.fixture
def phone(adb_phone_factory: Callable[..., AdbEmulator], classes: Path) -> Iterator[tuple[AdbEmulator, EmulatedApp]]:
    emu = adb_phone_factory("sm8150")
    app = EmulatedApp(emu, classes).install()
    yield emu, app
    app.stop()


def artifact(tmp_path: Path, target: str) -> dict[str, Any]:
    path = tmp_path / f"tiny.{SUFFIX[target]}"
    path.write_bytes(MAGIC[target])
    return {"artifact": path.name, "path": str(path), "sha256": sha256_file(path), "params": 1, "macs": 1}


def run(emu: AdbEmulator, cfgs: list[Configuration], tmp_path: Path, apk: Path, *, runner: str = "app",
        on_event: Callable[[engine.ProgressEvent], None] | None = None, timeout_s: float = 120.0,
        store: ResultStore | None = None, **rule: Any) -> tuple[engine.SweepSummary, ResultStore]:
    spec = SweepSpec(name="app", configurations=tuple(interleave(cfgs)), runs=3, warmup=2, **rule)
    options = engine.RunOptions.from_sweep(spec, runner=runner, apk=apk, timeout_s=timeout_s, rerun=True)
    devices = open_devices([f"adb:{emu.serial}"])
    plans = engine.plan_sweep(devices, spec, options)
    entries = {t: artifact(tmp_path, t) for t in {c.target for c in cfgs}}
    arts, _ = engine.export_artifacts(spec.configurations, tmp_path, exporter=lambda c, d: entries[c.target])
    store = store or ResultStore(tmp_path / "r.jsonl")
    return engine.run_sweep(plans, arts, store, options, progress=on_event), store


def configs(target: str = "tflite", threads: tuple[int, ...] = (1, 4)) -> list[Configuration]:
    return [Configuration("tiny-efficientvit-224x224", (224, 224), target, threads=t) for t in threads]


def test_sweep_with_runner_app(phone: tuple[AdbEmulator, EmulatedApp], apk: Path, tmp_path: Path) -> None:
    emu, app = phone
    app.put_setting("stay_on_while_plugged_in", "0")
    summary, store = run(emu, configs() + configs("onnx", (2,)), tmp_path, apk)
    assert (summary.measured, summary.failed, summary.device_errors) == (3, 0, {}), \
        [r.error for r in store.records()]
    assert app.installs() == 1 and app.installed() is not None
    assert sha256_file(app.installed()) == sha256_file(apk)
    for rec in store.records():
        assert rec.runner == {"tflite": "app-litert", "onnx": "app-onnxruntime"}[rec.target]
        assert rec.stats["n"] == 3 and len(rec.samples_ms) == 3 and rec.init_ms >= 0 and rec.first_ms > 0
        assert rec.mask is None and rec.extra["mask_basis"].startswith("not pinned")
        assert rec.extra["emulated"] is True and rec.extra["app_device"]["model"] == "Pixel 4"
        assert rec.extra["output"]["count"] == 1000 and len(rec.extra["output"]["first"]) == 16
        assert rec.extra["input"] == {"shape": [1, 3, 224, 224], "source": "seed:1234"}
        assert len(rec.extra["warmup_ms"]) == 2 and rec.versions["effvit-bench-app"] == "0.1.0"
        assert rec.versions[rec.target] == "emulated" and rec.versions["effvit-bench-apk"].startswith("sha256:")
        assert rec.device["model"] == "Pixel 4"  # the harness's own device facts, as for every runner
    starts = [c for c in emu.commands if "am start -W -n org.effvit.bench/.BenchActivity" in c]
    assert len(starts) == 3 and "--ei threads 4" in starts[1] and "--es runtime onnx" in "".join(starts)
    assert app.input_events().count("KEYCODE_WAKEUP") == 3
    assert app.settings()["stay_on_while_plugged_in"] == "0"  # restored after each run
    assert any("settings put global stay_on_while_plugged_in 7" in c for c in emu.commands)
    assert not list(emu.host_path(RESULT_DIR).iterdir())  # pulled and removed
    # the same APK again: no second install
    run(emu, configs(threads=(1,)), tmp_path, apk)
    assert app.installs() == 1


def test_crash_timeout_permission_and_unavailable_are_error_records(phone: tuple[AdbEmulator, EmulatedApp],
                                                                    apk: Path, tmp_path: Path) -> None:
    emu, app = phone
    app.backends = ["tflite"]
    faults = {1: "crash", 2: "hang", 3: "permission", 4: "none"}

    def on_event(event: engine.ProgressEvent) -> None:
        if event.kind == "start":
            app.fault = faults[int(event.label.rsplit(" t", 1)[1])] if " onnx " not in f" {event.label} " else "none"

    summary, store = run(emu, configs(threads=(1, 2, 3, 4)) + configs("onnx", (1,)), tmp_path, apk,
                         on_event=on_event, timeout_s=6.0)
    assert summary.device_errors == {} and (summary.measured, summary.failed) == (1, 4)
    by = {(r.target, r.threads): r for r in store.records()}
    crash = by["tflite", 1]
    assert "ended without writing its result" in crash.error and "FATAL EXCEPTION" in crash.stderr_tail
    assert "within 6s" in by["tflite", 2].error and "emulated hang" in by["tflite", 2].stderr_tail
    assert "missing permission" in by["tflite", 3].error and "Permission Denial" in by["tflite", 3].error
    assert by["tflite", 4].ok
    unavailable = by["onnx", 1]
    assert unavailable.error.startswith("runtime unavailable in this APK: runtime onnx is unavailable")
    assert unavailable.runner == "app-onnxruntime" and unavailable.stats is None
    assert any(c.startswith("am force-stop") or "am force-stop org.effvit.bench" in c for c in emu.commands)


def test_reinstall_after_the_apk_changes_and_after_an_uninstall(phone: tuple[AdbEmulator, EmulatedApp], apk: Path,
                                                                 tmp_path: Path) -> None:
    emu, app = phone
    run(emu, configs(threads=(1,)), tmp_path, apk)
    assert app.installs() == 1
    changed = tmp_path / "v2" / "effvit-bench.apk"
    changed.parent.mkdir()
    shutil.copyfile(apk, changed)
    with zipfile.ZipFile(changed, "a") as z:
        z.writestr("assets/version.txt", "2")
    summary, _ = run(emu, configs(threads=(1,)), tmp_path, changed)
    assert summary.measured == 1 and app.installs() == 2
    assert sha256_file(app.installed()) == sha256_file(changed)

    def uninstall_after_first(event: engine.ProgressEvent) -> None:
        if event.kind == "done" and event.index == 1:
            app.uninstall()  # someone removes the app mid-sweep

    summary, store = run(emu, configs(threads=(1, 2, 3)), tmp_path, changed, on_event=uninstall_after_first,
                         store=ResultStore(tmp_path / "u.jsonl"))
    oks = [r.ok for r in sorted(store.records(), key=lambda r: r.started_at or "")]
    assert oks == [True, False, True] and app.installs() == 3
    lost = next(r for r in store.records() if not r.ok)
    assert "is not installed" in lost.error and "does not exist" in lost.error


def test_runner_auto_prefers_python_then_native_then_app(adb_phone_factory: Callable[..., AdbEmulator],
                                                         classes: Path, apk: Path, tmp_path: Path) -> None:
    emu = adb_phone_factory("sm8150")
    EmulatedApp(emu, classes).install()
    [dev] = open_devices([f"adb:{emu.serial}"])
    spec = SweepSpec(name="a", configurations=tuple(configs()), runs=1, warmup=0)
    # an APK whose build info says it has LiteRT only
    full = tmp_path / "full" / "effvit-bench.apk"
    full.parent.mkdir()
    shutil.copyfile(apk, full)
    (full.parent / "apk-info.json").write_text(f'{{"sha256": "{sha256_file(full)}", "backends": ["tflite"]}}')
    plan = engine.plan_device(dev, spec, engine.RunOptions(runs=1, warmup=0, apk=full))
    assert plan.runners["tflite"].kind == "app-litert" and "auto" in plan.runners["tflite"].note
    bins = tmp_path / "bin"
    bins.mkdir()
    (bins / "benchmark_model").write_text("#!/bin/sh\n")
    plan = engine.plan_device(dev, spec, engine.RunOptions(runs=1, warmup=0, apk=full, runner_dir=bins))
    assert plan.runners["tflite"].kind == "native-benchmark_model"
    emu.python3 = True
    [dev] = open_devices([f"adb:{emu.serial}"])
    plan = engine.plan_device(dev, spec, engine.RunOptions(runs=1, warmup=0, apk=full, runner_dir=bins))
    assert plan.runners["tflite"].kind == "python-litert"
    emu.python3 = False
    [dev] = open_devices([f"adb:{emu.serial}"])
    onnx = SweepSpec(name="o", configurations=tuple(configs("onnx")), runs=1, warmup=0)
    with pytest.raises(DeviceError, match="was built without onnx"):
        engine.plan_device(dev, onnx, engine.RunOptions(runs=1, warmup=0, apk=full))
    # the offline build (no runtime AARs) is never chosen by auto, but --runner app still runs it
    assert AppPackage.load(build_apk()).backends == ()
    with pytest.raises(MissingFileError, match="make android-app"):
        engine.plan_device(dev, spec, engine.RunOptions(runs=1, warmup=0, runner="app", apk=tmp_path / "no.apk"))
    with pytest.raises(DeviceError, match="needs an adb device"):
        engine.plan_device(LocalDevice(), spec, engine.RunOptions(runs=1, warmup=0, runner="app", apk=full))


def test_cli_run_with_runner_app(phone: tuple[AdbEmulator, EmulatedApp], apk: Path, tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from effvit_deploy.cli import bench

    emu, app = phone
    entry = artifact(tmp_path, "tflite")
    monkeypatch.setattr(engine, "library_exporter", lambda config, export_dir: entry)
    monkeypatch.setattr(engine, "library_checker", lambda config, export_dir: None)

    def cli(*argv: object) -> tuple[int, str, str]:
        try:
            bench.main([str(a) for a in argv])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        out, err = capsys.readouterr()
        return code, out, err

    code, out, err = cli("run", "--device", f"adb:{emu.serial}", "--runner", "app", "--apk", apk, "-m",
                         "efficientvit-b0", "-t", "tflite", "--runs", "3", "--warmup", "1", "--out", tmp_path)
    assert code == 0, err
    assert "tflite: app-litert (--runner app)" in err and "1 measured, 0 failed" in err
    assert "efficientvit-b0" in out and app.installs() == 1
    code, _, err = cli("run", "--device", f"adb:{emu.serial}", "--runner", "app", "--apk", tmp_path / "none.apk",
                       "-m", "efficientvit-b0", "-t", "tflite", "--out", tmp_path)
    errors = [ln for ln in err.splitlines() if ln.startswith("error: ")]
    assert code == 2 and len(errors) == 1 and "none.apk does not exist" in errors[0]


def test_extras_reach_the_app_as_data(phone: tuple[AdbEmulator, EmulatedApp], apk: Path, tmp_path: Path) -> None:
    emu, app = phone
    nasty = "m o'd\"el; touch PWNED; $(touch PWNED2)"
    cfg = [Configuration(nasty, (224, 224), "tflite", threads=2)]
    summary, store = run(emu, cfg, tmp_path, apk)
    [rec] = store.records()
    assert summary.measured == 1, rec.error
    assert rec.model == nasty and rec.extra["output"]["count"] == 1000
    assert not list(emu.root.rglob("PWNED*")) and not list(Path.cwd().glob("PWNED*"))


def test_output_for_a_verification_input(phone: tuple[AdbEmulator, EmulatedApp], apk: Path, tmp_path: Path) -> None:
    import numpy as np

    from effvit_deploy.bench.adb import AdbDevice
    from effvit_deploy.bench.app_runner import AppSession
    from effvit_deploy.bench.parsers import RunnerOutputError

    emu, app = phone
    session = AppSession(AdbDevice.connect(emu.serial), AppPackage.load(apk))
    model = artifact(tmp_path, "tflite")
    remote = "/data/local/tmp/effvit/models/tiny-224x224-tflite-fp32.tflite"
    session.adb.makedirs("/data/local/tmp/effvit/models")
    session.adb.push(model["path"], remote)
    x = np.linspace(-1, 1, 3 * 224 * 224, dtype=np.float32).reshape(1, 3, 224, 224)
    np.save(tmp_path / "verify.input.npy", x)
    values, shape = session.output_for_input(remote, "tflite", tmp_path / "verify.input.npy", threads=2, timeout=60)
    w = np.frombuffer(Path(model["path"]).read_bytes(), dtype=np.uint8)
    j = np.arange(1000)
    expect = (w[(j * 7919) % w.size] / 255.0 - 0.5) + 0.1 * x.ravel()[j]
    assert shape == [1, 1000]
    np.testing.assert_allclose(values, expect, rtol=1e-6, atol=1e-6)
    app.fault = "crash"
    with pytest.raises(RunnerOutputError, match="ended without writing its result"):
        session.output_for_input(remote, "tflite", tmp_path / "verify.input.npy", threads=2, timeout=60)


EMULATED_WATTS = 0.42 * 3.87  # the emulated battery (tests/adb_emulator/profiles.py): 420 mA at 3.87 V


def test_app_stop_rule_and_energy_during_its_timed_runs(phone: tuple[AdbEmulator, EmulatedApp], apk: Path,
                                                        tmp_path: Path) -> None:
    emu, _ = phone
    summary, store = run(emu, configs(threads=(1,)), tmp_path, apk, min_seconds=1.0, max_seconds=30.0)
    assert (summary.measured, summary.failed) == (1, 0), [r.error for r in store.records()]
    [rec] = store.records()
    # the app's loop held the rule: 3 runs were not enough, it ran on for 1 s (runs of >= 1 ms: < 1000 of them)
    assert 3 < len(rec.samples_ms) <= 1000 and rec.extra["timed_s"] >= 1.0
    assert rec.extra["app_stop_rule"] == {"min_runs": 3, "min_seconds": 1.0, "max_seconds": 30.0}
    assert rec.stop_rule == {"min_runs": 3, "min_seconds": 1.0, "max_seconds": 30.0,
                             "applied_by": "app loop (extras min_seconds/max_seconds)"}
    start = next(c for c in emu.commands if "am start -W" in c)
    assert "--ef min_seconds 1 --ef max_seconds 30 --es timed_flag " in start
    # the sampler read the emulated battery only while the app's flag file existed
    e = rec.energy
    assert e is not None and e.get("samples", 0) >= 3, e
    assert e["mean_power_w"] == pytest.approx(EMULATED_WATTS, rel=1e-3)
    per_run_s = rec.extra["timed_s"] / len(rec.samples_ms)
    assert e["energy_per_inference_mj"] == pytest.approx(EMULATED_WATTS * per_run_s * 1000, rel=1e-2)
    assert "app is not pinned" in e["method"]
    assert rec.peak_rss_kb and rec.peak_rss_kb > 10_000  # the stand-in JVM's own VmHWM
    assert not list(emu.host_path(RESULT_DIR).iterdir())  # result, flag and samples removed
    assert not list(emu.host_path("/data/local/tmp/effvit/results").iterdir())
    # a different stop rule is a different record key: a resumed sweep measures it again
    spec_keys = {r.key for r in store.records()}
    summary2, _ = run(emu, configs(threads=(1,)), tmp_path, apk, store=store, min_seconds=0.5)
    assert summary2.measured == 1 and {r.key for r in summary2.records}.isdisjoint(spec_keys)
