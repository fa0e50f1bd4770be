"""Hostile input gets one line and exit 2, never a traceback, and is refused before any work (issue 15).

Each case here was a traceback, a silent acceptance or a late failure before: non-ASCII digits in resolutions,
non-UTF-8 and binary files, unbounded counts, output locations that cannot be written, device-supplied strings
rendered as Markdown, pickles that need arbitrary globals, and a Ctrl-C/SIGTERM that ended bench silently.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from effvit_deploy.bench import report
from effvit_deploy.bench.records import BenchRecord
from effvit_deploy.bench.store import ResultStore, load_results
from effvit_deploy.bench.sweep import MAX_RUNS, load_sweep, parse_sweep
from effvit_deploy.cli import bench
from effvit_deploy.errors import CheckpointError, InvalidInputError
from effvit_deploy.export import ExportOptions, api
from effvit_deploy.models.checkpoint import read_state_dict
from effvit_deploy.resolution import parse_resolution

Cli = Callable[..., tuple[int, str, str]]
# A folder nobody can create files in, root included (chmod does not stop root).
UNWRITABLE = Path("/proc/effvit-no-such-folder")


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Cli:
    def invoke(*argv: object) -> tuple[int, str, str]:
        try:
            bench.main([str(a) for a in argv])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        out, err = capsys.readouterr()
        return code, out, err

    return invoke


def one_error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


# --- resolutions: ASCII digits only ---------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["²²⁴", "٢٢٤", "２２４", "224x٥١٢", "1e3", "-224", "224x", "9999999"])
def test_resolution_accepts_ascii_digits_only(text: str) -> None:
    with pytest.raises(InvalidInputError, match="not understood|invalid"):
        parse_resolution(text)


def test_resolution_ascii_still_parses() -> None:
    assert parse_resolution(" 512X1024 ") == (512, 1024) and parse_resolution("224") == (224, 224)


def test_bench_cli_refuses_superscript_resolution(cli: Cli) -> None:
    code, _, err = cli("run", "-d", "local", "-m", "efficientvit-b0", "-t", "onnx", "-r", "²²⁴")
    assert code == 2 and "not understood" in one_error_line(err)


# --- sweep files and bounds -----------------------------------------------------------------------------------------

GROUP = '[[group]]\nmodels = ["efficientvit-b0"]\nresolutions = [224]\ntargets = ["onnx"]\n'


def test_non_utf8_sweep_file_is_one_line(tmp_path: Path, cli: Cli) -> None:
    sweep = tmp_path / "latin1.toml"
    sweep.write_bytes('[sweep]\ndescription = "caf\xe9"\n'.encode("latin-1") + GROUP.encode())
    with pytest.raises(InvalidInputError, match="not a UTF-8 text file"):
        load_sweep(sweep)
    code, _, err = cli("run", "-d", "local", "--sweep", sweep)
    assert code == 2 and "UTF-8" in one_error_line(err)


@pytest.mark.parametrize(("key", "value"), [("runs", "99999999999999999999"), ("runs", str(MAX_RUNS + 1)),
                                            ("warmup", "1000001"), ("cooldown_s", "inf"), ("cooldown_s", "nan"),
                                            ("cooldown_s", "86400")])
def test_sweep_settings_have_upper_bounds(key: str, value: str) -> None:
    import tomllib

    text = f"[sweep]\n{key} = {value}\n{GROUP}"
    with pytest.raises(InvalidInputError, match=key) as info:
        parse_sweep(tomllib.loads(text), text=text)
    assert len(str(info.value)) < 200  # a pasted 20-digit number is not echoed in full


def test_group_threads_bounded() -> None:
    import tomllib

    text = GROUP + "threads = [100000]\n"
    with pytest.raises(InvalidInputError, match="threads must be an integer from 1 to 64"):
        parse_sweep(tomllib.loads(text), text=text)


@pytest.mark.parametrize("args", [("--runs", "99999999999999999999"), ("--warmup", "5000"), ("--cooldown", "1e9"),
                                  ("--threads", "65")])
def test_cli_counts_have_upper_bounds(cli: Cli, args: tuple[str, str]) -> None:
    code, _, err = cli("run", "-d", "local", "-m", "efficientvit-b0", "-t", "onnx", *args)
    assert code == 2 and args[0] in one_error_line(err)


# --- outputs are checked before any work ----------------------------------------------------------------------------


def _no_work(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record any attempt to open a device or export: none may happen when an output location is bad."""
    calls: list[str] = []
    monkeypatch.setattr(bench, "open_devices", lambda specs, **kw: calls.append("open") or [])
    monkeypatch.setattr(bench.engine, "export_artifacts", lambda *a, **k: calls.append("export"))
    return calls


