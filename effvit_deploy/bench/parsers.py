"""Parse what benchmark runners print into samples and statistics (milliseconds everywhere).

Supported outputs (formats: shared/reference/mobile_benchmark_tools_facts.md sections 1-3, checked against the tools'
sources):
- LiteRT/TFLite `benchmark_model`: two `count=` lines (warm-up, then regular runs), the
  `Overall peak memory footprint (MB) via periodic monitoring: X` line of `--report_peak_memory_footprint` (the peak
  of getrusage's ru_maxrss, in MiB) and `Memory footprint delta from the start of the tool (MB): init=X overall=Y`,
  the `Inference timings in us: Init: ..., First inference: ..., Warmup (avg): ..., Inference (avg): ...` summary
  (numbers can be in scientific notation such as `2.95034e+06`), the optional `p5= median= p95=` tail, the
  `(all same)` form, the legacy `Average inference timings in us: Warmup: ..., Init: ..., Inference|no stats: ...`
  line, and any line prefix (`INFO: `, logcat's `01-02 03:04:05.678  123  123 I tflite  : `).
- ExecuTorch `executor_runner`: per-iteration `Iteration i of N: X ms` lines when the build prints them (the first
  `warmup` iterations are dropped: the runner has no warm-up of its own), otherwise only
  `Model executed successfully N time(s) in X ms.` where X is the *sum* over all N runs, so only the mean is known;
  our build adds `Planned memory: B bytes in K buffer(s)`, `Timed runs: end, K runs in X ms` and
  `Peak RSS: N KB (VmHWM)`.
- `onnxruntime_perf_test`: session creation (s), first inference (ms), average (ms), request count, and
  Min/Max/P50/P90/P95/P99/P999 latencies printed in *seconds*; our build adds `Timed runs: end, K runs in X ms` and
  `Arena max in use: N bytes (...)` (or `Arena max in use: not reported (why)`).
- The project's Python runners: the last stdout line that is a JSON object with `samples_ms`.

Every parser returns a `ParsedRun` or raises `RunnerOutputError` with one line that quotes the start of the output.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from ..errors import InvalidInputError, RunnerError
from .stats import summarize

_NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_SNIPPET_CHARS = 200


class RunnerOutputError(RunnerError, ValueError):
    """A runner's output does not contain the numbers we need (crash, truncated log, unknown format)."""


@dataclass
class ParsedRun:
    """What one runner invocation reported.

    `stats` always has the keys of `records.STAT_KEYS`; values a runner does not report are None and
    `stats["basis"]` says where the numbers come from ("samples", "runner" or "mean-only").
    """

    stats: dict[str, Any]
    samples_ms: list[float] | None = None  # timed samples, warm-up removed
    init_ms: float | None = None
    first_ms: float | None = None
    threads: int | None = None
    runner: str | None = None
    versions: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    output: list[float] | None = None  # output 0 when the runner was asked for it (device parity)


def parse_runner_output(runner: str, stdout: str, *, warmup: int = 0) -> ParsedRun:
    """Dispatch on the runner kind used in records ("python-*", "native-benchmark_model", ...)."""
    if runner.startswith("python-"):
        return parse_python_runner(stdout)
    parsers = {
        "native-benchmark_model": parse_benchmark_model,
        "native-onnxruntime_perf_test": parse_perf_test,
    }
    if runner == "native-executor_runner":
        return parse_executor_runner(stdout, warmup=warmup)
    if runner in parsers:
        return parsers[runner](stdout)
    known = ["python-*", "native-executor_runner", *parsers]
    raise InvalidInputError(f"unknown runner kind {runner!r}; expected one of {', '.join(known)}")


# --- LiteRT benchmark_model -----------------------------------------------------------------------------------------

_BM_COUNT = re.compile(r"\bcount=(\d+)(.*)$")
_BM_KV = re.compile(r"\b(\w+)=([^\s(]+)")
_BM_SUMMARY = re.compile(r"(?<!Average )Inference timings in us:\s*(.*)$")
_BM_LEGACY = re.compile(r"Average inference timings in us:\s*(.*)$")
_BM_INIT_SESSION = re.compile(rf"Initialized session in\s*({_NUM})\s*ms")
_BM_THREADS = re.compile(r"Num threads:\s*\[(-?\d+)\]")
_BM_PEAK = re.compile(rf"Overall peak memory footprint \(MB\) via periodic monitoring:\s*({_NUM})")
_BM_DELTA = re.compile(rf"Memory footprint delta from the start of the tool \(MB\):\s*init=({_NUM})\s+overall=({_NUM})")
_BM_VMHWM = re.compile(r"Peak RSS:\s*(\d+)\s*KB \((VmHWM|ru_maxrss)\)")  # our C-API benchmark_model (aarch64)
_BM_DELEGATE = re.compile(r"Replacing (\d+)(?: out of (\d+))? node\(s\) with delegate \(([^)]*)\) node, yielding (\d+)")


