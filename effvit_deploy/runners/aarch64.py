"""aarch64 (ARM64 glibc Linux) runner builds: Debian sid's arm64 libraries, the glibc sysroot, qemu-user.

Everything arm64 comes from .debs unpacked with `dpkg-deb -x` (never installed). The folder ships every shared library
the binaries need except glibc itself (its loader must sit at /lib/ld-linux-aarch64.so.1): that sysroot is recorded
in runners.json and, on this x86-64 host, handed to `qemu-aarch64 -L SYSROOT`.

These are Linux binaries, not Android ones: Android's bionic has no glibc loader, so they run on ARM Linux boards and
under qemu-user; phones need the Android NDK build.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import compile as cc
from . import pins, recipes
from .recipes import RPATH, TFLITE_BENCHMARK_SOURCES, Built, unpack_deb, unpack_tensorflow

ARCH = "aarch64"
LIBDIR = Path("usr/lib/aarch64-linux-gnu")
# Sources that need the XNNPACK delegate, which Debian's arm64 libtensorflow-lite does not contain.
_XNNPACK_ONLY = ("delegates/xnnpack_delegate_provider.cc", "xnnpack_plugin.cc")
# RPATH (not RUNPATH) so that libraries loaded by libraries (libtensorflow-lite -> libfarmhash) are found in the
# folder too; RUNPATH would apply to the binary's direct dependencies only.
LINK_RPATH = (RPATH, "-Wl,--disable-new-dtags")


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


def needed(library: Path) -> list[str]:
    """The NEEDED sonames of an ELF file (readelf of the cross binutils, any arch)."""
    readelf = shutil.which("aarch64-linux-gnu-readelf") or "readelf"
    out = subprocess.run([readelf, "-d", str(library)], capture_output=True, text=True, check=True).stdout
    return [ln.split("[", 1)[1].rstrip("]") for ln in out.splitlines() if "(NEEDED)" in ln]


GLIBC_SONAMES = {"libc.so.6", "libm.so.6", "libdl.so.2", "libpthread.so.0", "librt.so.1", "ld-linux-aarch64.so.1"}
CXX_SONAMES = {"libstdc++.so.6", "libgcc_s.so.1"}  # shipped by add_cxx_runtime


def closure(roots: list[Path], libdir: Path, out: Path) -> list[Path]:
    """Copy into `out` every non-glibc library the `roots` need, transitively, from `libdir`; returns the copies."""
    copied: dict[str, Path] = {}
    todo = list(roots)
    while todo:
        for soname in needed(todo.pop()):
            if soname in GLIBC_SONAMES | CXX_SONAMES or soname in copied or (out / soname).exists():
                continue
            src = libdir / soname
            if not src.exists():
                raise cc.BuildError(f"{soname} (needed by the aarch64 TFLite build) is in none of the pinned arm64 "
                                    "packages; see effvit_deploy/runners/pins.py TFLITE_ARM64_DEPS")
            copied[soname] = out / soname
            shutil.copyfile(src.resolve(), copied[soname])
            todo.append(copied[soname])
    return sorted(copied.values())


def build_tflite(cxx: str, inputs: dict[str, Path], work: Path) -> Built:
    """benchmark_model from the TF 2.14.1 source linked against Debian sid's arm64 libtensorflow-lite 2.14.1."""
    tf_root = unpack_tensorflow(inputs["tensorflow"], work / "src")
    headers = unpack_debs([inputs["flatbuffers"], inputs["ruy"]], work / "deps")
    arm = unpack_debs([p for role, p in sorted(inputs.items()) if role.startswith("arm64:")], work / "arm64")
    libdir = arm / LIBDIR
    out = work / "out"
    out.mkdir()
    library = out / f"libtensorflow-lite.so.{pins.TF_VERSION}"
    shutil.copyfile((libdir / library.name).resolve(), library)
    includes = [f"-I{tf_root}", f"-I{headers / 'usr' / 'include'}", f"-I{arm / 'usr' / 'include'}",
                "-I/usr/include/eigen3", "-I/usr/include/gemmlowp", "-DTFLITE_WITHOUT_XNNPACK"]
    sources = [tf_root / s for s in TFLITE_BENCHMARK_SOURCES if not s.endswith(_XNNPACK_ONLY)]
    objects = cc.compile_all(cxx, sources, work / "obj", includes, cwd=tf_root)
    absl = sorted(p.name for p in libdir.glob("libabsl_*.so.*") if p.name.count(".so.") == 1)
    binary = out / "benchmark_model"
    # sid's libraries need glibc 2.38 / libstdc++ 13 symbols the bookworm cross toolchain lacks: they are resolved at
    # run time from the recorded sysroot and the shipped libstdc++ (--allow-shlib-undefined).
    cc.run([cxx, "-o", str(binary), *map(str, objects), f"-L{out}", f"-L{libdir}", f"-l:{library.name}",
            *LINK_RPATH, f"-Wl,-rpath-link,{libdir}", "-Wl,--allow-shlib-undefined", "-Wl,--as-needed",
            *(f"-l:{n}" for n in absl), "-lpthread", "-ldl"], cwd=work, what="linking benchmark_model (aarch64)")
    libraries = [library, *closure([binary, library], libdir, out)]
    return Built(binary, libraries, "tflite", pins.TF_VERSION,
                 f"benchmark_model from TensorFlow {pins.TF_VERSION} sources (Debian {pins.TF_SOURCE_VERSION}), "
                 f"TFLite runtime of Debian sid's arm64 {pins.TFLITE_ARM64.name} {pins.TFLITE_ARM64.version}, "
                 "which is built without the XNNPACK delegate: TFLite's builtin (NEON/ruy) kernels, no "
                 "--use_xnnpack / --xnnpack_force_fp16",
                 {"tool_version": pins.TF_VERSION, "statistics": "mean (2.14 prints no percentiles)",
                  "xnnpack": False, "runtime_package": pins.TFLITE_ARM64.name})


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
