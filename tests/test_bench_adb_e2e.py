"""End to end through the REAL adb client against emulated phones (tests/adb_emulator), and on this machine.

The phones run the real Python runner (python3 on the emulated device is this venv's Python) on a tiny EfficientViT
TFLite artifact, or fake native runners (shell scripts printing the documented output formats) from a --runner-dir.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from effvit_deploy.bench import adb, engine, report
from effvit_deploy.bench.devices import DEVICE_ROOT, Device, LocalDevice, open_devices
from effvit_deploy.bench.records import BenchRecord
from effvit_deploy.bench.store import ResultStore, load_results
from effvit_deploy.bench.sweep import Configuration, SweepSpec, interleave
from effvit_deploy.errors import DeviceError
from tests.adb_emulator import AdbEmulator

pytestmark = pytest.mark.slow

TINY = "tiny-efficientvit"
NASTY = "m o'd\"el; touch PWNED; $(touch PWNED2) `touch PWNED3`"


def configs(target: str = "tflite", threads: tuple[int, ...] = (1, 4), model: str = TINY) -> list[Configuration]:
    return [Configuration(model, (64, 64), target, threads=t) for t in threads]


def sweep(cfgs: list[Configuration], runs: int = 3, warmup: int = 1, **kw: Any) -> SweepSpec:
    return SweepSpec(name="e2e", configurations=tuple(interleave(cfgs)), runs=runs, warmup=warmup, **kw)


def measure(devices: list[Device], spec: SweepSpec, store: ResultStore, manifest: dict[str, Any] | Callable[..., Any],
            before_run: Callable[[], None] | None = None, **opts: Any) -> engine.SweepSummary:
    options = engine.RunOptions.from_sweep(spec, **opts)
    plans = engine.plan_sweep(devices, spec, options)
    exporter = manifest if callable(manifest) else (lambda c, d: manifest)
    arts, _ = engine.export_artifacts(spec.configurations, store.path.parent, exporter=exporter)
    if before_run is not None:
        before_run()
    return engine.run_sweep(plans, arts, store, options)


def device_file(phone: AdbEmulator, path: str) -> Path:
    return phone.host_path(path)


# --- the Python runner on a phone --------------------------------------------------------------------------------


def test_sweep_on_emulated_855_with_python_runner(adb_phone_factory: Callable[..., AdbEmulator],
                                                  tiny_artifact: Callable[[str], dict[str, Any]],
                                                  tmp_path: Path) -> None:
    phone = adb_phone_factory("sm8150", python3=True)
    entry = tiny_artifact("tflite")
    store = ResultStore(tmp_path / "r.jsonl")
    [dev] = open_devices([f"adb:{phone.serial}"])
    summary = measure([dev], sweep(configs()), store, entry)
    assert (summary.measured, summary.failed, summary.device_errors) == (2, 0, {})
    one, four = store.records()
    for rec, mask in ((one, "80"), (four, "f0")):  # prime core; A76 big cluster + prime
        assert rec.ok and rec.stats["n"] == 3 and len(rec.samples_ms) == 3 and rec.mask == mask
        assert rec.runner == "python-litert" and rec.init_ms > 0 and rec.first_ms > 0
        assert rec.device_serial == phone.serial and rec.artifact_sha256 == entry["sha256"]
        assert rec.versions["ai-edge-litert"] and rec.extra["input_shape"] == [1, 3, 64, 64]
        assert rec.thermal_before["cpu-1-7-usr"] == pytest.approx(41.3) and rec.freqs_after["7"] == 2841600
        assert rec.throttled is False
    facts = one.device
    assert (facts["model"], facts["soc"], facts["android_release"], facts["abi"]) == (
        "Pixel 4", "SM8150", "13", "arm64-v8a")
    assert [(len(c["cpus"]), c["max_khz"]) for c in facts["clusters"]] == [(4, 1785600), (3, 2419200), (1, 2841600)]
    assert facts["governor"] == "schedutil"
    # pushed once by hash, run pinned with taskset, result pulled and removed from the device
    remote = f"{DEVICE_ROOT}/models/{entry['sha256'][:16]}-{TINY}-64x64-{Path(entry['path']).name}"
    assert device_file(phone, remote).read_bytes() == Path(entry["path"]).read_bytes()
    assert device_file(phone, f"{DEVICE_ROOT}/python_runner.py").is_file()
    runs = [c for c in phone.commands if "python_runner.py --artifact" in c]
    assert len(runs) == 2 and "taskset 80 python3 /data/local/tmp/effvit/python_runner.py --artifact" in runs[0]
    assert "--out /data/local/tmp/effvit/results/" in runs[0]
    assert not list(device_file(phone, f"{DEVICE_ROOT}/results").iterdir())
    # a re-run skips both; nothing pushed again (no new sha256 check either: only the plan's facts/python calls)
    phone.commands.clear()
    again = measure(open_devices([f"adb:{phone.serial}"]), sweep(configs()), store, entry)
    assert (again.measured, again.skipped) == (0, 2) and not [c for c in phone.commands if "sha256sum" in c]


def test_drop_mid_sweep_then_rerun_resumes_without_loss_or_duplicates(
        adb_phone_factory: Callable[..., AdbEmulator], tiny_artifact: Callable[[str], dict[str, Any]],
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(adb, "RECONNECT_TIMEOUT_S", 5.0)  # the phone stays away: do not wait the full default
    phone = adb_phone_factory("sm8150", python3=True)
    entry = tiny_artifact("tflite")
    store = ResultStore(tmp_path / "r.jsonl")
    spec = sweep(configs(threads=(1, 2, 3, 4)))

    def cut_the_cable_later() -> None:
        phone.accepting = False  # the adb server cannot reconnect by itself
        phone.drop_after(17)  # a few shell commands into the second configuration (7 shell commands each)

    first = measure(open_devices([f"adb:{phone.serial}"]), spec, store, entry, before_run=cut_the_cable_later)
    assert first.measured >= 1 and first.failed == 1
    assert "disconnected" in first.device_errors[f"adb:{phone.serial}"]
    lost = next(r for r in store.records() if not r.ok)
    assert lost.extra["disconnected"] and "reconnect failed" in lost.error
    done_before = {r.key for r in store.records() if r.ok}
    # the phone comes back: the re-run measures exactly what is missing
    phone.accepting = True
    second = measure(open_devices([f"adb:{phone.serial}"]), spec, store, entry)
    assert second.skipped == len(done_before) and second.measured == 4 - len(done_before) and not second.failed
    ok = [r for r in store.records() if r.ok]
    assert len(ok) == 4 and len({r.key for r in ok}) == 4 and {r.threads for r in ok} == {1, 2, 3, 4}


def test_drop_with_active_reconnect_measures_the_configuration_again(
        adb_phone_factory: Callable[..., AdbEmulator], tiny_artifact: Callable[[str], dict[str, Any]],
        tmp_path: Path) -> None:
    phone = adb_phone_factory("sm8150", python3=True)
    store = ResultStore(tmp_path / "r.jsonl")
    started = time.monotonic()
    summary = measure(open_devices([f"adb:{phone.serial}"]), sweep(configs(threads=(1, 2, 3))), store,
                      tiny_artifact("tflite"), before_run=lambda: phone.drop_after(17))
    assert (summary.measured, summary.failed, summary.device_errors) == (3, 0, {})
    recs = list(store.records())
    assert [r.ok for r in recs] == [True, True, True] and [r.threads for r in recs] == [1, 2, 3]
    assert [r.extra.get("faults_survived") for r in recs] == [None, ["disconnect"], None]
    # adb disconnect + connect, not the adb server's own ~10 s retry
    assert time.monotonic() - started < 25


def test_runner_failure_and_garbage_output_are_error_records(adb_phone_factory: Callable[..., AdbEmulator],
                                                             tiny_artifact: Callable[[str], dict[str, Any]],
                                                             tmp_path: Path) -> None:
    phone = adb_phone_factory("sm8150", python3=True)
    good = tiny_artifact("tflite")
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(b"this is not a flatbuffer" * 10)

    def exporter(config: Configuration, export_dir: Path) -> dict[str, Any]:
        return {"path": str(broken), "artifact": broken.name} if config.model == "broken" else good

    store = ResultStore(tmp_path / "r.jsonl")
    cfgs = configs(threads=(1,), model="broken") + configs(threads=(1,))
    summary = measure(open_devices([f"adb:{phone.serial}"]), sweep(cfgs), store, exporter)
    assert (summary.measured, summary.failed) == (1, 1)
    bad = next(r for r in store.records() if r.model == "broken")
    assert bad.error.startswith("python runner exited with 1: error: ValueError") and bad.stderr_tail
    # now the device's python3 prints garbage (exit 0) and writes garbage as its result file
    real = phone.bin_dir / "python3"
    text = real.read_text()
    real.write_text("#!/bin/sh\ncase \"$*\" in *python_runner.py*)\n"
                    "  prev=; for a in \"$@\"; do [ \"$prev\" = --out ] && echo garbage > \"$a\"; prev=$a; done\n"
                    "  echo 'Segmentation fault (not JSON)'; exit 0;;\nesac\n" + text.split("\n", 1)[1])
    store2 = ResultStore(tmp_path / "r2.jsonl")
    summary = measure(open_devices([f"adb:{phone.serial}"]), sweep(configs(threads=(1,))), store2, good)
    [rec] = store2.records()
    assert summary.failed == 1 and rec.error.startswith("cannot parse python runner output")
    assert "Segmentation fault" in rec.extra["stdout_tail"]


def test_names_with_spaces_quotes_and_semicolons_reach_the_device_quoted(
        adb_phone_factory: Callable[..., AdbEmulator], tiny_artifact: Callable[[str], dict[str, Any]],
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    phone = adb_phone_factory("sm8150", python3=True)
    entry = tiny_artifact("tflite")
    nasty = tmp_path / f"{NASTY}.tflite"
    shutil.copy(entry["path"], nasty)
    store = ResultStore(tmp_path / "r.jsonl")
    summary = measure(open_devices([f"adb:{phone.serial}"]), sweep(configs(threads=(1,), model=NASTY)), store,
                      {"path": str(nasty), "artifact": nasty.name})
    assert summary.measured == 1, [r.error for r in summary.records]
    [rec] = store.records()
    remote = f"{DEVICE_ROOT}/models/{rec.artifact_sha256[:16]}-{NASTY}-64x64-{nasty.name}"
    assert device_file(phone, remote).is_file()
    for where in (phone.root, phone.workdir, tmp_path, Path.cwd()):
        assert not list(where.rglob("PWNED*")), where
    with pytest.raises(DeviceError, match="not found") as info:
        open_devices([f"adb:{NASTY}"])
    assert "\n" not in str(info.value) and not list(tmp_path.rglob("PWNED*"))


# --- native runners from --runner-dir ------------------------------------------------------------------------------

BENCHMARK_MODEL = """#!/bin/sh
echo "$@" > "$(dirname "$0")/benchmark_model.args"
echo "INFO: STARTING!"
echo "INFO: Num threads: [4]"
echo "INFO: Initialized session in 1873.55ms."
echo "INFO: count=1 curr=3102210" >&2
echo "INFO: count=5 first=2981233 curr=2949876 min=2931102 max=2981233 avg=2.95034e+06 std=17862.4 p5=2931102 \
median=2949876 p95=2981233" >&2
echo "INFO: Inference timings in us: Init: 1.87355e+06, First inference: 3.10221e+06, Warmup (avg): 3.10221e+06, \
Inference (avg): 2.95034e+06" >&2
"""
PERF_TEST = """#!/bin/sh
echo "$@ LD=$LD_LIBRARY_PATH" > "$(dirname "$0")/onnxruntime_perf_test.args"
echo "Session creation time cost: 0.0512 s"
echo "First inference time cost: 12 ms"
echo "Total inference time cost: 0.5 s"
echo "Total inference requests: 50"
echo "Average inference time cost total: 10.0 ms"
echo "Min Latency: 0.009 s"
echo "Max Latency: 0.013 s"
echo "P50 Latency: 0.0099 s"
echo "P90 Latency: 0.0115 s"
"""
EXECUTOR_RUNNER = """#!/bin/sh
echo "$@" > "$(dirname "$0")/executor_runner.args"
echo "I 00:00:00.001 executorch:executor_runner.cpp:100] Resetting threadpool with num threads = 1"
n=0
for t in 9.0 2.0 3.0 4.0; do n=$((n+1)); echo "I executor_runner.cpp:200] Iteration $n of 4: $t ms"; done
echo "I executor_runner.cpp:210] Model executed successfully 4 time(s) in 18.0 ms."
"""
CRASHING = "#!/bin/sh\necho 'Segmentation fault' >&2\nexit 139\n"


@pytest.fixture
def runner_dir(tmp_path: Path) -> Path:
    d = tmp_path / "runners"
    d.mkdir()
    for name, body in (("benchmark_model", BENCHMARK_MODEL), ("onnxruntime_perf_test", PERF_TEST),
                       ("executor_runner", EXECUTOR_RUNNER)):
        (d / name).write_text(body)
        (d / name).chmod(0o755)
    (d / "libonnxruntime.so").write_bytes(b"\x7fELF fake library")
    return d


def test_native_runners_pushed_and_run_under_taskset(adb_phone_factory: Callable[..., AdbEmulator],
                                                     runner_dir: Path, tmp_path: Path) -> None:
    phone = adb_phone_factory("sm8150")  # no python3: auto falls back to the native binaries
    artifacts = {}
    for target, ext in (("tflite", "tflite"), ("onnx", "onnx"), ("executorch", "pte")):
        path = tmp_path / f"model.{ext}"
        path.write_bytes(f"fake {target} model".encode())
        artifacts[target] = {"path": str(path), "artifact": path.name}
    cfgs = [c for t in ("tflite", "onnx", "executorch") for c in configs(target=t, threads=(1,))]
    store = ResultStore(tmp_path / "r.jsonl")
    summary = measure(open_devices([f"adb:{phone.serial}"]), sweep(cfgs, runs=3, warmup=1), store,
                      lambda c, d: artifacts[c.target], runner_dir=runner_dir)
    assert (summary.measured, summary.failed) == (3, 0), [r.error for r in summary.records]
    recs = {r.target: r for r in store.records()}
    bm, ort, et = recs["tflite"], recs["onnx"], recs["executorch"]
    assert bm.runner == "native-benchmark_model" and bm.stats["mean_ms"] == pytest.approx(2950.34)
    assert bm.stats["median_ms"] == pytest.approx(2949.876) and bm.init_ms == pytest.approx(1873.55)
    assert ort.runner == "native-onnxruntime_perf_test" and ort.stats["p90_ms"] == pytest.approx(11.5)
    assert ort.extra["runner_warmup"] == 1
    assert et.samples_ms == [2.0, 3.0, 4.0] and et.first_ms == 9.0
    assert bm.versions["benchmark_model"].startswith("sha256:")
    bin_dir = device_file(phone, f"{DEVICE_ROOT}/bin")
    assert os.access(bin_dir / "benchmark_model", os.X_OK) and (bin_dir / "libonnxruntime.so").is_file()
    model_path = device_file(phone, f"{DEVICE_ROOT}/models").as_posix()
    args = (bin_dir / "benchmark_model.args").read_text()
    assert args.startswith(f"--graph={model_path}/") and "--num_threads=1 --warmup_runs=1 --num_runs=3" in args
    assert f"LD={bin_dir}" in (bin_dir / "onnxruntime_perf_test.args").read_text()
    assert "--num_executions=4 --cpu_threads=1" in (bin_dir / "executor_runner.args").read_text()
    cmds = [c for c in phone.commands if "/bin/benchmark_model --graph" in c]
    # pinned (taskset outermost), output into files for the power sampler's gate, which runs on a little core
    assert len(cmds) == 1 and "taskset 80 sh -c" in cmds[0] and "taskset 1 sh -c" in cmds[0]
    assert ("env LD_LIBRARY_PATH=/data/local/tmp/effvit/bin /data/local/tmp/effvit/bin/benchmark_model --graph="
            in cmds[0])
    assert bm.stop_rule is not None and bm.stop_rule["applied_by"].startswith("runner flags: benchmark_model")
    # a crashing binary is an error record with its stderr
    (runner_dir / "benchmark_model").write_text(CRASHING)
    store2 = ResultStore(tmp_path / "r2.jsonl")
    measure(open_devices([f"adb:{phone.serial}"]), sweep(configs(threads=(1,))), store2,
            lambda c, d: artifacts[c.target], runner_dir=runner_dir, runner="native")
    [rec] = store2.records()
    assert rec.error == "benchmark_model exited with 139 (killed by SIGSEGV): Segmentation fault"


# --- two phones in parallel, then the report -----------------------------------------------------------------------


def test_two_phones_in_parallel_and_the_report(adb_phone_factory: Callable[..., AdbEmulator],
                                               tiny_artifact: Callable[[str], dict[str, Any]],
                                               tmp_path: Path) -> None:
    pixel = adb_phone_factory("sm8150", python3=True)
    galaxy = adb_phone_factory("sm8450", python3=True)
    store = ResultStore(tmp_path / "r.jsonl")
    devices = open_devices([f"adb:{pixel.serial}", f"adb:{galaxy.serial}"])
    cfgs = configs(model="efficientvit-b0") + configs(model="efficientvit-b0-softmax")
    summary = measure(devices, sweep(cfgs), store, tiny_artifact("tflite"))
    assert (summary.measured, summary.failed) == (8, 0)
    recs = list(store.records())
    spans = {s: [(_t(r.started_at), _t(r.finished_at)) for r in recs if r.device_serial == s]
             for s in (pixel.serial, galaxy.serial)}
    start_a, end_a = spans[pixel.serial][0][0], spans[pixel.serial][-1][1]
    start_b, end_b = spans[galaxy.serial][0][0], spans[galaxy.serial][-1][1]
    assert start_a < end_b and start_b < end_a  # the two workers overlapped in time
    galaxy_rec = next(r for r in recs if r.device_serial == galaxy.serial and r.threads == 4)
    assert galaxy_rec.device["model"] == "SM-S901U" and galaxy_rec.mask == "f0"
    text = report.render(load_results([store.path]), "md")
    assert "Pixel 4" in text and "SM-S901U" in text and "efficientvit-b0" in text


def _t(stamp: str | None) -> dt.datetime:
    assert stamp is not None
    return dt.datetime.fromisoformat(stamp)


# --- this machine ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["tflite", "onnx", "executorch"])
def test_local_python_runners(target: str, tiny_artifact: Callable[[str], dict[str, Any]], tmp_path: Path) -> None:
    entry = tiny_artifact(target)
    store = ResultStore(tmp_path / "r.jsonl")
    summary = measure([LocalDevice()], sweep(configs(target=target, threads=(1, 2))), store, entry)
    assert (summary.measured, summary.failed) == (2, 0), [r.error for r in summary.records]
    recs: list[BenchRecord] = list(store.records())
    allowed = sorted(os.sched_getaffinity(0))
    for rec in recs:
        assert rec.ok and rec.stats["n"] == 3 and rec.device_serial == "local" and rec.samples_ms
        assert rec.extra["mask_basis"]
        pinned = [c for c in range(64) if int(rec.mask, 16) >> c & 1]
        assert set(pinned) <= set(allowed)
    assert {r.runner for r in recs} == {{"tflite": "python-litert", "onnx": "python-onnxruntime",
                                         "executorch": "python-executorch"}[target]}
    if target == "executorch":
        assert recs[1].extra["threadpool_threads"] == 2  # the thread count really reached the runtime
