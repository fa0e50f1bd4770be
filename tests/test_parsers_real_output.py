"""The parsers on output CAPTURED from the real runners `effvit-bench runners build` makes (tests/data/runners/).

Captured on this project's CI machine (AMD EPYC, 2 CPUs) from efficientvit-b0 @224 fp32, 1 thread:
- benchmark_model-2.14.1-b0-224.txt: the real TFLite 2.14.1 benchmark_model, --warmup_runs=2 --num_runs=10;
- onnxruntime_perf_test-1.32.0-b0-224.txt: our ORT 1.32 runner, -I -m times -r 10;
- executor_runner-1.5.1-b0-224.txt: our ExecuTorch 1.5.1 runner, --num_executions=12 (the runtime's own log lines
  included).
Captured the same way from efficientvit-b0 @64 fp32 (the test export cache), 1 thread, with the stop-rule and memory
flags the harness passes now (home folder replaced by ~):
- benchmark_model-2.14.1-b0-64-memory.txt: --warmup_runs=2 --num_runs=10 --min_secs=0.05
  --report_peak_memory_footprint=true --memory_footprint_check_interval_ms=1000;
- onnxruntime_perf_test-1.32.0-b0-64-stoprule.txt: -I -m times -r 10 --min_secs 0.05;
- executor_runner-1.5.1-b0-64-stoprule.txt: --num_executions=12 --warmup_executions=2 --min_secs=0.05.
- benchmark_model-litert-1.4.0-aarch64-b0-64.txt: our aarch64 benchmark_model (ai-edge-litert 1.4.0's TFLite C API,
  XNNPACK) under qemu-aarch64 -cpu max, with the harness's flags (stdout then stderr).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from effvit_deploy.bench.native import native_runner

DATA = Path(__file__).parent / "data" / "runners"


def test_real_benchmark_model_2_14_output_is_mean_only_with_its_counts() -> None:
    text = (DATA / "benchmark_model-2.14.1-b0-224.txt").read_text()
    parsed = native_runner("tflite").parse(text, "", warmup=2)
    stats = parsed.stats
    # 2.14 prints no percentiles: the record must say it has the mean, min, max, std from the tool and no median
    assert stats["median_ms"] is None and stats["p90_ms"] is None and stats["basis"] == "runner"
    assert stats["n"] == 10 and parsed.extra["warmup_n"] == 2
    assert 0 < stats["min_ms"] <= stats["mean_ms"] <= stats["max_ms"]
    regular = next(ln for ln in text.splitlines() if "count=10 " in ln)
    avg_us = float(regular.split("avg=")[1].split()[0])
    assert stats["mean_ms"] == pytest.approx(avg_us / 1000)
    assert parsed.init_ms is not None and parsed.init_ms > 0 and parsed.first_ms is not None
    assert parsed.threads == 1


def test_real_perf_test_output() -> None:
    text = (DATA / "onnxruntime_perf_test-1.32.0-b0-224.txt").read_text()
    parsed = native_runner("onnx").parse(text, "", warmup=1)
    stats = parsed.stats
    assert stats["n"] == 10 and stats["basis"] == "runner"
    assert 0 < stats["min_ms"] <= stats["median_ms"] <= stats["p90_ms"] <= stats["max_ms"]
    assert parsed.init_ms is not None and parsed.init_ms > 0 and parsed.first_ms is not None
    assert parsed.extra["peak_rss_kb"] > 10_000 and "p99_ms" in parsed.extra


def test_real_executor_runner_output_drops_warmup_iterations() -> None:
    text = (DATA / "executor_runner-1.5.1-b0-224.txt").read_text()
    parsed = native_runner("executorch").parse(text, "", warmup=2)
    iterations = [float(ln.split(": ")[-1].split()[0]) for ln in text.splitlines() if "Iteration " in ln]
    assert len(iterations) == 12
    assert parsed.samples_ms == pytest.approx(iterations[2:]) and parsed.first_ms == pytest.approx(iterations[0])
    assert parsed.stats["n"] == 10 and parsed.stats["basis"] == "samples"
    assert parsed.init_ms is not None and parsed.init_ms > 0 and parsed.threads == 1
    assert parsed.extra["peak_rss_kb"] > 10_000 and parsed.extra["num_executions"] == 12


def test_real_benchmark_model_memory_footprint_and_time_rule() -> None:
    text = (DATA / "benchmark_model-2.14.1-b0-64-memory.txt").read_text()
    parsed = native_runner("tflite").parse(text, "", warmup=2)
    # --min_secs kept the tool running past --num_runs=10
    assert parsed.stats["n"] > 10 and parsed.extra["warmup_n"] == 2
    peak_mb = float(next(ln for ln in text.splitlines() if "Overall peak memory footprint" in ln).split()[-1])
    assert parsed.extra["peak_rss_kb"] == round(peak_mb * 1024) and parsed.extra["peak_rss_kb"] > 10_000
    assert parsed.extra["memory_delta_overall_mb"] >= parsed.extra["memory_delta_init_mb"] > 0
    assert parsed.init_ms and parsed.first_ms and "arena_bytes" not in parsed.extra


def test_real_perf_test_time_rule_arena_and_vmhwm() -> None:
    text = (DATA / "onnxruntime_perf_test-1.32.0-b0-64-stoprule.txt").read_text()
    parsed = native_runner("onnx").parse(text, "", warmup=1)
    assert parsed.stats["n"] > 10 and parsed.extra["timed_runs"] == parsed.stats["n"]
    assert parsed.extra["timed_s"] >= 0.05
    assert parsed.extra["arena_bytes"] > 100_000 and "MaxInUse" in parsed.extra["arena_source"]
    assert parsed.extra["peak_rss_kb"] > 10_000


def test_real_executor_runner_time_rule_planned_memory_and_vmhwm() -> None:
    text = (DATA / "executor_runner-1.5.1-b0-64-stoprule.txt").read_text()
    parsed = native_runner("executorch").parse(text, "", warmup=2)
    iterations = [float(ln.split(": ")[-1].split()[0]) for ln in text.splitlines() if "Iteration " in ln]
    assert len(iterations) > 12 and parsed.samples_ms == pytest.approx(iterations[2:])
    assert parsed.extra["timed_runs"] == len(iterations) - 2 and parsed.extra["timed_s"] >= 0.05
    assert parsed.extra["arena_bytes"] > 0 and parsed.extra["arena_buffers"] == 1
    assert parsed.extra["memory_source"] == "executor_runner: VmHWM of its own process"
    assert parsed.extra["peak_rss_kb"] > 10_000


def test_real_aarch64_c_api_benchmark_model_output() -> None:
    """Upstream's count=/summary lines plus p5/median/p95 and our VmHWM line; the flags read back from XNNPACK."""
    text = (DATA / "benchmark_model-litert-1.4.0-aarch64-b0-64.txt").read_text()
    parsed = native_runner("tflite").parse(text, "", warmup=2)
    assert parsed.stats["n"] == 10 and parsed.extra["warmup_n"] == 2
    assert parsed.stats["median_ms"] == pytest.approx(330.272) and parsed.extra["p95_ms"] == pytest.approx(457.472)
    assert parsed.extra["peak_rss_kb"] == 67396 and "VmHWM" in parsed.extra["memory_source"]
    assert parsed.init_ms == pytest.approx(569.334) and parsed.first_ms == pytest.approx(204.853)
    assert parsed.threads == 1 and "XNNPACK delegate flags: 0x3" in text
