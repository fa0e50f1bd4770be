"""Ctrl-C and SIGTERM that cannot be lost: the handler raises KeyboardInterrupt and also remembers the signal.

Why remember: CPython runs a signal handler at the next bytecode, which is sometimes inside a garbage-collector
callback (jax, which litert-torch imports, registers one), and an exception raised there is reported as "ignored"
and dropped, so a plain KeyboardInterrupt can vanish and a long conversion would run on to the end (seen on about
one in three Ctrl-Cs during a TFLite export). Commands call `check()` at their own safe points (between stages, after
each artifact) to raise the interrupt the handler could not deliver.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

_received = threading.Event()
_announced = threading.Event()


def _handler(signum: int, frame: FrameType | None) -> None:
    _received.set()
    raise KeyboardInterrupt  # SIGTERM too: the default would kill Python without running `finally` blocks


def install() -> None:
    """Route SIGINT and SIGTERM to the remembering handler (main thread only, as `signal.signal` requires)."""
    _received.clear()
    _announced.clear()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _handler)


def check() -> None:
    """Raise KeyboardInterrupt if a signal arrived, even one whose first KeyboardInterrupt was swallowed."""
    if _received.is_set():
        raise KeyboardInterrupt


def announced() -> None:
    """A command printed its own "interrupted: ..." line (so `run_app` does not add the generic one)."""
    _announced.set()


def was_announced() -> bool:
    return _announced.is_set()
