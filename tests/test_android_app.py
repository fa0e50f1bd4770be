"""android_app: the Java core's JUnit tests on the host JVM, and the offline APK build checked like CI checks it."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from effvit_deploy.bench.app_result import SCHEMA_FILE
from tests.android_build import APK_OUT, HAMCREST, JUNIT, ROOT, TEST, TOOLS, build_apk, compile_host_classes

JUNIT_CLASSES = sorted(f"org.effvit.bench.core.{p.stem}" for p in (TEST / "org/effvit/bench/core").glob("*Test.java"))


@pytest.fixture(scope="module")
def apk() -> Path:
    return build_apk()


def test_java_core_unit_tests_pass_on_the_host_jvm(tmp_path_factory: pytest.TempPathFactory) -> None:
    classes = compile_host_classes(tmp_path_factory.mktemp("javac"))
    assert len(JUNIT_CLASSES) >= 4
    proc = subprocess.run(["java", f"-Deffvit.schema={SCHEMA_FILE}", "-cp", f"{classes}:{JUNIT}:{HAMCREST}",
                           "org.junit.runner.JUnitCore", *JUNIT_CLASSES], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    ran = re.search(r"OK \((\d+) tests\)", proc.stdout)
    assert ran and int(ran.group(1)) >= 15, proc.stdout[-2000:]


def test_offline_apk_is_signed_and_declares_the_benchmark_activity(apk: Path) -> None:
    verify = subprocess.run(["apksigner", "verify", "--verbose", str(apk)], capture_output=True, text=True)
    assert verify.returncode == 0 and "Verified using v2 scheme (APK Signature Scheme v2): true" in verify.stdout, \
        verify.stdout + verify.stderr
    badging = subprocess.run(["aapt", "dump", "badging", str(apk)], capture_output=True, text=True, check=True).stdout
    assert "package: name='org.effvit.bench'" in badging
    assert "sdkVersion:'24'" in badging
    assert "launchable-activity: name='org.effvit.bench.BenchActivity'" in badging
    info = json.loads((APK_OUT / "apk-info.json").read_text())
    native = re.search(r"^native-code: (.*)$", badging, re.M)
    # Native code comes only from runtime AARs (ANDROID_AARS); the build info and the APK must agree on it.
    assert (native.group(1).replace("'", "").split() if native else []) == info["abis"]
    dex = subprocess.run(["dexdump", str(apk)], capture_output=True, text=True, check=True).stdout
    classes = set(re.findall(r"Class descriptor\s*: 'L([^;]+);'", dex))
    for name in ("org/effvit/bench/BenchActivity", "org/effvit/bench/core/BenchRunner",
                 "org/effvit/bench/core/ReflectiveBackendFactory", "org/effvit/bench/core/Json"):
        assert name in classes
    compiled = {"tflite": "LiteRtBackend", "executorch": "ExecuTorchBackend", "onnx": "OrtBackend"}
    for runtime, cls in compiled.items():  # a backend is in the dex exactly when the build says it has its runtime
        assert (f"org/effvit/bench/backends/{cls}" in classes) == (runtime in info["backends"])
    assert not any(c.startswith("org/effvit/bench/host/") for c in classes)  # test stand-ins never ship


def test_second_build_is_cached(apk: Path) -> None:
    before = apk.stat().st_mtime_ns
    again = subprocess.run(["bash", str(ROOT / "android_app/offline/build_apk.sh"),
                            str(TOOLS), str(APK_OUT)], capture_output=True, text=True)
    assert again.returncode == 0 and "up to date" in again.stdout
    assert apk.stat().st_mtime_ns == before


def test_bad_aar_folder_is_one_clear_error(apk: Path, tmp_path: Path) -> None:
    proc = subprocess.run(["bash", str(ROOT / "android_app/offline/build_apk.sh"), str(TOOLS),
                           str(tmp_path / "out"), str(tmp_path / "no-such-folder")], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.strip().startswith("error: ANDROID_AARS=")
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "out" / "effvit-bench.apk").exists()


def test_app_reads_the_npy_verification_input_numpy_writes(tmp_path_factory: pytest.TempPathFactory,
                                                            tmp_path: Path) -> None:
    import numpy as np

    classes = compile_host_classes(tmp_path_factory.mktemp("javac-npy"))
    model = tmp_path / "m-32x32-tflite-fp32.tflite"
    model.write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(64))
    x = np.arange(3 * 32 * 32, dtype=np.float32).reshape(1, 3, 32, 32) / 100
    np.save(tmp_path / "in.npy", x)
    np.save(tmp_path / "in64.npy", x.astype(np.float64))

    def run(input_file: Path) -> dict:
        out = tmp_path / "files"
        subprocess.run(["java", "-cp", str(classes), "org.effvit.bench.host.StandInMain", "--files-dir", str(out),
                        "--logcat", str(tmp_path / "logcat"), "--backends", "tflite", "--fault", "none",
                        "--device-model", "host", "--es", "model", str(model), "--es", "runtime", "tflite",
                        "--ei", "threads", "1", "--ei", "warmup", "0", "--ei", "runs", "1", "--es", "out", "r.json",
                        "--es", "input", str(input_file)], check=True, timeout=120)
        return json.loads((out / "r.json").read_text())

    ok = run(tmp_path / "in.npy")
    assert ok["status"] == "ok" and ok["input"] == {"shape": [1, 3, 32, 32], "source": str(tmp_path / "in.npy")}
    # the emulated backend's logit j adds 0.1 * input[j]: the values read are numpy's
    w = np.frombuffer(model.read_bytes(), dtype=np.uint8)
    expect = (w[(np.arange(16) * 7919) % w.size] / 255.0 - 0.5) + 0.1 * x.ravel()[:16]
    np.testing.assert_allclose(ok["output"]["first"], expect, rtol=1e-6, atol=1e-6)
    bad = run(tmp_path / "in64.npy")
    assert bad["status"] == "bad_args" and "little-endian float32" in bad["error"]


def _fake_aar(stubs: Path, aar: Path, library: str, work: Path) -> None:
    """An .aar holding the stub classes compiled to classes.jar and a placeholder arm64 library."""
    import zipfile

    classes = work / f"classes-{stubs.name}"
    subprocess.run(["javac", "--release", "8", "-d", str(classes), *map(str, sorted(stubs.rglob("*.java")))],
                   check=True, capture_output=True)
    jar = work / f"{stubs.name}-classes.jar"
    with zipfile.ZipFile(jar, "w") as z:
        for f in sorted(classes.rglob("*.class")):
            z.write(f, f.relative_to(classes).as_posix())
    with zipfile.ZipFile(aar, "w") as z:
        z.write(jar, "classes.jar")
        z.writestr("AndroidManifest.xml", f'<manifest package="stub.{stubs.name}"/>')
        z.writestr(f"jni/arm64-v8a/{library}", b"\x7fELF placeholder")


def test_android_aars_put_the_runtime_classes_backend_and_native_code_in_the_apk(apk: Path, tmp_path: Path) -> None:
    """ANDROID_AARS with fake LiteRT and ExecuTorch AARs: stub classes with the real APIs' signatures
    (tests/data/aar_stubs) and placeholder arm64 libraries. Checks the offline build's AAR path end to end, and
    that both backends compile against those signatures."""
    import zipfile

    aars = tmp_path / "aars"
    aars.mkdir()
    stubs = ROOT / "tests/data/aar_stubs"
    _fake_aar(stubs / "executorch", aars / "executorch-android-stub.aar", "libexecutorch.so", tmp_path)
    _fake_aar(stubs / "litert", aars / "litert-stub.aar", "libtensorflowlite_jni.so", tmp_path)
    out = tmp_path / "out"
    proc = subprocess.run(["bash", str(ROOT / "android_app/offline/build_apk.sh"), str(TOOLS), str(out), str(aars)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "backends compiled in: tflite executorch" in proc.stdout
    built = out / "effvit-bench.apk"
    info = json.loads((out / "apk-info.json").read_text())
    assert info["backends"] == ["tflite", "executorch"] and info["abis"] == ["arm64-v8a"]
    badging = subprocess.run(["aapt", "dump", "badging", str(built)], capture_output=True, text=True).stdout
    assert "native-code: 'arm64-v8a'" in badging
    dex = subprocess.run(["dexdump", str(built)], capture_output=True, text=True, check=True).stdout
    for name in ("org/effvit/bench/backends/ExecuTorchBackend", "org/pytorch/executorch/Module",
                 "org/effvit/bench/backends/LiteRtBackend", "org/tensorflow/lite/InterpreterApi"):
        assert f"'L{name};'" in dex
    assert "org/effvit/bench/backends/OrtBackend" not in dex
    with zipfile.ZipFile(built) as z:
        assert z.read("lib/arm64-v8a/libexecutorch.so") == b"\x7fELF placeholder"
        assert "lib/arm64-v8a/libtensorflowlite_jni.so" in z.namelist()
    assert subprocess.run(["apksigner", "verify", str(built)], capture_output=True).returncode == 0
