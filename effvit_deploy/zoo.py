"""The model zoo: which checkpoint file each model loads, where it comes from, and its published figures.

One manifest, `zoo.toml`, holds all of it. The package reads the copy it ships (`effvit_deploy/zoo.toml`, a
link to the repository's `models/zoo.toml`) for published figures and file names. Checkpoint *files* live in the
user's zoo folder, found in this order (never beside the installed package, which has no checkpoints):

1. an explicit folder (`--zoo DIR`, `zoo_dir=`),
2. the `EFFVIT_ZOO` environment variable,
3. `./models` when it holds a `zoo.toml` (a checkout of this repository, or a user's copy of the folder).

A `zoo.toml` inside the user's folder, when present, is the manifest used for that folder (a user can record digests
or add entries there); otherwise the shipped manifest names the files.

    choice = zoo.resolve_checkpoint("efficientvit-b1-softmax")   # the twin loads its model's file
    choice.path, choice.label                                    # (models/b1-r224.pt, "zoo:b1-r224.pt") or None
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from .errors import CheckpointError, InvalidInputError, MissingFileError
from .fileio import sha256_file

SHIPPED = Path(__file__).with_name("zoo.toml")
ZOO_ENV = "EFFVIT_ZOO"
MANIFEST = "zoo.toml"


@dataclass(frozen=True)
class Published:
    """Figures published for a model's weights: ImageNet top-1 or segmentation val mIoU (%), params and GMACs at
    `resolution`."""

    top1: float | None
    params: float | None
    gmacs: float | None
    resolution: int | None
    miou: float | None = None


@dataclass(frozen=True)
class ZooEntry:
    name: str
    file: str
    layout: str  # "official", "timm" or "torchvision"
    source: str
    sha256: str  # "" = not recorded
    published: Published

    @property
    def top1(self) -> float | None:
        return self.published.top1

    @property
    def miou(self) -> float | None:
        return self.published.miou


@dataclass(frozen=True)
class ZooCheckpoint:
    """A checkpoint the zoo supplies for a model: its path, digest and how manifests name it."""

    path: Path
    sha256: str
    entry: ZooEntry

    @property
    def label(self) -> str:
        return f"zoo:{self.entry.file}"


def load_zoo(zoo_dir: Path | None = None) -> dict[str, ZooEntry]:
    """Parse `zoo_dir/zoo.toml` (default and fallback: the shipped manifest); malformed -> InvalidInputError."""
    path = zoo_dir / MANIFEST if zoo_dir is not None and (zoo_dir / MANIFEST).is_file() else SHIPPED
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"{path} is not valid TOML ({exc}); fix or delete it") from None
    entries = {}
    for name, row in data.get("models", {}).items():
        try:
            published = Published(row.get("top1"), row.get("params"), row.get("gmacs"), row.get("at"), row.get("miou"))
            entries[name] = ZooEntry(name, row["file"], row["layout"], row["source"], row.get("sha256", ""), published)
        except KeyError as exc:
            raise InvalidInputError(f"{path}: model {name!r} lacks key {exc}; see the other entries") from None
    return entries


def published(name: str) -> Published | None:
    """Published figures of a model (a softmax twin has none of its own: None)."""
    entry = load_zoo().get(name)
    return entry.published if entry is not None else None


def zoo_folder(explicit: str | Path | None = None) -> Path | None:
    """The folder holding the user's checkpoints (see the module docstring), or None when there is none.

    Raises:
        MissingFileError: an explicit folder or `EFFVIT_ZOO` names a folder that does not exist.
    """
    for given, how in ((explicit, "--zoo"), (os.environ.get(ZOO_ENV) or None, ZOO_ENV)):
        if given is not None:
            folder = Path(given)
            if not folder.is_dir():
                raise MissingFileError(f"zoo folder {folder} ({how}) is not a folder; pass the folder that holds "
                                       "the checkpoints (and optionally a zoo.toml)")
            return folder
    default = Path.cwd() / "models"
    return default if (default / MANIFEST).is_file() else None


def find_checkpoint(name: str, zoo_dir: Path | None) -> Path | None:
    """The zoo checkpoint for `name` (or its linear twin, for `-softmax`) if the user placed it in `zoo_dir`."""
    if zoo_dir is None:
        return None
    entry = load_zoo(zoo_dir).get(name.removesuffix("-softmax"))
    if entry is None:
        return None
    path = zoo_dir / entry.file
    return path if path.is_file() else None


def resolve_checkpoint(name: str, zoo_dir: str | Path | None = None) -> ZooCheckpoint | None:
    """The checkpoint the zoo supplies for registry model `name`, digest-checked; None when the file is absent.

    Raises:
        MissingFileError: the zoo folder given does not exist.
        CheckpointError: the zoo records a sha256 and the file's differs (a different or damaged download).
    """
    folder = zoo_folder(zoo_dir)
    path = find_checkpoint(name, folder)
    if path is None or folder is None:
        return None
    entry = load_zoo(folder)[name.removesuffix("-softmax")]
    digest = sha256_file(path)
    if entry.sha256 and digest != entry.sha256.lower():
        raise CheckpointError(
            f"{path} has sha256 {digest[:16]}…, but the zoo records {entry.sha256[:16]}… for {entry.name}: it is not "
            "the file the zoo names; replace it, fix sha256 in zoo.toml, or pass --checkpoint/--random-weights"
        )
    return ZooCheckpoint(path, digest, entry)
