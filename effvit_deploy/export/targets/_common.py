"""Pieces every export target shares: input checks, the fp16 wrapper, error wrapping, version lookup.

Kept apart from the per-target modules so that each of those reads as "how this runtime converts, runs and counts",
and so that the user-facing errors (bad precision, missing package, failed conversion) read the same for all targets.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import importlib.metadata
import io
import os
import sys
from collections.abc import Callable, Iterator
from types import ModuleType

import numpy as np
import torch
from torch import nn

from effvit_deploy.errors import ConversionError, InvalidInputError, MissingDependencyError
from effvit_deploy.export.deploy.head_split import set_split_style
from effvit_deploy.vocabulary import FLOAT_PRECISIONS

Runner = Callable[[np.ndarray], np.ndarray]


class Fp32IO(nn.Module):
    """Runs a half-precision module behind float32 input and output.

    fp16 artifacts keep the float32 interface of the fp32 ones, so every runner, benchmark tool and app feeds the
    same tensors whatever the precision; the two casts are the only extra ops and cost nothing next to the network.
    """

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x.half()).float()


class Fp32LayerNorm(nn.Module):
    """LayerNorm kept in float32 inside an fp16 network, like the attention.

    Mean and variance lose too much in fp16, and ExecuTorch 1.4.1's portable fp16 `native_layer_norm` kernel is
    plainly wrong (cosine 0.09-0.7 against PyTorch on a 1280-wide vector; upstream PR pytorch/executorch#16727 moved
    the norms to fp32 accumulation), which took efficientvit-b0's logits to cosine 0.945.
    """

    def __init__(self, norm: nn.LayerNorm) -> None:
        super().__init__()
        self.norm = norm.float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.float()).to(x.dtype)


def check_options(target: str, precision: str, nhwc: bool, *, nhwc_ok: bool) -> None:
    """Raise InvalidInputError for a precision `convert` does not write or an NHWC request it cannot honour."""
    if precision not in FLOAT_PRECISIONS:
        hint = " (int8 artifacts are written by the target's quantize)" if precision == "int8" else ""
        raise InvalidInputError(f"{target} cannot take precision {precision!r}; choose {', '.join(FLOAT_PRECISIONS)}"
                                f"{hint}")
    if nhwc and not nhwc_ok:
        raise InvalidInputError(f"{target} artifacts are NCHW only; NHWC input is a tflite option (--target tflite)")


def require(module: str, target: str) -> ModuleType:
    """Import an optional runtime package or raise MissingDependencyError naming the pip extra that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"the {target} target needs the Python package providing '{module}' ({exc}); "
            f"install it with: pip install 'effvit-deploy[{target}]'"
        ) from exc


def prepare(module: nn.Module, precision: str, split_style: str) -> nn.Module:
    """A private eval-mode float32 copy to convert; for fp16, half weights behind float32 I/O; a joined q|k|v split
    the way this target's converter delegates (`deploy.head_split`).

    The caller's module is never touched and may be in either dtype. fp16 precision policy: everything half except
    LayerNorms (kept fp32 here, see Fp32LayerNorm) and attention, which EfficientViT's LiteMLA already computes in
    fp32 by casting its q/k/v itself (as the official code does), so this helper does not need to know about it.
    """
    work = set_split_style(copy.deepcopy(module).float().eval(), split_style)
    if precision == "fp16":
        work = Fp32IO(_layer_norms_in_fp32(work.half())).eval()
    return work


def _layer_norms_in_fp32(module: nn.Module) -> nn.Module:
    """Replace every nn.LayerNorm of a half module by an Fp32LayerNorm holding it in float32 (in place)."""
    if isinstance(module, nn.LayerNorm):
        return Fp32LayerNorm(module)
    for parent in list(module.modules()):
        for name, child in parent.named_children():
            if isinstance(child, nn.LayerNorm):
                setattr(parent, name, Fp32LayerNorm(child))
    return module


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0] if text else ""
    return f"{type(exc).__name__}: {line}" if line else type(exc).__name__


def conversion_error(target: str, module: nn.Module, exc: BaseException) -> ConversionError:
    """One line: which target, which model class, and the first line of what the converter said."""
    return ConversionError(f"{target} conversion of {type(module).__name__} failed: {first_line(exc)}")


def package_versions(*distributions: str) -> dict[str, str]:
    """Installed version per distribution name ("not installed" when absent), for the manifest and cache key."""
    found: dict[str, str] = {}
    for dist in distributions:
        try:
            found[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            found[dist] = "not installed"
    return found


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    """Swallow converters' progress prints (torch.onnx prints its stages); the pipeline reports progress itself."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


@contextlib.contextmanager
def quiet_stderr_fd() -> Iterator[None]:
    """Silence fd 2 itself (the runtimes' C++ INFO lines bypass sys.stderr) for the duration."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
