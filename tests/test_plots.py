"""Comparison plots: every series of a panel on one axis, labelled axes, non-empty PNGs (the report's fixtures)."""

from __future__ import annotations

from effvit_deploy.bench import plots
from effvit_deploy.bench.records import BenchRecord
from effvit_deploy.bench.report import build_tables

from .test_report import records  # noqa: F401  (fixture)


def _tflite_4_threads(recs: list[BenchRecord]):
    return next(t for t in build_tables(recs) if t.threads == 4)


def test_family_panels_share_one_log_log_axis(records: list[BenchRecord]) -> None:  # noqa: F811
    table = _tflite_4_threads(records)
    fig = plots.latency_families(table, 0)
    assert fig is not None
    panels = [ax for ax in fig.axes if ax.get_visible()]
    by_title = {ax.get_title().split(" · ")[0]: ax for ax in panels}
    b1 = by_title["efficientvit-b1"]
    names = sorted(line.get_label().split(" (")[0] for line in b1.get_lines())
    assert names == ["efficientnet-b1", "efficientvit-b1", "efficientvit-b1-softmax"]  # all three on one axis
    assert b1.get_xscale() == "log" and b1.get_yscale() == "log"
    assert b1.get_xlabel() == plots.RESOLUTION_LABEL and b1.get_ylabel() == plots.LATENCY_LABEL
    softmax = next(line for line in b1.get_lines() if line.get_label().startswith("efficientvit-b1-softmax"))
    linear = next(line for line in b1.get_lines() if line.get_label().startswith("efficientvit-b1 "))
    assert all(s > v for s, v in zip(softmax.get_ydata(), linear.get_ydata(), strict=True))  # the data, as measured


def test_speedup_and_side_by_side_figures(records: list[BenchRecord]) -> None:  # noqa: F811
    table = _tflite_4_threads(records)
    speed = plots.speedups(table)
    assert speed is not None and len(speed.axes) == len(table.devices)
    labels = {line.get_label() for line in speed.axes[0].get_lines()}
    assert {"efficientvit-b1 × softmax", "efficientvit-b1 × EfficientNet"} <= labels
    bars = plots.phones_side_by_side(table)
    assert bars is not None and bars.axes[0].get_ylabel() == plots.LATENCY_LABEL
    assert len(bars.axes[0].get_legend().get_texts()) == len(table.devices)


def test_figures_render_to_png(records: list[BenchRecord]) -> None:  # noqa: F811
    table = _tflite_4_threads(records)
    rendered = [(alt, plots.png(fig)) for alt, fig in plots.figures(table)]
    assert len(rendered) == len(table.devices) + 2
    for alt, data in rendered:
        assert data.startswith(b"\x89PNG") and len(data) > 5000, alt


def test_write_pngs_for_a_look(records: list[BenchRecord], tmp_path_factory) -> None:  # noqa: F811
    """Writes the figures where a developer can open them (EFFVIT_PLOTS_DIR); asserts they render."""
    import os

    folder = os.environ.get("EFFVIT_PLOTS_DIR")
    table = _tflite_4_threads(records)
    for i, (_, fig) in enumerate(plots.figures(table)):
        data = plots.png(fig)
        assert data
        if folder:
            with open(os.path.join(folder, f"plot{i}.png"), "wb") as f:
                f.write(data)
