"""How much memory a model needs at a resolution, from its shapes alone (meta tensors: nothing is allocated).

`activation_bytes` sums the fp32 size of every leaf module's output for one image: a traced or converted graph keeps
each of those intermediate values alive at once, so the sum (not the largest single tensor) is what converters and
the first inference of an unplanned runtime hold. `effvit_deploy.memory_guard` turns it into a peak estimate with
factors calibrated against measured peaks. Ops inside a leaf module (a softmax twin's attention matrix) are not
counted there: `attention_map_bytes` gives the largest of those separately, because it grows with the square of the
token count (2 GiB per block for seg-B0's twin at 1024x2048) while everything else grows linearly.
"""

from __future__ import annotations

import torch
from torch import nn

from ..resolution import Resolution
from .registry import get_builder

FP32_BYTES = 4


def activation_bytes(model: str | nn.Module, resolution: Resolution) -> tuple[int, int]:
    """(bytes of all leaf-module outputs, bytes of the parameters) of one fp32 image at `resolution`.

    A registry name is built on the meta device (instant, even for 9984x9984); a module with real weights is
    deep-copied to the meta device first, so nothing of the activations is ever allocated.
    """
    module = _meta_module(model)
    total = 0

    def on_forward(mod: nn.Module, _inputs: tuple[torch.Tensor, ...], output: object) -> None:
        nonlocal total
        if next(mod.children(), None) is not None:
            return  # containers re-expose their children's outputs
        for t in output if isinstance(output, tuple | list) else (output,):
            if isinstance(t, torch.Tensor):
                total += t.numel() * FP32_BYTES

    params = sum(p.numel() for p in module.parameters()) * FP32_BYTES
    _run_meta(module, resolution, [m.register_forward_hook(on_forward) for m in module.modules()])
    return total, params


def attention_map_bytes(model: str | nn.Module, resolution: Resolution) -> int:
    """fp32 bytes of the largest attention-core product of one image: a softmax (or quadratic) attention's N×N map
    over all its head groups, or a linear attention's d×d key-value product; 0 without attention.

    The same figure as the deploy info's `map_bytes`, from meta shapes. One block's map is freed before the next
    block runs, so the largest (not the sum) is what a runtime or converter must hold on top of the activations.
    """
    from .efficientvit import LiteMLA  # the attention module; its shapes are read, never changed

    module = _meta_module(model)
    largest = 0

    def on_attention(mod: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        nonlocal largest
        tokens = args[0].shape[-2] * args[0].shape[-1]
        groups = mod.heads * (1 + len(mod.aggreg))
        side = tokens if mod.softmax or tokens <= mod.dim else mod.dim
        largest = max(largest, FP32_BYTES * groups * side * side)

    handles = [m.register_forward_pre_hook(on_attention) for m in module.modules() if isinstance(m, LiteMLA)]
    _run_meta(module, resolution, handles)
    return largest


def _meta_module(model: str | nn.Module) -> nn.Module:
    """The model on the meta device: a registry name is built there (instant, even for 9984x9984); a module with
    real weights is deep-copied there, so a huge resolution never allocates."""
    if isinstance(model, str):
        with torch.device("meta"):
            return get_builder(model)(num_classes=1000)
    if next(model.parameters()).device.type == "meta":
        return model
    import copy

    return copy.deepcopy(model).to("meta")


def _run_meta(module: nn.Module, resolution: Resolution, handles: list) -> None:
    height, width = resolution
    try:
        with torch.no_grad():
            module.eval()(torch.zeros(1, 3, height, width, device="meta"))
    finally:
        for h in handles:
            h.remove()
