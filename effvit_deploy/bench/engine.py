"""Run a sweep: export what is missing, then measure every configuration on every device.

    plan = plan_sweep(devices, spec, options)               # runners + masks per device; fails fast on bad input
    artifacts = export_artifacts(spec.configurations, export_dir)
    summary = run_sweep(plan, artifacts, ResultStore(path), progress=print)

Method, per device (one worker thread each; devices run in parallel):
- configurations in the sweep's interleaved order (see sweep.py); a configuration whose record key already has a
  successful record in the store is skipped (resume) unless `rerun`;
- before each measurement: cool-down (`cooldown_s`, not before the first), then temperatures and clocks; the runner
  process (warm-up + timed runs); temperatures and clocks again; `throttled` from `stats.detect_throttle`;
- one record per measurement, appended and fsync'd at once (`store.py`); a failed run (non-zero exit, unparsable
  output, timeout, failed export) is a record with `error` and the stderr tail, and the sweep goes on.
Exports happen before any measurement, so converting models never competes with a measurement on this machine.
(Phones-only sweeps may overlap the two instead: pipeline.py.) The order is the sweep's, shuffled from
`RunOptions.seed` (order.py); a record whose timed runs were unstable (quality.py) is measured once more after a
rest, and the second record is kept (flagged when still unstable). Every record gets its trust fields: stability,
peak memory, energy (or why none), stop rule and order seed.

Faults the harness can repair are repaired and the configuration in flight is measured again (at most
MAX_ATTEMPTS tries; the record lists them in `extra["faults_survived"]`): a disconnect (active reconnect, bounded in
time), storage full (old model files removed from the device) and a runner killed by a signal. If the device stays
away, or a device operation fails for a reason a retry cannot fix, the configuration gets an error record, that
device's worker stops and `SweepSummary.device_errors` says why (the CLI prints it and exits 2). Records written so
far are kept, and a re-run resumes. Before each measurement the results file is re-read from where it was last
read, so a configuration another process finished meanwhile is skipped; `run_sweep` holds every device's lock
(device_lock.py) while it measures.
"""

from __future__ import annotations

import datetime as _dt
import functools
import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import DeviceError, EffvitError, InvalidInputError, MissingFileError
from ..fileio import sha256_file
from ..runners import folder as runner_folder
from . import device_parity, emulation
from .adb import DeviceDisconnected, DeviceTimeout
from .app_result import parse_app_result
from .app_runner import RUNNER_NAMES as APP_RUNNER_NAMES
from .app_runner import AppPackage, AppSession
from .devices import AdbPhone, Device, RunOutput
from .native import NativeRunner, find_binary, native_runner, shared_libraries
from .order import shuffled
from .parsers import ParsedRun, RunnerOutputError, parse_python_runner
from .python_runner import EXIT_MISSING_RUNTIME, RUNNER_NAMES
from .quality import energy_fields, finish_record, remeasure_wait, stop_kwargs
from .records import BenchRecord, record_key
from .stats import detect_throttle
from .store import ResultStore
from .sweep import Configuration, SweepSpec

log = logging.getLogger(__name__)

RUNNER_MODES = ("auto", "python", "native", "app")
MAX_ATTEMPTS = 3  # per configuration: the first try plus two after repaired faults (reconnect, space, killed runner)
_KILLED = (137, -9, 128 + 15, -15)  # SIGKILL / SIGTERM as seen through a shell (128+n) or by Popen (-n)
_STORAGE_FULL = "No space left"
STDERR_TAIL_CHARS = 2000
DEFAULT_TIMEOUT_S = 3600.0
# Manifest fields copied into every record (the report needs params/MACs/size; the rest traces the artifact).
MANIFEST_FIELDS = ("artifact", "params", "macs", "size_bytes", "optimize", "nhwc", "optimizations", "parity",
                   "export_seconds", "cache_key", "created_at", "weights", "checkpoint_sha256", "versions",
                   "verification")


# --- artifacts -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Artifact:
    """An exported model file as the bench sees it: path, hash and the manifest fields it records."""

    path: Path
    sha256: str
    manifest: dict[str, Any]

    def device_name(self, config: Configuration) -> str:
        """File name on the device (after the sha256 prefix): readable, unique per artifact."""
        return f"{config.model}-{config.resolution_text}-{self.path.name}"


@dataclass(frozen=True)
class ExportFailure:
    """Why an artifact could not be produced (every configuration using it gets an error record)."""

    error: str


