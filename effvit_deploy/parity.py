"""Parity figures of a model output against the PyTorch reference, and the per-precision pass criteria.

Torch-free (numpy only) so the bench can check what a device returned without importing the exporter:
- fp32: max |Δlogit| ≤ 1e-4 and the same top-1 class;
- fp16: cosine similarity ≥ 0.999;
- int8: cosine similarity ≥ 0.98 (a sanity floor; the quantizer reports its own held-out SQNR per layer).
Segmentation logits (B, classes, H, W) are compared the same way; "top-1" is then the class argmax of every pixel,
required to agree wherever the reference's top-2 margin exceeds twice the fp32 tolerance (where a tolerated error could
not flip it), and `pixel_agreement` reports the fraction of all pixels that agree.
"""

from __future__ import annotations

import numpy as np

FP32_MAX_ABS = 1e-4
FP16_MIN_COSINE = 0.999
INT8_MIN_COSINE = 0.98


def compare(reference: np.ndarray, actual: np.ndarray, precision: str) -> dict:
    """Parity figures of `actual` against `reference` and whether they pass for `precision`.

    Returns:
        {"max_abs", "mean_abs", "cosine", "top1_equal", "criterion", "passed"}.
    """
    ref = np.asarray(reference, dtype=np.float64).reshape(reference.shape[0], -1)
    act = np.asarray(actual, dtype=np.float64)
    if act.size != ref.size:
        return {
            "max_abs": None,
            "mean_abs": None,
            "cosine": None,
            "top1_equal": False,
            "criterion": f"output shape {tuple(np.shape(actual))} must equal {tuple(np.shape(reference))}",
            "passed": False,
        }
    act = act.reshape(ref.shape)
    dense = np.ndim(reference) == 4  # segmentation logits (B, classes, H, W)
    diff = np.abs(ref - act)
    finite = bool(np.isfinite(act).all())
    denom = float(np.linalg.norm(ref) * np.linalg.norm(act))
    cosine = min(1.0, float((ref * act).sum() / denom)) if denom > 0 and finite else 0.0
    if dense:
        top1_equal, agreement = _pixel_top1(np.asarray(reference, np.float64), act.reshape(np.shape(reference)))
    else:
        top1_equal, agreement = bool((ref.argmax(axis=1) == act.argmax(axis=1)).all()), None
    max_abs = float(diff.max()) if finite else float("inf")
    if precision == "fp32":
        criterion = f"max_abs <= {FP32_MAX_ABS:g} and top-1 equal"
        passed = max_abs <= FP32_MAX_ABS and top1_equal
    elif precision == "fp16":
        criterion = f"cosine >= {FP16_MIN_COSINE}"
        passed = cosine >= FP16_MIN_COSINE
    elif precision == "int8":
        criterion = f"cosine >= {INT8_MIN_COSINE}"
        passed = cosine >= INT8_MIN_COSINE
    else:
        raise ValueError(f"no parity criterion for precision {precision!r}")
    result = {
        "max_abs": max_abs,
        "mean_abs": float(diff.mean()) if finite else float("inf"),
        "cosine": cosine,
        "top1_equal": top1_equal,
        "criterion": criterion,
        "passed": bool(passed and finite),
    }
    if agreement is not None:
        result["pixel_agreement"] = agreement
    return result


def _pixel_top1(reference: np.ndarray, actual: np.ndarray) -> tuple[bool, float]:
    """(every pixel with a clear reference winner keeps its class, fraction of all pixels that keep it)."""
    same = reference.argmax(axis=1) == actual.argmax(axis=1)
    top2 = np.sort(reference, axis=1)[:, -2:]
    clear = (top2[:, 1] - top2[:, 0]) > 2 * FP32_MAX_ABS
    return bool(same[clear].all()), float(same.mean())


def describe(parity: dict) -> str:
    """One line with the parity numbers and the criterion, e.g. for an error or a table cell."""
    if parity.get("max_abs") is None:
        return parity["criterion"]
    return (
        f"max_abs={parity['max_abs']:.3g} cosine={parity['cosine']:.6f} top1_equal={parity['top1_equal']} "
        f"(needs {parity['criterion']})"
    )
