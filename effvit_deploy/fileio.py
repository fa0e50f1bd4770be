"""Atomic file writes and hashing: a killed run never leaves a half-written artifact, manifest or table behind.

Temp files carry their owner's pid (`.<stem>.<pid>-<random>.tmp<suffix>`). A run killed with -9 cannot remove its
own, so every later write into the same folder removes those whose owner is no longer alive (`remove_stale_temps`);
a live owner's temp file (a parallel export) is never touched.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# `.<stem>.<pid>-<random>.tmp<suffix>` (atomic_path) and `<prefix><pid>-<random>` folders (owned_temp_dir)
_OWNED = re.compile(r"^\..*\.(\d+)-[A-Za-z0-9_]+\.tmp(?:\.[^.]*)?$|^effvit-[a-z]+-(\d+)-[A-Za-z0-9_]+$")


@contextmanager
def atomic_path(final: str | Path) -> Iterator[Path]:
    """Yield a temp path in the destination folder; on success it is renamed onto `final`, on error deleted.

    The temp name keeps `final`'s suffix, because some writers (torch.onnx, litert) choose a format from it.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(final.parent)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.stem}.{os.getpid()}-", suffix=f".tmp{final.suffix}",
                                    dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; results should read like any other file
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


def remove_stale_temps(folder: str | Path) -> int:
    """Remove temp files and folders in `folder` whose owner process is gone (left by kill -9). Returns how many."""
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    for entry in entries:
        m = _OWNED.match(entry.name)
        if m is None or _alive(int(m[1] or m[2])):
            continue
        try:
            if entry.is_dir(follow_symlinks=False):
                import shutil

                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
            removed += 1
            log.info("removed %s, left by a run that no longer exists (pid %s)", entry.path, m[1] or m[2])
        except OSError:
            continue  # another process cleaned it first, or it is not ours to remove
    return removed


def owned_temp_dir(kind: str) -> tempfile.TemporaryDirectory[str]:
    """A temp folder named `effvit-<kind>-<pid>-...` in the system temp dir; a dead owner's is removed first."""
    remove_stale_temps(tempfile.gettempdir())
    return tempfile.TemporaryDirectory(prefix=f"effvit-{kind}-{os.getpid()}-")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(final: str | Path, data: bytes) -> None:
    with atomic_path(final) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(final: str | Path, text: str) -> None:
    atomic_write_bytes(final, text.encode("utf-8"))


def atomic_write_json(final: str | Path, obj: Any) -> None:
    atomic_write_text(final, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()
