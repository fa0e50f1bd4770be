"""`effvit-bench`: measure exported models on this machine and on phones over adb, then report.

    effvit-bench run --device local --sweep bench/sweeps/quick.toml
    effvit-bench run --device adb:R58M123 --device adb:192.168.1.20:5555 --model efficientvit-b1 \\
        --resolution 224 --resolution 512 --target tflite --threads 1,4
    effvit-bench devices
    effvit-bench report bench/results/quick.jsonl --format html --out bench/quick.html

Exit codes: 0 every measurement succeeded; 1 some measurements failed (they are error records in the results file);
2 bad input or an unusable device (one line on stderr; results written so far are kept); 130 interrupted.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, TextIO

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from ..bench import engine, session
from ..bench.adb import list_devices
from ..bench.devices import AdbPhone, Device, open_devices, parse_device_spec
from ..bench.native import BINARIES
from ..bench.store import load_results
from ..bench.sweep import SweepSpec, adhoc_sweep, load_sweep
from ..errors import InvalidInputError, MissingFileError
from ..memory_guard import parse_size
from ..outputs import check_output_file, check_output_folder
from . import converter_log, interrupts
from . import runners as runners_cli
from .common import EXIT_BAD_INPUT, make_app, run_app

app = make_app("Measure exported models on this machine and on Android phones (adb); report latency tables.")
app.add_typer(runners_cli.app, name="runners")

EXIT_FAILED_RUNS = 1
_WIDE = 160


def _split(values: list[str] | None) -> list[str]:
    """Repeated options and comma lists both work: `--threads 1,4` == `--threads 1 --threads 4`."""
    return [v.strip() for item in values or [] for v in item.split(",") if v.strip()]


def _threads(values: list[str] | None) -> list[int]:
    out = []
    for v in _split(values) or ["1"]:
        try:
            out.append(int(v))
        except ValueError:
            raise InvalidInputError(f"--threads: {v!r} is not a whole number; write e.g. --threads 1,4") from None
    return out


def _spec(sweep: Path | None, model: list[str] | None, resolution: list[str] | None, target: list[str] | None,
          precision: list[str] | None, threads: list[str] | None, runs: int | None, warmup: int | None,
          cooldown: float | None, cores: str | None) -> SweepSpec:
    if sweep is not None:
        if model or resolution or target or precision or threads:
            raise InvalidInputError("give either --sweep FILE or --model/--resolution/--target/--precision/--threads, "
                                    "not both")
        return load_sweep(sweep).with_overrides(runs=runs, warmup=warmup, cooldown_s=cooldown, cores=cores)
    if not model:
        raise InvalidInputError("nothing to measure: pass --sweep bench/sweeps/NAME.toml, or --model, --resolution "
                                "and --target")
    return adhoc_sweep(models=_split(model), resolutions=_split(resolution) or ["224"], targets=_split(target),
                       precisions=_split(precision) or ["fp32"], threads=_threads(threads),
                       runs=runs if runs is not None else 50, warmup=warmup if warmup is not None else 10,
                       cooldown_s=cooldown if cooldown is not None else 0.0, cores=cores or "big")


def _setup_logging(console: Console, verbose: bool) -> None:
    """Our warnings (and with -v our info) on stderr; third-party libraries (torch, torchao) only on errors."""
    logging.basicConfig(level=logging.ERROR, format="%(message)s",
                        handlers=[RichHandler(console=console, show_time=False, show_path=False)], force=True)
    logging.getLogger("effvit_deploy").setLevel(logging.INFO if verbose else logging.WARNING)


@app.command()
def run(
    device: Annotated[list[str], typer.Option("--device", "-d", help="local, adb:SERIAL or adb:HOST:PORT "
                                              "(repeatable; devices run in parallel).")],
    sweep: Annotated[Path | None, typer.Option(help="Sweep file, e.g. bench/sweeps/quick.toml.")] = None,
    model: Annotated[list[str] | None, typer.Option("--model", "-m", help="Model name (repeatable).")] = None,
    resolution: Annotated[list[str] | None, typer.Option("--resolution", "-r",
                                                         help="224 or HxW (repeatable); default 224.")] = None,
    target: Annotated[list[str] | None, typer.Option("--target", "-t",
                                                     help="tflite, onnx or executorch (repeatable).")] = None,
    precision: Annotated[list[str] | None, typer.Option(help="fp32, fp16 or int8 (repeatable); default fp32.")] = None,
    threads: Annotated[list[str] | None, typer.Option(help="Thread counts, e.g. 1,4; default 1.")] = None,
    runs: Annotated[int | None, typer.Option(help="Timed runs per measurement (default: sweep's, else 50).")] = None,
    warmup: Annotated[int | None, typer.Option(help="Warm-up runs (default: sweep's, else 10).")] = None,
    cores: Annotated[str | None, typer.Option(help="big (fastest cores), all, or a hex taskset mask such as f0 "
                                              "(default: sweep's, else big).")] = None,
    cooldown: Annotated[float | None, typer.Option(help="Seconds to rest between configurations "
                                                   "(default: sweep's, else 0).")] = None,
    runner: Annotated[str, typer.Option(help="auto (Python where the runtime is installed, else native, else the "
                                        "app), python, native or app (the on-device app, adb devices).")] = "auto",
    runner_dir: Annotated[Path | None, typer.Option(help="Folder with native runners for the device: "
                                                    "benchmark_model, onnxruntime_perf_test, executor_runner.")] = None,
    apk: Annotated[Path | None, typer.Option(help="The benchmark app for --runner app/auto (default: "
                                             "android_app/build/offline/effvit-bench.apk from make android-app).")
                   ] = None,
    out: Annotated[Path, typer.Option(help="Results folder; the file is OUT/<sweep name>.jsonl.")] = Path(
        "bench/results"),
    export_dir: Annotated[Path, typer.Option(help="Where artifacts are exported (and cached).")] = Path("export"),
    rerun: Annotated[bool, typer.Option("--rerun", help="Measure again what the results file already has.")] = False,
    max_memory: Annotated[str | None, typer.Option(
        help="Memory an export or a measurement may use, e.g. 8G (default: this machine's available memory for "
             "exports, the device's MemAvailable for measurements).")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log pushes and cache decisions.")] = False,
    min_runs: Annotated[int | None, typer.Option(help="Minimum timed runs (same as --runs).")] = None,
    min_seconds: Annotated[float | None, typer.Option(help="Timed runs go on until this many seconds too "
                                                      "(python runner; default: sweep's, else 0).")] = None,
    max_seconds: Annotated[float | None, typer.Option(help="Stop timed runs after this many seconds "
                                                      "(default: sweep's, else none).")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the shuffled run order (default: sweep's, else 0).")
                    ] = None,
) -> None:
    """Export what is missing, measure every configuration on every device, print the latency table."""
    with _logging_restored():  # run in-process (tests, notebooks): the caller's logging is left as it was
        err = _stderr_console()
        _setup_logging(err, verbose)
        if runner not in engine.RUNNER_MODES:
            raise InvalidInputError(f"--runner {runner!r}: choose one of {', '.join(engine.RUNNER_MODES)}")
        if min_runs is not None and runs is not None and min_runs != runs:
            raise InvalidInputError("--runs and --min-runs are the same setting; give one of them")
        spec = _spec(sweep, model, resolution, target, precision, threads, min_runs if min_runs is not None else runs,
                     warmup, cooldown, cores)
        spec = spec.with_overrides(min_seconds=min_seconds, max_seconds=max_seconds,
                                   seed=seed if seed is not None or spec.source is not None else 0)
        if runner_dir is not None and not runner_dir.is_dir():
            raise MissingFileError(f"--runner-dir {runner_dir} is not a folder; give the folder holding the runners")
        if apk is not None and not apk.is_file():
            raise MissingFileError(f"--apk {apk} does not exist; build it with `make android-app` or give the APK's "
                                   "path")
        limit = parse_size(max_memory) if max_memory is not None else None
        options = engine.RunOptions.from_sweep(spec, runner=runner, runner_dir=runner_dir, apk=apk, rerun=rerun,
                                               max_memory=limit)
        # every output location is checked before any device is touched, any export or measurement
        results = engine.results_path(check_output_folder(out, "--out"), spec.name)
        check_output_file(results, "--out")
        check_output_folder(export_dir, "--export-dir")
        # converter and runtime noise (C++ logs, torch warnings) goes to a log in the export folder, kept only when an
        # export failed; -v shows it. Importing the runtimes already prints, so the checks run inside the capture too.
        with contextlib.ExitStack() as stack:
            real_stderr, log = stack.enter_context(converter_log.capture(enabled=not verbose, folder=export_dir))
            err = _stderr_console(real_stderr)
            _setup_logging(err, verbose)
            stack.callback(_setup_logging, _stderr_console(), verbose)  # however the block ends: log to stderr again
            engine.check_exports(spec.configurations, export_dir, max_memory=limit)  # memory guard before device work
            devices = open_devices(device, lock=True)  # a second harness on a device stops here, before any export
            with _held(devices), _progress(err) as bar:
                export_task = bar.add_task("exporting", total=None, device="export")
                device_tasks: list[engine.Progress] = []

                def on_plan(plans: list[engine.DevicePlan]) -> None:
                    _print_plan(err, spec, devices, plans, results)
                    device_tasks.append(_device_progress(bar, plans))

                def on_event(event: engine.ProgressEvent) -> None:
                    if event.kind != "export":
                        device_tasks[0](event)
                        return
                    interrupts.check()  # a Ctrl-C a converter swallowed stops the export phase here
                    bar.update(export_task, total=event.total, completed=event.index,
                               description="done" if event.label == "done" else event.label)

                result = session.sweep(devices, spec, options, export_dir=export_dir, results=results,
                                       progress=on_event, on_plan=on_plan)
                if log is not None and result.export_failed:
                    kept = converter_log.keep(log, export_dir / converter_log.LOG_NAME)
                    err.print(f"converter output: {kept}", highlight=False, markup=False)
                elif log is not None:
                    log.unlink(missing_ok=True)  # fd 2 writes to the unlinked file until the capture ends
        err = _stderr_console()
        summary = result.summary
        sys.stdout.write(result.table)
        sys.stdout.flush()
        err.print(f"{summary.measured} measured, {summary.failed} failed, {summary.skipped} already in {results} "
                  f"(skipped; --rerun measures them again), {summary.seconds:.1f}s")
        for rec in summary.records:
            if not rec.ok:
                err.print("[red]failed[/] " + escape(f"{rec.device_serial} {rec.model} {rec.resolution} {rec.target} "
                                                     f"t{rec.threads}: {rec.error}"), markup=True, highlight=False)
        if summary.device_errors:
            for spec_name, why in summary.device_errors.items():
                print(f"error: {spec_name}: {why}", file=sys.stderr)
            raise typer.Exit(EXIT_BAD_INPUT)
        if summary.failed:
            raise typer.Exit(EXIT_FAILED_RUNS)


def _print_plan(err: Console, spec: SweepSpec, devices: list[Device], plans: list[engine.DevicePlan],
                results: Path) -> None:
    n = len(spec.configurations)
    err.print(f"sweep [bold]{spec.name}[/]: {n} configuration{'s' * (n != 1)} × {len(devices)} device"
              f"{'s' * (len(devices) != 1)}, runs={spec.runs} warmup={spec.warmup} cores={spec.cores} "
              f"cooldown={spec.cooldown_s:g}s → {results}")
    for plan in plans:
        runners = ", ".join(f"{t}: {c.kind}" + (f" ({c.note})" if c.note else "") for t, c in plan.runners.items())
        masks = ", ".join(f"t{t}={m}" for t, (m, _) in plan.masks.items())
        # markup=False: device-supplied strings such as a model named "[/]" are text, not rich markup
        err.print(f"  {plan.device.spec}: {_device_line(plan.facts)}; {runners}; masks {masks} "
                  f"({next(iter(plan.masks.values()))[1]})", markup=False, highlight=False)


@contextlib.contextmanager
def _logging_restored() -> Iterator[None]:
    root, ours = logging.getLogger(), logging.getLogger("effvit_deploy")
    handlers, root_level, our_level = root.handlers[:], root.level, ours.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(root_level)
        ours.setLevel(our_level)


@contextlib.contextmanager
def _held(devices: list[Device]) -> Iterator[None]:
    """Release the device locks when the sweep ends (the process ending releases them too, however it ends)."""
    try:
        yield
    finally:
        for dev in devices:
            dev.unlock()


def _stderr_console(stream: TextIO | None = None) -> Console:
    """Progress and notes go to stderr (stdout carries the table); no 80-column wrapping when it is not a terminal.

    `stream`: the real stderr while converter output is captured (`converter_log.capture`)."""
    tty = (stream or sys.stderr).isatty()
    if stream is not None and stream is not sys.stderr:  # a captured fd 2: bind the real stderr's stream
        return Console(file=stream, width=None if tty else _WIDE)
    return Console(stderr=True, width=None if tty else _WIDE)  # follows sys.stderr (in-process runners swap it)


def _progress(console: Console) -> Progress:
    return Progress(SpinnerColumn(), TextColumn("{task.fields[device]:<22}"), BarColumn(bar_width=24),
                    MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                    TextColumn("{task.description}"), console=console, transient=False)


def _device_progress(bar: Progress, plans: list[engine.DevicePlan]) -> engine.Progress:
    tasks: dict[str, TaskID] = {p.device.spec: bar.add_task("waiting", total=len(p.configs), device=p.device.spec)
                                for p in plans}

    def on_event(event: engine.ProgressEvent) -> None:
        task = tasks.get(event.device or "")
        if task is None:
            return
        if event.kind == "start":
            bar.update(task, completed=event.index, description=event.label)
        elif event.kind in ("done", "skip"):
            status = "skipped (done before)" if event.kind == "skip" else (
                "ok" if event.record is not None and event.record.ok else "FAILED")
            bar.update(task, completed=event.index + (event.kind == "skip"), description=f"{event.label}: {status}")
        elif event.kind == "device-error":
            bar.update(task, description=f"stopped: {escape(event.label)}")  # a device's words, not markup
        elif event.kind == "device-done":
            bar.update(task, completed=event.total)

    return on_event


def _device_line(facts: dict) -> str:
    parts = [str(facts.get("model") or "?")]
    if facts.get("soc") and facts["soc"] != facts.get("model"):
        parts.append(str(facts["soc"]))
    if facts.get("android_release"):
        parts.append(f"Android {facts['android_release']}")
    parts.append(_clusters(facts))
    return ", ".join(parts)


def _clusters(facts: dict) -> str:
    clusters = facts.get("clusters") or []
    text = " + ".join(f"{len(c['cpus'])}×{c['max_khz'] / 1e6:.2f} GHz" if c.get("max_khz") else f"{len(c['cpus'])} CPUs"
                      for c in clusters)
    return text or "CPUs unknown"


@app.command()
def devices(
    device: Annotated[list[str] | None, typer.Option(
        "--device", "-d", help="Show only these (local, adb:SERIAL, adb:HOST:PORT); default: all of `adb devices`.")
    ] = None,
    runner_dir: Annotated[Path | None, typer.Option(help="Also say which native runners this folder provides.")] = None,
) -> None:
    """List devices with model, SoC, Android version, ABI, CPU clusters, governor and usable runners."""
    rows: list[tuple[Device | None, str, str]] = []  # (device, spec, state)
    if device:
        for spec in device:
            rows.append((parse_device_spec(spec), spec, "device"))
    else:
        for serial, state in list_devices():
            rows.append((AdbPhone(serial) if state == "device" else None, f"adb:{serial}", state))
    console = Console(width=_WIDE) if not sys.stdout.isatty() else Console()
    if not rows:
        console.print("no adb devices: connect a phone with USB debugging on, or `adb connect HOST:PORT`; "
                      "`--device local` shows this machine")
        return
    fields = ("state", "model", "SoC", "Android", "ABI", "CPU clusters", "governor", "python runner",
              "native runners")
    columns: list[list[str]] = []
    local_bins = [b for b in BINARIES.values() if runner_dir is not None and (runner_dir / b).is_file()]
    for dev, _spec, state in rows:
        if dev is None:
            columns.append([state] + ["–"] * (len(fields) - 1))
            continue
        dev.open()
        facts = dev.facts()
        info = dev.python_info()
        py = (f"python {info.version}: " + (", ".join(t for t, ok in info.runtimes.items() if ok) or "no runtime")
              if info.version else "no python3")
        native = [f"{b} (on device)" for b, ok in dev.native_installed(list(BINARIES.values())).items() if ok] \
            if isinstance(dev, AdbPhone) else []
        native += [f"{b} (runner dir)" for b in local_bins if not any(n.startswith(b) for n in native)]
        android, sdk = facts.get("android_release"), facts.get("android_sdk")
        soc = " / ".join(dict.fromkeys(str(v) for v in (facts.get("soc"), facts.get("board_platform")) if v))
        columns.append([state, str(facts.get("model") or "?"), soc or "?",
                        f"{android} (SDK {sdk})" if android else "–", str(facts.get("abi") or "?"),
                        _clusters(facts), str(facts.get("governor") or "–"), py, ", ".join(native) or "none"])
    # Devices as columns (like the latency tables): fields stay readable on a narrow terminal.
    table = Table("", *(escape(spec) for _, spec, _ in rows), show_lines=False)
    for i, name in enumerate(fields):
        table.add_row(name, *(escape(col[i]) for col in columns))  # device-supplied text is not rich markup
    console.print(table)


@app.command()
def report(
    results: Annotated[list[Path], typer.Argument(help="Results files (.jsonl) or folders of them.")],
    format: Annotated[str, typer.Option("--format", "-f", help="md, csv or html.")] = "md",
    out: Annotated[Path | None, typer.Option(help="Write to this file instead of printing.")] = None,
) -> None:
    """Latency tables (phones as columns, speedups over the softmax twin and EfficientNet) from results files."""
    from ..bench import report as report_lib

    if out is not None:
        check_output_file(out, "--out")
    records = load_results(results)
    if not records:
        raise InvalidInputError(f"no records in {', '.join(map(str, results))}; run `effvit-bench run` first")
    if out is not None:
        path = report_lib.write_report(records, format, out)
        print(f"wrote {path}")
        return
    sys.stdout.write(report_lib.render(records, format))


@app.command()
def compare(
    a: Annotated[Path, typer.Argument(help="Results file A (the baseline: before, or phone 1).")],
    b: Annotated[Path, typer.Argument(help="Results file B (after, or phone 2); ratios are B / A.")],
    format: Annotated[str, typer.Option("--format", "-f", help="md (the only format).")] = "md",
) -> None:
    """Per configuration in both files: B/A median ratio, its bootstrap 95% interval and a verdict."""
    from ..bench.compare import compare as compare_records
    from ..bench.compare import to_markdown

    if format != "md":
        raise InvalidInputError(f"--format {format!r}: compare writes md only")
    sides = []
    for path in (a, b):
        if not path.is_file():
            raise MissingFileError(f"results file {path} does not exist; give two .jsonl files from effvit-bench run")
        records, skipped = _load_noting_skips(path)
        if not records:  # one line: what was skipped belongs to this error, not to a warning above it
            why = f" ({skipped[0]})" if skipped else ""
            raise InvalidInputError(f"{path} holds no records{why}; run `effvit-bench run` first")
        for note in skipped:
            logging.getLogger("effvit_deploy.bench.store").warning("%s", note)
        sides.append(records)
    names = (a.stem, b.stem) if a.stem != b.stem else (f"{a.parent.name}/{a.stem}", f"{b.parent.name}/{b.stem}")
    if names[0] == names[1]:  # the same name twice would make the B/A column unreadable
        names = ("A", "B")
    sys.stdout.write(to_markdown(compare_records(sides[0], sides[1]), *names))


def _load_noting_skips(path: Path) -> tuple[list, list[str]]:
    """(records of one results file, the store's notes about lines it skipped), the notes held back from the log."""
    notes: list[str] = []

    class _Hold(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            notes.append(record.getMessage().replace(f"{path}: ", "", 1))

    store_log = logging.getLogger("effvit_deploy.bench.store")
    hold, propagate = _Hold(logging.WARNING), store_log.propagate
    store_log.addHandler(hold)
    store_log.propagate = False
    try:
        return load_results([path]), notes
    finally:
        store_log.removeHandler(hold)
        store_log.propagate = propagate


def main(argv: list[str] | None = None) -> None:
    interrupts.install()  # SIGTERM too ends a sweep through KeyboardInterrupt: finished records are already on disk
    run_app(app, argv)


if __name__ == "__main__":
    main()
