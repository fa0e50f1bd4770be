"""One harness per device: an exclusive lock named after what the device is, not how it was addressed.

Two sweeps measuring one phone at the same time make both sets of timings worthless (they compete for the same
cores), and `adb:127.0.0.1:5555` and `adb:localhost:5555` are the same phone. So a device is identified by its
`ro.serialno` together with its kernel boot id (cheap clones share a serial number, but not a boot), and a sweep
holds `fcntl.flock` on a file named after that identity for as long as it uses the device.

Why flock: the kernel drops the lock when the holding process dies, however it dies (kill -9 included), so a crashed
run never leaves a device locked; the lock file itself is a few bytes that say who holds it, for the error message.
Limit: the lock is per machine; two machines sharing one phone through a remote adb server are not kept apart.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import time
from pathlib import Path

from ..errors import DeviceError

LOCK_DIR_ENV = "EFFVIT_LOCK_DIR"


def lock_dir() -> Path:
    """$EFFVIT_LOCK_DIR, else $XDG_CACHE_HOME/effvit-deploy/locks, else ~/.cache/effvit-deploy/locks."""
    if os.environ.get(LOCK_DIR_ENV):
        return Path(os.environ[LOCK_DIR_ENV])
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "effvit-deploy" / "locks"


def identity(serialno: str | None, boot_id: str | None, fallback: str) -> str:
    """What a device is: serial number + boot id when known; the address only when the device tells neither."""
    parts = [p.strip() for p in (serialno, boot_id) if p and p.strip() and p.strip().lower() != "unknown"]
    return "/".join(parts) if parts else f"address:{fallback}"


class DeviceLock:
    """An exclusive, non-blocking lock on one device identity; released by `release()` or when the process ends."""

    def __init__(self, ident: str, spec: str) -> None:
        self.ident, self.spec = ident, spec
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", ident)[:40]
        self.path = lock_dir() / f"{safe}-{hashlib.sha256(ident.encode()).hexdigest()[:12]}.lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise at once (a second harness must not wait and then measure under the first).

        Raises:
            DeviceError: another process holds it (the message names its pid, device spec and start time).
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise DeviceError(f"{self.spec} is in use by another effvit-bench ({holder}); one harness per device: "
                              "wait for it to finish, or stop it") from None
        except OSError:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}, {self.spec}, since {time.strftime('%H:%M:%S')}".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing the only descriptor drops the flock

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __del__(self) -> None:
        self.release()
