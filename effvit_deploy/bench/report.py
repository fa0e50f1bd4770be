"""Latency tables and plots from result records: Markdown, CSV (long format) and a self-contained HTML page.

One table per (target, precision, threads). Rows are `model@HxW` (sorted by model name, then pixel count); columns
are devices (phones side by side). A cell is the median in ms with the p90 underneath. For each EfficientViT row two
speedups per device follow:
- over its softmax twin (`efficientvit-b1` vs `efficientvit-b1-softmax`): the same weights and shapes with softmax
  attention, so the ratio isolates the attention kernel;
- over the EfficientNet of closest published ImageNet top-1 (`EFFICIENTNET_TWIN`, derived from the numbers below).
Speedup = other latency / this latency at the same resolution, target, precision, threads and device (> 1 means
EfficientViT is faster). Both sides use the median; when a runner only reported a mean (executor_runner without
per-iteration lines, a grepped benchmark APK line) both sides must be means, otherwise the cell is "–".

Artifacts exported with non-default options (NHWC I/O, `--no-optimize`; see `record_variant`) get rows of their own,
labelled `model@HxW [nhwc]`, and are compared only with twins of the same variant.

When several records land in one cell (a re-run, another runner), the latest successful one wins; a cell with only
failed records shows `error` and the table's footnotes list the messages. Nothing here prints; the CLI calls
`render` / `write_report`.
"""

from __future__ import annotations

import csv
import html
import io
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InvalidInputError
from ..fileio import atomic_write_text
from ..outputs import check_output_file
from ..resolution import parse_resolution
from ..vocabulary import TARGETS
from ..zoo import load_zoo
from .records import BenchRecord

# Published ImageNet-1k top-1 (%) from the zoo manifest (models/zoo.toml): EfficientNet from torchvision's weight
# docs (IMAGENET1K_V1, the paper recipe), EfficientViT from the official README (B0: timm's measurement of the
# author-shared weights; shared/reference/efficientvit_official_facts.md 1.6).
_TOP1 = {name: entry.top1 for name, entry in load_zoo().items() if entry.top1 is not None}
EFFICIENTNET_TOP1: dict[str, float] = {n: t for n, t in _TOP1.items() if n.startswith("efficientnet-")}
EFFICIENTVIT_TOP1: dict[str, float] = {n: t for n, t in _TOP1.items() if n.startswith("efficientvit-")}


def _closest_top1(top1: float) -> str:
    return min(EFFICIENTNET_TOP1, key=lambda name: (abs(EFFICIENTNET_TOP1[name] - top1), name))


# b0 -> efficientnet-b0 (|71.41-77.69| = 6.28: B0 is far below every EfficientNet; B0 is still the nearest),
# b1 -> b1 (0.75), b2 -> b3 (|82.10-82.01| = 0.09 beats |82.10-80.61| = 1.49), b3 -> b3 (1.46).
# efficientvit-paper has no published top-1 for this reimplementation; it was designed around 400M MACs at 224,
# like EfficientNet-B0 (0.39G), so it is compared with B0. Softmax twins use their base model's entry.
EFFICIENTNET_TWIN: dict[str, str] = {name: _closest_top1(t) for name, t in EFFICIENTVIT_TOP1.items()}
EFFICIENTNET_TWIN["efficientvit-paper"] = "efficientnet-b0"

FORMATS = ("md", "csv", "html")
_DASH = "–"


def softmax_twin(model: str) -> str | None:
    """`efficientvit-b1` -> `efficientvit-b1-softmax`; None for baselines and for softmax twins themselves."""
    if model.startswith("efficientvit-") and not model.endswith("-softmax"):
        return f"{model}-softmax"
    return None


def efficientnet_twin(model: str) -> str | None:
    """The EfficientNet an EfficientViT (or its softmax twin) is compared with; None for other models."""
    base = model.removesuffix("-softmax")
    return EFFICIENTNET_TWIN.get(base)


# --- table model ----------------------------------------------------------------------------------------------------


