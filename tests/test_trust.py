"""Trust fields end to end: stop rule, stability, memory from /proc, energy from an emulated power_supply,
re-measuring unstable records, the seeded run order, and `effvit-bench compare`."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from effvit_deploy.bench import engine
from effvit_deploy.bench.devices import LocalDevice, RunOutput, open_devices
from effvit_deploy.bench.order import shuffled
from effvit_deploy.bench.power import has_battery, outside_core
from effvit_deploy.bench.quality import annotate, energy_fields
from effvit_deploy.bench.records import BenchRecord
from effvit_deploy.bench.stats import summarize
from effvit_deploy.bench.store import ResultStore
from effvit_deploy.bench.sweep import Configuration, SweepSpec, interleave, parse_sweep
from effvit_deploy.cli import bench
from tests.adb_emulator import AdbEmulator
from tests.adb_fixtures import AdbServer  # noqa: F401 - the adb fixtures
from tests.test_bench_adb_e2e import TINY, configs, measure, sweep

EMULATED_WATTS = 0.42 * 3.87  # the emulated battery: 420 mA at 3.87 V


def _vmhwm_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def _check_trust_fields(rec: BenchRecord) -> None:
    assert rec.ok and rec.samples_ms
    st = rec.stability
    assert st is not None and st["stable"] in (True, False) and st["windows"] == 4 and len(st["window_medians_ms"]) == 4
    assert st["spread_pct"] >= 0 and st["cv"] > 0
    assert min(rec.samples_ms) <= st["trimmed_mean_ms"] <= max(rec.samples_ms)
    assert st["p99_ms"] <= max(rec.samples_ms) + 1e-9
    # peak resident memory of a process that loaded numpy and a runtime: tens of MB, never more than this machine's
    assert rec.peak_rss_kb is not None and 20_000 < rec.peak_rss_kb < os.sysconf("SC_PHYS_PAGES") * 4
    assert "VmHWM" in rec.extra["memory_source"] and rec.extra["arena_reason"].startswith("not exposed")
    assert rec.init_ms and rec.init_ms > 0 and rec.first_ms and rec.first_ms > 0


def test_local_runner_stop_rule_stability_memory_and_energy_reason(
        tiny_artifact: Callable[[str], dict[str, Any]], tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "r.jsonl")
    spec = sweep(configs(threads=(1,)), runs=8, warmup=1, min_seconds=0.3, max_seconds=30.0, seed=7)
    summary = measure([LocalDevice()], spec, store, tiny_artifact("tflite"))
    assert (summary.measured, summary.failed) == (1, 0), [r.error for r in summary.records]
    [rec] = store.records()
    _check_trust_fields(rec)
    assert rec.extra["timed_s"] >= 0.3 and len(rec.samples_ms) >= 8  # min_seconds kept it going past 8 runs
    assert rec.stop_rule == {"min_runs": 8, "min_seconds": 0.3, "max_seconds": 30.0, "applied_by": "runner loop"}
    assert rec.order_seed == 7
    if not has_battery():  # this machine (a CI runner): no battery, and the record says so
        assert rec.energy == {"energy": None, "reason": "no battery-type supply under /sys/class/power_supply on "
                                                        "this machine"}


def test_python_runner_max_seconds_caps_the_runs(tiny_artifact: Callable[[str], dict[str, Any]]) -> None:
    from effvit_deploy.bench.python_runner import measure as runner_measure

    out = runner_measure("tflite", tiny_artifact("tflite")["path"], threads=1, runs=10**7, warmup=0,
                         max_seconds=0.2)
    assert 1 <= len(out["samples_ms"]) < 10**7 and 0.2 <= out["extra"]["timed_s"] < 5
    # measured in this process: its own VmHWM (read again here; other threads may move it slightly)
    assert out["extra"]["peak_rss_kb"] == pytest.approx(_vmhwm_kb(os.getpid()), rel=0.05)


def test_emulated_phone_memory_and_energy_flow_end_to_end(adb_phone_factory: Callable[..., AdbEmulator],
                                                          tiny_artifact: Callable[[str], dict[str, Any]],
                                                          tmp_path: Path) -> None:
    phone = adb_phone_factory("sm8150", python3=True)
    store = ResultStore(tmp_path / "r.jsonl")
    [dev] = open_devices([f"adb:{phone.serial}"])
    spec = sweep(configs(threads=(1,)), runs=10, warmup=1, min_seconds=1.0)
    summary = measure([dev], spec, store, tiny_artifact("tflite"))
    assert (summary.measured, summary.failed) == (1, 0), [r.error for r in summary.records]
    [rec] = store.records()
    _check_trust_fields(rec)
    e = rec.energy
    assert e is not None and e["samples"] >= 3 and e["mean_power_w"] == pytest.approx(EMULATED_WATTS, rel=1e-3)
    per_run_s = rec.extra["timed_s"] / len(rec.samples_ms)
    assert e["energy_per_inference_mj"] == pytest.approx(EMULATED_WATTS * per_run_s * 1000, rel=1e-2)
    assert "outside the mask" in e["method"]
    script = next(c for c in phone.commands if "python_runner.py --artifact" in c)
    assert "taskset 1 sh -c" in script and "taskset 80 python3" in script  # sampler on cpu0, runner on the prime
    assert not list(phone.host_path("/data/local/tmp/effvit/results").iterdir())  # samples and flag cleaned up
    # charging: no figure, and the reason
    (phone.root / "sys/class/power_supply/battery/status").write_text("Charging\n")
    again = measure([dev], spec, store, tiny_artifact("tflite"), rerun=True)
    assert again.records[0].energy["energy"] is None and "charging" in again.records[0].energy["reason"]


def test_energy_reason_when_every_cpu_is_measured() -> None:
    assert outside_core([0, 1, 2, 3], "f") is None and outside_core([0, 1, 2, 3], "c") == 0
    rec = _record([1.0] * 10)
    out = RunOutput(0, "", "", 1.0, power_note="no CPU outside the measured mask to run the power sampler on")
    assert energy_fields(out, rec) == {"energy": None, "reason": out.power_note}
    assert energy_fields(RunOutput(0, "", "", 1.0), _record([1.0] * 10, runner="native-benchmark_model"))[
        "reason"].startswith("native-benchmark_model: no power sampler")


def _record(samples: list[float] | None, runner: str = "python-litert", **extra: Any) -> BenchRecord:
    rec = BenchRecord(device_serial="p", device={"model": "P"}, model="efficientvit-b1", resolution="224x224",
                      target="tflite", precision="fp32", artifact_sha256="ab" * 32, runner=runner, threads=1,
                      runs=10, warmup=1, stats=summarize(samples) if samples else
                      {"median_ms": None, "mean_ms": 5.0, "n": 10, "basis": "mean-only"},
                      samples_ms=samples, extra=dict(extra))
    annotate(rec)
    return rec


def test_annotate_mean_only_and_app_memory() -> None:
    rec = _record(None, runner="native-benchmark_model")
    assert rec.stability == {"stable": None, "reason": "the runner reported no per-run times (only a mean)"}
    assert rec.peak_rss_kb is None and rec.extra["memory_source"].startswith("none:")
    app = _record([2.0] * 20, runner="app-litert", peak_rss_kb=81234)
    assert app.peak_rss_kb == 81234 and "app process" in app.extra["memory_source"] and app.stability["stable"]


def test_unstable_record_is_remeasured_once_and_kept_flagged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.test_engine import FakeDevice, make_spec, runner_json

    monkeypatch.setattr("effvit_deploy.bench.quality.REMEASURE_COOLDOWN_S", 0.0)
    drift = [1.0] * 10 + [2.0] * 10  # windows disagree: unstable
    dev = FakeDevice(outputs=[RunOutput(0, runner_json(drift), "", 0.0), RunOutput(0, runner_json(drift), "", 0.0),
                              RunOutput(0, runner_json([1.0] * 20), "", 0.0)])
    cfgs = [Configuration("efficientvit-b0", (224, 224), "tflite"), Configuration("efficientnet-b0", (224, 224),
                                                                                   "tflite")]
    store = ResultStore(tmp_path / "r.jsonl")
    options = engine.RunOptions.from_sweep(make_spec(cfgs))
    plans = engine.plan_sweep([dev], make_spec(cfgs), options)
    arts = {c.artifact_key: engine.Artifact(tmp_path / "a.tflite", c.model * 4, {}) for c in cfgs}
    summary = engine.run_sweep(plans, arts, store, options)
    first, second = store.records()  # one record per configuration: the re-measured one replaces the first try
    assert len([c for c in dev.calls if c[0] == "run"]) == 3
    assert first.stability["stable"] is False and first.extra["remeasured"]["still_unstable"] is True
    assert first.extra["remeasured"]["first_spread_pct"] == pytest.approx(100 / 1.5, abs=1e-3)  # (2 - 1) / median 1.5
    assert second.stability["stable"] is True and "remeasured" not in second.extra
    assert summary.measured == 2


def test_shuffled_order_is_reproducible_from_its_seed_and_keeps_blocks() -> None:
    cfgs = interleave(Configuration(m, (r, r), "tflite", threads=t)
                      for m in ("efficientvit-b0", "efficientvit-b0-softmax", "efficientnet-b0")
                      for r in (224, 256, 512) for t in (1, 4))
    a, b, c = shuffled(cfgs, 1), shuffled(cfgs, 1), shuffled(cfgs, 2)
    assert a == b and a != c and sorted(a) == sorted(cfgs) and a != cfgs and shuffled(cfgs, None) == cfgs
    for order in (a, c):  # each (resolution, threads) block's three models stay back to back
        blocks = [(x.resolution, x.threads) for x in order]
        assert all(len(set(blocks[i:i + 3])) == 1 for i in range(0, len(blocks), 3))
    spec = parse_sweep({"sweep": {"seed": 5, "min_runs": 30, "min_seconds": 2, "max_seconds": 60},
                        "group": [{"models": ["efficientvit-b0"], "resolutions": [224], "targets": ["tflite"]}]})
    assert (spec.seed, spec.runs, spec.min_seconds, spec.max_seconds) == (5, 30, 2.0, 60.0)
    assert parse_sweep({"group": [{"models": ["efficientvit-b0"], "resolutions": [224],
                                   "targets": ["tflite"]}]}).seed == 0


def test_resume_is_unaffected_by_the_order(tmp_path: Path) -> None:
    from tests.test_engine import FakeDevice

    cfgs = [Configuration(m, (224, 224), "tflite") for m in ("efficientvit-b0", "efficientnet-b0",
                                                             "efficientvit-b1")]
    arts = {c.artifact_key: engine.Artifact(tmp_path / "a.tflite", c.model * 4, {}) for c in cfgs}
    store = ResultStore(tmp_path / "r.jsonl")
    for seed, measured in ((3, 3), (4, 0)):
        spec = SweepSpec(name="t", configurations=tuple(cfgs), runs=3, warmup=1, seed=seed)
        options = engine.RunOptions.from_sweep(spec)
        summary = engine.run_sweep(engine.plan_sweep([FakeDevice()], spec, options), arts, store, options)
        assert summary.measured == measured


def test_resume_with_another_stop_rule_measures_again(tmp_path: Path) -> None:
    from tests.test_engine import FakeDevice

    cfgs = [Configuration(m, (224, 224), "tflite") for m in ("efficientvit-b0", "efficientvit-b1")]
    arts = {c.artifact_key: engine.Artifact(tmp_path / "a.tflite", c.model * 4, {}) for c in cfgs}
    store = ResultStore(tmp_path / "r.jsonl")
    # count-only, the same again (resumed: nothing to do), then two time rules, each measured once
    capped = {"min_seconds": 0.01, "max_seconds": 5.0}
    for rule, measured in (({}, 2), ({}, 0), ({"min_seconds": 0.01}, 2), ({"min_seconds": 0.01}, 0),
                           (capped, 2), (capped, 0)):
        spec = SweepSpec(name="t", configurations=tuple(cfgs), runs=3, warmup=1, **rule)
        options = engine.RunOptions.from_sweep(spec)
        summary = engine.run_sweep(engine.plan_sweep([FakeDevice()], spec, options), arts, store, options)
        assert summary.measured == measured, rule
    assert len({r.key for r in store.records()}) == 6


def _write(path: Path, records: list[BenchRecord]) -> Path:
    path.write_text("".join(r.to_json() + "\n" for r in records))
    return path


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    def invoke(*argv: str) -> tuple[int, str, str]:
        try:
            bench.main([str(a) for a in argv])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        out, err = capsys.readouterr()
        return code, out, err

    return invoke


def test_compare_cli(cli: Callable[..., tuple[int, str, str]], tmp_path: Path) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    a = _write(tmp_path / "before.jsonl", [_record(list(10 * (1 + 0.02 * rng.standard_normal(50))))])
    b = _write(tmp_path / "after.jsonl", [_record(list(8 * (1 + 0.02 * rng.standard_normal(50))))])
    code, out, err = cli("compare", a, b)
    assert code == 0, err
    assert "| configuration | before ms | after ms | after/before (95% CI) | verdict |" in out
    assert "| faster |" in out and "efficientvit-b1@224x224 tflite fp32 t1" in out
    code, out, err = cli("compare", a, tmp_path / "nope.jsonl")
    assert code == 2 and not out and len(err.strip().splitlines()) == 1 and "nope.jsonl does not exist" in err
    (tmp_path / "bad.jsonl").write_text("{not json\n")
    code, out, err = cli("compare", a, tmp_path / "bad.jsonl")
    assert code == 2 and len(err.strip().splitlines()) == 1
    code, out, err = cli("compare", a, b, "--format", "csv")
    assert code == 2 and "md only" in err


def test_run_flags_reach_the_spec(cli: Callable[..., tuple[int, str, str]]) -> None:
    code, _, err = cli("run", "--device", "local", "--model", TINY, "--runs", "5", "--min-runs", "6")
    assert code == 2 and "same setting" in err
    code, _, err = cli("run", "--device", "local", "--model", "efficientvit-b0", "--target", "tflite",
                       "--max-seconds", "0")
    assert code == 2 and "--max-seconds" in err and len(err.strip().splitlines()) == 1


def test_local_sampler_reads_a_battery_on_a_free_cpu(tiny_artifact: Callable[[str], dict[str, Any]],
                                                     tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    battery = tmp_path / "power_supply" / "BAT0"
    battery.mkdir(parents=True)
    for name, value in (("type", "Battery"), ("status", "Discharging"), ("power_now", "7500000")):  # 7.5 W
        (battery / name).write_text(value + "\n")
    monkeypatch.setattr(LocalDevice, "power_root", str(tmp_path / "power_supply"))
    dev = LocalDevice()
    cpus = dev.cpus()
    if len(cpus) < 2:
        pytest.skip("this machine has a single allowed CPU: no core outside the mask for the sampler")
    mask = format(1 << cpus[-1], "x")  # the runner on the last CPU, the sampler on the first
    store = ResultStore(tmp_path / "r.jsonl")
    spec = sweep(configs(threads=(1,)), runs=8, warmup=1, min_seconds=1.0, cores=mask)
    summary = measure([dev], spec, store, tiny_artifact("tflite"))
    assert summary.measured == 1, [r.error for r in summary.records]
    [rec] = store.records()
    assert rec.energy["mean_power_w"] == pytest.approx(7.5) and rec.energy["samples"] >= 3


def test_local_sampler_beside_a_native_runner_reads_only_its_timed_runs(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    battery = tmp_path / "power_supply" / "BAT0"
    battery.mkdir(parents=True)
    for name, value in (("type", "Battery"), ("status", "Discharging"), ("power_now", "7500000")):  # 7.5 W
        (battery / name).write_text(value + "\n")
    monkeypatch.setattr(LocalDevice, "power_root", str(tmp_path / "power_supply"))
    runners = tmp_path / "runners"
    runners.mkdir()
    (runners / "executor_runner").write_text(_FAKE_ET)
    (runners / "executor_runner").chmod(0o755)
    model = tmp_path / "model.pte"
    model.write_bytes(b"fake")
    dev = LocalDevice()
    cpus = dev.cpus()
    if len(cpus) < 2:
        pytest.skip("this machine has a single allowed CPU: no core outside the mask for the sampler")
    store = ResultStore(tmp_path / "r.jsonl")
    spec = sweep(configs(target="executorch", threads=(1,)), runs=3, warmup=1, cores=format(1 << cpus[-1], "x"))
    summary = measure([dev], spec, store, {"path": str(model), "artifact": model.name}, runner_dir=runners,
                      runner="native")
    assert summary.measured == 1, [r.error for r in summary.records]
    [rec] = store.records()
    e = rec.energy
    assert e["mean_power_w"] == pytest.approx(7.5) and 3 <= e["samples"] <= 1.3 / 0.2 + 1
    assert e["energy_per_inference_mj"] == pytest.approx(7.5 * 1.2 / 3 * 1000)
    assert rec.stop_rule["applied_by"].startswith("runner flags: executor_runner")


def test_compare_names_files_that_share_a_name(cli: Callable[..., tuple[int, str, str]], tmp_path: Path) -> None:
    (tmp_path / "before").mkdir()
    (tmp_path / "after").mkdir()
    a = _write(tmp_path / "before" / "quick.jsonl", [_record([10.0 + i % 3 for i in range(30)])])
    b = _write(tmp_path / "after" / "quick.jsonl", [_record([10.0 + i % 3 for i in range(30)])])
    code, out, _ = cli("compare", a, b)
    assert code == 0 and "| before/quick ms | after/quick ms |" in out and "| within noise |" in out


# --- native runners on an emulated phone: stop-rule flags, memory and arena lines, energy gated on their output --

# Fake binaries printing our runners' documented lines (effvit_deploy/runners/sources/*.cpp) with a 1.2 s timed
# section, and their shell's real VmHWM from /proc (the emulator maps no /proc/PID path: it is this machine's).
_FAKE_ET = """#!/bin/sh
echo "$@" > "$(dirname "$0")/executor_runner.args"
echo "I 00:00:00.001 executorch:executor_runner.cpp:210] Planned memory: 53216 bytes in 1 buffer(s)"
echo "I 00:00:00.002 executorch:executor_runner.cpp:266] Model loaded in 183.4 ms."
echo "I 00:00:00.003 executorch:executor_runner.cpp:281] Iteration 1 of 4: 9.0 ms"
echo "Timed runs: begin"
sleep 1.2
n=1
for t in 2.0 3.0 4.0; do n=$((n+1)); echo "I executor_runner.cpp:281] Iteration $n of 4: $t ms"; done
echo "Timed runs: end, 3 runs in 1200.0 ms"
echo "I executor_runner.cpp:291] Model executed successfully 4 time(s) in 18.0 ms."
echo "I executor_runner.cpp:293] Peak RSS: $(awk '/^VmHWM:/ {print $2}' /proc/$$/status) KB (VmHWM)"
"""
_FAKE_BM = """#!/bin/sh
echo "$@" > "$(dirname "$0")/benchmark_model.args"
echo "INFO: Initialized session in 20.5ms."
echo "INFO: count=1 curr=3000"
sleep 1.2
echo "INFO: count=4 first=300000 curr=300000 min=290000 max=310000 avg=300000 std=8000"
echo "INFO: Inference timings in us: Init: 20500, First inference: 3000, Warmup (avg): 3000, Inference (avg): 300000"
echo "INFO: Overall peak memory footprint (MB) via periodic monitoring: 36.3281"
"""


def test_native_runners_on_an_emulated_phone_carry_the_trust_fields(adb_phone_factory: Callable[..., AdbEmulator],
                                                                    tmp_path: Path) -> None:
    phone = adb_phone_factory("sm8150")  # no python3: the native runners
    runners = tmp_path / "runners"
    runners.mkdir()
    for name, body in (("executor_runner", _FAKE_ET), ("benchmark_model", _FAKE_BM)):
        (runners / name).write_text(body)
        (runners / name).chmod(0o755)
    artifacts = {}
    for target, ext in (("tflite", "tflite"), ("executorch", "pte")):
        path = tmp_path / f"model.{ext}"
        path.write_bytes(f"fake {target} model".encode())
        artifacts[target] = {"path": str(path), "artifact": path.name}
    cfgs = [c for t in ("tflite", "executorch") for c in configs(target=t, threads=(1,))]
    store = ResultStore(tmp_path / "r.jsonl")
    spec = sweep(cfgs, runs=3, warmup=1, min_seconds=0.5, max_seconds=20.0)
    summary = measure(open_devices([f"adb:{phone.serial}"]), spec, store, lambda c, d: artifacts[c.target],
                      runner_dir=runners, runner="native")
    assert (summary.measured, summary.failed) == (2, 0), [r.error for r in summary.records]
    recs = {r.target: r for r in store.records()}
    et, bm = recs["executorch"], recs["tflite"]
    bin_dir = phone.host_path("/data/local/tmp/effvit/bin")
    assert (bin_dir / "executor_runner.args").read_text().split()[-3:] == [
        "--warmup_executions=1", "--min_secs=0.5", "--max_secs=20"]
    assert "--num_runs=3 --warmup_min_secs=0 --min_secs=0.5 --max_secs=20 --report_peak_memory_footprint=true" in \
        (bin_dir / "benchmark_model.args").read_text()
    assert et.stop_rule["applied_by"].startswith("runner flags: executor_runner")
    # memory: the runner's own VmHWM line; the planned arena from MethodMeta; load and first inference apart
    assert et.peak_rss_kb and et.peak_rss_kb > 100 and et.extra["memory_source"] == \
        "executor_runner: VmHWM of its own process"
    assert et.arena_bytes == 53216 and "MethodMeta" in et.extra["arena_source"]
    assert et.init_ms == pytest.approx(183.4) and et.first_ms == 9.0 and et.samples_ms == [2.0, 3.0, 4.0]
    assert bm.peak_rss_kb == round(36.3281 * 1024) and "report_peak_memory_footprint" in bm.extra["memory_source"]
    assert bm.arena_bytes is None and "benchmark_model prints no arena size" in bm.extra["arena_reason"]
    assert bm.init_ms == pytest.approx(20.5) and bm.first_ms == pytest.approx(3.0)
    # energy: read only inside the timed section (1.2 s, while exactly one gate line was printed)
    for rec in (et, bm):
        e = rec.energy
        assert e is not None and e.get("samples", 0) >= 3, (rec.target, e)
        assert e["mean_power_w"] == pytest.approx(EMULATED_WATTS, rel=1e-3)
        assert e["samples"] <= 1.3 / 0.2 + 1  # not during load or after the runs
    assert et.energy["energy_per_inference_mj"] == pytest.approx(EMULATED_WATTS * 1.2 / 3 * 1000, rel=1e-3)
    # benchmark_model prints no loop time: n x mean (4 x 300 ms)
    assert bm.energy["energy_per_inference_mj"] == pytest.approx(EMULATED_WATTS * 0.3 * 1000, rel=1e-3)
    assert not list(phone.host_path("/data/local/tmp/effvit/results").iterdir())  # output and samples removed


def test_stop_rule_is_part_of_the_record_key_and_old_keys_still_resume() -> None:
    base = dict(device_serial="local", device={"model": "x"}, model="m", resolution="8x8", target="onnx",
                precision="fp32", artifact_sha256="ab" * 32, runner="python-onnxruntime", threads=1, runs=20, warmup=2)
    old = BenchRecord(**base)  # made before the stop rule existed: no stop_rule field
    count_only = BenchRecord(**base, stop_rule={"min_runs": 20, "min_seconds": 0.0, "max_seconds": None})
    timed = BenchRecord(**base, stop_rule={"min_runs": 20, "min_seconds": 10, "max_seconds": None})
    capped = BenchRecord(**base, stop_rule={"min_runs": 20, "min_seconds": 10.0, "max_seconds": 60.0})
    assert old.key == count_only.key  # a count-only rule hashes as before: old results files resume
    assert len({count_only.key, timed.key, capped.key}) == 3
    assert BenchRecord.from_json(timed.to_json()).key == timed.key == timed.compute_key()
