"""One inference of an exported artifact by a foreign-arch (aarch64) runner under qemu-user, on the verification
input stored at export: the output that `bench/arm_numerics.py` and the ARM parity tests compare with PyTorch.

The `-cpu` model picks the kernel path: `max` has FEAT_FP16 and dot-product, so XNNPACK runs its fp16-arithmetic
and int8-dotprod kernels; `cortex-a57` has neither.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import numpy as np

from .native import native_runner


def run_on_arm(runner_dir: Path, manifest: dict, target: str, artifact: Path, entry: dict, cpu: str,
               threads: int = 1) -> np.ndarray:
    """Output 0 of one inference of `artifact` by the aarch64 runner under `qemu-aarch64 -cpu CPU`."""
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
        command = [emu["qemu"], "-cpu", cpu, "-L", emu["sysroot"], "-E", f"LD_LIBRARY_PATH={runner_dir}", *argv]
        proc = subprocess.run(command, capture_output=True, text=True, timeout=1800)
        if proc.returncode != 0 or not raw_out.is_file():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            raise RuntimeError(f"{target} runner failed (exit {proc.returncode}): {tail[0][:200]}")
        return np.fromfile(raw_out, dtype="<f4")
