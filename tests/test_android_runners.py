"""`runners build --arch android-arm64`: what can be tested without an Android NDK (none is reachable here).

- the CMake project's configure step, for real, with a stub NDK whose toolchain file uses the host compiler but
  confines find_* to its sysroot as the NDK's does: it must find the AARs' libraries and headers outside it;
- the exact cmake command lines the wrapper runs, and the runner folder it writes (abi arm64-v8a);
- one `error:` line, exit code 2 and no folder for a missing/invalid NDK or AAR folder, or a failing build.
The compile and link with a real NDK were never run.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from effvit_deploy.runners import android, recipes
from tests.bench_cli import exit_code

STUB_TOOLCHAIN = Path(__file__).parent / "data" / "android_ndk_stub" / "android.toolchain.cmake"
needs_cmake = pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake not installed (make test installs it)")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = exit_code(*argv)
    cap = capsys.readouterr()
    return code, "\n".join(ln for ln in cap.err.splitlines() if ln.startswith("error: ")), cap.out


def make_ndk(root: Path) -> Path:
    ndk = root / "ndk"
    (ndk / "build" / "cmake").mkdir(parents=True)
    shutil.copy(STUB_TOOLCHAIN, ndk / android.TOOLCHAIN)
    (ndk / "source.properties").write_text("Pkg.Desc = Android NDK\nPkg.Revision = 27.2.12479018\n")
    libcxx = ndk / "toolchains/llvm/prebuilt/linux-x86_64/sysroot/usr/lib/aarch64-linux-android/libc++_shared.so"
    libcxx.parent.mkdir(parents=True)
    libcxx.write_bytes(b"stub")
    return ndk


def make_aar(path: Path, members: dict[str, bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("AndroidManifest.xml", "<manifest/>")
        zf.writestr("classes.jar", b"")
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def make_aars(folder: Path) -> Path:
    make_aar(folder / "onnxruntime-android-1.29.0.aar",
             {"jni/arm64-v8a/libonnxruntime.so": b"stub", "jni/x86_64/libonnxruntime.so": b"stub",
              "headers/onnxruntime_cxx_api.h": b"", "headers/onnxruntime_c_api.h": b""})
    make_aar(folder / "executorch-android-1.5.1.aar",
             {"jni/arm64-v8a/libexecutorch.so": b"stub", "jni/arm64-v8a/libfbjni.so": b"stub"})
    return folder


@pytest.fixture
def et_headers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Stands in for the executorch wheel's executorch/include (no download in these tests)."""
    include = tmp_path / "et-include"
    (include / "executorch" / "runtime" / "executor").mkdir(parents=True)
    (include / "executorch" / "runtime" / "executor" / "program.h").write_text("")
    monkeypatch.setattr(android, "wheel_headers", lambda root, work: include)
    return include


