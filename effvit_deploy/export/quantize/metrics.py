"""Accuracy figures of a quantized model against its fp32 reference: cosine, SQNR (dB), top-k agreement (per pixel
for a segmentation map).

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
    """Logits of N samples -> {cosine (mean per sample), cosine_min, sqnr_db, top1_agreement, top5_agreement,
    samples}, plus {"top_k_over": "classes of every pixel"} for segmentation maps.

    `reference` is (N, classes) for a classifier or (N, classes, H, W) for a segmentation model; `quantized` has the
    same number of values per sample (it is reshaped to the reference's shape). For a map, top-1/top-5 agreement
    is per pixel over the class axis (does the pixel keep its fp32 class first / within its top 5), counted over
    every pixel of every sample: the argmax of a whole flattened map would say nothing.

    One sample at a time: a segmentation model's output map is large (150 classes x 64 x 128 for an ADE20K model at
    512x1024), and whole-array float64 copies and argsorts of 28 of them took 1.2 GiB, the peak of its int8 export.
    """
    ref = np.asarray(reference)
    if ref.ndim not in (2, 4):
        raise ValueError(f"reference logits must be (N, classes) or (N, classes, H, W), got {ref.shape}")
    q_all = np.asarray(quantized)
    if len(q_all) != len(ref) or q_all.size != ref.size:
        raise ValueError(f"logits shapes differ: {ref.shape} vs {q_all.shape}")
    q_all = q_all.reshape(ref.shape)
    classes = ref.shape[1]
    k = min(5, classes)
    per_sample = []
    signal = noise = 0.0
    kept_top1 = kept_top5 = positions = 0
    for r32, q32 in zip(ref, q_all, strict=True):
        r, q = r32.astype(np.float64), q32.astype(np.float64)
        per_sample.append(cosine(r, q))
        err = r - q
        signal += float(np.vdot(r, r))
        noise += float(np.vdot(err, err))
        # (classes, positions): one position for a classifier, H*W pixels for a map
        r2, q2 = r.reshape(classes, -1), q.reshape(classes, -1)
        best = r2.argmax(axis=0)
        kept_top1 += int(np.count_nonzero(best == q2.argmax(axis=0)))
        q_top = np.argpartition(-q2, k - 1, axis=0)[:k]
        kept_top5 += int(np.count_nonzero((q_top == best).any(axis=0)))
        positions += best.size
    result = {
        "cosine": round(float(np.mean(per_sample)), 6),
        "cosine_min": round(float(np.min(per_sample)), 6),
        "sqnr_db": _round_db(db_from_sums(signal, noise)),
        "top1_agreement": round(kept_top1 / positions, 4),
        "top5_agreement": round(kept_top5 / positions, 4),
        "samples": int(len(ref)),
    }
    if ref.ndim == 4:
        result["top_k_over"] = "classes of every pixel"
    return result


def run_all(runner: Callable[[np.ndarray], np.ndarray], inputs: Sequence[np.ndarray]) -> np.ndarray:
    """Stack runner(x) over inputs: (N, classes) for a classifier, (N, classes, H, W) for a segmentation map."""
    outputs = []
    for x in inputs:
        y = np.asarray(runner(x), dtype=np.float32)
        outputs.append(y.reshape(y.shape[1:]) if y.ndim > 1 and y.shape[0] == 1 else y)
    return np.stack(outputs)


def _round_db(value: float) -> float | str:
    return round(value, 2) if math.isfinite(value) else ("inf" if value > 0 else "-inf")
