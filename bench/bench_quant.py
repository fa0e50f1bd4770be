"""`make bench-quant`: int8 against fp32 per runtime and resolution on this machine, measured in one process.

    .venv/bin/python bench/bench_quant.py [--model efficientvit-b1] [--resolution 224 --resolution 512]
        [--target tflite --target executorch --target onnx] [--runs 30] [--threads 2] [--out-dir export]

For each target and resolution it exports the model twice through the pipeline (`effvit_deploy.export.export`, so
both artifacts are verified and cached in --out-dir): fp32 and int8 (bundled calibration photos, --int8-attention
auto). Both are loaded in their own runtime (LiteRT interpreter + XNNPACK, ExecuTorch + XNNPACK, ONNX Runtime CPU) at
the same thread count, warmed up, and invoked alternately (fp32, int8, fp32, ...) so load drifts hit both alike.
Reported: median and 10th-percentile latency, speedup = fp32 median / int8 median, the int8 artifact's held-out
accuracy against fp32 PyTorch (cosine, SQNR, top-1 agreement, from its manifest) and its int8 census (XNNPACK
partitions, quantize/dequantize boundaries). The table is printed and written to bench/results/bench_quant.md.

What this predicts and what it does not: it measures x86 kernels, on whatever int8 instructions this CPU has (the
run prints them from /proc/cpuinfo). With AVX512-VNNI / AVX-VNNI, XNNPACK's QS8 kernels use an int8 dot product much
like ARM's SDOT; with plain AVX2 they multiply in 16 bits and int8 wins mostly on memory traffic. Either way the
ratio does not transfer to a phone: core width, caches and memory bandwidth differ, and phones with ARMv8.2
dot-product (SDOT/UDOT) or i8mm typically see 2-4x from int8 convolutions. What carries over: the accuracy figures,
the op census (what runs in int8, where the fp32 islands are, one XNNPACK partition or not) and the relative weight
of the fp32 islands, because the phone runs the same artifact. ONNX Runtime on x86 prefers uint8 activations; the
artifact uses int8 activations (what ARM kernels prefer), so its x86 latency is the least representative row.

This is a benchmark, not a test: it takes many minutes, and the numbers are only as quiet as the machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_timing import cpu_model_and_flags, interleaved_latencies, load_and_date  # noqa: E402

from effvit_deploy import models  # noqa: E402
from effvit_deploy.export import ExportOptions, export  # noqa: E402
from effvit_deploy.export.targets import get_target  # noqa: E402
from effvit_deploy.fileio import atomic_write_text  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "bench_quant.md"
MUST_NOT_BE_SLOWER = ("tflite", "executorch")  # the speed criterion on this CPU


@dataclass
class Row:
    target: str
    resolution: str
    fp32: list[float]
    int8: list[float]
    entry: dict = field(default_factory=dict)  # the int8 manifest entry

    def median(self, variant: str) -> float:
        return statistics.median(getattr(self, variant))

    def p10(self, variant: str) -> float:
        return float(np.percentile(getattr(self, variant), 10))

    @property
    def speedup(self) -> float:
        return self.median("fp32") / self.median("int8")


def cpu_notes() -> str:
    """CPU model, logical CPUs, the int8-relevant ISA flags and the load average."""
    cpu, flags = cpu_model_and_flags()
    int8 = [f for f in ("avx2", "avx512bw", "avx512_vnni", "avx_vnni", "amx_int8") if f in flags]
    return (f"Machine: {cpu}, {os.cpu_count()} logical CPUs, int8-relevant ISA: {', '.join(int8) or 'none'}; "
            f"{load_and_date()}")


def time_pair(target: str, paths: dict[str, Path], resolution: tuple[int, int], runs: int, warmup: int,
              threads: int) -> dict[str, list[float]]:
    """Interleaved latencies (ms) of the fp32 and int8 artifacts, each through its target's runner."""
    backend = get_target(target)
    runners = {variant: backend.load_runner(path, threads=threads) for variant, path in paths.items()}
    x = np.random.default_rng(0).standard_normal((1, 3, *resolution), dtype=np.float32)
    return interleaved_latencies(runners, x, runs, warmup)