def parse_benchmark_model(stdout: str) -> ParsedRun:
    """Parse LiteRT/TFLite `benchmark_model` output (the regular-run `count=` line is in us; returned in ms)."""
    counts: list[dict[str, Any]] = []
    summary: dict[str, float | None] = {}
    legacy: dict[str, float | None] = {}
    init_session_ms = threads = None
    extra: dict[str, Any] = {}
    for line in stdout.splitlines():
        if m := _BM_COUNT.search(line):
            counts.append(_bm_count_line(int(m.group(1)), m.group(2)))
        elif m := _BM_LEGACY.search(line):
            legacy = _label_values(m.group(1))
        elif m := _BM_SUMMARY.search(line):
            summary = _label_values(m.group(1))
        elif m := _BM_INIT_SESSION.search(line):
            init_session_ms = _float(m.group(1))
        elif m := _BM_THREADS.search(line):
            threads = int(m.group(1))
        elif m := _BM_PEAK.search(line):
            peak_mb = _float(m.group(1))
            if peak_mb is not None and peak_mb > 0:
                extra.update(peak_rss_kb=round(peak_mb * 1024), memory_source="benchmark_model "
                             "--report_peak_memory_footprint (peak ru_maxrss of the tool's process)")
        elif m := _BM_VMHWM.search(line):
            extra.update(peak_rss_kb=int(m.group(1)), memory_source=f"benchmark_model: {m.group(2)} of its process")
        elif m := _BM_DELTA.search(line):
            extra.update(memory_delta_init_mb=_float(m.group(1)), memory_delta_overall_mb=_float(m.group(2)))
        elif m := _BM_DELEGATE.search(line):
            extra.update(delegate=m.group(3), delegated_nodes=int(m.group(1)), partitions=int(m.group(4)))
            if m.group(2):
                extra["total_nodes"] = int(m.group(2))

    inference_avg_us = summary.get("inference (avg)")
    if inference_avg_us is None:
        inference_avg_us = legacy.get("inference", legacy.get("no stats"))
    warm, reg = _bm_pick_runs(counts, inference_avg_us, stdout)

    if reg is not None:
        if reg["n"] == 0:
            raise _error("benchmark_model", "the regular run has count=0 (no timed runs)", stdout)
        if reg["mean_ms"] is None:
            raise _error("benchmark_model", "the regular count= line has no readable avg=", stdout)
        stats = _bm_stats(reg)
        extra.update({k: reg[k] for k in ("p5_ms", "p95_ms") if reg.get(k) is not None})
    else:
        assert inference_avg_us is not None  # _bm_pick_runs guarantees it
        stats = _mean_only(inference_avg_us / 1000.0, None)
    if warm is not None:
        extra["warmup_n"] = warm["n"]
        if warm.get("mean_ms") is not None:
            extra["warmup_avg_ms"] = warm["mean_ms"]

    init_us = summary.get("init", legacy.get("init"))
    init_ms = init_us / 1000.0 if init_us is not None else init_session_ms
    first_us = summary.get("first inference")
    first_ms = first_us / 1000.0 if first_us is not None else (warm or {}).get("first_ms")
    return ParsedRun(stats=stats, init_ms=init_ms, first_ms=first_ms, threads=threads, extra=extra)


def _bm_count_line(n: int, rest: str) -> dict[str, Any]:
    """`count=N first=.. curr=.. min=.. max=.. avg=.. std=.. [p5=.. median=.. p95=..]` or `count=N curr=X(all same)`."""
    kv = {k: _float(v) for k, v in _BM_KV.findall(rest)}
    ms = {k: (v / 1000.0 if v is not None else None) for k, v in kv.items()}
    all_same = "(all same)" in rest or ("curr" in kv and "avg" not in kv)
    if all_same and ms.get("curr") is not None:
        x = ms["curr"]
        return dict(n=n, first_ms=x, mean_ms=x, min_ms=x, max_ms=x, std_ms=0.0, median_ms=x, p90_ms=x, all_same=True)
    return dict(
        n=n,
        first_ms=ms.get("first"),
        mean_ms=ms.get("avg"),
        min_ms=ms.get("min"),
        max_ms=ms.get("max"),
        std_ms=ms.get("std"),
        median_ms=ms.get("median"),
        p90_ms=None,  # benchmark_model prints p5/median/p95 only
        p5_ms=ms.get("p5"),
        p95_ms=ms.get("p95"),
        all_same=False,
    )