@dataclass
class Cell:
    """The record chosen for one (row, device); `record` is None when nothing was measured there."""

    record: BenchRecord | None = None

    @property
    def is_error(self) -> bool:
        return self.record is not None and not self.record.ok

    @property
    def median_ms(self) -> float | None:
        return self._stat("median_ms")

    @property
    def p90_ms(self) -> float | None:
        return self._stat("p90_ms")

    @property
    def central(self) -> tuple[str, float] | None:
        """("median", ms) when known, else ("mean", ms); None for errors and empty cells."""
        if self.median_ms is not None:
            return "median", self.median_ms
        mean = self._stat("mean_ms")
        return ("mean", mean) if mean is not None else None

    def _stat(self, name: str) -> float | None:
        if self.record is None or not self.record.ok:
            return None
        assert self.record.stats is not None
        value = self.record.stats.get(name)
        return float(value) if value is not None else None


@dataclass
class Row:
    """One `model@HxW` line of a table; the lists are aligned with `Table.devices`."""

    model: str
    resolution: str
    cells: list[Cell]
    vs_softmax: list[float | None]
    vs_efficientnet: list[float | None]
    variant: str = ""  # export variant other than the default ("nhwc", "no-opt"), see `record_variant`

    @property
    def label(self) -> str:
        return f"{self.model}@{self.resolution}" + (f" [{self.variant}]" if self.variant else "")

    @property
    def efficientnet_ref(self) -> str | None:
        return efficientnet_twin(self.model)


@dataclass
class Table:
    """Latency of every (model, resolution) on every device for one target, precision and thread count."""

    target: str
    precision: str
    threads: int
    devices: list[str]  # display names, column order
    device_ids: list[str]
    rows: list[Row]
    runners: dict[str, list[str]] = field(default_factory=dict)  # display name -> runner kinds used

    @property
    def title(self) -> str:
        return f"{self.target} · {self.precision} · {self.threads} thread{'s' if self.threads != 1 else ''}"

    @property
    def has_speedups(self) -> bool:
        return any(softmax_twin(r.model) or efficientnet_twin(r.model) for r in self.rows)

    @property
    def has_parity(self) -> bool:
        """Some record here carries a device parity check (then every device gets a parity column)."""
        return any(c.record is not None and c.record.device_parity for r in self.rows for c in r.cells)

    def header(self) -> list[str]:
        cols = ["model", *self.devices]
        if self.has_speedups:
            cols += [f"× softmax · {d}" for d in self.devices]
            cols += [f"× EfficientNet · {d}" for d in self.devices]
        if self.has_parity:
            cols += [f"parity · {d}" for d in self.devices]
        return cols

    def error_cells(self) -> list[tuple[str, str, BenchRecord]]:
        """(device, row label, record) of every error cell, in table order."""
        out = []
        for row in self.rows:
            for device, cell in zip(self.devices, row.cells, strict=True):
                if cell.is_error:
                    assert cell.record is not None
                    out.append((device, row.label, cell.record))
        return out


def build_tables(records: Iterable[BenchRecord]) -> list[Table]:
    """Group records into one `Table` per (target, precision, threads), ordered by target, precision, threads."""
    records = list(records)
    names = _display_names(records)
    device_order = list(dict.fromkeys(r.device_id for r in records))
    # (target, precision, threads) -> (model, resolution, variant, device_id) -> (preference, chosen record)
    Slot = tuple[str, str, str, str]
    chosen: dict[tuple[str, str, int], dict[Slot, tuple[tuple[bool, str, int], BenchRecord]]] = {}
    for index, rec in enumerate(records):
        slots = chosen.setdefault((rec.target, rec.precision, rec.threads), {})
        slot = (rec.model, rec.resolution, record_variant(rec), rec.device_id)
        pref = _preference(rec, index)
        if slot not in slots or pref > slots[slot][0]:
            slots[slot] = (pref, rec)
    tables = []
    for group in sorted(chosen, key=_group_order):
        target, precision, threads = group
        cells = {slot: rec for slot, (_, rec) in chosen[group].items()}
        device_ids = [d for d in device_order if any(slot[3] == d for slot in cells)]
        devices = [names[d] for d in device_ids]
        row_keys = sorted({s[:3] for s in cells}, key=lambda k: (k[0], k[2], *_pixels(k[1])))
        rows = [
            Row(m, res, [Cell(cells.get((m, res, v, d))) for d in device_ids], [], [], variant=v)
            for m, res, v in row_keys
        ]
        # twins are looked up at the same resolution and export variant
        by_key = {(r.model, r.resolution, r.variant): r for r in rows}
        for row in rows:
            twin, effnet = softmax_twin(row.model), efficientnet_twin(row.model)
            soft_row = by_key.get((twin, row.resolution, row.variant)) if twin else None
            eff_row = by_key.get((effnet, row.resolution, row.variant)) if effnet else None
            for i in range(len(device_ids)):
                row.vs_softmax.append(_speedup(row, soft_row, i))
                row.vs_efficientnet.append(_speedup(row, eff_row, i))
        runners: dict[str, list[str]] = {}
        for (_, _, _, dev), rec in cells.items():
            runners.setdefault(names[dev], [])
            if rec.runner not in runners[names[dev]]:
                runners[names[dev]].append(rec.runner)
        tables.append(Table(target, precision, threads, devices, device_ids, rows, runners))
    return tables


