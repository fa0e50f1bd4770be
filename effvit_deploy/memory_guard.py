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
runtime's first run); runtimes plan and reuse their buffers, which is why k is well below 1.

Softmax attention adds `m * map`: `map` is the model's largest N×N attention map (`models.memory.
attention_map_bytes`, fp32, all head groups of one block), which grows with the square of the token count. Fitted to
the softmax twins' measured peaks (bench/bench_highres.py, same machine; map / peak measured -> estimated):

    TFLite export   seg-b0 twin 512x1024 128 MiB / 1251 -> 1444 MiB;  seg-b1 twin 512x1024 256 MiB / 1896 -> 2203 MiB
                    paper-seg twin 1024x2048 1.5 GiB / 7123 -> 8063 MiB; seg-b0 twin 1024x2048 2 GiB / 9099 -> 9481 MiB
    ONNX / ExecuTorch export   seg-b0 twin 1024x2048 2 GiB / ~5 GiB -> 6.0 GiB;
                               seg-b2 twin 1024x2048 (ONNX) 3 GiB / 7146 MiB -> 9.9 GiB (42% high; the factor stays:
                               a lower one would put the B0 twin's estimate at or below its ~5 GiB peak)
    TFLite runner   seg-b0 twin 512x1024 / 536 -> 569 MiB;  paper-seg twin 1024x2048 / 3491 -> 5485 MiB;
                    seg-b0 twin 1024x2048 / 4489 -> 6584 MiB (ONNX Runtime and ExecuTorch runners: not measured,
                    the TFLite factor is used)

int8 exports hold more: each quantizer calibrates on its own converted graph, and the export holds the
calibration and held-out images (and the runtimes' copies of them) throughout. Their estimate (`_INT8_EXPORT`) is
`base + k * activations + (fixed + 0.75 * calibration images) * input image bytes`: 0.75 input images per extra
calibration image is the measured slope (seg-B0 1024x2048 with 8 and with 32 images: +235 / +372 / +293 MiB on
ONNX / TFLite / ExecuTorch for 24 images of 24 MiB, rounded up), and base, k and fixed were fitted (the smallest
worst-case overshoot with every estimate at least 10% above its peak) to the int8 peaks measured by
bench/bench_highres_exports.py with the current quantizers, 2026-12-01/02 (AMD EPYC and Intel Xeon, 2 cores;
calibration images 8 unless said; measured -> estimated, MiB):

                               ONNX             TFLite           ExecuTorch
    seg-B1 CS 512x1024         1467 -> 2185     1366 -> 1812     1190 -> 1601
    seg-B3 ADE 512x1024        3240 -> 3622     2670 -> 2966     2385 -> 2716
    seg-B0 CS 1024x2048        2709 -> 3513     2535 -> 3245     2292 -> 3042
    seg-B0 CS 1024x2048, 32    2944 -> 3945     2907 -> 3677     2585 -> 3474
    seg-B2 CS 1024x2048        4225 -> 6227     3959 -> 5182     3930 -> 4875
    seg-B2 ADE 1024x2048       5230 -> 6153     3918 -> 5130     3892 -> 4825
    seg-B3 CS 1024x2048        5992 -> 8872     5335 -> 7117     5001 -> 6715
    seg-B3 ADE 1024x2048       7083 -> 8773     5161 -> 7047     5121 -> 6649

(and seg-B2 ADE 512x1024, seg-B1 ADE, paper-seg and LR-ASPP at 1024x2048: tests/test_highres_memory.py holds every
point; every estimate is 11-49% above its peak). The activation sum alone, the earlier form, put B3 at 1024x2048 at
15-20 GiB for a 5-6 GiB peak and under-estimated the default 32 calibration images. A `--calib DIR` without
`--calib-count` is counted as every image file in it.

The map term is what makes a softmax twin at 1024x2048 (4 GiB per block for B1/B3) refused with its figure, before
any work, instead of swapping or being killed mid-conversion. Beyond 2048x2048 the
estimate is an extrapolation (linear in pixels, as activations are), not a measurement. Phones were never measured:
on a device the runtime estimate is compared with its MemAvailable as is.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

from .errors import InvalidInputError
from .resolution import Resolution

MIB = 1 << 20
# (base bytes, activation factor, weight factor) per target, fitted as described above
_EXPORT = {"onnx": (600 * MIB, 0.25, 4), "tflite": (800 * MIB, 0.35, 4), "executorch": (600 * MIB, 0.25, 4)}
# one runner process: the runtime's own footprint, its planned arena, the loaded artifact
_RUNTIME = {"onnx": (100 * MIB, 0.25, 2), "tflite": (100 * MIB, 0.25, 2), "executorch": (400 * MIB, 0.25, 2)}
# bytes per byte of the largest softmax attention map (scores, softmax output and the converter's or runtime's copies)
_EXPORT_MAP = {"onnx": 2.5, "tflite": 4.0, "executorch": 2.5}
# int8 export, replacing base and k above: (base bytes, activation factor, input-sized buffers whatever the
# calibration set, input-sized buffers per calibration image); see the doc
_INT8_EXPORT = {"onnx": (1300 * MIB, 0.48, 58, 0.75), "tflite": (1000 * MIB, 0.33, 68, 0.75),
                "executorch": (800 * MIB, 0.31, 69, 0.75)}
_RUNTIME_MAP = 3.0
_SIZE = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*([kmgt]i?b?|b?)", re.IGNORECASE | re.ASCII)
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def export_estimate(model: str, resolution: Resolution, target: str, precision: str = "fp32",
                    calib_count: int | None = None) -> int | None:
    """Estimated peak bytes of exporting `model` (a registry name) at `resolution`; None if unknown.

    `calib_count` (int8 only; None: the quantizer's default) is how many calibration images the export holds.
    """
    parts = _shapes(model, resolution)
    if parts is None or target not in _EXPORT:
        return None
    base, k, w = _EXPORT[target]
    images = 0.0
    if precision == "int8":
        from .export.quantize.calibration import DEFAULT_CALIB_COUNT

        base, k, fixed, per_image = _INT8_EXPORT[target]
        input_bytes = 3 * resolution[0] * resolution[1] * 4  # one fp32 NCHW image
        images = input_bytes * (fixed + per_image * (calib_count or DEFAULT_CALIB_COUNT))
    return int(base + k * parts[0] + w * parts[1] + images + _EXPORT_MAP[target] * parts[2])


def runtime_estimate(model: str, resolution: Resolution, target: str, artifact_bytes: int) -> int | None:
    """Estimated peak bytes of one runner process measuring the artifact; None when the model is not known."""
    parts = _shapes(model, resolution)
    if parts is None or target not in _RUNTIME:
        return None
    base, k, w = _RUNTIME[target]
    return int(base + k * parts[0] + w * artifact_bytes + _RUNTIME_MAP * parts[2])


def attention_note(model: str, resolution: Resolution) -> str:
    """' (softmax attention: its largest N×N map is 4.0 GiB per block)' for a model whose quadratic attention map is
    big enough to matter (64 MiB or more), else ''; appended to the guard's refusal so the user sees why."""
    parts = _shapes(model, resolution)
    if parts is None or parts[2] < 64 * MIB:
        return ""
    return f" (softmax attention: its largest N×N map is {human(parts[2])} per block)"


def _shapes(model: str, resolution: Resolution) -> tuple[int, int, int] | None:
    return _shapes_of(model, (int(resolution[0]), int(resolution[1])))


@functools.lru_cache(maxsize=64)  # the CLI checks every job of a sweep first; meta passes of big models take seconds
def _shapes_of(model: str, resolution: Resolution) -> tuple[int, int, int] | None:
    """(activation bytes, parameter bytes, largest attention map bytes), or None for a model not in the registry."""
    from .models.memory import activation_bytes, attention_map_bytes  # import torch: only when asked
    from .models.registry import names

    if model not in names():
        return None
    return (*activation_bytes(model, resolution), attention_map_bytes(model, resolution))


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
