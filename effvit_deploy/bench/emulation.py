"""Runs that do not execute on the hardware they describe: a foreign-arch runner folder under qemu-user here, or a
device that declares itself emulated. Their timings are emulator timings, never phone latency.

- Local: an aarch64 folder (runners.json `emulation`: qemu binary, cpu model, glibc sysroot) runs on this x86-64 host
  through a launcher script `exec QEMU -cpu CPU -L SYSROOT BINARY "$@"`, so the rest of the harness (taskset, env
  LD_LIBRARY_PATH=..., output files) is unchanged. qemu passes the environment on to the guest program.
- adb: a device whose properties say it is emulated: `ro.kernel.qemu=1` (the Android SDK emulator) or
  `ro.effvit.emulated=HOW` (the test emulator's ARM64 profile, running pushed binaries through qemu-user). A real
  phone has neither.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shlex
import tempfile
from pathlib import Path
from typing import Any

from ..errors import MissingFileError
from ..runners import folder as runner_folder

EMULATED_PROP = "ro.effvit.emulated"
ANDROID_EMULATOR_PROP = "ro.kernel.qemu"
# What the records say next to emulated timings (report tables show it too).
NOT_PHONE_LATENCY = "emulated: timings are not phone latency"


def host_arch() -> str:
    return platform.machine()


def local_emulation(runner_dir: Path | None) -> dict[str, Any] | None:
    """The folder's `emulation` block when it is built for another arch than this host's, else None."""
    data = runner_folder.read(runner_dir)
    if data is None or data.get("arch") in (None, host_arch()):
        return None
    emu = data.get("emulation")
    return emu if isinstance(emu, dict) else None


def local_how(emu: dict[str, Any]) -> str:
    return f"{emu.get('qemu_package', 'qemu-user')} user-mode, -cpu {emu.get('cpu', 'max')}, on {host_arch()}"


def local_facts(facts: dict[str, Any], runner_dir: Path | None) -> dict[str, Any]:
    """This machine's facts for runs of a foreign-arch folder under qemu: the model names the emulation (so records
    and report columns never mix emulated with native timings) and `emulated` says how."""
    emu = local_emulation(runner_dir)
    if emu is None:
        return facts
    data = runner_folder.read(runner_dir) or {}
    arch = data.get("arch")
    return {**facts, "model": f"{facts.get('model') or 'this machine'} · {arch} under qemu",
            "emulated": local_how(emu), "emulated_abi": data.get("abi")}


def device_how(facts: dict[str, Any]) -> str | None:
    """How a device is emulated (device_facts `emulated`), None for real hardware."""
    how = facts.get("emulated")
    return str(how) if how else None


def launcher(binary: Path, emu: dict[str, Any]) -> Path:
    """A script that runs the aarch64 `binary` under the folder's qemu (written once per binary + emulation).

    Raises:
        MissingFileError: the recorded qemu or sysroot is gone (the folder was built on another machine).
    """
    qemu, sysroot = Path(str(emu.get("qemu", ""))), Path(str(emu.get("sysroot", "")))
    for what, path in (("qemu-user", qemu), ("sysroot", sysroot)):
        if not path.exists():
            raise MissingFileError(f"{binary.parent}: its {what} {path} is missing on this machine; rebuild the "
                                   "folder here with `effvit-bench runners build --arch aarch64`")
    binary = binary.resolve()
    body = (f"#!/bin/sh\nexec {shlex.quote(str(qemu))} -cpu {shlex.quote(str(emu.get('cpu', 'max')))} "
            f"-L {shlex.quote(str(sysroot))} {shlex.quote(str(binary))} \"$@\"\n")
    key = hashlib.sha256(body.encode()).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / f"effvit-qemu-{os.getuid()}" / f"{binary.name}-{key}"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(body)
        tmp.chmod(0o755)
        os.replace(tmp, path)
    return path


def mark(rec: Any, how: str | None) -> None:
    """Flag a record as made under emulation (`extra.emulated`, `extra.emulation`, `extra.latency_note`)."""
    if how:
        rec.extra.update(emulated=True, emulation=how, latency_note=NOT_PHONE_LATENCY)
