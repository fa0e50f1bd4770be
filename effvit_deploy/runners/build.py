"""Build the native runner folder: download the pinned inputs, compile (or reuse a cached build), write runners.json.

    folder = build_runners("x86_64", Path("build/runners/x86_64")).folder

Builds are cached under `cache_root()` (default ~/.cache/effvit-deploy/runners, or $EFFVIT_RUNNER_CACHE):
downloads in downloads/, the private APT setup in apt/, and one folder per runner build in builds/, named by a key
over the runner's sources (the C++ files shipped in this package), the sha256 of every downloaded input, the
compiler version and the recipe version. A second build with the same inputs copies the cached files (seconds);
anything half-built lives in a temp folder that is renamed into place only when complete.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InvalidInputError, MissingDependencyError
from ..fileio import atomic_write_json, sha256_file
from ..vocabulary import TARGETS
from . import aarch64, fetch, pins, recipes
from . import compile as cc
from .folder import FILE_NAME, SCHEMA, swap_in

log = logging.getLogger(__name__)

RECIPE_VERSION = 1  # bump when a recipe changes in a way its sources' hashes do not show
CACHE_ENV = "EFFVIT_RUNNER_CACHE"
BUILDERS: dict[str, dict[str, Callable[[str, dict[str, Path], Path], recipes.Built]]] = {
    "x86_64": {"tflite": recipes.build_tflite, "onnx": recipes.build_onnx, "executorch": recipes.build_executorch},
    "aarch64": aarch64.BUILDERS}
# The registry package whose runtime library each runner links (the record's versions key, as the Python runners').
RUNTIME_PACKAGES = {"tflite": pins.TFLITE_RUNTIME.name, "onnx": pins.ONNXRUNTIME.name,
                    "executorch": pins.EXECUTORCH.name}
OWN_SOURCES = {"tflite": (), "onnx": ("onnxruntime_perf_test.cpp", "runner_util.h"),
               "executorch": ("executor_runner.cpp", "runner_util.h")}
OWN_SOURCES_BY_ARCH = {("tflite", "aarch64"): ("tflite_benchmark_model.cpp", "runner_util.h")}


def cache_root() -> Path:
    """Where downloads and builds are kept ($EFFVIT_RUNNER_CACHE, else ~/.cache/effvit-deploy/runners)."""
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else Path.home() / ".cache" / "effvit-deploy" / "runners"


def default_out(arch: str) -> Path:
    """`runners build` output folder when --out is not given."""
    return Path("build") / "runners" / arch


@dataclass
class BuildResult:
    """What `build_runners` did."""

    folder: Path
    manifest: dict[str, Any]
    cached: dict[str, bool] = field(default_factory=dict)  # target -> reused a cached build
    seconds: float = 0.0


def build_runners(arch: str = "x86_64", out: Path | None = None, *, targets: Sequence[str] = TARGETS,
                  progress: Callable[[str], None] | None = None) -> BuildResult:
    """Build (or reuse) every runner for `arch` and write the folder `out` with its runners.json.

    Raises:
        InvalidInputError: unknown arch or target. MissingDependencyError: no compiler, missing headers, a failed
        download. BuildError: a compile or link step failed.
    """
    say = progress or (lambda _m: None)
    if arch not in pins.ARCHES:
        raise InvalidInputError(f"--arch {arch!r}: this version builds {', '.join(pins.ARCHES)}")
    unknown = [t for t in targets if t not in TARGETS]
    if unknown:
        raise InvalidInputError(f"unknown runner target(s) {', '.join(unknown)}; choose from {', '.join(TARGETS)}")
    started = time.perf_counter()
    cxx = _compiler(arch)
    if "tflite" in targets and arch != aarch64.ARCH:  # the aarch64 TFLite runner needs no TensorFlow headers
        cc.check_system_headers(tuple(pins.SYSTEM_HEADERS))
    for tool in ("dpkg-deb", "tar", "nm"):
        if shutil.which(tool) is None:
            raise MissingDependencyError(f"{tool} not found: apt-get install {'binutils' if tool == 'nm' else tool}")
    root = cache_root()
    out = Path(out) if out is not None else default_out(arch)
    compiler = cc.compiler_version(cxx)
    entries: dict[str, Any] = {}
    cached: dict[str, bool] = {}
    for target in targets:
        say(f"{target}: downloads")
        inputs = _inputs(target, arch, root)
        key = _build_key(target, arch, inputs, compiler)
        build_dir = root / "builds" / f"{target}-{arch}-{key[:16]}"
        cached[target] = (build_dir / "build.json").is_file()
        if not cached[target]:
            say(f"{target}: compiling")
            _build_into(target, cxx, inputs, build_dir, key, arch)
        else:
            say(f"{target}: cached build {build_dir.name}")
        entries[target] = {"runtime_package": RUNTIME_PACKAGES[target],
                           **json.loads((build_dir / "build.json").read_text())}
    manifest = {"schema": SCHEMA, "arch": arch, "abi": pins.ARCHES[arch][0], "compiler": compiler,
                "created_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"), "runners": entries}
    if arch == aarch64.ARCH:
        say("aarch64: glibc sysroot and qemu-user for running the folder on this host")
        manifest.update(_foreign_arch(root))
    _assemble(out, manifest, root)
    return BuildResult(out, manifest, cached, time.perf_counter() - started)


def _compiler(arch: str) -> str:
    """The C++ compiler building runners for `arch` (the host g++, or the aarch64 cross compiler).

    Kept out of compile.py on purpose: that file is part of every build's cache key."""
    names = pins.COMPILERS[arch]
    for name in names:
        if shutil.which(name):
            return cc.compiler(name)
    if arch == "x86_64":
        return cc.compiler(names[0])
    raise MissingDependencyError(f"{arch} cross compiler {names[0]} not found: apt-get install "
                                 f"{' '.join(pins.CROSS_PACKAGES[arch])} (`make runners` installs it)")


