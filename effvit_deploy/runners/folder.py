"""runners.json: what a runner folder holds, and the ABI check the harness does before pushing anything.

    {"schema": 1, "arch": "x86_64", "abi": "x86_64", "created_at": "...",
     "runners": {"tflite": {"binary": "benchmark_model", "runtime": "tflite", "runtime_version": "2.14.0",
                            "libraries": ["_pywrap_tensorflow_interpreter_wrapper.so"], "notes": "...",
                            "sha256": "...", "build_key": "...", "sources": [{"name", "version", "sha256"}]}, ...}}

A folder without runners.json (binaries a user collected) is still accepted; it just cannot be ABI-checked.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from ..errors import DeviceError, InvalidInputError

FILE_NAME = "runners.json"
ARCH_OF_ABI = {"arm64-v8a": "aarch64", "x86_64": "x86_64"}  # ro.product.cpu.abi -> `runners build --arch`
SCHEMA = 1


def read(folder: Path | None) -> dict[str, Any] | None:
    """The folder's runners.json, or None when there is none.

    Raises:
        InvalidInputError: the file exists but is not a runners.json this version understands.
    """
    if folder is None or not (Path(folder) / FILE_NAME).is_file():
        return None
    path = Path(folder) / FILE_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"{path} is unreadable ({exc}); rebuild it with `effvit-bench runners build`") from None
    if not isinstance(data, dict) or not isinstance(data.get("runners"), dict) or data.get("schema", 0) > SCHEMA:
        raise InvalidInputError(f"{path} is not a runners.json of this effvit-deploy; rebuild it with "
                                "`effvit-bench runners build`")
    return data


def runner_info(folder: Path | None, target: str) -> dict[str, Any] | None:
    """The runners.json entry for a target (None without runners.json or entry)."""
    data = read(folder)
    entry = (data or {}).get("runners", {}).get(target)
    return entry if isinstance(entry, dict) else None


def for_abi(folder: Path | None, device_abi: str | None) -> Path | None:
    """`folder`, or its subfolder built for `device_abi` when `folder` holds several runner folders (e.g.
    build/runners with x86_64/ and aarch64/): one --runner-dir serves every device of a sweep."""
    if folder is None or not device_abi or (Path(folder) / FILE_NAME).is_file() or not Path(folder).is_dir():
        return folder
    for sub in sorted(p for p in Path(folder).iterdir() if (p / FILE_NAME).is_file()):
        if (read(sub) or {}).get("abi") == device_abi:
            return sub
    return folder


def check_abi(folder: Path | None, device_abi: str | None, device: str, *, can_emulate: bool = False) -> None:
    """Refuse a runner folder built for another ABI than the device's `ro.product.cpu.abi`.

    `can_emulate`: the device runs foreign folders that carry an `emulation` block (this machine, under qemu-user).

    Raises:
        DeviceError: the ABIs differ (one line naming both and the build command).
    """
    data = read(folder)
    if data is None or not data.get("abi") or not device_abi:
        return
    if can_emulate and isinstance(data.get("emulation"), dict):
        return
    if str(data["abi"]) != str(device_abi):
        raise DeviceError(f"--runner-dir {folder} holds runners for {data['abi']} but {device} is {device_abi} "
                          f"(ro.product.cpu.abi); build runners for it: effvit-bench runners build --arch "
                          f"{ARCH_OF_ABI.get(str(device_abi), device_abi)} --out DIR")


def swap_in(staged: Path, out: Path) -> None:
    """Replace the runner folder `out` by `staged` (the old one is removed only after the rename succeeded)."""
    old = None
    if out.exists():
        old = out.parent / f".{out.name}-old-{os.getpid()}"
        os.replace(out, old)
    os.replace(staged, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
