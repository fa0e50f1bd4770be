"""`make bench-highres`: segmentation at Cityscapes resolutions — latency, peak memory and attention MAC share.

    .venv/bin/python bench/bench_highres.py [--model efficientvit-seg-b0-cityscapes ...] [--resolution 512x1024 ...]
        [--target tflite] [--threads 1] [--runs 5] [--out-dir export] [--max-map-gib 2.5] [--max-memory 9G]
        [--results bench/results/bench_highres.md] [--test-sizes] [--macs-only]

For every model and resolution: the MACs and the attention matmuls' share of them (`effvit_deploy.models.profile` and
each LiteMLA's `attention_macs`), then the artifact is exported through the pipeline (deploy form, verified against
PyTorch, cached in --out-dir) in a child process, and run in a second, fresh child process: median latency over
--runs timed runs after one warm-up, as wall clock and as process CPU time (which a busy shared machine does not
inflate at 1 thread), and the child's peak resident memory (ru_maxrss: runtime + model + activations, one process
per artifact so one peak cannot hide another). The export child's peak memory is reported too.
Softmax twins whose largest N×N attention map (fp32, `map_bytes` in the deploy info) exceeds --max-map-gib are
skipped and listed with what they would need: on a shared 24 GiB machine the converter holds several copies.
The export child passes --max-memory to the memory guard, so an export estimated above it is refused (with the
estimate) rather than swapping. The paper's Cityscapes test sizes (first README: B0 960x1920, B1 896x1792, B3
1184x2368) are measured with `--test-sizes` (each with its twin and LR-ASPP); `make bench-highres` runs them too.
The table is printed and written to --results (atomically). This is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_timing import cpu_model_and_flags, load_and_date  # noqa: E402

from effvit_deploy import models  # noqa: E402
from effvit_deploy.fileio import atomic_path  # noqa: E402
from effvit_deploy.memory_guard import parse_size  # noqa: E402
from effvit_deploy.models.efficientvit import LiteMLA  # noqa: E402
from effvit_deploy.models.memory import attention_map_bytes  # noqa: E402

DEFAULT_MODELS = [
    "efficientvit-seg-b0-cityscapes",
    "efficientvit-seg-b0-cityscapes-softmax",
    "efficientvit-seg-b1-cityscapes",
    "efficientvit-seg-b1-cityscapes-softmax",
    "efficientvit-paper-seg",
    "efficientvit-paper-seg-softmax",
    "lraspp-mobilenetv3-large",
]
DEFAULT_RESOLUTIONS = ["256x512", "512x1024", "1024x2048"]
# --test-sizes: the first README's per-model Cityscapes test sizes (../shared/reference/efficientvit_seg_facts.md §4),
# each model with its softmax twin and the LR-ASPP baseline at the same size
TEST_SIZES = [
    ("960x1920", ["efficientvit-seg-b0-cityscapes", "efficientvit-seg-b0-cityscapes-softmax"]),
    ("896x1792", ["efficientvit-seg-b1-cityscapes", "efficientvit-seg-b1-cityscapes-softmax"]),
    ("1184x2368", ["efficientvit-seg-b3-cityscapes", "efficientvit-seg-b3-cityscapes-softmax"]),
]
BASELINE = "lraspp-mobilenetv3-large"
RESULTS = Path(__file__).resolve().parent / "results" / "bench_highres.md"


def attention_share(name: str, resolution: tuple[int, int]) -> tuple[int, int, int]:
    """(params, MACs, attention-matmul MACs) at `resolution`, counted on the meta device (no weights, no arithmetic)."""
    with torch.device("meta"):
        model = models.build(name)
    attention = 0

    def hook(module: torch.nn.Module, args: tuple) -> None:
        nonlocal attention
        attention += module.attention_macs(*args[0].shape[-2:])

    handles = [m.register_forward_pre_hook(hook) for m in model.modules() if isinstance(m, LiteMLA)]
    try:
        params, macs = models.profile(model, resolution)
    finally:
        for h in handles:
            h.remove()
    return params, macs, attention


def _child(argv: list[str]) -> None:
    """Run in a fresh process: `export MODEL RES TARGET OUT` or `measure PATH TARGET THREADS RUNS`; print JSON."""
    if argv[0] == "export":
        from effvit_deploy.errors import InvalidInputError
        from effvit_deploy.export import ExportOptions, export

        # optional after OUT: PRECISION MAX_MEMORY_BYTES CALIB_COUNT ("-" = default)
        model, res, target, out, precision, max_memory, calib_count = (argv[1:] + ["fp32", "-", "-"])[:7]
        options = ExportOptions(target=target, resolution=res, out_dir=out, precision=precision,
                                max_memory=None if max_memory == "-" else int(max_memory),
                                calib_count=None if calib_count == "-" or precision != "int8" else int(calib_count))
        try:
            entry = export(model, options)
        except InvalidInputError as exc:  # the memory guard's refusal, with its estimate: a result, not a failure
            print("RESULT " + json.dumps({"refused": str(exc)}))
            return
        parity, census = entry["parity"], entry["census"]
        result = {"path": entry["path"], "max_abs": parity["max_abs"], "cached": entry["cached"],
                  "passed": parity["passed"], "cosine": parity.get("cosine"),
                  "pixel_agreement": parity.get("pixel_agreement"), "partitions": census.get("partitions"),
                  "export_seconds": entry["export_seconds"],
                  "map_bytes": max((a["map_bytes"] for a in entry["attention"]), default=0)}
    else:
        import numpy as np

        from effvit_deploy.export.targets import get_target
        from effvit_deploy.export.verify import fixed_input

        path, target, threads, runs = argv[1], argv[2], int(argv[3]), int(argv[4])
        run = get_target(target).load_runner(Path(path), threads=threads)
        shape = json.loads(argv[5])
        x = fixed_input((shape[2], shape[3])).numpy().astype(np.float32)
        run(x)  # warm-up (allocations, XNNPACK packing)
        times, cpu = [], []
        for _ in range(runs):
            start, start_cpu = time.perf_counter(), time.process_time()
            run(x)
            times.append((time.perf_counter() - start) * 1e3)
            cpu.append((time.process_time() - start_cpu) * 1e3)
        # process CPU time: what the runtime computed, robust to a busy shared machine (exact at 1 thread)
        result = {"median_ms": statistics.median(times), "min_ms": min(times), "cpu_ms": statistics.median(cpu),
                  "cpu_min_ms": min(cpu)}
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(result))


def _spawn(args: list[str]) -> dict | None:
    proc = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
    print(f"  failed: {' '.join(args[:3])}: {tail}", file=sys.stderr)
    return None


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append")
    parser.add_argument("--resolution", action="append")
    parser.add_argument("--target", default="tflite")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out-dir", default="export")
    parser.add_argument("--max-map-gib", type=float, default=2.5)
    parser.add_argument("--max-memory", default="9G")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--test-sizes", action="store_true",
                        help="the paper's Cityscapes test sizes, each with its models, twins and the baseline")
    parser.add_argument("--macs-only", action="store_true",
                        help="only the counted columns (MACs, attention share, map): meta tensors, seconds")
    args = parser.parse_args()
    if args.test_sizes:
        plan = [(res, [*names, BASELINE]) for res, names in TEST_SIZES]
    else:
        plan = [(res, args.model or DEFAULT_MODELS) for res in args.resolution or DEFAULT_RESOLUTIONS]
    limit = str(parse_size(args.max_memory))
    cpu, _ = cpu_model_and_flags()
    header = (
        f"{args.target} fp32, {args.threads} thread(s), median of {args.runs} runs; CPU {cpu}; {load_and_date()}\n\n"
        "| model | resolution | GMACs | attention share | largest att. map | latency ms (median / min) "
        "| CPU ms (median / min) "
        "| run peak RSS MiB | export peak RSS MiB |\n|---|---|---|---|---|---|---|---|---|"
    )
    print(header, flush=True)
    lines = [header]
    for res_text, names in plan:
        res = models.parse_resolution(res_text)
        res_name = models.format_resolution(res)
        for name in names:
            _, macs, att = attention_share(name, res)
            map_bytes = attention_map_bytes(name, res)  # = the deploy info's largest `map_bytes`
            cells = [name, res_name, f"{macs / 1e9:.2f}", f"{100 * att / macs:.1f}%", _mib(map_bytes)]
            if args.macs_only:
                cells += ["not run (--macs-only)"] + ["–"] * 3
            elif map_bytes > args.max_map_gib * 2**30:
                cells += [f"skipped (N×N map {map_bytes / 2**30:.1f} GiB > --max-map-gib)", "–", "–", "–"]
            else:
                exported = _spawn(["export", name, res_name, args.target, args.out_dir, "fp32", limit])
                measured = (
                    _spawn(["measure", exported["path"], args.target, str(args.threads), str(args.runs),
                            json.dumps([1, 3, *res])])
                    if exported and "path" in exported
                    else None
                )
                if exported and "refused" in exported:
                    cells += [f"refused: {exported['refused'].split(' (estimate)')[0]}", "–", "–", "–"]
                elif measured is None:
                    cells += ["failed", "–", "–", _rss(exported)]
                else:
                    wall = f"{measured['median_ms']:.1f} / {measured['min_ms']:.1f}"
                    cpu_ms = f"{measured['cpu_ms']:.1f} / {measured['cpu_min_ms']:.1f}"
                    cells += [wall, cpu_ms, _rss(measured), _rss(exported)]
            line = "| " + " | ".join(cells) + " |"
            print(line, flush=True)
            lines.append(line)
            args.results.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(args.results) as tmp:  # after every row: an interrupted run keeps what it measured
                tmp.write_text("\n".join(lines) + "\n")


def _mib(n: int) -> str:
    if n == 0:
        return "–"  # no attention
    return f"{n / 2**20:.2f} MiB" if n < 2**30 else f"{n / 2**30:.2f} GiB"


def _rss(result: dict | None) -> str:
    if not result:
        return "–"
    cached = " (cached)" if result.get("cached") else ""
    return f"{result['peak_rss_mib']:.0f}{cached}"


if __name__ == "__main__":
    main()
