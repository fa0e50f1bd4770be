"""ReLU linear attention evaluated in emulated fp16 arithmetic (numpy), as a phone's fp16 kernels would run it.

Why: XNNPACK's fp16 path (TFLite `--xnnpack_force_fp16`, ExecuTorch/ONNX fp16 graphs on ARMv8.2 FEAT_FP16) runs the
attention core in half precision, and this machine has no fp16 arithmetic. The model of those kernels:

- every tensor is stored in fp16 (round to nearest even); fp16 subnormals are kept (FPCR.FZ16 = 0) or, with
  `ftz=True`, flushed to zero, as XNNPACK's fp16 path on qemu `-cpu max` behaved (README "Numerics on ARM kernels");
- a matmul accumulates in fp16, one fused multiply-add per reduction step (XNNPACK's f16 GEMM microkernels keep fp16
  accumulators, so over N tokens the running sum can overflow to inf, and stops growing once one term is below half
  an ulp of it);
- a mean accumulates in fp32 and rounds once (XNNPACK's f16 reductions use fp32 accumulators);
- a constant is converted to fp16 once (the official eps 1e-15 becomes 0).

`attention` evaluates either deploy form (see `lite_mla_deploy`) from fp32 q, k, v captured from a real forward pass
and returns the output with the intermediates' extremes (for the README's analysis table and the tests).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

F16 = np.float16
F32 = np.float32


def f16(x: np.ndarray | float, ftz: bool = False) -> np.ndarray:
    """Round to fp16 (values beyond 65504 become inf, as a conversion on ARM does); `ftz`: subnormals become 0."""
    with np.errstate(over="ignore"):
        y = np.asarray(x, dtype=F32).astype(F16)
    return np.where(np.abs(y) < F16(2.0**-14), F16(0), y).astype(F16) if ftz else y


def matmul_f16(a: np.ndarray, b: np.ndarray, ftz: bool = False) -> np.ndarray:
    """Batched a @ b of fp16 operands with an fp16 accumulator, one rounded FMA per reduction step.

    The product of two fp16 values is exact in fp32, so acc + a*b computed in fp32 and rounded once is the FMA.
    """
    a, b = f16(a, ftz), f16(b, ftz)
    acc = np.zeros((*a.shape[:-1], b.shape[-1]), dtype=F16)
    with np.errstate(over="ignore", invalid="ignore"):
        for i in range(a.shape[-1]):
            acc = f16(acc.astype(F32) + a[..., :, i : i + 1].astype(F32) * b[..., i : i + 1, :].astype(F32), ftz)
    return acc


def mean_f16(x: np.ndarray, axis: int, ftz: bool = False) -> np.ndarray:
    """Mean of fp16 values with an fp32 accumulator, rounded to fp16 once."""
    return f16(f16(x, ftz).astype(F32).mean(axis=axis, keepdims=True), ftz)


@dataclass
class Emulated:
    """The fp16 attention output and what overflowed or divided by zero on the way."""

    out: np.ndarray  # (G, d, N) fp16
    max_key_sum: float  # largest |Σ k| (as the form computes it, inf if it overflowed)
    max_kv: float  # largest |v·kᵀ| entry
    max_num: float
    min_den: float  # smallest |den| (0: a 0/0 or x/0 division)
    zero_den: int  # tokens x groups whose denominator is 0 in fp16
    nonfinite: int  # inf or NaN entries in the output


def attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, eps: float, key_multiplier: float,
              floor: float = 0.0, ftz: bool = False) -> Emulated:
    """(v·kᵀ)·q / max(ks·q + eps, floor) with ks = mean_tokens(k) · key_multiplier, every op in emulated fp16.

    q, k, v: (G, d, N) after the ReLU kernel, in the scale the form feeds them (the fp16-safe form's k and v are
    already multiplied by 1/√N through the projection weights). Original form: key_multiplier = N, eps = 1e-15.
    """
    q16, k16, v16 = f16(q, ftz), f16(k, ftz), f16(v, ftz)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        ks = f16(mean_f16(k16, -1, ftz).astype(F32) * f16(key_multiplier).astype(F32), ftz)  # (G, d, 1)
        den = matmul_f16(np.swapaxes(ks, -1, -2), q16, ftz)  # (G, 1, N)
        den = f16(den.astype(F32) + f16(eps, ftz).astype(F32), ftz)
        if floor:
            den = np.maximum(den, f16(floor, ftz))
        kv = matmul_f16(v16, np.swapaxes(k16, -1, -2), ftz)  # (G, d, d)
        num = matmul_f16(kv, q16, ftz)  # (G, d, N)
        out = f16(num.astype(F32) / den.astype(F32), ftz)
    finite = lambda a: float(np.max(np.abs(a.astype(F32))))  # noqa: E731  (inf stays inf)
    return Emulated(out, finite(ks), finite(kv), finite(num), float(np.min(np.abs(den.astype(F32)))),
                    int(np.sum(den == 0)), int(np.sum(~np.isfinite(out.astype(F32)))))


def reference(q: np.ndarray, k: np.ndarray, v: np.ndarray, eps: float) -> np.ndarray:
    """The original form in float64 (the exact function both forms compute)."""
    q, k, v = (np.asarray(t, dtype=np.float64) for t in (q, k, v))
    ks = k.sum(axis=-1, keepdims=True)
    den = np.swapaxes(ks, -1, -2) @ q + eps
    return ((v @ np.swapaxes(k, -1, -2)) @ q) / den


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two arrays (NaN when either has a non-finite entry)."""
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        return float("nan")
    return float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-300))


def attention_inputs(deploy: nn.Module, x: torch.Tensor) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """q, k, v (G, d, N) that each ReLU attention core of a deploy-form model sees on input `x`, in forward order."""
    from .lite_mla_deploy import DeployLiteMLA  # here: that module needs nothing of this one

    found: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    original = DeployLiteMLA._relu_attention

    def record(self: DeployLiteMLA, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
               ks: torch.Tensor) -> torch.Tensor:
        found.append((q.numpy().copy(), k.numpy().copy(), v.numpy().copy()))
        return original(self, q, k, v, ks)

    DeployLiteMLA._relu_attention = record  # type: ignore[method-assign]
    try:
        with torch.no_grad():
            deploy(x)
    finally:
        DeployLiteMLA._relu_attention = original  # type: ignore[method-assign]
    return found
