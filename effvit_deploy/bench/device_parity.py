"""Device parity: run the artifact on the device with its manifest's verification input, compare with PyTorch.

Export verified the artifact on this machine; a phone runs other kernels (another XNNPACK build, other CPU
features), so every measurement also checks the device's numerics on the input stored at export, against the
PyTorch reference stored with it (`export/verification_files.py`), with the export's own criteria
(`effvit_deploy.parity`). The result goes into the record as `device_parity`:

    {"status": "pass" | "fail" | "error" | "unchecked", "cosine", "max_abs", "mean_abs", "top1_equal", "criterion",
     "passed", "output_dtype", "runner", "seconds", "error" | "reason"}

"fail" (outside the tolerance) is flagged in the report, never a crash; "error": the check could not run (the
runner crashed on the file input, wrote no output); "unchecked": the artifact has no verification files.

How: the input goes to the device as raw float32 values (pushed once by hash). The Python runner measures on that
input and returns output 0 in its result line, so the check costs no extra process. Native runners do one extra run
with their file flags (`NativeRunner.parity_command`) and write output 0 to a file that is pulled: our runners write
float32; benchmark_model writes the tensor's raw bytes, so float16 outputs are recognised by size.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import EffvitError
from ..fileio import atomic_write_bytes
from ..parity import compare
from .adb import DeviceDisconnected
from .devices import Device, RunOutput
from .native import NativeRunner, wrap

INPUT_CACHE = Path(tempfile.gettempdir()) / "effvit-verification-inputs"


@dataclass(frozen=True)
class Staged:
    """The verification input on the device, and what to compare the output with."""

    device_input: str
    shape: list[int]
    input_name: str | None
    reference: np.ndarray


def stage(device: Device, artifact_path: Path, manifest: dict[str, Any]) -> Staged | dict[str, Any]:
    """Put the artifact's verification input on the device; an "unchecked" parity dict when there is none."""
    info = manifest.get("verification")
    if not isinstance(info, dict):
        return {"status": "unchecked", "reason": "the artifact's manifest has no verification files (re-export it)"}
    folder = Path(artifact_path).parent
    try:
        x = np.load(folder / info["input"], allow_pickle=False)
        reference = np.load(folder / info["reference"], allow_pickle=False)
    except (OSError, ValueError, KeyError) as exc:
        return {"status": "unchecked", "reason": f"verification files unreadable: {exc}"}
    data = np.ascontiguousarray(x, dtype="<f4").tobytes()
    sha = hashlib.sha256(data).hexdigest()
    local = INPUT_CACHE / f"{sha}.f32"  # content-addressed, so concurrent workers share it safely
    if not local.is_file():
        INPUT_CACHE.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(local, data)
    return Staged(device.prepare(local, sha, "input.f32"), list(x.shape), info.get("input_name"), reference)


def from_values(staged: Staged, values: list[float] | None, precision: str, runner: str) -> dict[str, Any]:
    """Parity of output values a runner returned in its result (the Python runners)."""
    if values is None:
        return _error(runner, "the runner returned no output values", time.perf_counter())
    return _judge(staged, np.asarray(values, dtype=np.float32), "float32", precision, runner, 0.0)


def check_native(device: Device, staged: Staged, native: NativeRunner, *, binary: str, device_artifact: str,
                 library_dir: str | None, threads: int, mask: str | None, timeout: float,
                 precision: str) -> dict[str, Any]:
    """One extra run of a native runner on the staged input; its output file pulled and compared."""
    started = time.perf_counter()
    try:
        device_output = device.output_path("output.bin")
        argv = native.parity_command(binary, device_artifact, staged.device_input, device_output, threads=threads,
                                     input_name=staged.input_name, input_shape=staged.shape)
        out = device.run(wrap(argv, mask=None, library_dir=library_dir), timeout=timeout, mask=mask)
        data = device.read_output(device_output)
    except DeviceDisconnected:
        raise
    except (EffvitError, ValueError) as exc:
        return _error(native.kind, f"{type(exc).__name__}: {exc}", started)
    if out.returncode != 0:
        return _error(native.kind, f"exited with {out.returncode}: {_last_line(out)}", started)
    if data is None:
        return _error(native.kind, "the runner wrote no output file", started)
    n = staged.reference.size
    if len(data) == 4 * n:
        return _judge(staged, np.frombuffer(data, dtype="<f4"), "float32", precision, native.kind, started)
    if len(data) == 2 * n:
        return _judge(staged, np.frombuffer(data, dtype="<f2"), "float16", precision, native.kind, started)
    return _error(native.kind, f"output has {len(data)} bytes; {n} float32 or float16 values expected", started)


def check_app(app: Any, staged: Staged, *, device_artifact: str, target: str, threads: int, timeout: float,
              precision: str, runner: str) -> dict[str, Any]:
    """One extra run in the benchmark app (`app_runner.AppSession`) on the staged input; its whole output compared."""
    from .app_result import app_output

    started = time.perf_counter()
    try:
        out = app.run(device_artifact, target, threads=threads, runs=1, warmup=0, timeout=timeout,
                      input_path=staged.device_input)
        if out.returncode != 0:
            return _error(runner, f"app run failed: {_last_line(out)}", started)
        values, _ = app_output(out.result or "")
    except DeviceDisconnected:
        raise
    except (EffvitError, ValueError) as exc:
        return _error(runner, f"{type(exc).__name__}: {exc}", started)
    if len(values) != staged.reference.size:
        return _error(runner, f"the app returned {len(values)} output values, {staged.reference.size} expected "
                              "(outputs over the app's size limit are summarised, not returned)", started)
    return _judge(staged, np.asarray(values, dtype=np.float32), "float32", precision, runner, started)


def _judge(staged: Staged, actual: np.ndarray, dtype: str, precision: str, runner: str,
           started: float) -> dict[str, Any]:
    result = compare(staged.reference, actual.astype(np.float32), precision)
    seconds = round(time.perf_counter() - started, 3) if started else None
    return {"status": "pass" if result["passed"] else "fail", **result, "output_dtype": dtype, "runner": runner,
            "seconds": seconds}


def _error(runner: str, message: str, started: float) -> dict[str, Any]:
    return {"status": "error", "passed": None, "error": " ".join(message.split())[:300], "runner": runner,
            "seconds": round(time.perf_counter() - started, 3)}


def _last_line(out: RunOutput) -> str:
    for text in (out.stderr, out.stdout):
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        if lines:
            return lines[-1][:300]
    return "no output"
