"""Measure one artifact in one Python runtime and print ONE JSON line (the harness runs this in a fresh process).

    python -m effvit_deploy.bench.python_runner --artifact m.tflite --runtime tflite --threads 4 --runs 50 --warmup 10
    python3 python_runner.py ... --out r.json   # the same file, pushed alone to a phone that has Python

Output (last line of stdout):
    {"runner": "python-litert", "samples_ms": [...], "init_ms": x, "first_ms": y, "versions": {...}, "threads": 4,
     "extra": {"warmup_ms": [...], "import_ms": z, "input_shape": [...], "input_dtype": "float32",
               "timed_s": t, "stop_rule": {...}, "peak_rss_kb": k}}

Method: load the artifact (init_ms = model load + allocation/session creation/method load, import not included),
set one fixed random input, then run `warmup` inferences and then the timed ones back to back, each timed with
`time.perf_counter_ns` around the runtime call only; `first_ms` is the first of them, the timed runs are the
samples: at least `--runs` of them and at least `--min-seconds` of them, never past `--max-seconds` (but at
least one). `peak_rss_kb` is VmHWM of this process at the end (model, runtime and runs included). Runtimes: LiteRT
(`ai_edge_litert` Interpreter, else `tflite_runtime`; XNNPACK is its default delegate),
onnxruntime (CPU provider, intra-op threads = --threads, inter-op 1), ExecuTorch (`executorch.runtime`, thread pool
reset to --threads through the pybindings' `_unsafe_reset_threadpool`).

With `--out FILE` the line is also written to FILE (the harness pulls it from phones with `adb pull`: a byte-exact
copy, unlike the shell stream, which old adbd versions send through a PTY that rewrites line ends).

Self-contained on purpose: it imports only the standard library, numpy and the runtime (never effvit_deploy), so the
harness can push this single file to a device and run it with the device's python3. Exit codes: 0 ok, 2 bad
arguments, 3 runtime not importable, 1 any other failure (message on stderr).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from typing import Any

RUNTIMES = ("tflite", "onnx", "executorch")
RUNNER_NAMES = {"tflite": "python-litert", "onnx": "python-onnxruntime", "executorch": "python-executorch"}
EXIT_MISSING_RUNTIME = 3
_SEED = 1234

Invoke = Callable[[], Any]


class MissingRuntime(ImportError):
    """The runtime package for the requested artifact type is not installed in this Python."""


def _version(dist: str, module: Any = None) -> str:
    try:
        from importlib.metadata import version

        return version(dist)
    except Exception:  # noqa: BLE001 - metadata may be missing on stripped device installs
        return str(getattr(module, "__version__", "unknown"))


def _random_input(shape: list[int], dtype: Any) -> Any:
    import numpy as np

    rng = np.random.default_rng(_SEED)
    shape = [int(d) if int(d) > 0 else 1 for d in shape]  # dynamic dims (-1/0) become 1
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return rng.integers(max(info.min, -128), min(info.max, 127) + 1, size=shape).astype(dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, size=shape).astype(dtype)
    raise ValueError(f"unsupported input dtype {dtype}")


def _first_input(x: Any, shape: list[int], dtype: Any) -> Any:
    """Input 0 from the --input file (float32 values, converted to the input's dtype), else random."""
    import numpy as np

    if x is None:
        return _random_input(shape, dtype)
    want = int(np.prod([int(d) if int(d) > 0 else 1 for d in shape]))
    if x.size != want:
        raise ValueError(f"--input has {x.size} float32 values, the model's input 0 needs {want} ({shape})")
    return x.reshape([int(d) if int(d) > 0 else 1 for d in shape]).astype(dtype)


def load_tflite(path: str, threads: int, x: Any = None) -> tuple[Invoke, dict[str, Any]]:
    """LiteRT interpreter with `threads` threads (XNNPACK default delegate); inputs set once, invoke() timed."""
    try:
        from ai_edge_litert import interpreter as tfl

        versions = {"ai-edge-litert": _version("ai-edge-litert")}
    except ImportError:
        try:
            from tflite_runtime import interpreter as tfl  # type: ignore[no-redef]

            versions = {"tflite-runtime": _version("tflite-runtime", tfl)}
        except ImportError:
            raise MissingRuntime("neither ai_edge_litert nor tflite_runtime is importable: "
                                 "pip install ai-edge-litert") from None
    interp = tfl.Interpreter(model_path=path, num_threads=threads)
    interp.allocate_tensors()
    shapes = []
    for i, detail in enumerate(interp.get_input_details()):
        value = _first_input(x, list(detail["shape"]), detail["dtype"]) if i == 0 else \
            _random_input(list(detail["shape"]), detail["dtype"])
        interp.set_tensor(detail["index"], value)
        shapes.append((list(value.shape), str(value.dtype)))
    out_index = interp.get_output_details()[0]["index"]
    return interp.invoke, {"versions": versions, "inputs": shapes, "delegate": "xnnpack (default)",
                           "output": lambda: interp.get_tensor(out_index)}


_ORT_TYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(int8)": "int8",
              "tensor(uint8)": "uint8", "tensor(int32)": "int32", "tensor(int64)": "int64", "tensor(bool)": "bool",
              "tensor(double)": "float64"}


