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

from ..errors import ArtifactError
from ..parity import FP16_MIN_COSINE, FP32_MAX_ABS, INT8_MIN_COSINE, compare, describe

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INPUT_SEED = 1234

__all__ = ["FP16_MIN_COSINE", "FP32_MAX_ABS", "INT8_MIN_COSINE", "compare", "describe", "fixed_input",
           "reference_logits", "verify", "VerificationError"]

Runner = Callable[[np.ndarray], np.ndarray]


class VerificationError(ArtifactError):
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
