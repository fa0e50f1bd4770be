"""`make bench-highres` (second half): the segmentation export matrix at Cityscapes sizes — which artifacts verify.

    .venv/bin/python bench/bench_highres_exports.py [--model M ...] [--resolution 1024x2048 ...] [--target tflite ...]
        [--precision fp16 ...] [--max-memory 9G] [--calib-count 8] [--out-dir export]

Without --model/--resolution/--precision it runs the plan below (the issue's matrix): fp32 at 1024x2048 for every
seg model, its softmax twin, efficientvit-paper-seg and LR-ASPP; fp16 and int8 at 512x1024 and at 1024x2048 for every
seg model, efficientvit-paper-seg and LR-ASPP (int8 at 1024x2048: the guard estimates up to ~9 GiB, seg-B3 on ONNX;
see its doc).
Every export goes through the pipeline (deploy form, verified in its runtime against PyTorch: fp32 max |Δ| ≤ 1e-4
and per-pixel top-1, fp16/int8 cosine; cached in --out-dir) in its own child process, whose peak resident memory is
reported. The memory guard gets --max-memory: an export whose estimate (softmax twins: including
the N×N attention map) exceeds it is refused before any work and listed with the estimate, so a shared machine never
swaps. int8 calibrates on --calib-count of the quantizer's default images (few, for time: parity only, not accuracy).
Rows are printed as they finish and the table is rewritten after each (bench/results/bench_highres_exports.md,
atomically), so an interrupted run keeps what it measured. This is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_highres import _spawn  # noqa: E402
from bench_timing import cpu_model_and_flags, load_and_date  # noqa: E402

from effvit_deploy import memory_guard  # noqa: E402
from effvit_deploy.fileio import atomic_path  # noqa: E402

SEG = [f"efficientvit-seg-b{i}-cityscapes" for i in range(4)] + [f"efficientvit-seg-b{i}-ade20k" for i in (1, 2, 3)]
OTHERS = ["efficientvit-paper-seg", "lraspp-mobilenetv3-large"]
TARGETS = ["onnx", "tflite", "executorch"]
# (models, resolutions, precisions): fp32 first (the deploy form's main claim), then the reduced precisions
PLAN = [
    (SEG + [f"{m}-softmax" for m in SEG] + OTHERS,
     ["1024x2048"], ["fp32"]),
    (SEG + OTHERS, ["512x1024"], ["fp16", "int8"]),
    (SEG + OTHERS, ["1024x2048"], ["fp16", "int8"]),
]
RESULTS = Path(__file__).resolve().parent / "results" / "bench_highres_exports.md"


def describe(result: dict | None, precision: str) -> list[str]:
    """Table cells (outcome, partitions, export s, export peak RSS MiB) of one export child's result."""
    if result is None:
        return ["failed (see stderr)", "–", "–", "–"]
    if "refused" in result:
        return [f"refused by the memory guard: {result['refused']}", "–", "–", "–"]
    if precision == "fp32":
        parity = f"max abs diff {result['max_abs']:.1e}"
    else:
        parity = f"cosine {result['cosine']:.6f}"
    if result.get("pixel_agreement") is not None:
        parity += f", pixel top-1 agreement {100 * result['pixel_agreement']:.3f}%"
    outcome = ("verified" if result["passed"] else "FAILED parity") + f" ({parity})"
    cached = " (cached)" if result["cached"] else ""
    partitions = "–" if result["partitions"] is None else str(result["partitions"])
    return [outcome, partitions, f"{result['export_seconds']:.0f}{cached}", f"{result['peak_rss_mib']:.0f}{cached}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append")
    parser.add_argument("--resolution", action="append")
    parser.add_argument("--precision", action="append")
    parser.add_argument("--target", action="append")
    parser.add_argument("--max-memory", default="9G")
    parser.add_argument("--calib-count", type=int, default=8)
    parser.add_argument("--out-dir", default="export")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    limit = memory_guard.parse_size(args.max_memory)
    plan = PLAN
    if args.model or args.resolution or args.precision:
        plan = [(args.model or SEG, args.resolution or ["1024x2048"], args.precision or ["fp32"])]
    cpu, _ = cpu_model_and_flags()
    lines = [
        f"Export matrix, memory limit {memory_guard.human(limit)}, int8 calibration {args.calib_count} images; "
        f"CPU {cpu}; {load_and_date()}\n",
        "| model | resolution | target | precision | outcome | partitions | export s | export peak RSS MiB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    print("\n".join(lines), flush=True)
    for models_, resolutions, precisions in plan:
        for precision in precisions:
            for res in resolutions:
                for model in models_:
                    for target in args.target or TARGETS:
                        result = _spawn(["export", model, res, target, args.out_dir, precision, str(limit),
                                         str(args.calib_count)])
                        line = "| " + " | ".join([model, res, target, precision, *describe(result, precision)]) + " |"
                        print(line, flush=True)
                        lines.append(line)
                        args.results.parent.mkdir(parents=True, exist_ok=True)
                        with atomic_path(args.results) as tmp:
                            tmp.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