def record_variant(rec: BenchRecord) -> str:
    """Export options that change the artifact but not the model, as the sweep engine records them in `extra`.

    "" for the default export; "nhwc" for NHWC input/output, "no-opt" for `--no-optimize`, joined by "+". Such rows
    get their own line so they are never mistaken for (or replaced by) the default artifact's numbers.
    """
    tags = []
    if rec.extra.get("nhwc") is True:
        tags.append("nhwc")
    if rec.extra.get("optimize") is False:
        tags.append("no-opt")
    return "+".join(tags)


def _preference(rec: BenchRecord, index: int) -> tuple[bool, str, int]:
    """Successful beats failed; then the later finish time; then the later position in the input."""
    return rec.ok, rec.finished_at or "", index


def _group_order(group: tuple[str, str, int]) -> tuple[int, str, int]:
    target, precision, threads = group
    return (TARGETS.index(target) if target in TARGETS else len(TARGETS), precision, threads)


def _pixels(resolution: str) -> tuple[int, int]:
    h, w = parse_resolution(resolution, multiple=1)
    return h * w, h


def _speedup(row: Row, other: Row | None, device: int) -> float | None:
    """other / this, both medians (or both means); None when either side is missing or they differ in kind."""
    if other is None:
        return None
    mine, theirs = row.cells[device].central, other.cells[device].central
    if mine is None or theirs is None or mine[0] != theirs[0] or mine[1] <= 0:
        return None
    return theirs[1] / mine[1]


def _display_names(records: Sequence[BenchRecord]) -> dict[str, str]:
    """Device column names: "<model> (<soc>)"; the serial is added when two devices would get the same name."""
    base: dict[str, str] = {}
    serial: dict[str, str] = {}
    for rec in records:
        if rec.device_id in base:
            continue
        model = rec.device_model or rec.device_serial
        soc = rec.device.get("soc")
        base[rec.device_id] = f"{model} ({soc})" if soc and str(soc) not in model else model
        if rec.extra.get("emulated"):  # emulator timings: never to be read as phone latency
            base[rec.device_id] += " [emulated]"
        serial[rec.device_id] = rec.device_serial
    counts: dict[str, int] = {}
    for name in base.values():
        counts[name] = counts.get(name, 0) + 1
    return {d: (f"{n} [{serial[d]}]" if counts[n] > 1 else n) for d, n in base.items()}


# --- formatting -----------------------------------------------------------------------------------------------------


def _ms(value: float) -> str:
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def _ratio(value: float | None) -> str:
    return f"{value:.2f}×" if value is not None else _DASH


def _cell_parts(cell: Cell) -> tuple[str, str | None]:
    """(main text, small text) of a latency cell, format-neutral."""
    if cell.record is None:
        return _DASH, None
    if cell.is_error:
        return "error", None
    central = cell.central
    if central is None:
        return _DASH, None
    kind, value = central
    small = "median" + (f", p90 {_ms(cell.p90_ms)}" if cell.p90_ms is not None else "") if kind == "median" else None
    if kind == "mean":
        small = "mean"
    main = (_ms(value) + (" ⚠" if cell.record.throttled else "") + (" ≈" if _unstable(cell.record) else "")
            + (" ✗" if _parity_missed(cell.record) else ""))
    return main, small


