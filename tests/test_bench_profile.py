"""The per-op profiler (tflite.op_profile, behind bench/profile_tflite_ops.py): every op of a real .tflite becomes a
runnable one-op model with the same output."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from effvit_deploy.export.targets.tflite import op_profile


def _profiler():
    return op_profile


def test_one_op_models_cover_the_graph_and_run(tiny_artifact) -> None:
    pytest.importorskip("ai_edge_litert")
    from ai_edge_litert.tools import flatbuffer_utils

    profiler = _profiler()
    path = Path(tiny_artifact("tflite")["path"])
    graph = flatbuffer_utils.read_model(str(path)).subgraphs[0]
    rows = profiler.profile(path, runs=2, threads=1)
    assert [r[0] for r in rows] == list(range(len(graph.operators)))
    census = Counter(r[1] for r in rows)
    assert census["CONV_2D"] > 0 and census["BATCH_MATMUL"] > 0 and census["HARD_SWISH"] > 0
    assert all(ms > 0 and shapes for _, _, ms, shapes in rows)
    # the output shape of each one-op model is the op's output shape in the full graph
    for index, _, _, shapes in rows:
        expected = [tuple(int(v) for v in graph.tensors[t].shape) for t in graph.operators[index].outputs]
        assert shapes == expected
    text = profiler.report(path, rows, top=3)
    assert "bound on any attention rewrite" in text and text.count("\n- #") == 3


def test_missing_file_is_one_clear_error(tmp_path: Path) -> None:
    script = Path(__file__).resolve().parents[1] / "bench" / "profile_tflite_ops.py"
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "nope.tflite")], capture_output=True, text=True)
    assert done.returncode == 2
    err = done.stderr.strip().splitlines()
    assert len(err) == 1 and "is not a file" in err[0] and "effvit-export" in err[0]


def test_one_op_models_compute_what_the_op_computes_in_the_graph(tiny_artifact) -> None:
    """Each one-op model, fed the op's inputs from a full run, gives the op's outputs from that run."""
    pytest.importorskip("ai_edge_litert")
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    profiler = _profiler()
    path = Path(tiny_artifact("tflite")["path"])
    plain = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES  # reference kernels, every tensor kept
    full = Interpreter(model_path=str(path), experimental_op_resolver_type=plain,
                       experimental_preserve_all_tensors=True)
    full.allocate_tensors()
    detail = full.get_input_details()[0]
    full.set_tensor(detail["index"], np.random.default_rng(0).random(detail["shape"]).astype(np.float32))
    full.invoke()
    ops = full._get_ops_details()  # noqa: SLF001 - the interpreter's only per-op tensor map
    checked = 0
    for index, _, blob in profiler.one_op_models(path):
        single = Interpreter(model_content=blob, experimental_op_resolver_type=plain)
        single.allocate_tensors()
        for inp in single.get_input_details():
            single.set_tensor(inp["index"], full.get_tensor(inp["index"]))
        single.invoke()
        for out, tensor in zip(single.get_output_details(), ops[index]["outputs"], strict=True):
            np.testing.assert_allclose(single.get_tensor(out["index"]), full.get_tensor(tensor), rtol=1e-5, atol=1e-6)
        checked += 1
    assert checked == len(ops)
