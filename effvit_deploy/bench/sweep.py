"""Sweep specs: which models, resolutions, targets, precisions and thread counts to measure, and how.

A sweep is a TOML file (read with `tomllib`):

    [sweep]
    name = "quick"          # results go to bench/results/<name>.jsonl (default: the file name)
    runs = 20               # timed runs per measurement            (default 50)
    warmup = 5              # warm-up runs before them              (default 10)
    cooldown_s = 0          # pause between configurations, seconds (default 0)
    cores = "big"           # "big" (fastest cores), "all", or a hex taskset mask such as "f0"
    min_runs = 20           # same as runs (the minimum timed run count); replaces it when given
    min_seconds = 10        # timed runs go on until this long too            (default 0)
    max_seconds = 120       # ... but stop after this long (at least one run) (default none)
    seed = 0                # shuffles the run order (comparison blocks kept together; default 0)

    [[group]]               # one or more; each expands to the product of its lists
    models = ["efficientvit-b0", "efficientvit-b0-softmax"]
    resolutions = [224, "512x1024"]
    targets = ["tflite"]
    precisions = ["fp32"]   # default ["fp32"]
    threads = [1, 4]        # default [1]
    optimize = [true]       # default [true]  (false: export without the deploy-form passes)
    nhwc = [false]          # default [false] (true: TFLite with NHWC input/output)

Every error names the file, the line and the key (`bench/sweeps/x.toml:7: [[group]] 1: 'threads' ...`); a sweep
that expands to no configuration is an error too.

Order ("interleaved"): configurations are ordered resolution by resolution, then target, precision, threads, and
only then model, so the models a report compares (EfficientViT, its softmax twin, EfficientNet at the same input and
threads) are measured back to back under the same thermal conditions instead of hours apart.
At run time the engine shuffles that order from `seed` (order.py): blocks of compared models stay together, but
which block runs first and which model leads inside a block come from the seed, so slow drift favours nobody.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import Any

from ..errors import InvalidInputError, MissingFileError
from ..resolution import Resolution, format_resolution, parse_resolution
from ..vocabulary import PRECISIONS, TARGETS

DEFAULT_RUNS = 50
DEFAULT_WARMUP = 10
# Upper bounds: far above any useful setting, low enough that a typo (an extra 0, a pasted number) is refused at
# once instead of running into the hour-long per-measurement timeout.
MAX_RUNS = 10_000
MAX_WARMUP = 1_000
MAX_THREADS = 64
MAX_COOLDOWN_S = 3600.0

_SWEEP_KEYS = {"name", "description", "runs", "warmup", "cooldown_s", "cores", "min_runs", "min_seconds",
               "max_seconds", "seed"}
_GROUP_KEYS = {"models", "resolutions", "targets", "precisions", "threads", "optimize", "nhwc"}
_REQUIRED_GROUP_KEYS = ("models", "resolutions", "targets")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_MASK = re.compile(r"(?:0x)?[0-9a-fA-F]+")


@dataclass(frozen=True, order=True)
class Configuration:
    """One thing to measure on a device: an artifact (model, resolution, target, precision, options) and threads."""

    model: str
    resolution: Resolution
    target: str
    precision: str = "fp32"
    threads: int = 1
    optimize: bool = True
    nhwc: bool = False

    @property
    def resolution_text(self) -> str:
        return format_resolution(self.resolution)

    @property
    def artifact_key(self) -> tuple[str, Resolution, str, str, bool, bool]:
        """What identifies the exported artifact (threads do not change it)."""
        return (self.model, self.resolution, self.target, self.precision, self.optimize, self.nhwc)

    @property
    def label(self) -> str:
        """Short human label, e.g. `efficientvit-b0 224x224 tflite fp32 t1`."""
        flags = ("" if self.optimize else " noopt") + (" nhwc" if self.nhwc else "")
        return f"{self.model} {self.resolution_text} {self.target} {self.precision}{flags} t{self.threads}"


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep: measurement settings plus the configurations in run order."""

    name: str
    configurations: tuple[Configuration, ...]
    runs: int = DEFAULT_RUNS
    warmup: int = DEFAULT_WARMUP
    cooldown_s: float = 0.0
    cores: str = "big"
    description: str = ""
    source: Path | None = field(default=None, compare=False)
    min_seconds: float = 0.0  # stop rule (stability.StopRule): runs is its min_runs
    max_seconds: float | None = None
    seed: int | None = None  # run-order shuffle (order.py); None keeps the interleaved order

    def with_overrides(self, *, runs: int | None = None, warmup: int | None = None, cooldown_s: float | None = None,
                       cores: str | None = None, min_seconds: float | None = None, max_seconds: float | None = None,
                       seed: int | None = None) -> SweepSpec:
        """A copy with the CLI's explicit settings replacing the file's (None keeps the file's value)."""
        return SweepSpec(
            name=self.name,
            configurations=self.configurations,
            runs=check_runs(runs, "--runs") if runs is not None else self.runs,
            warmup=check_warmup(warmup, "--warmup") if warmup is not None else self.warmup,
            cooldown_s=check_cooldown(cooldown_s, "--cooldown") if cooldown_s is not None else self.cooldown_s,
            cores=check_cores(cores, "--cores") if cores is not None else self.cores,
            description=self.description,
            source=self.source,
            min_seconds=check_seconds(min_seconds, "--min-seconds") if min_seconds is not None else self.min_seconds,
            max_seconds=check_max_seconds(max_seconds, "--max-seconds") if max_seconds is not None
            else self.max_seconds,
            seed=check_seed(seed, "--seed") if seed is not None else self.seed,
        )


