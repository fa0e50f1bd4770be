"""The stability rule, the stop rule and the extra statistics on synthetic timings."""

from __future__ import annotations

import numpy as np
import pytest

from effvit_deploy.bench.stability import StopRule, bimodal, extended_stats, stability


def _noise(n: int, center: float = 10.0, rel: float = 0.01, seed: int = 0) -> list[float]:
    return list(center * (1 + rel * np.random.default_rng(seed).standard_normal(n)))


def test_steady_runs_are_stable() -> None:
    verdict = stability(_noise(200))
    assert verdict["stable"] is True and verdict["windows"] == 4 and verdict["spread_pct"] < 1.0
    assert not verdict["bimodal"]


def test_drifting_runs_are_not_stable() -> None:
    drift = [x * (1 + 0.2 * i / 200) for i, x in enumerate(_noise(200))]  # 20% slower by the end (throttling)
    verdict = stability(drift)
    assert verdict["stable"] is False and verdict["spread_pct"] > 10
    assert verdict["window_medians_ms"] == sorted(verdict["window_medians_ms"])


def test_bimodal_runs_are_not_stable_even_when_windows_agree() -> None:
    rng = np.random.default_rng(1)
    # 70% of runs on one cluster, 30% on a cluster 30% slower, evenly mixed in time: window medians agree
    runs = [x * (1.3 if rng.random() < 0.3 else 1.0) for x in _noise(400, seed=2)]
    verdict = stability(runs)
    assert verdict["spread_pct"] <= verdict["tolerance_pct"]
    assert verdict["bimodal"] is True and verdict["stable"] is False
    assert not bimodal(_noise(400, rel=0.03))


def test_too_few_runs_is_no_verdict() -> None:
    verdict = stability([1.0, 2.0, 3.0])
    assert verdict["stable"] is None and "too few" in verdict["reason"]


def test_tolerance_is_the_stated_percentage() -> None:
    runs = [10.0] * 50 + [10.4] * 50  # two windows at 10.0, two at 10.4: 4% spread
    assert stability(runs, tolerance_pct=5.0)["stable"] is True
    assert stability(runs, tolerance_pct=3.0)["stable"] is False


def test_stop_rule_needs_count_and_duration() -> None:
    rule = StopRule(min_runs=100, min_seconds=2.0, max_seconds=30.0)
    assert not rule.done(100, 1.0) and not rule.done(50, 5.0) and rule.done(100, 2.0)
    assert rule.done(3, 30.0)  # the ceiling ends a slow measurement
    assert rule.planned_runs(1.0) == 2000  # 1 ms runs: 2 s needs 2000
    assert rule.planned_runs(100.0) == 100  # slow runs: the count floor
    assert rule.planned_runs(1000.0) == 30  # 1 s runs: capped by the 30 s ceiling


def test_extended_stats() -> None:
    runs = [1.0] * 18 + [100.0, 200.0]  # 10% cut at each end (2 runs): the middle 80% drops both outliers
    ext = extended_stats(runs)
    assert ext["trimmed_mean_ms"] == pytest.approx(1.0)
    assert ext["cv"] == pytest.approx(np.std(runs) / np.mean(runs))
    assert ext["p99_ms"] == pytest.approx(np.percentile(runs, 99))
