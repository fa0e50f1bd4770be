"""When a latency measurement can be trusted: how long to run, and whether its runs agree with each other.

Rules taken from the tools users already know:
- run until a minimum count AND a minimum duration are both met (MLPerf Mobile: >= 1024 queries and >= 60 s), never
  past a maximum duration (`StopRule`);
- split the timed runs, in the order they ran, into windows; the measurement is stable only when the window medians
  agree within a stated percentage of the overall median (NVIDIA perf_analyzer's stability percentage) and the runs
  do not fall into two separate clusters (a bimodal run: core migration, a background task, DVFS steps);
- report a trimmed mean of the middle 80% (ExecuTorch's benchmark app) and the coefficient of variation beside the
  median, p90 and min.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

DEFAULT_WINDOWS = 4
DEFAULT_TOLERANCE_PCT = 5.0
TRIM_FRACTION = 0.1  # cut 10% at each end: the mean of the middle 80%
# Bimodal: the largest gap between neighbouring sorted runs is this share of the median or more, with at least
# BIMODAL_MIN_SHARE of the runs on each side of it.
BIMODAL_GAP = 0.10
BIMODAL_MIN_SHARE = 0.15
MIN_RUNS_FOR_WINDOWS = 8  # fewer runs than this cannot be split into meaningful windows


@dataclass(frozen=True)
class StopRule:
    """Timed runs continue until `min_runs` and `min_seconds` are both met; they stop at `max_seconds` regardless."""

    min_runs: int
    min_seconds: float = 0.0
    max_seconds: float | None = None

    def done(self, runs_done: int, elapsed_s: float) -> bool:
        """Has a measurement that made `runs_done` runs in `elapsed_s` seconds run long enough?"""
        if self.max_seconds is not None and elapsed_s >= self.max_seconds and runs_done >= 1:
            return True
        return runs_done >= self.min_runs and elapsed_s >= self.min_seconds

    def planned_runs(self, estimate_ms: float) -> int:
        """Run count for a runner that takes a fixed count, from a per-run estimate (its warm-up time).

        The count meets `min_seconds` if runs take `estimate_ms`, is at least `min_runs`, and keeps the expected
        duration within `max_seconds` (but never below one run).
        """
        per_run_s = max(estimate_ms, 1e-3) / 1000.0
        runs = max(self.min_runs, math.ceil(self.min_seconds / per_run_s))
        if self.max_seconds is not None:
            runs = min(runs, max(1, math.floor(self.max_seconds / per_run_s)))
        return runs


def window_medians(samples_ms: Sequence[float], windows: int = DEFAULT_WINDOWS) -> list[float]:
    """Medians of `windows` contiguous, nearly equal chunks of the runs in the order they ran."""
    arr = np.asarray(list(samples_ms), dtype=np.float64)
    chunks = np.array_split(arr, min(windows, max(arr.size, 1)))
    return [float(np.median(chunk)) for chunk in chunks if chunk.size]


def bimodal(samples_ms: Sequence[float]) -> bool:
    """Do the runs fall into two clusters separated by a gap of >= BIMODAL_GAP of the median?"""
    arr = np.sort(np.asarray(list(samples_ms), dtype=np.float64))
    if arr.size < MIN_RUNS_FOR_WINDOWS:
        return False
    lo = max(1, math.ceil(arr.size * BIMODAL_MIN_SHARE))
    gaps = np.diff(arr)[lo - 1 : arr.size - lo]  # gap i lies between arr[i] and arr[i + 1]
    if gaps.size == 0:
        return False
    return bool(gaps.max() >= BIMODAL_GAP * float(np.median(arr)))


def stability(
    samples_ms: Sequence[float], *, windows: int = DEFAULT_WINDOWS, tolerance_pct: float = DEFAULT_TOLERANCE_PCT
) -> dict[str, Any]:
    """The stability verdict of one measurement's timed runs.

    Returns:
        {"stable": bool | None (None: too few runs to judge), "windows": n, "window_medians_ms": [...],
         "spread_pct": (max - min window median) / overall median * 100, "tolerance_pct", "bimodal": bool}.
    """
    arr = np.asarray(list(samples_ms), dtype=np.float64)
    if arr.size < MIN_RUNS_FOR_WINDOWS:
        return {"stable": None, "windows": 0, "window_medians_ms": [], "spread_pct": None,
                "tolerance_pct": tolerance_pct, "bimodal": False, "reason": f"{arr.size} runs: too few to judge"}
    medians = window_medians(arr, windows)
    overall = float(np.median(arr))
    spread = (max(medians) - min(medians)) / overall * 100.0 if overall > 0 else 0.0
    split = bimodal(arr)
    return {
        "stable": bool(spread <= tolerance_pct and not split),
        "windows": len(medians),
        "window_medians_ms": [round(m, 4) for m in medians],
        "spread_pct": round(spread, 3),
        "tolerance_pct": tolerance_pct,
        "bimodal": split,
    }


def extended_stats(samples_ms: Sequence[float], trim: float = TRIM_FRACTION) -> dict[str, float]:
    """Coefficient of variation, trimmed mean of the middle (1 - 2*trim), and p99 of the timed runs."""
    arr = np.sort(np.asarray(list(samples_ms), dtype=np.float64))
    if arr.size == 0:
        raise ValueError("no latency samples to summarize")
    cut = int(math.floor(arr.size * trim))
    middle = arr[cut : arr.size - cut] if arr.size - 2 * cut > 0 else arr
    mean = float(arr.mean())
    return {
        "cv": float(arr.std(ddof=0) / mean) if mean > 0 else 0.0,
        "trimmed_mean_ms": float(middle.mean()),
        "p99_ms": float(np.percentile(arr, 99)),
    }