# --- loading -------------------------------------------------------------------------------------------------------


def load_sweep(path: str | Path) -> SweepSpec:
    """Read and validate a sweep TOML file.

    Raises:
        MissingFileError: no such file.
        InvalidInputError: bad TOML, unknown or mistyped key (file:line and key named), or no configuration at all.
    """
    path = Path(path)
    if path.exists() and not path.is_file():
        raise InvalidInputError(f"sweep file {path} is a folder, not a file; pass a .toml such as "
                                "bench/sweeps/quick.toml")
    if not path.is_file():
        raise MissingFileError(f"sweep file {path} does not exist; see bench/sweeps/ for examples")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"{path}: not a UTF-8 text file (byte {exc.start} is 0x{exc.object[exc.start]:02x}); "
                                "save the sweep as UTF-8 TOML") from None
    except OSError as exc:
        raise InvalidInputError(f"sweep file {path} cannot be read ({exc.strerror or exc}); check its permissions") \
            from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInputError(f"{path}: not valid TOML: {exc}") from None
    return parse_sweep(data, text=text, source=path)


def parse_sweep(data: dict[str, Any], *, text: str = "", source: Path | None = None) -> SweepSpec:
    """Validate parsed TOML (`text` is the file's text, used only to point errors at a line)."""
    where = _Locator(text, source)
    for key in data:
        if key not in ("sweep", "group"):
            raise where.error(key, None, None, f"unknown table {key!r}; a sweep has [sweep] and [[group]] tables")
    head = data.get("sweep", {})
    if not isinstance(head, dict):
        raise where.error("sweep", None, None, "'sweep' must be a table: write [sweep]")
    for key in head:
        if key not in _SWEEP_KEYS:
            raise where.error(key, "sweep", None, f"unknown key; [sweep] accepts {', '.join(sorted(_SWEEP_KEYS))}")

    def sweep_value(key: str, check: Any, default: Any) -> Any:
        if key not in head:
            return default
        try:
            return check(head[key], key)
        except InvalidInputError as exc:
            raise where.error(key, "sweep", None, str(exc)) from None

    default_name = source.stem if source is not None else "sweep"
    name = sweep_value("name", _check_name, default_name)
    runs = sweep_value("runs", check_runs, DEFAULT_RUNS)
    runs = sweep_value("min_runs", check_runs, runs)
    min_seconds = sweep_value("min_seconds", check_seconds, 0.0)
    max_seconds = sweep_value("max_seconds", check_max_seconds, None)
    seed = sweep_value("seed", check_seed, 0)
    warmup = sweep_value("warmup", check_warmup, DEFAULT_WARMUP)
    cooldown_s = sweep_value("cooldown_s", check_cooldown, 0.0)
    cores = sweep_value("cores", check_cores, "big")
    description = sweep_value("description", _check_str, "")

    groups = data.get("group", [])
    if isinstance(groups, dict) or not isinstance(groups, list):
        raise where.error("group", None, None, "'group' must be an array of tables: write [[group]] (two brackets)")
    if not groups:
        raise where.error("group", None, None, "the sweep has no [[group]] table, so nothing to measure; add one "
                          "with models, resolutions and targets")
    configs: list[Configuration] = []
    for index, group in enumerate(groups):
        configs.extend(_expand_group(group, index, where))
    unique = list(dict.fromkeys(configs))  # groups may overlap: measure each configuration once
    return SweepSpec(name=name, configurations=tuple(interleave(unique)), runs=runs, warmup=warmup,
                     cooldown_s=cooldown_s, cores=cores, description=description, source=source,
                     min_seconds=min_seconds, max_seconds=max_seconds, seed=seed)


