"""Convert models plain and in deploy form with the real converters and count what comes out.

    .venv/bin/python bench/inspect_tflite_graph.py --model efficientvit-b0 --model efficientvit-b1 \
        --resolution 224 --resolution 512 [--executorch] [--onnx] [--time-runs 30 --threads 2] [--dump]

For each (model, resolution, variant) it converts with `litert_torch.convert(module, (x,))`, writes the .tflite into
--workdir, and reports from the flatbuffer: the op census, where each TRANSPOSE sits (model I/O, conv->heads boundary,
heads->conv boundary, inside the attention core), slices and pads inside attention, HARD_SWISH ops against
`nn.Hardswish` modules, and the XNNPACK partitions of a delegated interpreter (one DELEGATE node per partition;
ai-edge-litert 2.3 does not print the runtime's "Replacing N out of M node(s)" line, so the replaced nodes are found by
walking back from each DELEGATE's outputs to its inputs). Optional: ExecuTorch lowering (delegate calls and the
call_function nodes left outside them), ONNX dynamo export (HardSwish / HardSigmoid / Transpose / Slice / Pad nodes),
and interleaved LiteRT timing of plain vs deploy. Prints Markdown; `--out FILE` also writes it.

Graphs are read with the library's one .tflite reader (`effvit_deploy.export.targets.tflite.graph`) and layout ops
are placed by `effvit_deploy.export.targets.tflite.placement.locate` (a TRANSPOSE is "inside attention" when both
sides of it are attention-world ops, a boundary transpose when one side is the conv world).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import io
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from effvit_deploy import models  # noqa: E402
from effvit_deploy.export.deploy import to_deploy_form  # noqa: E402
from effvit_deploy.export.targets import get_target  # noqa: E402
from effvit_deploy.export.targets._common import quiet_stderr_fd  # noqa: E402
from effvit_deploy.export.targets.tflite import graph as tflite_graph  # noqa: E402
from effvit_deploy.export.targets.tflite.placement import locate  # noqa: E402

# ----------------------------------------------------------------------------------------------------------------------
# reading graphs: the library's one .tflite reader and its placement of layout ops


def read_graph(path: Path) -> tflite_graph.TfliteGraph:
    return tflite_graph.read(path.read_bytes())


def delegation(path: Path) -> tuple[int, collections.Counter]:
    """(XNNPACK partitions, op types left outside them) of the delegated interpreter."""
    with quiet_stderr_fd():
        census = get_target("tflite").census(path)
    return census["partitions"], collections.Counter(census["undelegated"])


# ----------------------------------------------------------------------------------------------------------------------
# converters


def convert_tflite(module: nn.Module, example: torch.Tensor, path: Path) -> None:
    import litert_torch

    with quiet_stderr_fd(), contextlib.redirect_stdout(io.StringIO()):
        litert_torch.convert(module.eval(), (example,)).export(str(path))


def executorch_check(module: nn.Module, example: torch.Tensor) -> tuple[int, collections.Counter]:
    """(delegate calls, call_function targets outside the delegates) after XNNPACK lowering."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    with quiet_stderr_fd():
        edge = to_edge_transform_and_lower(torch.export.export(module, (example,)), partitioner=[XnnpackPartitioner()])
    nodes = [n for n in edge.exported_program().graph_module.graph.nodes if n.op == "call_function"]
    delegates = sum("executorch_call_delegate" in str(n.target) for n in nodes)
    outside = collections.Counter(
        str(n.target).split(":")[1].split(".")[-2] if ":" in str(n.target) else str(n.target)
        for n in nodes
        if "executorch_call_delegate" not in str(n.target) and "getitem" not in str(n.target)
    )
    return delegates, outside


def onnx_check(module: nn.Module, example: torch.Tensor) -> collections.Counter:
    with quiet_stderr_fd(), contextlib.redirect_stdout(io.StringIO()):
        program = torch.onnx.export(module, (example,), dynamo=True, verbose=False)
    return collections.Counter(n.op_type for n in program.model_proto.graph.node)


def time_tflite(paths: list[Path], runs: int, threads: int) -> list[list[float]]:
    """Interleaved invoke times (seconds) per file, after 5 warm-up runs each."""
    from ai_edge_litert.interpreter import Interpreter

    interpreters = []
    for path in paths:
        with quiet_stderr_fd():
            interpreter = Interpreter(model_path=str(path), num_threads=threads)
            interpreter.allocate_tensors()
        detail = interpreter.get_input_details()[0]
        interpreter.set_tensor(detail["index"], np.random.default_rng(0).random(detail["shape"], dtype=np.float32))
        for _ in range(5):
            interpreter.invoke()
        interpreters.append(interpreter)
    times: list[list[float]] = [[] for _ in paths]
    for _ in range(runs):
        for i, interpreter in enumerate(interpreters):
            start = time.perf_counter()
            interpreter.invoke()
            times[i].append(time.perf_counter() - start)
    return times


# ----------------------------------------------------------------------------------------------------------------------
# driver


def build_variants(name: str, resolution: tuple[int, int]) -> dict[str, nn.Module]:
    """{'plain': model as built (seed 0, random BN statistics), 'deploy': its deploy form}."""
    try:
        from effvit_deploy.export.weights import seeded_model

        plain = seeded_model(name)
    except ImportError:
        torch.manual_seed(0)
        plain = models.build(name)
    return {"plain": plain.eval(), "deploy": to_deploy_form(plain, resolution)[0]}


def count_hardswish(module: nn.Module) -> int:
    return sum(isinstance(m, nn.Hardswish) for m in module.modules())


