"""The harness's reader of the app's result file, against the schema file the app's JUnit tests also read."""

from __future__ import annotations

import json
from typing import Any

import pytest

from effvit_deploy.bench.app_result import parse_app_result, schema
from effvit_deploy.bench.parsers import RunnerOutputError


def ok_result(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "schema": 2, "app": "org.effvit.bench", "app_version": "0.1.0", "status": "ok", "error": None,
        "runner": "app-litert", "runtime": "tflite", "runtime_version": "1.4.0", "delegate": None,
        "model": "/data/local/tmp/effvit/models/x.tflite", "threads": 4, "warmup": 1, "runs": 3,
        "device": {"model": "Pixel 8", "sdk": 35}, "backends": {"tflite": True, "executorch": False, "onnx": True},
        "init_ms": 12.5, "first_ms": 30.0, "samples_ms": [10.0, 12.0, 11.0], "warmup_ms": [30.0],
        "stats": {"median_ms": 11.0}, "peak_rss_kb": 81234, "input": {"shape": [1, 3, 224, 224], "source": "seed:1234"},
        "output": {"shape": [1, 1000], "count": 1000, "sum": 1.5, "abs_sum": 800.0, "argmax": 7, "finite": True,
                   "first": [0.1] * 16, "values": [0.1] * 1000},
        "wall_ms": 200.0, "stop_rule": {"min_runs": 3, "min_seconds": 0.0, "max_seconds": None}, "timed_s": 0.033}
    data.update(changes)
    return data


def test_sample_result_covers_exactly_the_schema() -> None:
    assert set(ok_result()) == set(schema()["fields"]) and set(ok_result()["output"]) == set(schema()["output_fields"])


def test_ok_result_becomes_a_parsed_run() -> None:
    parsed = parse_app_result(json.dumps(ok_result()))
    assert parsed.stats["median_ms"] == 11.0 and parsed.stats["n"] == 3 and parsed.stats["basis"] == "samples"
    assert parsed.samples_ms == [10.0, 12.0, 11.0] and (parsed.init_ms, parsed.first_ms) == (12.5, 30.0)
    assert parsed.threads == 4 and parsed.runner == "app-litert"
    assert parsed.versions == {"effvit-bench-app": "0.1.0", "tflite": "1.4.0"}
    assert parsed.extra["output"]["argmax"] == 7 and parsed.extra["peak_rss_kb"] == 81234
    assert "emulated" not in parsed.extra
    assert parse_app_result(json.dumps(ok_result(device={"emulated": True}))).extra["emulated"] is True
    assert parsed.extra["timed_s"] == 0.033 and parsed.extra["app_stop_rule"]["min_runs"] == 3


@pytest.mark.parametrize(("data", "fragment"), [
    (ok_result(status="unavailable", error="runtime onnx is unavailable in this build", samples_ms=[]),
     "runtime unavailable in this APK: runtime onnx is unavailable"),
    (ok_result(status="error", error="java.lang.IllegalArgumentException: bad model"),
     "app error: java.lang.IllegalArgumentException: bad model"),
    (ok_result(status="bad_args", error="--ei threads must be >= 1"), "app bad_args: --ei threads"),
    ({k: v for k, v in ok_result().items() if k != "init_ms"}, "lacks init_ms"),
    (ok_result(output={"count": 3}), "lacks output.shape"),
    (ok_result(threads=True), "threads is bool"),
    (ok_result(samples_ms=[]), "samples_ms is empty"),
    (ok_result(samples_ms=[1.0, "x"]), "not all numbers"),
    (ok_result(status="weird"), "unknown status 'weird'"),
    (ok_result(schema=3), "newer than this harness"),
    ([1, 2], "not a JSON object"),
])
def test_bad_or_failed_results_raise_with_the_reason(data: Any, fragment: str) -> None:
    with pytest.raises(RunnerOutputError) as exc:
        parse_app_result(json.dumps(data))
    assert fragment in str(exc.value)


def test_truncated_file() -> None:
    with pytest.raises(RunnerOutputError, match="not JSON"):
        parse_app_result(json.dumps(ok_result())[:50])


def test_app_output_returns_all_values_records_leave_them_out() -> None:
    from effvit_deploy.bench.app_result import app_output

    values, shape = app_output(json.dumps(ok_result()))
    assert len(values) == 1000 and shape == [1, 1000]
    assert "values" not in parse_app_result(json.dumps(ok_result())).extra["output"]
    big = ok_result()
    big["output"] = {**big["output"], "values": None}
    with pytest.raises(RunnerOutputError, match="no whole output"):
        app_output(json.dumps(big))