def _expand_group(group: Any, index: int, where: _Locator) -> list[Configuration]:
    if not isinstance(group, dict):
        raise where.error("group", None, index, "each [[group]] must be a table")
    for key in group:
        if key not in _GROUP_KEYS:
            raise where.error(key, "group", index,
                              f"unknown key; [[group]] accepts {', '.join(sorted(_GROUP_KEYS))}")
    for key in _REQUIRED_GROUP_KEYS:
        if key not in group:
            raise where.error(None, "group", index,
                              f"missing key {key!r} (required: {', '.join(_REQUIRED_GROUP_KEYS)})")

    def values(key: str, check: Any, default: list[Any]) -> list[Any]:
        raw = group.get(key, default)
        items = raw if isinstance(raw, list) else [raw]  # a single value stands for a one-element list
        if not items:
            raise where.error(key, "group", index, "empty list: this group expands to no configuration")
        try:
            return list(dict.fromkeys(check(item, key) for item in items))
        except InvalidInputError as exc:
            raise where.error(key, "group", index, str(exc)) from None

    models = values("models", check_model, [])
    resolutions = values("resolutions", check_resolution, [])
    targets = values("targets", check_target, [])
    precisions = values("precisions", check_precision, ["fp32"])
    threads = values("threads", check_threads, [1])
    optimize = values("optimize", _check_bool, [True])
    nhwc = values("nhwc", _check_bool, [False])
    return [Configuration(m, r, t, p, n, o, h)
            for m, r, t, p, n, o, h in product(models, resolutions, targets, precisions, threads, optimize, nhwc)]


def adhoc_sweep(*, models: Sequence[str], resolutions: Sequence[str], targets: Sequence[str],
                precisions: Sequence[str] = ("fp32",), threads: Sequence[int] = (1,), runs: int = DEFAULT_RUNS,
                warmup: int = DEFAULT_WARMUP, cooldown_s: float = 0.0, cores: str = "big",
                name: str = "adhoc") -> SweepSpec:
    """A sweep from command-line lists (`--model`, `--resolution`, ...), validated like a file's.

    Raises:
        InvalidInputError: a bad value (named with its option) or an empty list.
    """
    lists = {"--model": models, "--resolution": resolutions, "--target": targets, "--precision": precisions,
             "--threads": threads}
    for option, items in lists.items():
        if not items:
            raise InvalidInputError(f"{option} is required when no --sweep file is given")
    configs = [Configuration(check_model(m, "--model"), check_resolution(r, "--resolution"),
                             check_target(t, "--target"), check_precision(p, "--precision"),
                             check_threads(n, "--threads"))
               for m, r, t, p, n in product(models, resolutions, targets, precisions, threads)]
    return SweepSpec(name=_check_name(name, "name"), configurations=tuple(interleave(dict.fromkeys(configs))),
                     runs=check_runs(runs, "--runs"), warmup=check_warmup(warmup, "--warmup"),
                     cooldown_s=check_cooldown(cooldown_s, "--cooldown"), cores=check_cores(cores, "--cores"))


def interleave(configs: Iterable[Configuration]) -> list[Configuration]:
    """Run order: by resolution (small first), target, precision, options and threads; models innermost.

    Models keep their order of first appearance, so a sweep file controls which model of a comparison runs first.
    """
    configs = list(configs)
    model_rank = {m: i for i, m in enumerate(dict.fromkeys(c.model for c in configs))}
    target_rank = {t: i for i, t in enumerate(TARGETS)}
    return sorted(configs, key=lambda c: (c.resolution[0] * c.resolution[1], c.resolution, target_rank[c.target],
                                          c.precision, not c.optimize, c.nhwc, c.threads, model_rank[c.model]))


# --- value checks (shared with the CLI; `key` names the option or TOML key in messages) ----------------------------


def check_model(value: Any, key: str) -> str:
    from ..models import names  # imported lazily: the model registry pulls in torch

    if not isinstance(value, str) or value not in names():
        raise InvalidInputError(f"{key}: unknown model {value!r}; choose from {', '.join(names())}")
    return value


def check_resolution(value: Any, key: str) -> Resolution:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise InvalidInputError(f"{key}: resolution must be an integer such as 224 or a string such as "
                                f"\"512x1024\", got {value!r}")
    try:
        return parse_resolution(value)
    except InvalidInputError as exc:
        raise InvalidInputError(f"{key}: {exc}") from None


def check_target(value: Any, key: str) -> str:
    if value not in TARGETS:
        raise InvalidInputError(f"{key}: unknown target {value!r}; choose from {', '.join(TARGETS)}")
    return str(value)


def check_precision(value: Any, key: str) -> str:
    if value not in PRECISIONS:
        raise InvalidInputError(f"{key}: unknown precision {value!r}; choose from {', '.join(PRECISIONS)}")
    return str(value)


