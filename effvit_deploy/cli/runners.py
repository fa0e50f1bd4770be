"""`effvit-bench runners build`: build the native runner folder that `effvit-bench run --runner-dir DIR` takes.

    effvit-bench runners build                     # x86_64, into build/runners/x86_64
    effvit-bench runners build --arch x86_64 --out /tmp/runners
    effvit-bench runners build --arch aarch64      # ARM64 glibc Linux, cross-compiled; runs here under qemu-user
    effvit-bench runners build --arch android-arm64 --ndk $ANDROID_HOME/ndk/VERSION --aar-dir aars/
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from ..runners import android, build
from .common import make_app

app = make_app("Build native benchmark runners (benchmark_model, executor_runner, onnxruntime_perf_test).")


@app.command("build")
def build_command(
    arch: Annotated[str, typer.Option(help="Architecture of the device the runners are for: x86_64 or "
                                         "aarch64 (ARM64 glibc Linux; run here under qemu-user).")] = "x86_64",
    out: Annotated[Path | None, typer.Option(help="Runner folder to write (default build/runners/ARCH).")] = None,
    target: Annotated[list[str] | None, typer.Option("--target", "-t", help="Only these runners: tflite, onnx, "
                                                     "executorch (repeatable); default all.")] = None,
    ndk: Annotated[Path | None, typer.Option(help="android-arm64 only: the Android NDK folder (never tested with a "
                                             "real NDK: none was reachable where this was written).")] = None,
    aar_dir: Annotated[Path | None, typer.Option(help="android-arm64 only: folder of the official "
                                                 "onnxruntime-android / executorch-android .aar files.")] = None,
) -> None:
    """Download the pinned inputs, compile (cached by source and package hashes), write the folder + runners.json.

    --arch android-arm64 runs the CMake project effvit_deploy/runners/android with the NDK's toolchain file instead.
    """
    if arch == android.ARCH:
        out = out or build.default_out(arch)
        manifest = android.build_android(ndk, aar_dir, out, targets=tuple(target or build.TARGETS),
                                         cache=build.cache_root(), progress=lambda m: print(m, file=sys.stderr))
        for t, entry in manifest["runners"].items():
            print(f"{t:<11} {entry['binary']:<22} {entry['runtime_package']} (Android NDK build)")
        print(f"wrote {out}; push it with: effvit-bench run --runner native --runner-dir {out} ...")
        return
    result = build.build_runners(arch, out, targets=tuple(target or build.TARGETS),
                                 progress=lambda m: print(m, file=sys.stderr))
    for t, entry in result.manifest["runners"].items():
        how = "cached" if result.cached.get(t) else f"built in {entry.get('build_seconds', 0):.0f} s"
        print(f"{t:<11} {entry['binary']:<22} {entry['runtime']} {entry['runtime_version']} ({how})")
    print(f"wrote {result.folder} ({result.seconds:.1f} s); use: effvit-bench run --runner native "
          f"--runner-dir {result.folder} ...")
