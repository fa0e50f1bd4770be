"""The fields that say how far a record can be trusted, filled from what the runner measured.

`annotate(rec)` runs after a runner's output has been parsed into the record:
- `stability`: the window verdict of `stability.stability` plus CV, the trimmed mean (middle 80%) and p99 from the
  timed runs (`extended_stats`); a runner that printed only a mean gets `{"stable": None, "reason": ...}`;
- `peak_rss_kb`: the measured process's peak resident memory (VmHWM) as its runner reported it, with the source;
- `arena_bytes`: the runtime's planned arena when the runner could read it, else the reason it could not.
"""

from __future__ import annotations

from typing import Any

from .records import BenchRecord
from .stability import extended_stats, stability

# Where each runner family's memory figure comes from (for the record's `memory_source`).
_MEMORY_SOURCES = {"python": "VmHWM of the runner process (/proc/self/status)",
                   "app": "VmHWM of the app process (/proc/self/status)"}


def stability_fields(samples_ms: list[float] | None) -> dict[str, Any]:
    """Stability verdict and extended statistics of the timed runs (in the order they ran)."""
    if not samples_ms:
        return {"stable": None, "reason": "the runner reported no per-run times (only a mean)"}
    verdict = stability(samples_ms)
    ext = extended_stats(samples_ms)
    verdict.update(cv=round(ext["cv"], 5), trimmed_mean_ms=round(ext["trimmed_mean_ms"], 4),
                   p99_ms=round(ext["p99_ms"], 4))
    return verdict


def annotate(rec: BenchRecord) -> None:
    """Fill `stability`, `peak_rss_kb` and `arena_bytes` of a successful record (no-op for a failed one)."""
    if not rec.ok:
        return
    rec.stability = stability_fields(rec.samples_ms)
    peak = rec.extra.get("peak_rss_kb")
    family = rec.runner.split("-", 1)[0]
    if isinstance(peak, int | float) and peak > 0:
        rec.peak_rss_kb = int(peak)
        rec.extra.setdefault("memory_source", _MEMORY_SOURCES.get(family, f"reported by {rec.runner}"))
    else:
        rec.extra.setdefault("memory_source", f"none: {rec.runner} reported no peak memory")
    arena = rec.extra.get("arena_bytes")
    if isinstance(arena, int) and not isinstance(arena, bool) and arena >= 0:  # 0: everything delegated
        rec.arena_bytes = arena
    else:
        reason = _ARENA_REASONS.get((family, rec.target), "not reported by the runtime")
        rec.extra.setdefault("arena_reason", reason)


# Checked against the installed packages and TF 2.14.1's benchmark tool source. Where a runner reports the figure
# (our executor_runner: MethodMeta planned buffers; our onnxruntime_perf_test: the session allocator's MaxInUse),
# `arena_bytes` is set from its output and its `arena_source` says what it is.
_ARENA_REASONS = {
    ("python", "executorch"): "not exposed: the executorch pybindings' MethodMeta has no memory-planned buffer sizes",
    ("python", "tflite"): "not exposed: the LiteRT Python Interpreter reports no arena size",
    ("python", "onnx"): "not exposed: onnxruntime's Python API has no allocator statistics",
    ("native", "tflite"): "not reported: TFLite 2.14.1's benchmark_model prints no arena size (its "
                          "--print_postinvoke_state dump estimates it from tensor addresses after every run)",
    ("native", "executorch"): "not reported by this executor_runner (no 'Planned memory' line)",
    ("native", "onnx"): "not reported by this onnxruntime_perf_test (no 'Arena max in use' line)",
    ("app", "tflite"): "not read by the app (the LiteRT Java Interpreter has no arena-size call)",
    ("app", "executorch"): "not read by the app",
    ("app", "onnx"): "not read by the app",
}


def unstable(rec: BenchRecord) -> bool:
    """A successful record whose windows disagreed (or that ran in two clusters): worth measuring once more."""
    return bool(rec.ok and rec.stability and rec.stability.get("stable") is False)


# An unstable record is measured once more after at least this rest (or the sweep's cool-down when longer).
REMEASURE_COOLDOWN_S = 5.0


def remeasure_wait(rec: BenchRecord, cooldown_s: float) -> float | None:
    """Seconds to rest before measuring `rec`'s configuration again, or None when it needs no second try."""
    return max(cooldown_s, REMEASURE_COOLDOWN_S) if unstable(rec) else None


def finish_record(rec: BenchRecord, first: BenchRecord | None = None) -> None:
    """Trust fields of a finished record; `first` is the unstable attempt this one re-measured (kept in extra)."""
    annotate(rec)
    if first is not None:
        rec.extra["remeasured"] = {"first_spread_pct": (first.stability or {}).get("spread_pct"),
                                   "first_bimodal": (first.stability or {}).get("bimodal"),
                                   "first_median_ms": (first.stats or {}).get("median_ms"),
                                   "still_unstable": unstable(rec)}


def stop_kwargs(min_seconds: float, max_seconds: float | None) -> dict[str, Any]:
    """Stop-rule keyword arguments for `run_python_runner`, only when they differ from a count-only rule."""
    out: dict[str, Any] = {"min_seconds": min_seconds} if min_seconds > 0 else {}
    if max_seconds is not None:
        out["max_seconds"] = max_seconds
    return out


def energy_fields(out: Any, rec: BenchRecord) -> dict[str, Any]:
    """The record's energy: from the sampler's readings during the timed runs, or why there is none."""
    from .power import energy, parse_samples

    power, note = getattr(out, "power", None), getattr(out, "power_note", None)
    if power is None:
        return {"energy": None, "reason": note or f"{rec.runner}: no power sampler for this runner"}
    stats = rec.stats or {}
    inferences = len(rec.samples_ms) if rec.samples_ms else stats.get("n")  # benchmark_model: count and mean only
    if not rec.ok or not isinstance(inferences, int) or inferences <= 0:
        return {"energy": None, "reason": "no timed runs to divide the energy over"}
    seconds = rec.extra.get("timed_s")
    if not isinstance(seconds, int | float) or seconds <= 0:  # runner did not time the loop: the runs' own sum
        seconds = sum(rec.samples_ms) / 1000.0 if rec.samples_ms else inferences * float(stats["mean_ms"]) / 1000.0
    where = ("on the lowest CPU, at the lowest priority (the app is not pinned: its threads may share that CPU)"
             if rec.runner.startswith("app-") else "on a core outside the mask")
    return energy(parse_samples(power), inferences=inferences, seconds=float(seconds), where=where)