ArtifactMap = dict[tuple[Any, ...], "Artifact | ExportFailure"]
Exporter = Callable[[Configuration, Path], dict[str, Any]]
Checker = Callable[[Configuration, Path], None]


def export_options(config: Configuration, export_dir: Path, *, max_memory: int | None = None) -> Any:
    """The `ExportOptions` of a sweep configuration's artifact."""
    from ..export import ExportOptions

    return ExportOptions(target=config.target, resolution=config.resolution, precision=config.precision,
                         out_dir=export_dir, optimize=config.optimize, nhwc=config.nhwc, max_memory=max_memory)


def library_exporter(config: Configuration, export_dir: Path, *, max_memory: int | None = None) -> dict[str, Any]:
    """Export through `effvit_deploy.export.export` (cached there: an identical artifact is not converted again)."""
    from ..export import export  # imported lazily: it pulls in torch and the converters

    return export(config.model, export_options(config, export_dir, max_memory=max_memory))


def library_checker(config: Configuration, export_dir: Path, *, max_memory: int | None = None) -> None:
    """Validate an export request without converting (unknown model, missing runtime package, unwritable folder,
    an estimated peak memory above `max_memory` or this machine's available memory)."""
    from ..export import check_request

    check_request(config.model, export_options(config, export_dir, max_memory=max_memory))


def check_exports(configs: Sequence[Configuration], export_dir: Path, *, max_memory: int | None = None) -> None:
    """Validate every distinct export request (bad input, missing runtime, memory guard) without converting.

    Raises:
        EffvitError: the first bad request, as one line.
    """
    checker: Checker = library_checker
    if max_memory is not None:
        checker = functools.partial(library_checker, max_memory=max_memory)
    for config in {c.artifact_key: c for c in configs}.values():
        checker(config, export_dir)


def artifact_from_manifest(entry: dict[str, Any], folder: Path | None = None) -> Artifact:
    """An Artifact from an export manifest entry (`path` when present, else `folder/artifact`); sha256 checked.

    Raises:
        MissingFileError: the artifact file is missing. InvalidInputError: its sha256 differs from the manifest's.
    """
    path = Path(entry["path"]) if entry.get("path") else Path(folder or ".") / entry["artifact"]
    if not path.is_file():
        raise MissingFileError(f"artifact {path} named by the manifest does not exist; re-export it")
    digest = sha256_file(path)
    if entry.get("sha256") and entry["sha256"] != digest:
        raise InvalidInputError(f"artifact {path} does not match its manifest sha256; re-export it (--force)")
    return Artifact(path, digest, {k: entry[k] for k in MANIFEST_FIELDS if k in entry})


def export_artifacts(configs: Sequence[Configuration], export_dir: Path, *, exporter: Exporter | None = None,
                     checker: Checker | None = None, progress: Callable[[ProgressEvent], None] | None = None,
                     max_memory: int | None = None) -> tuple[ArtifactMap, float]:
    """Export every distinct artifact the configurations need (one call per artifact, cached by the exporter).

    Every request is checked first (`checker`), so bad input fails before the first conversion. Then a conversion
    or verification failure becomes an `ExportFailure` (recorded for each configuration using it) and the sweep
    goes on.

    Returns:
        ({artifact_key: Artifact | ExportFailure}, seconds spent exporting).
    Raises:
        EffvitError: bad input found by the checker (unknown model, runtime package missing, unwritable folder).
    """
    if exporter is None:
        exporter, checker = library_exporter, checker or library_checker
        if max_memory is not None:  # the override reaches the library's own memory guard
            exporter = functools.partial(exporter, max_memory=max_memory)
            checker = functools.partial(checker, max_memory=max_memory)
    first: dict[tuple[Any, ...], Configuration] = {}
    for c in configs:
        first.setdefault(c.artifact_key, c)
    if checker is not None:
        for config in first.values():
            checker(config, export_dir)
    out: ArtifactMap = {}
    started = time.perf_counter()
    for i, (key, config) in enumerate(first.items()):
        label = config.label.rsplit(" t", 1)[0]
        if progress is not None:
            progress(ProgressEvent("export", None, label, i, len(first)))
        try:
            out[key] = artifact_from_manifest(exporter(config, export_dir))
        except Exception as exc:  # noqa: BLE001 - a converter/verification failure is recorded, the sweep goes on
            log.warning("export of %s failed: %s", label, exc)
            out[key] = ExportFailure(f"export failed: {type(exc).__name__}: {_one_line(str(exc))}")
    if progress is not None:
        progress(ProgressEvent("export", None, "done", len(first), len(first)))
    return out, time.perf_counter() - started


