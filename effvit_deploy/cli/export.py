"""`effvit-export`: export models to ONNX / TFLite / ExecuTorch, verify each artifact, print a summary table.

Exit codes: 0 all artifacts written (or cached) and verified; 1 an artifact failed verification or conversion (its
numbers are printed, nothing is written for it); 2 bad input (one line on stderr, nothing written); 130 interrupted.
"""

from __future__ import annotations

import logging
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..errors import EffvitError
from ..export import api
from ..export.verify import VerificationError, describe
from .common import make_app, run_app

app = make_app("Export models to ONNX, TFLite and ExecuTorch; every artifact is verified against PyTorch.")

EXIT_VERIFICATION = 1
_WIDE = 160  # table width when stdout is not a terminal (rich would otherwise squeeze it into 80 columns)


@app.command()
def export(
    target: Annotated[list[str], typer.Option("--target", "-t", help="onnx, tflite, executorch or all (repeatable).")],
    model: Annotated[list[str], typer.Option("--model", "-m", help="Model name, e.g. efficientvit-b1 (repeatable).")],
    resolution: Annotated[
        list[str] | None,
        typer.Option("--resolution", "-r", help="224 or HxW such as 512x1024; multiples of 32 (repeatable)."),
    ] = None,
    precision: Annotated[str, typer.Option(help="fp32, fp16 or int8.")] = "fp32",
    checkpoint: Annotated[
        Path | None, typer.Option(help="Weights file (.pt/.pth); default: seed-0 random weights.")
    ] = None,
    out: Annotated[Path, typer.Option(help="Output folder: OUT/<model>/<HxW>/<target>-<precision>.<ext>.")] = Path(
        "export"
    ),
    optimize: Annotated[
        bool, typer.Option("--optimize/--no-optimize", help="Apply the deploy form (BN folding, attention order).")
    ] = True,
    nhwc: Annotated[bool, typer.Option(help="NHWC input/output where the target supports it.")] = False,
    force: Annotated[bool, typer.Option(help="Re-export even if an identical artifact is cached.")] = False,
    calib: Annotated[Path | None, typer.Option(help="int8: folder of calibration images.")] = None,
    calib_count: Annotated[int | None, typer.Option(help="int8: number of calibration images.")] = None,
    int8_attention: Annotated[str, typer.Option(help="int8: attention in auto, int8 or fp32.")] = "auto",
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log cache decisions and stages.")] = False,
) -> None:
    """Export MODEL to TARGET at each RESOLUTION, verify it in the target's runtime, and write manifest.json."""
    err = Console(stderr=True)
    _setup_logging(err, verbose)
    if precision != "int8" and (calib is not None or calib_count is not None or int8_attention != "auto"):
        err.print("[yellow]note:[/] --calib/--calib-count/--int8-attention apply to --precision int8 only; ignored")
    targets = _expand_targets(target)
    requests = [
        api.check_request(
            m,
            t,
            r,
            precision,
            out,
            optimize=optimize,
            nhwc=nhwc,
            checkpoint=checkpoint,
            calib=calib,
            calib_count=calib_count,
            int8_attention=int8_attention,
        )
        for m in model
        for r in resolution or ["224"]
        for t in targets
    ]
    rows: list[dict[str, Any]] = []
    failures: list[str] = []
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=err) as bar:
        for request in requests:
            label = request.describe()
            task = bar.add_task(f"converting {label} …", total=None)

            def stage(text: str, task: Any = task, label: str = label) -> None:
                bar.update(task, description=f"converting {label} … {text}")

            try:
                entry = api.run(request, force=force, progress=stage)
            except KeyboardInterrupt:
                # typer turns KeyboardInterrupt into a silent exit 130; say what was kept
                bar.stop()
                done = sum("entry" in row for row in rows)
                err.print(f"interrupted: {label} was not written; {done} finished artifact(s) kept")
                raise typer.Exit(130) from None
            except EffvitError as exc:
                if not isinstance(exc, VerificationError | RuntimeError):
                    raise  # bad input (e.g. a checkpoint that does not fit): one line, exit 2
                # this artifact failed (verification or conversion): report it, go on with the others
                bar.update(task, description=f"[red]FAILED[/] {label}", total=1, completed=1)
                failures.append(str(exc))
                summary = describe(exc.parity) if isinstance(exc, VerificationError) else "conversion failed"
                rows.append({"request": request, "error": summary})
                continue
            status = "cached" if entry["cached"] else f"{entry['export_seconds']:.1f}s"
            bar.update(task, description=f"[green]done[/] {label} ({status})", total=1, completed=1)
            rows.append({"request": request, "entry": entry})
    _print_table(rows)
    for line in failures:
        print(f"error: {line}", file=sys.stderr)
    if failures:
        raise typer.Exit(EXIT_VERIFICATION)


def _expand_targets(names: list[str]) -> list[str]:
    """Replace `all` by every registered target (in registry order); drop duplicates."""
    expanded: list[str] = []
    for name in names:
        if name == "all":
            from ..export.targets import TARGETS

            group = list(TARGETS)
        else:
            group = [name]
        expanded += [one for one in group if one not in expanded]
    return expanded


def _setup_logging(console: Console, verbose: bool) -> None:
    handler = RichHandler(console=console, show_time=False, show_path=False)
    logger = logging.getLogger("effvit_deploy")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO if verbose else logging.WARNING)
    logger.propagate = False


def _size(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"


def _parity(entry: dict[str, Any]) -> str:
    p = entry["parity"]
    if entry["precision"] == "fp32":
        return f"max|Δ| {p['max_abs']:.1e}"
    return f"cos {p['cosine']:.5f}"


def _print_table(rows: list[dict[str, Any]]) -> None:
    out = Console() if sys.stdout.isatty() else Console(width=_WIDE)
    table = Table(title="effvit-export")
    for column in ("model", "resolution", "target", "precision", "file", "size", "ops", "partitions", "parity", "time"):
        table.add_column(column, justify="right" if column in ("size", "ops", "partitions", "time") else "left")
    for row in rows:
        req = row["request"]
        head = [req.name, f"{req.resolution[0]}x{req.resolution[1]}", req.target, req.precision]
        if "error" in row:
            table.add_row(*head, "-", "-", "-", "-", f"[red]FAILED {row['error']}[/]", "-")
            continue
        e = row["entry"]
        census = e.get("census") or {}
        parts = census.get("partitions")
        table.add_row(
            *head,
            str(Path(e["path"])),
            _size(e["size_bytes"]),
            str(census.get("total_ops", "-")),
            "-" if parts is None else str(parts),
            _parity(e),
            "cached" if e["cached"] else f"{e['export_seconds']:.1f}s",
        )
    out.print(table)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    """SIGTERM would kill Python without running `finally` blocks; raising lets atomic writes clean up."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    """Console script entry point (`effvit-export`)."""
    signal.signal(signal.SIGTERM, _raise_interrupt)
    run_app(app, argv)


if __name__ == "__main__":
    main()
