"""`compare`: ratios with bootstrap intervals and verdicts on synthetic records."""

from __future__ import annotations

import numpy as np

from effvit_deploy.bench.compare import compare, to_markdown
from effvit_deploy.bench.records import BenchRecord
from effvit_deploy.bench.stats import summarize


def _rec(samples: list[float] | None, *, serial: str = "phone-a", model_name: str = "Pixel 7",
         threads: int = 1, mean_only: float | None = None) -> BenchRecord:
    if samples is not None:
        stats = summarize(samples)
    else:
        stats = {"median_ms": None, "mean_ms": mean_only, "p90_ms": None, "min_ms": None, "max_ms": None,
                 "std_ms": None, "n": 10, "basis": "mean-only"}
    return BenchRecord(device_serial=serial, device={"model": model_name}, model="efficientvit-b1",
                       resolution="224x224", target="tflite", precision="fp32", artifact_sha256="ab" * 32,
                       runner="python-litert", threads=threads, runs=len(samples or [0]), warmup=5, stats=stats,
                       samples_ms=samples)


def _runs(center: float, seed: int, n: int = 100, rel: float = 0.02) -> list[float]:
    return list(center * (1 + rel * np.random.default_rng(seed).standard_normal(n)))


def test_verdicts() -> None:
    before = [_rec(_runs(10.0, 0)), _rec(_runs(10.0, 1), threads=2), _rec(_runs(10.0, 2), threads=4)]
    after = [_rec(_runs(8.0, 3)), _rec(_runs(12.0, 4), threads=2), _rec(_runs(10.0, 5), threads=4)]
    faster, slower, same = compare(before, after)
    assert faster.verdict == "faster" and faster.ci_high is not None and faster.ci_high < 1
    assert abs(faster.ratio - 0.8) < 0.02 and faster.ci_low < faster.ratio < faster.ci_high
    assert slower.verdict == "slower" and slower.ci_low > 1
    assert same.verdict == "within noise" and same.ci_low <= 1 <= same.ci_high


def test_interval_is_reproducible_and_narrows_with_more_runs() -> None:
    a, b = [_rec(_runs(10.0, 0, n=20))], [_rec(_runs(10.5, 1, n=20))]
    first, again = compare(a, b)[0], compare(a, b)[0]
    assert (first.ci_low, first.ci_high) == (again.ci_low, again.ci_high)
    wide = first.ci_high - first.ci_low
    many = compare([_rec(_runs(10.0, 0, n=500))], [_rec(_runs(10.5, 1, n=500))])[0]
    assert many.ci_high - many.ci_low < wide / 2


def test_two_phones_pair_up_and_unmatched_configs_are_left_out() -> None:
    a = [_rec(_runs(10.0, 0), serial="a", model_name="Pixel 7"), _rec(_runs(10.0, 1), threads=8)]
    b = [_rec(_runs(20.0, 2), serial="b", model_name="Galaxy S21")]
    (only,) = compare(a, b)
    assert only.verdict == "slower" and "Pixel 7 vs Galaxy S21" in only.label


def test_mean_only_records_have_no_verdict() -> None:
    (c,) = compare([_rec(None, mean_only=10.0)], [_rec(None, mean_only=5.0)])
    assert c.verdict == "no samples" and c.ratio == 0.5 and c.ci_low is None and c.statistic == "mean"


def test_markdown_escapes_device_names() -> None:
    a = [_rec(_runs(10.0, 0), model_name="evil|phone")]
    text = to_markdown(compare(a, [_rec(_runs(10.0, 1), model_name="evil|phone")]), "before", "after")
    assert "evil\\|phone" in text and text.count("\n") == 3
    assert "after/before (95% CI)" in text  # the ratio is B over A
