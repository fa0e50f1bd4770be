"""The fp16-safe linear attention form: the same function as the original in fp32, and no inf/NaN in emulated fp16
arithmetic where the original form has them (fp16 storage, fp16-accumulating GEMMs: how XNNPACK's fp16 path runs
it on ARM; effvit_deploy.export.deploy.fp16_emulation)."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from effvit_deploy.export.deploy import fp16_emulation as fe
from effvit_deploy.export.deploy import to_deploy_form
from effvit_deploy.export.deploy.lite_mla_deploy import FP16_SAFE_FLOOR
from effvit_deploy.export.quantize.calibration import heldout_images
from effvit_deploy.export.weights import seeded_model


def test_emulator_accumulates_in_fp16() -> None:
    """4096 ones summed by an fp16 accumulator stop at 2048 (1 is half an ulp there); 70000 overflows to inf."""
    ones = np.ones((1, 1, 4096), np.float32)
    assert float(fe.matmul_f16(ones, ones.transpose(0, 2, 1))[0, 0, 0]) == 2048.0
    assert np.isinf(fe.matmul_f16(np.full((1, 1, 2), 256.0), np.full((1, 2, 1), 256.0 * 0.6))).all()
    assert float(fe.mean_f16(np.ones((1, 4096), np.float32), axis=-1)[0, 0]) == 1.0  # fp32-accumulated mean
    assert float(fe.f16(1e-15)) == 0.0 and float(fe.f16(FP16_SAFE_FLOOR)) == FP16_SAFE_FLOOR


@pytest.fixture(scope="module")
def b1_224() -> tuple[torch.nn.Module, torch.Tensor, torch.nn.Module]:
    """B1, a photo, and its deploy form at the original scale (the default: no fp16-safe rewrite)."""
    model = seeded_model("efficientvit-b1")
    original, _ = to_deploy_form(model, (224, 224))
    return model, torch.from_numpy(heldout_images((224, 224))[0]), original


def test_fp16_safe_form_is_the_same_function_in_fp32(b1_224: tuple) -> None:
    model, x, original = b1_224
    deploy, info = to_deploy_form(model, (224, 224), precision="fp32", fp16_safe_attention=True)
    assert info["attention"] and all(a["fp16_safe"] for a in info["attention"])
    assert not any(a["fp16_safe"] for a in to_deploy_form(model, (224, 224))[1]["attention"])  # export's default
    with torch.no_grad():
        ref, out, unscaled = model(x), deploy(x), original(x)
    assert float((out - ref).abs().max()) <= 2e-6 and float((unscaled - ref).abs().max()) <= 2e-6


def test_fp16_safe_form_has_no_inf_nan_where_the_original_has(b1_224: tuple) -> None:
    """The captured q, k, v of B1 at 224 (seeded weights, a bundled photo): tokens whose q is all zero after the ReLU
    make the original denominator 0 (1e-15 is 0 in fp16) and 0/0 = NaN; at 32x the activations (trained nets' range)
    v·kᵀ over 196 tokens also overflows. The fp16-safe form stays finite at both and matches float64."""
    _, x, original = b1_224
    cores = fe.attention_inputs(original, x)
    assert len(cores) == 7
    for gain in (1.0, 32.0):
        broken = 0
        for q, k, v in cores:
            q, k, v = q * gain, k * gain, v * gain
            n = q.shape[-1]
            old = fe.attention(q, k, v, 1e-15, float(n))
            new = fe.attention(q, k * n**-0.5, v * n**-0.5, 0.0, n**0.5, floor=FP16_SAFE_FLOOR)
            broken += old.nonfinite
            assert new.nonfinite == 0 and new.zero_den == 0
            assert fe.cosine(new.out, fe.reference(q, k, v, 1e-15)) >= 0.999
        assert broken > 0, gain


def test_fp16_guard_is_the_same_function_and_survives_a_zero_denominator(b1_224: tuple) -> None:
    """The TFLite fp16 guard, where(den > 0, num / den, 0): equal to the original in fp32 (export's fp32 parity), set
    only when asked, and 0 (not NaN) for a token whose q is all zero, where fp16's den is 0 (1e-15 rounds to 0)."""
    model, x, original = b1_224
    guarded, info = to_deploy_form(model, (224, 224), precision="fp16", fp16_guard=True)
    assert info["attention"] and all(a["fp16_guard"] for a in info["attention"])
    assert not any(a["fp16_guard"] for a in to_deploy_form(model, (224, 224))[1]["attention"])
    with torch.no_grad():
        ref, out = original(x), guarded(x)
    assert float((out - ref).abs().max()) <= 2e-6
    core = next(m for m in guarded.modules() if getattr(m, "guard_division", False))
    q = torch.rand(1, core.dim, 4)
    q[..., 0] = 0.0  # token 0: q all zero after the ReLU
    k, v = torch.rand(1, core.dim, 4), torch.rand(1, core.dim, 4)
    k_sum = k.sum(-1, keepdim=True).transpose(1, 2)
    out = core._relu_attention(q.half(), k.half(), v.half(), k_sum.half())  # den of token 0 is exactly 0
    assert torch.isfinite(out).all() and float(out[..., 0].abs().max()) == 0.0
    plain = copy.copy(core)
    plain.guard_division, plain.eps = False, 1e-15
    assert torch.isnan(plain._relu_attention(q.half(), k.half(), v.half(), k_sum.half())[..., 0]).all()


def test_cli_fp16_guard_needs_fp16(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from effvit_deploy.cli.export import main

    with pytest.raises(SystemExit) as info:
        main(["--target", "tflite", "--model", "efficientvit-b0", "--fp16-guard", "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert info.value.code == 2 and len(err) == 1 and "--fp16-guard applies to --precision fp16" in err[0], err
    assert not any(tmp_path.rglob("*.tflite"))