# --- planning ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunOptions:
    """How to measure (the sweep's runs/warmup/cooldown/cores plus runner choice)."""

    runs: int
    warmup: int
    cooldown_s: float = 0.0
    cores: str = "big"
    runner: str = "auto"  # auto | python | native | app
    runner_dir: Path | None = None
    apk: Path | None = None  # --runner app/auto: the APK (default: the one `make android-app` builds)
    rerun: bool = False
    timeout_s: float = DEFAULT_TIMEOUT_S
    max_memory: int | None = None  # bytes a measurement may use; None: the device's MemAvailable
    min_seconds: float = 0.0  # stop rule with runs as min_runs (every runner loops until both are met)
    max_seconds: float | None = None
    seed: int | None = None  # run-order shuffle (order.py); None: the sweep's interleaved order

    @classmethod
    def from_sweep(cls, spec: SweepSpec, **kwargs: Any) -> RunOptions:
        kwargs = {"min_seconds": spec.min_seconds, "max_seconds": spec.max_seconds, "seed": spec.seed, **kwargs}
        return cls(runs=spec.runs, warmup=spec.warmup, cooldown_s=spec.cooldown_s, cores=spec.cores, **kwargs)


@dataclass(frozen=True)
class RunnerChoice:
    """The runner a device uses for one target."""

    kind: str  # record name: "python-litert", "native-benchmark_model", "app-litert", ...
    native: NativeRunner | None = None
    binary: Path | None = None  # local path of the native binary
    app: AppSession | None = None  # the on-device app (android_app/) on this device
    note: str = ""  # why --runner auto chose it (printed with the plan)


@dataclass
class DevicePlan:
    """One device's worker plan: facts, runner per target, mask per thread count, configurations in order."""

    device: Device
    facts: dict[str, Any]
    runners: dict[str, RunnerChoice]
    masks: dict[int, tuple[str | None, str]]
    configs: list[Configuration]
    runner_dir: Path | None = None  # this device's native runner folder (--runner-dir, or its subfolder for the ABI)


def choose_runner(device: Device, target: str, mode: str, runner_dir: Path | None,
                  app: AppSession | None = None) -> RunnerChoice:
    """Python runner where the device's Python has the runtime (auto/python), else the native binary (auto/native),
    else the on-device app (auto/app; `app` is None where there is none: not an adb device, or no APK).

    Raises:
        DeviceError: no usable runner; the message names the runtime package, the binary and the APK expected.
        MissingFileError: --runner native and the binary is not in --runner-dir.
    """
    if mode not in RUNNER_MODES:
        raise InvalidInputError(f"unknown runner {mode!r}; choose one of {', '.join(RUNNER_MODES)}")
    if mode == "app":
        if app is None:
            raise DeviceError(f"--runner app needs an adb device; {device.spec} is not one")
        return RunnerChoice(APP_RUNNER_NAMES[target], app=app, note="--runner app")
    native = native_runner(target)
    if mode in ("auto", "python"):
        info = device.python_info()
        if info.runtimes.get(target):
            return RunnerChoice(RUNNER_NAMES[target])
        if mode == "python":
            what = f"python3 there cannot import the {target} runtime" if info.version else "it has no python3"
            raise DeviceError(f"--runner python on {device.spec}: {what} ({_RUNTIME_PACKAGES[target]}); "
                              f"install it there or use --runner native --runner-dir DIR with {native.binary}")
    if mode == "auto" and (runner_dir is None or not (Path(runner_dir) / native.binary).is_file()):
        if app is not None and app.package.may_have(target):
            return RunnerChoice(APP_RUNNER_NAMES[target], app=app, note="auto: no python runtime or native binary")
        info = device.python_info()
        python = (f"python3 there cannot import {_RUNTIME_PACKAGES[target]}" if info.version
                  else "it has no python3")
        expected = (f"--runner-dir has no {native.binary} (expected {Path(runner_dir) / native.binary})"
                    if runner_dir is not None else f"no --runner-dir with {native.binary} was given")
        apk = ("no APK for --runner app" if app is None else
               f"the APK {app.package.path.name} was built without {target} (see android_app/README.md)")
        raise DeviceError(f"no runner for {target} on {device.spec}: {python}, {expected}, and {apk}")
    note = "auto: no python runtime" if mode == "auto" else ""
    return RunnerChoice(native.kind, native, find_binary(runner_dir, target), note=note)


