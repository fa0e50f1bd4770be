"""Report tables, speedups, and the Markdown / CSV / HTML renderings on synthetic records from two emulated phones."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import re
from pathlib import Path

import pytest

from effvit_deploy.bench import plots
from effvit_deploy.bench.records import BenchRecord
from effvit_deploy.bench.report import (
    EFFICIENTNET_TWIN,
    build_tables,
    efficientnet_twin,
    render,
    softmax_twin,
    write_report,
)
from effvit_deploy.errors import InvalidInputError

PIXEL = ("PX4SERIAL", {"model": "Pixel 4", "soc": "sm8150", "android": "13", "abi": "arm64-v8a"})
GALAXY = ("S22SERIAL", {"model": "Galaxy S22", "soc": "sm8450", "android": "14", "abi": "arm64-v8a"})
MODELS = ["mobilenetv2", "efficientvit-b1-softmax", "efficientnet-b1", "efficientvit-b2", "efficientnet-b3",
          "efficientvit-b1"]  # fmt: skip
RESOLUTIONS = ["512x512", "224x224", "512x1024"]
# per-phone speed factor so the two columns differ
SPEED = {"PX4SERIAL": 1.0, "S22SERIAL": 0.6}
BASE_MS = {"efficientvit-b1": 20.0, "efficientvit-b1-softmax": 31.0, "efficientnet-b1": 27.0,
           "efficientvit-b2": 50.0, "efficientnet-b3": 80.0, "mobilenetv2": 9.0}  # fmt: skip


def _record(device, model: str, res: str, threads: int, *, median: float | None = None, error: str | None = None,
            finished: str = "2026-11-26T10:00:00+00:00", **stat_overrides) -> BenchRecord:  # fmt: skip
    serial, facts = device
    h, w = (int(x) for x in res.split("x"))
    if median is None:
        median = BASE_MS[model] * SPEED.get(serial, 1.0) * (h * w) / (224 * 224) * (1.0 if threads == 4 else 2.5)
    stats = {"median_ms": median, "mean_ms": median * 1.02, "p90_ms": median * 1.05, "min_ms": median * 0.97,
             "max_ms": median * 1.2, "std_ms": median * 0.01, "n": 50, "basis": "runner"}  # fmt: skip
    stats.update(stat_overrides)
    return BenchRecord(
        device_serial=serial,
        device=dict(facts),
        model=model,
        resolution=res,
        target="tflite",
        precision="fp32",
        artifact_sha256=hashlib.sha256(f"{model}@{res}".encode()).hexdigest(),
        runner="native-benchmark_model",
        threads=threads,
        runs=50,
        warmup=10,
        stats=None if error else stats,
        error=error,
        started_at="2026-11-26T09:59:00+00:00",
        finished_at=finished,
    )


@pytest.fixture()
def records() -> list[BenchRecord]:
    out = []
    for threads in (4, 1):
        for device in (PIXEL, GALAXY):
            for model in MODELS:
                for res in RESOLUTIONS:
                    if model == "efficientnet-b3" and res == "512x1024":
                        continue  # a missing twin: the speedup cell must be "–"
                    out.append(_record(device, model, res, threads))
    # an older failed attempt that a later success replaces, and a cell that only ever failed
    out.insert(0, _record(PIXEL, "efficientvit-b1", "224x224", 4, error="DeviceError: device offline",
                          finished="2026-11-26T09:00:00+00:00"))  # fmt: skip
    out = [r for r in out if not (r.device_serial == "S22SERIAL" and r.model == "efficientvit-b2"
                                  and r.resolution == "224x224" and r.threads == 4)]  # fmt: skip
    out.append(_record(GALAXY, "efficientvit-b2", "224x224", 4, error="RunnerOutputError: cannot parse | output"))
    return out


def _table(tables, threads: int):
    (table,) = [t for t in tables if t.threads == threads]
    return table


def _row(table, label: str):
    (row,) = [r for r in table.rows if r.label == label]
    return row


def test_efficientnet_mapping_follows_closest_top1() -> None:
    assert EFFICIENTNET_TWIN == {
        "efficientvit-b0": "efficientnet-b0",
        "efficientvit-b1": "efficientnet-b1",
        "efficientvit-b2": "efficientnet-b3",
        "efficientvit-b3": "efficientnet-b3",
        "efficientvit-paper": "efficientnet-b0",
    }
    assert efficientnet_twin("efficientvit-b2-softmax") == "efficientnet-b3"
    assert efficientnet_twin("mobilenetv2") is None
    assert softmax_twin("efficientvit-b1") == "efficientvit-b1-softmax"
    assert softmax_twin("efficientvit-b1-softmax") is None and softmax_twin("efficientnet-b1") is None


def test_table_shape_and_order(records: list[BenchRecord]) -> None:
    tables = build_tables(records)
    assert [t.threads for t in tables] == [1, 4]
    table = _table(tables, 4)
    assert table.devices == ["Pixel 4 (sm8150)", "Galaxy S22 (sm8450)"]
    assert len(table.header()) == 1 + 2 + 2 * 2
    labels = [r.label for r in table.rows]
    assert len(labels) == len(MODELS) * len(RESOLUTIONS) - 1  # efficientnet-b3@512x1024 never measured
    assert labels[:4] == ["efficientnet-b1@224x224", "efficientnet-b1@512x512", "efficientnet-b1@512x1024",
                          "efficientnet-b3@224x224"]  # fmt: skip
    assert labels[-1] == "mobilenetv2@512x1024"
    assert all(len(r.cells) == len(r.vs_softmax) == len(r.vs_efficientnet) == 2 for r in table.rows)


def test_speedups_are_ratios_of_record_medians(records: list[BenchRecord]) -> None:
    table = _table(build_tables(records), 4)

    def median(serial: str, model: str, res: str) -> float:
        (rec,) = [r for r in records if r.ok and r.threads == 4 and r.device_serial == serial and r.model == model
                  and r.resolution == res]  # fmt: skip
        return rec.stats["median_ms"]

    row = _row(table, "efficientvit-b1@512x512")
    for d, serial in enumerate(["PX4SERIAL", "S22SERIAL"]):
        expect = median(serial, "efficientvit-b1-softmax", "512x512") / median(serial, "efficientvit-b1", "512x512")
        assert row.vs_softmax[d] == pytest.approx(expect)
        expect = median(serial, "efficientnet-b1", "512x512") / median(serial, "efficientvit-b1", "512x512")
        assert row.vs_efficientnet[d] == pytest.approx(expect)
    assert row.vs_softmax[0] == pytest.approx(31.0 / 20.0)
    # b2 is compared with efficientnet-b3 (closest top-1)
    assert _row(table, "efficientvit-b2@512x512").vs_efficientnet[1] == pytest.approx(80.0 / 50.0)
    # missing twin, error cell, baseline rows: no speedup
    assert _row(table, "efficientvit-b2@512x1024").vs_efficientnet == [None, None]
    assert _row(table, "efficientvit-b2@224x224").vs_efficientnet[1] is None
    assert _row(table, "efficientvit-b2@224x224").vs_softmax == [None, None]  # no b2 softmax twin measured
    assert _row(table, "mobilenetv2@224x224").vs_softmax == [None, None]


def test_later_success_replaces_earlier_error(records: list[BenchRecord]) -> None:
    table = _table(build_tables(records), 4)
    cell = _row(table, "efficientvit-b1@224x224").cells[0]
    assert cell.record is not None and cell.record.ok
    assert _row(table, "efficientvit-b2@224x224").cells[1].is_error


def test_markdown_is_a_valid_table_with_error_footnote(records: list[BenchRecord]) -> None:
    md = render(records, "md")
    lines = md.splitlines()
    headers = [i for i, ln in enumerate(lines) if ln.startswith("| model |")]
    assert len(headers) == 2
    for i in headers:
        ncols = lines[i].count(" | ") + 1
        assert re.fullmatch(r"\|(:?-{3,}:?\|)+", lines[i + 1]), lines[i + 1]
        assert lines[i + 1].count("|") - 1 == ncols
        j = i + 2
        while j < len(lines) and lines[j].startswith("|"):
            assert len(re.split(r"(?<!\\)\|", lines[j])) - 2 == ncols, lines[j]
            j += 1
        assert j - i - 2 == len(MODELS) * len(RESOLUTIONS) - 1
    assert "| efficientvit-b1@512x512 | " in md
    pixel_b1 = _record(PIXEL, "efficientvit-b1", "512x512", 4).stats
    assert f"{pixel_b1['median_ms']:.1f} <sub>median, p90 {pixel_b1['p90_ms']:.1f}</sub>" in md
    assert f"{31.0 / 20.0:.2f}×" in md
    assert "| error |" in md
    assert "1 error cell:" in md
    assert "RunnerOutputError: cannot parse \\| output" in md  # footnote quotes the message (escaped)
    assert "–" in md


def test_csv_long_format_parses_back(records: list[BenchRecord]) -> None:
    text = render(records, "csv")
    rows = list(csv.DictReader(io.StringIO(text)))
    tables = build_tables(records)
    filled = sum(1 for t in tables for r in t.rows for c in r.cells if c.record is not None)
    assert len(rows) == filled
    (b1,) = [r for r in rows if r["model"] == "efficientvit-b1" and r["resolution"] == "512x512"
             and r["threads"] == "4" and r["device_serial"] == "S22SERIAL"]  # fmt: skip
    expect = _record(GALAXY, "efficientvit-b1", "512x512", 4).stats
    assert float(b1["median_ms"]) == pytest.approx(expect["median_ms"])
    assert float(b1["p90_ms"]) == pytest.approx(expect["p90_ms"])
    assert float(b1["speedup_vs_softmax"]) == pytest.approx(31.0 / 20.0)
    assert b1["efficientnet_ref"] == "efficientnet-b1" and b1["device"] == "Galaxy S22 (sm8450)"
    errors = [r for r in rows if r["error"]]
    assert len(errors) == 1 and errors[0]["median_ms"] == ""


def test_html_is_self_contained_with_plots(records: list[BenchRecord]) -> None:
    page = render(records, "html")
    assert page.startswith("<!doctype html>")
    images = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)" alt="([^"]+)"', page)
    tables = build_tables(records)
    # comparison figures (plots.py): latency vs resolution per device, speedups, devices side by side per table
    assert len(images) == sum(len(plots.figures(t)) for t in tables) >= 2 * len(tables)
    assert all(base64.b64decode(data)[:8] == b"\x89PNG\r\n\x1a\n" for data, _ in images)
    assert any(alt.startswith("devices side by side") for _, alt in images)
    assert page.count('<table class="sortable">') == 2 and 'class="sortable records"' in page
    assert "<script>" in page and "querySelectorAll('table.sortable th')" in page
    assert "Galaxy S22 (sm8450)" in page and 'class="error"' in page
    assert "http://" not in page and "https://" not in page  # nothing fetched from elsewhere


def test_devices_sharing_a_model_get_their_serial() -> None:
    twin = ("PX4OTHER", PIXEL[1])
    recs = [_record(PIXEL, "efficientvit-b1", "224x224", 4), _record(twin, "efficientvit-b1", "224x224", 4)]
    (table,) = build_tables(recs)
    assert table.devices == ["Pixel 4 (sm8150) [PX4SERIAL]", "Pixel 4 (sm8150) [PX4OTHER]"]


def test_mean_only_cells_do_not_mix_with_medians() -> None:
    effvit = _record(PIXEL, "efficientvit-b1", "224x224", 4, median=None, p90_ms=None, basis="mean-only")
    effvit.stats["median_ms"] = None
    softmax = _record(PIXEL, "efficientvit-b1-softmax", "224x224", 4)
    (table,) = build_tables([effvit, softmax])
    assert _row(table, "efficientvit-b1@224x224").vs_softmax == [None]
    softmax.stats["median_ms"] = None
    (table,) = build_tables([effvit, softmax])
    assert _row(table, "efficientvit-b1@224x224").vs_softmax[0] == pytest.approx(
        softmax.stats["mean_ms"] / effvit.stats["mean_ms"]
    )
    assert "<sub>mean</sub>" in render([effvit, softmax], "md")


def test_throttled_cells_are_marked() -> None:
    rec = _record(PIXEL, "efficientvit-b1", "224x224", 4)
    rec.throttled = True
    md = render([rec], "md")
    assert "⚠" in md and "temperature rose" in md


def test_write_report_is_atomic_and_checks_format(records: list[BenchRecord], tmp_path: Path) -> None:
    out = write_report(records, "md", tmp_path / "out" / "report.md")
    assert out.read_text() == render(records, "md")
    write_report(records, "html", tmp_path / "out" / "report.html")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["report.html", "report.md"]  # no temp files left
    with pytest.raises(InvalidInputError, match="unknown report format"):
        render(records, "pdf")
    assert render([], "md").startswith("# effvit-bench results")
    assert render([], "csv").startswith("target,precision")


def test_export_variants_get_their_own_rows_and_twins() -> None:
    default = _record(PIXEL, "efficientvit-b1", "224x224", 4, median=20.0)
    nhwc = _record(PIXEL, "efficientvit-b1", "224x224", 4, median=18.0)
    nhwc.extra["nhwc"] = True
    soft_nhwc = _record(PIXEL, "efficientvit-b1-softmax", "224x224", 4, median=27.0)
    soft_nhwc.extra["nhwc"] = True
    (table,) = build_tables([default, nhwc, soft_nhwc])
    assert [r.label for r in table.rows] == [
        "efficientvit-b1@224x224",
        "efficientvit-b1@224x224 [nhwc]",
        "efficientvit-b1-softmax@224x224 [nhwc]",
    ]
    assert _row(table, "efficientvit-b1@224x224").vs_softmax == [None]  # no default-variant twin
    assert _row(table, "efficientvit-b1@224x224 [nhwc]").vs_softmax[0] == pytest.approx(27.0 / 18.0)


def test_device_list_formats_clusters() -> None:
    rec = _record(PIXEL, "efficientvit-b1", "224x224", 4)
    rec.device["clusters"] = [
        {"cpus": [0, 1, 2, 3], "max_khz": 1785600, "governor": "schedutil"},
        {"cpus": [4, 5, 6], "max_khz": 2419200, "governor": "schedutil"},
        {"cpus": [7], "max_khz": 2841600, "governor": "schedutil"},
    ]
    rec.device["governor"] = "schedutil"
    md = render([rec], "md")
    assert "CPUs 4×1.79 GHz + 3×2.42 GHz + 1×2.84 GHz, governor schedutil" in md


def test_html_in_headless_chromium_sorts_by_a_clicked_column(records: list[BenchRecord], tmp_path: Path) -> None:
    """The page in a real browser (Debian's chromium, when installed): two clicks sort a latency column down."""
    import shutil
    import subprocess

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium not installed (apt-get install chromium): the in-browser check needs it")
    page = render(records, "html")
    probe = ("<script>var t=document.querySelector('table.sortable'),th=t.tHead.rows[0].cells[1];th.click();"
             "th.click();document.body.setAttribute('data-order',Array.from(t.tBodies[0].rows).map("
             "function(r){return r.cells[1].getAttribute('data-v')}).join(';'));</script></body></html>")
    path = tmp_path / "report.html"
    path.write_text(page.replace("</body></html>", probe))
    dom = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", path.as_uri()],
                         capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL).stdout
    order = re.search(r'data-order="([^"]*)"', dom)
    assert order is not None, dom[-500:]
    values = [float(v) for v in order.group(1).split(";") if v]
    assert len(values) >= 10 and values == sorted(values, reverse=True)


