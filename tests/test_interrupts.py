"""cli.interrupts: a Ctrl-C whose KeyboardInterrupt is swallowed (as in a gc callback) is still raised by check()."""

from __future__ import annotations

import gc
import signal
from collections.abc import Iterator

import pytest

from effvit_deploy.cli import interrupts


@pytest.fixture
def installed() -> Iterator[None]:
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    interrupts.install()
    try:
        yield
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)
        interrupts._received.clear()  # noqa: SLF001 - leave no remembered signal for other tests


def test_signal_raises_keyboard_interrupt(installed: None) -> None:
    interrupts.check()  # nothing received yet
    for signum in (signal.SIGINT, signal.SIGTERM):
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signum)
    with pytest.raises(KeyboardInterrupt):  # remembered as well
        interrupts.check()


def test_interrupt_swallowed_in_a_gc_callback_is_raised_by_check(installed: None,
                                                                 recwarn: pytest.WarningsRecorder) -> None:
    """CPython drops exceptions raised in gc callbacks; jax registers one, and a handler can run inside it."""
    def callback(phase: str, info: dict) -> None:
        if phase == "start":
            signal.raise_signal(signal.SIGINT)  # the handler runs here; its KeyboardInterrupt is "ignored"

    gc.callbacks.append(callback)
    try:
        gc.collect()  # returns normally: the interrupt did not get through
    finally:
        gc.callbacks.remove(callback)
    with pytest.raises(KeyboardInterrupt):
        interrupts.check()