@needs_cmake
def test_configure_finds_aar_libraries_and_headers(tmp_path: Path, et_headers: Path) -> None:
    toolchain, revision = android.check_ndk(make_ndk(tmp_path))
    aars = android.find_aars(make_aars(tmp_path / "aars"), ("onnx", "executorch"))
    assert revision == "27.2.12479018" and {a.version for a in aars.values()} == {"1.29.0", "1.5.1"}
    work = tmp_path / "work"
    definitions = android.configure_definitions(aars, work, lambda: et_headers)
    configure = android.cmake_commands(toolchain, work / "cmake", tmp_path / "out", definitions, 2)[0]
    proc = subprocess.run(configure, capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cache = (work / "cmake" / "CMakeCache.txt").read_text()
    assert f"EFFVIT_ORT_LIBRARY:FILEPATH={work}/aar-onnx/jni/arm64-v8a/libonnxruntime.so" in cache
    assert f"EFFVIT_EXECUTORCH_LIBRARY:FILEPATH={work}/aar-executorch/jni/arm64-v8a/libexecutorch.so" in cache
    assert "effvit: ships" in proc.stdout and "libc++_shared.so" in proc.stdout
    install = (work / "cmake" / "cmake_install.cmake").read_text()
    assert "libfbjni.so" in install and "onnxruntime_perf_test" in install and "executor_runner" in install


@needs_cmake
def test_configure_refuses_a_non_android_toolchain(tmp_path: Path) -> None:
    aars = android.find_aars(make_aars(tmp_path / "aars"), ("onnx",))
    definitions = android.configure_definitions(aars, tmp_path / "work", lambda: tmp_path)
    proc = subprocess.run(["cmake", "-S", str(android.PROJECT), "-B", str(tmp_path / "b"),
                           *(f"-D{k}={v}" for k, v in definitions.items())], capture_output=True, text=True)
    assert proc.returncode != 0 and "configure with the NDK toolchain" in proc.stderr


@needs_cmake
def test_configure_names_a_missing_header(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    ndk = make_ndk(tmp_path)
    make_aar(tmp_path / "aars" / "onnxruntime-android-1.29.0.aar", {"jni/arm64-v8a/libonnxruntime.so": b"stub"})
    code, err, _ = run(capsys, "runners", "build", "--arch", "android-arm64", "--ndk", str(ndk), "--aar-dir",
                       str(tmp_path / "aars"), "--out", str(tmp_path / "out"))
    assert code == 2 and err.startswith("error: configuring the Android runners failed:")
    assert "onnxruntime_cxx_api.h not found" in err
    assert not (tmp_path / "out").exists()


def test_wrapper_runs_configure_build_install_and_writes_the_folder(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, et_headers: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ndk, aars = make_ndk(tmp_path), make_aars(tmp_path / "aars")
    calls: list[list[str]] = []

    def fake_cmake(argv: list[str], cwd: Path, what: str) -> None:
        calls.append(list(argv))
        if argv[1] == "--install":  # what `cmake --install` would leave: binaries and the shipped libraries
            prefix = Path(argv[-1])
            prefix.mkdir()
            for name in ("onnxruntime_perf_test", "executor_runner", "libonnxruntime.so", "libexecutorch.so",
                         "libfbjni.so", "libc++_shared.so"):
                (prefix / name).write_bytes(b"\x7fELF")

    monkeypatch.setattr(android, "run_cmake", fake_cmake)
    code, err, out = run(capsys, "runners", "build", "--arch", "android-arm64", "--ndk", str(ndk), "--aar-dir",
                         str(aars), "--out", str(tmp_path / "out"))
    assert code == 0, err
    work = Path(calls[0][calls[0].index("-B") + 1]).parent
    assert calls[0] == ["cmake", "-S", str(android.PROJECT), "-B", str(work / "cmake"),
                        f"-DCMAKE_TOOLCHAIN_FILE={ndk.resolve() / 'build/cmake/android.toolchain.cmake'}",
                        "-DANDROID_ABI=arm64-v8a", "-DANDROID_PLATFORM=android-24", "-DANDROID_STL=c++_shared",
                        "-DCMAKE_BUILD_TYPE=Release", f"-DEFFVIT_EXECUTORCH_DIR={work / 'aar-executorch'}",
                        f"-DEFFVIT_EXECUTORCH_INCLUDE={et_headers}", f"-DEFFVIT_ORT_DIR={work / 'aar-onnx'}",
                        f"-DEFFVIT_RUNNER_SOURCES={recipes.SOURCES}"]
    assert calls[1][:3] == ["cmake", "--build", str(work / "cmake")] and calls[1][3] == "--parallel"
    assert calls[2] == ["cmake", "--install", str(work / "cmake"), "--prefix", str(work.parent / "out")]
    manifest = json.loads((tmp_path / "out" / "runners.json").read_text())
    assert manifest["abi"] == "arm64-v8a" and manifest["arch"] == "android-arm64"
    assert manifest["compiler"] == "Android NDK 27.2.12479018 (clang)"
    assert manifest["runners"]["onnx"]["binary"] == "onnxruntime_perf_test"
    assert manifest["runners"]["executorch"]["runtime_version"] == "1.5.1"
    assert "libfbjni.so" in manifest["runners"]["executorch"]["libraries"]
    assert "wrote" in out and not list(tmp_path.glob(".out-*"))


@pytest.mark.parametrize("case, expected", [
    ("no-ndk", "error: --arch android-arm64 needs --ndk PATH: the Android NDK folder"),
    ("ndk-not-folder", "is not a folder; give the Android NDK folder (the one holding build/cmake/"),
    ("ndk-no-toolchain", "has no build/cmake/android.toolchain.cmake: not an Android NDK folder"),
    ("no-aar-dir", "error: --arch android-arm64 needs --aar-dir DIR: a folder of the official"),
    ("aar-dir-not-folder", "is not a folder; give a folder of .aar files"),
    ("aar-dir-empty", "has no .aar with jni/arm64-v8a/ libraries for the requested runners"),
    ("broken-aar", "is not a valid .aar (zip) file; download it again"),
])
def test_bad_ndk_or_aar_dir_is_one_error_line(capsys: pytest.CaptureFixture[str], tmp_path: Path, case: str,
                                              expected: str) -> None:
    ndk, aars = make_ndk(tmp_path), make_aars(tmp_path / "aars")
    argv = ["runners", "build", "--arch", "android-arm64", "--out", str(tmp_path / "out")]
    if case == "ndk-not-folder":
        ndk = tmp_path / "nowhere"
    elif case == "ndk-no-toolchain":
        (ndk / android.TOOLCHAIN).unlink()
    elif case == "aar-dir-not-folder":
        aars = tmp_path / "aars" / "onnxruntime-android-1.29.0.aar"
    elif case == "aar-dir-empty":
        aars = tmp_path / "empty"
        aars.mkdir()
    elif case == "broken-aar":
        (aars / "bad.aar").write_bytes(b"not a zip")
    argv += [] if case == "no-ndk" else ["--ndk", str(ndk)]
    argv += [] if case == "no-aar-dir" else ["--aar-dir", str(aars)]
    code, err, _ = run(capsys, *argv)
    assert code == 2 and len(err.splitlines()) == 1 and expected in err, err
    assert not (tmp_path / "out").exists()
