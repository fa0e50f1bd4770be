"""Output locations checked before any work: a measurement or conversion must never be lost to an unwritable path.

Both checks create what is missing (as the real write would) and prove writability with a temp file that is removed
at once, so a read-only folder, a file where a folder is expected (or the reverse) is one line naming the path and
the option to change, raised before the first export or measurement.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import InvalidInputError


def check_output_folder(folder: str | os.PathLike[str], option: str) -> Path:
    """Create `folder` if needed and prove a file can be created in it.

    Raises:
        InvalidInputError: it is a file, cannot be created, or is not writable (the message names `option`).
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise InvalidInputError(f"{option} {folder} is a file, not a folder; pass a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test."):
            pass
    except OSError as exc:
        raise InvalidInputError(f"{option} {folder}: cannot write there ({_reason(exc)}); pass a writable folder or "
                                "fix its permissions") from None
    return folder


def check_output_file(path: str | os.PathLike[str], option: str) -> Path:
    """The folder of `path` is writable and `path` is not a folder, nor an existing file we may not write.

    Raises:
        InvalidInputError: one line naming the path, the problem and `option`.
    """
    path = Path(path)
    if path.is_dir():
        raise InvalidInputError(f"{option} {path} is a folder; pass a file name such as {path / 'report.md'}")
    check_output_folder(path.parent, f"{option} {path}: folder")
    if path.exists() and not os.access(path, os.W_OK):
        raise InvalidInputError(f"{option} {path} exists and is not writable; fix its permissions or pass another "
                                "file")
    return path


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__