def test_run_out_is_a_file(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _no_work(monkeypatch)
    (tmp_path / "results.jsonl").write_text("")
    code, _, err = cli("run", "-d", "local", "-m", "efficientvit-b0", "-t", "onnx", "--out", tmp_path / "results.jsonl")
    assert code == 2 and "is a file, not a folder" in one_error_line(err) and calls == []


def test_run_results_file_is_a_folder(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _no_work(monkeypatch)
    (tmp_path / "adhoc.jsonl").mkdir()
    code, _, err = cli("run", "-d", "local", "-m", "efficientvit-b0", "-t", "onnx", "--out", tmp_path)
    assert code == 2 and "adhoc.jsonl is a folder" in one_error_line(err) and calls == []


@pytest.mark.parametrize("option", ["--out", "--export-dir"])
def test_run_unwritable_folders(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, option: str) -> None:
    calls = _no_work(monkeypatch)
    other = "--export-dir" if option == "--out" else "--out"
    code, _, err = cli("run", "-d", "local", "-m", "efficientvit-b0", "-t", "onnx", option, UNWRITABLE,
                       other, tmp_path / "x")
    assert code == 2 and f"{option} {UNWRITABLE}" in one_error_line(err) and calls == []


def _results(tmp_path: Path, **kw: object) -> Path:
    store = ResultStore(tmp_path / "r.jsonl")
    store.append(BenchRecord(device_serial="PX4", device={"model": "Pixel 4"}, model="efficientvit-b0",
                             resolution="224x224", target="tflite", precision="fp32", artifact_sha256="ab" * 32,
                             runner="python-litert", threads=1, runs=3, warmup=1,
                             stats={"median_ms": 1.0, "p90_ms": 1.2, "mean_ms": 1.0, "n": 3}, **kw))  # type: ignore
    return store.path


@pytest.mark.parametrize("where", ["folder", "unwritable", "file-as-parent"])
def test_report_out_problems_are_one_line(cli: Cli, tmp_path: Path, where: str) -> None:
    results = _results(tmp_path)
    out = {"folder": tmp_path, "unwritable": UNWRITABLE / "r.md", "file-as-parent": results / "r.md"}[where]
    code, _, err = cli("report", results, "--out", out)
    assert code == 2, err
    one_error_line(err)


def test_report_on_a_binary_file_is_one_line(cli: Cli, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blob = tmp_path / "model.jsonl"
    rng = random.Random(0)
    blob.write_bytes(bytes(range(256)) * 400 + b"\n".join(rng.randbytes(64) for _ in range(2000)))
    code, _, err = cli("report", blob)
    assert code == 2 and "is not a results file" in one_error_line(err)
    with pytest.raises(InvalidInputError, match="not a results file"):
        load_results([blob])


def test_torn_lines_are_one_summary_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = _results(tmp_path)
    with open(path, "a") as f:
        f.write('{"torn": \n' * 50)
    assert len(list(ResultStore(path).records())) == 1
    warnings = [r for r in caplog.records if "incomplete" in r.getMessage()]
    assert len(warnings) == 1 and "skipped 50 incomplete lines" in warnings[0].getMessage()
    (tmp_path / "killed.jsonl").write_text('{"device_serial": "PX')  # a first write cut by kill -9: no error
    assert list(ResultStore(tmp_path / "killed.jsonl").records()) == []


# --- Markdown report: device strings are data -----------------------------------------------------------------------


def test_markdown_escapes_device_supplied_strings(tmp_path: Path) -> None:
    evil = "**Pwn** <img src=x onerror=alert(1)> [link](http://x) `code` | col"
    path = _results(tmp_path)
    rec = next(iter(ResultStore(path).records()))
    rec.device = {"model": evil, "soc": "_sm_ #1"}
    rec.device_serial = "<script>"
    md = report.render([rec], "md")
    assert "<img" not in md and "<script>" not in md and "**Pwn**" not in md and "[link](" not in md
    assert "&lt;img src=x onerror=alert(1)&gt;" in md and "\\*\\*Pwn\\*\\*" in md and "\\| col" in md
    html_text = report.render([rec], "html")
    assert "&lt;script&gt;" in html_text and "\\*" not in html_text  # HTML escaping unchanged


# --- checkpoints and calibration folders ---------------------------------------------------------------------------


class _Evil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("touch PWNED",))


class _Custom:
    pass


@pytest.mark.parametrize(("payload", "global_name"), [(_Evil(), "posix.system"),
                                                      (_Custom(), "test_hostile_input._Custom")])
def test_pickle_refusal_names_the_blocked_global(tmp_path: Path, payload: object, global_name: str) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"w": torch.zeros(1), "x": payload}, path)
    with pytest.raises(CheckpointError) as info:
        read_state_dict(path)
    message = str(info.value)
    assert global_name.split(".")[-1] in message and "weights_only=True refuses" in message
    assert message.endswith("torch.save(model.state_dict(), path)")  # whole, not cut mid-word
    assert not list(tmp_path.rglob("PWNED")) and not Path("PWNED").exists()


