"""Checkpoints placed in the zoo folder are what `effvit-export` loads without --checkpoint (the models/ bug)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from effvit_deploy import models
from effvit_deploy.export import ExportOptions, api
from effvit_deploy.export.weights import seeded_model, weights_sha256
from effvit_deploy.fileio import sha256_file

from .test_cli_export import BASE, _run_main
from .test_export_pipeline import FakeBackend


def _zoo(folder: Path, *, sha256: str = "") -> Path:
    """A zoo folder with a manifest for efficientvit-b0 and a checkpoint whose weights differ from seed 0's."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "zoo.toml").write_text(
        f'[models.efficientvit-b0]\nfile = "b0-test.pt"\nlayout = "official"\nsource = "test"\nsha256 = "{sha256}"\n'
    )
    torch.manual_seed(123)
    torch.save({"state_dict": models.build("efficientvit-b0").state_dict()}, folder / "b0-test.pt")
    return folder / "b0-test.pt"


def _manifest_entry(out: Path, model: str = "efficientvit-b0") -> dict:
    manifest = json.loads((out / model / "64x64" / "manifest.json").read_text())
    (entry,) = manifest["artifacts"].values()
    return entry


def test_zoo_checkpoint_is_loaded_and_recorded(
    tmp_path: Path, fake: FakeBackend, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint = _zoo(tmp_path / "zoo")
    code, _, err = _run_main([*BASE, "--out", str(tmp_path / "out"), "--zoo", str(tmp_path / "zoo")], capsys)
    assert code == 0, err
    assert "weights zoo:b0-test.pt" in err
    entry = _manifest_entry(tmp_path / "out")
    assert entry["weights"] == "zoo:b0-test.pt"
    assert entry["checkpoint_sha256"] == sha256_file(checkpoint)
    loaded = torch.load(tmp_path / "out" / "efficientvit-b0" / "64x64" / entry["artifact"], weights_only=False)
    assert weights_sha256(loaded) == weights_sha256(seeded_model("efficientvit-b0", checkpoint))
    assert weights_sha256(loaded) != weights_sha256(seeded_model("efficientvit-b0"))


def test_zoo_found_from_working_directory_and_env(
    tmp_path: Path, fake: FakeBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkpoint = _zoo(tmp_path / "work" / "models")
    monkeypatch.chdir(tmp_path / "work")
    request = api.check_request("efficientvit-b0", ExportOptions("fake", 64, out_dir=tmp_path / "out", optimize=False))
    assert request.checkpoint == Path("models").absolute() / "b0-test.pt" and request.weights == "zoo:b0-test.pt"
    monkeypatch.chdir(tmp_path)  # no ./models here: the environment variable names the folder
    monkeypatch.setenv("EFFVIT_ZOO", str(checkpoint.parent))
    twin = api.check_request("efficientvit-b0-softmax", ExportOptions("fake", 64, out_dir=tmp_path / "out",
                                                                          optimize=False))
    assert twin.checkpoint == checkpoint and twin.weights == "zoo:b0-test.pt"  # the twin loads its model's file


def test_wrong_sha256_is_refused(tmp_path: Path, fake: FakeBackend, capsys: pytest.CaptureFixture[str]) -> None:
    _zoo(tmp_path / "zoo", sha256="0" * 64)
    code, _, err = _run_main([*BASE, "--out", str(tmp_path / "out"), "--zoo", str(tmp_path / "zoo")], capsys)
    assert code == 2 and err.count("\n") == 1, err
    assert "b0-test.pt has sha256" in err and "but the zoo records 0000000000000000" in err
    assert fake.converted == 0 and not (tmp_path / "out").exists()


def test_absent_file_and_random_weights_flag_use_seed_0(
    tmp_path: Path, fake: FakeBackend, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint = _zoo(tmp_path / "zoo")
    forced = [*BASE, "--out", str(tmp_path / "a"), "--zoo", str(tmp_path / "zoo"), "--random-weights"]
    code, _, err = _run_main(forced, capsys)
    assert code == 0 and "random weights (seed 0)" in err
    assert _manifest_entry(tmp_path / "a")["weights"] == "random weights (seed 0)"
    checkpoint.unlink()
    code, _, err = _run_main([*BASE, "--out", str(tmp_path / "b"), "--zoo", str(tmp_path / "zoo")], capsys)
    assert code == 0 and "random weights (seed 0)" in err
    entry = _manifest_entry(tmp_path / "b")
    assert entry["weights"] == "random weights (seed 0)" and entry["checkpoint_sha256"] is None


def test_zoo_bad_input_is_one_line(tmp_path: Path, fake: FakeBackend, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run_main([*BASE, "--out", str(tmp_path / "out"), "--zoo", str(tmp_path / "nowhere")], capsys)
    assert code == 2 and err.startswith(f"error: zoo folder {tmp_path}/nowhere (--zoo) is not a folder")
    checkpoint = _zoo(tmp_path / "zoo")
    both = [*BASE, "--out", str(tmp_path / "out"), "--checkpoint", str(checkpoint), "--random-weights"]
    code, _, err = _run_main(both, capsys)
    assert code == 2 and err.startswith("error: pass either a checkpoint or random weights") and err.count("\n") == 1
