"""How each runner is built: its downloads, its compile and link lines, what ends up in the runner folder.

Each recipe takes the unpacked inputs and a work folder and returns a `Built`: the binary, the shared libraries that
must sit next to it (every binary gets rpath $ORIGIN, so the folder is self-contained), and what runtime it is.
"""

from __future__ import annotations

import shutil
import subprocess
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import compile as cc
from . import pins

SOURCES = Path(__file__).parent / "sources"
RPATH = "-Wl,-rpath,$ORIGIN"


@dataclass
class Built:
    """One runner's files (in the work folder) and its description for runners.json."""

    binary: Path
    libraries: list[Path]
    runtime: str
    runtime_version: str
    notes: str
    extra: dict[str, Any] = field(default_factory=dict)


def unpack_wheel(wheel: Path, dest: Path, members: tuple[str, ...]) -> Path:
    """Extract the wheel members under the given prefixes (e.g. "executorch/lib/") into dest."""
    with zipfile.ZipFile(wheel) as zf:
        for name in zf.namelist():
            if name.startswith(members):
                zf.extract(name, dest)
    return dest


def unpack_deb(deb: Path, dest: Path) -> Path:
    """`dpkg-deb -x` (the .deb's files under dest/usr/...)."""
    cc.run(["dpkg-deb", "-x", str(deb), str(dest)], cwd=dest.parent, what=f"unpacking {deb.name}")
    return dest


# --- TFLite benchmark_model ----------------------------------------------------------------------------------------

_L = "tensorflow/lite"
# tensorflow/lite/tools/benchmark/CMakeLists.txt (2.14): the tool's own sources, the profiling and tool helpers it
# lists, and the delegate providers we enable (default, XNNPACK, external).
TFLITE_BENCHMARK_SOURCES = (
    *(f"{_L}/tools/benchmark/{n}.cc" for n in ("benchmark_main", "benchmark_model", "benchmark_tflite_model",
                                               "benchmark_utils", "profiling_listener", "register_custom_op",
                                               "benchmark_performance_options")),
    "tensorflow/tsl/util/stats_calculator.cc",
    f"{_L}/kernels/internal/utils/sparsity_format_converter.cc",
    *(f"{_L}/profiling/{n}.cc" for n in ("memory_info", "memory_usage_monitor", "profile_buffer", "profile_summarizer",
                                         "profile_summary_formatter", "root_profiler", "telemetry/profiler",
                                         "telemetry/telemetry", "time")),
    *(f"{_L}/tools/{n}.cc" for n in ("command_line_flags", "delegates/default_execution_provider",
                                     "delegates/delegate_provider", "evaluation/utils", "model_loader",
                                     "tool_params", "utils", "delegates/xnnpack_delegate_provider",
                                     "delegates/external_delegate_provider")),
    f"{_L}/core/acceleration/configuration/c/xnnpack_plugin.cc",
    f"{_L}/delegates/external/external_delegate.cc",
    f"{_L}/optional_debug_tools.cc",
)
# Members of the TensorFlow tarball the build reads (the rest of the 56 MB tree stays packed).
TF_MEMBERS = ("*/tensorflow/lite/*", "*/tensorflow/tsl/util/*", "*/tensorflow/core/util/stat_summarizer_options.h",
              "*/tensorflow/core/util/stats_calculator*", "*/third_party/eigen3/*")
TFLITE_LIBRARY = "_pywrap_tensorflow_interpreter_wrapper.so"


def unpack_tensorflow(tarball: Path, dest: Path) -> Path:
    """The parts of the TensorFlow source tree the benchmark needs; returns the tree's root."""
    dest.mkdir(parents=True, exist_ok=True)
    cc.run(["tar", "-xJf", str(tarball), "--wildcards", *TF_MEMBERS], cwd=dest, what=f"unpacking {tarball.name}")
    roots = [p for p in dest.iterdir() if (p / "tensorflow" / "lite").is_dir()]
    if not roots:
        raise cc.BuildError(f"{tarball.name} has no tensorflow/lite tree")
    return roots[0]


def python_stub(library: Path, work: Path) -> Path:
    """C source defining every Python C-API symbol the TFLite library references, each aborting if called.

    The library is tflite-runtime's Python extension: next to the TFLite C++ API it holds pybind11 glue that refers
    to libpython. benchmark_model never calls that glue, so instead of shipping libpython (which phones lack) the
    binary exports these stubs; a call would abort with a message rather than misbehave.
    """
    out = subprocess.run(["nm", "-D", "--undefined-only", str(library)], capture_output=True, text=True, check=True)
    names = sorted({ln.split()[-1] for ln in out.stdout.splitlines()
                    if ln.split() and ln.split()[-1].lstrip("_").startswith("Py")})
    lines = ["#include <stdio.h>", "#include <stdlib.h>",
             "static void no_python(const char* name) {",
             '  fprintf(stderr, "benchmark_model: %s called, but this binary has no Python\\n", name);',
             "  abort();", "}"]
    lines += [f'void {n}(void) {{ no_python("{n}"); }}' for n in names]
    path = work / "python_stub.c"
    path.write_text("\n".join(lines) + "\n")
    return path


