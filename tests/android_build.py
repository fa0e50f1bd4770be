"""Builds for the android_app tests: the app's Java core + test sources on the host JVM, and the offline APK.

Both need the tools `make android-tools` installs (a JDK, junit4, aapt, zipalign, apksigner, dexdump, and the
bullseye android.jar + dx in .cache/android-tools). Without them the tests skip, except in CI (CI=true), where a
missing tool is a failure: CI must build and check the APK.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "android_app"
TOOLS = Path(os.environ.get("ANDROID_TOOLS", ROOT / ".cache" / "android-tools"))
APK_OUT = APP / "build" / "offline"
JUNIT = Path("/usr/share/java/junit4.jar")
HAMCREST = Path("/usr/share/java/hamcrest-core.jar")
MAIN = APP / "app" / "src" / "main" / "java"
TEST = APP / "app" / "src" / "test" / "java"


def need(what: str, ok: bool) -> None:
    """Skip (or fail in CI) when a build tool is missing."""
    if not ok:
        message = f"{what} missing: run `make android-tools`"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def host_sources() -> list[Path]:
    """The plain-Java core, the one backend helper without runtime imports, and all test sources."""
    core = sorted((MAIN / "org/effvit/bench/core").glob("*.java"))
    return [*core, MAIN / "org/effvit/bench/backends/ShapeFromName.java", *sorted(TEST.rglob("*.java"))]


def compile_host_classes(cache: Path) -> Path:
    """javac --release 8 of `host_sources()` into cache/<hash of the sources> (reused while they are unchanged)."""
    need("javac", shutil.which("javac") is not None)
    need(str(JUNIT), JUNIT.is_file())
    sources = host_sources()
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sources)).hexdigest()[:16]
    out = cache / f"classes-{digest}"
    if not (out / ".done").is_file():
        tmp = cache / f".classes-{digest}.part"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        subprocess.run(["javac", "--release", "8", "-encoding", "UTF-8", "-cp", str(JUNIT), "-d", str(tmp),
                        *map(str, sources)], check=True, capture_output=True, text=True)
        (tmp / ".done").touch()
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
    return out


def build_apk() -> Path:
    """`android_app/offline/build_apk.sh` into android_app/build/offline (the script skips unchanged inputs)."""
    need("android.jar/dx.jar", (TOOLS / "android.jar").is_file() and (TOOLS / "dx.jar").is_file())
    for tool in ("aapt", "zipalign", "apksigner", "dexdump"):
        need(tool, shutil.which(tool) is not None)
    proc = subprocess.run(["bash", str(APP / "offline" / "build_apk.sh"), str(TOOLS), str(APK_OUT)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return APK_OUT / "effvit-bench.apk"
