"""g++ for the runner builds: the compiler check, parallel compilation of many sources, one clear error line."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..errors import EffvitError, MissingDependencyError
from . import pins

CXXFLAGS = ("-std=c++17", "-O2", "-fPIC", "-DNDEBUG")


class BuildError(EffvitError):
    """A compiler or linker step failed (the message quotes the first error line)."""


def compiler(name: str = "g++") -> str:
    """Path of the C++ compiler, or one line saying how to install it."""
    found = shutil.which(name)
    if found is None:
        raise MissingDependencyError(f"C++ compiler {name} not found: apt-get install {name} "
                                     "(`make runners` installs every build prerequisite)")
    return found


def compiler_version(cxx: str) -> str:
    """First line of `g++ --version` (part of the cache key: another compiler builds other binaries)."""
    out = subprocess.run([cxx, "--version"], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    return (out.stdout.splitlines() or ["unknown"])[0].strip()


def check_system_headers(packages: Sequence[str]) -> None:
    """Raise one line naming the missing bookworm packages (headers the TFLite build uses in place)."""
    missing = [p for p in packages if not Path(pins.SYSTEM_HEADERS[p]).exists()]
    if missing:
        raise MissingDependencyError(f"missing build headers: apt-get install {' '.join(missing)} "
                                     "(`make runners` installs them)")


def run(argv: Sequence[str], *, cwd: Path, what: str) -> None:
    """Run one compiler/linker command; BuildError with its first error line when it fails."""
    proc = subprocess.run(list(argv), cwd=cwd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
        first = next((ln for ln in lines if "error" in ln.lower()), lines[0] if lines else "no output")
        raise BuildError(f"{what} failed: {first.strip()[:400]}")


def compile_all(cxx: str, sources: Sequence[Path], objdir: Path, flags: Sequence[str], *, cwd: Path) -> list[Path]:
    """Compile every source to objdir/<n>.o, as many at once as there are CPUs we may use."""
    objdir.mkdir(parents=True, exist_ok=True)
    jobs = [(src, objdir / f"{i:03d}-{src.stem}.o") for i, src in enumerate(sources)]

    def one(job: tuple[Path, Path]) -> Path:
        src, obj = job
        run([cxx, *CXXFLAGS, *flags, "-c", str(src), "-o", str(obj)], cwd=cwd, what=f"compiling {src.name}")
        return obj

    workers = max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(one, jobs))
