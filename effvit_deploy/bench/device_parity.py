"""Device parity: run the artifact once on the device with its manifest's verification input, compare with PyTorch.

Export verified the artifact on this machine; a phone runs other kernels (another XNNPACK build, other CPU
features), so every measurement is followed by one inference on the device on the same input, and its output is
compared with the PyTorch reference stored at export (`export/verification_files.py`) using the export's own
criteria (`effvit_deploy.parity`). The result goes into the record as `device_parity`:

    {"status": "pass" | "fail" | "error" | "unchecked", "cosine", "max_abs", "mean_abs", "top1_equal", "criterion",
     "passed", "output_dtype", "runner", "seconds", "error" | "reason"}

"fail" (outside the tolerance) is flagged in the report, never a crash; "error" means the check itself could not
run (the runner crashed on the file input, wrote no output); "unchecked": the artifact has no verification files.
Runners read input 0 as raw float32 values and write output 0 (our runners: float32; benchmark_model: the tensor's
raw bytes, so float16 outputs are recognised by size).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import EffvitError
from ..fileio import sha256_file
from ..parity import compare
from .adb import DeviceDisconnected
from .devices import Device, RunOutput
from .native import wrap


def check(device: Device, *, artifact_path: Path, manifest: dict[str, Any], device_artifact: str, target: str,
          precision: str, runner_kind: str, native: Any = None, binary: str | None = None,
          library_dir: str | None = None, threads: int, mask: str | None, timeout: float) -> dict[str, Any]:
    """One inference on the device with the verification input; the parity dict for the record."""
    info = manifest.get("verification")
    if not isinstance(info, dict):
        return {"status": "unchecked", "reason": "the artifact's manifest has no verification files (re-export it)"}
    folder = Path(artifact_path).parent
    try:
        x = np.load(folder / info["input"], allow_pickle=False)
        reference = np.load(folder / info["reference"], allow_pickle=False)
    except (OSError, ValueError, KeyError) as exc:
        return {"status": "unchecked", "reason": f"verification files unreadable: {exc}"}
    started = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="effvit-parity-") as tmp:
            local = Path(tmp) / "input.f32"
            local.write_bytes(np.ascontiguousarray(x, dtype="<f4").tobytes())
            sha = sha256_file(local)
            device_input = device.prepare(local, sha, "input.f32")
            device_output = device.output_path("output.bin")
            if native is not None:
                assert binary is not None
                argv = native.parity_command(binary, device_artifact, device_input, device_output, threads=threads,
                                             input_name=info.get("input_name"), input_shape=list(x.shape))
                argv = wrap(argv, mask=None, library_dir=library_dir)
            else:
                argv = [*device.python_command(), device.prepare_python_runner(), "--artifact", device_artifact,
                        "--runtime", target, "--threads", str(threads), "--runs", "1", "--warmup", "0",
                        "--input", device_input, "--output", device_output]
            out = device.run(argv, timeout=timeout, mask=mask)
            data = device.read_output(device_output)
    except DeviceDisconnected:
        raise
    except (EffvitError, ValueError) as exc:
        return _error(runner_kind, f"{type(exc).__name__}: {exc}", started)
    if out.returncode != 0:
        return _error(runner_kind, f"exited with {out.returncode}: {_last_line(out)}", started)
    if data is None:
        return _error(runner_kind, "the runner wrote no output file", started)
    actual, dtype = _decode(data, reference.size)
    if actual is None:
        return _error(runner_kind, f"output has {len(data)} bytes; {reference.size} float32 or float16 values "
                      "expected", started)
    result = compare(reference, actual, precision)
    status = "pass" if result["passed"] else "fail"
    return {"status": status, **result, "output_dtype": dtype, "runner": runner_kind,
            "seconds": round(time.perf_counter() - started, 3)}


def _decode(data: bytes, n: int) -> tuple[np.ndarray | None, str]:
    if len(data) == 4 * n:
        return np.frombuffer(data, dtype="<f4").astype(np.float32), "float32"
    if len(data) == 2 * n:
        return np.frombuffer(data, dtype="<f2").astype(np.float32), "float16"
    return None, "unknown"


def _error(runner_kind: str, message: str, started: float) -> dict[str, Any]:
    return {"status": "error", "passed": None, "error": " ".join(message.split())[:300], "runner": runner_kind,
            "seconds": round(time.perf_counter() - started, 3)}


def _last_line(out: RunOutput) -> str:
    for text in (out.stderr, out.stdout):
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        if lines:
            return lines[-1][:300]
    return "no output"

