"""Accuracy figures of a quantized model against its fp32 reference: cosine, SQNR (dB), top-k agreement.

With random weights the logits carry no class meaning, so cosine and SQNR are the figures to read; top-1/top-5
agreement (does the int8 model rank the same class first / keep the fp32 top-1 within its top 5) matters with a real
checkpoint. SQNR = 10·log10(Σ ref² / Σ (ref − q)²), summed over every sample and logit.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np


def sqnr_db(reference: np.ndarray, quantized: np.ndarray) -> float:
    """Signal-to-quantization-noise ratio in dB (inf when identical; -inf when the reference is all zero)."""
    ref = np.asarray(reference, dtype=np.float64).ravel()
    err = ref - np.asarray(quantized, dtype=np.float64).ravel()
    signal, noise = float(ref @ ref), float(err @ err)
    if noise == 0.0:
        return math.inf
    if signal == 0.0:
        return -math.inf
    return 10.0 * math.log10(signal / noise)


def cosine(reference: np.ndarray, quantized: np.ndarray) -> float:
    """Cosine similarity of the flattened arrays (1.0 when both are zero)."""
    a = np.asarray(reference, dtype=np.float64).ravel()
    b = np.asarray(quantized, dtype=np.float64).ravel()
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na == 0.0 or nb == 0.0:
        return 1.0 if na == nb else 0.0
    return float(a @ b / (na * nb))


def compare_logits(reference: np.ndarray, quantized: np.ndarray) -> dict:
    """(N, classes) logits -> {cosine (mean per sample), cosine_min, sqnr_db, top1_agreement, top5_agreement, n}."""
    ref = np.asarray(reference, dtype=np.float64).reshape(len(reference), -1)
    q = np.asarray(quantized, dtype=np.float64).reshape(len(quantized), -1)
    per_sample = [cosine(r, x) for r, x in zip(ref, q, strict=True)]
    top1_ref = ref.argmax(axis=1)
    k = min(5, ref.shape[1])
    top5_q = np.argsort(-q, axis=1)[:, :k]
    return {
        "cosine": round(float(np.mean(per_sample)), 6),
        "cosine_min": round(float(np.min(per_sample)), 6),
        "sqnr_db": _round_db(sqnr_db(ref, q)),
        "top1_agreement": round(float(np.mean(top1_ref == q.argmax(axis=1))), 4),
        "top5_agreement": round(float(np.mean([t in row for t, row in zip(top1_ref, top5_q, strict=True)])), 4),
        "samples": int(len(ref)),
    }


def run_all(runner: Callable[[np.ndarray], np.ndarray], inputs: Sequence[np.ndarray]) -> np.ndarray:
    """Stack runner(x) over inputs into (N, classes)."""
    return np.concatenate([np.asarray(runner(x), dtype=np.float32).reshape(1, -1) for x in inputs], axis=0)


def _round_db(value: float) -> float | str:
    return round(value, 2) if math.isfinite(value) else ("inf" if value > 0 else "-inf")
