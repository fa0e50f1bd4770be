"""`effvit-export`: export models to ONNX / TFLite / ExecuTorch, verify each artifact, print a summary table.

Exit codes: 0 all artifacts written (or cached) and verified; 1 an artifact failed verification or conversion (its
numbers are printed, nothing is written for it); 2 bad input (one line on stderr, nothing written); 130 interrupted.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from .. import memory_guard
from ..errors import ArtifactError, QuantizationError
from ..export import api
from ..export.verify import VerificationError, describe
from . import converter_log, interrupts
from .common import make_app, run_app

app = make_app("Export models to ONNX, TFLite and ExecuTorch; every artifact is verified against PyTorch.")

EXIT_FAILED = 1  # an artifact failed verification or conversion
_WIDE = 160  # table width when stdout is not a terminal (rich would otherwise squeeze it into 80 columns)


@app.command()
def export(
    target: Annotated[list[str], typer.Option("--target", "-t", help="onnx, tflite, executorch or all (repeatable).")],
    model: Annotated[list[str], typer.Option("--model", "-m", help="Model name, e.g. efficientvit-b1 (repeatable).")],
    resolution: Annotated[
        list[str] | None,
        typer.Option(
            "--resolution", "-r", help="224 or HxW such as 512x1024; multiples of 32 (repeatable). [default: 224]"
        ),
    ] = None,
    precision: Annotated[str, typer.Option(help="fp32, fp16 or int8.")] = "fp32",
    checkpoint: Annotated[
        Path | None,
        typer.Option(help="Weights file (.pt/.pth); default: the zoo's file if present, else seed-0 random weights."),
    ] = None,
    zoo: Annotated[
        Path | None,
        typer.Option(help="Folder with zoo checkpoints; default: $EFFVIT_ZOO, else ./models if it has zoo.toml."),
    ] = None,
    random_weights: Annotated[
        bool, typer.Option("--random-weights", help="Seed-0 random weights even if the zoo has a checkpoint.")
    ] = False,
    out: Annotated[Path, typer.Option(help="Output folder: OUT/<model>/<HxW>/<target>-<precision>.<ext>.")] = Path(
        "export"
    ),
    optimize: Annotated[
        bool, typer.Option("--optimize/--no-optimize", help="Apply the deploy form (BN folding, attention order).")
    ] = True,
    nhwc: Annotated[bool, typer.Option("--nhwc", help="NHWC (1,H,W,3) input; tflite only.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Re-export even if an identical artifact is cached.")] = False,
    calib: Annotated[Path | None, typer.Option(help="int8: folder of calibration images.")] = None,
    calib_count: Annotated[int | None, typer.Option(help="int8: number of calibration images.")] = None,
    int8_attention: Annotated[str, typer.Option(help="int8: attention in auto, int8 or fp32.")] = "auto",
    max_memory: Annotated[str | None, typer.Option(
        help="Memory an export may use, e.g. 8G (default: what this machine has available); exports whose "
             "estimated peak is larger are refused before any work.")] = None,
    full_res_output: Annotated[
        bool,
        typer.Option(
            "--full-res-output", help="Segmentation: upsample the 1/8 logits x8 (exact bicubic) inside the graph."
        ),
    ] = False,
    fp16_guard: Annotated[
        bool | None,
        typer.Option("--fp16-guard/--no-fp16-guard",
                     help="fp16 TFLite (default on): attention division as where(den > 0, num/den, 0), safe under "
                          "fp16 arithmetic such as XNNPACK force-fp16 (more partitions; README 'Numerics on ARM'); "
                          "--no-fp16-guard: one partition, for fp32-arithmetic runtimes only."),
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log cache decisions; show converter output.")
    ] = False,
) -> None:
    """Export MODEL to TARGET at each RESOLUTION, verify it in the target's runtime, and write manifest.json.

    Example: effvit-export --target all --model efficientvit-b1 --resolution 224 --resolution 512x1024
    """
    err = Console(stderr=True)
    _setup_logging(err, verbose)
    if precision != "int8" and (calib is not None or calib_count is not None or int8_attention != "auto"):
        err.print("[yellow]note:[/] --calib/--calib-count/--int8-attention apply to --precision int8 only; ignored")
    # importing the runtimes already prints C++ log lines: validate inside the redirect too
    limit = memory_guard.parse_size(max_memory) if max_memory is not None else None
    # the request, spelled once: every (model, resolution, target) job differs from it only in those three
    base = api.ExportOptions(target="", precision=precision, out_dir=out, optimize=optimize, nhwc=nhwc,
                             full_res_output=full_res_output, checkpoint=checkpoint, zoo_dir=zoo,
                             random_weights=random_weights, calib=calib, calib_count=calib_count,
                             int8_attention=int8_attention, max_memory=limit, fp16_guard=fp16_guard, force=force)
    with converter_log.capture(enabled=not verbose, folder=out) as (console_file, log):
        targets = _expand_targets(target)
        requests = [
            api.check_request(m, dataclasses.replace(base, target=t, resolution=r))
            for m in model
            for r in resolution or ["224"]
            for t in targets
        ]
        rows = _run_all(requests, Console(file=console_file), verbose)
    _setup_logging(err, verbose)  # the console _run_all logged to is closed now
    failures = [row["message"] for row in rows if "message" in row]
    _print_table(rows)
    for line in failures:
        print(f"error: {line}", file=sys.stderr)
    if log is not None:
        failed = [row["request"] for row in rows if "message" in row]
        if failed:  # kept where the user looks: beside the (missing) artifact, under a visible name
            kept = converter_log.keep(log, failed[0].folder / "export.log")
            print(f"converter output: {kept}", file=sys.stderr)
        else:
            log.unlink(missing_ok=True)
    if failures:
        raise typer.Exit(EXIT_FAILED)


def _run_all(requests: list[api.Request], err: Console, verbose: bool) -> list[dict[str, Any]]:
    """Run each request under a spinner; a failed artifact becomes a row with its message, the others go on."""
    _setup_logging(err, verbose)  # log lines go where the progress display goes
    rows: list[dict[str, Any]] = []
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    # live spinner on a terminal only; one line per finished artifact either way (a log for CI, no stray lines)
    with Progress(*columns, console=err, transient=True, disable=not err.is_terminal) as bar:
        for request in requests:
            label = request.describe()
            task = bar.add_task(f"converting {label} …", total=None)

            def stage(text: str, task: Any = task, label: str = label) -> None:
                interrupts.check()  # a Ctrl-C swallowed inside the converter stops the run here
                bar.update(task, description=f"converting {label} … ({text})")

            entry = None
            try:
                entry = api.run(request, progress=stage)
                interrupts.check()  # arrived too late to stop this artifact: it is complete and kept
            except KeyboardInterrupt:
                # typer turns KeyboardInterrupt into a silent exit 130; say what was kept
                bar.stop()
                done = sum("entry" in row for row in rows) + (entry is not None)
                written = "was written before the interrupt" if entry is not None else "was not written"
                err.print(f"interrupted: {label} {written}; {done} finished artifact(s) kept")
                interrupts.announced()
                raise typer.Exit(130) from None
            except ArtifactError as exc:
                # conversion, quantization or verification failed for this artifact: nothing written, go on with
                # the others (bad input, e.g. a checkpoint that does not fit, is one line and exit 2 in run_app)
                bar.remove_task(task)
                err.print(f"[red]FAILED[/] {label}", highlight=False)
                summary = describe(exc.parity) if isinstance(exc, VerificationError) else _failure_kind(exc)
                rows.append({"request": request, "error": summary, "message": str(exc)})
                continue
            status = "cached" if entry["cached"] else f"{entry['export_seconds']:.1f}s"
            bar.remove_task(task)
            err.print(f"[green]done[/] {label} ({status}; {_weights(request)})", highlight=False, soft_wrap=True)
            rows.append({"request": request, "entry": entry})
    return rows


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


def _failure_kind(exc: ArtifactError) -> str:
    return "quantization failed" if isinstance(exc, QuantizationError) else "conversion failed"


def _weights(request: api.Request) -> str:
    """`weights zoo:b1-r224.pt`, `weights checkpoint:PATH`, or plainly `random weights (seed 0)`."""
    return request.weights if request.weights == api.RANDOM_WEIGHTS else f"weights {request.weights}"


def _size(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"


def _parity(entry: dict[str, Any]) -> str:
    p = entry["parity"]
    if entry["precision"] == "fp32":
        return f"max|Δ| {p['max_abs']:.1e}"
    return f"cos {p['cosine']:.7f}"


def _print_table(rows: list[dict[str, Any]]) -> None:
    wide = sys.stdout.isatty() or "COLUMNS" in os.environ
    out = Console() if wide else Console(width=_WIDE)
    table = Table(title="effvit-export")
    for column in ("model", "resolution", "target", "precision", "artifact", "size", "ops", "partitions", "parity"):
        table.add_column(column, justify="right" if column in ("size", "ops", "partitions") else "left")
    table.add_column("time", justify="right")
    folders: list[str] = []
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
            e["artifact"],
            _size(e["size_bytes"]),
            str(census.get("total_ops", "-")),
            "-" if parts is None else str(parts),
            _parity(e),
            "cached" if e["cached"] else f"{e['export_seconds']:.1f}s",
        )
        folder = str(Path(e["path"]).parent)
        if folder not in folders:
            folders.append(folder)
    out.print(table)
    for folder in folders:
        out.print(f"artifacts and manifest.json in {folder}/", highlight=False)


def main(argv: list[str] | None = None) -> None:
    """Console script entry point (`effvit-export`)."""
    interrupts.install()  # SIGINT/SIGTERM raise KeyboardInterrupt, and are remembered if a converter swallows it
    run_app(app, argv)


if __name__ == "__main__":
    main()
