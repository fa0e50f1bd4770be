"""`effvit-export` end to end: CliRunner runs with the in-file backend, the exit-code mapping of `main`, a real
console-script subprocess (bad input -> exit 2 and one line), and Ctrl-C / SIGTERM mid-conversion leaving nothing."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from effvit_deploy.cli.export import app, main
from effvit_deploy.export import manifest as mf

from .test_export_pipeline import B0_DIR, FakeBackend

EFFVIT_EXPORT = shutil.which("effvit-export", path=str(Path(sys.executable).parent))


def _run_main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Call the console-script entry point in-process: (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as info:
        main(argv)
        raise SystemExit(0)
    captured = capsys.readouterr()
    code = info.value.code if isinstance(info.value.code, int) else 1
    return code, captured.out, captured.err


BASE = ["--target", "fake", "--model", "efficientvit-b0", "--resolution", "64", "--no-optimize"]


def test_help_lists_the_options() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for option in (
        "--target",
        "--model",
        "--resolution",
        "--precision",
        "--checkpoint",
        "--out",
        "--no-optimize",
        "--nhwc",
        "--force",
        "--calib",
        "--calib-count",
        "--int8-attention",
    ):
        assert option in result.output


def test_export_table_then_cached(tmp_path: Path, fake: FakeBackend) -> None:
    args = [*BASE, "--resolution", "64x96", "--out", str(tmp_path)]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    for word in ("efficientvit-b0", "64x64", "64x96", "fake", "fp32", "max|Δ| 0.0e+00"):
        assert word in first.stdout
    assert (tmp_path / "efficientvit-b0" / "64x96" / "fake-fp32-noopt.pt").is_file()
    assert fake.converted == 2
    second = CliRunner().invoke(app, args)
    assert second.exit_code == 0 and second.stdout.count("cached │") == 2 and fake.converted == 2
    forced = CliRunner().invoke(app, [*args, "--force"])
    assert forced.exit_code == 0 and "cached │" not in forced.stdout and fake.converted == 4
    assert f"artifacts and manifest.json in {tmp_path}/efficientvit-b0/64x96/" in forced.stdout


def test_progress_names_each_artifact(tmp_path: Path, fake: FakeBackend) -> None:
    result = CliRunner().invoke(app, [*BASE, "--out", str(tmp_path)])
    assert result.exit_code == 0
    assert "efficientvit-b0 64x64 → fake fp32 no-optimize" in result.stderr


def test_verification_failure_exits_1_with_numbers(tmp_path: Path, fake: FakeBackend) -> None:
    fake.perturb = 0.01
    result = CliRunner().invoke(app, [*BASE, "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert "failed verification: max_abs=0.01" in result.stderr
    assert "FAILED" in result.stdout
    assert not list(tmp_path.rglob("*.pt")) and not list(tmp_path.rglob("*.tmp*"))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (["--precision", "fp64"], "error: unknown precision 'fp64'; choose one of: fp32, fp16, int8"),
        (["--resolution", "100"], "error: resolution 100x100 is invalid"),
        (["--model", "nope"], "error: unknown model 'nope'; choose one of:"),
        (["--checkpoint", "missing.pt"], "error: checkpoint missing.pt does not exist"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    tmp_path: Path, fake: FakeBackend, capsys: pytest.CaptureFixture[str], change: list[str], message: str
) -> None:
    code, out, err = _run_main([*BASE, "--out", str(tmp_path), *change], capsys)
    assert code == 2
    assert err.startswith(message) and err.count("\n") == 1, err
    assert fake.converted == 0 and not any(p.is_file() for p in tmp_path.rglob("*"))


def test_unreadable_checkpoint_exits_2(tmp_path: Path, fake: FakeBackend, capsys: pytest.CaptureFixture[str]) -> None:
    garbage = tmp_path / "weights.pt"
    garbage.write_bytes(b"not a checkpoint")
    code, _, err = _run_main([*BASE, "--out", str(tmp_path / "out"), "--checkpoint", str(garbage)], capsys)
    assert code == 2 and err.startswith(f"error: {garbage} is not a PyTorch checkpoint") and err.count("\n") == 1
    assert fake.converted == 0 and not any(p.is_file() for p in (tmp_path / "out").rglob("*"))


def test_unwritable_out_exits_2(tmp_path: Path, fake: FakeBackend, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = _run_main([*BASE, "--out", str(blocker / "out")], capsys)
    assert code == 2 and err.startswith(f"error: cannot write to output folder {blocker}/out") and err.count("\n") == 1


def test_one_bad_resolution_stops_before_any_export(
    tmp_path: Path, fake: FakeBackend, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, _ = _run_main([*BASE, "--resolution", "64x96", "--resolution", "65", "--out", str(tmp_path)], capsys)
    assert code == 2 and fake.converted == 0


def test_unknown_target_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run_main(["--target", "coreml", "--model", "efficientvit-b0", "--out", str(tmp_path)], capsys)
    assert code == 2 and "coreml" in err and "onnx" in err and err.count("\n") == 1


def test_console_script_bad_input_subprocess(tmp_path: Path) -> None:
    assert EFFVIT_EXPORT, "effvit-export is not installed in the venv (pip install -e .)"
    proc = subprocess.run(
        [
            EFFVIT_EXPORT,
            "--target",
            "onnx",
            "--model",
            "efficientvit-b0",
            "--resolution",
            "100",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: resolution 100x100 is invalid") and proc.stderr.count("\n") == 1
    assert proc.stdout == "" and not any(tmp_path.iterdir())


@pytest.mark.slow
def test_console_script_all_targets_b0(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The README command. Shares its output folder with test_export_pipeline's b0 exports: cached when both run."""
    assert EFFVIT_EXPORT
    out = tmp_path_factory.getbasetemp() / B0_DIR
    cmd = [EFFVIT_EXPORT, "--target", "all", "--model", "efficientvit-b0", "--resolution", "224", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env={**os.environ, "COLUMNS": "200"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    folder = out / "efficientvit-b0" / "224x224"
    names = {"onnx-fp32.onnx", "tflite-fp32.tflite", "executorch-fp32.pte"}
    assert names <= {p.name for p in folder.iterdir()}
    assert names <= set(mf.read_manifest(folder)["artifacts"])
    for target in ("onnx", "tflite", "executorch"):
        assert target in proc.stdout
    assert proc.stdout.count("efficientvit-b0") >= 3 and "max|Δ|" in proc.stdout


def test_missing_runtime_exits_2_before_any_work(tmp_path: Path) -> None:
    """A shadowing `litert_torch` package that fails to import stands in for an uninstalled runtime."""
    shim = tmp_path / "shim" / "litert_torch"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text('raise ImportError("No module named litert_torch")\n')
    out = tmp_path / "out"
    proc = subprocess.run(
        [EFFVIT_EXPORT, "--target", "tflite", "--model", "efficientvit-b0", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(shim.parent)},
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "pip install 'effvit-deploy[tflite]'" in proc.stderr, proc.stderr
    assert not any(p.is_file() for p in out.rglob("*"))


# ---------------------------------------------------------------------------------------------------------------------
# interrupts: a real, slow conversion in a subprocess
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupt_mid_conversion_leaves_no_artifact(tmp_path: Path, sig: signal.Signals) -> None:
    assert EFFVIT_EXPORT
    folder = tmp_path / "efficientvit-b0" / "224x224"
    proc = subprocess.Popen(
        [EFFVIT_EXPORT, "--target", "tflite", "--model", "efficientvit-b0", "--out", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        deadline = time.monotonic() + 240
        while not list(folder.glob(".tflite-fp32.*")):  # atomic_path's temp file: conversion has started
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "conversion never started"
            time.sleep(0.05)
        time.sleep(1.0)  # well inside the converter
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert not (folder / "tflite-fp32.tflite").exists()
    assert [p.name for p in folder.iterdir() if p.name not in (mf.LOCK_NAME,)] == []
