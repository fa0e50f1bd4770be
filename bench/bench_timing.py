"""What the side-by-side benchmarks share: interleaved timing of several runners and a description of the machine."""

from __future__ import annotations

import datetime as dt
import os
import platform
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np


def interleaved_latencies(
    runners: Mapping[str, Callable[[np.ndarray], np.ndarray]],
    x: np.ndarray,
    runs: int,
    warmup: int,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, list[float]]:
    """Per runner, `runs` latencies in ms on `clock`, taken round-robin so load changes hit every variant alike."""
    for _ in range(warmup):
        for run in runners.values():
            run(x)
    times: dict[str, list[float]] = {variant: [] for variant in runners}
    for _ in range(runs):
        for variant, run in runners.items():
            start = clock()
            run(x)
            times[variant].append((clock() - start) * 1e3)
    return times


def cpu_model_and_flags() -> tuple[str, set[str]]:
    """The CPU model name and ISA flags from /proc/cpuinfo (platform's answer where that file is missing)."""
    cpu, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and cpu in ("", platform.machine(), platform.processor()):
                cpu = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return cpu, flags


def load_and_date() -> str:
    load = " / ".join(f"{v:.2f}" for v in os.getloadavg())
    return f"load average {load} at start; {dt.date.today()}."
