"""One sweep, end to end: plan -> export -> measure -> report. The one entry the CLI, the demo and the harness
benchmark share.

    result = sweep(devices, spec, options, export_dir=Path("export"), results=Path("bench/results/quick.jsonl"))
    print(result.table)                       # the Markdown latency table of everything in the results file
    result.summary.measured, result.export_failed, result.export_seconds

Exports run before any measurement on `local` (a conversion never competes with a measurement on this machine); on
phones only, the host exports the next artifacts while the devices measure (`pipeline.py`). Progress events go to
`progress` (kind "export" for the export phase, the engine's events for the devices); `on_plan` sees the device plans
before the first export, so a front end can print them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from . import engine, pipeline
from .devices import Device
from .records import BenchRecord
from .store import ResultStore
from .sweep import SweepSpec


@dataclass
class SweepResult:
    plans: list[engine.DevicePlan]
    summary: engine.SweepSummary
    export_seconds: float
    export_failed: bool  # some artifact could not be exported (its configurations are error records)
    wall_seconds: float
    records: list[BenchRecord]  # everything in the results file after the sweep (earlier runs included)

    @property
    def table(self) -> str:
        from .report import render  # matplotlib-free for Markdown

        text = render(self.records, "md")
        return text if text.endswith("\n") else text + "\n"


def sweep(devices: Sequence[Device], spec: SweepSpec, options: engine.RunOptions, *, export_dir: Path,
          results: Path, progress: engine.Progress | None = None,
          on_plan: Callable[[list[engine.DevicePlan]], None] | None = None) -> SweepResult:
    """Plan, export what is missing, measure every configuration on every device; see the module docstring.

    Raises:
        EffvitError: bad input found while planning or checking the export requests (nothing measured).
    """
    started = time.perf_counter()
    plans = engine.plan_sweep(devices, spec, options)
    if on_plan is not None:
        on_plan(plans)
    store = ResultStore(results)
    if pipeline.overlap_allowed(devices):  # phones only: the host exports the next ones while they measure
        summary, export_s = pipeline.export_while_measuring(plans, export_dir, store, options, progress=progress,
                                                            max_memory=options.max_memory)
        export_failed = any((r.error or "").startswith("export failed") for r in summary.records)
    else:
        artifacts, export_s = engine.export_artifacts(spec.configurations, export_dir, progress=progress,
                                                      max_memory=options.max_memory)
        export_failed = any(isinstance(a, engine.ExportFailure) for a in artifacts.values())
        summary = engine.run_sweep(plans, artifacts, store, options, progress=progress)
    return SweepResult(plans, summary, export_s, export_failed, time.perf_counter() - started,
                       list(ResultStore(results).records()))
