"""Exports overlap measurements on phones (never on `local`); a failed export still gives its error record."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from effvit_deploy.bench import engine, pipeline
from effvit_deploy.bench.devices import LocalDevice
from effvit_deploy.bench.store import ResultStore
from effvit_deploy.bench.sweep import Configuration
from tests.test_engine import FakeDevice, make_spec

CFGS = [Configuration(m, (r, r), "tflite") for r in (224, 256) for m in ("efficientvit-b0", "efficientnet-b0")]


def _exporter(tmp_path: Path, log: list[tuple[str, float]], fail: str | None = None) -> Any:
    def export(config: Configuration, folder: Path) -> dict[str, Any]:
        time.sleep(0.3)  # a conversion
        if config.model == fail:
            raise RuntimeError("converter crashed")
        path = tmp_path / f"{config.model}-{config.resolution_text}.tflite"
        path.write_bytes(config.label.encode())
        log.append((config.label, time.monotonic()))
        return {"path": str(path), "artifact": path.name}

    return export


def test_phones_measure_while_the_host_exports(tmp_path: Path) -> None:
    dev = FakeDevice(run_s=0.3)
    spec = make_spec(CFGS)
    options = engine.RunOptions.from_sweep(spec)
    plans = engine.plan_sweep([dev], spec, options)
    exports: list[tuple[str, float]] = []
    summary, export_s = pipeline.export_while_measuring(plans, tmp_path, ResultStore(tmp_path / "r.jsonl"),
                                                        options, exporter=_exporter(tmp_path, exports))
    assert (summary.measured, summary.failed) == (4, 0) and export_s >= 1.2
    assert dev.run_times[0] < exports[-1][1]  # the first measurement ran before the last export was done
    assert [e[0].rsplit(" t", 1)[0] for e in exports] == [c.label.rsplit(" t", 1)[0] for c in plans[0].configs]
    # each measurement started only after its own artifact existed
    done_at = dict(exports)
    for config, started in zip(plans[0].configs, dev.run_times, strict=True):
        assert started >= done_at[config.label]


def test_failed_export_is_an_error_record_and_the_sweep_goes_on(tmp_path: Path) -> None:
    dev = FakeDevice()
    spec = make_spec(CFGS)
    options = engine.RunOptions.from_sweep(spec)
    plans = engine.plan_sweep([dev], spec, options)
    summary, _ = pipeline.export_while_measuring(plans, tmp_path, ResultStore(tmp_path / "r.jsonl"), options,
                                                 exporter=_exporter(tmp_path, [], fail="efficientnet-b0"))
    assert (summary.measured, summary.failed) == (2, 2)
    errors = [r.error for r in summary.records if not r.ok]
    assert errors == ["export failed: RuntimeError: converter crashed"] * 2


def test_no_overlap_on_local() -> None:
    assert not pipeline.overlap_allowed([LocalDevice()])
    assert not pipeline.overlap_allowed([FakeDevice(), LocalDevice()])
    assert pipeline.overlap_allowed([FakeDevice()]) and not pipeline.overlap_allowed([])