def check_threads(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_THREADS:
        raise InvalidInputError(f"{key}: threads must be an integer from 1 to {MAX_THREADS}, got {value!r}")
    return value


def check_runs(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_RUNS:
        raise InvalidInputError(f"{key}: runs must be an integer from 1 to {MAX_RUNS}, got {_short(value)}")
    return value


def check_warmup(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_WARMUP:
        raise InvalidInputError(f"{key}: warmup must be an integer from 0 to {MAX_WARMUP}, got {_short(value)}")
    return value


def check_cooldown(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= MAX_COOLDOWN_S:
        raise InvalidInputError(f"{key}: cool-down must be a number of seconds from 0 to {MAX_COOLDOWN_S:g}, "
                                f"got {_short(value)}")
    return float(value)


def _short(value: Any) -> str:
    """A value for an error line: huge pasted numbers are cut, not printed in full."""
    text = repr(value)
    return text if len(text) <= 24 else text[:20] + "…"


def check_seconds(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 3600:
        raise InvalidInputError(f"{key}: must be a number of seconds from 0 to 3600, got {value!r}")
    return float(value)


def check_max_seconds(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 36000:
        raise InvalidInputError(f"{key}: must be a number of seconds above 0 and at most 36000, got {value!r}")
    return float(value)


def check_seed(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**32:
        raise InvalidInputError(f"{key}: the order seed must be an integer from 0 to 4294967295, got {value!r}")
    return value


def check_cores(value: Any, key: str) -> str:
    """"big", "all" or a non-zero hex taskset mask ("f0", "0x80"); returned lower-case without 0x."""
    if isinstance(value, str) and value.lower() in ("big", "all"):
        return value.lower()
    if isinstance(value, str) and _MASK.fullmatch(value) and int(value, 16) > 0:
        return format(int(value, 16), "x")
    raise InvalidInputError(f"{key}: cores must be 'big', 'all' or a non-zero hex CPU mask such as f0, got {value!r}")


def _check_name(value: Any, key: str) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise InvalidInputError(f"{key}: a sweep name is letters, digits, '.', '_' and '-' (it names the results "
                                f"file), got {value!r}")
    return value


def _check_str(value: Any, key: str) -> str:
    if not isinstance(value, str):
        raise InvalidInputError(f"{key}: must be a string, got {value!r}")
    return value


def _check_bool(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidInputError(f"{key}: must be true or false, got {value!r}")
    return value


# --- error locations ------------------------------------------------------------------------------------------------


class _Locator:
    """Finds the line of a key in the TOML text, so errors say `file:line` (tomllib keeps no positions)."""

    _HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\"' -]+?)\s*\]\]?")

    def __init__(self, text: str, source: Path | None) -> None:
        self.lines = text.splitlines()
        self.source = source

    def line_of(self, key: str | None, table: str | None, index: int | None) -> int | None:
        """1-based line of `key` inside `[table]` (or the `index`-th `[[table]]`); of the header when key is None."""
        start, end = 0, len(self.lines)
        if table is not None:
            seen = -1
            start = -1
            for i, line in enumerate(self.lines):
                m = self._HEADER.match(line)
                if not m or m.group(2).strip("\"'") != table:
                    continue
                seen += 1
                if index is None or seen == index:
                    start = i
                    break
            if start < 0:
                return None
            if key is None:
                return start + 1
            end = next((j for j in range(start + 1, len(self.lines)) if self._HEADER.match(self.lines[j])),
                       len(self.lines))
            start += 1
        elif key is not None:
            # a top-level key or a table header named `key`
            for i, line in enumerate(self.lines):
                m = self._HEADER.match(line)
                if m and m.group(2).strip("\"'") == key:
                    return i + 1
            end = next((j for j, line in enumerate(self.lines) if self._HEADER.match(line)), len(self.lines))
        if key is None:
            return None
        pattern = re.compile(rf"^\s*[\"']?{re.escape(key)}[\"']?\s*=")
        return next((i + 1 for i in range(start, end) if pattern.match(self.lines[i])), None)

    def error(self, key: str | None, table: str | None, index: int | None, message: str) -> InvalidInputError:
        line = self.line_of(key, table, index)
        if line is None and table is not None:
            line = self.line_of(None, table, index)
        place = str(self.source) if self.source is not None else "sweep"
        if line is not None:
            place += f":{line}"
        scope = f"[[group]] {index + 1}: " if table == "group" and index is not None else (
            "[sweep]: " if table == "sweep" else "")
        if key is not None:
            message = f"{key!r}: " + message.removeprefix(f"{key}: ")
        return InvalidInputError(f"{place}: {scope}{message}")


__all__ = [
    "Configuration",
    "SweepSpec",
    "TARGETS",
    "PRECISIONS",
    "load_sweep",
    "parse_sweep",
    "adhoc_sweep",
    "interleave",
    "check_cores",
]