def _foreign_arch(root: Path) -> dict[str, Any]:
    """runners.json keys of an aarch64 folder: the sysroot it needs, and how this host runs it (qemu-user)."""
    apt, dest = fetch.PrivateApt(root / "apt"), root / "downloads" / "apt"
    libc, emu = pins.GLIBC_ARM64, pins.QEMU_USER
    libc_deb, qemu_deb = apt.download_all([(libc.name, libc.version, libc.arch), (emu.name, emu.version, "")], dest)
    sysroot, qemu = aarch64.sysroot(libc_deb, root), aarch64.qemu(qemu_deb, root)
    return {"sysroot": aarch64.sysroot_needs(),
            "emulation": {"qemu": str(qemu), "qemu_package": f"{emu.name} {emu.version} (Debian trixie)",
                          "cpu": pins.QEMU_CPU, "sysroot": str(sysroot)}}


def _arm64_debs(debs: Sequence[pins.Deb], role: str, apt: fetch.PrivateApt, dest: Path) -> dict[str, Path]:
    paths = apt.download_all([(d.name, d.version, d.arch) for d in debs], dest)
    return {f"{role}:{d.name}": path for d, path in zip(debs, paths, strict=True)}


def _inputs(target: str, arch: str, root: Path) -> dict[str, Path]:
    """Download (or find in the cache) what one runner's build reads."""
    found = _inputs_for(target, arch, root)
    if arch == aarch64.ARCH:
        found.update(_arm64_debs(pins.CXX_RUNTIME_ARM64, "cxx", fetch.PrivateApt(root / "apt"),
                                 root / "downloads" / "apt"))
    return found


def _inputs_for(target: str, arch: str, root: Path) -> dict[str, Path]:
    downloads = root / "downloads"
    apt = fetch.PrivateApt(root / "apt")
    platform = pins.ARCHES[arch][1]
    if target == "tflite" and arch == aarch64.ARCH:
        litert = pins.LITERT_ARM64
        return {"ai-edge-litert": fetch.pip_wheel(litert.name, litert.version, pins.LITERT_PLATFORM, litert.python,
                                                  downloads / "pip")}
    if target == "tflite":
        wheel = pins.TFLITE_RUNTIME
        return {**_tf_source(apt, downloads),
                "tflite-runtime": fetch.pip_wheel(wheel.name, wheel.version, pins.TFLITE_PLATFORM[arch], wheel.python,
                                                  downloads / "pip")}
    if target == "onnx":
        wheel = pins.ONNXRUNTIME
        return {"onnxruntime-dev": apt.download(pins.ONNXRUNTIME_DEV.name, pins.ONNXRUNTIME_DEV.version,
                                                downloads / "apt"),
                "onnxruntime": fetch.pip_wheel(wheel.name, wheel.version, platform, wheel.python, downloads / "pip")}
    wheel = pins.EXECUTORCH
    return {"executorch": fetch.pip_wheel(wheel.name, wheel.version, platform, wheel.python, downloads / "pip")}


