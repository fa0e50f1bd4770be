"""Refuse work that cannot fit in memory before doing any of it: an estimate from the model's shapes alone.

    need = export_estimate("efficientvit-b1", (9984, 9984), "tflite")   # bytes
    check_fits(need, limit=None, what="export efficientvit-b1 9984x9984 tflite")   # raises when it cannot fit

The estimate is `base + k * activations + w * weights`: `activations` is the fp32 size of every layer's output for
one image (`models.memory.activation_bytes`, computed on meta tensors, so even 9984x9984 costs nothing), `base` the
converter's or runtime's own footprint. The constants were fitted to peaks measured on this project's CI machine
(AMD EPYC, 2 cores; maximum RSS from /usr/bin/time -v, 2026-12-01), rounded so the estimate sits above every
measured peak (by 11-45 % for exports, 13-96 % for one runner process):

    `effvit-export --force`      measured   estimate      python_runner.py, 1 run   measured   estimate
    b0 224 onnx                  575 MiB    659 MiB       b0 224 onnx               92 MiB     133 MiB
    b0 2048 onnx                 1028 MiB   1208 MiB      b0 2048 onnx              526 MiB    682 MiB
    b1 1536 onnx                 1031 MiB   1494 MiB      b1 1536 onnx              441 MiB    924 MiB
    effnet-b0 1536 onnx          1292 MiB   1571 MiB      b0 2048 tflite            521 MiB    682 MiB
    b0 224 tflite                778 MiB    861 MiB       b1 1536 tflite            472 MiB    925 MiB
    b0 2048 tflite               1467 MiB   1630 MiB      b0 224 executorch         383 MiB    433 MiB
    b1 1536 tflite               1527 MiB   1996 MiB      b0 2048 executorch        769 MiB    982 MiB
    b0 2048 executorch           965 MiB    1208 MiB

Converters trace with fake tensors, so the activation term comes from verification (PyTorch reference + the
runtime's first run); runtimes plan and reuse their buffers, which is why k is well below 1. Beyond 2048x2048 the
estimate is an extrapolation (linear in pixels, as activations are), not a measurement. Phones were never measured:
on a device the runtime estimate is compared with its MemAvailable as is.
"""

from __future__ import annotations

import re
from pathlib import Path

from .errors import InvalidInputError
from .resolution import Resolution

MIB = 1 << 20
# (base bytes, activation factor, weight factor) per target, fitted as described above
_EXPORT = {"onnx": (600 * MIB, 0.25, 4), "tflite": (800 * MIB, 0.35, 4), "executorch": (600 * MIB, 0.25, 4)}
# one runner process: the runtime's own footprint, its planned arena, the loaded artifact
_RUNTIME = {"onnx": (100 * MIB, 0.25, 2), "tflite": (100 * MIB, 0.25, 2), "executorch": (400 * MIB, 0.25, 2)}
_SIZE = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*([kmgt]i?b?|b?)", re.IGNORECASE | re.ASCII)
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def export_estimate(model: str, resolution: Resolution, target: str) -> int | None:
    """Estimated peak bytes of exporting `model` (a registry name) at `resolution`; None if unknown."""
    parts = _shapes(model, resolution)
    if parts is None or target not in _EXPORT:
        return None
    base, k, w = _EXPORT[target]
    return int(base + k * parts[0] + w * parts[1])


def runtime_estimate(model: str, resolution: Resolution, target: str, artifact_bytes: int) -> int | None:
    """Estimated peak bytes of one runner process measuring the artifact; None when the model is not known."""
    parts = _shapes(model, resolution)
    if parts is None or target not in _RUNTIME:
        return None
    base, k, w = _RUNTIME[target]
    return int(base + k * parts[0] + w * artifact_bytes)


def _shapes(model: str, resolution: Resolution) -> tuple[int, int] | None:
    from .models.memory import activation_bytes  # imports torch: only when an estimate is asked for
    from .models.registry import names

    if model not in names():
        return None
    return activation_bytes(model, resolution)


def available_memory() -> int | None:
    """What this machine can give a new process: MemAvailable, capped by a cgroup memory limit when there is one."""
    values = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                values.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            limit, usage = Path(limit_file).read_text().strip(), Path(usage_file).read_text().strip()
            if limit.isdigit() and int(limit) < 1 << 60:
                values.append(int(limit) - int(usage))
        except (OSError, ValueError):
            continue
    return min(values) if values else None


def parse_size(text: str, option: str = "--max-memory") -> int:
    """`8G`, `512M`, `1.5GiB`, `2000000000` -> bytes.

    Raises:
        InvalidInputError: anything else.
    """
    m = _SIZE.fullmatch(text.strip())
    if not m or float(m[1]) <= 0:
        raise InvalidInputError(f"{option} {text!r} is not a size; write e.g. 8G, 512M or a number of bytes")
    return int(float(m[1]) * _UNITS[m[2][:1].lower()])


def human(n: int) -> str:
    return f"{n / (1 << 30):.1f} GiB" if n >= 1 << 30 else f"{n / MIB:.0f} MiB"


def check_fits(need: int | None, limit: int | None, what: str) -> None:
    """Raise one line when `need` exceeds `limit` (None: this machine's available memory).

    Raises:
        InvalidInputError: the estimate and the limit, and how to override.
    """
    if need is None:
        return
    source = "--max-memory"
    if limit is None:
        limit, source = available_memory(), "available now"
    if limit is not None and need > limit:
        raise InvalidInputError(f"{what} needs ~{human(need)} of memory (estimate) but this machine has "
                                f"{human(limit)} ({source}); use a smaller resolution, or --max-memory SIZE to "
                                "override")
