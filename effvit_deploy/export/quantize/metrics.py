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
    return db_from_sums(float(ref @ ref), float(err @ err))


def db_from_sums(signal: float, noise: float) -> float:
    """10·log10(signal / noise): inf without noise, -inf without signal."""
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
    """(N, classes) logits -> {cosine (mean per sample), cosine_min, sqnr_db, top1_agreement, top5_agreement, n}.

    One sample at a time: a segmentation model's "logits" are its whole output map (150 classes x 64 x 128 for an
    ADE20K model at 512x1024), and whole-array float64 copies and argsorts of 28 of them took 1.2 GiB, the peak of
    its int8 export.
    """
    ref_rows = np.asarray(reference).reshape(len(reference), -1)
    q_rows = np.asarray(quantized).reshape(len(quantized), -1)
    if ref_rows.shape != q_rows.shape:
        raise ValueError(f"logits shapes differ: {ref_rows.shape} vs {q_rows.shape}")
    k = min(5, ref_rows.shape[1])
    per_sample, top1, top5 = [], [], []
    signal = noise = 0.0
    for r32, q32 in zip(ref_rows, q_rows, strict=True):
        r, q = r32.astype(np.float64), q32.astype(np.float64)
        per_sample.append(cosine(r, q))
        err = r - q
        signal += float(r @ r)
        noise += float(err @ err)
        best = int(r.argmax())
        top1.append(best == int(q.argmax()))
        top5.append(best in np.argpartition(-q, k - 1)[:k])
    return {
        "cosine": round(float(np.mean(per_sample)), 6),
        "cosine_min": round(float(np.min(per_sample)), 6),
        "sqnr_db": _round_db(db_from_sums(signal, noise)),
        "top1_agreement": round(float(np.mean(top1)), 4),
        "top5_agreement": round(float(np.mean(top5)), 4),
        "samples": int(len(ref_rows)),
    }


def run_all(runner: Callable[[np.ndarray], np.ndarray], inputs: Sequence[np.ndarray]) -> np.ndarray:
    """Stack runner(x) over inputs into (N, classes)."""
    return np.concatenate([np.asarray(runner(x), dtype=np.float32).reshape(1, -1) for x in inputs], axis=0)


def _round_db(value: float) -> float | str:
    return round(value, 2) if math.isfinite(value) else ("inf" if value > 0 else "-inf")
