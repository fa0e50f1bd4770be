"""The HTML report's extras: per-record trust flags, a sortable per-record table, comparison figures, sorting JS.

Kept apart from report.py (which owns the tables' content) so the page can grow without touching the Markdown and
CSV paths. Everything is inline: the page loads nothing from elsewhere.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .records import BenchRecord

if TYPE_CHECKING:
    from .report import Table

# Click a header to sort by that column (numbers by value, text by name); a second click reverses. Cells carry
# `data-v` (the number behind "12.3 median") so sorting never parses display text.
SORT_SCRIPT = """<script>
document.querySelectorAll('table.sortable th').forEach(function (th, _i) {
  th.style.cursor = 'pointer';
  th.title = 'sort by this column';
  th.addEventListener('click', function () {
    var table = th.closest('table'), body = table.tBodies[0], col = th.cellIndex;
    var asc = th.getAttribute('data-dir') !== 'asc';
    table.querySelectorAll('th').forEach(function (h) { h.removeAttribute('data-dir'); });
    th.setAttribute('data-dir', asc ? 'asc' : 'desc');
    var key = function (tr) {
      var td = tr.cells[col]; if (!td) return '';
      var v = td.getAttribute('data-v');
      return v !== null && v !== '' ? parseFloat(v) : td.textContent.trim().toLowerCase();
    };
    Array.from(body.rows).sort(function (a, b) {
      var x = key(a), y = key(b), num = typeof x === 'number' && typeof y === 'number';
      if (typeof x !== typeof y) return typeof x === 'number' ? -1 : 1;  /* blanks and text after numbers */
      var c = num ? x - y : (x < y ? -1 : x > y ? 1 : 0);
      return asc ? c : -c;
    }).forEach(function (tr) { body.appendChild(tr); });
  });
});
</script>"""

CSS = ("th[data-dir=asc]::after{content:' ▲'}th[data-dir=desc]::after{content:' ▼'}"
       ".flag{font-size:.75em;padding:0 .3em;margin-left:.2em;border-radius:.3em;background:#eee;color:#333}"
       ".flag.bad{background:#fdd;color:#900}.flag.good{background:#dfd;color:#060}"
       "table.records td{font-size:.85em}table.records td.t{text-align:left}")


def flags(rec: BenchRecord) -> list[tuple[str, str, str]]:
    """(text, css class, explanation) of each trust flag of one record: stability, throttle, parity, energy."""
    out: list[tuple[str, str, str]] = []
    if not rec.ok:
        return out
    st = rec.stability or {}
    if st.get("stable") is True:
        out.append(("stable", "good", f"window medians within {st.get('spread_pct')}% "
                                      f"(tolerance {st.get('tolerance_pct')}%)"))
    elif st.get("stable") is False:
        why = "two clusters of run times" if st.get("bimodal") else f"window medians {st.get('spread_pct')}% apart"
        again = " (re-measured once, still unstable)" if rec.extra.get("remeasured") else ""
        out.append(("unstable", "bad", why + again))
    elif st:
        out.append(("stability ?", "", str(st.get("reason", "not judged"))))
    if rec.throttled:
        out.append(("throttled", "bad", "clocks dropped or temperature rose during the measurement"))
    for name, parity in (("parity", rec.manifest.get("parity")), ("device parity", _device_parity(rec))):
        if isinstance(parity, dict) and "passed" in parity:
            ok = bool(parity["passed"])
            out.append((f"{name} {'ok' if ok else 'FAIL'}", "good" if ok else "bad",
                        ", ".join(f"{k}={v}" for k, v in parity.items() if not isinstance(v, dict | list))))
    return out


def _device_parity(rec: BenchRecord) -> Any:
    return getattr(rec, "device_parity", None) or rec.extra.get("device_parity")


def flags_html(rec: BenchRecord | None) -> str:
    if rec is None:
        return ""
    return "".join(f' <span class="flag {css}" title="{html.escape(why)}">{html.escape(text)}</span>'
                   for text, css, why in flags(rec))


def figures_html(table: Table) -> list[str]:
    """The comparison figures of one table as inline PNG <img> tags (plots.py)."""
    from . import plots

    out = []
    for alt, fig in plots.figures(table):
        data = base64.b64encode(plots.png(fig)).decode("ascii")
        out.append(f'<p><img src="data:image/png;base64,{data}" alt="{html.escape(alt)}"></p>')
    return out


_RECORD_COLUMNS = ("device", "configuration", "runner", "median ms", "trimmed mean ms", "p99 ms", "CV %",
                   "spread %", "flags", "init ms", "first ms", "peak RSS MB", "arena MB", "energy mJ/inf", "mean W",
                   "runs", "order seed")


def records_table(records: Sequence[BenchRecord], names: dict[str, str]) -> str:
    """Every successful record with its trust fields, one row each (sortable)."""
    rows = []
    for rec in records:
        if not rec.ok:
            continue
        st, en, stats = rec.stability or {}, rec.energy or {}, rec.stats or {}
        median = stats.get("median_ms")
        central = ("median", median) if median is not None else ("mean", stats.get("mean_ms"))
        config = f"{rec.model}@{rec.resolution} {rec.target} {rec.precision} t{rec.threads}"
        cells = [
            _td(names.get(rec.device_id, rec.device_serial)), _td(config), _td(rec.runner),
            _num(central[1], f" {central[0]}"), _num(st.get("trimmed_mean_ms")), _num(st.get("p99_ms")),
            _num(st.get("cv") * 100 if isinstance(st.get("cv"), int | float) else None),
            _num(st.get("spread_pct")), f"<td>{flags_html(rec)}</td>", _num(rec.init_ms), _num(rec.first_ms),
            _num(rec.peak_rss_kb / 1024 if rec.peak_rss_kb else None),
            _num(rec.arena_bytes / 2**20) if rec.arena_bytes is not None
            else _td("–", title=str(rec.extra.get("arena_reason") or "not reported")),
            _num(en.get("energy_per_inference_mj")) if en.get("energy_per_inference_mj") is not None
            else _td("–", title=str(en.get("reason") or "not measured")),
            _num(en.get("mean_power_w")), _num(len(rec.samples_ms) if rec.samples_ms else stats.get("n"), digits=0),
            _td("" if rec.order_seed is None else str(rec.order_seed)),
        ]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    head = "".join(f"<th>{html.escape(c)}</th>" for c in _RECORD_COLUMNS)
    return (f'<table class="sortable records"><thead><tr>{head}</tr></thead><tbody>' + "\n".join(rows)
            + "</tbody></table>")


def _td(text: str, *, title: str | None = None) -> str:
    attr = f' title="{html.escape(title)}"' if title else ' class="t"'  # text cells left-aligned; "–" stays right
    return f"<td{attr}>{html.escape(text)}</td>"


def _num(value: Any, suffix: str = "", digits: int | None = None) -> str:
    if not isinstance(value, int | float):
        return '<td data-v="">–</td>'
    shown = f"{value:.{digits}f}" if digits is not None else (f"{value:.1f}" if abs(value) >= 10 else f"{value:.3g}")
    return f'<td data-v="{value!r}">{html.escape(shown + suffix)}</td>'