def _unstable(rec: BenchRecord) -> bool:
    return bool(rec.stability and rec.stability.get("stable") is False)


def _parity_missed(rec: BenchRecord) -> bool:
    return bool(rec.device_parity) and rec.device_parity.get("status") == "fail"  # type: ignore[union-attr]


def parity_text(rec: BenchRecord | None) -> str:
    """Parity cell: "ok", "MISS cos=0.9123" (outside the manifest tolerance), "error", or "–" (not checked)."""
    parity = rec.device_parity if rec is not None else None
    if not parity:
        return _DASH
    status = parity.get("status")
    if status == "pass":
        return "ok"
    if status == "fail":
        cos = parity.get("cosine")
        return f"MISS cos={cos:.4f}" if isinstance(cos, float) else "MISS"
    return "error" if status == "error" else _DASH


def _notes(table: Table) -> list[str]:
    """Footnotes for one table, as plain text lines."""
    notes = []
    runner_text = "; ".join(f"{d}: {', '.join(r)}" for d, r in table.runners.items())
    notes.append(f"ms per inference; each cell names its statistic (median with p90, or mean). Runners: {runner_text}.")
    if any("[emulated]" in d for d in table.devices):
        notes.append("[emulated]: measured under an emulator (qemu running ARM code on this machine's CPU): real ARM "
                     "kernels and outputs, but emulator timings, NOT phone latency.")
    if table.has_speedups:
        mapping = ", ".join(
            f"{k.removeprefix('efficientvit-')}→{v.removeprefix('efficientnet-')}" for k, v in EFFICIENTNET_TWIN.items()
        )
        notes.append(
            "× softmax = softmax-twin latency / EfficientViT latency; × EfficientNet = latency of the EfficientNet of "
            f"closest published top-1 ({mapping}) / EfficientViT latency; > 1 means EfficientViT is faster."
        )
    if any(c.central and c.central[0] == "mean" for row in table.rows for c in row.cells):
        notes.append("'mean': the runner reported only a mean (no median/p90); speedups compare means with means.")
    if any(c.record is not None and c.record.ok and c.record.throttled for row in table.rows for c in row.cells):
        notes.append("⚠ = clocks dropped or temperature rose past the threshold during the measurement.")
    if table.has_parity:
        notes.append("parity = one run on the device with the export's verification input vs the PyTorch reference, "
                     "judged by the export's tolerance; ✗ / MISS = outside it.")
        for row in table.rows:
            for device, cell in zip(table.devices, row.cells, strict=True):
                parity = cell.record.device_parity if cell.record is not None else None
                if parity and parity.get("status") in ("fail", "error"):
                    detail = parity.get("error") or (f"max_abs={parity.get('max_abs'):.3g} cosine="
                                                     f"{parity.get('cosine'):.6f} top1_equal={parity.get('top1_equal')}"
                                                     f" (needs {parity.get('criterion')})")
                    notes.append(f"  parity {parity.get('status')}: {device}, {row.label}: {detail}")
    if any(c.record is not None and c.record.ok and _unstable(c.record) for row in table.rows for c in row.cells):
        notes.append("≈ = unstable: the window medians disagreed by more than the tolerance, or the runs formed two "
                     "clusters, also when measured once more after a rest.")
    errors = table.error_cells()
    if errors:
        notes.append(f"{len(errors)} error cell{'s' if len(errors) != 1 else ''}:")
        for device, label, rec in errors:
            first_line = (rec.error or "").strip().splitlines()[0] if (rec.error or "").strip() else "unknown error"
            notes.append(f"  {device}, {label}: {first_line[:200]}")
    return notes


def _md_escape(text: str) -> str:
    """Our own cell markup (numbers, <sub>): only table-breaking characters are neutralised."""
    return text.replace("|", "\\|").replace("\n", " ")


_MD_SPECIAL = re.compile(r"([\\`*_\[\]#|~!])")


