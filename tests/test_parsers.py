"""Runner-output parsers against sample outputs written from the tools' documented formats (data/runner_outputs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from effvit_deploy.bench.parsers import (
    RunnerOutputError,
    parse_benchmark_model,
    parse_executor_runner,
    parse_perf_test,
    parse_python_runner,
    parse_runner_output,
)
from effvit_deploy.bench.records import STAT_KEYS
from effvit_deploy.errors import InvalidInputError

DATA = Path(__file__).parent / "data" / "runner_outputs"


def _read(name: str) -> str:
    return (DATA / name).read_text()


def test_benchmark_model_litert_with_percentiles() -> None:
    run = parse_benchmark_model(_read("benchmark_model_litert.txt"))
    s = run.stats
    assert set(s) == set(STAT_KEYS)
    assert s["basis"] == "runner"
    assert s["n"] == 50  # the regular count= line, not the warm-up one (count=10)
    assert s["mean_ms"] == pytest.approx(21.8809)
    assert s["median_ms"] == pytest.approx(21.764)
    assert s["min_ms"] == pytest.approx(21.533)
    assert s["max_ms"] == pytest.approx(23.981)
    assert s["std_ms"] == pytest.approx(0.412)
    assert s["p90_ms"] is None  # benchmark_model does not print p90
    assert run.extra["p5_ms"] == pytest.approx(21.571)
    assert run.extra["p95_ms"] == pytest.approx(22.871)
    assert run.extra["warmup_n"] == 10
    assert run.extra["warmup_avg_ms"] == pytest.approx(22.9434)
    assert run.extra["delegated_nodes"] == 412 and run.extra["total_nodes"] == 412 and run.extra["partitions"] == 1
    assert run.init_ms == pytest.approx(151.27)
    assert run.first_ms == pytest.approx(31.873)
    assert run.threads == 4


def test_benchmark_model_scientific_notation() -> None:
    run = parse_benchmark_model(_read("benchmark_model_sci.txt"))
    assert run.stats["mean_ms"] == pytest.approx(2950.34)
    assert run.stats["median_ms"] == pytest.approx(2949.876)
    assert run.stats["std_ms"] == pytest.approx(17.8624)
    assert run.stats["n"] == 5
    assert run.init_ms == pytest.approx(1873.55)
    assert run.first_ms == pytest.approx(3102.21)
    assert run.extra["warmup_n"] == 1
    assert run.threads == 1


def test_benchmark_model_legacy_tf_build() -> None:
    run = parse_benchmark_model(_read("benchmark_model_legacy_tf.txt"))
    assert run.stats["n"] == 50
    assert run.stats["mean_ms"] == pytest.approx(137.722)
    assert run.stats["median_ms"] is None  # old Stat prints no percentiles
    assert run.init_ms == pytest.approx(4.452)  # from the legacy "Average inference timings" line (us)
    assert run.first_ms == pytest.approx(146.161)  # the warm-up line's first=


def test_benchmark_model_all_same() -> None:
    run = parse_benchmark_model(_read("benchmark_model_all_same.txt"))
    s = run.stats
    assert s["n"] == 20
    assert s["mean_ms"] == s["median_ms"] == s["min_ms"] == s["max_ms"] == s["p90_ms"] == pytest.approx(1.715)
    assert s["std_ms"] == 0.0
    assert run.first_ms == pytest.approx(1.843)
    assert run.extra["warmup_n"] == 1


def test_benchmark_model_logcat_summary_only_is_mean_only() -> None:
    run = parse_benchmark_model(_read("benchmark_model_logcat.txt"))
    assert run.stats["basis"] == "mean-only"
    assert run.stats["mean_ms"] == pytest.approx(22.1507)
    assert run.stats["median_ms"] is None and run.stats["n"] is None
    assert run.init_ms == pytest.approx(98.123)
    assert run.first_ms == pytest.approx(45.012)


def test_benchmark_model_single_regular_line_accepted_when_summary_matches() -> None:
    text = (
        "count=30 first=2000 curr=1900 min=1800 max=2100 avg=1950.5 std=50\n"
        "Inference timings in us: Init: 100, First inference: 2000, Warmup (avg): 1.9505e+03, Inference (avg): 1950.5\n"
    )
    run = parse_benchmark_model(text)
    assert run.stats["n"] == 30 and run.stats["mean_ms"] == pytest.approx(1.9505)


def test_benchmark_model_truncated_after_warmup_is_an_error() -> None:
    with pytest.raises(RunnerOutputError, match="only one count= line"):
        parse_benchmark_model(_read("benchmark_model_truncated.txt"))


def test_executor_runner_per_iteration_drops_warmup() -> None:
    run = parse_executor_runner(_read("executor_runner_iterations.txt"), warmup=3)
    assert run.samples_ms == pytest.approx([22.511, 22.630, 22.487, 22.702, 22.559])
    assert run.stats["basis"] == "samples"
    assert run.stats["n"] == 5
    assert run.stats["median_ms"] == pytest.approx(22.559)
    assert run.stats["mean_ms"] == pytest.approx(sum(run.samples_ms) / 5)
    assert run.first_ms == pytest.approx(30.412)
    assert run.init_ms == pytest.approx(51.342)
    assert run.threads == 4
    assert run.extra["total_ms"] == pytest.approx(190.323)


def test_executor_runner_total_only_is_mean_only() -> None:
    run = parse_executor_runner(_read("executor_runner_total_only.txt"), warmup=10)
    assert run.stats["basis"] == "mean-only"
    assert run.stats["mean_ms"] == pytest.approx(328.117 / 60)
    assert run.stats["n"] == 60
    assert run.stats["median_ms"] is None
    assert run.samples_ms is None and run.first_ms is None
    assert run.extra["mean_includes_warmup"] == 10
    assert run.threads == 4


def test_executor_runner_too_few_iterations_for_warmup() -> None:
    with pytest.raises(RunnerOutputError, match="warm-up"):
        parse_executor_runner(_read("executor_runner_iterations.txt"), warmup=8)


def test_executor_runner_without_timing_or_finish_line() -> None:
    with pytest.raises(RunnerOutputError, match="prints no timing"):
        parse_executor_runner(_read("executor_runner_no_timing.txt"))
    unfinished = "\n".join(_read("executor_runner_iterations.txt").splitlines()[:9])
    with pytest.raises(RunnerOutputError, match="did not finish"):
        parse_executor_runner(unfinished)


def test_executor_runner_missing_iteration_lines() -> None:
    lines = [ln for ln in _read("executor_runner_iterations.txt").splitlines() if "Iteration 5 of" not in ln]
    with pytest.raises(RunnerOutputError, match="do not cover"):
        parse_executor_runner("\n".join(lines), warmup=1)


def test_perf_test_seconds_are_converted() -> None:
    run = parse_perf_test(_read("onnxruntime_perf_test.txt"))
    s = run.stats
    assert s["n"] == 50
    assert s["mean_ms"] == pytest.approx(22.0454)
    assert s["median_ms"] == pytest.approx(21.9187)
    assert s["p90_ms"] == pytest.approx(22.6055)
    assert s["min_ms"] == pytest.approx(21.4412)
    assert s["max_ms"] == pytest.approx(24.1903)
    assert s["std_ms"] is None
    assert run.extra["p95_ms"] == pytest.approx(23.0121)
    assert run.extra["p999_ms"] == pytest.approx(24.1903)
    assert run.init_ms == pytest.approx(412.863)
    assert run.first_ms == 31


def test_perf_test_total_variant_and_scientific_latencies() -> None:
    run = parse_perf_test(_read("onnxruntime_perf_test_total_sci.txt"))
    assert run.stats["mean_ms"] == pytest.approx(0.104121)
    assert run.stats["min_ms"] == pytest.approx(0.098765)
    assert run.stats["median_ms"] == pytest.approx(0.102117)
    assert run.stats["n"] == 100
    assert run.first_ms == 0


def test_python_runner_takes_last_json_line_with_samples() -> None:
    run = parse_python_runner(_read("python_runner.txt"))
    assert run.runner == "python-litert"
    assert run.samples_ms is not None and len(run.samples_ms) == 10
    assert run.stats["basis"] == "samples"
    assert run.stats["median_ms"] == pytest.approx(21.95)  # linear interpolation between 21.9 and 22.0
    assert run.init_ms == 12.5 and run.first_ms == 30.1
    assert run.versions["ai-edge-litert"] == "2.3.0"
    assert run.threads == 4


def test_python_runner_rejects_bad_samples() -> None:
    with pytest.raises(RunnerOutputError, match="non-empty list"):
        parse_python_runner('{"runner": "python-litert", "samples_ms": []}')
    with pytest.raises(RunnerOutputError, match="non-empty list"):
        parse_python_runner('{"runner": "python-litert", "samples_ms": ["1.0"]}')


@pytest.mark.parametrize(
    "parser",
    [parse_benchmark_model, parse_executor_runner, parse_perf_test, parse_python_runner],
)
@pytest.mark.parametrize("text", ["garbage", "", "count=\n{not json"])
def test_garbage_raises_one_line_error_with_snippet(parser, text: str) -> None:
    body = _read("garbage.txt") if text == "garbage" else text
    with pytest.raises(RunnerOutputError) as info:
        parser(body)
    message = str(info.value)
    assert "\n" not in message
    assert isinstance(info.value, ValueError)
    assert repr(body.strip()[:200]) in message


def test_error_snippet_is_capped_at_200_chars() -> None:
    body = "x" * 1000
    with pytest.raises(RunnerOutputError) as info:
        parse_perf_test(body)
    assert repr("x" * 200) in str(info.value) and "x" * 201 not in str(info.value)


def test_dispatch_by_runner_kind() -> None:
    assert parse_runner_output("native-benchmark_model", _read("benchmark_model_litert.txt")).stats["n"] == 50
    assert parse_runner_output("native-onnxruntime_perf_test", _read("onnxruntime_perf_test.txt")).stats["n"] == 50
    run = parse_runner_output("native-executor_runner", _read("executor_runner_iterations.txt"), warmup=2)
    assert run.stats["n"] == 6
    assert parse_runner_output("python-onnxruntime", _read("python_runner.txt")).stats["n"] == 10
    with pytest.raises(InvalidInputError, match="unknown runner kind"):
        parse_runner_output("native-nope", "")
