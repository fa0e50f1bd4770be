"""Quiet by default: `effvit-bench run` shows progress and results, not the converters' own output (`-v` does)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

NOISE = ("FutureWarning", "Estimated count of arithmetic ops", "absl::InitializeLog", "_pytree.py")


def _bench(tmp: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "effvit_deploy.cli.bench", "run", "--device", "local", "--model", "efficientvit-b0",
            "--resolution", "64", "--target", "tflite", "--runs", "2", "--warmup", "1", "--out", str(tmp / "r"),
            "--export-dir", str(tmp / "e"), *extra]
    return subprocess.run(argv, capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_bench_run_is_quiet_unless_verbose(tmp_path: Path) -> None:
    loud = _bench(tmp_path / "loud", "-v")
    assert loud.returncode == 0, loud.stderr[-2000:]
    assert any(word in loud.stderr for word in NOISE), "the converters printed nothing: the test proves nothing"
    quiet = _bench(tmp_path / "quiet")
    assert quiet.returncode == 0, quiet.stderr[-2000:]
    assert not [line for line in quiet.stderr.splitlines() if any(word in line for word in NOISE)], quiet.stderr
    assert "1 measured, 0 failed" in quiet.stderr and "sweep adhoc" in quiet.stderr
    leftovers = [p.name for p in (tmp_path / "quiet" / "e").iterdir() if p.name.startswith(".")]
    assert leftovers == []  # the log is removed after a clean run, and nothing goes to /tmp