def _md_text(text: object) -> str:
    """Text from records and devices (names, serials, facts, errors) shown literally: a device can name itself
    `**x** <img src=...>`, and Markdown would render that (the HTML report escapes the same strings)."""
    one_line = " ".join(str(text).split())
    return _MD_SPECIAL.sub(r"\\\1", html.escape(one_line, quote=False))


def to_markdown(tables: Sequence[Table], records: Sequence[BenchRecord] = ()) -> str:
    """GitHub Markdown: a header, the devices, then each table with its footnotes."""
    out = ["# effvit-bench results", ""]
    out += _summary_lines(records, _md_text)
    for table in tables:
        out += [f"## {table.title}", ""]
        header = table.header()
        out.append("| " + " | ".join(_md_text(h) for h in header) + " |")
        out.append("|" + "|".join([":---", *["---:"] * (len(header) - 1)]) + "|")
        for row in table.rows:
            cells = []
            for cell in row.cells:
                main, small = _cell_parts(cell)
                cells.append(f"{main} <sub>{small}</sub>" if small else main)
            if table.has_speedups:
                cells += [_ratio(v) for v in row.vs_softmax] + [_ratio(v) for v in row.vs_efficientnet]
            if table.has_parity:
                cells += [parity_text(c.record) for c in row.cells]
            out.append("| " + " | ".join([_md_text(row.label), *(_md_escape(c) for c in cells)]) + " |")
        out.append("")
        for note in _notes(table):  # a bullet list, so each note renders on its own line; errors nest under theirs
            text = _md_text(note)  # runner names and error messages come from the device
            out.append(f"  - {text}" if note.startswith("  ") else f"- {text}")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def _summary_lines(records: Sequence[BenchRecord], quote: Callable[[object], str] = str) -> list[str]:
    """Record count and device list; `quote` makes the device-supplied parts safe for the output format."""
    if not records:
        return ["No records.", ""]
    stamps = sorted(t for r in records for t in (r.started_at, r.finished_at) if t)
    errors = sum(1 for r in records if not r.ok)
    first, last = (stamps[0][:10], stamps[-1][:10]) if stamps else ("", "")
    span = "" if not stamps else f", measured {first}" if first == last else f", measured {first} to {last}"
    lines = [f"{len(records)} records ({errors} failed){span}.", "", "Devices:", ""]
    names = _display_names(records)
    seen = set()
    for rec in records:
        if rec.device_id in seen:
            continue
        seen.add(rec.device_id)
        facts = _facts_text(rec.device)
        lines.append(f"- {quote(names[rec.device_id])}: serial {quote(rec.device_serial)}"
                     + (f"; {quote(facts)}" if facts else ""))
    return [*lines, ""]


# device facts shown in the report's device list, in this order (label, keys tried in turn)
_FACTS_SHOWN = (
    ("SoC", ("soc",)),
    ("Android", ("android_release", "android")),
    ("ABI", ("abi",)),
    ("CPUs", ("clusters",)),
    ("governor", ("governor",)),
)


def _facts_text(facts: dict[str, object]) -> str:
    """`SoC sm8150, Android 13, ABI arm64-v8a, CPUs 4×1.78 GHz + 3×2.42 GHz + 1×2.84 GHz, governor schedutil`."""
    parts = []
    for label, keys in _FACTS_SHOWN:
        value = next((facts[k] for k in keys if facts.get(k) not in (None, "", [], {})), None)
        if value is None:
            continue
        if label == "CPUs" and isinstance(value, list):
            value = " + ".join(_cluster_text(c) for c in value)
        parts.append(f"{label} {value}")
    return ", ".join(parts)


def _cluster_text(cluster: object) -> str:
    if isinstance(cluster, dict) and isinstance(cluster.get("cpus"), list) and cluster.get("max_khz"):
        return f"{len(cluster['cpus'])}×{float(cluster['max_khz']) / 1e6:.2f} GHz"
    if isinstance(cluster, dict) and isinstance(cluster.get("cpus"), list):
        return f"{len(cluster['cpus'])} CPUs (max clock not exposed)"
    return str(cluster)


