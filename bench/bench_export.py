"""`make bench-export`: what the deploy form buys at run time, per runtime and resolution, measured in one process.

    .venv/bin/python bench/bench_export.py [--model efficientvit-b1] [--resolution 224 --resolution 512 ...]
        [--target tflite --target onnx --target executorch] [--runs 30] [--threads 2] [--out-dir export]

For each target and resolution it exports the model twice through the pipeline (`effvit_deploy.export.export`, so
every artifact is verified against PyTorch and cached in --out-dir): as built (`optimize=False`, the `--no-optimize`
artifact) and in deploy form (`optimize=True`). Both artifacts are loaded in their own runtime (LiteRT interpreter
with XNNPACK, ONNX Runtime CPU, ExecuTorch with XNNPACK) with the same thread count, warmed up, and invoked
alternately (plain, deploy, plain, ...) so drifts in machine load hit both alike. Reported per configuration:
median and 10th-percentile latency, speedup = plain median / deploy median, and achieved GFLOP/s = 2 x MACs / median
(MACs of the model as built, `effvit_deploy.models.profile`, the same for both), next to this machine's fp32 GEMM
rate measured in the same run (torch.matmul 2048x2048 at the same thread count, best of 10, before and after).
A second, load-robust measurement follows unless --no-cpu-check: the same pair at 1 thread, timed in process CPU
time (what the runtime computed, not how long it waited for a core), so a busy shared machine still gives a fair
ratio. The table is printed and written as Markdown to bench/results/bench_export.md (atomically).

This is a benchmark, not a test: it takes several minutes, and the numbers are only as quiet as the machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_timing import cpu_model_and_flags, interleaved_latencies, load_and_date  # noqa: E402

from effvit_deploy import models  # noqa: E402
from effvit_deploy.export import ExportOptions, export  # noqa: E402
from effvit_deploy.export.targets import get_target  # noqa: E402
from effvit_deploy.fileio import atomic_write_text  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "bench_export.md"


@dataclass
class Row:
    target: str
    resolution: str
    macs: int
    plain: list[float]
    deploy: list[float]
    cpu_plain: list[float] | None = None  # 1-thread process CPU ms (load-robust check)
    cpu_deploy: list[float] | None = None

    def cpu_speedup(self) -> str:
        if not self.cpu_plain or not self.cpu_deploy:
            return "-"
        return f"{statistics.median(self.cpu_plain) / statistics.median(self.cpu_deploy):.3f}x"

    def median(self, variant: str) -> float:
        return statistics.median(getattr(self, variant))

    def p10(self, variant: str) -> float:
        return float(np.percentile(getattr(self, variant), 10))

    def gflops(self, variant: str) -> float:
        return 2 * self.macs / (self.median(variant) / 1e3) / 1e9  # latencies are in ms


def gemm_gflops(threads: int, size: int = 2048, repeats: int = 10) -> float:
    """Best-of-`repeats` fp32 GEMM rate of torch.matmul at `threads` threads."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a, b = torch.randn(size, size), torch.randn(size, size)
        for _ in range(3):
            a @ b
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - start)
        return 2 * size**3 / best / 1e9
    finally:
        torch.set_num_threads(previous)


def artifact(model: str, target: str, resolution: tuple[int, int], optimize: bool, out_dir: Path) -> tuple[Path, int]:
    """Export (or reuse the cached, verified artifact) and return (path, MACs of the model as built)."""
    entry = export(model, ExportOptions(target=target, resolution=resolution, out_dir=out_dir, optimize=optimize))
    return Path(entry["path"]), int(entry["macs"])


def time_pair(
    target: str,
    paths: dict[str, Path],
    resolution: tuple[int, int],
    runs: int,
    warmup: int,
    threads: int,
    clock=time.perf_counter,
):
    """Interleaved latencies (ms, on `clock`) of the plain and deploy artifacts, each through its target's runner."""
    backend = get_target(target)
    runners = {variant: backend.load_runner(path, threads=threads) for variant, path in paths.items()}
    x = np.random.default_rng(0).random((1, 3, *resolution), dtype=np.float32)
    return interleaved_latencies(runners, x, runs, warmup, clock)


