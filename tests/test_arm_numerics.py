"""fp16 and int8 parity on ARM kernels: efficientvit-b0 (at 128 to keep CI short; `make bench-arm-numerics` runs
224 and 512) exported for ExecuTorch (XNNPACK) and run by the aarch64 executor_runner under qemu-user `-cpu max`
(FEAT_FP16 and dot-product: XNNPACK's fp16-arithmetic and int8-dotprod kernels),
compared with PyTorch against the export floors (fp16 cosine >= 0.999, int8 >= 0.98); and TFLite fp16 of b0 at 64
through XNNPACK's force-fp16 path (our aarch64 benchmark_model on ai-edge-litert's C API), where the plain export's
0/0 in the attention makes every logit NaN in the unguarded export (`ExportOptions(fp16_guard=False)`) and the
default, fp16-guarded, export passes.

The runner folder comes from $EFFVIT_RUNNER_DIR_AARCH64 (`make test` builds it), else is built here (cached).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

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
    return build_folder("EFFVIT_RUNNER_DIR_AARCH64", "aarch64", tmp_path_factory, targets=("executorch", "tflite"))


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


@pytest.mark.parametrize("guard", [False, True], ids=["no-fp16-guard", "default-fp16-guard"])
def test_tflite_force_fp16_on_arm_kernels(arm_dir: Path, guard: bool) -> None:
    """b0 @64, seeded weights: some token's q is all zero after the ReLU, its fp16 denominator is 0 (eps 1e-15 rounds
    to 0) and the plain export gives 0/0 = NaN under --xnnpack_force_fp16 on -cpu max; the guard's select runs in
    TFLite's fp32 kernels and the output passes the fp16 floor. (The fp32 XNNPACK path of both is exact.)"""
    from effvit_deploy.export import ExportOptions, export

    out = cache_root().parent / "test-exports" / "native-runners"  # the default one is the x86 runner tests' export
    entry = export(MODEL, ExportOptions("tflite", 64, "fp16", out, fp16_guard=None if guard else False))
    artifact = out / MODEL / "64x64" / entry["artifact"]
    assert artifact.name == ("tflite-fp16.tflite" if guard else "tflite-fp16-unguarded.tflite")  # guarded: the default
    reference = np.load(artifact.parent / entry["verification"]["reference"])
    manifest = runner_folder.read(arm_dir)
    assert manifest is not None and manifest["runners"]["tflite"]["xnnpack"] is True
    got = run_on_arm(arm_dir, manifest, "tflite", artifact, entry, "max",
                     runner_flags=("--xnnpack_force_fp16=true",)).reshape(reference.shape)
    result = compare(reference, got, "fp16")
    if guard:
        assert np.all(np.isfinite(got)) and result["cosine"] >= FP16_MIN_COSINE, result
    else:  # the broken form is caught: non-finite logits, failing the floor
        assert not np.all(np.isfinite(got)) and not result["passed"], result


def test_tflite_exports_keep_weights_inside_and_old_files_inline(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    """litert-torch writes fp16 weights after the flatbuffer, which the aarch64 C API ignores: the export's fp16
    .tflite has them inside; a file converted without that step inlines by the command line to the same output bit
    for bit (x86 LiteRT); a non-model input is one error line, exit 2."""
    import litert_torch
    from ai_edge_litert.interpreter import Interpreter
    from litert_torch.generative.quantize import quant_recipes

    from effvit_deploy.export import ExportOptions, export
    from effvit_deploy.export.targets.tflite import inline
    from effvit_deploy.models import build

    out = cache_root().parent / "test-exports" / "native-runners"
    entry = export(MODEL, ExportOptions("tflite", 64, "fp16", out))
    assert not inline.has_external_buffers(out / MODEL / "64x64" / entry["artifact"])
    # the converter's own file (the plain model), as exports before the inlining step wrote them
    module = build(MODEL).eval()
    x = np.random.default_rng(0).standard_normal((1, 3, 64, 64)).astype(np.float32)
    src, dst = tmp_path / "external.tflite", tmp_path / "inlined.tflite"
    litert_torch.convert(module, (torch.from_numpy(x),), quant_config=quant_recipes.full_fp16_recipe()).export(str(src))
    assert inline.has_external_buffers(src)
    assert inline.main([str(src), str(dst)]) == 0 and not inline.has_external_buffers(dst)
    outs = []
    for path in (src, dst):
        interp = Interpreter(str(path))
        interp.allocate_tensors()
        interp.set_tensor(interp.get_input_details()[0]["index"], x)
        interp.invoke()
        outs.append(interp.get_tensor(interp.get_output_details()[0]["index"]).copy())
    assert np.array_equal(outs[0], outs[1])
    (tmp_path / "junk.tflite").write_bytes(b"not a model")
    capsys.readouterr()
    assert inline.main([str(tmp_path / "junk.tflite"), str(tmp_path / "o.tflite")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not a readable .tflite" in err[0] and not (tmp_path / "o.tflite").exists()
