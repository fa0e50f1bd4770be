"""The sweep engine on in-process fake devices: order, resume, error records, cool-down, throttle, disconnects,
parallel workers, runner choice and masks; plus the native runner command lines. No adb, no runtime: fast."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from effvit_deploy.bench import engine
from effvit_deploy.bench.adb import DeviceDisconnected
from effvit_deploy.bench.devices import Device, PythonInfo, RunOutput, choose_mask
from effvit_deploy.bench.native import BINARIES, find_binary, native_runner, wrap
from effvit_deploy.bench.store import ResultStore
from effvit_deploy.bench.sweep import Configuration, SweepSpec, interleave
from effvit_deploy.errors import DeviceError, InvalidInputError, MissingFileError

SM8150 = [{"cpus": [0, 1, 2, 3], "max_khz": 1785600, "governor": "schedutil"},
          {"cpus": [4, 5, 6], "max_khz": 2419200, "governor": "schedutil"},
          {"cpus": [7], "max_khz": 2841600, "governor": "schedutil"}]


def runner_json(samples: list[float], **extra: Any) -> str:
    return json.dumps({"runner": "python-litert", "samples_ms": samples, "init_ms": 5.0, "first_ms": 9.0,
                       "versions": {"ai-edge-litert": "2.3.0"}, **extra}) + "\n"


class FakeDevice(Device):
    """A device whose runner output is scripted; records every call (thread-safe enough for one worker)."""

    kind = "fake"

    def __init__(self, name: str = "fake", *, python: bool = True, run_s: float = 0.0,
                 outputs: list[Any] | None = None, clusters: list[dict[str, Any]] | None = None) -> None:
        super().__init__()
        self.spec = f"fake:{name}"
        self.serial = name
        self.python = python
        self.run_s = run_s
        self.outputs = list(outputs or [])  # RunOutput | Exception | None (= default good output), consumed in order
        self.clusters = clusters if clusters is not None else SM8150
        self.calls: list[tuple[str, Any]] = []
        self.run_times: list[float] = []
        self.temps = [40.0]
        self.reconnect_ok = True
        self.prepare_error: Exception | None = None

    def open(self) -> None:
        self.calls.append(("open", None))

    def reconnect(self) -> None:
        self.calls.append(("reconnect", None))
        if not self.reconnect_ok:
            raise DeviceError(f"{self.spec} not found")

    def _shell(self) -> Any:
        raise AssertionError("fake devices read no shell")

    def facts(self) -> dict[str, Any]:
        return {"model": f"Phone {self.serial}", "soc": "SM8150", "clusters": self.clusters, "kind": "fake"}

    def thermal(self) -> dict[str, float]:
        t = self.temps.pop(0) if len(self.temps) > 1 else self.temps[0]
        return {"cpu": t}

    def freqs(self) -> dict[str, int]:
        return {"7": 2841600}

    def python_command(self) -> list[str]:
        return ["python3"]

    def python_info(self) -> PythonInfo:
        return PythonInfo("3.11" if self.python else None, dict.fromkeys(("tflite", "onnx", "executorch"),
                                                                         self.python))

    def prepare(self, artifact: Path, sha256: str, name: str) -> str:
        if self.prepare_error is not None:
            raise self.prepare_error
        self.calls.append(("prepare", name))
        return f"/dev/models/{sha256[:16]}-{name}"

    def prepare_python_runner(self) -> str:
        return "/dev/python_runner.py"

    def prepare_native(self, binary: Path, libraries: list[Path]) -> tuple[str, str | None]:
        return f"/dev/bin/{binary.name}", None

    def run(self, argv: list[str], *, timeout: float, mask: str | None = None) -> RunOutput:
        self.calls.append(("run", (argv, mask)))
        self.run_times.append(time.monotonic())
        if self.run_s:
            time.sleep(self.run_s)
        out = self.outputs.pop(0) if self.outputs else None
        if isinstance(out, Exception):
            raise out
        return out or RunOutput(0, runner_json([2.0, 1.0, 3.0]), "", self.run_s)


@pytest.fixture
def artifacts(tmp_path: Path) -> dict[str, Path]:
    out = {}
    for name in ("a.tflite", "b.tflite", "c.onnx"):
        path = tmp_path / name
        path.write_bytes(name.encode() * 10)
        out[name] = path
    return out


def make_spec(configs: list[Configuration], **kw: Any) -> SweepSpec:
    return SweepSpec(name="t", configurations=tuple(interleave(configs)), **{"runs": 3, "warmup": 1, **kw})


CONFIGS = [Configuration("efficientvit-b0", (224, 224), "tflite", threads=1),
           Configuration("efficientnet-b0", (224, 224), "tflite", threads=1),
           Configuration("efficientvit-b0", (224, 224), "tflite", threads=4)]


def exporter_for(artifacts: dict[str, Path]) -> engine.Exporter:
    def export(config: Configuration, export_dir: Path) -> dict[str, Any]:
        path = artifacts["a.tflite" if config.model == "efficientvit-b0" else "b.tflite"]
        return {"path": str(path), "artifact": path.name, "params": 123, "macs": 456, "size_bytes": 90}

    return export


def run(devices: list[Device], spec: SweepSpec, store: ResultStore, artifacts: dict[str, Path],
        events: list[engine.ProgressEvent] | None = None, **opts: Any) -> engine.SweepSummary:
    options = engine.RunOptions.from_sweep(spec, **opts)
    plans = engine.plan_sweep(devices, spec, options)
    arts, _ = engine.export_artifacts(spec.configurations, Path("unused"), exporter=exporter_for(artifacts))
    return engine.run_sweep(plans, arts, store, options, progress=(events.append if events is not None else None))


def test_measures_every_configuration_in_order(tmp_path: Path, artifacts: dict[str, Path]) -> None:
    dev = FakeDevice()
    store = ResultStore(tmp_path / "r.jsonl")
    events: list[engine.ProgressEvent] = []
    summary = run([dev], make_spec(CONFIGS), store, artifacts, events)
    assert (summary.measured, summary.failed, summary.skipped, summary.device_errors) == (3, 0, 0, {})
    recs = list(store.records())
    assert [(r.model, r.threads) for r in recs] == [("efficientvit-b0", 1), ("efficientnet-b0", 1),
                                                    ("efficientvit-b0", 4)]
    first = recs[0]
    assert first.ok and first.stats["median_ms"] == 2.0 and first.stats["n"] == 3 and first.samples_ms == [2, 1, 3]
    assert (first.init_ms, first.first_ms, first.runner) == (5.0, 9.0, "python-litert")
    assert first.mask == "80" and recs[2].mask == "f0"  # prime core for 1 thread, big cluster for 4
    assert first.extra["mask_basis"].startswith("big cores")
    assert first.manifest == {"artifact": "a.tflite", "params": 123, "macs": 456, "size_bytes": 90}
    assert first.device["model"] == "Phone fake" and first.versions["ai-edge-litert"] == "2.3.0"
    assert first.thermal_before == {"cpu": 40.0} and first.throttled is False
    assert first.started_at and first.finished_at and first.started_at <= first.finished_at
    argv, mask = next(c[1] for c in dev.calls if c[0] == "run")
    assert argv[:2] == ["python3", "/dev/python_runner.py"] and mask == "80"
    assert argv[2:] == ["--artifact", f"/dev/models/{first.artifact_sha256[:16]}-efficientvit-b0-224x224-a.tflite",
                        "--runtime", "tflite", "--threads", "1", "--runs", "3", "--warmup", "1"]
    kinds = [e.kind for e in events]
    assert kinds == ["start", "done"] * 3 + ["device-done"]
    assert [e.index for e in events if e.kind == "done"] == [1, 2, 3] and events[0].label == CONFIGS[0].label


def test_resume_skips_done_and_rerun_measures_again(tmp_path: Path, artifacts: dict[str, Path]) -> None:
    store = ResultStore(tmp_path / "r.jsonl")
    spec = make_spec(CONFIGS)
    dev = FakeDevice(outputs=[None, RunOutput(1, "", "boom", 0.0)])  # second configuration fails
    first = run([dev], spec, store, artifacts)
    assert (first.measured, first.failed) == (2, 1)
    again = FakeDevice()
    second = run([again], spec, store, artifacts)
    assert (second.measured, second.failed, second.skipped) == (1, 0, 2)  # only the failed one is measured again
    assert sum(c[0] == "run" for c in again.calls) == 1
    ok = [r for r in store.records() if r.ok]
    assert len(ok) == 3 and len({r.key for r in ok}) == 3
    rerun = run([FakeDevice()], spec, store, artifacts, rerun=True)
    assert (rerun.measured, rerun.skipped) == (3, 0)
    # a different device (other serial) is a different key: nothing skipped
    assert run([FakeDevice("other")], spec, store, artifacts).skipped == 0


def test_runner_failures_are_records_and_the_sweep_goes_on(tmp_path: Path, artifacts: dict[str, Path]) -> None:
    store = ResultStore(tmp_path / "r.jsonl")
    outputs = [RunOutput(1, "partial\n", "Traceback...\nRuntimeError: bad model\n", 0.1),
               RunOutput(0, "no json here\n", "warn\n", 0.1),
               RunOutput(3, "", "error: onnxruntime is not importable\n", 0.1)]
    summary = run([FakeDevice(outputs=outputs)], make_spec(CONFIGS), store, artifacts)
    assert (summary.measured, summary.failed) == (0, 3)
    exit1, garbage, missing = store.records()
    assert exit1.error == "python runner exited with 1: RuntimeError: bad model" and exit1.stats is None
    assert "Traceback" in exit1.stderr_tail
    assert garbage.error.startswith("cannot parse python runner output") and garbage.extra["stdout_tail"]
    assert "runtime not installed there" in missing.error
    assert not store.done_keys()


def test_export_failure_is_recorded_per_configuration(tmp_path: Path, artifacts: dict[str, Path]) -> None:
    good = exporter_for(artifacts)

    def exporter(config: Configuration, export_dir: Path) -> dict[str, Any]:
        if config.model == "efficientnet-b0":
            raise RuntimeError("converter crashed\nwith details")
        return good(config, export_dir)

    spec = make_spec(CONFIGS)
    arts, _ = engine.export_artifacts(spec.configurations, tmp_path, exporter=exporter)
    options = engine.RunOptions.from_sweep(spec)
    plans = engine.plan_sweep([FakeDevice()], spec, options)
    store = ResultStore(tmp_path / "r.jsonl")
    summary = engine.run_sweep(plans, arts, store, options)
    assert (summary.measured, summary.failed) == (2, 1)
    bad = next(r for r in store.records() if not r.ok)
    assert bad.error == "export failed: RuntimeError: converter crashed with details" and bad.artifact_sha256 == ""


def test_checker_rejects_bad_input_before_any_export(tmp_path: Path) -> None:
    exported: list[Configuration] = []

    def checker(config: Configuration, export_dir: Path) -> None:
        if config.model == "efficientnet-b0":
            raise InvalidInputError("efficientnet-b0 cannot go to tflite here")

    with pytest.raises(InvalidInputError, match="cannot go"):
        engine.export_artifacts(CONFIGS, tmp_path, exporter=lambda c, d: exported.append(c) or {}, checker=checker)
    assert exported == []


def test_manifest_sha_mismatch_is_an_export_failure(tmp_path: Path, artifacts: dict[str, Path]) -> None:
    def exporter(config: Configuration, export_dir: Path) -> dict[str, Any]:
        return {"path": str(artifacts["a.tflite"]), "artifact": "a.tflite", "sha256": "0" * 64}

    arts, _ = engine.export_artifacts(CONFIGS[:1], tmp_path, exporter=exporter)
    failure = arts[CONFIGS[0].artifact_key]
    assert isinstance(failure, engine.ExportFailure) and "does not match its manifest sha256" in failure.error


def test_cooldown_between_configurations_not_before_first(tmp_path: Path, artifacts: dict[str, Path]) -> None:
    dev = FakeDevice()
    spec = make_spec(CONFIGS, cooldown_s=1.0)
    start = time.monotonic()
    run([dev], spec, ResultStore(tmp_path / "r.jsonl"), artifacts)
    gaps = [b - a for a, b in zip(dev.run_times, dev.run_times[1:], strict=False)]
    assert dev.run_times[0] - start < 0.9 and len(gaps) == 2 and all(g >= 1.0 for g in gaps)


def test_throttle_flag_from_temperatures(tmp_path: Path, artifacts: dict[str, Path]) -> None:
    dev = FakeDevice()
    dev.temps = [40.0, 60.0, 60.0, 61.0, 61.0, 62.0]  # +20 C during the first measurement only
    store = ResultStore(tmp_path / "r.jsonl")
    run([dev], make_spec(CONFIGS), store, artifacts)
    assert [r.throttled for r in store.records()] == [True, False, False]


def test_disconnect_reconnects_and_measures_the_configuration_again(tmp_path: Path,
                                                                    artifacts: dict[str, Path]) -> None:
    dev = FakeDevice(outputs=[DeviceDisconnected("device fake disconnected during `python3`: closed")])
    store = ResultStore(tmp_path / "r.jsonl")
    summary = run([dev], make_spec(CONFIGS), store, artifacts)
    assert (summary.measured, summary.failed, summary.device_errors) == (3, 0, {})
    first = next(iter(store.records()))
    assert first.ok and first.extra["faults_survived"] == ["disconnect"] and "disconnected" not in first.extra
    assert [c for c, _ in dev.calls].count("reconnect") == 1 and [c for c, _ in dev.calls].count("run") == 4


def test_repairable_faults_are_bounded(tmp_path: Path, artifacts: dict[str, Path]) -> None:
    killed = RunOutput(137, "", "Killed", 0.0)
    dev = FakeDevice(outputs=[killed] * engine.MAX_ATTEMPTS)
    store = ResultStore(tmp_path / "r.jsonl")
    summary = run([dev], make_spec(CONFIGS[:1]), store, artifacts)
    [rec] = store.records()
    assert summary.failed == 1 and "exited with 137" in (rec.error or "")
    assert rec.extra["faults_survived"] == ["runner killed"] * (engine.MAX_ATTEMPTS - 1)


def test_device_gone_for_good_stops_only_that_worker(tmp_path: Path, artifacts: dict[str, Path]) -> None:
    gone = FakeDevice("gone", outputs=[None, DeviceDisconnected("device gone disconnected")], run_s=0.05)
    gone.reconnect_ok = False
    fine = FakeDevice("fine", run_s=0.05)
    store = ResultStore(tmp_path / "r.jsonl")
    summary = run([gone, fine], make_spec(CONFIGS), store, artifacts)
    assert "reconnect failed" in summary.device_errors["fake:gone"]
    by_device = {s: [r for r in store.records() if r.device_serial == s] for s in ("gone", "fine")}
    assert [r.ok for r in by_device["gone"]] == [True, False]  # stopped after the second configuration
    assert [r.ok for r in by_device["fine"]] == [True, True, True]


def test_storage_full_is_fatal_for_the_device(tmp_path: Path, artifacts: dict[str, Path]) -> None:
    dev = FakeDevice()
    dev.prepare_error = DeviceError("push a -> /data/local/tmp/x failed: No space left on device: free space")
    store = ResultStore(tmp_path / "r.jsonl")
    summary = run([dev], make_spec(CONFIGS), store, artifacts)
    assert "No space left" in summary.device_errors["fake:fake"]
    assert len(list(store.records())) == 1  # the failed attempt is a record; nothing else was tried


def test_devices_run_in_parallel(tmp_path: Path, artifacts: dict[str, Path]) -> None:
    devs = [FakeDevice("p1", run_s=0.4), FakeDevice("p2", run_s=0.4)]
    start = time.monotonic()
    summary = run(devs, make_spec(CONFIGS), ResultStore(tmp_path / "r.jsonl"), artifacts)
    elapsed = time.monotonic() - start
    assert summary.measured == 6
    assert elapsed < 6 * 0.4 * 0.8, elapsed  # serial would take >= 2.4 s


def test_stop_event_ends_the_sweep_early(tmp_path: Path, artifacts: dict[str, Path]) -> None:
    dev = FakeDevice(run_s=0.2)
    spec = make_spec(CONFIGS)
    options = engine.RunOptions.from_sweep(spec)
    plans = engine.plan_sweep([dev], spec, options)
    arts, _ = engine.export_artifacts(spec.configurations, tmp_path, exporter=exporter_for(artifacts))
    stop = threading.Event()

    def on_event(event: engine.ProgressEvent) -> None:
        if event.kind == "start":
            stop.set()  # like Ctrl-C during the first measurement: it finishes, nothing else starts

    summary = engine.run_sweep(plans, arts, ResultStore(tmp_path / "r.jsonl"), options, progress=on_event, stop=stop)
    assert summary.measured == 1 and len(list(ResultStore(tmp_path / "r.jsonl").records())) == 1


# --- runner choice and masks -----------------------------------------------------------------------------------------


def test_runner_choice(tmp_path: Path) -> None:
    assert engine.choose_runner(FakeDevice(), "tflite", "auto", None).kind == "python-litert"
    assert engine.choose_runner(FakeDevice(), "onnx", "auto", None).kind == "python-onnxruntime"
    no_python = FakeDevice(python=False)
    with pytest.raises(DeviceError, match=r"no runner for tflite on fake:fake: it has no python3, no "
                                          r"--runner-dir with benchmark_model was given, and no APK for --runner app"):
        engine.choose_runner(no_python, "tflite", "auto", None)
    with pytest.raises(DeviceError, match=f"expected {tmp_path}/onnxruntime_perf_test"):
        engine.choose_runner(no_python, "onnx", "auto", tmp_path)
    (tmp_path / "benchmark_model").write_text("#!/bin/sh\n")
    choice = engine.choose_runner(no_python, "tflite", "auto", tmp_path)
    assert choice.kind == "native-benchmark_model" and choice.binary == tmp_path / "benchmark_model"
    assert engine.choose_runner(FakeDevice(), "tflite", "native", tmp_path).kind == "native-benchmark_model"
    with pytest.raises(MissingFileError, match="executor_runner"):
        engine.choose_runner(FakeDevice(), "executorch", "native", tmp_path)
    with pytest.raises(DeviceError, match="--runner python on fake:fake: it has no python3"):
        engine.choose_runner(no_python, "tflite", "python", tmp_path)
    with pytest.raises(InvalidInputError, match="unknown runner"):
        engine.choose_runner(FakeDevice(), "tflite", "fastest", None)


def test_choose_mask() -> None:
    cpus = list(range(8))
    facts = {"clusters": SM8150}
    assert choose_mask(facts, cpus, "big", 1) == ("80", "big cores (by cpuinfo_max_freq)")
    assert choose_mask(facts, cpus, "big", 4)[0] == "f0"
    assert choose_mask(facts, cpus, "all", 1) == ("ff", "all CPUs")
    assert choose_mask(facts, cpus, "30", 2) == ("30", "user mask")
    # only some CPUs allowed (a container): never pin outside them
    assert choose_mask(facts, [0, 1, 2, 3, 4], "big", 2)[0] == "18"  # cpu 4 (big) + cpu 3 (little, highest)
    no_freq = {"clusters": [{"cpus": [0, 1], "max_khz": None}]}
    mask, basis = choose_mask(no_freq, [0, 1], "big", 1)
    assert mask == "3" and "no cpufreq" in basis
    with pytest.raises(InvalidInputError, match="selects CPUs \\[8\\]"):
        choose_mask(facts, cpus, "100", 1)


# --- native runner command lines -------------------------------------------------------------------------------------


def test_native_command_lines_match_the_reference() -> None:
    bm = native_runner("tflite").command("/b/benchmark_model", "/m/x.tflite", threads=4, runs=50, warmup=10)
    memory = ["--report_peak_memory_footprint=true", "--memory_footprint_check_interval_ms=1000"]
    assert bm == ["/b/benchmark_model", "--graph=/m/x.tflite", "--num_threads=4", "--warmup_runs=10",
                  "--num_runs=50", "--warmup_min_secs=0", "--min_secs=0", "--max_secs=86400", *memory]
    ort = native_runner("onnx")
    assert ort.command("/b/onnxruntime_perf_test", "/m/x.onnx", threads=2, runs=50, warmup=10) == [
        "/b/onnxruntime_perf_test", "-I", "-m", "times", "-r", "50", "-x", "2", "-y", "1", "-e", "cpu", "/m/x.onnx"]
    assert ort.effective_warmup(10) == 1
    et = native_runner("executorch").command("/b/executor_runner", "/m/x.pte", threads=1, runs=50, warmup=10)
    assert et == ["/b/executor_runner", "--model_path=/m/x.pte", "--num_executions=60", "--cpu_threads=1",
                  "--warmup_executions=10"]
    assert wrap(["x"], mask="f0", library_dir="/lib") == ["taskset", "f0", "env", "LD_LIBRARY_PATH=/lib", "x"]
    assert {native_runner(t).kind for t in BINARIES} == {"native-benchmark_model", "native-onnxruntime_perf_test",
                                                         "native-executor_runner"}


def test_native_command_lines_carry_the_stop_rule() -> None:
    rule = {"min_seconds": 2.5, "max_seconds": 30.0}
    bm = native_runner("tflite").command("/b/benchmark_model", "/m/x.tflite", threads=1, runs=20, warmup=0, **rule)
    assert "--num_runs=20" in bm and "--min_secs=2.5" in bm and "--max_secs=30" in bm
    ort = native_runner("onnx").command("/b/ort", "/m/x.onnx", threads=1, runs=20, warmup=0, **rule)
    assert ort[-5:] == ["--min_secs", "2.5", "--max_secs", "30", "/m/x.onnx"] and ort[4:6] == ["-r", "20"]
    et = native_runner("executorch").command("/b/et", "/m/x.pte", threads=1, runs=20, warmup=3, **rule)
    assert et[2:] == ["--num_executions=23", "--cpu_threads=1", "--warmup_executions=3", "--min_secs=2.5",
                      "--max_secs=30"]
    # a count-only rule passes no time flag to our two runners, so any build of them takes the command
    plain = native_runner("onnx").command("/b/ort", "/m/x.onnx", threads=1, runs=5, warmup=0)
    assert not any("secs" in a for a in plain)


def test_native_parse_uses_both_streams() -> None:
    out = ("count=1 curr=3102210\ncount=5 first=2981233 curr=2949876 min=2931102 max=2981233 avg=2.95034e+06 "
           "std=17862.4 p5=2931102 median=2949876 p95=2981233\n")
    parsed = native_runner("tflite").parse("", "INFO: " + out.replace("\n", "\nINFO: "), warmup=1)
    assert parsed.stats["mean_ms"] == pytest.approx(2950.34) and parsed.stats["n"] == 5
    lines = "".join(f"Iteration {i} of 4: {t} ms\n" for i, t in enumerate([9.0, 2.0, 3.0, 4.0], 1))
    et = native_runner("executorch").parse(lines + "Model executed successfully 4 time(s) in 18.0 ms.\n", "",
                                           warmup=1)
    assert et.samples_ms == [2.0, 3.0, 4.0] and et.first_ms == 9.0


def test_find_binary_names_the_expected_path(tmp_path: Path) -> None:
    with pytest.raises(MissingFileError, match=f"expected {tmp_path}/executor_runner"):
        find_binary(tmp_path, "executorch")
    with pytest.raises(MissingFileError, match="pass --runner-dir"):
        find_binary(None, "tflite")


# --- the Python runner file is self-contained ------------------------------------------------------------------------


def test_python_runner_imports_only_stdlib_numpy_and_runtimes() -> None:
    """The file is pushed alone to phones: it must not import effvit_deploy (or anything else non-standard)."""
    import ast
    import sys

    from effvit_deploy.bench import python_runner

    tree = ast.parse(Path(python_runner.__file__).read_text())
    modules = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    modules |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    modules |= {m for m in python_runner._IMPORTS["tflite"] + python_runner._IMPORTS["onnx"]}
    runtimes = ("numpy", "ai_edge_litert", "tflite_runtime", "onnxruntime", "executorch", "torch")
    foreign = {m for m in modules if m.split(".")[0] not in sys.stdlib_module_names and not m.startswith(runtimes)}
    assert not foreign, foreign
    assert not any(node.level for node in ast.walk(tree) if isinstance(node, ast.ImportFrom))  # no relative imports
