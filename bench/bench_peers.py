"""`make bench-peers`: ours against the routes a user would take instead, same weights, timed side by side.

    /work/venv-peers/bin/python bench/bench_peers.py [--model efficientvit-b0 ...] [--resolution 224 ...]
        [--runs 20] [--warmup 3] [--out-dir export] [--build-only]

Needs the peers extra (`pip install '.[peers]'`, see the README section "Against the peers"); a peer that is missing
or does not convert becomes a table row saying why, never a silent gap. For every (model, resolution) it builds the
artifacts of every route in `peers_routes` from the same seed-0 weights (the export pipeline's), checks each one's
output on the verification input against its PyTorch model, counts its ops (`peers_census`), then times all of them
round-robin in this one process: LiteRT (XNNPACK) at 1 and 2 threads for every .tflite, ONNX Runtime at 1 and 2
threads for every .onnx, ExecuTorch (XNNPACK) at 2 threads (its threadpool is process-wide, so one thread count per
process). Every round runs every (artifact, runtime, threads) once, so machine load hits all alike; median and min
are reported. Writes Markdown + JSON (bench/results/bench_peers.{md,json}, atomically) with date, CPU, load, command.

A benchmark, not a test: minutes per resolution, and only as quiet as the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_timing import cpu_model_and_flags, load_and_date  # noqa: E402
from peers_census import summarize  # noqa: E402
from peers_routes import (  # noqa: E402
    ONNX2TF_VARIANTS,
    Artifact,
    RouteUnavailable,
    cached_build,
    litert_torch_default,
    nobuco_tflite,
    onnx2tf,
    ours,
    timm_model,
    torch_onnx_default,
    weights_recipe,
)
from peers_table import Row, markdown, to_json  # noqa: E402

from effvit_deploy import models, parity  # noqa: E402
from effvit_deploy.export.targets import get_target  # noqa: E402
from effvit_deploy.export.targets._common import quiet_stderr_fd  # noqa: E402
from effvit_deploy.export.verify import fixed_input, reference_logits  # noqa: E402
from effvit_deploy.export.weights import seeded_model  # noqa: E402
from effvit_deploy.fileio import atomic_write_text  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "bench_peers.md"
TARGET_OF_RUNTIME = {"litert": "tflite", "onnxruntime": "onnx", "executorch": "executorch"}
THREADS = {"litert": (1, 2), "onnxruntime": (1, 2), "executorch": (2,)}

_ = cached_build  # re-exported for tests


def build_group(name: str, resolution: tuple[int, int], out_dir: Path, say,
                variants: tuple[str, ...] = tuple(ONNX2TF_VARIANTS)) -> tuple[list[Artifact], list[Row], dict]:
    """Every route's artifact for (name, resolution); routes that cannot build become rows with a note."""
    res = models.format_resolution(resolution)
    peers_dir = out_dir / name / res / "peers"
    model = seeded_model(name)
    example = fixed_input(resolution)
    recipe = weights_recipe(model, resolution)
    artifacts: list[Artifact] = []
    failed: list[Row] = []
    references = {"ours": reference_logits(model, example)}

    def attempt(route: str, runtime: str, make) -> None:
        started = time.time()
        try:
            produced = make()
        except RouteUnavailable as exc:
            failed.append(Row(name, res, runtime, 0, route, note=f"not built: {exc}"))
            say(f"  {route}: {exc}")
            return
        produced = produced if isinstance(produced, list) else [Artifact(route, runtime, produced, "ours")]
        artifacts.extend(produced)
        say(f"  {route}: {', '.join(a.path.name for a in produced)} ({time.time() - started:.0f}s)")

    attempt("ours", "all", lambda: ours(name, resolution, out_dir, ("tflite", "onnx", "executorch")))
    # onnx2tf's artifacts take NHWC input; ours does too with --nhwc (the same IO, so the same comparison)
    attempt("ours --nhwc", "litert", lambda: ours(name, resolution, out_dir, ("tflite",), optimize_variants=(True,),
                                                  nhwc=True))
    plain_onnx = next(a.path for a in artifacts if a.route == "ours --no-optimize" and a.runtime == "onnxruntime")
    for label in variants:
        flags = ONNX2TF_VARIANTS[label]
        attempt(label, "litert", lambda f=flags, lb=label: onnx2tf(plain_onnx, peers_dir / f"{_slug(lb)}.tflite", f))
    attempt("torch.onnx defaults", "onnxruntime",
            lambda: torch_onnx_default(model, example, peers_dir / "torch-onnx-defaults.onnx", recipe))
    attempt("nobuco", "litert", lambda: nobuco_tflite(model, example, peers_dir / "nobuco.tflite", recipe))
    try:
        theirs = timm_model(name, model)
    except RouteUnavailable as exc:
        for route, runtime in (("timm -> litert-torch", "litert"), ("timm -> onnx2tf", "litert"),
                               ("timm -> onnxruntime", "onnxruntime"), ("timm -> executorch", "executorch")):
            failed.append(Row(name, res, runtime, 0, route, note=f"not built: {exc}"))
        say(f"  timm: {exc}")
    else:
        references["timm"] = reference_logits(theirs, example)
        trecipe = weights_recipe(theirs, resolution)
        attempt("timm -> litert-torch", "litert",
                lambda: [Artifact("timm -> litert-torch", "litert",
                                  litert_torch_default(theirs, example, peers_dir / "timm-litert.tflite", trecipe),
                                  "timm")])
        timm_built = ours(theirs, resolution, out_dir, ("onnx", "executorch"), name=f"timm-{name}", label="timm",
                          optimize_variants=(False,), reference="timm")
        artifacts.extend(Artifact(f"timm -> {a.runtime}", a.runtime, a.path, "timm") for a in timm_built)
        timm_onnx = next(a.path for a in timm_built if a.runtime == "onnxruntime")
        attempt("timm -> onnx2tf", "litert",
                lambda: [Artifact("timm -> onnx2tf", "litert",
                                  onnx2tf(timm_onnx, peers_dir / "timm-onnx2tf.tflite"), "timm")])
    return artifacts, failed, references