def _tf_source(apt: fetch.PrivateApt, downloads: Path) -> dict[str, Path]:
    """The TensorFlow source tarball (sha256-checked) and the header packages benchmark_model compiles against."""
    tarball = apt.source(pins.TF_SOURCE_PACKAGE, pins.TF_SOURCE_VERSION, pins.TF_ORIG_TARBALL, downloads / "apt")
    if sha256_file(tarball) != pins.TF_ORIG_SHA256:
        tarball.unlink()
        raise MissingDependencyError(f"{pins.TF_ORIG_TARBALL} does not match its pinned sha256 (deleted); "
                                     "run the build again to download it afresh")
    flatbuffers, ruy = apt.download_all([(d.name, d.version, d.arch) for d in (pins.FLATBUFFERS_DEV, pins.RUY_DEV)],
                                        downloads / "apt")
    return {"tensorflow": tarball, "flatbuffers": flatbuffers, "ruy": ruy}


def _sources(target: str, inputs: dict[str, Path], arch: str = "x86_64") -> list[dict[str, str]]:
    own = [{"name": f"effvit_deploy/runners/sources/{n}", "sha256": sha256_file(recipes.SOURCES / n)}
           for n in OWN_SOURCES_BY_ARCH.get((target, arch), OWN_SOURCES[target])]
    return own + [{"name": p.name, "role": role, "sha256": sha256_file(p)} for role, p in sorted(inputs.items())]


def _build_key(target: str, arch: str, inputs: dict[str, Path], compiler: str) -> str:
    recipe = b"".join(Path(m.__file__).read_bytes() for m in (recipes, cc, *((aarch64,) if arch != "x86_64" else ())))
    blob = json.dumps({"target": target, "arch": arch, "sources": _sources(target, inputs, arch), "compiler": compiler,
                       "recipe": RECIPE_VERSION, "recipe_sha256": hashlib.sha256(recipe).hexdigest()},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _build_into(target: str, cxx: str, inputs: dict[str, Path], build_dir: Path, key: str, arch: str) -> None:
    """Build in a temp folder beside `build_dir`, then rename it into place (a crash leaves no half build)."""
    build_dir.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f".{target}-", dir=build_dir.parent) as tmp:
        work = Path(tmp) / "work"
        work.mkdir()
        built = BUILDERS[arch][target](cxx, inputs, work)
        final = Path(tmp) / "final"
        final.mkdir()
        for f in [built.binary, *built.libraries]:
            shutil.copy2(f, final / f.name)
        entry = {"binary": built.binary.name, "runtime": built.runtime, "runtime_package": RUNTIME_PACKAGES[target],
                 "runtime_version": built.runtime_version,
                 "abi": pins.ARCHES[arch][0], "libraries": [f.name for f in built.libraries], "notes": built.notes,
                 "sha256": sha256_file(final / built.binary.name), "build_key": key,
                 "build_seconds": round(time.perf_counter() - started, 1), "sources": _sources(target, inputs, arch),
                 **built.extra}
        atomic_write_json(final / "build.json", entry)
        try:
            os.replace(final, build_dir)
        except OSError:
            if not (build_dir / "build.json").is_file():
                raise
            return  # a parallel build of the same key finished first: keep it
    log.info("built %s in %.0f s", target, time.perf_counter() - started)


def _assemble(out: Path, manifest: dict[str, Any], root: Path) -> None:
    """Write the runner folder whole in a temp sibling, then swap it in."""
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it 0700; the folder is read by other users and pushed to devices
        for target, entry in manifest["runners"].items():
            build_dir = root / "builds" / f"{target}-{manifest['arch']}-{entry['build_key'][:16]}"
            for name in [entry["binary"], *entry["libraries"]]:
                shutil.copy2(build_dir / name, tmp / name)
        atomic_write_json(tmp / FILE_NAME, manifest)
        for f in tmp.iterdir():
            f.chmod(0o755 if f.name != FILE_NAME else 0o644)
        swap_in(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
