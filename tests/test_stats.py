"""Latency summary definitions and the throttle flag."""

from __future__ import annotations

import math

import numpy as np
import pytest

from effvit_deploy.bench.stats import detect_throttle, summarize


def test_summarize_definitions() -> None:
    samples = [float(x) for x in range(1, 11)]  # 1..10
    s = summarize(samples)
    assert s["n"] == 10 and s["basis"] == "samples"
    assert s["median_ms"] == pytest.approx(5.5)
    assert s["p90_ms"] == pytest.approx(9.1)  # linear interpolation: 9 + 0.1 * (10 - 9)
    assert s["mean_ms"] == pytest.approx(5.5)
    assert s["min_ms"] == 1.0 and s["max_ms"] == 10.0
    assert s["std_ms"] == pytest.approx(math.sqrt(8.25))  # population std (ddof=0)
    assert s["std_ms"] == pytest.approx(float(np.std(samples)))


def test_summarize_order_independent_and_single_sample() -> None:
    rng = np.random.default_rng(0)
    xs = list(rng.uniform(10, 20, size=37))
    a, b = summarize(xs), summarize(sorted(xs))
    assert a.pop("basis") == b.pop("basis")
    assert a == pytest.approx(b, rel=1e-12)
    one = summarize([7.25])
    assert one["median_ms"] == one["p90_ms"] == one["min_ms"] == one["max_ms"] == 7.25
    assert one["std_ms"] == 0.0 and one["n"] == 1


@pytest.mark.parametrize("bad", [[], [1.0, float("nan")], [1.0, float("inf")], [-1.0]])
def test_summarize_rejects_bad_input(bad: list[float]) -> None:
    with pytest.raises(ValueError):
        summarize(bad)


def test_throttle_none_without_data() -> None:
    assert detect_throttle(None, None, None, None) is None
    assert detect_throttle({"cpu0": 1e6}, None, {}, None) is None
    assert detect_throttle({"cpu0": 1e6}, {"cpu1": 1e6}, None, None) is None  # no CPU in common


def test_throttle_frequency_drop() -> None:
    before = {"cpu4": 2_420_000, "cpu7": 2_841_600}
    assert detect_throttle(before, dict(before), None, None) is False
    assert detect_throttle(before, {"cpu4": 2_420_000, "cpu7": 2_600_000}, None, None) is False  # -8.5 %
    assert detect_throttle(before, {"cpu4": 2_420_000, "cpu7": 2_000_000}, None, None) is True  # -30 %
    assert detect_throttle(before, {"cpu4": 2_420_000, "cpu7": 2_600_000}, None, None, freq_drop=0.05) is True


def test_throttle_temperature_rise_and_limit() -> None:
    assert detect_throttle(None, None, {"cpu-0": 40.0}, {"cpu-0": 48.0}) is False
    assert detect_throttle(None, None, {"cpu-0": 40.0}, {"cpu-0": 52.5}) is True  # +12.5 C
    assert detect_throttle(None, None, {"cpu-0": 80.0}, {"cpu-0": 86.0}) is True  # past the limit
    assert detect_throttle(None, None, None, {"cpu-0": 90.0}) is True  # limit needs only the after reading
    assert detect_throttle(None, None, {"cpu-0": 80.0}, {"cpu-0": 86.0}, temp_limit_c=95.0) is False
    # sysfs millidegrees are accepted
    assert detect_throttle(None, None, {"tz0": 40_000}, {"tz0": 41_000}) is False
    assert detect_throttle(None, None, {"tz0": 40_000}, {"tz0": 55_000}) is True


def test_throttle_any_signal_wins() -> None:
    freqs = {"cpu0": 1_800_000}
    assert detect_throttle(freqs, freqs, {"z": 40.0}, {"z": 70.0}) is True
    assert detect_throttle(freqs, {"cpu0": 900_000}, {"z": 40.0}, {"z": 41.0}) is True
    assert detect_throttle(freqs, freqs, {"z": 40.0}, {"z": 41.0}) is False
