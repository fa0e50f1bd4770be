"""One inference of an exported artifact by a foreign-arch (aarch64) runner under qemu-user, on the verification
input stored at export: the output that `bench/arm_numerics.py` and the ARM parity tests compare with PyTorch.

The `-cpu` model picks the kernel path: `max` has FEAT_FP16 and dot-product, so XNNPACK runs its fp16-arithmetic
and int8-dotprod kernels; `cortex-a57` has neither.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .native import native_runner


def run_on_arm(runner_dir: Path, manifest: dict, target: str, artifact: Path, entry: dict, cpu: str,
               threads: int = 1, runner_flags: Sequence[str] = ()) -> np.ndarray:
    """Output 0 of one inference of `artifact` by the aarch64 runner under `qemu-aarch64 -cpu CPU`; `runner_flags`
    are appended to the runner's command (e.g. benchmark_model's `--xnnpack_force_fp16=true`)."""
    emu = manifest["emulation"]
    runner = native_runner(target)
    verification = entry["verification"]
    inputs = np.load(artifact.parent / verification["input"])
    with tempfile.TemporaryDirectory(prefix="arm-numerics-") as tmp:
        raw_in, raw_out = Path(tmp) / "input.bin", Path(tmp) / "output.bin"
        inputs.astype("<f4").tofile(raw_in)
        argv = runner.parity_command(str(runner_dir / manifest["runners"][target]["binary"]), str(artifact),
                                     str(raw_in), str(raw_out), threads=threads,
                                     input_name=verification.get("input_name"),
                                     input_shape=list(verification["input_shape"]))
        argv += list(runner_flags)
        command = [emu["qemu"], "-cpu", cpu, "-L", emu["sysroot"], "-E", f"LD_LIBRARY_PATH={runner_dir}", *argv]
        proc = subprocess.run(command, capture_output=True, text=True, timeout=1800)
        if proc.returncode != 0 or not raw_out.is_file():
            lines = (proc.stderr or proc.stdout).strip().splitlines() or ["no output"]
            first = next((ln for ln in lines if "ERROR" in ln), lines[-1])  # the cause, not the knock-on lines
            raise RuntimeError(f"{target} runner failed (exit {proc.returncode}): {first[:200]}")
        return np.fromfile(raw_out, dtype="<f4")
