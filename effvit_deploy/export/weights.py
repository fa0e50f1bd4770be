"""Reproducible weights for exports, and a hash of them for the cache key.

Without a checkpoint a model is built from `torch.manual_seed(0)` and its BatchNorm running statistics are randomized
from a fixed seed (mean ~ N(0, 0.1), var ~ U(0.5, 1.5)). Freshly initialised BN has mean 0 and var 1, which makes BN
folding an identity; random statistics make a wrong fold visible in the parity check.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch import nn

from .. import models

SEED = 0
_BN_SEED = 1  # separate stream so the BN statistics do not depend on how many parameters the model has


def randomize_bn_stats(model: nn.Module, seed: int = _BN_SEED) -> nn.Module:
    """Give every BatchNorm deterministic non-trivial running statistics (in place; returns `model`)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.track_running_stats:
                assert module.running_mean is not None and module.running_var is not None
                n = module.num_features
                module.running_mean.copy_(torch.randn(n, generator=gen) * 0.1)
                module.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
    return model


def seeded_model(name: str, checkpoint: str | Path | None = None, *, num_classes: int | None = None) -> nn.Module:
    """Build registry model `name` in eval mode: from `checkpoint`, or from seed 0 with random BN statistics.

    The caller's global RNG state is left untouched.

    Raises:
        InvalidInputError: unknown model name.
        MissingFileError / CheckpointError: the checkpoint is missing or does not fit the model.
    """
    if checkpoint is not None:
        return models.build(name, num_classes=num_classes, checkpoint=checkpoint).eval()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = models.build(name, num_classes=num_classes)
    return randomize_bn_stats(model).eval()


def weights_sha256(model: nn.Module) -> str:
    """sha256 over the state_dict in key order: each key, dtype, shape and the tensor's raw bytes."""
    digest = hashlib.sha256()
    for key, tensor in model.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()