def markdown(rows: list[Row], model: str, threads: int, runs: int, gemm: tuple[float, float], notes: str) -> str:
    gemm_rate = max(gemm)
    lines = [
        "# Deploy form vs `--no-optimize`: latency per runtime",
        "",
        f"{model}, fp32, batch 1, {threads} threads, {runs} interleaved runs per artifact after warm-up. {notes}",
        f"fp32 GEMM rate of this machine in the same run (torch.matmul 2048x2048, {threads} threads, best of 10): "
        f"{gemm[0]:.1f} GFLOP/s before, {gemm[1]:.1f} GFLOP/s after. GFLOP/s = 2 x MACs of the model as built / "
        "median. Last column: the same pair at 1 thread, median process CPU time (robust to other load on a shared "
        "machine; '-' when skipped).",
        "",
        "| runtime | resolution | GMACs | no-optimize median ms (p10) | deploy median ms (p10) | speedup "
        "| no-optimize GFLOP/s | deploy GFLOP/s | deploy % of GEMM | speedup, 1-thread CPU time |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.target} | {r.resolution} | {r.macs / 1e9:.3f} | {r.median('plain'):.2f} ({r.p10('plain'):.2f}) "
            f"| {r.median('deploy'):.2f} ({r.p10('deploy'):.2f}) | {r.median('plain') / r.median('deploy'):.3f}x "
            f"| {r.gflops('plain'):.1f} | {r.gflops('deploy'):.1f} | {100 * r.gflops('deploy') / gemm_rate:.0f}% "
            f"| {r.cpu_speedup()} |"
        )
    return "\n".join(lines) + "\n"


def machine_notes() -> str:
    cpu, _ = cpu_model_and_flags()
    return f"Machine: {cpu}, {os.cpu_count()} logical CPUs; {load_and_date()}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="efficientvit-b1")
    parser.add_argument("--resolution", action="append", default=None, help="224, 512, 1024 or HxW (repeatable)")
    parser.add_argument("--target", action="append", default=None, help="tflite, onnx, executorch (repeatable)")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out-dir", type=Path, default=Path("export"))
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--no-cpu-check", action="store_true", help="skip the 1-thread CPU-time measurement")
    args = parser.parse_args(argv)
    resolutions = [models.parse_resolution(r) for r in (args.resolution or ["224", "512", "1024"])]
    targets = args.target or ["tflite", "onnx", "executorch"]

    notes = machine_notes()
    gemm_before = gemm_gflops(args.threads)
    print(f"GEMM {gemm_before:.1f} GFLOP/s at {args.threads} threads. {notes}", flush=True)
    rows: list[Row] = []
    for target in targets:
        for resolution in resolutions:
            res = models.format_resolution(resolution)
            started = time.time()
            plain, macs = artifact(args.model, target, resolution, False, args.out_dir)
            deploy, _ = artifact(args.model, target, resolution, True, args.out_dir)
            exported = time.time() - started
            times = time_pair(
                target, {"plain": plain, "deploy": deploy}, resolution, args.runs, args.warmup, args.threads
            )
            rows.append(Row(target, res, macs, times["plain"], times["deploy"]))
            r = rows[-1]
            if not args.no_cpu_check:
                cpu = time_pair(
                    target,
                    {"plain": plain, "deploy": deploy},
                    resolution,
                    args.runs,
                    args.warmup,
                    1,
                    clock=time.process_time,
                )
                r.cpu_plain, r.cpu_deploy = cpu["plain"], cpu["deploy"]
            print(
                f"{target:10s} {res:9s} no-optimize {r.median('plain'):8.2f} ms  deploy {r.median('deploy'):8.2f} ms  "
                f"x{r.median('plain') / r.median('deploy'):.3f}  1-thread CPU {r.cpu_speedup()}  "
                f"(export {exported:.0f}s, timing {time.time() - started - exported:.0f}s)",
                flush=True,
            )
    gemm_after = gemm_gflops(args.threads)
    text = markdown(rows, args.model, args.threads, args.runs, (gemm_before, gemm_after), notes)
    text += f"\nCommand: `{' '.join(['python', 'bench/bench_export.py', *(argv or sys.argv[1:])])}`\n"
    print()
    print(text)
    atomic_write_text(args.results, text)
    print(f"wrote {args.results}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
