"""The verification input and PyTorch reference output stored beside each artifact, for parity checks on devices.

Export already checks the artifact on this machine; a phone runs other kernels (another XNNPACK build, other CPU
features), so the bench runs the artifact once more on the device with the same input and compares with the same
reference. Two small `.npy` files per artifact, named in its manifest entry under `verification`:

    "verification": {"input": "tflite-fp32.tflite.input.npy", "reference": "tflite-fp32.tflite.reference.npy",
                     "input_name": "serving_default_args_0", "input_layout": "NCHW", "input_shape": [1, 3, 224, 224],
                     "input_sha256": "...", "reference_sha256": "..."}

The input is float32 in the artifact's own layout (NHWC for `--nhwc` exports), so a runner feeds it unchanged;
`input_name` is the graph's input tensor name where a runner needs it on its command line (benchmark_model).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from ..fileio import atomic_write_bytes, sha256_file


def file_names(artifact: str) -> tuple[str, str]:
    """(input, reference) file names for an artifact file name."""
    return f"{artifact}.input.npy", f"{artifact}.reference.npy"


def write(folder: Path, artifact: str, example_nchw: np.ndarray, reference: np.ndarray, *, nhwc: bool,
          input_name: str | None) -> dict[str, Any]:
    """Write both files (atomically) and return the manifest's `verification` entry."""
    x = np.ascontiguousarray(example_nchw.transpose(0, 2, 3, 1) if nhwc else example_nchw, dtype=np.float32)
    y = np.ascontiguousarray(reference, dtype=np.float32)
    input_file, reference_file = file_names(artifact)
    for name, array in ((input_file, x), (reference_file, y)):
        buf = io.BytesIO()
        np.save(buf, array, allow_pickle=False)
        atomic_write_bytes(Path(folder) / name, buf.getvalue())
        (Path(folder) / name).chmod(0o644)
    return {
        "input": input_file,
        "reference": reference_file,
        "input_name": input_name,
        "input_layout": "NHWC" if nhwc else "NCHW",
        "input_shape": list(x.shape),
        "input_sha256": sha256_file(Path(folder) / input_file),
        "reference_sha256": sha256_file(Path(folder) / reference_file),
    }


def present(folder: Path, entry: dict[str, Any]) -> bool:
    """True when the entry names verification files that exist with the recorded hashes."""
    info = entry.get("verification")
    if not isinstance(info, dict):
        return False
    for key in ("input", "reference"):
        path = Path(folder) / str(info.get(key, ""))
        if not info.get(key) or not path.is_file() or sha256_file(path) != info.get(f"{key}_sha256"):
            return False
    return True
