"""Native runners vs the Python runner of the same runtime on this machine (`make bench-runners`), side by side.

    python bench/bench_runners.py --runner-dir build/runners/x86_64 [--export-dir export] [--runs 50 --warmup 10]

For every model x resolution x target (fp32, 1 thread, pinned to one CPU) it measures the artifact with the native
runner and then with the Python runner, alternating configuration by configuration so slow drift of the machine
hits both alike, all in one run. Prints one Markdown table: each runner's central statistic (median; `mean` where
the runner prints only a mean: benchmark_model 2.14) and minimum, the runtime versions, native / python (central
statistics), and device parity.
Results are kept in OUT/bench-runners.jsonl.
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from effvit_deploy.bench import engine  # noqa: E402
from effvit_deploy.bench.devices import open_devices  # noqa: E402
from effvit_deploy.bench.records import BenchRecord  # noqa: E402
from effvit_deploy.bench.store import ResultStore  # noqa: E402
from effvit_deploy.bench.sweep import Configuration, SweepSpec  # noqa: E402
from effvit_deploy.vocabulary import TARGETS  # noqa: E402

MODELS = ("efficientvit-b0", "efficientvit-b1")
RESOLUTIONS = ((224, 224), (512, 512))
PYTHON_PACKAGES = {"tflite": "ai-edge-litert", "onnx": "onnxruntime", "executorch": "executorch"}
NATIVE_PACKAGES = {"tflite": "tflite-runtime", "onnx": "onnxruntime", "executorch": "executorch"}


def central(rec: BenchRecord) -> tuple[float, str]:
    stats = rec.stats or {}
    if stats.get("median_ms") is not None:
        return float(stats["median_ms"]), "median"
    return float(stats["mean_ms"]), "mean"


def measure_one(config: Configuration, runner: str, args: argparse.Namespace, store: ResultStore) -> BenchRecord:
    spec = SweepSpec(name="bench-runners", configurations=(config,), runs=args.runs, warmup=args.warmup,
                     cores=args.cores)
    options = engine.RunOptions.from_sweep(spec, runner=runner, runner_dir=args.runner_dir, rerun=True)
    devices = open_devices(["local"])
    plans = engine.plan_sweep(devices, spec, options)
    artifacts, _ = engine.export_artifacts(spec.configurations, args.export_dir)
    summary = engine.run_sweep(plans, artifacts, store, options)
    [rec] = summary.records
    return rec


def cell(rec: BenchRecord) -> str:
    """Central statistic with its name, and the minimum (the steadiest figure on a shared machine)."""
    if not rec.ok:
        return f"error: {rec.error}"
    value, kind = central(rec)
    low = (rec.stats or {}).get("min_ms")
    return f"{value:.2f} ({kind})" + (f", min {low:.2f}" if low is not None else "")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runner-dir", type=Path, required=True)
    p.add_argument("--export-dir", type=Path, default=ROOT / "export")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--cores", default="1", help="taskset mask (default 1: CPU 0 only)")
    args = p.parse_args()
    store = ResultStore(args.out / "bench-runners.jsonl")
    rows = []
    for model in MODELS:
        for res in RESOLUTIONS:
            for target in TARGETS:
                config = Configuration(model, res, target, threads=1)
                native = measure_one(config, "native", args, store)
                python = measure_one(config, "python", args, store)
                rows.append((config, native, python))
                print(f"{model}@{res[0]} {target}: native {cell(native)}, python {cell(python)}", file=sys.stderr)
    cpu = _cpu_name()
    print(f"{dt.date.today().isoformat()}, {cpu}, {platform.system()} {platform.machine()}, 1 thread pinned to "
          f"mask {args.cores}, fp32, runs={args.runs} warmup={args.warmup}; "
          f"`python bench/bench_runners.py --runner-dir {args.runner_dir}`\n")
    print("| model | target | native runner (runtime) | ms | Python runner (runtime) | ms | native / python | "
          "parity native · python |")
    print("|:---|:---|:---|---:|:---|---:|---:|:---|")
    for config, native, python in rows:
        ratio = "–"
        if native.ok and python.ok:
            ratio = f"{central(native)[0] / central(python)[0]:.2f}"
        nver = native.versions.get(NATIVE_PACKAGES[config.target], "?")
        pver = python.versions.get(PYTHON_PACKAGES[config.target], "?")
        parity = " · ".join(str((r.device_parity or {}).get("status", "–")) for r in (native, python))
        print(f"| {config.model}@{config.resolution_text} | {config.target} | {native.runner.removeprefix('native-')} "
              f"({NATIVE_PACKAGES[config.target]} {nver}) | {cell(native)} | {python.runner} "
              f"({PYTHON_PACKAGES[config.target]} {pver}) | {cell(python)} | {ratio} | {parity} |")
    return 0


def _cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or "unknown CPU"
    for line in out.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


if __name__ == "__main__":
    sys.exit(main())
