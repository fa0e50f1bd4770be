"""PyTorch reference models: EfficientViT B0-B3, the paper config, softmax twins, EfficientNet and MobileNet baselines.

>>> from effvit_deploy import models
>>> model = models.build("efficientvit-b1", checkpoint="b1-r224.pt")   # official checkpoint, no renaming
>>> models.profile(model, "512x1024")                                   # (params, MACs)
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..resolution import format_resolution, parse_resolution
from . import efficientnet, efficientvit, efficientvit_paper_seg, efficientvit_seg, lraspp, mobilenet  # noqa: F401  (registers the builders)
from .checkpoint import is_timm_efficientvit, load_into, read_state_dict, timm_to_official
from .profile import profile
from .registry import get_builder, names

__all__ = ["build", "names", "profile", "parse_resolution", "format_resolution", "guess_model"]


def build(name: str, *, num_classes: int | None = None, checkpoint: str | Path | None = None) -> nn.Module:
    """Build model `name` in eval mode, optionally loading `checkpoint` (weights_only, strict).

    `num_classes` None: the checkpoint's class count if it has one, else the model's own (1000 for classifiers,
    19 / 150 for Cityscapes / ADE20K segmentation).

    Raises:
        InvalidInputError: unknown name (the message lists the valid ones).
        MissingFileError / CheckpointError: the checkpoint is missing, unreadable or for another model.
    """
    get_builder(name)  # an unknown name fails before the checkpoint is read
    state_dict = read_state_dict(checkpoint) if checkpoint is not None else None
    if state_dict is not None and name.startswith("efficientvit") and is_timm_efficientvit(state_dict):
        state_dict = timm_to_official(state_dict)  # timm hub weights (the only public B0) use timm's names
    if state_dict is not None and num_classes is None:
        num_classes = _classifier_classes(state_dict)  # a checkpoint fine-tuned on other classes: matching head
    model = _make(name, num_classes)
    if state_dict is not None:
        load_into(model, state_dict, name, checkpoint, guess=_guess_other(name, state_dict, num_classes))
    return model.eval()


# EfficientViT cls, torchvision cls (two layouts), EfficientViT seg (with / without the final expansion)
_CLASSIFIER_BIASES = (
    "head.op_list.3.linear.bias",
    "classifier.1.bias",
    "classifier.3.bias",
    "head.output_ops.0.op_list.1.conv.bias",
    "head.output_ops.0.op_list.0.conv.bias",
)


def _classifier_classes(state_dict: dict[str, torch.Tensor]) -> int | None:
    """Number of classes of the last bias-carrying 1-D tensor named like a classifier, if any."""
    for key in _CLASSIFIER_BIASES:
        if key in state_dict and state_dict[key].ndim == 1:
            return int(state_dict[key].shape[0])
    return None


def guess_model(state_dict: dict[str, torch.Tensor], num_classes: int | None = None) -> str | None:
    """The first registered model whose state_dict layout (keys and shapes) equals this one, else None."""
    want = {k: tuple(v.shape) for k, v in state_dict.items()}
    for candidate in names():
        if candidate.endswith("-softmax"):
            continue  # same layout as its linear twin; name the canonical model
        with torch.device("meta"):
            model = _make(candidate, num_classes)
        if {k: tuple(v.shape) for k, v in model.state_dict().items()} == want:
            return candidate
    return None


def _make(name: str, num_classes: int | None) -> nn.Module:
    builder = get_builder(name)
    return builder() if num_classes is None else builder(num_classes=num_classes)


def _guess_other(name: str, state_dict: dict[str, torch.Tensor], num_classes: int | None) -> str | None:
    """Called only on the error path (it builds every layout on the meta device): a better model for the file."""
    with torch.device("meta"):
        model = _make(name, num_classes)
    if set(model.state_dict()) == set(state_dict) and all(
        tuple(model.state_dict()[k].shape) == tuple(v.shape) for k, v in state_dict.items()
    ):
        return None
    guess = guess_model(state_dict, num_classes)
    return guess if guess not in (None, name.removesuffix("-softmax")) else None