def test_calib_file_is_not_a_folder(tmp_path: Path) -> None:
    calib = tmp_path / "images.txt"
    calib.write_text("x")
    with pytest.raises(InvalidInputError, match="is not a folder"):
        api.check_request("efficientvit-b0", ExportOptions("onnx", 224, "int8", tmp_path / "out", calib=calib))
    with pytest.raises(InvalidInputError, match="calibration count must be from 1 to"):
        api.check_request("efficientvit-b0", ExportOptions("onnx", 224, "int8", tmp_path / "out", calib_count=10**9))


# --- SIGINT / SIGTERM -----------------------------------------------------------------------------------------------

_SLOW_BENCH = """
import sys, time
from effvit_deploy.cli import bench
def slow(*args, **kwargs):
    print("exporting", file=sys.stderr, flush=True)
    time.sleep(120)
bench.engine.export_artifacts = slow
bench.open_devices = lambda specs, **kw: []
bench.engine.plan_sweep = lambda devices, spec, options: []
bench.main(["run", "-d", "local", "-m", "efficientvit-b0", "-t", "onnx", "--out", sys.argv[1],
            "--export-dir", sys.argv[1], "-v"])  # -v: the "exporting" line is not captured as converter noise
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_bench_interrupt_prints_the_line_then_exits_130(tmp_path: Path, sig: signal.Signals) -> None:
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_BENCH, str(tmp_path)], stderr=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[1])
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 120
        while "exporting" not in proc.stderr.readline():
            assert proc.poll() is None and time.monotonic() < deadline
        proc.send_signal(sig)
        err = proc.stderr.read()
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130
    assert err.strip().splitlines()[-1] == "interrupted: finished results are kept", err


# --- the same class elsewhere: a folder where a file is expected ---------------------------------------------------


def test_folder_given_as_sweep_checkpoint_or_results(tmp_path: Path, cli: Cli) -> None:
    folder = tmp_path / "quick.toml"
    folder.mkdir()
    code, _, err = cli("run", "-d", "local", "--sweep", folder)
    assert code == 2 and "is a folder, not a file" in one_error_line(err)
    with pytest.raises(InvalidInputError, match="is a folder, not a file"):
        api.check_request("efficientvit-b0", ExportOptions("onnx", 224, out_dir=tmp_path / "o", checkpoint=folder))
    with pytest.raises(InvalidInputError, match="cannot read results file"):
        list(ResultStore(folder).records())
