"""Failures the library foresees map to exit codes in one place: a failed artifact is a FAILED row and exit 1."""

from __future__ import annotations

from pathlib import Path

import pytest

from effvit_deploy.cli.export import main
from effvit_deploy.errors import ArtifactError, ConversionError, EffvitError, QuantizationError, RunnerError
from effvit_deploy.export.targets.onnx import int8 as onnx_int8
from effvit_deploy.export.verify import VerificationError


def test_every_artifact_failure_exits_1_and_bad_input_exits_2() -> None:
    for failure in (ConversionError, QuantizationError, VerificationError, RunnerError):
        assert issubclass(failure, ArtifactError) and failure.exit_code == 1
    assert EffvitError.exit_code == 2


@pytest.mark.slow
def test_forced_quantizer_failure_is_a_failed_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The ONNX quantizer finds no attention islands: its own contract check raises, deep inside the int8 pipeline.
    monkeypatch.setattr(onnx_int8, "attention_islands", lambda proto: [])
    argv = ["--target", "onnx", "--model", "efficientvit-b0", "--resolution", "64", "--precision", "int8",
            "--calib-count", "2", "--out", str(tmp_path)]
    with pytest.raises(SystemExit) as info:
        main(argv)
    out, err = capsys.readouterr()
    assert info.value.code == 1, err
    assert "FAILED quantization failed" in out
    assert "error: found 0 attention islands in the ONNX graph" in err
    assert "Traceback" not in err and "Traceback" not in out
    assert not list(tmp_path.rglob("*.onnx")) and not list(tmp_path.rglob("*.tmp*"))