def _bm_pick_runs(
    counts: list[dict[str, Any]], inference_avg_us: float | None, stdout: str
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(warm-up, regular) count lines; the tool prints warm-up first, then regular runs."""
    if len(counts) >= 2:
        return counts[-2], counts[-1]
    if len(counts) == 1:
        only = counts[0]
        # One line is the regular run only if the summary's Inference (avg) agrees with it; otherwise the log was
        # cut after the warm-up.
        if inference_avg_us is not None and only["mean_ms"] is not None:
            if math.isclose(only["mean_ms"], inference_avg_us / 1000.0, rel_tol=1e-3, abs_tol=1e-3):
                return None, only
        raise _error("benchmark_model", "only one count= line (the warm-up?) and no matching summary", stdout)
    if inference_avg_us is not None:
        return None, None  # a grepped summary line alone (benchmark APK via logcat): mean only
    raise _error("benchmark_model", "no count= line and no 'Inference timings in us' summary", stdout)


def _bm_stats(reg: dict[str, Any]) -> dict[str, Any]:
    return {
        "median_ms": reg["median_ms"],
        "mean_ms": reg["mean_ms"],
        "p90_ms": reg["p90_ms"],
        "min_ms": reg["min_ms"],
        "max_ms": reg["max_ms"],
        "std_ms": reg["std_ms"],
        "n": reg["n"],
        "basis": "runner",
    }


def _label_values(text: str) -> dict[str, float | None]:
    """`Init: 57009, First inference: 3.5e+04, ...` -> {"init": 57009.0, "first inference": 35000.0, ...}."""
    out: dict[str, float | None] = {}
    for part in text.split(","):
        label, sep, value = part.rpartition(":")
        if sep and label.strip():
            token = value.strip().split()[0] if value.strip() else ""
            out[label.strip().lower()] = _float(token)
    return out


# --- ExecuTorch executor_runner -------------------------------------------------------------------------------------

_ET_ITER = re.compile(rf"Iteration (\d+) of (\d+):\s*({_NUM})\s*ms")
_ET_TOTAL = re.compile(rf"Model executed successfully (\d+) time\(s\)(?: in ({_NUM}) ms)?")
_ET_LOADED = re.compile(rf"Model loaded in ({_NUM}) ms")
_ET_THREADS = re.compile(r"Resetting threadpool with num threads = (-?\d+)")
_ET_PEAK_RSS = re.compile(r"Peak RSS: (\d+) KB(?: \((\w+)\))?")  # effvit-deploy's executor_runner build only
_ET_PLANNED = re.compile(r"Planned memory: (\d+) bytes in (\d+) buffer")
_TIMED_END = re.compile(rf"^Timed runs: end, (\d+) runs in ({_NUM}) ms")  # our executor_runner and perf runner


def parse_executor_runner(stdout: str, *, warmup: int = 0) -> ParsedRun:
    """Parse ExecuTorch `executor_runner` output.

    The runner has no warm-up: run it with `--num_executions = warmup + runs` and pass `warmup` here. With
    per-iteration lines the first `warmup` samples are dropped and the rest are summarised; without them only the
    total is known, so the result is mean-only and that mean *includes* the warm-up iterations
    (`extra["mean_includes_warmup"]` says how many).
    """
    if warmup < 0:
        raise ValueError(f"warmup must be >= 0, got {warmup}")
    iters: list[tuple[int, int, float]] = []
    total: tuple[int, float | None] | None = None
    init_ms = threads = peak_rss_kb = None
    extra: dict[str, Any] = {}
    for line in stdout.splitlines():
        if m := _ET_ITER.search(line):
            iters.append((int(m.group(1)), int(m.group(2)), _req_float(m.group(3), "executor_runner", stdout)))
        elif m := _ET_TOTAL.search(line):
            total = (int(m.group(1)), _float(m.group(2)) if m.group(2) else None)
        elif m := _ET_LOADED.search(line):
            init_ms = _float(m.group(1))
        elif m := _ET_THREADS.search(line):
            threads = int(m.group(1))
        elif m := _ET_PEAK_RSS.search(line):
            peak_rss_kb = int(m.group(1))
            extra["memory_source"] = f"executor_runner: {m.group(2) or 'ru_maxrss'} of its own process"
        elif m := _ET_PLANNED.search(line):
            extra.update(arena_bytes=int(m.group(1)), arena_buffers=int(m.group(2)),
                         arena_source="MethodMeta memory-planned buffers (delegate workspaces not included)")
        else:
            _timed_end(line, extra)
    if total is None:
        raise _error("executor_runner", "no 'Model executed successfully' line; the run did not finish", stdout)
    n_total, total_ms = total
    extra["num_executions"] = n_total
    if peak_rss_kb is not None:
        extra["peak_rss_kb"] = peak_rss_kb

    if iters:
        indices = [i for i, _, _ in iters]
        if indices != list(range(1, len(iters) + 1)) or len(iters) != n_total:
            raise _error("executor_runner", f"iteration lines {indices[:5]}... do not cover 1..{n_total}", stdout)
        times = [t for _, _, t in iters]
        if len(times) <= warmup:
            raise _error("executor_runner", f"{len(times)} iterations leave none after {warmup} warm-up", stdout)
        samples = times[warmup:]
        if total_ms is not None:
            extra["total_ms"] = total_ms
        return ParsedRun(
            stats=summarize(samples),
            samples_ms=samples,
            init_ms=init_ms,
            first_ms=times[0],
            threads=threads,
            extra=extra,
        )
    if total_ms is None:
        raise _error("executor_runner", "this executor_runner prints no timing (needs a build with 'in X ms')", stdout)
    if n_total <= 0:
        raise _error("executor_runner", "the model was executed 0 times", stdout)
    extra.update(total_ms=total_ms, mean_includes_warmup=warmup)
    return ParsedRun(stats=_mean_only(total_ms / n_total, n_total), init_ms=init_ms, threads=threads, extra=extra)


# --- onnxruntime_perf_test ------------------------------------------------------------------------------------------

_ORT_SESSION = re.compile(rf"Session creation time cost:\s*({_NUM})\s*s")
_ORT_FIRST = re.compile(rf"First inference time cost:\s*({_NUM})\s*ms")
_ORT_REQUESTS = re.compile(r"(?:Total inference requests|Total iterations):\s*(\d+)")
_ORT_AVERAGE = re.compile(rf"Average (?:inference )?time cost(?: total)?:\s*({_NUM})\s*ms")
_ORT_PEAK = re.compile(r"Peak working set size:\s*(\d+)\s*bytes")
_ORT_ARENA = re.compile(r"Arena max in use:\s*(?:(\d+) bytes|not reported \((.*)\))")
_ORT_LATENCY = re.compile(rf"\b(Min|Max|P50|P90|P95|P99|P999) Latency(?: is)?:?\s*({_NUM})\s*s(?:ec)?\b")


def parse_perf_test(stdout: str) -> ParsedRun:
    """Parse `onnxruntime_perf_test` output (latency percentiles are printed in seconds; returned in ms).

    Its percentiles are the element at index floor(n*p) of the sorted times, not interpolated; std is not printed.
    """
    session_s = first_ms = n = mean_ms = peak_bytes = None
    lat: dict[str, float | None] = {}
    extra: dict[str, Any] = {}
    for line in stdout.splitlines():
        if m := _ORT_SESSION.search(line):
            session_s = _float(m.group(1))
        elif m := _ORT_FIRST.search(line):
            first_ms = _float(m.group(1))
        elif m := _ORT_REQUESTS.search(line):
            n = int(m.group(1))
        elif m := _ORT_AVERAGE.search(line):
            mean_ms = _float(m.group(1))
        elif m := _ORT_PEAK.search(line):
            peak_bytes = int(m.group(1))
        elif m := _ORT_LATENCY.search(line):
            value = _float(m.group(2))
            lat[m.group(1)] = value * 1000.0 if value is not None else None
        elif m := _ORT_ARENA.search(line):
            if m.group(1) is not None:
                extra.update(arena_bytes=int(m.group(1)),
                             arena_source="session CPU allocator MaxInUse (AllocatorGetStats)")
            else:
                extra["arena_reason"] = f"onnxruntime: {m.group(2)}"
        else:
            _timed_end(line, extra)
    if mean_ms is None and lat.get("P50") is None:
        raise _error("onnxruntime_perf_test", "no 'Average inference time cost' and no 'P50 Latency' line", stdout)
    stats = {
        "median_ms": lat.get("P50"),
        "mean_ms": mean_ms,
        "p90_ms": lat.get("P90"),
        "min_ms": lat.get("Min"),
        "max_ms": lat.get("Max"),
        "std_ms": None,
        "n": n,
        "basis": "runner",
    }
    extra.update({f"{k.lower()}_ms": v for k, v in lat.items() if k in ("P95", "P99", "P999") and v is not None})
    if peak_bytes is not None:
        extra["peak_rss_kb"] = peak_bytes // 1024
        extra["memory_source"] = "onnxruntime_perf_test: peak working set of its process (VmHWM in our build)"
    init_ms = session_s * 1000.0 if session_s is not None else None
    return ParsedRun(stats=stats, init_ms=init_ms, first_ms=first_ms, extra=extra)


def _timed_end(line: str, extra: dict[str, Any]) -> None:
    """Our runners' `Timed runs: end, K runs in X ms` line -> extra timed_runs, timed_s."""
    if m := _TIMED_END.search(line.strip()):
        ms = _float(m.group(2))
        extra["timed_runs"] = int(m.group(1))
        if ms is not None:
            extra["timed_s"] = ms / 1000.0


# --- the project's Python runners -----------------------------------------------------------------------------------


def parse_python_runner(stdout: str) -> ParsedRun:
    """The last stdout line that is a JSON object with `samples_ms` (timed samples, warm-up already excluded).

    Line format: `{"runner": str, "samples_ms": [float, ...], "init_ms": float|null, "first_ms": float|null,
    "versions": {str: str}, "threads": int (optional), "extra": {...} (optional)}`.
    """
    payload: dict[str, Any] | None = None
    for line in reversed(stdout.splitlines()):
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            candidate = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(candidate, dict) and "samples_ms" in candidate:
            payload = candidate
            break
    if payload is None:
        raise _error("python runner", "no JSON line with 'samples_ms'", stdout)
    samples = payload["samples_ms"]
    if not isinstance(samples, list) or not samples or not all(_is_number(x) for x in samples):
        raise _error("python runner", "'samples_ms' is not a non-empty list of numbers", stdout)
    try:
        stats = summarize([float(x) for x in samples])
    except ValueError as exc:
        raise _error("python runner", str(exc), stdout) from None
    versions = payload.get("versions") or {}
    threads = payload.get("threads")
    return ParsedRun(
        stats=stats,
        samples_ms=[float(x) for x in samples],
        init_ms=_opt_number(payload.get("init_ms")),
        first_ms=_opt_number(payload.get("first_ms")),
        threads=threads if isinstance(threads, int) else None,
        runner=payload.get("runner") if isinstance(payload.get("runner"), str) else None,
        versions={str(k): str(v) for k, v in versions.items()} if isinstance(versions, dict) else {},
        extra=payload.get("extra") if isinstance(payload.get("extra"), dict) else {},
        output=[float(x) for x in payload["output"]] if isinstance(payload.get("output"), list)
        and all(_is_number(x) for x in payload["output"]) else None,
    )


# --- helpers --------------------------------------------------------------------------------------------------------


def _mean_only(mean_ms: float, n: int | None) -> dict[str, Any]:
    return {
        "median_ms": None,
        "mean_ms": mean_ms,
        "p90_ms": None,
        "min_ms": None,
        "max_ms": None,
        "std_ms": None,
        "n": n,
        "basis": "mean-only",
    }


def _float(token: str | None) -> float | None:
    """A printed number (scientific notation allowed); None for nan/inf/garbage."""
    if token is None:
        return None
    try:
        value = float(token)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _req_float(token: str, tool: str, stdout: str) -> float:
    value = _float(token)
    if value is None:
        raise _error(tool, f"unreadable number {token!r}", stdout)
    return value


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _opt_number(x: Any) -> float | None:
    return float(x) if _is_number(x) and math.isfinite(x) else None


def _error(tool: str, reason: str, stdout: str) -> RunnerOutputError:
    snippet = stdout.strip()[:_SNIPPET_CHARS]
    return RunnerOutputError(f"cannot parse {tool} output: {reason}; output began: {snippet!r}")
