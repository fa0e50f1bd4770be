"""The one record format for every latency measurement, whichever device, runtime or runner produced it.

A record is one JSON object on one line of a results file (see `store.py`). A failed measurement is a record too: it
has `error` (and usually `stderr_tail`) set and `stats` set to None, so a sweep never loses what went wrong and a
re-run retries it (only successful records count as done).

The `key` is a stable hash over what makes two measurements "the same configuration": device (serial and model),
artifact sha256, model, resolution, target, precision, threads, core mask, runner kind, runs (the stop rule's
min_runs), warm-up and the rest of the stop rule (min_seconds, max_seconds). A sweep that finds a successful record
with the same key skips that configuration, which is how an interrupted sweep resumes; a different stop rule is a
different key, so it is measured again. A count-only rule (min_seconds 0, no max_seconds) hashes exactly as keys did
before the stop rule existed, so older results files still resume.

Example:
    >>> rec = BenchRecord(device_serial="local", device={"model": "x86_64"}, model="efficientvit-b1",
    ...                   resolution="224x224", target="tflite", precision="fp32", artifact_sha256="ab" * 32,
    ...                   runner="python-litert", threads=1, runs=50, warmup=10)
    >>> BenchRecord.from_json(rec.to_json()) == rec
    True
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from ..errors import InvalidInputError
from ..resolution import parse_resolution
from ..vocabulary import TARGETS

SCHEMA_VERSION = 1

# Keys of `BenchRecord.stats`; values are floats in milliseconds except `n` (int) and `basis` (str).
# basis: "samples"   computed by stats.summarize from every timed sample (all keys known);
#        "runner"    copied from the runner's own summary (keys it does not print are None);
#        "mean-only" only a total over N runs was printed, so only mean_ms and n are known.
STAT_KEYS = ("median_ms", "mean_ms", "p90_ms", "min_ms", "max_ms", "std_ms", "n", "basis")

# The fields that make two measurements the same configuration; `record_key` hashes exactly these.
KEY_FIELDS = (
    "device_serial",
    "device_model",
    "artifact_sha256",
    "model",
    "resolution",
    "target",
    "precision",
    "threads",
    "mask",
    "runner",
    "runs",
    "warmup",
    "min_seconds",
    "max_seconds",
)


def record_key(
    *,
    device_serial: str,
    device_model: str | None,
    artifact_sha256: str,
    model: str,
    resolution: str,
    target: str,
    precision: str,
    threads: int,
    mask: str | None,
    runner: str,
    runs: int,
    warmup: int,
    min_seconds: float = 0.0,
    max_seconds: float | None = None,
) -> str:
    """Stable hash (24 hex chars) of the configuration fields; the same inputs give the same key in any process.

    `min_seconds` / `max_seconds` enter the hash only when they differ from a count-only rule (0, None), so keys of
    records made before the stop rule existed are unchanged.
    """
    values = dict(
        device_serial=device_serial,
        device_model=device_model,
        artifact_sha256=artifact_sha256,
        model=model,
        resolution=resolution,
        target=target,
        precision=precision,
        threads=threads,
        mask=mask.lower() if mask else None,
        runner=runner,
        runs=runs,
        warmup=warmup,
    )
    if min_seconds:
        values["min_seconds"] = float(min_seconds)
    if max_seconds is not None:
        values["max_seconds"] = float(max_seconds)
    canonical = json.dumps(values, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:24]


@dataclass
class BenchRecord:
    """One measurement (or one failed attempt) of one artifact on one device with one runner configuration."""

    # what was measured
    device_serial: str
    device: dict[str, Any]  # facts: model, soc, android, abi, clusters, governor (whatever the device layer knows)
    model: str
    resolution: str  # "HxW"
    target: str  # tflite | onnx | executorch
    precision: str  # fp32 | fp16 | ...
    artifact_sha256: str
    runner: str  # "python-litert", "native-benchmark_model", ...
    threads: int
    runs: int
    warmup: int
    mask: str | None = None  # hex affinity mask as given to taskset ("f0"), None when not pinned
    manifest: dict[str, Any] = field(default_factory=dict)  # selected manifest fields: params, macs, size_bytes
    # results
    stats: dict[str, Any] | None = None  # STAT_KEYS; None when the run failed
    samples_ms: list[float] | None = None  # timed samples when the runner reports them (warm-up excluded)
    init_ms: float | None = None
    first_ms: float | None = None
    # conditions
    thermal_before: dict[str, float] | None = None  # zone -> degrees C
    thermal_after: dict[str, float] | None = None
    freqs_before: dict[str, float] | None = None  # cpu -> kHz
    freqs_after: dict[str, float] | None = None
    throttled: bool | None = None
    started_at: str | None = None  # ISO 8601
    finished_at: str | None = None
    versions: dict[str, str] = field(default_factory=dict)  # runtime/tool versions
    # one run on the device with the manifest's verification input vs the PyTorch reference (see device_parity.py)
    device_parity: dict[str, Any] | None = None
    # failure
    error: str | None = None
    stderr_tail: str | None = None
    # bookkeeping
    key: str = ""
    schema: int = SCHEMA_VERSION
    extra: dict[str, Any] = field(default_factory=dict)  # runner-specific numbers (p95_ms, warmup_avg_ms, ...)
    # trust (quality.py, power.py, order.py): filled from the runner's output; None when not measured
    stability: dict[str, Any] | None = None  # stable, spread_pct, window medians, bimodal, cv, trimmed_mean_ms, p99
    peak_rss_kb: int | None = None  # peak resident memory of the measured process (source in extra.memory_source)
    arena_bytes: int | None = None  # the runtime's planned arena (reason in extra.arena_reason when absent)
    energy: dict[str, Any] | None = None  # mean_power_w, energy_per_inference_mj, method; or energy None + reason
    stop_rule: dict[str, Any] | None = None  # min_runs, min_seconds, max_seconds the timed runs followed
    order_seed: int | None = None  # the seed that shuffled the sweep's run order (None: not shuffled)

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise InvalidInputError(f"unknown target {self.target!r} in record; expected one of {', '.join(TARGETS)}")
        parse_resolution(self.resolution, multiple=1)  # any size a device measured
        if not self.key:
            self.key = self.compute_key()

    # --- identity -------------------------------------------------------------------------------------------------
    @property
    def device_model(self) -> str | None:
        """The device's model name from its facts (None if unknown)."""
        value = self.device.get("model")
        return str(value) if value is not None else None

    @property
    def device_id(self) -> str:
        """Serial and model: two phones can share a model, and a serial can be reused by emulators."""
        return f"{self.device_serial}|{self.device_model or ''}"

    @property
    def ok(self) -> bool:
        """True for a successful measurement (no error and statistics present)."""
        return self.error is None and self.stats is not None

    @property
    def min_seconds(self) -> float:
        """The stop rule's minimum duration of the timed runs (0: count only)."""
        return float((self.stop_rule or {}).get("min_seconds") or 0.0)

    @property
    def max_seconds(self) -> float | None:
        """The stop rule's maximum duration of the timed runs (None: no limit)."""
        value = (self.stop_rule or {}).get("max_seconds")
        return float(value) if value is not None else None

    def compute_key(self) -> str:
        """The key this record's configuration hashes to (see `record_key`)."""
        return record_key(**{name: getattr(self, name) for name in KEY_FIELDS})

    # --- serialisation --------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON dict (a deep copy)."""
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        """One line of JSON (no trailing newline); NaN/inf are refused so every line is strict JSON."""
        return json.dumps(self.to_dict(), separators=(",", ":"), sort_keys=True, allow_nan=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BenchRecord:
        """Build a record from a dict; unknown keys go to `extra` so newer minor fields survive a round trip."""
        if not isinstance(data, dict):
            raise InvalidInputError(f"a result record must be a JSON object, got {type(data).__name__}")
        schema = data.get("schema", SCHEMA_VERSION)
        if not isinstance(schema, int) or schema > SCHEMA_VERSION:
            raise InvalidInputError(
                f"result record schema {schema!r} is newer than this effvit-deploy ({SCHEMA_VERSION}); upgrade it"
            )
        names = {f.name for f in dataclasses.fields(cls)}
        known = {k: v for k, v in data.items() if k in names}
        unknown = {k: v for k, v in data.items() if k not in names}
        required = [f.name for f in dataclasses.fields(cls) if _is_required(f)]
        missing = [name for name in required if name not in known]
        if missing:
            raise InvalidInputError(f"result record lacks field(s) {', '.join(missing)}; is this an effvit-bench file?")
        if unknown:
            known["extra"] = {**known.get("extra", {}), **unknown}
        return cls(**known)

    @classmethod
    def from_json(cls, line: str) -> BenchRecord:
        """Parse one line written by `to_json`."""
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"result line is not JSON ({exc.msg} at char {exc.pos})") from None
        return cls.from_dict(data)


def _is_required(f: dataclasses.Field[Any]) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