def _say(text: str) -> None:
    print(text, flush=True)


def _first_line(text: str) -> str:
    """The runtime's reason, cut before its instructions (LiteRT's Flex message goes on for lines)."""
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "(no message)")
    return line.split(" Make sure ")[0][:200] + (" (" + line.split("Node number ")[1][:60] + ")"
                                                 if "Node number " in line else "")


def _slug(label: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in label).strip("-")


def census_of(artifact: Artifact):
    with quiet_stderr_fd():
        return summarize(get_target(TARGET_OF_RUNTIME[artifact.runtime]).census(artifact.path))


def match_layout(output: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """onnx2tf and nobuco return dense (segmentation) outputs channels-last: bring them back to NCHW."""
    if output.shape != reference.shape and output.ndim == 4 and output.shape == (
            reference.shape[0], *reference.shape[2:], reference.shape[1]):
        return output.transpose(0, 3, 1, 2)
    return output


def time_group(name: str, resolution: tuple[int, int], artifacts: list[Artifact], references: dict, runs: int,
               warmup: int) -> list[Row]:
    res = models.format_resolution(resolution)
    example = fixed_input(resolution).numpy()
    runners, rows = {}, {}
    for a in artifacts:
        try:
            census = census_of(a)
        except RuntimeError as exc:  # e.g. onnx2tf's seg graph needs TF's Flex ops (FlexResizeBicubic): no LiteRT run
            rows[(a.route, a.runtime, 0)] = Row(name, res, a.runtime, 0, a.route,
                                                note=f"built, does not run here: {_first_line(str(exc))}")
            continue
        for threads in THREADS[a.runtime]:
            with quiet_stderr_fd():
                run = (litert_runner(a.path, threads) if a.runtime == "litert"
                       else get_target(TARGET_OF_RUNTIME[a.runtime]).load_runner(a.path, threads=threads))
            reference = references[a.reference]
            out = match_layout(np.asarray(run(example)), reference)
            key = (a.route, a.runtime, threads)
            rows[key] = Row(name, res, a.runtime, threads, a.route, parity=parity.compare(reference, out, "fp32"),
                            census=census)
            runners[key] = run
    x = np.random.default_rng(0).random((1, 3, *resolution), dtype=np.float32)
    for key, times in shuffled_rounds(runners, x, runs, warmup).items():
        rows[key].times_ms = times
    # 1-thread runners compute in the calling thread (XNNPACK and ONNX Runtime run inline at one thread), so its CPU
    # time is what the artifact costs, whatever else the shared machine is doing
    single = {key: run for key, run in runners.items() if key[2] == 1}
    for key, times in shuffled_rounds(single, x, runs, 0, clock=time.thread_time).items():
        rows[key].cpu_ms = times
    order = {"litert": 0, "onnxruntime": 1, "executorch": 2}
    return sorted(rows.values(), key=lambda r: (order[r.runtime], r.threads, r.median or 0))


def litert_runner(path: Path, threads: int):
    """Like the tflite target's runner (default XNNPACK delegate), but an NHWC artifact (onnx2tf's, ours --nhwc)
    gets its input laid out once per input array, outside the timed call: an app would hand it NHWC pixels, so the
    NCHW->NHWC copy is not the artifact's cost."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=threads)
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    shape = tuple(int(d) for d in inp["shape"])
    channels_last = len(shape) == 4 and shape[3] == 3 and shape[1] != 3
    laid_out: list = [None, None]  # [source array, its copy in the artifact's layout]

    def run(x: np.ndarray) -> np.ndarray:
        if laid_out[0] is not x:
            laid_out[:] = [x, np.ascontiguousarray(x.transpose(0, 2, 3, 1) if channels_last else x, inp["dtype"])]
        interpreter.set_tensor(inp["index"], laid_out[1])
        interpreter.invoke()
        return np.array(interpreter.get_tensor(out["index"]), dtype=np.float32)

    return run


def shuffled_rounds(runners: dict, x: np.ndarray, runs: int, warmup: int, clock=time.perf_counter,
                    gap_s: float = 0.003, seed: int = 0) -> dict:
    """Like bench_timing.interleaved_latencies, but each round runs the artifacts in a fresh random order with a short
    pause before each run: thread pools that spin after a run (ONNX Runtime's, XNNPACK's) would otherwise always
    slow down the same neighbour in a fixed order."""
    rng = np.random.default_rng(seed)
    keys = list(runners)
    for _ in range(warmup):
        for key in keys:
            runners[key](x)
    times: dict = {key: [] for key in keys}
    for _ in range(runs):
        for i in rng.permutation(len(keys)):
            key = keys[i]
            time.sleep(gap_s)
            start = clock()
            runners[key](x)
            times[key].append((clock() - start) * 1e3)
    return times



def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", default=None)
    parser.add_argument("--resolution", action="append", default=None, help="224, 512, 1024 or HxW (repeatable)")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--out-dir", type=Path, default=Path("export"))
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--build-only", action="store_true", help="build and cache the artifacts, time nothing")
    parser.add_argument("--executorch-threads", type=int, default=2,
                        help="ExecuTorch's one process-wide thread count (1 adds its CPU-time figure)")
    parser.add_argument("--onnx2tf-variant", action="append", choices=list(ONNX2TF_VARIANTS), default=None,
                        help="onnx2tf flag sets to convert with (repeatable; default: all)")
    args = parser.parse_args(argv)
    names = args.model or ["efficientvit-b0", "efficientvit-b1"]
    resolutions = [models.parse_resolution(r) for r in (args.resolution or ["224", "512", "1024"])]
    torch.set_num_threads(2)
    THREADS["executorch"] = (args.executorch_threads,)

    cpu, _ = cpu_model_and_flags()
    load_note = load_and_date()
    rows: list[Row] = []
    for name in names:
        for resolution in resolutions:
            res = models.format_resolution(resolution)
            _say(f"{name} {res}: building ({time.strftime('%H:%M:%S')})")
            artifacts, failed, references = build_group(name, resolution, args.out_dir, _say,
                                                        tuple(args.onnx2tf_variant or ONNX2TF_VARIANTS))
            if args.build_only:
                continue
            started = time.time()
            group = time_group(name, resolution, artifacts, references, args.runs, args.warmup) + failed
            rows += group
            print(f"{name} {res}: timed {len(artifacts)} artifacts in {time.time() - started:.0f}s", flush=True)
            partial = markdown(rows, "(partial)")
            atomic_write_text(args.results, partial)
    if args.build_only:
        return 0
    command = " ".join(["python", "bench/bench_peers.py", *(argv if argv is not None else sys.argv[1:])])
    header = (f"# Ours vs the peers\n\nfp32, batch 1, {args.runs} interleaved rounds after {args.warmup} warm-up. "
              f"Machine: {cpu}, {os.cpu_count()} logical CPUs (shared: other jobs ran); {load_note} "
              f"Command: `{command}`")
    text = markdown(rows, header)
    print(text)
    atomic_write_text(args.results, text)
    meta = {"cpu": cpu, "load": load_note, "command": command, "runs": args.runs, "warmup": args.warmup}
    atomic_write_text(args.results.with_suffix(".json"), json.dumps(to_json(rows, meta), indent=1, default=str))
    print(f"wrote {args.results} and {args.results.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
