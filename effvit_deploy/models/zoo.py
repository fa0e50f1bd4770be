"""The model zoo manifest (`models/zoo.toml`): which checkpoint file each model loads, and where it comes from."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from ..errors import InvalidInputError

ZOO_DIR = Path(__file__).resolve().parents[2] / "models"


@dataclass(frozen=True)
class ZooEntry:
    name: str
    file: str
    layout: str  # "official", "timm" or "torchvision"
    source: str
    top1: float | None
    sha256: str  # "" = not recorded
    miou: float | None = None  # segmentation models: the published val mIoU


def load_zoo(zoo_dir: Path = ZOO_DIR) -> dict[str, ZooEntry]:
    """Parse `zoo.toml`; a malformed file is an InvalidInputError naming it."""
    path = zoo_dir / "zoo.toml"
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInputError(f"{path} is not valid TOML ({exc}); fix or delete it") from None
    entries = {}
    for name, row in data.get("models", {}).items():
        try:
            entries[name] = ZooEntry(
                name, row["file"], row["layout"], row["source"], row.get("top1"), row.get("sha256", ""), row.get("miou")
            )
        except KeyError as exc:
            raise InvalidInputError(f"{path}: model {name!r} lacks key {exc}; see the other entries") from None
    return entries


def find_checkpoint(name: str, zoo_dir: Path = ZOO_DIR) -> Path | None:
    """The zoo checkpoint for `name` (or its linear twin, for `-softmax`) if the user placed it in `zoo_dir`."""
    entry = load_zoo(zoo_dir).get(name.removesuffix("-softmax"))
    if entry is None:
        return None
    path = zoo_dir / entry.file
    return path if path.is_file() else None