_RUNTIME_PACKAGES = {"tflite": "ai-edge-litert", "onnx": "onnxruntime", "executorch": "executorch"}


def plan_device(device: Device, spec: SweepSpec, options: RunOptions) -> DevicePlan:
    """Facts, runners and masks for one device; raises bad-input errors before anything is measured."""
    facts = device.facts()
    targets = list(dict.fromkeys(c.target for c in spec.configurations))
    app = _app_session(device, options)
    runner_dir = runner_folder.for_abi(options.runner_dir, facts.get("abi"))
    runners = {t: choose_runner(device, t, options.runner, runner_dir, app) for t in targets}
    if any(c.native is not None for c in runners.values()):  # before anything is pushed
        runner_folder.check_abi(runner_dir, facts.get("abi"), device.spec, can_emulate=device.kind == "local")
        if device.kind == "local":  # an aarch64 folder here runs under qemu: another "device", flagged emulated
            facts = emulation.local_facts(facts, runner_dir)
    threads = sorted({c.threads for c in spec.configurations})
    masks = {n: device.mask_for(options.cores, n) for n in threads}
    return DevicePlan(device, facts, runners, masks, shuffled(spec.configurations, options.seed), runner_dir)


def _app_session(device: Device, options: RunOptions) -> AppSession | None:
    """The app on an adb device for --runner app (the APK must exist) or auto (when it exists), else None."""
    if options.runner not in ("app", "auto") or not isinstance(device, AdbPhone):
        return None
    try:
        package = AppPackage.load(options.apk)
    except MissingFileError:
        if options.runner == "app" or options.apk is not None:
            raise
        return None
    return AppSession(device.adb, package)


def plan_sweep(devices: Sequence[Device], spec: SweepSpec, options: RunOptions) -> list[DevicePlan]:
    """Plan every device (in parallel: each may cost a few adb round trips). Raises the first device's error."""
    if not spec.configurations:
        raise InvalidInputError(f"sweep {spec.name} has no configurations")
    results: list[DevicePlan | BaseException | None] = [None] * len(devices)

    def work(i: int) -> None:
        try:
            results[i] = plan_device(devices[i], spec, options)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            results[i] = exc

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(len(devices))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in results:
        if isinstance(r, BaseException):
            raise r
    return [r for r in results if isinstance(r, DevicePlan)]


# --- progress ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProgressEvent:
    """What the engine is doing. kind: export | start | done | skip | device-error | device-done."""

    kind: str
    device: str | None  # device spec; None for exports
    label: str  # configuration label or a message
    index: int  # configurations finished (or skipped) on this device before this event
    total: int
    record: BenchRecord | None = None


Progress = Callable[[ProgressEvent], None]


# --- running -------------------------------------------------------------------------------------------------------


@dataclass
class SweepSummary:
    """What a sweep did."""

    measured: int = 0
    failed: int = 0
    skipped: int = 0
    records: list[BenchRecord] = field(default_factory=list)
    device_errors: dict[str, str] = field(default_factory=dict)  # device spec -> why its worker stopped
    seconds: float = 0.0


class _Stop(Exception):
    """Internal: the device cannot go on (disconnected for good, storage full)."""


def run_sweep(plans: Sequence[DevicePlan], artifacts: ArtifactMap, store: ResultStore, options: RunOptions, *,
              progress: Progress | None = None, stop: threading.Event | None = None) -> SweepSummary:
    """Measure every planned configuration on every device, one worker thread per device, all in parallel.

    Returns when every worker has finished (or `stop` was set and the running measurements ended).
    """
    summary = SweepSummary()
    lock = threading.Lock()
    stop = stop or threading.Event()
    taken = _lock_devices(plans)  # one harness per device; the CLI already holds them (taken before exporting)
    try:
        done = _DoneKeys(store, enabled=not options.rerun)
        return _run_workers(plans, artifacts, store, options, done, summary, lock, progress, stop)
    finally:
        for device in taken:
            device.unlock()


def _lock_devices(plans: Sequence[DevicePlan]) -> list[Device]:
    """Lock every planned device; returns those locked here (to release afterwards). All or none."""
    taken: list[Device] = []
    try:
        for plan in plans:
            if plan.device.lock():
                taken.append(plan.device)
    except BaseException:
        for device in taken:
            device.unlock()
        raise
    return taken