def test_unstable_cells_are_marked_and_csv_has_the_trust_fields() -> None:
    from effvit_deploy.bench.quality import annotate
    from effvit_deploy.bench.stats import summarize

    rec = _record(PIXEL, "efficientvit-b1", "224x224", 4)
    rec.samples_ms = [10.0] * 20 + [13.0] * 20  # drifts: the windows disagree
    rec.stats = summarize(rec.samples_ms)
    rec.extra["peak_rss_kb"] = 123456
    annotate(rec)
    md = render([rec], "md")
    assert " ≈ <sub>median" in md and "≈ = unstable" in md
    (row,) = csv.DictReader(io.StringIO(render([rec], "csv")))
    assert row["stable"] == "False" and float(row["spread_pct"]) > 5 and row["peak_rss_kb"] == "123456"
    assert float(row["trimmed_mean_ms"]) == pytest.approx(11.5)
    assert row["arena_bytes"] == "" and row["stop_applied_by"] == ""


def test_arena_and_stop_rule_reach_the_csv_and_the_html_records_table() -> None:
    from effvit_deploy.bench.quality import annotate
    from effvit_deploy.bench.report_html import records_table
    from effvit_deploy.bench.stats import summarize

    rec = _record(PIXEL, "efficientvit-b1", "224x224", 4)
    rec.samples_ms = [10.0] * 20
    rec.stats = summarize(rec.samples_ms)
    rec.extra.update(arena_bytes=3 * 2**20, arena_source="MethodMeta memory-planned buffers")
    rec.stop_rule = {"min_runs": 20, "min_seconds": 1.0, "max_seconds": None, "applied_by": "runner loop"}
    annotate(rec)
    (row,) = csv.DictReader(io.StringIO(render([rec], "csv")))
    assert row["arena_bytes"] == str(3 * 2**20) and row["stop_applied_by"] == "runner loop"
    html = records_table([rec], {})
    assert "<th>arena MB</th>" in html and 'data-v="3.0"' in html
    rec.arena_bytes, rec.extra["arena_reason"] = None, "not exposed: no such call"
    assert 'title="not exposed: no such call"' in records_table([rec], {})
