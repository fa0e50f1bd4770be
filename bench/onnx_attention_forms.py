"""Attention forms on ONNX Runtime side by side: as built, 3 q/k/v convs (`DeployLiteMLA`), one (`JoinedLiteMLA`).

    .venv/bin/python bench/onnx_attention_forms.py [--model efficientvit-b0] [--resolution 224 ...] [--runs 30]
        [--profile]

For each (model, resolution) it converts the three module forms with the ONNX target (torch.onnx dynamo + onnxsim,
exactly what `effvit-export --target onnx` writes), checks parity against the PyTorch model, counts nodes before and
after ONNX Runtime's own graph optimizations, and times all three at 1 thread interleaved in one process (random order
per round; calling-thread CPU time, which holds on a shared machine: ORT computes inline at one thread). `--profile`
adds ORT's per-node profile summed per op type (`enable_profiling`), to see which ops a form adds or removes.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_peers import shuffled_rounds  # noqa: E402
from bench_timing import cpu_model_and_flags, load_and_date  # noqa: E402

from effvit_deploy import models, parity  # noqa: E402
from effvit_deploy.export.deploy import to_deploy_form  # noqa: E402
from effvit_deploy.export.targets import get_target  # noqa: E402
from effvit_deploy.export.verify import fixed_input, reference_logits  # noqa: E402
from effvit_deploy.export.weights import seeded_model  # noqa: E402

EVERY_BLOCK = 10**9


def session(path: Path, profile_prefix: str | None = None, optimized: Path | None = None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if optimized is not None:
        options.optimized_model_filepath = str(optimized)
    if profile_prefix is not None:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def node_ops(path: Path) -> collections.Counter:
    import onnx

    return collections.Counter(n.op_type for n in onnx.load(str(path), load_external_data=False).graph.node)


def op_profile(path: Path, x: np.ndarray, runs: int, work: Path) -> dict[str, float]:
    """ms per run summed per op type from ORT's profile (kernel time of every node, `runs` runs averaged)."""
    sess = session(path, profile_prefix=str(work / path.stem))
    name = sess.get_inputs()[0].name
    for _ in range(3):
        sess.run(None, {name: x})
    sess.end_profiling()
    sess = session(path, profile_prefix=str(work / path.stem))
    for _ in range(runs):
        sess.run(None, {name: x})
    events = json.loads(Path(sess.end_profiling()).read_text())
    per_type: dict[str, float] = collections.defaultdict(float)
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            per_type[event["args"]["op_name"]] += event["dur"] / 1e3 / runs
    return dict(per_type)


def forms(thresholds: list[int]) -> dict[str, int | None]:
    """Form label -> joined_qkv_max_tokens (None: the model as built)."""
    rule = get_target("onnx").joined_qkv_max_tokens
    found: dict[str, int | None] = {"as built": None, "three q/k/v convs": 0, "one qkv conv": EVERY_BLOCK,
                                    f"export: joined up to {rule} tokens": rule}
    found.update({f"joined up to {t} tokens": t for t in thresholds if t != rule})
    return found


def build(name: str, resolution: tuple[int, int], work: Path, labels: dict[str, int | None]
          ) -> tuple[dict[str, Path], dict[str, dict]]:
    model = seeded_model(name)
    example = fixed_input(resolution)
    reference = reference_logits(model, example)
    target = get_target("onnx")
    modules = {form: model if t is None else to_deploy_form(model, resolution, joined_qkv_max_tokens=t)[0]
               for form, t in labels.items()}
    paths, checks = {}, {}
    for form, module in modules.items():
        path = work / f"{name}-{models.format_resolution(resolution)}-{len(paths)}.onnx"
        target.convert(module, example, path, precision="fp32")
        out = target.load_runner(path)(example.numpy())
        optimized = path.with_suffix(".ort.onnx")
        session(path, optimized=optimized)
        checks[form] = {"parity": parity.compare(reference, out, "fp32"), "nodes": sum(node_ops(path).values()),
                        "ort_nodes": node_ops(optimized)}
        paths[form] = path
    return paths, checks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", default=None)
    parser.add_argument("--resolution", action="append", default=None)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--max-tokens", type=int, action="append", default=[],
                        help="also a form joined up to this many tokens (repeatable)")
    args = parser.parse_args(argv)
    cpu, _ = cpu_model_and_flags()
    print(f"{cpu}; {load_and_date()}")
    for name in args.model or ["efficientvit-b0"]:
        for res in args.resolution or ["224"]:
            resolution = models.parse_resolution(res)
            with tempfile.TemporaryDirectory(prefix="onnx-forms-") as tmp:
                work = Path(tmp)
                labels = forms(args.max_tokens)
                paths, checks = build(name, resolution, work, labels)
                x = np.random.default_rng(0).random((1, 3, *resolution), dtype=np.float32)
                runners = {form: get_target("onnx").load_runner(p, threads=1) for form, p in paths.items()}
                times = shuffled_rounds(runners, x, args.runs, args.warmup, clock=time.thread_time)
                base = min(times["as built"])
                print(f"\n{name} {models.format_resolution(resolution)}: 1-thread CPU ms, {args.runs} rounds")
                print("| form | min | median | x as built (min) | parity max abs | nodes | nodes after ORT opt |")
                print("|---|---|---|---|---|---|---|")
                for form in labels:
                    t, c = times[form], checks[form]
                    ok = "ok" if c["parity"]["passed"] else "FAIL"
                    print(f"| {form} | {min(t):.2f} | {np.median(t):.2f} | {base / min(t):.3f}x | "
                          f"{c['parity']['max_abs']:.1e} {ok} | {c['nodes']} | {sum(c['ort_nodes'].values())} |")
                for form in labels:
                    print(f"  {form} after ORT: {dict(checks[form]['ort_nodes'].most_common())}")
                if args.profile:
                    profiles = {form: op_profile(p, x, args.runs, work) for form, p in paths.items()}
                    kinds = sorted({k for p in profiles.values() for k in p},
                                   key=lambda k: -profiles["as built"].get(k, 0))
                    print("| op type | " + " | ".join(labels) + " |  (ORT profile, kernel ms per run, not interleaved)")
                    print("|---|" + "---|" * len(labels))
                    for kind in kinds:
                        print(f"| {kind} | " + " | ".join(f"{profiles[f].get(kind, 0):.3f}" for f in labels) + " |")
                    print("| total | " + " | ".join(f"{sum(profiles[f].values()):.3f}" for f in labels) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
