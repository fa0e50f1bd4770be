"""manifest.json: one per export folder, `{"artifacts": {<file name>: <entry>}}`, plus the cache key and file naming.

The bench and the README tables read only these files, so everything they need about an artifact is in its entry.
Updates take an `fcntl.flock` on `.manifest.lock` in the folder and rewrite the file atomically, so parallel exports
into one folder never lose each other's entries and a reader never sees a half-written file.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..fileio import atomic_write_json

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
LOCK_NAME = ".manifest.lock"
SCHEMA_VERSION = 1


def artifact_name(target: str, precision: str, suffix: str, *, nhwc: bool = False, optimize: bool = True) -> str:
    """`<target>-<precision>[-nhwc][-noopt]<suffix>`, e.g. `tflite-fp32-nhwc.tflite`."""
    name = f"{target}-{precision}"
    if nhwc:
        name += "-nhwc"
    if not optimize:
        name += "-noopt"
    return name + suffix


def cache_key(fields: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of everything that determines an artifact's bytes."""
    blob = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def read_manifest(folder: str | Path) -> dict[str, Any]:
    """The folder's manifest, `{"artifacts": {}}` when absent; an unreadable file is logged and treated as empty."""
    path = Path(folder) / MANIFEST_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"artifacts": {}}
    except (OSError, ValueError) as exc:
        log.warning("manifest %s is unreadable (%s): treating it as empty", path, exc)
        return {"artifacts": {}}
    if not isinstance(data, dict) or not isinstance(data.get("artifacts"), dict):
        log.warning("manifest %s has no 'artifacts' table: treating it as empty", path)
        return {"artifacts": {}}
    return data


def read_entry(folder: str | Path, artifact: str) -> dict[str, Any] | None:
    """The manifest entry of `artifact` in `folder`, or None."""
    entry = read_manifest(folder)["artifacts"].get(artifact)
    return entry if isinstance(entry, dict) else None


@contextmanager
def folder_lock(folder: str | Path) -> Iterator[None]:
    """Exclusive `flock` on the folder's lock file (blocks until free; released on exit, also if the process dies)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def put_entry_locked(folder: str | Path, artifact: str, entry: dict[str, Any]) -> None:
    """Set `artifact`'s entry; the caller holds `folder_lock(folder)`."""
    data = read_manifest(folder)
    data["schema"] = SCHEMA_VERSION
    data["artifacts"][artifact] = entry
    path = Path(folder) / MANIFEST_NAME
    atomic_write_json(path, data)
    path.chmod(0o644)  # fileio's mkstemp leaves 0600; the manifest is read by other tools and users


def put_entry(folder: str | Path, artifact: str, entry: dict[str, Any]) -> None:
    """Set `artifact`'s entry in the folder's manifest.json, under the folder lock."""
    with folder_lock(folder):
        put_entry_locked(folder, artifact, entry)
