"""Read the result file the on-device app writes (android_app/, `org.effvit.bench.core.BenchRunner`).

The file's fields and types are fixed by `app_result_schema.json` beside this module, the one schema both sides
test against (the app's JUnit tests read the same file). A result with status `ok` becomes a `ParsedRun` (the
harness recomputes the statistics from `samples_ms`, as for every runner with samples); any other status (`error`,
`unavailable`, `bad_args`) raises `RunnerOutputError` carrying the app's own error text.

Fields carried into the record's `extra`: `output` (shape, count, sum, abs_sum, argmax, finite and the first 16
values of the first output; the app also writes all values of outputs up to 65536 values, which `app_output`
returns for a device-parity check but records leave out to stay small), `peak_rss_kb` (the app process's VmHWM),
`delegate`, `backends` (which runtimes the APK has), `app_device` (what the app saw: Build.MODEL, SDK, ABI),
`warmup_ms`, `input` (shape and source: `seed:1234` or the input file), `app_stop_rule` (the rule the app's loop
followed), `timed_s` (that loop's duration) and `emulated` when the app's device says so.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from .parsers import ParsedRun, RunnerOutputError
from .stats import summarize

SCHEMA_FILE = Path(__file__).with_name("app_result_schema.json")
_TYPES: dict[str, tuple[type, ...]] = {"int": (int,), "number": (int, float), "string": (str,), "bool": (bool,),
                                       "object": (dict,), "array": (list,), "null": (type(None),)}


@cache
def schema() -> dict[str, Any]:
    """The shared schema (fields -> allowed JSON types, statuses, output fields)."""
    return json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))


def _type_ok(value: Any, allowed: list[str]) -> bool:
    if isinstance(value, bool):  # bool is an int in Python; JSON keeps them apart
        return "bool" in allowed
    return any(isinstance(value, _TYPES[t]) for t in allowed)


def validate(data: Any) -> dict[str, Any]:
    """Check a decoded result against the schema; returns it.

    Raises:
        RunnerOutputError: not an object, newer schema, missing or mistyped field, unknown status.
    """
    spec = schema()
    if not isinstance(data, dict):
        raise RunnerOutputError(f"app result is not a JSON object but {type(data).__name__}")
    if isinstance(data.get("schema"), int) and data["schema"] > spec["schema"]:
        raise RunnerOutputError(f"app result schema {data['schema']} is newer than this harness ({spec['schema']}): "
                                "upgrade effvit-deploy")
    checks = [(spec["fields"], data, "")]
    if isinstance(data.get("output"), dict):
        checks.append((spec["output_fields"], data["output"], "output."))
    for fields, obj, prefix in checks:
        missing = [f for f in fields if f not in obj]
        if missing:
            raise RunnerOutputError(f"app result lacks {', '.join(prefix + m for m in missing)}: the APK and the "
                                    "harness disagree on the schema; rebuild the APK (make android-app)")
        for name, allowed in fields.items():
            if not _type_ok(obj[name], allowed):
                raise RunnerOutputError(f"app result field {prefix}{name} is {type(obj[name]).__name__}, expected "
                                        f"{' or '.join(allowed)}")
    if data["status"] not in spec["statuses"]:
        raise RunnerOutputError(f"app result has unknown status {data['status']!r}")
    return data


def _load_ok(text: str) -> dict[str, Any]:
    """Decode and validate a result; raise with the app's own message unless its status is ok."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RunnerOutputError(f"app result is not JSON ({exc.msg} at char {exc.pos}); began: {text[:120]!r}") \
            from None
    data = validate(data)
    if data["status"] != "ok":
        what = "runtime unavailable in this APK" if data["status"] == "unavailable" else f"app {data['status']}"
        raise RunnerOutputError(f"{what}: {data['error'] or 'no message'}")
    return data


def app_output(text: str) -> tuple[list[float], list[int]]:
    """(all output values, output shape) of an ok result, for comparing with a reference output.

    Raises:
        RunnerOutputError: a failed run, or an output too large for the app to write whole.
    """
    data = _load_ok(text)
    output = data["output"]
    if output is None or output["values"] is None:
        raise RunnerOutputError("app result carries no whole output (more than 65536 values); compare "
                                "output.first / sum instead")
    return [float(v) if v is not None else float("nan") for v in output["values"]], [int(d) for d in output["shape"]]


def parse_app_result(text: str) -> ParsedRun:
    """A pulled result file -> ParsedRun.

    Raises:
        RunnerOutputError: unreadable or invalid file, or the app reported a failure (its message is kept).
    """
    data = _load_ok(text)
    samples = [float(x) for x in data["samples_ms"] if _type_ok(x, ["number"])]
    if not samples or len(samples) != len(data["samples_ms"]):
        raise RunnerOutputError("app result has status ok but samples_ms is empty or not all numbers")
    try:
        stats = summarize(samples)
    except ValueError as exc:
        raise RunnerOutputError(f"app result: {exc}") from None
    versions = {"effvit-bench-app": str(data["app_version"])}
    if data["runtime_version"]:
        versions[str(data["runtime"])] = str(data["runtime_version"])
    device = data["device"]
    output = {k: v for k, v in data["output"].items() if k != "values"} if data["output"] else None
    extra: dict[str, Any] = {"output": output, "peak_rss_kb": data["peak_rss_kb"],
                             "delegate": data["delegate"], "backends": data["backends"], "app_device": device,
                             "warmup_ms": data["warmup_ms"], "input": data["input"], "app_wall_ms": data["wall_ms"],
                             "app_stop_rule": data["stop_rule"]}
    if _type_ok(data["timed_s"], ["number"]) and data["timed_s"] is not None:
        extra["timed_s"] = float(data["timed_s"])  # the app's timed loop, for energy per inference
    if device.get("emulated"):
        extra["emulated"] = True
    return ParsedRun(stats=stats, samples_ms=samples, init_ms=_num(data["init_ms"]), first_ms=_num(data["first_ms"]),
                     threads=data["threads"], runner=data["runner"], versions=versions, extra=extra)


def _num(value: Any) -> float | None:
    return float(value) if _type_ok(value, ["number"]) and value is not None else None
