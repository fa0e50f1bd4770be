"""Harness overhead on `local` (`make bench-harness`): how much slower is a sweep than the work it must do?

    python bench/bench_harness.py [--sweep bench/sweeps/quick.toml] [--export-dir DIR] [--no-warm]

Runs the sweep twice into fresh results files:
- cold: exports into an empty folder (a temp folder unless --export-dir), so every artifact is converted;
- warm: the same sweep again with every artifact cached (what a second `make demo` costs).
For each it prints
    wall            plan + export + measure, as the user waits for it
    export          time inside the export library
    inference       what the runtimes measured: init (model load) + warm-up runs + timed runs, summed over records
    ratio           wall / (export + inference); the target is <= 1.3 on the cold run
and splits the rest: runtime imports in each fresh runner process (reported by the runner) and what remains
(process start-up, device facts, clock/temperature reads, JSONL appends, thread hand-offs).
Then the quick sweep's latency table.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from effvit_deploy.bench import engine, report, session  # noqa: E402
from effvit_deploy.bench.devices import open_devices  # noqa: E402
from effvit_deploy.bench.records import BenchRecord  # noqa: E402
from effvit_deploy.bench.sweep import load_sweep  # noqa: E402

TARGET_RATIO = 1.3


@dataclass
class Timing:
    label: str
    wall_s: float
    export_s: float
    measure_s: float
    inference_s: float
    imports_s: float
    processes_s: float
    records: list[BenchRecord]

    @property
    def ratio(self) -> float:
        return self.wall_s / (self.export_s + self.inference_s)

    def lines(self) -> list[str]:
        other = self.wall_s - self.export_s - self.inference_s - self.imports_s
        n = len(self.records)
        return [
            f"{self.label}: {n} measurements",
            f"  wall        {self.wall_s:8.1f} s",
            f"  export      {self.export_s:8.1f} s",
            f"  inference   {self.inference_s:8.1f} s  (init + warm-up + timed runs, as the runtimes measured them)",
            f"  ratio       {self.ratio:8.2f}    wall / (export + inference); target <= {TARGET_RATIO}",
            f"  rest: runtime imports {self.imports_s:.1f} s in {n} fresh processes, harness and process start-up "
            f"{other:.1f} s ({other / max(n, 1) * 1000:.0f} ms per measurement)",
            f"  measuring phase alone: {self.measure_s:.1f} s for {self.inference_s:.1f} s of inference "
            f"({self.measure_s / max(self.inference_s, 1e-9):.2f}x)",
        ]


def inference_seconds(rec: BenchRecord) -> float:
    warm = rec.extra.get("warmup_ms") or []
    return ((rec.init_ms or 0.0) + sum(warm) + sum(rec.samples_ms or [])) / 1000.0


def run_once(label: str, sweep: Path, export_dir: Path, results: Path) -> Timing:
    start = time.perf_counter()
    spec = load_sweep(sweep)
    done = session.sweep(open_devices(["local"]), spec, engine.RunOptions.from_sweep(spec), export_dir=export_dir,
                         results=results)
    summary, export_s = done.summary, done.export_seconds
    wall = time.perf_counter() - start
    if summary.failed or summary.device_errors:
        errors = [r.error for r in summary.records if r.error] + list(summary.device_errors.values())
        raise SystemExit(f"{label}: {summary.failed} measurements failed: {errors[:3]}")
    recs = summary.records
    return Timing(label, wall, export_s, summary.seconds, sum(inference_seconds(r) for r in recs),
                  sum((r.extra.get("import_ms") or 0.0) for r in recs) / 1000.0,
                  sum((r.extra.get("process_s") or 0.0) for r in recs), recs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", type=Path, default=ROOT / "bench/sweeps/quick.toml")
    parser.add_argument("--export-dir", type=Path, default=None,
                        help="export folder (default: a fresh temp folder, so the cold run converts everything)")
    parser.add_argument("--no-warm", action="store_true", help="skip the second, cached run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="effvit-harness-") as tmp:
        export_dir = args.export_dir or Path(tmp) / "export"
        cold = run_once("cold (exports converted)", args.sweep, export_dir, Path(tmp) / "cold.jsonl")
        for line in cold.lines():
            print(line, flush=True)
        timings = [cold]
        if not args.no_warm:
            warm = run_once("warm (exports cached)", args.sweep, export_dir, Path(tmp) / "warm.jsonl")
            print("\n".join(warm.lines()), flush=True)
            timings.append(warm)
        print()
        print(report.render(timings[-1].records, "md"))
    verdict = "meets" if cold.ratio <= TARGET_RATIO else "MISSES"
    print(f"harness overhead ratio (cold): {cold.ratio:.2f} — {verdict} the <= {TARGET_RATIO} target")
    return 0 if cold.ratio <= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