def load_onnx(path: str, threads: int, x: Any = None) -> tuple[Invoke, dict[str, Any]]:
    """onnxruntime session on the CPU provider with intra-op threads = `threads`; `run()` timed."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise MissingRuntime("onnxruntime is not importable: pip install onnxruntime") from None
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3
    session = ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])
    feeds = {}
    for i, inp in enumerate(session.get_inputs()):
        dims = [d if isinstance(d, int) else 1 for d in inp.shape]
        dtype = _ORT_TYPES.get(inp.type, "float32")
        feeds[inp.name] = _first_input(x, dims, dtype) if i == 0 else _random_input(dims, dtype)
    shapes = [(list(v.shape), str(v.dtype)) for v in feeds.values()]
    last: list[Any] = []

    def invoke() -> Any:
        last[:] = session.run(None, feeds)
        return last

    return invoke, {"versions": {"onnxruntime": ort.__version__}, "inputs": shapes,
                    "providers": session.get_providers(), "output": lambda: last[0]}


# c10::ScalarType codes that ExecuTorch's MethodMeta reports for tensor inputs.
_ET_DTYPES = {0: "uint8", 1: "int8", 2: "int16", 3: "int32", 4: "int64", 5: "float16", 6: "float32", 7: "float64",
              11: "bool"}


def load_executorch(path: str, threads: int, x: Any = None) -> tuple[Invoke, dict[str, Any]]:
    """ExecuTorch runtime; the XNNPACK thread pool is reset to `threads` before loading; `execute()` timed."""
    try:
        import torch  # the ExecuTorch pybindings take torch tensors
        from executorch.extension.pybindings import portable_lib
        from executorch.runtime import Runtime
    except ImportError:
        raise MissingRuntime("executorch is not importable: pip install executorch") from None
    reset = getattr(portable_lib, "_unsafe_reset_threadpool", None)
    if reset is not None:
        reset(threads)
    method = Runtime.get().load_program(path).load_method("forward")
    meta = method.metadata
    inputs = []
    for i in range(meta.num_inputs()):
        tm = meta.input_tensor_meta(i)
        shape, dtype = list(tm.sizes()), _ET_DTYPES.get(int(tm.dtype()), "float32")
        inputs.append(torch.from_numpy(_first_input(x, shape, dtype) if i == 0 else _random_input(shape, dtype)))
    count = getattr(portable_lib, "_threadpool_get_thread_count", None)
    last: list[Any] = []

    def invoke() -> Any:
        last[:] = method.execute(inputs)
        return last

    versions = {"executorch": _version("executorch"), "torch": torch.__version__}
    return invoke, {"versions": versions, "inputs": [(list(t.shape), str(t.dtype)) for t in inputs],
                    "threadpool_threads": count() if count is not None else None,
                    "threads_set": reset is not None, "output": lambda: last[0].float().numpy()}


# Modules each loader imports (alternatives in order); imported before the clock for init_ms starts.
_IMPORTS = {"tflite": ("ai_edge_litert.interpreter", "tflite_runtime.interpreter"), "onnx": ("onnxruntime",),
            "executorch": ("executorch.runtime",)}
LOADERS: dict[str, Callable[[str, int, Any], tuple[Invoke, dict[str, Any]]]] = {
    "tflite": load_tflite, "onnx": load_onnx, "executorch": load_executorch}


def measure(runtime: str, artifact: str, *, threads: int, runs: int, warmup: int, min_seconds: float = 0.0,
            max_seconds: float | None = None, timed_flag: str | None = None, input_file: str | None = None,
            output_file: str | None = None, output_in_result: bool = False) -> dict[str, Any]:
    """Load, run `warmup` inferences, then timed ones until the stop rule holds; return the JSON-ready result.

    With `input_file` (raw float32 values) input 0 is read from it; output 0 of the last run is written to
    `output_file` as raw float32 and/or returned as the result's "output" list (the harness's device parity check).
    """
    t0 = time.perf_counter()
    import numpy

    for module in _IMPORTS[runtime]:  # import first so init_ms is the model load alone
        try:
            importlib.import_module(module)
            break
        except ImportError:
            continue
    loader = LOADERS[runtime]
    t1 = time.perf_counter()
    x = numpy.fromfile(input_file, dtype="<f4") if input_file else None
    invoke, info = loader(artifact, threads, x)
    t2 = time.perf_counter()
    times: list[float] = []
    for _ in range(warmup):
        start = time.perf_counter_ns()
        invoke()
        times.append((time.perf_counter_ns() - start) / 1e6)
    timed_s = _timed_runs(invoke, times, runs, min_seconds, max_seconds, timed_flag)
    read_output = info.pop("output")
    output = numpy.ascontiguousarray(read_output(), dtype="<f4") if output_file or output_in_result else None
    if output_file:
        _write_atomic(output_file, output.tobytes())
    versions = {"python": platform.python_version(), "numpy": numpy.__version__, **info.pop("versions")}
    inputs = info.pop("inputs")
    result: dict[str, Any] = {
        "runner": RUNNER_NAMES[runtime],
        "samples_ms": times[warmup:],
        "init_ms": (t2 - t1) * 1000.0,
        "first_ms": times[0],
        "versions": versions,
        "threads": threads,
        "extra": {"warmup_ms": times[:warmup], "import_ms": (t1 - t0) * 1000.0,
                  "input_shape": inputs[0][0] if inputs else None, "input_dtype": inputs[0][1] if inputs else None,
                  "pid": os.getpid(), "timed_s": timed_s, "stop_rule": {"min_runs": runs, "min_seconds": min_seconds,
                                                                          "max_seconds": max_seconds},
                  "peak_rss_kb": peak_rss_kb(), **info},
    }
    if output_in_result and output is not None:
        result["output"] = [float(v) for v in output.ravel()]
    return result


def _write_atomic(path: str, data: bytes) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def _timed_runs(invoke: Invoke, times: list[float], min_runs: int, min_seconds: float, max_seconds: float | None,
                timed_flag: str | None) -> float:
    """Timed runs until `min_runs` and `min_seconds` are both met, never past `max_seconds` (the harness's
    stability.StopRule, restated here because this file imports nothing from effvit_deploy). `timed_flag`: a file
    that exists exactly while timed runs go on, so a power sampler beside this process reads only them."""
    if timed_flag:
        open(timed_flag, "w").close()  # noqa: SIM115 - an empty marker file
    begin = time.perf_counter()
    done = 0
    try:
        while True:
            elapsed = time.perf_counter() - begin
            if max_seconds is not None and done >= 1 and elapsed >= max_seconds:
                break
            if done >= min_runs and elapsed >= min_seconds:
                break
            start = time.perf_counter_ns()
            invoke()
            times.append((time.perf_counter_ns() - start) / 1e6)
            done += 1
    finally:
        if timed_flag and os.path.exists(timed_flag):
            os.remove(timed_flag)
    return time.perf_counter() - begin


def peak_rss_kb() -> int | None:
    """Peak resident memory of this process (VmHWM in /proc/self/status, kB); None where /proc has no such line."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Time one artifact in a Python runtime; prints one JSON line.")
    p.add_argument("--artifact", required=True, help="model file (.tflite, .onnx or .pte)")
    p.add_argument("--runtime", required=True, choices=RUNTIMES)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--min-seconds", type=float, default=0.0, help="keep running timed runs until this long")
    p.add_argument("--max-seconds", type=float, default=None, help="stop timed runs after this long (>= 1 run)")
    p.add_argument("--timed-flag", help="create this file while the timed runs go on (for a power sampler)")
    p.add_argument("--out", help="also write the JSON line to this file (written whole, then renamed into place)")
    p.add_argument("--input", help="raw float32 values for input 0 (default: seeded random input)")
    p.add_argument("--output", help="write output 0 of the last run here as raw float32")
    p.add_argument("--output-in-result", action="store_true",
                   help="put output 0 of the last run into the JSON line as \"output\": [float, ...]")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.threads < 1 or args.runs < 1 or args.warmup < 0:
        print("error: --threads and --runs must be >= 1 and --warmup >= 0", file=sys.stderr)
        return 2
    if args.min_seconds < 0 or (args.max_seconds is not None and args.max_seconds <= 0):
        print("error: --min-seconds must be >= 0 and --max-seconds > 0", file=sys.stderr)
        return 2
    for label, path in (("artifact", args.artifact), ("--input file", args.input)):
        if path is not None and not os.path.isfile(path):
            print(f"error: {label} {path} does not exist", file=sys.stderr)
            return 2
    try:
        result = measure(args.runtime, args.artifact, threads=args.threads, runs=args.runs, warmup=args.warmup,
                         min_seconds=args.min_seconds, max_seconds=args.max_seconds, timed_flag=args.timed_flag,
                         input_file=args.input, output_file=args.output, output_in_result=args.output_in_result)
    except MissingRuntime as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_MISSING_RUNTIME
    except Exception as exc:  # noqa: BLE001 - any runtime failure becomes one line and exit 1
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    line = json.dumps(result, separators=(",", ":")) + "\n"
    if args.out:
        _write_atomic(args.out, line.encode("utf-8"))
    sys.stdout.write(line)
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