class _DoneKeys:
    """Keys already measured successfully: the results file at the start, plus what any process appended since."""

    def __init__(self, store: ResultStore, *, enabled: bool) -> None:
        self.store, self.enabled = store, enabled
        self.keys: set[str] = set()
        self._offset = 0
        self._lock = threading.Lock()
        self.refresh()

    def refresh(self) -> None:
        if self.enabled:
            with self._lock:
                new, self._offset = self.store.done_keys_after(self._offset)
                self.keys |= new

    def __contains__(self, key: object) -> bool:
        return self.enabled and key in self.keys


def _run_workers(plans: Sequence[DevicePlan], artifacts: ArtifactMap, store: ResultStore, options: RunOptions,
                 done: _DoneKeys, summary: SweepSummary, lock: threading.Lock, progress: Progress | None,
                 stop: threading.Event) -> SweepSummary:
    started = time.perf_counter()
    workers = [threading.Thread(target=_Worker(plan, artifacts, store, options, done, summary, lock, progress,
                                               stop).run, name=f"bench-{plan.device.spec}", daemon=True)
               for plan in plans]
    for w in workers:
        w.start()
    try:
        for w in workers:
            while w.is_alive():
                w.join(0.2)  # short joins keep Ctrl-C responsive in the main thread
    except KeyboardInterrupt:
        stop.set()
        raise
    summary.seconds = time.perf_counter() - started
    return summary


