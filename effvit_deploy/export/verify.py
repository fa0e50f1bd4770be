"""Parity of an exported artifact with the PyTorch model as built (not its deploy form, so deploy bugs are caught).

Every export runs its artifact in the target's own runtime on one fixed input and compares the logits:
- fp32: max |Δlogit| ≤ 1e-4 and the same top-1 class;
- fp16: cosine similarity ≥ 0.999;
- int8: cosine similarity ≥ 0.98 (a sanity floor; the quantizer reports its own held-out SQNR per layer).
Segmentation logits (B, classes, H, W) are compared the same way; "top-1" is then the class argmax of every pixel,
required to agree wherever the reference's top-2 margin exceeds twice the fp32 tolerance (where a tolerated error could
not flip it), and `pixel_agreement` reports the fraction of all pixels that agree.
A failure raises `VerificationError` with the numbers and the artifact is never written.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from ..errors import EffvitError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INPUT_SEED = 1234

FP32_MAX_ABS = 1e-4
FP16_MIN_COSINE = 0.999
INT8_MIN_COSINE = 0.98

Runner = Callable[[np.ndarray], np.ndarray]


class VerificationError(EffvitError):
    """An exported artifact disagrees with the PyTorch model beyond the precision's tolerance."""

    def __init__(self, message: str, parity: dict) -> None:
        super().__init__(message)
        self.parity = parity


def fixed_input(resolution: tuple[int, int]) -> torch.Tensor:
    """The verification input: uniform noise from seed 1234, normalised with ImageNet mean/std, shape (1, 3, H, W)."""
    height, width = resolution
    gen = torch.Generator().manual_seed(INPUT_SEED)
    image = torch.rand(1, 3, height, width, generator=gen)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (image - mean) / std


def reference_logits(model: nn.Module, example: torch.Tensor) -> np.ndarray:
    """Logits of the PyTorch model in eval mode, as float32 numpy."""
    with torch.no_grad():
        return model.eval()(example).detach().float().numpy()


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


def verify(runner: Runner, reference: np.ndarray, example: torch.Tensor, precision: str, *, what: str) -> dict:
    """Run `runner` on `example` (NCHW float32), compare with `reference`; return parity or raise.

    Raises:
        VerificationError: the parity criterion for `precision` is not met; the message carries the numbers.
    """
    actual = np.asarray(runner(example.numpy().astype(np.float32)))
    parity = compare(reference, actual, precision)
    if not parity["passed"]:
        raise VerificationError(f"{what} failed verification: {describe(parity)}", parity)
    return parity


def describe(parity: dict) -> str:
    """One line with the parity numbers and the criterion, e.g. for an error or a table cell."""
    if parity.get("max_abs") is None:
        return parity["criterion"]
    return (
        f"max_abs={parity['max_abs']:.3g} cosine={parity['cosine']:.6f} top1_equal={parity['top1_equal']} "
        f"(needs {parity['criterion']})"
    )
