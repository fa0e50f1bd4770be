"""`python -m effvit_deploy.demo` (what `make demo` runs): the model zoo, then a quick latency sweep on this machine.

1. The zoo table: params and MACs of every registered model at 224 and 512 (`effvit_deploy.models.table`).
2. `bench/sweeps/quick.toml` on `local`: export what is missing to `export/` (cached: a second demo converts nothing),
   measure every configuration in a fresh process pinned with taskset, append records to
   `bench/results/quick.jsonl` (a second demo only measures what is missing; `--rerun` measures everything again).
3. The latency table (`effvit_deploy.bench.report`), the same one `effvit-bench report` prints.

Everything goes through the library, exactly what `effvit-bench run --device local --sweep bench/sweeps/quick.toml`
does from the command line.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TextIO

from .cli import converter_log, interrupts
from .errors import EffvitError

ROOT = Path(__file__).resolve().parents[1]


_STREAM: list[TextIO | None] = [None]  # the real stderr while converter output is captured


def _say(text: str) -> None:
    print(text, file=_STREAM[0] or sys.stderr, flush=True)


def zoo() -> str:
    """Markdown zoo table at 224 and 512 for every model in `models.names()`."""
    from .models.table import to_markdown, zoo_rows

    return to_markdown(zoo_rows(["224", "512"]))


def quick_sweep(*, sweep: Path, device: str, out_dir: Path, export_dir: Path, rerun: bool,
                verbose: bool = False) -> tuple[str, bool]:
    """Export + measure + report through the sweep entry (`bench.session.sweep`). Returns (markdown table, all
    measurements succeeded)."""
    from .bench import engine, session
    from .bench.devices import open_devices
    from .bench.sweep import load_sweep

    spec = load_sweep(sweep)
    options = engine.RunOptions.from_sweep(spec, rerun=rerun)
    results = engine.results_path(out_dir, spec.name)

    def on_plan(plans: list[engine.DevicePlan]) -> None:
        for plan in plans:
            mask, basis = next(iter(plan.masks.values()))
            _say(f"device {plan.device.spec}: {plan.facts.get('model')}, CPUs {plan.device.cpus()}, mask {mask} "
                 f"({basis})")
        _say(f"exporting the {len({c.artifact_key for c in spec.configurations})} artifacts of sweep {spec.name} "
             f"to {export_dir}/ (cached ones are reused), then measuring {len(spec.configurations)} configurations "
             f"(runs={spec.runs}, warmup={spec.warmup}) → {results}")

    def on_event(event: engine.ProgressEvent) -> None:
        if event.kind == "export":
            interrupts.check()  # a Ctrl-C a converter swallowed stops here (see cli/interrupts.py)
            if event.label != "done":
                _say(f"  export [{event.index + 1}/{event.total}] {event.label}")
        elif event.kind == "done" and event.record is not None:
            rec = event.record
            result = f"{rec.stats['median_ms']:.2f} ms median" if rec.ok and rec.stats else f"FAILED: {rec.error}"
            _say(f"  [{event.index}/{event.total}] {event.label}: {result}")
        elif event.kind == "skip":
            _say(f"  [{event.index + 1}/{event.total}] {event.label}: already measured")
        elif event.kind == "device-error":
            _say(f"  {event.device} stopped: {event.label}")

    # converter noise goes to a log in the export folder, kept (and named) only when an export failed
    with converter_log.capture(enabled=not verbose, folder=export_dir) as (real_stderr, log):
        _STREAM[0] = real_stderr
        try:
            done = session.sweep(open_devices([device]), spec, options, export_dir=export_dir, results=results,
                                 progress=on_event, on_plan=on_plan)
            if log is not None and done.export_failed:
                _say(f"  converter output: {converter_log.keep(log, export_dir / converter_log.LOG_NAME)}")
            elif log is not None:
                log.unlink(missing_ok=True)
        finally:
            _STREAM[0] = None
    summary = done.summary
    _say(f"  exports {done.export_seconds:.1f}s; {summary.measured} measured, {summary.failed} failed, "
         f"{summary.skipped} already in {results} in {summary.seconds:.1f}s")
    return done.table, not summary.failed and not summary.device_errors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m effvit_deploy.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", type=Path, default=ROOT / "bench/sweeps/quick.toml")
    parser.add_argument("--device", default="local", help="local, adb:SERIAL or adb:HOST:PORT")
    parser.add_argument("--out", type=Path, default=Path("bench/results"), help="results folder")
    parser.add_argument("--export-dir", type=Path, default=Path("export"))
    parser.add_argument("--rerun", action="store_true", help="measure again what the results file already has")
    parser.add_argument("--skip-zoo", action="store_true", help="do not print the zoo table")
    parser.add_argument("-v", "--verbose", action="store_true", help="show the converters' own output")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    interrupts.install()
    try:
        if not args.skip_zoo:
            _say("model zoo: params and MACs (effvit_deploy.models.profile)")
            print("## Model zoo\n\n" + zoo() + "\n", flush=True)
        table, ok = quick_sweep(sweep=args.sweep, device=args.device, out_dir=args.out, export_dir=args.export_dir,
                                rerun=args.rerun, verbose=args.verbose)
    except EffvitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished results are kept", file=sys.stderr)
        return 130
    print(table if table.endswith("\n") else table + "\n", flush=True)
    _say(f"demo finished in {time.perf_counter() - started:.0f}s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
