"""Compare two results files configuration by configuration: a ratio, its confidence interval and a verdict.

    comparisons = compare(load_results([a]), load_results([b]))
    print(to_markdown(comparisons, "before", "after"))

For before/after a change on one phone, or the same sweep on two phones. Configurations are matched on what was
measured (model, resolution, target, precision, threads, export variant) — not on the device, so two phones pair
up; when a file holds several devices for one configuration, records pair by device. The ratio is B's median over A's
(< 1: B is faster). Its confidence interval comes from a bootstrap over the timed runs of both sides (resampled with
replacement, the median of each resample, seeded so a report is reproducible). The verdict:
- `faster` / `slower`: the whole interval lies below / above 1;
- `within noise`: the interval contains 1;
- `no samples`: a side has no per-run times (a runner that printed only a mean): the ratio of means, no verdict.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from .records import BenchRecord

DEFAULT_RESAMPLES = 2000
DEFAULT_CONFIDENCE = 0.95


@dataclass(frozen=True)
class Comparison:
    """One configuration measured in both files."""

    label: str  # "efficientvit-b1@512x512 tflite fp32 t4 [device]"
    a_ms: float
    b_ms: float
    statistic: str  # "median" or "mean"
    ratio: float  # b / a
    ci_low: float | None
    ci_high: float | None
    verdict: str  # faster | slower | within noise | no samples


def _config(rec: BenchRecord) -> tuple[str, ...]:
    from .report import record_variant  # the report's notion of an export variant (nhwc, no-optimize)

    return (rec.model, rec.resolution, rec.target, rec.precision, str(rec.threads), record_variant(rec))


def _latest_ok(records: Iterable[BenchRecord]) -> dict[tuple[str, ...], dict[str, BenchRecord]]:
    """config -> device id -> the latest successful record (file order: later lines win, as in the report)."""
    out: dict[tuple[str, ...], dict[str, BenchRecord]] = {}
    for rec in records:
        if rec.ok:
            out.setdefault(_config(rec), {})[rec.device_id] = rec
    return out


def _pairs(a: dict[str, BenchRecord], b: dict[str, BenchRecord]) -> list[tuple[BenchRecord, BenchRecord]]:
    shared = sorted(set(a) & set(b))
    if shared:
        return [(a[d], b[d]) for d in shared]
    if len(a) == 1 and len(b) == 1:  # one device on each side: two phones, or a renamed serial
        return [(next(iter(a.values())), next(iter(b.values())))]
    return []


def bootstrap_ratio(
    a_ms: Sequence[float], b_ms: Sequence[float], *, resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE, seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of median(b) / median(a)."""
    rng = np.random.default_rng(seed)
    a = np.asarray(a_ms, dtype=np.float64)
    b = np.asarray(b_ms, dtype=np.float64)
    med_a = np.median(a[rng.integers(0, a.size, (resamples, a.size))], axis=1)
    med_b = np.median(b[rng.integers(0, b.size, (resamples, b.size))], axis=1)
    ratios = med_b / med_a
    tail = (1.0 - confidence) / 2.0 * 100.0
    return float(np.percentile(ratios, tail)), float(np.percentile(ratios, 100.0 - tail))


def _verdict(low: float, high: float) -> str:
    if high < 1.0:
        return "faster"
    if low > 1.0:
        return "slower"
    return "within noise"


def compare(
    a_records: Iterable[BenchRecord], b_records: Iterable[BenchRecord], *, resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE, seed: int = 0,
) -> list[Comparison]:
    """Every configuration measured successfully in both A and B, in A's order."""
    a_map, b_map = _latest_ok(a_records), _latest_ok(b_records)
    out = []
    for config, a_devices in a_map.items():
        if config not in b_map:
            continue
        for rec_a, rec_b in _pairs(a_devices, b_map[config]):
            out.append(_compare_pair(rec_a, rec_b, resamples=resamples, confidence=confidence, seed=seed))
    return out


def _compare_pair(rec_a: BenchRecord, rec_b: BenchRecord, *, resamples: int, confidence: float,
                  seed: int) -> Comparison:
    model, res, target, precision, threads, variant = _config(rec_a)
    devices = rec_a.device_model if rec_a.device_id == rec_b.device_id else \
        f"{rec_a.device_model} vs {rec_b.device_model}"
    label = f"{model}@{res}{f' [{variant}]' if variant else ''} {target} {precision} t{threads} ({devices})"
    assert rec_a.stats is not None and rec_b.stats is not None
    if rec_a.samples_ms and rec_b.samples_ms:
        a_ms, b_ms = float(np.median(rec_a.samples_ms)), float(np.median(rec_b.samples_ms))
        low, high = bootstrap_ratio(rec_a.samples_ms, rec_b.samples_ms, resamples=resamples, confidence=confidence,
                                    seed=seed)
        return Comparison(label, a_ms, b_ms, "median", b_ms / a_ms, low, high, _verdict(low, high))
    stat = "median_ms" if rec_a.stats.get("median_ms") and rec_b.stats.get("median_ms") else "mean_ms"
    a_ms, b_ms = float(rec_a.stats[stat]), float(rec_b.stats[stat])
    return Comparison(label, a_ms, b_ms, stat.removesuffix("_ms"), b_ms / a_ms, None, None, "no samples")


def to_markdown(comparisons: Sequence[Comparison], a_name: str = "A", b_name: str = "B",
                confidence: float = DEFAULT_CONFIDENCE) -> str:
    """A table: configuration, A ms, B ms, B/A with its interval, verdict (for B relative to A)."""
    from .report import _md_escape  # device names come from the device: escaped like the report's

    pct = f"{confidence * 100:g}%"
    lines = [f"| configuration | {a_name} ms | {b_name} ms | {b_name}/{a_name} ({pct} CI) | verdict |",
             "|---|---|---|---|---|"]
    for c in comparisons:
        ci = f" [{c.ci_low:.3f}, {c.ci_high:.3f}]" if c.ci_low is not None and c.ci_high is not None else ""
        lines.append(f"| {_md_escape(c.label)} | {c.a_ms:.3f} ({c.statistic}) | {c.b_ms:.3f} ({c.statistic}) | "
                     f"{c.ratio:.3f}{ci} | {c.verdict} |")
    if not comparisons:
        lines.append("| (no configuration was measured successfully in both files) | | | | |")
    return "\n".join(lines) + "\n"
