"""aarch64 (ARM64 glibc Linux) runner builds: the aarch64 wheels' libraries, sid's arm64 C++ runtime and glibc sysroot,
qemu-user.

Debian packages are unpacked with `dpkg-deb -x` (never installed). The folder ships every shared library
the binaries need except glibc itself (its loader must sit at /lib/ld-linux-aarch64.so.1): that sysroot is recorded
in runners.json and, on this x86-64 host, handed to `qemu-aarch64 -L SYSROOT`.

These are Linux binaries, not Android ones: Android's bionic has no glibc loader, so they run on ARM Linux boards and
under qemu-user; phones need the Android NDK build.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import compile as cc
from . import pins, recipes
from .recipes import RPATH, Built, unpack_deb

ARCH = "aarch64"
LIBDIR = Path("usr/lib/aarch64-linux-gnu")


def unpack_debs(debs: list[Path], dest: Path) -> Path:
    """All `debs` unpacked into one tree (dest/usr/...)."""
    dest.mkdir(parents=True, exist_ok=True)
    for deb in debs:
        unpack_deb(deb, dest)
    return dest


def cxx_runtime(tree: Path, out: Path) -> list[Path]:
    """sid's libstdc++.so.6 and libgcc_s.so.1 (from an unpacked tree) copied into `out` under their sonames."""
    libs = []
    for soname in ("libstdc++.so.6", "libgcc_s.so.1"):
        src = tree / LIBDIR / soname
        if not src.exists():
            raise cc.BuildError(f"{soname} missing from the unpacked libstdc++6/libgcc-s1 arm64 packages")
        libs.append(out / soname)
        shutil.copyfile(src.resolve(), libs[-1])
    return libs


def build_tflite(cxx: str, inputs: dict[str, Path], work: Path) -> Built:
    """Our benchmark_model on the TFLite C API of ai-edge-litert's aarch64 libLiteRtRuntimeCApi.so (XNNPACK inside).

    The library needs only glibc and the C++ runtime, so no TensorFlow source, headers or Debian TFLite are involved:
    one g++ call (seconds), the C API declared in the runner's source.
    """
    wheel = pins.LITERT_ARM64
    root = recipes.unpack_wheel(inputs["ai-edge-litert"], work / "wheel", (f"ai_edge_litert/{pins.LITERT_LIBRARY}",))
    found = root / "ai_edge_litert" / pins.LITERT_LIBRARY
    if not found.is_file():
        raise cc.BuildError(f"{inputs['ai-edge-litert'].name} has no ai_edge_litert/{pins.LITERT_LIBRARY}")
    out = work / "out"
    out.mkdir()
    library = out / pins.LITERT_LIBRARY
    shutil.copyfile(found, library)
    binary = out / "benchmark_model"
    cc.run([cxx, *cc.CXXFLAGS, f"-I{recipes.SOURCES}", str(recipes.SOURCES / "tflite_benchmark_model.cpp"), "-o",
            str(binary), str(library), RPATH], cwd=work, what="building benchmark_model (aarch64, TFLite C API)")
    return Built(binary, [library], "tflite", wheel.version,
                 f"effvit-deploy benchmark_model (upstream flags and lines, --use_xnnpack, --xnnpack_force_fp16) on "
                 f"the TFLite C API of the {wheel.name} {wheel.version} aarch64 wheel's {pins.LITERT_LIBRARY} (TFLite "
                 "2.20.0-dev with the XNNPACK delegate; --use_xnnpack=false runs TFLite's builtin kernels)",
                 {"tool_version": "effvit-deploy", "statistics": "mean, p5/median/p95", "xnnpack": True,
                  "runtime_package": wheel.name, "tflite_version": "2.20.0-dev0 (TfLiteVersion())"})


def add_cxx_runtime(built: Built, inputs: dict[str, Path], work: Path) -> Built:
    """Ship sid's C++ runtime beside an aarch64 binary (the folder needs one libstdc++, the newest any runner uses)."""
    tree = unpack_debs([p for role, p in sorted(inputs.items()) if role.startswith("cxx:")], work / "cxx-runtime")
    have = {p.name for p in built.libraries}
    extra = [p for p in cxx_runtime(tree, built.binary.parent) if p.name not in have]
    built.libraries = [*built.libraries, *extra]
    return built


def sysroot_needs() -> dict[str, Any]:
    """What a machine running the folder must provide (runners.json `sysroot`)."""
    return {"libc": f"glibc >= {pins.GLIBC_NEEDED}", "loader": pins.LOADER[ARCH],
            "package": f"{pins.GLIBC_ARM64.name} {pins.GLIBC_ARM64.version} {pins.GLIBC_ARM64.arch} (Debian sid)",
            "note": "glibc Linux binaries (not Android/bionic); every other library is in the folder"}


def _unpack_once(deb: Path, dest: Path, fix: Any = None) -> Path:
    """Unpack `deb` into `dest` once (temp folder renamed into place, so a crash leaves nothing half-unpacked)."""
    if dest.is_dir():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    try:
        unpack_deb(deb, tmp)
        if fix is not None:
            fix(tmp)
        os.replace(tmp, dest)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not dest.is_dir():
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def _merged_usr(tree: Path) -> None:
    # sid's libc6 is /usr-merged: the loader the binaries name (/lib/ld-linux-aarch64.so.1) is found via lib -> usr/lib
    if not (tree / "lib").exists():
        os.symlink("usr/lib", tree / "lib")


def sysroot(deb: Path, root: Path) -> Path:
    """The glibc sysroot (sid's arm64 libc6 unpacked) under the runner cache."""
    return _unpack_once(deb, root / "sysroots" / f"{ARCH}-{pins.GLIBC_ARM64.name}-{pins.GLIBC_ARM64.version}",
                        _merged_usr)


def qemu(deb: Path, root: Path) -> Path:
    """The static qemu-aarch64 of the pinned qemu-user package, unpacked under the runner cache."""
    version = pins.QEMU_USER.version.replace(":", "%3a")
    tree = _unpack_once(deb, root / "emulators" / f"{pins.QEMU_USER.name}-{version}")
    binary = tree / "usr" / "bin" / pins.QEMU_BINARY[ARCH]
    if not binary.is_file():
        raise cc.BuildError(f"{deb.name} has no usr/bin/{pins.QEMU_BINARY[ARCH]}")
    return binary


# The ExecuTorch and ONNX Runtime recipes are arch-neutral (the cross compiler, the aarch64 wheel); each aarch64
# runner also gets the shipped C++ runtime.
def _with_cxx_runtime(base: Callable[[str, dict[str, Path], Path], Built]) -> Callable[[str, dict[str, Path], Path],
                                                                                       Built]:
    def build(cxx: str, inputs: dict[str, Path], work: Path) -> Built:
        return add_cxx_runtime(base(cxx, inputs, work), inputs, work)
    return build


BUILDERS = {"tflite": _with_cxx_runtime(build_tflite), "onnx": _with_cxx_runtime(recipes.build_onnx),
            "executorch": _with_cxx_runtime(recipes.build_executorch)}
