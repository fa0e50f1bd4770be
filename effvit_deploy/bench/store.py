"""Append-only JSONL result store that survives a killed sweep and lets the next run resume.

Each measurement is one line (`BenchRecord.to_json`), appended and fsync'd before `append` returns, so a power cut
or Ctrl-C loses at most the line being written. That torn line is skipped with a warning when reading, and the next
append first ends it with a newline so new records start on a line of their own.

Several device workers (threads) of one sweep append to the same file: a per-path `threading.Lock` orders them, and
`fcntl.flock` keeps two processes (two sweeps writing one file) from interleaving bytes.

`done_keys()` returns the keys of *successful* records only: an error record documents a failure but does not mark
the configuration done, so re-running the sweep retries it.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

from ..errors import InvalidInputError, MissingFileError
from .records import BenchRecord

log = logging.getLogger(__name__)

_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def _reset_locks_after_fork() -> None:
    """A forked child has none of the parent's threads; locks they held would stay locked forever, so start fresh."""
    global _LOCKS_GUARD
    _LOCKS_GUARD = threading.Lock()
    _LOCKS.clear()


os.register_at_fork(after_in_child=_reset_locks_after_fork)


def _thread_lock(path: Path) -> threading.Lock:
    """One lock per real path, shared by every ResultStore object in this process."""
    key = os.path.realpath(path)
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(key, threading.Lock())


class ResultStore:
    """A JSONL file of `BenchRecord`s; safe to append from several threads and processes."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def append(self, record: BenchRecord) -> None:
        """Write `record` as one line, then flush and fsync it (and the directory when the file is new)."""
        line = (record.to_json() + "\n").encode()
        with _thread_lock(self.path):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            created = not self.path.exists()
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                try:
                    size = os.fstat(fd).st_size
                    if size > 0 and os.pread(fd, 1, size - 1) != b"\n":
                        # the previous writer died mid-line: end that line so ours stays parseable
                        log.warning("%s: last line was incomplete (killed mid-write?); starting a new line", self.path)
                        line = b"\n" + line
                    _write_all(fd, line)
                    os.fsync(fd)
                finally:
                    fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)
            if created:
                _fsync_dir(self.path.parent)

    def records(self) -> Iterator[BenchRecord]:
        """Every complete record in file order; incomplete (torn) lines are skipped with a warning.

        A missing file yields nothing (a store that has not been written yet). A line that is valid JSON but not a
        record raises InvalidInputError naming the file and line: that is a wrong file, not a killed writer.
        """
        if not self.path.exists():
            return
        try:
            with open(self.path, encoding="utf-8", errors="replace") as f:
                fcntl.flock(f.fileno(), fcntl.LOCK_SH)  # do not read a line another process is still writing
                try:
                    lines = f.readlines()
                finally:
                    fcntl.flock(f.fileno(), fcntl.LOCK_UN)
        except OSError as exc:  # unreadable (permissions), a folder named like a results file, …
            raise InvalidInputError(f"cannot read results file {self.path} ({exc.strerror or exc}); pass a readable "
                                    ".jsonl written by 'effvit-bench run'") from None
        torn: list[int] = []
        good = foreign = 0
        for number, raw in enumerate(lines, start=1):
            text = raw.strip()
            if not text:
                continue
            try:
                data = json.loads(text)
            except json.JSONDecodeError:
                torn.append(number)
                foreign += not text.startswith("{")  # a killed writer leaves the start of a record
                continue
            try:
                record = BenchRecord.from_dict(data)
            except InvalidInputError as exc:
                if not good:
                    raise InvalidInputError(f"{self.path}:{number}: {exc}: this is not a results file; pass a "
                                            ".jsonl written by 'effvit-bench run'") from None
                raise InvalidInputError(f"{self.path}:{number}: {exc}") from None
            good += 1
            yield record
        if not good and (foreign or len(torn) > 1):
            # nothing readable at all: a wrong file (binary, another format), not a killed writer
            raise InvalidInputError(f"{self.path} is not a results file: none of its {len(torn)} lines is a JSON "
                                    "record; pass a .jsonl written by 'effvit-bench run'")
        if torn:  # one summary line, not one per line (a damaged file can have thousands)
            where = f"line {torn[0]}" if len(torn) == 1 else f"lines {torn[0]}, …, {torn[-1]}"
            log.warning("%s: skipped %d incomplete line%s (killed mid-write?): %s", self.path, len(torn),
                        "s" * (len(torn) > 1), where)

    def __iter__(self) -> Iterator[BenchRecord]:
        return self.records()

    def done_keys(self) -> set[str]:
        """Keys of successful records; configurations whose only records are errors are not done."""
        return {rec.key for rec in self.records() if rec.ok}

    def done_keys_after(self, offset: int) -> tuple[set[str], int]:
        """Keys of successful records in the complete lines from byte `offset` on, and the offset to go on from.

        Cheap enough to call before every measurement: only what was appended since the last call is read, so a
        configuration another process finished meanwhile (same results file) is not measured a second time.
        """
        if not self.path.exists():
            return set(), offset
        with open(self.path, "rb") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_SH)
            try:
                f.seek(offset)
                data = f.read()
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)
        end = data.rfind(b"\n") + 1  # a line still being written is read next time
        keys = set()
        for raw in data[:end].splitlines():
            try:
                rec = BenchRecord.from_dict(json.loads(raw))
            except (ValueError, InvalidInputError):
                continue  # torn or foreign lines are reported by records()
            if rec.ok:
                keys.add(rec.key)
        return keys, offset + end


def load_results(paths: Iterable[str | os.PathLike[str]]) -> list[BenchRecord]:
    """Records from several result files merged in the given order; a directory means its `*.jsonl` files.

    Raises:
        MissingFileError: a path does not exist.
    """
    out: list[BenchRecord] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            files = sorted(path.glob("*.jsonl"))
        elif path.exists():
            files = [path]
        else:
            raise MissingFileError(f"results file {path} does not exist; pass files written by 'effvit-bench run'")
        for file in files:
            out.extend(ResultStore(file).records())
    return out


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _fsync_dir(directory: Path) -> None:
    """Make a newly created file's directory entry durable too (no-op where directories cannot be opened)."""
    try:
        dfd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)
