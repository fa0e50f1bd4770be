"""fp16 and int8 parity on ARM kernels: efficientvit-b0 (at 128 to keep CI short; `make bench-arm-numerics` runs
224 and 512) exported for ExecuTorch (XNNPACK) and run by the aarch64 executor_runner under qemu-user `-cpu max`
(FEAT_FP16 and dot-product: XNNPACK's fp16-arithmetic and int8-dotprod kernels),
compared with PyTorch against the export floors (fp16 cosine >= 0.999, int8 >= 0.98).

The runner folder comes from $EFFVIT_RUNNER_DIR_AARCH64 (`make test` builds it), else is built here (cached).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from effvit_deploy.bench.arm_run import run_on_arm
from effvit_deploy.parity import FP16_MIN_COSINE, compare
from effvit_deploy.runners import folder as runner_folder
from effvit_deploy.runners.build import cache_root
from tests.runner_folders import runner_folder as build_folder

pytestmark = pytest.mark.slow
MODEL, RES = "efficientvit-b0", 128  # small enough for CI; make bench-arm-numerics runs 224 and 512
INT8_FLOOR = 0.98  # the export's int8 criterion (effvit_deploy.parity)


@pytest.fixture(scope="module")
def arm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_folder("EFFVIT_RUNNER_DIR_AARCH64", "aarch64", tmp_path_factory, targets=("executorch",))


@pytest.mark.parametrize(("precision", "floor"), [("fp16", FP16_MIN_COSINE), ("int8", INT8_FLOOR)])
def test_executorch_parity_on_arm_kernels(arm_dir: Path, precision: str, floor: float) -> None:
    from effvit_deploy.export import ExportOptions, export

    out = cache_root().parent / "test-exports" / "arm-numerics"
    entry = export(MODEL, ExportOptions("executorch", RES, precision, out))
    artifact = out / MODEL / f"{RES}x{RES}" / entry["artifact"]
    reference = np.load(artifact.parent / entry["verification"]["reference"])
    manifest = runner_folder.read(arm_dir)
    assert manifest is not None
    got = run_on_arm(arm_dir, manifest, "executorch", artifact, entry, "max").reshape(reference.shape)
    result = compare(reference, got, precision)
    assert np.all(np.isfinite(got)) and result["cosine"] >= floor, result