CSV_COLUMNS = tuple(
    """target precision threads model resolution variant device device_serial device_model soc runner median_ms p90_ms
    mean_ms min_ms max_ms std_ms n basis init_ms first_ms throttled speedup_vs_softmax softmax_twin
    speedup_vs_efficientnet efficientnet_ref device_parity parity_cosine parity_max_abs parity_top1_equal error key
    finished_at stable spread_pct cv trimmed_mean_ms p99_ms peak_rss_kb energy_per_inference_mj mean_power_w
    order_seed""".split()
)


def to_csv(tables: Sequence[Table]) -> str:
    """Long format: one row per table cell that has a record (errors included), with its speedups."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for table in tables:
        for row in table.rows:
            for i, cell in enumerate(row.cells):
                if cell.record is not None:
                    writer.writerow(_csv_row(table, row, i, cell.record))
    return buf.getvalue()


def _csv_row(table: Table, row: Row, i: int, rec: BenchRecord) -> dict[str, str]:
    stats = rec.stats or {}
    values: dict[str, object] = {
        "target": table.target,
        "precision": table.precision,
        "threads": table.threads,
        "model": row.model,
        "resolution": row.resolution,
        "variant": row.variant,
        "device": table.devices[i],
        "device_serial": rec.device_serial,
        "device_model": rec.device_model,
        "soc": rec.device.get("soc"),
        "runner": rec.runner,
        **{k: stats.get(k) for k in ("median_ms", "p90_ms", "mean_ms", "min_ms", "max_ms", "std_ms", "n", "basis")},
        "init_ms": rec.init_ms,
        "first_ms": rec.first_ms,
        "throttled": rec.throttled,
        "speedup_vs_softmax": row.vs_softmax[i],
        "softmax_twin": softmax_twin(row.model),
        "speedup_vs_efficientnet": row.vs_efficientnet[i],
        "efficientnet_ref": row.efficientnet_ref,
        "device_parity": (rec.device_parity or {}).get("status"),
        "parity_cosine": (rec.device_parity or {}).get("cosine"),
        "parity_max_abs": (rec.device_parity or {}).get("max_abs"),
        "parity_top1_equal": (rec.device_parity or {}).get("top1_equal"),
        "error": rec.error,
        "key": rec.key,
        "finished_at": rec.finished_at,
        **{k: (rec.stability or {}).get(k) for k in ("stable", "spread_pct", "cv", "trimmed_mean_ms", "p99_ms")},
        "peak_rss_kb": rec.peak_rss_kb,
        **{k: (rec.energy or {}).get(k) for k in ("energy_per_inference_mj", "mean_power_w")},
        "order_seed": rec.order_seed,
    }
    return {k: "" if v is None else str(v) for k, v in values.items()}


def to_html(tables: Sequence[Table], records: Sequence[BenchRecord] = ()) -> str:
    """One self-contained page: summary, sortable tables with each record's flags, footnotes, comparison plots
    (plots.py) as inline PNG, and a per-record table of the trust fields."""
    from . import report_html

    esc = html.escape
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8"><title>effvit-bench results</title>',
        "<style>body{font-family:sans-serif;margin:2em;max-width:90em}table{border-collapse:collapse;margin:1em 0}"
        "th,td{border:1px solid #ccc;padding:.3em .6em;text-align:right}td:first-child,th:first-child{text-align:left}"
        "sub{color:#666}td.error{color:#b00}.notes{font-size:.9em;color:#333}" + report_html.CSS +
        "</style></head><body>",
        "<h1>effvit-bench results</h1>",
    ]
    summary = [ln for ln in _summary_lines(records) if ln]
    parts.append("<p>" + esc(summary[0]) + "</p>")
    if len(summary) > 1:
        parts.append("<ul>" + "".join(f"<li>{esc(ln[2:])}</li>" for ln in summary[2:]) + "</ul>")
    for table in tables:
        parts.append(f"<h2>{esc(table.title)}</h2>")
        parts.append('<table class="sortable"><thead><tr>' + "".join(f"<th>{esc(h)}</th>" for h in table.header())
                     + "</tr></thead>")
        parts.append("<tbody>")
        for row in table.rows:
            tds = [f"<td>{esc(row.label)}</td>"]
            for cell in row.cells:
                main, small = _cell_parts(cell)
                css = ' class="error"' if cell.is_error else ""
                value = f' data-v="{cell.central[1]!r}"' if cell.central else ' data-v=""'
                tds.append(f"<td{css}{value}>{esc(main)}" + (f" <sub>{esc(small)}</sub>" if small else "")
                           + report_html.flags_html(cell.record) + "</td>")
            if table.has_speedups:
                tds += [f'<td data-v="{v if v is not None else ""}">{esc(_ratio(v))}</td>'
                        for v in [*row.vs_softmax, *row.vs_efficientnet]]
            if table.has_parity:
                tds += [f"<td>{esc(parity_text(c.record))}</td>" for c in row.cells]
            parts.append("<tr>" + "".join(tds) + "</tr>")
        parts.append("</tbody></table>")
        parts.append('<div class="notes">' + "<br>".join(esc(n) for n in _notes(table)) + "</div>")
        parts += report_html.figures_html(table)
    if any(r.ok for r in records):
        parts += ["<h2>Every record: stability, memory, load, energy</h2>",
                  report_html.records_table(records, _display_names(records))]
    parts += [report_html.SORT_SCRIPT, "</body></html>"]
    return "\n".join(parts) + "\n"


# --- plots ----------------------------------------------------------------------------------------------------------


def plot_table(table: Table) -> bytes | None:
    """PNG: one panel per model, median latency against resolution (pixel count, labelled HxW), a line per device.

    Returns None when the table has no successful measurement. Uses the Agg canvas directly (no pyplot), so it
    neither changes the global backend nor needs a display.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    # one panel per model (and export variant, which would otherwise put two points at one resolution)
    models = list(dict.fromkeys((r.model, r.variant) for r in table.rows if any(c.central for c in r.cells)))
    if not models:
        return None
    ncols = min(3, len(models))
    nrows = (len(models) + ncols - 1) // ncols
    fig = Figure(figsize=(4.2 * ncols, 3.2 * nrows), dpi=90, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax, (model, variant) in zip(axes.flat, models, strict=False):
        rows = [r for r in table.rows if r.model == model and r.variant == variant]
        for d, device in enumerate(table.devices):
            points = [(_pixels(r.resolution)[0], r.cells[d].central[1]) for r in rows if r.cells[d].central]
            if points:
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, marker="o", label=device)
        ticks = sorted({_pixels(r.resolution)[0]: r.resolution for r in rows}.items())
        ax.set_xscale("log")
        ax.set_xticks([t for t, _ in ticks], labels=[label for _, label in ticks], rotation=30, fontsize=7)
        ax.minorticks_off()
        ax.set_title(f"{model} [{variant}]" if variant else model, fontsize=9)
        ax.set_ylabel("median ms", fontsize=8)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(models) :]:
        ax.set_visible(False)
    fig.suptitle(table.title, fontsize=10)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


# --- entry points ---------------------------------------------------------------------------------------------------


def render(records: Iterable[BenchRecord], fmt: str) -> str:
    """The whole report as text in `fmt` ("md" (or "markdown"), "csv", "html")."""
    fmt = "md" if fmt == "markdown" else fmt
    if fmt not in FORMATS:
        raise InvalidInputError(f"unknown report format {fmt!r}; choose one of {', '.join(FORMATS)}")
    records = list(records)
    tables = build_tables(records)
    if fmt == "md":
        return to_markdown(tables, records)
    if fmt == "csv":
        return to_csv(tables)
    return to_html(tables, records)


def write_report(records: Iterable[BenchRecord], fmt: str, out_path: str | os.PathLike[str]) -> Path:
    """Render and write atomically (temp file in the same directory, fsync, os.replace). Returns the path."""
    out = check_output_file(out_path, "--out")
    text = render(records, fmt)
    try:
        atomic_write_text(out, text)
    except OSError as exc:  # checked above; still possible (disk full, a folder swapped in meanwhile)
        raise InvalidInputError(f"--out {out}: cannot write the report ({exc.strerror or exc}); pass another "
                                "file") from None
    return out
