"""Converter noise goes to a log, not the user's terminal: what every command that exports shares.

The converters' C++ logs (absl, XNNPACK, cpuinfo, litert's "Estimated count of arithmetic ops") and library warnings
(torch's `isinstance(treespec, LeafSpec)` FutureWarning, many per export) are written straight to file descriptor 2
and would bury the progress display. `capture` points fd 2 at a log while a block runs and yields a stream to the
real stderr for the command's own lines. The log is a hidden temp file in the output folder (never in /tmp, where
nothing would remove it): deleted after a clean run, kept beside the artifact (`keep`) when one failed, and removed
by the next run if this one is killed (its name carries our pid, see `fileio.remove_stale_temps`). With `-v` nothing
is redirected.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import typer

from ..errors import EffvitError
from ..fileio import remove_stale_temps

LOG_NAME = "export.log"


@contextlib.contextmanager
def capture(enabled: bool, folder: Path) -> Iterator[tuple[TextIO, Path | None]]:
    """Send whatever lands on fd 2 inside the block to a log in `folder`; yield (real stderr, log path or None)."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # in-process test runners replace stderr with a buffer
        fd = None
    log_fd = None
    if enabled and fd is not None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            remove_stale_temps(folder)
            log_fd, log_name = tempfile.mkstemp(prefix=f".effvit-export.{os.getpid()}-", suffix=".tmp.log",
                                                dir=folder)
        except OSError:
            log_fd = None  # unwritable output folder: the request check says so in one line, unredirected
    if log_fd is None or fd is None:
        yield sys.stderr, None
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    real_stderr = os.fdopen(os.dup(saved), "w", buffering=1, encoding="utf-8")
    os.dup2(log_fd, fd)
    os.close(log_fd)
    log = Path(log_name)
    try:
        yield real_stderr, log
    except (EffvitError, KeyboardInterrupt, typer.Exit):
        log.unlink(missing_ok=True)  # explained by its own message
        raise
    except BaseException:
        # an unexpected crash: the C++ log may tell why
        print(f"converter output: {keep(log, folder / LOG_NAME)}", file=real_stderr)
        raise
    finally:
        sys.stderr.flush()
        os.dup2(saved, fd)
        os.close(saved)
        real_stderr.close()


def keep(log: Path, final: Path) -> Path:
    """Move the converter log to `final` (visible, beside the artifact); where it is if that fails."""
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(log, final)
        return final
    except OSError:
        return log