def markdown(rows: list[Row], model: str, threads: int, runs: int, notes: str) -> str:
    lines = [
        "# int8 vs fp32: latency and accuracy per runtime",
        "",
        f"{model}, batch 1, {threads} threads, {runs} interleaved runs per artifact after warm-up, random weights "
        f"(seed 0), int8 calibrated on the bundled scikit-image photos, --int8-attention auto. {notes}",
        "",
        "| runtime | resolution | fp32 median ms (p10) | int8 median ms (p10) | fp32/int8 | int8 not slower? "
        "| cosine | SQNR dB | top-1 agr. | XNNPACK partitions | q/dq boundaries (attention / hard-swish / other) "
        "| attention cores int8 |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        info = r.entry.get("int8") or {}
        acc = info.get("accuracy", {})
        census = info.get("census", {})
        places = census.get("boundaries_by_place", {})
        other = sum(v for k, v in places.items() if k not in ("attention", "hardswish"))
        cores = info.get("attention", [])
        verdict = ("yes" if r.speedup >= 1.0 else "**no**") if r.target in MUST_NOT_BE_SLOWER else "(not required)"
        lines.append(
            f"| {r.target} | {r.resolution} | {r.median('fp32'):.2f} ({r.p10('fp32'):.2f}) "
            f"| {r.median('int8'):.2f} ({r.p10('int8'):.2f}) | {r.speedup:.2f}x | {verdict} "
            f"| {acc.get('cosine', float('nan')):.5f} | {acc.get('sqnr_db', 'n/a')} "
            f"| {acc.get('top1_agreement', 'n/a')} "
            f"| {census.get('runtime', {}).get('partitions', 'n/a')} "
            f"| {census.get('boundaries', 'n/a')} ({places.get('attention', 0)} / {places.get('hardswish', 0)} / "
            f"{other}) | {sum(c['choice'] == 'int8' for c in cores)}/{len(cores)} |"
        )
    lines += [
        "",
        "Top-1 agreement is meaningless with random weights (near-flat logits: ties flip); cosine and SQNR on the "
        "held-out photos are the accuracy figures to read. Boundaries: every quantize/dequantize between int8 and "
        "fp32 compute, including the one at each end; the hard-swish ones exist because XNNPACK (TFLite delegate "
        "and ExecuTorch partitioner) takes hard-swish only in fp32, the attention ones because no runtime here has "
        "int8 batched matmul inside XNNPACK or a usable int8 division.",
        "",
        _prediction_note(notes),
    ]
    return "\n".join(lines) + "\n"


def _prediction_note(notes: str) -> str:
    dot = "vnni" in notes
    isa = ("This CPU reports an x86 int8 dot-product instruction (VNNI), which XNNPACK's QS8 kernels use, so int8 "
           "here gains from arithmetic as well as from memory traffic." if dot else
           "This CPU has no int8 dot-product instruction, so int8 convolutions here run on 16-bit multiply-add paths "
           "and win mostly on memory traffic.")
    return (
        f"What this does and does not predict for phones: {isa} The speedup ratio does not transfer: phone cores, "
        "caches and memory differ, and ARM cores with SDOT/UDOT (ARMv8.2+) or i8mm typically run XNNPACK's QS8 "
        "convolutions 2-4x faster than fp32; measure on the phone (effvit-bench run --device adb:...). What carries "
        "over: the accuracy figures, the op census (all convs/FCs int8, fp32 islands, one XNNPACK partition) and "
        "the relative weight of the fp32 islands, because the phone runs the same artifact. ONNX Runtime on x86 "
        "prefers uint8 activations; the artifact uses int8 ones (what ARM kernels prefer), so its x86 latency is "
        "the least representative row."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="efficientvit-b1")
    parser.add_argument("--resolution", action="append", default=None, help="224, 512 or HxW (repeatable)")
    parser.add_argument("--target", action="append", default=None, help="tflite, executorch, onnx (repeatable)")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out-dir", type=Path, default=Path("export"))
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    resolutions = [models.parse_resolution(r) for r in (args.resolution or ["224", "512"])]
    targets = args.target or ["tflite", "executorch", "onnx"]

    notes = cpu_notes()
    print(notes, flush=True)
    rows: list[Row] = []
    for resolution in resolutions:
        for target in targets:
            res = models.format_resolution(resolution)
            started = time.time()
            fp32 = export(args.model, ExportOptions(target=target, resolution=resolution, out_dir=args.out_dir))
            int8 = export(args.model, ExportOptions(target=target, resolution=resolution, precision="int8",
                                                      out_dir=args.out_dir))
            exported = time.time() - started
            times = time_pair(target, {"fp32": Path(fp32["path"]), "int8": Path(int8["path"])}, resolution,
                              args.runs, args.warmup, args.threads)
            rows.append(Row(target, res, times["fp32"], times["int8"], int8))
            r = rows[-1]
            acc = (int8.get("int8") or {}).get("accuracy", {})
            print(
                f"{target:10s} {res:9s} fp32 {r.median('fp32'):8.2f} ms  int8 {r.median('int8'):8.2f} ms  "
                f"x{r.speedup:.2f}  cosine {acc.get('cosine')}  SQNR {acc.get('sqnr_db')} dB  "
                f"(export {exported:.0f}s, timing {time.time() - started - exported:.0f}s)",
                flush=True,
            )
    text = markdown(rows, args.model, args.threads, args.runs, notes)
    text += f"\nCommand: `{' '.join(['python', 'bench/bench_quant.py', *(argv or sys.argv[1:])])}`\n"
    print()
    print(text)
    atomic_write_text(args.results, text)
    print(f"wrote {args.results}")
    slower = [r for r in rows if r.target in MUST_NOT_BE_SLOWER and r.speedup < 1.0]
    for r in slower:
        print(f"int8 slower than fp32: {r.target} {r.resolution} ({r.speedup:.2f}x)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
