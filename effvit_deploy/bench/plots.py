"""Plots that compare, for one report table (one target, precision and thread count):

1. latency against resolution on log-log axes, per device: each EfficientViT with its softmax twin and its
   EfficientNet on the same axes (one panel per EfficientViT), so the gap reads directly as a distance;
2. speedup against resolution (x softmax, x EfficientNet), one panel per device, every EfficientViT on one axis;
3. phones side by side: per model@resolution, one bar per device (only when the table has several devices).

Figures are built on matplotlib's Agg canvas (no pyplot: no global backend, no display). `figures` returns them so
tests can read axes and lines; `png` renders one.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .report import Row, Table

LATENCY_LABEL = "latency, ms (log)"
RESOLUTION_LABEL = "input pixels, H×W (log)"


def _figure(ncols: int, nrows: int = 1) -> tuple[Figure, list]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.4 * ncols, 3.4 * nrows), dpi=90, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, list(axes.flat)


def _pixels(resolution: str) -> int:
    h, w = (int(v) for v in resolution.split("x"))
    return h * w


def _series(table: Table, model: str, variant: str, device: int) -> tuple[list[int], list[float], str]:
    """(pixels, ms, statistic) of one model's row cells on one device, by resolution."""
    points = sorted((_pixels(r.resolution), r.cells[device].central) for r in table.rows
                    if r.model == model and r.variant == variant and r.cells[device].central)
    stats = {c[0] for _, c in points if c}
    statistic = stats.pop() if len(stats) == 1 else "median/mean"
    return [p for p, _ in points], [c[1] for _, c in points if c], statistic


def _resolution_ticks(ax, rows: list[Row]) -> None:
    ticks = sorted({_pixels(r.resolution): r.resolution for r in rows}.items())
    ax.set_xscale("log")
    ax.set_xticks([t for t, _ in ticks], labels=[label for _, label in ticks], rotation=30, fontsize=7)
    ax.minorticks_off()


def _efficientvits(table: Table) -> list[tuple[str, str]]:
    from .report import efficientnet_twin, softmax_twin

    return list(dict.fromkeys((r.model, r.variant) for r in table.rows
                              if softmax_twin(r.model) or (efficientnet_twin(r.model) and
                                                           not r.model.endswith("-softmax"))))


def latency_families(table: Table, device: int) -> Figure | None:
    """Log-log latency vs resolution on one device: each EfficientViT, its softmax twin and its EfficientNet."""
    from .report import efficientnet_twin, softmax_twin

    families = _efficientvits(table)
    if not families:
        return None
    fig, axes = _figure(min(3, len(families)), (len(families) + 2) // 3)
    for ax, (model, variant) in zip(axes, families, strict=False):
        members = [model, softmax_twin(model), efficientnet_twin(model)]
        rows = [r for r in table.rows if r.model in members and r.variant == variant]
        for member in (m for m in members if m):
            xs, ys, stat = _series(table, member, variant, device)
            if xs:
                ax.plot(xs, ys, marker="o", label=f"{member} ({stat})")
        _resolution_ticks(ax, rows)
        ax.set_yscale("log")
        ax.set_xlabel(RESOLUTION_LABEL, fontsize=8)
        ax.set_ylabel(LATENCY_LABEL, fontsize=8)
        ax.set_title(f"{model}{f' [{variant}]' if variant else ''} · {table.devices[device]}", fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    for ax in axes[len(families):]:
        ax.set_visible(False)
    fig.suptitle(f"latency vs resolution · {table.title}", fontsize=10)
    return fig


def speedups(table: Table) -> Figure | None:
    """Speedup over the softmax twin and over the EfficientNet against resolution, one panel per device."""
    families = _efficientvits(table)
    have = [(d, rows) for d in range(len(table.devices))
            if (rows := [r for r in table.rows if r.vs_softmax[d] is not None or r.vs_efficientnet[d] is not None])]
    if not families or not have:
        return None
    fig, axes = _figure(len(have))
    for ax, (d, rows) in zip(axes, have, strict=True):
        for model, variant in families:
            mine = sorted((r for r in rows if r.model == model and r.variant == variant),
                          key=lambda r: _pixels(r.resolution))
            for kind, values in (("× softmax", [r.vs_softmax[d] for r in mine]),
                                 ("× EfficientNet", [r.vs_efficientnet[d] for r in mine])):
                points = [(_pixels(r.resolution), v) for r, v in zip(mine, values, strict=True) if v is not None]
                if points:
                    ax.plot(*zip(*points, strict=True), marker="o", label=f"{model} {kind}")
        _resolution_ticks(ax, rows)
        ax.axhline(1.0, color="grey", linewidth=0.8)
        ax.set_xlabel(RESOLUTION_LABEL, fontsize=8)
        ax.set_ylabel("speedup (other ms / EfficientViT ms)", fontsize=8)
        ax.set_title(table.devices[d], fontsize=9)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"speedups · {table.title}", fontsize=10)
    return fig


def phones_side_by_side(table: Table) -> Figure | None:
    """Grouped bars: per model@resolution, one bar per device (None with fewer than two devices)."""
    if len(table.devices) < 2:
        return None
    rows = [r for r in table.rows if any(c.central for c in r.cells)]
    if not rows:
        return None
    fig, (ax,) = _figure(1)
    fig.set_size_inches(max(6.0, 0.5 * len(rows) * len(table.devices)), 3.8)
    width = 0.8 / len(table.devices)
    for d, device in enumerate(table.devices):
        xs = [i + d * width for i, r in enumerate(rows) if r.cells[d].central]
        ys = [r.cells[d].central[1] for r in rows if r.cells[d].central]  # type: ignore[index]
        ax.bar(xs, ys, width=width, label=device)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(rows))], labels=[r.label for r in rows], rotation=45,
                  ha="right", fontsize=7)
    ax.set_yscale("log")
    ax.set_ylabel(LATENCY_LABEL, fontsize=8)
    ax.set_xlabel("model@resolution", fontsize=8)
    ax.legend(fontsize=7)
    ax.grid(True, axis="y", alpha=0.3)
    fig.suptitle(f"devices side by side · {table.title}", fontsize=10)
    return fig


def figures(table: Table) -> list[tuple[str, Figure]]:
    """Every comparison figure of a table, with an alt text each."""
    out: list[tuple[str, Figure | None]] = [
        (f"latency vs resolution on {device}, {table.title}", latency_families(table, d))
        for d, device in enumerate(table.devices)
    ]
    out += [(f"speedups vs resolution, {table.title}", speedups(table)),
            (f"devices side by side, {table.title}", phones_side_by_side(table))]
    return [(alt, fig) for alt, fig in out if fig is not None]


def png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