CENSUS_HEADER = (
    "| model | res | variant | TRANSPOSE (io / conv->heads / core / heads->conv) | SLICE+STRIDED | PAD (conv / attn) "
    "| PADV2 | BATCH_MATMUL | HARD_SWISH / modules | ops | partitions | undelegated |\n" + "|---" * 12 + "|"
)
OTHER_HEADER = "| model | res | variant | target | result | notes |\n" + "|---" * 6 + "|"
TIMING_HEADER = (
    "| model | res | threads | runs | plain median | deploy median | speedup | plain p10 | deploy p10 |\n"
    + "|---" * 9
    + "|"
)


def census_row(name: str, res: str, variant: str, module: nn.Module, path: Path) -> str:
    """One Markdown row of the TFLite census for a converted file."""
    graph = read_graph(path)
    census = graph.census()
    places = locate(graph)
    parts, outside = delegation(path)
    t = [places[("TRANSPOSE", p)] for p in ("model io", "conv->heads", "attention core", "heads->conv")]
    adj = collections.Counter(
        " ".join(flag for flag, on in op.options.items() if on) or "plain"
        for op in graph.ops
        if op.op == "BATCH_MATMUL"
    )
    return (
        f"| {name} | {res} | {variant} | {census['TRANSPOSE']} ({' / '.join(map(str, t))}) "
        f"| {census['SLICE'] + census['STRIDED_SLICE']} "
        f"| {places[('PAD', 'conv')]} / {places[('PAD', 'attention core')]} | {census['PADV2']} "
        f"| {census['BATCH_MATMUL']} ({', '.join(f'{k} {v}' for k, v in sorted(adj.items())) or '-'}) "
        f"| {census['HARD_SWISH']} / {count_hardswish(module)} | {sum(census.values())} | {parts} "
        f"| {dict(outside) or '-'} |"
    )


def other_rows(name: str, res: str, variant: str, module: nn.Module, example: torch.Tensor, args) -> list[str]:
    """ExecuTorch and/or ONNX rows, as requested."""
    rows = []
    if args.executorch:
        delegates, left = executorch_check(module, example)
        rows.append(
            f"| {name} | {res} | {variant} | ExecuTorch | delegates {delegates} | outside: {dict(left) or '-'} |"
        )
    if args.onnx:
        nodes = onnx_check(module, example)
        keys = ("HardSwish", "HardSigmoid", "Transpose", "Slice", "Pad", "BatchNormalization")
        found = ", ".join(f"{k} {nodes.get(k, 0)}" for k in keys)
        rows.append(
            f"| {name} | {res} | {variant} | ONNX | {found} "
            f"| nodes {sum(nodes.values())}, hardswish modules {count_hardswish(module)} |"
        )
    return rows


def timing_row(name: str, res: str, paths: dict[str, Path], runs: int, threads: int) -> str:
    order = ["plain", "deploy"]
    times = time_tflite([paths[v] for v in order], runs, threads)
    med = [float(np.median(t)) * 1e3 for t in times]
    p10 = [float(np.percentile(t, 10)) * 1e3 for t in times]
    return (
        f"| {name} | {res} | {threads} | {runs} | {med[0]:.2f} | {med[1]:.2f} | {med[0] / med[1]:.3f} "
        f"| {p10[0]:.2f} | {p10[1]:.2f} |"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", default=None)
    parser.add_argument("--resolution", action="append", default=None, help="224 or HxW")
    parser.add_argument("--executorch", action="store_true")
    parser.add_argument("--onnx", action="store_true")
    parser.add_argument("--time-runs", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--dump", action="store_true", help="list every op of the deploy form")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    names = args.model or ["efficientvit-b0", "efficientvit-b1"]
    resolutions = [models.parse_resolution(r) for r in (args.resolution or ["224", "512"])]
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="inspect_tflite_"))
    workdir.mkdir(parents=True, exist_ok=True)

    census_rows: list[str] = []
    extra_rows: list[str] = []
    timing_rows: list[str] = []
    for name in names:
        for resolution in resolutions:
            res = models.format_resolution(resolution)
            example = torch.rand(1, 3, *resolution, generator=torch.Generator().manual_seed(1234))
            paths = {}
            for variant, module in build_variants(name, resolution).items():
                start = time.time()
                paths[variant] = workdir / f"{name}_{res}_{variant}.tflite"
                convert_tflite(module, example, paths[variant])
                census_rows.append(census_row(name, res, variant, module, paths[variant]))
                print(census_rows[-1], f"({time.time() - start:.0f}s)", flush=True)
                if args.dump and variant == "deploy":
                    graph = read_graph(paths[variant])
                    for op in graph.ops:
                        shapes_in = [graph.shape(t) for t in op.inputs]
                        shapes_out = [graph.shape(t) for t in op.outputs]
                        print(f"    {op.index:4d} {op.op:20s} {shapes_in} -> {shapes_out} {op.options or ''}")
                for row in other_rows(name, res, variant, module, example, args):
                    extra_rows.append(row)
                    print(row, flush=True)
            if args.time_runs:
                timing_rows.append(timing_row(name, res, paths, args.time_runs, args.threads))
                print(timing_rows[-1], flush=True)

    text = "\n".join(["## TFLite op census (litert-torch)", "", CENSUS_HEADER, *census_rows])
    if extra_rows:
        text += "\n\n## ExecuTorch / ONNX\n\n" + "\n".join([OTHER_HEADER, *extra_rows])
    if timing_rows:
        text += "\n\n## LiteRT latency, interleaved (ms)\n\n" + "\n".join([TIMING_HEADER, *timing_rows])
    print()
    print(text)
    if args.out:
        from effvit_deploy.fileio import atomic_write_text

        atomic_write_text(args.out, text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