class _Worker:
    """Runs one device's configurations in order."""

    def __init__(self, plan: DevicePlan, artifacts: ArtifactMap, store: ResultStore, options: RunOptions,
                 done: _DoneKeys, summary: SweepSummary, lock: threading.Lock, progress: Progress | None,
                 stop: threading.Event) -> None:
        self.plan, self.artifacts, self.store, self.options = plan, artifacts, store, options
        self.done, self.summary, self.lock, self.stop = done, summary, lock, stop
        self.progress = progress or (lambda _e: None)
        self.device = plan.device

    def run(self) -> None:
        total = len(self.plan.configs)
        measured_before = False
        try:
            for i, config in enumerate(self.plan.configs):
                if self.stop.is_set():
                    break
                key = self._key(config)
                if key is not None:
                    self.done.refresh()  # another sweep writing this file may have measured it meanwhile
                if key is not None and key in self.done:
                    with self.lock:
                        self.summary.skipped += 1
                    self.progress(ProgressEvent("skip", self.device.spec, config.label, i, total))
                    continue
                if measured_before and self.options.cooldown_s > 0 and self.stop.wait(self.options.cooldown_s):
                    break
                self.progress(ProgressEvent("start", self.device.spec, config.label, i, total))
                record = self._measure(config)
                measured_before = True
                if (wait := remeasure_wait(record, self.options.cooldown_s)) is not None and \
                        not self.stop.wait(wait):  # unstable: once more after a cool-down, kept flagged if still so
                    record = self._measure(config, first=record)
                try:
                    self._keep(record)
                except OSError as exc:  # the results file became unwritable mid-sweep (checked before it began)
                    raise _Stop(f"cannot append to {self.store.path} ({exc.strerror or exc}); this measurement "
                                "was not kept") from None
                self.progress(ProgressEvent("done", self.device.spec, config.label, i + 1, total, record))
                if record.extra.get("fatal"):
                    raise _Stop(record.error or "device error")
        except _Stop as exc:
            with self.lock:
                self.summary.device_errors[self.device.spec] = str(exc)
            self.progress(ProgressEvent("device-error", self.device.spec, str(exc), 0, total))

        except Exception as exc:  # noqa: BLE001 - a bug or an unexpected device failure must not kill other workers
            log.exception("worker for %s failed", self.device.spec)
            with self.lock:
                self.summary.device_errors[self.device.spec] = f"{type(exc).__name__}: {_one_line(str(exc))}"
            self.progress(ProgressEvent("device-error", self.device.spec, str(exc), 0, total))
        self.progress(ProgressEvent("device-done", self.device.spec, "", total, total))

    # --- one configuration --------------------------------------------------------------------------------------
    def _key(self, config: Configuration) -> str | None:
        artifact = self.artifacts.get(config.artifact_key)
        if not isinstance(artifact, Artifact):
            return None
        mask, _ = self._mask(config)
        return record_key(device_serial=self.device.serial, device_model=_model(self.plan.facts),
                          artifact_sha256=artifact.sha256, model=config.model, resolution=config.resolution_text,
                          target=config.target, precision=config.precision, threads=config.threads, mask=mask,
                          runner=self.plan.runners[config.target].kind, runs=self.options.runs,
                          warmup=self.options.warmup, min_seconds=self.options.min_seconds,
                          max_seconds=self.options.max_seconds)

    def _mask(self, config: Configuration) -> tuple[str | None, str]:
        if self.plan.runners[config.target].app is not None:
            return None, "not pinned: Android schedules the app (no taskset for an activity)"
        return self.plan.masks[config.threads]

    def _base_record(self, config: Configuration, artifact: Artifact | ExportFailure | None) -> BenchRecord:
        mask, basis = self._mask(config)
        choice = self.plan.runners[config.target]
        is_artifact = isinstance(artifact, Artifact)
        extra: dict[str, Any] = {"mask_basis": basis, "optimize": config.optimize, "nhwc": config.nhwc}
        if choice.native is not None:
            extra["runner_warmup"] = choice.native.effective_warmup(self.options.warmup)
        opts = self.options
        applied_by = ("app loop (extras min_seconds/max_seconds)" if choice.app is not None
                      else choice.native.stop_rule_basis() if choice.native is not None else "runner loop")
        return BenchRecord(
            device_serial=self.device.serial, device=self.plan.facts, model=config.model,
            resolution=config.resolution_text, target=config.target, precision=config.precision,
            artifact_sha256=artifact.sha256 if is_artifact else "", runner=choice.kind, threads=config.threads,
            runs=self.options.runs, warmup=self.options.warmup, mask=mask,
            manifest=dict(artifact.manifest) if is_artifact else {},
            versions={"effvit_deploy": __version__}, extra=extra,
            # part of the record key (a different rule is measured again); applied_by: who counted the runs
            stop_rule={"min_runs": opts.runs, "min_seconds": opts.min_seconds, "max_seconds": opts.max_seconds,
                       "applied_by": applied_by})

    def _measure(self, config: Configuration, first: BenchRecord | None = None) -> BenchRecord:
        """One configuration, attempted again after a fault the harness can repair (see `_attempt`); `first`: the
        unstable record this one measures again (see `quality.finish_record`)."""
        artifact = self.artifacts.get(config.artifact_key)
        rec = self._base_record(config, artifact)
        rec.order_seed = self.options.seed
        rec.started_at = _now()
        if not isinstance(artifact, Artifact):
            rec.error = artifact.error if isinstance(artifact, ExportFailure) else "no artifact was exported"
            rec.finished_at = _now()
            return rec
        survived: list[str] = []
        for attempt in range(1, MAX_ATTEMPTS + 1):
            if attempt > 1:  # a fresh record: nothing of the faulted attempt may leak into the measurement
                rec = self._base_record(config, artifact)
                rec.started_at = _now()
            fault = self._attempt(rec, config, artifact, last=attempt == MAX_ATTEMPTS)
            if fault is None:
                break
            survived.append(fault)
            log.info("%s: %s during %s; measuring it again", self.device.spec, fault, config.label)
        if survived:
            rec.extra["faults_survived"] = survived  # the record is from the last, clean attempt
        rec.finished_at = _now()
        finish_record(rec, first)
        return rec

    def _attempt(self, rec: BenchRecord, config: Configuration, artifact: Artifact, *, last: bool) -> str | None:
        """Measure into `rec`; return the fault repaired when the configuration should be measured again.

        Repaired: a disconnect (active reconnect), storage full (old model files removed) and a runner killed by a
        signal (Android's low-memory killer, a crash of the shell around it). Not repaired: a timeout (the device is
        alive but too slow) and errors the next attempt would repeat. On the last attempt nothing is repaired.
        """
        try:
            self._check_memory(config, artifact)
            self._measure_into(rec, config, artifact)
        except DeviceDisconnected as exc:
            rec.error = _one_line(str(exc))
            rec.extra["disconnected"] = True
            try:
                self.device.reconnect()
            except EffvitError as again:
                rec.extra["fatal"] = True
                rec.error = f"{rec.error} (reconnect failed: {_one_line(str(again))})"
                return None
            return None if last else "disconnect"
        except DeviceTimeout as exc:
            rec.error = _one_line(str(exc))
        except DeviceError as exc:  # storage full, device went into a bad state: retrying as is will not help
            rec.error = _one_line(str(exc))
            if _STORAGE_FULL in str(exc) and not last:
                try:
                    self.device.free_space([self.device.artifact_path(artifact.sha256,
                                                                      artifact.device_name(config))])
                    return "storage full"
                except EffvitError as again:
                    rec.error = f"{rec.error} (freeing space failed: {_one_line(str(again))})"
            rec.extra["fatal"] = True
        except EffvitError as exc:
            rec.error = _one_line(str(exc))
        if not last and rec.extra.get("runner_exit") in _KILLED:
            return "runner killed"
        return None

    def _check_memory(self, config: Configuration, artifact: Artifact) -> None:
        """Refuse before pushing when the runtime's estimated peak exceeds the device's MemAvailable.

        Phones only: on this machine the export's own guard already checked a larger need (the export verifies
        the artifact in the same runtime).
        """
        from .. import memory_guard

        if self.device.kind != "adb":
            return
        need = memory_guard.runtime_estimate(config.model, config.resolution, config.target,
                                             artifact.path.stat().st_size)
        if need is None:
            return
        limit = self.options.max_memory
        what = "--max-memory"
        if limit is None:
            limit, what = self.device.mem_available(), "MemAvailable"
        if limit is not None and need > limit:
            raise InvalidInputError(f"needs ~{memory_guard.human(need)} to run (estimate) but {self.device.spec} "
                                    f"has {memory_guard.human(limit)} ({what}); use a smaller resolution, free memory "
                                    "on the device, or raise --max-memory")

    def _measure_into(self, rec: BenchRecord, config: Configuration, artifact: Artifact) -> None:
        dev, opts = self.device, self.options
        choice = self.plan.runners[config.target]
        device_path = dev.prepare(artifact.path, artifact.sha256, artifact.device_name(config))
        if choice.app is not None:
            choice.app.ensure_installed()
            rec.versions["effvit-bench-apk"] = "sha256:" + choice.app.package.sha256[:16]
        elif choice.native is not None:
            assert choice.binary is not None
            binary, libdir = dev.prepare_native(choice.binary, shared_libraries(self.plan.runner_dir))
            rec.versions[choice.native.binary] = "sha256:" + sha256_file(choice.binary)[:16]
            _runner_versions(rec, self.plan.runner_dir, config.target)
        else:
            dev.prepare_python_runner()
        emulation.mark(rec, emulation.device_how(self.plan.facts))
        staged = device_parity.stage(dev, artifact.path, artifact.manifest)
        rec.thermal_before, rec.freqs_before = dev.thermal(), dev.freqs()
        if choice.app is not None:
            cpus = dev.cpus()
            out = choice.app.run(device_path, config.target, threads=config.threads, runs=opts.runs,
                                 warmup=opts.warmup, timeout=opts.timeout_s, power_cpu=min(cpus) if cpus else None,
                                 **stop_kwargs(opts.min_seconds, opts.max_seconds))
        elif choice.native is not None:
            out = dev.run_native(choice.native, binary, device_path, threads=config.threads, runs=opts.runs,
                                 warmup=opts.warmup, mask=rec.mask, library_dir=libdir, timeout=opts.timeout_s,
                                 **stop_kwargs(opts.min_seconds, opts.max_seconds))
        else:  # measured on the verification input, so the same process returns the output to check
            out = dev.run_python_runner(device_path, config.target, threads=config.threads, runs=opts.runs,
                                        warmup=opts.warmup, mask=rec.mask, timeout=opts.timeout_s,
                                        input_path=staged.device_input
                                        if isinstance(staged, device_parity.Staged) else None,
                                        **stop_kwargs(opts.min_seconds, opts.max_seconds))
        rec.thermal_after, rec.freqs_after = dev.thermal(), dev.freqs()
        rec.throttled = detect_throttle(rec.freqs_before, rec.freqs_after, rec.thermal_before, rec.thermal_after)
        rec.extra["process_s"] = round(out.seconds, 4)
        output = _fill_result(rec, choice, out, opts.warmup)
        rec.energy = energy_fields(out, rec)
        if not rec.ok:
            return
        if not isinstance(staged, device_parity.Staged):
            rec.device_parity = staged  # unchecked, with the reason
        elif choice.app is not None:
            rec.device_parity = device_parity.check_app(
                choice.app, staged, device_artifact=device_path, target=config.target, threads=config.threads,
                timeout=opts.timeout_s, precision=config.precision, runner=choice.kind)
        elif choice.native is None:
            rec.device_parity = device_parity.from_values(staged, output, config.precision, choice.kind)
        else:
            rec.device_parity = device_parity.check_native(
                dev, staged, choice.native, binary=binary, device_artifact=device_path, library_dir=libdir,
                threads=config.threads, mask=rec.mask, timeout=opts.timeout_s, precision=config.precision)

    def _keep(self, record: BenchRecord) -> None:
        self.store.append(record)
        with self.lock:
            self.summary.records.append(record)
            if record.ok:
                self.summary.measured += 1
            else:
                self.summary.failed += 1


