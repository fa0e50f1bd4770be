"""Chaos: a 32-configuration sweep on an emulated phone that drops, stalls, fills up and kills the runner at random.

The phone (tests/adb_emulator, through the real adb client) runs a fake native benchmark_model (a shell script that
prints the real output format after 0.3 s), the cheapest runner it supports, so the test is about the harness: the
seeded fault plan (`tests/adb_emulator/chaos.py`) hits shell commands and pushes, and the sweep must still end with
every configuration measured exactly once, no error record, no duplicate, and nothing written on the device outside
/data/local/tmp/effvit. The fault counts are printed (`pytest -s tests/test_chaos.py`) and quoted in the README.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from effvit_deploy.bench import engine
from effvit_deploy.bench.devices import DEVICE_ROOT, open_devices
from effvit_deploy.bench.store import ResultStore
from effvit_deploy.bench.sweep import Configuration, SweepSpec, interleave
from tests.adb_emulator import AdbEmulator
from tests.adb_emulator.chaos import Chaos
from tests.test_bench_adb_e2e import BENCHMARK_MODEL

MODELS = ("m0", "m1", "m2", "m3")
RESOLUTIONS = ((64, 64), (96, 96))
THREADS = (1, 2, 3, 4)
SEEDS = (15, 2026)
TIME_LIMIT_S = 120.0
# the fake runner stays alive long enough for a kill or a drop to land while it runs
SLOW_RUNNER = BENCHMARK_MODEL.replace("#!/bin/sh\n", "#!/bin/sh\nsleep 0.3\n", 1)


def _artifacts(tmp_path: Path) -> Callable[[Configuration, Path], dict[str, Any]]:
    def exporter(config: Configuration, _export_dir: Path) -> dict[str, Any]:
        path = tmp_path / "exports" / f"{config.model}-{config.resolution_text}.tflite"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f"fake tflite {config.model} {config.resolution_text}".encode() * 64)
        return {"path": str(path), "artifact": path.name}

    return exporter


def _outside_effvit(phone: AdbEmulator) -> list[str]:
    tmp = phone.host_path("/data/local/tmp")
    return sorted(p.name for p in tmp.iterdir() if p.name != "effvit")


@pytest.mark.slow
@pytest.mark.timeout(300)  # bounded even if a fault ever hung the harness (the run itself asserts < 120 s)
@pytest.mark.parametrize("seed", SEEDS)
def test_sweep_survives_drops_stalls_full_storage_and_killed_runners(
        adb_phone_factory: Callable[..., AdbEmulator], tmp_path: Path, seed: int) -> None:
    phone = adb_phone_factory("sm8150")  # no python3: the native runner from --runner-dir
    runners = tmp_path / "runners"
    runners.mkdir()
    (runners / "benchmark_model").write_text(SLOW_RUNNER)
    (runners / "benchmark_model").chmod(0o755)
    configs = [Configuration(m, r, "tflite", threads=t) for m in MODELS for r in RESOLUTIONS for t in THREADS]
    assert len(configs) >= 30
    spec = SweepSpec(name="chaos", configurations=tuple(interleave(configs)), runs=3, warmup=1)
    options = engine.RunOptions.from_sweep(spec, runner="native", runner_dir=runners)
    [dev] = open_devices([f"adb:{phone.serial}"], lock=True)
    plans = engine.plan_sweep([dev], spec, options)
    artifacts, _ = engine.export_artifacts(spec.configurations, tmp_path, exporter=_artifacts(tmp_path))
    store = ResultStore(tmp_path / "chaos.jsonl")

    phone.chaos = chaos = Chaos(seed=seed)
    started = time.monotonic()
    summary = engine.run_sweep(plans, artifacts, store, options)
    seconds = time.monotonic() - started
    phone.chaos = None

    records = list(store.records())
    repaired = Counter(f for r in records for f in r.extra.get("faults_survived", []))
    injected = sum(chaos.injected.values())
    disruptive = injected - chaos.injected["stall"]  # a stall only makes the harness wait
    print(f"\nchaos seed {seed}: {len(configs)} configurations in {seconds:.1f}s; faults injected {injected} "
          f"({dict(sorted(chaos.injected.items()))}); repaired by the harness {sum(repaired.values())} "
          f"({dict(sorted(repaired.items()))}); stalls waited out {chaos.injected['stall']}; "
          f"survived {sum(repaired.values()) + chaos.injected['stall']} of {injected}")

    assert summary.device_errors == {} and summary.failed == 0, [r.error for r in records if not r.ok]
    assert len(records) == len(configs) and all(r.ok for r in records)  # no error record, no duplicate
    assert sorted((r.model, r.resolution, r.threads) for r in records) == sorted(
        (c.model, c.resolution_text, c.threads) for c in configs)  # each configuration exactly once
    assert injected >= 10 and len(chaos.injected) >= 4, chaos.injected  # the plan really hit the sweep
    assert sum(repaired.values()) == disruptive  # every disruptive fault was noticed and repaired, once
    assert _outside_effvit(phone) == []
    assert seconds < TIME_LIMIT_S
    # what a fault left inside the folder (a shell killed mid-command) is removed by the next harness
    dev.unlock()
    [again] = open_devices([f"adb:{phone.serial}"], lock=True)
    assert not list(phone.host_path(f"{DEVICE_ROOT}/tmp").iterdir())
    assert not list(phone.host_path(f"{DEVICE_ROOT}/results").glob("*")) if phone.host_path(
        f"{DEVICE_ROOT}/results").exists() else True
    again.unlock()
