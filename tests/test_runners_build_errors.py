"""`effvit-bench runners build` bad input and missing prerequisites: one `error:` line, exit code 2, no folder."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from effvit_deploy.runners import compile as cc
from effvit_deploy.runners import fetch
from tests.bench_cli import exit_code


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = exit_code(*argv)
    err = capsys.readouterr().err
    return code, "\n".join(ln for ln in err.splitlines() if ln.startswith("error: "))


def test_unknown_arch(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, err = run(capsys, "runners", "build", "--arch", "mips", "--out", str(tmp_path / "r"))
    assert code == 2 and err == "error: --arch 'mips': this version builds x86_64, aarch64"
    assert not (tmp_path / "r").exists()


def test_missing_compiler(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cc.shutil, "which", lambda name: None)
    code, err = run(capsys, "runners", "build", "--out", str(tmp_path / "r"))
    assert code == 2 and err.startswith("error: C++ compiler g++ not found: apt-get install g++")
    assert not (tmp_path / "r").exists()


def test_missing_cross_compiler(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cc.shutil, "which", lambda name: None)
    code, err = run(capsys, "runners", "build", "--arch", "aarch64", "--out", str(tmp_path / "r"))
    assert code == 2 and err == ("error: aarch64 cross compiler aarch64-linux-gnu-g++-12 not found: apt-get install "
                                 "g++-12-aarch64-linux-gnu libc6-dev-arm64-cross (`make runners` installs it)")
    assert not (tmp_path / "r").exists()


def test_failed_download(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EFFVIT_RUNNER_CACHE", str(tmp_path / "cache"))  # nothing downloaded yet

    def offline(argv: list[str], **_kw: object) -> subprocess.CompletedProcess:
        return subprocess.CompletedProcess(argv, 100, "", "E: Failed to fetch http://deb.debian.org/debian "
                                                          "Temporary failure resolving 'deb.debian.org'\n")

    monkeypatch.setattr(fetch, "_run", offline)
    code, err = run(capsys, "runners", "build", "--target", "onnx", "--out", str(tmp_path / "r"))
    assert code == 2 and err.startswith("error: apt-get update for the sid/trixie lists failed: E: Failed to fetch")
    assert err.count("\n") == 0 and not (tmp_path / "r").exists()