def _signal_hint(returncode: int) -> str:
    """Name the signal that killed a runner: -N when this process spawned it, 128+N through a shell (adb, `sh -c`)."""
    number = -returncode if returncode < 0 else returncode - 128 if 128 < returncode < 128 + 65 else 0
    try:
        return f" (killed by {signal.Signals(number).name})" if number else ""
    except ValueError:
        return ""


def _fill_result(rec: BenchRecord, choice: RunnerChoice, out: RunOutput, warmup: int) -> list[float] | None:
    """Parse a runner's output into the record, or turn the failure into the record's error.

    Returns the output values the runner reported (Python runners asked for them), else None.
    """
    if choice.app is not None and out.returncode != 0:  # stderr: what went wrong, then the logcat tail
        rec.error = _last_line(out.stderr.split("\n--- logcat", 1)[0]) or "app run failed"
        rec.stderr_tail = _tail(out.stderr)
        return None
    if out.returncode != 0:
        rec.extra["runner_exit"] = out.returncode
        what = "python runner" if choice.native is None else choice.native.binary
        hint = " (runtime not installed there)" if choice.native is None and out.returncode == EXIT_MISSING_RUNTIME \
            else _signal_hint(out.returncode)
        last = _last_line(out.stderr) or _last_line(out.stdout) or "no output"
        rec.error = f"{what} exited with {out.returncode}{hint}: {last}"
        rec.stderr_tail = _tail(out.stderr) or _tail(out.stdout)
        return None
    try:
        if choice.app is not None:
            parsed: ParsedRun = parse_app_result(out.result or "")
        elif choice.native is None:
            parsed = parse_python_runner(out.result if out.result is not None else out.stdout)
        else:
            parsed = choice.native.parse(out.stdout, out.stderr, warmup=warmup)
    except RunnerOutputError as exc:
        rec.error = _one_line(str(exc))
        rec.stderr_tail = _tail(out.stderr)
        rec.extra["stdout_tail"] = _tail(out.stdout)
        return None
    rec.stats = parsed.stats
    rec.samples_ms = parsed.samples_ms
    rec.init_ms, rec.first_ms = parsed.init_ms, parsed.first_ms
    rec.versions.update(parsed.versions)
    rec.extra.update(parsed.extra)
    if parsed.threads is not None and parsed.threads != rec.threads:
        rec.extra["runner_threads"] = parsed.threads  # what the runner says it used, when it differs
    return parsed.output


# --- helpers -------------------------------------------------------------------------------------------------------


def _runner_versions(rec: BenchRecord, runner_dir: Path | None, target: str) -> None:
    """The runtime version a built runner folder declares (runners.json), like the Python runners report theirs."""
    info = runner_folder.runner_info(runner_dir, target)
    if info is not None:
        rec.versions[str(info.get("runtime_package") or info["runtime"])] = str(info["runtime_version"])
        rec.extra["runner_build"] = {k: info.get(k) for k in ("notes", "build_key", "abi", "statistics")
                                     if info.get(k) is not None}


def _model(facts: dict[str, Any]) -> str | None:
    value = facts.get("model")
    return str(value) if value is not None else None


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="milliseconds")


def _one_line(text: str) -> str:
    return " ".join(text.split())[:500]


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1][:300] if lines else ""


def _tail(text: str) -> str | None:
    text = text.strip()
    return text[-STDERR_TAIL_CHARS:] if text else None


def results_path(out_dir: Path, sweep_name: str) -> Path:
    """Default results file of a sweep: OUT/<sweep name>.jsonl."""
    return Path(out_dir) / f"{sweep_name}.jsonl"
