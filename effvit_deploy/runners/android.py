"""`runners build --arch android-arm64`: the runners built with the Android NDK against the official Android AARs.

    folder = build_android(Path("~/Android/Sdk/ndk/27.2.12479018"), Path("aars"), Path("build/runners/android-arm64"))

Runs the CMake project in `android/CMakeLists.txt` with the NDK's toolchain file: configure, build, install into a
temp folder, then writes runners.json (ABI arm64-v8a) and renames the folder into place, as the Linux builds do.
Inputs: `--aar-dir`, a folder of official .aar files (onnxruntime-android: library and C/C++ headers;
executorch-android: library only, so the ExecuTorch headers come from the pinned executorch wheel's
`executorch/include`). TFLite's benchmark_model is not built here: TensorFlow publishes a prebuilt Android one.

No NDK is reachable on the machine this was written on: the configure step is tested against a stub toolchain file
(tests/test_android_runners.py); the compile and link with a real NDK have never been run.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
import shutil
import subprocess
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InvalidInputError, MissingDependencyError, MissingFileError
from ..fileio import atomic_write_json, sha256_file
from . import compile as cc
from . import fetch, pins, recipes
from .folder import FILE_NAME, SCHEMA, swap_in

ARCH = "android-arm64"
ABI = "arm64-v8a"
PLATFORM = "android-24"  # API 24: the first with DT_RUNPATH ($ORIGIN) in bionic's linker
PROJECT = Path(__file__).parent / "android"
TOOLCHAIN = Path("build") / "cmake" / "android.toolchain.cmake"
# target -> (library that identifies its AAR, binary, runtime name). tflite: no project-written runner to build.
RUNNERS = {"onnx": ("libonnxruntime.so", "onnxruntime_perf_test", "onnx"),
           "executorch": ("libexecutorch.so", "executor_runner", "executorch")}


@dataclass(frozen=True)
class Aar:
    """One official AAR in --aar-dir, identified by the arm64 library it carries."""

    target: str
    path: Path
    version: str  # from the file name (onnxruntime-android-1.29.0.aar), "unknown" if it has none


def check_ndk(ndk: Path | None) -> tuple[Path, str]:
    """The NDK's toolchain file and its revision (source.properties `Pkg.Revision`).

    Raises:
        InvalidInputError / MissingFileError: no --ndk, not a folder, or no build/cmake/android.toolchain.cmake in it.
    """
    if ndk is None:
        raise InvalidInputError("--arch android-arm64 needs --ndk PATH: the Android NDK folder (e.g. "
                                "$ANDROID_HOME/ndk/<version>, installed with Android Studio's SDK manager)")
    if not Path(ndk).is_dir():
        raise MissingFileError(f"--ndk {ndk} is not a folder; give the Android NDK folder (the one holding "
                               f"{TOOLCHAIN})")
    toolchain = Path(ndk).resolve() / TOOLCHAIN
    if not toolchain.is_file():
        raise InvalidInputError(f"--ndk {ndk} has no {TOOLCHAIN}: not an Android NDK folder (r23 or newer: "
                                "$ANDROID_HOME/ndk/<version>)")
    revision = "unknown"
    props = Path(ndk) / "source.properties"
    if props.is_file():
        found = re.search(r"^Pkg\.Revision\s*=\s*(\S+)", props.read_text(errors="replace"), re.M)
        revision = found.group(1) if found else revision
    return toolchain, revision


def find_aars(aar_dir: Path | None, targets: Sequence[str]) -> dict[str, Aar]:
    """The AAR for each requested runner that --aar-dir holds (by content: its jni/arm64-v8a library).

    Raises:
        InvalidInputError / MissingFileError: no --aar-dir, not a folder, a broken .aar, or no AAR for any runner.
    """
    if aar_dir is None:
        raise InvalidInputError("--arch android-arm64 needs --aar-dir DIR: a folder of the official "
                                "onnxruntime-android and/or executorch-android .aar files (README: Android NDK build)")
    if not Path(aar_dir).is_dir():
        raise MissingFileError(f"--aar-dir {aar_dir} is not a folder; give a folder of .aar files")
    found: dict[str, Aar] = {}
    for path in sorted(Path(aar_dir).glob("*.aar")):
        try:
            with zipfile.ZipFile(path) as zf:
                names = set(zf.namelist())
        except (OSError, zipfile.BadZipFile):
            raise InvalidInputError(f"--aar-dir: {path} is not a valid .aar (zip) file; download it again") from None
        for target, (library, _, _) in RUNNERS.items():
            if f"jni/{ABI}/{library}" in names and target in targets:
                version = re.search(r"-(\d+(?:\.\d+)+[^-]*)\.aar$", path.name)
                found.setdefault(target, Aar(target, path.resolve(), version.group(1) if version else "unknown"))
    if not found:
        wanted = ", ".join(f"{RUNNERS[t][0]} ({t})" for t in targets if t in RUNNERS) or "none"
        raise InvalidInputError(f"--aar-dir {aar_dir} has no .aar with jni/{ABI}/ libraries for the requested runners "
                                f"(looked for {wanted}): put the official onnxruntime-android / executorch-android "
                                ".aar files there")
    return found


def unpack_aar(aar: Path, dest: Path) -> Path:
    """The AAR's jni/arm64-v8a libraries and headers/ (the rest, Java classes and resources, is not needed)."""
    return recipes.unpack_wheel(aar, dest, (f"jni/{ABI}/", "headers/"))


