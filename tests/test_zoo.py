"""The zoo manifest names real registry models and finds checkpoints the user placed beside it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from effvit_deploy import models, zoo
from effvit_deploy.errors import InvalidInputError


def test_shipped_zoo_names_registry_models() -> None:
    entries = zoo.load_zoo()
    assert {"efficientvit-b1", "efficientnet-b0", "mobilenetv3-large"} <= set(entries)
    assert set(entries) <= set(models.names())
    assert {e.layout for e in entries.values()} <= {"official", "timm", "torchvision"}


def test_find_checkpoint_placed_by_user(tmp_path: Path) -> None:
    (tmp_path / "zoo.toml").write_text(
        '[models.efficientvit-b0]\nfile = "b0.pt"\nlayout = "official"\nsource = "test"\n'
    )
    assert zoo.find_checkpoint("efficientvit-b0", tmp_path) is None
    torch.save(models.build("efficientvit-b0").state_dict(), tmp_path / "b0.pt")
    assert zoo.find_checkpoint("efficientvit-b0", tmp_path) == tmp_path / "b0.pt"
    assert zoo.find_checkpoint("efficientvit-b0-softmax", tmp_path) == tmp_path / "b0.pt"
    assert zoo.find_checkpoint("mobilenetv2", tmp_path) is None


def test_malformed_zoo_is_named(tmp_path: Path) -> None:
    (tmp_path / "zoo.toml").write_text("[models.x]\nfile = \n")
    with pytest.raises(InvalidInputError, match="zoo.toml is not valid TOML"):
        zoo.load_zoo(tmp_path)


def test_zoo_table_on_meta_device_matches_real_profile() -> None:
    from effvit_deploy.models.table import to_markdown, zoo_rows

    rows = zoo_rows(["224", "64x96"], ["efficientvit-b0", "efficientnet-b1"])
    for row in rows:
        params, macs = models.profile(models.build(row.name), "64x96")
        assert row.params == params and row.gmacs["64x96"] == macs / 1e9
    assert rows[1].measured_at_published == pytest.approx(0.687, rel=0.01)  # torchvision's figure, at 240
    table = to_markdown(rows)
    assert table.count("\n") == 3 and "| efficientvit-b0 | 3.41 | 0.102 |" in table