def build_tflite(cxx: str, inputs: dict[str, Path], work: Path) -> Built:
    """The real benchmark_model (TF 2.14.1 sources) linked against tflite-runtime's library."""
    tf_root = unpack_tensorflow(inputs["tensorflow"], work / "src")
    deps = work / "deps"
    for key in ("flatbuffers", "ruy"):
        unpack_deb(inputs[key], deps)
    unpack_wheel(inputs["tflite-runtime"], work / "wheel", ("tflite_runtime/",))
    out = work / "out"
    out.mkdir()
    library = out / TFLITE_LIBRARY
    shutil.copy2(work / "wheel" / "tflite_runtime" / TFLITE_LIBRARY, library)
    includes = [f"-I{tf_root}", f"-I{deps / 'usr' / 'include'}", "-I/usr/include/eigen3", "-I/usr/include/gemmlowp"]
    objects = cc.compile_all(cxx, [tf_root / s for s in TFLITE_BENCHMARK_SOURCES], work / "obj", includes,
                             cwd=tf_root)
    stub = python_stub(library, work)
    cc.run(["gcc", "-O2", "-c", str(stub), "-o", str(work / "python_stub.o")], cwd=work, what="compiling the stub")
    absl = sorted(str(p) for p in Path("/usr/lib/x86_64-linux-gnu").glob("libabsl_*.a"))
    binary = out / "benchmark_model"
    cc.run([cxx, "-o", str(binary), *map(str, objects), str(work / "python_stub.o"), "-rdynamic", f"-L{out}",
            f"-l:{TFLITE_LIBRARY}", RPATH, "-Wl,--start-group", *absl, "-Wl,--end-group", "-lpthread", "-ldl"],
           cwd=work, what="linking benchmark_model")
    return Built(binary, [library], "tflite", pins.TFLITE_RUNTIME.version,
                 f"benchmark_model from TensorFlow {pins.TF_VERSION} sources (Debian {pins.TF_SOURCE_VERSION}), "
                 f"TFLite runtime of tflite-runtime {pins.TFLITE_RUNTIME.version} (XNNPACK built in)",
                 {"tool_version": pins.TF_VERSION, "statistics": "mean (2.14 prints no percentiles)"})


# --- ExecuTorch executor_runner ------------------------------------------------------------------------------------

# Backend and kernel libraries register themselves when loaded, so they are linked even though no symbol is used.
EXECUTORCH_REGISTERING = ("executorch_backend_xnnpack", "executorch_kernels_optimized", "executorch_kernels_quantized")
EXECUTORCH_LIBS = ("executorch", "executorch_threadpool", *EXECUTORCH_REGISTERING)


def build_executorch(cxx: str, inputs: dict[str, Path], work: Path) -> Built:
    """Our executor_runner against the wheel's standalone runtime (XNNPACK backend, optimized + quantized kernels)."""
    root = unpack_wheel(inputs["executorch"], work / "wheel", ("executorch/lib/", "executorch/include/"))
    et = root / "executorch"
    out = work / "out"
    out.mkdir()
    libraries = []
    for name in EXECUTORCH_LIBS:
        libraries.append(out / f"lib{name}.so")
        shutil.copy2(et / "lib" / f"lib{name}.so", libraries[-1])
    binary = out / "executor_runner"
    # The c10 headers include a CMake-generated cmake_macros.h that the wheel lacks; the macro below is upstream's
    # documented switch for builds that define those macros themselves (the defaults are right for Linux).
    cc.run([cxx, *cc.CXXFLAGS, "-DC10_USING_CUSTOM_GENERATED_MACROS", f"-I{et / 'include'}",
            f"-I{et / 'include' / 'executorch' / 'runtime' / 'core' / 'portable_type' / 'c10'}", f"-I{SOURCES}",
            str(SOURCES / "executor_runner.cpp"), "-o", str(binary), f"-L{out}", "-Wl,--no-as-needed",
            *(f"-l{n}" for n in EXECUTORCH_REGISTERING), "-Wl,--as-needed", "-lexecutorch", "-lexecutorch_threadpool",
            RPATH], cwd=work, what="building executor_runner")
    return Built(binary, libraries, "executorch", pins.EXECUTORCH.version,
                 f"effvit-deploy executor_runner (executor_runner flags and log lines) on the executorch "
                 f"{pins.EXECUTORCH.version} wheel's C++ runtime with XNNPACK")


# --- ONNX Runtime perf test ----------------------------------------------------------------------------------------

ORT_SONAME = "libonnxruntime.so.1"


def build_onnx(cxx: str, inputs: dict[str, Path], work: Path) -> Built:
    """Our onnxruntime_perf_test against the wheel's library, with Debian's API headers."""
    unpack_deb(inputs["onnxruntime-dev"], work / "deps")
    root = unpack_wheel(inputs["onnxruntime"], work / "wheel", ("onnxruntime/capi/libonnxruntime.so",))
    found = sorted((root / "onnxruntime" / "capi").glob("libonnxruntime.so.*"))
    if not found:
        raise cc.BuildError(f"{inputs['onnxruntime'].name} has no onnxruntime/capi/libonnxruntime.so.*")
    out = work / "out"
    out.mkdir()
    library = out / ORT_SONAME  # the library's soname; the wheel ships it only as libonnxruntime.so.X.Y.Z
    shutil.copy2(found[0], library)
    binary = out / "onnxruntime_perf_test"
    cc.run([cxx, *cc.CXXFLAGS, f"-I{work / 'deps' / 'usr' / 'include' / 'onnxruntime'}", f"-I{SOURCES}",
            str(SOURCES / "onnxruntime_perf_test.cpp"), "-o", str(binary), str(library), RPATH],
           cwd=work, what="building onnxruntime_perf_test")
    return Built(binary, [library], "onnx", pins.ONNXRUNTIME.version,
                 f"effvit-deploy onnxruntime_perf_test (upstream flags and summary lines) on the onnxruntime "
                 f"{pins.ONNXRUNTIME.version} wheel's library, C API headers of Debian libonnxruntime-dev "
                 f"{pins.ONNXRUNTIME_DEV.version}")
