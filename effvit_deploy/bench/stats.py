"""Latency statistics and the thermal-throttle flag.

Definitions (fixed here so every runner's numbers mean the same thing):
- median, p90: numpy's default "linear" percentile, i.e. linear interpolation between the two closest ranks
  (p90 of [1..10] is 9.1). Native runners print their own percentiles with other rules (benchmark_model: element at
  index size*pct/100 after nth_element; onnxruntime_perf_test: index floor(n*p) of the sorted list); records keep
  those as printed and say so in `stats["basis"] == "runner"`.
- std: population standard deviation (ddof=0), the same definition benchmark_model prints
  (sqrt(E[x^2] - E[x]^2)), so "runner" and "samples" stds are comparable. With one sample it is 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def summarize(samples_ms: Sequence[float]) -> dict[str, Any]:
    """Summary of timed samples in milliseconds.

    Args:
        samples_ms: the timed runs (warm-up already removed), in ms.
    Returns:
        {"median_ms", "mean_ms", "p90_ms", "min_ms", "max_ms", "std_ms", "n", "basis": "samples"}; floats in ms.
    Raises:
        ValueError: no samples, or a sample that is not a finite non-negative number.
    """
    arr = np.asarray(list(samples_ms), dtype=np.float64)
    if arr.size == 0:
        raise ValueError("no latency samples to summarize")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError(f"latency samples must be finite and >= 0, got {arr[~np.isfinite(arr) | (arr < 0)][:3]}")
    return {
        "median_ms": float(np.percentile(arr, 50)),
        "mean_ms": float(arr.mean()),
        "p90_ms": float(np.percentile(arr, 90)),
        "min_ms": float(arr.min()),
        "max_ms": float(arr.max()),
        "std_ms": float(arr.std(ddof=0)),
        "n": int(arr.size),
        "basis": "samples",
    }


def detect_throttle(
    freqs_before: Mapping[str, float] | None,
    freqs_after: Mapping[str, float] | None,
    temps_before: Mapping[str, float] | None,
    temps_after: Mapping[str, float] | None,
    *,
    freq_drop: float = 0.1,
    temp_rise_c: float = 10.0,
    temp_limit_c: float = 85.0,
) -> bool | None:
    """Did the device throttle (or come close) during a measurement?

    Frequencies should be the per-CPU (or per-policy) frequency *caps* (`scaling_max_freq`) or the clocks read
    under the same load before and after; a cap that fell by more than `freq_drop` (a fraction) on any CPU present
    in both readings means the thermal governor stepped in. Temperatures are per zone in degrees C (values above
    200 are taken as the millidegrees sysfs reports and divided by 1000); throttled when any zone rose by more than
    `temp_rise_c` or any zone ends at or above `temp_limit_c` (85 C: phone CPU zones typically have passive trip
    points between 85 and 95 C, so reaching it means the numbers are suspect).

    Returns:
        True/False, or None when neither frequencies nor temperatures are available on both sides.
    """
    verdicts: list[bool] = []
    common_cpus = _common(freqs_before, freqs_after)
    if common_cpus:
        assert freqs_before is not None and freqs_after is not None
        verdicts.append(
            any(freqs_before[c] > 0 and freqs_after[c] < freqs_before[c] * (1.0 - freq_drop) for c in common_cpus)
        )
    after_c = {z: _celsius(t) for z, t in (temps_after or {}).items() if _finite(t)}
    before_c = {z: _celsius(t) for z, t in (temps_before or {}).items() if _finite(t)}
    common_zones = sorted(set(before_c) & set(after_c))
    if common_zones:
        verdicts.append(any(after_c[z] - before_c[z] > temp_rise_c for z in common_zones))
    if after_c:
        # the absolute limit needs only the "after" reading
        verdicts.append(max(after_c.values()) >= temp_limit_c)
    if not verdicts:
        return None
    return any(verdicts)


def _common(a: Mapping[str, float] | None, b: Mapping[str, float] | None) -> list[str]:
    """Keys present with finite values in both mappings."""
    if not a or not b:
        return []
    return sorted(k for k in set(a) & set(b) if _finite(a[k]) and _finite(b[k]))


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _celsius(value: float) -> float:
    return value / 1000.0 if value > 200 else float(value)