def cmake_commands(toolchain: Path, build_dir: Path, install_dir: Path, definitions: dict[str, str],
                   jobs: int) -> list[list[str]]:
    """The three commands the wrapper runs: configure with the NDK toolchain file, build, install."""
    configure = ["cmake", "-S", str(PROJECT), "-B", str(build_dir), f"-DCMAKE_TOOLCHAIN_FILE={toolchain}",
                 f"-DANDROID_ABI={ABI}", f"-DANDROID_PLATFORM={PLATFORM}", "-DANDROID_STL=c++_shared",
                 "-DCMAKE_BUILD_TYPE=Release", *(f"-D{k}={v}" for k, v in sorted(definitions.items()))]
    return [configure, ["cmake", "--build", str(build_dir), "--parallel", str(jobs)],
            ["cmake", "--install", str(build_dir), "--prefix", str(install_dir)]]


def configure_definitions(aars: dict[str, Aar], work: Path, executorch_include: Callable[[], Path]) -> dict[str, str]:
    """Unpack the AARs under `work` and return the -D values the CMake project reads."""
    definitions = {"EFFVIT_RUNNER_SOURCES": str(recipes.SOURCES)}
    if "onnx" in aars:
        definitions["EFFVIT_ORT_DIR"] = str(unpack_aar(aars["onnx"].path, work / "aar-onnx"))
    if "executorch" in aars:
        definitions["EFFVIT_EXECUTORCH_DIR"] = str(unpack_aar(aars["executorch"].path, work / "aar-executorch"))
        definitions["EFFVIT_EXECUTORCH_INCLUDE"] = str(executorch_include())
    return definitions


def wheel_headers(root: Path, work: Path) -> Path:
    """executorch/include of the pinned executorch wheel (the Linux build's download, cached in the runner cache)."""
    wheel = fetch.pip_wheel(pins.EXECUTORCH.name, pins.EXECUTORCH.version, pins.ARCHES["x86_64"][1],
                            pins.EXECUTORCH.python, root / "downloads" / "pip")
    return recipes.unpack_wheel(wheel, work / "executorch-wheel", ("executorch/include/",)) / "executorch" / "include"


def run_cmake(argv: Sequence[str], cwd: Path, what: str) -> None:
    """One cmake step; MissingDependencyError when cmake is absent, BuildError naming the first error when it fails."""
    if shutil.which(argv[0]) is None:
        raise MissingDependencyError("cmake not found: apt-get install cmake (3.22 or newer; the SDK manager's "
                                     "cmake works too)")
    proc = subprocess.run(list(argv), cwd=cwd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise cc.BuildError(f"{what} failed: {first_error(proc.stderr + proc.stdout)[:400]}")


def first_error(output: str) -> str:
    """The first error of cmake (or compiler) output as one line: a `CMake Error at ...:` header and its message."""
    lines = output.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("CMake Error"):
            body = []
            for follow in lines[i + 1:]:
                if follow.strip() == "" and body:
                    break
                if follow.strip():
                    body.append(follow.strip())
            return " ".join([line.strip(), *body])
    errors = [ln.strip() for ln in lines if "error" in ln.lower()]
    return (errors or [ln.strip() for ln in lines if ln.strip()] or ["no output"])[0]


def build_android(ndk: Path | None, aar_dir: Path | None, out: Path, *, targets: Sequence[str],
                  cache: Path, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Configure, build and install the Android runners into `out` (whole, or not at all); returns runners.json."""
    say = progress or (lambda _m: None)
    toolchain, revision = check_ndk(ndk)
    aars = find_aars(aar_dir, targets)
    out = Path(out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{out.name}-", dir=out.parent) as tmp:
        work, staged = Path(tmp) / "work", Path(tmp) / "out"
        work.mkdir()
        definitions = configure_definitions(aars, work, lambda: wheel_headers(cache, work))
        jobs = max(1, len(os.sched_getaffinity(0)))
        steps = zip(("configuring", "building", "installing"),
                    cmake_commands(toolchain, work / "cmake", staged, definitions, jobs), strict=True)
        for what, argv in steps:
            say(f"android-arm64: {what} (cmake)")
            run_cmake(argv, work, f"{what} the Android runners")
        manifest = _manifest(aars, staged, revision)
        atomic_write_json(staged / FILE_NAME, manifest)
        staged.chmod(0o755)
        swap_in(staged, out)
    return manifest


def _manifest(aars: dict[str, Aar], staged: Path, revision: str) -> dict[str, Any]:
    runners: dict[str, Any] = {}
    libraries = sorted(p.name for p in staged.glob("*.so*"))
    for target, aar in aars.items():
        _, binary, runtime = RUNNERS[target]
        if not (staged / binary).is_file():
            raise cc.BuildError(f"the CMake install left no {binary} in {staged}")
        runners[target] = {"binary": binary, "runtime": runtime, "runtime_package": aar.path.name,
                           "runtime_version": aar.version, "abi": ABI, "libraries": libraries,
                           "notes": f"effvit-deploy {binary} built with Android NDK {revision} against {aar.path.name}",
                           "sha256": sha256_file(staged / binary),
                           "sources": [{"name": aar.path.name, "role": "aar", "sha256": sha256_file(aar.path)}]}
    return {"schema": SCHEMA, "arch": ARCH, "abi": ABI, "compiler": f"Android NDK {revision} (clang)",
            "created_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"), "runners": runners}


