"""Export and measure at once on phones: the host converts the next artifacts while the devices measure.

A phone's CPU is not the host's, so converting a model on the host cannot disturb a measurement on the phone; the
sweep then takes about max(export, measure) instead of their sum. On `local` the two would share this machine's
cores, so `overlap_allowed` refuses any sweep with a local device and the caller exports everything first.

    if overlap_allowed(devices):
        summary, export_s = export_while_measuring(plans, export_dir, store, options)

Exports run in one background thread, in the order the first device will need them (its shuffled run order); a
worker that reaches a configuration whose artifact is not ready waits for it (`PendingArtifacts.get`). A failed
export is published as `ExportFailure` at once, so the worker writes its error record and goes on.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .devices import Device
from .engine import (
    Artifact,
    Checker,
    DevicePlan,
    Exporter,
    ExportFailure,
    Progress,
    RunOptions,
    SweepSummary,
    artifact_from_manifest,
    export_artifacts,
    library_checker,
    library_exporter,
    run_sweep,
)
from .store import ResultStore
from .sweep import Configuration


def overlap_allowed(devices: Sequence[Device]) -> bool:
    """Only when no device is this machine: exports and measurements never overlap on `local`."""
    return bool(devices) and all(d.kind != "local" for d in devices)


class PendingArtifacts(dict):  # type: ignore[type-arg]
    """An ArtifactMap whose `get` waits until the artifact's export has finished (or the exporter gave up)."""

    def __init__(self, keys: Sequence[tuple[Any, ...]]) -> None:
        super().__init__()
        self._ready = {k: threading.Event() for k in keys}

    def publish(self, key: tuple[Any, ...], value: Artifact | ExportFailure) -> None:
        self[key] = value
        if key in self._ready:
            self._ready[key].set()

    def close(self, why: str) -> None:
        """Release every waiter; what never arrived becomes an ExportFailure saying why."""
        for key, event in self._ready.items():
            if not event.is_set():
                self.publish(key, ExportFailure(why))

    def get(self, key: Any, default: Any = None) -> Any:
        event = self._ready.get(key)
        if event is not None:
            event.wait()
        return super().get(key, default)


def export_order(plans: Sequence[DevicePlan]) -> list[Configuration]:
    """Configurations in the order the first device runs them, then whatever only other devices run."""
    return list(dict.fromkeys(c for plan in plans for c in plan.configs))


def export_while_measuring(plans: Sequence[DevicePlan], export_dir: Path, store: ResultStore, options: RunOptions,
                           *, exporter: Exporter | None = None, checker: Checker | None = None,
                           progress: Progress | None = None, stop: threading.Event | None = None,
                           max_memory: int | None = None) -> tuple[SweepSummary, float]:
    """Measure on every device while the host exports; returns (summary, seconds spent exporting).

    `max_memory` is the exports' memory-guard limit, as in `engine.export_artifacts`.

    Raises:
        EffvitError: bad input found by the checker, before anything is exported or measured.
    """
    if exporter is None:
        exporter, checker = library_exporter, checker or library_checker
    if max_memory is not None:
        exporter = functools.partial(exporter, max_memory=max_memory)
        checker = functools.partial(checker, max_memory=max_memory) if checker is not None else None
    configs = export_order(plans)
    if checker is not None:  # bad input fails before the first conversion, as in export_artifacts
        for config in dict((c.artifact_key, c) for c in configs).values():
            checker(config, export_dir)
    pending = PendingArtifacts([c.artifact_key for c in configs])
    export_s = [0.0]

    def publishing(config: Configuration, folder: Path) -> dict[str, Any]:
        try:
            entry = exporter(config, folder)
            pending.publish(config.artifact_key, artifact_from_manifest(entry))
            return entry
        except Exception as exc:  # export_artifacts records it the same way; publish now so the worker goes on
            from .engine import _one_line

            pending.publish(config.artifact_key,
                            ExportFailure(f"export failed: {type(exc).__name__}: {_one_line(str(exc))}"))
            raise

    def export_all() -> None:
        started = time.perf_counter()
        try:
            done, _ = export_artifacts(configs, export_dir, exporter=publishing, progress=progress)
            for key, value in done.items():
                if not pending._ready[key].is_set():
                    pending.publish(key, value)
        finally:
            export_s[0] = time.perf_counter() - started
            pending.close("export stopped before this artifact was made")

    thread = threading.Thread(target=export_all, name="bench-export", daemon=True)
    thread.start()
    summary = run_sweep(plans, pending, store, options, progress=progress, stop=stop)
    thread.join()
    return summary, export_s[0]
