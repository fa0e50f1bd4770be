"""Seeded fault injection for the emulated phone (opt-in: `AdbEmulator(..., chaos=Chaos(seed=1))` or `emu.chaos = ...`).

Every shell command the host opens and every file it pushes is one opportunity. With probability `rate` (for the
runner's command `runner_rate`, for a push `push_rate`: the rarer, more telling moments) an opportunity gets one
fault that fits it:

- shell, any command: `drop` (the connection is cut as the command is opened) or `stall` (it starts late);
- shell, the runner binary: also `kill` (SIGKILL to the runner process only, as Android's low-memory killer does,
  while the shell around it goes on and reports 137) and `drop-mid` (the connection is cut while it runs);
- push: `full` (the write fails with "No space left on device") or `drop` (the connection is cut mid-push).

After a fault the next `quiet` opportunities get none, so a harness that repairs the fault and retries is not hit
again in the same retry; a harness that does not repair it fails. A fault counts as injected only when it bit (a
`kill` whose runner had already exited is not counted). `injected` holds the counts per kind.
"""

from __future__ import annotations

import os
import random
import threading
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Chaos:
    """The fault plan of one emulated phone (thread-safe: the emulator serves streams from several threads)."""

    seed: int = 0
    rate: float = 0.1
    runner_rate: float = 0.6
    push_rate: float = 0.6
    quiet: int = 14
    runner_names: tuple[str, ...] = ("benchmark_model", "onnxruntime_perf_test", "executor_runner")
    stall_s: tuple[float, float] = (0.2, 0.8)
    kill_after_s: tuple[float, float] = (0.02, 0.15)
    injected: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()
        self._calm = 0

    def _pick(self, kinds: list[str], rate: float) -> str | None:
        with self._lock:
            if self._calm > 0:
                self._calm -= 1
                return None
            if self._rng.random() >= rate:
                return None
            self._calm = self.quiet
            return self._rng.choice(kinds)

    def _uniform(self, bounds: tuple[float, float]) -> float:
        with self._lock:
            return self._rng.uniform(*bounds)

    def count(self, kind: str) -> None:
        with self._lock:
            self.injected[kind] += 1

    def is_runner(self, command: str) -> bool:
        return any(f"/{name} " in command for name in self.runner_names)

    def on_shell(self, command: str) -> tuple[str, float] | None:
        """(fault, seconds) for a shell command about to start, or None."""
        runner = self.is_runner(command)
        kind = self._pick(["drop", "stall", "kill", "drop-mid"] if runner else ["drop", "stall"],
                          self.runner_rate if runner else self.rate)
        if kind is None:
            return None
        if kind in ("drop", "stall"):
            self.count(kind)  # a drop at open and a late start always bite
        seconds = self._uniform(self.stall_s if kind == "stall" else self.kill_after_s)
        return kind, seconds

    def on_push(self, path: str) -> str | None:
        kind = self._pick(["full", "drop-push"], self.push_rate)
        if kind is not None:
            self.count(kind)
        return kind

    def kill_runner(self, pgid: int) -> bool:
        """SIGKILL the runner processes of one shell command's process group; True when one was killed."""
        killed = False
        for pid in _pids_in_group(pgid):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
            except OSError:
                continue
            if any(os.path.basename(a) in self.runner_names for a in argv[:2]):
                try:
                    os.kill(pid, 9)
                    killed = True
                except ProcessLookupError:
                    pass
        return killed


def _pids_in_group(pgid: int) -> list[int]:
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid:  # field 5 of stat: the process group
                out.append(int(name))
        except (OSError, IndexError, ValueError):
            continue
    return out


__all__ = ["Chaos"]
