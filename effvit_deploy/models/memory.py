"""How much memory a model needs at a resolution, from its shapes alone (meta tensors: nothing is allocated).

`activation_bytes` sums the fp32 size of every leaf module's output for one image: a traced or converted graph keeps
each of those intermediate values alive at once, so the sum (not the largest single tensor) is what converters and
the first inference of an unplanned runtime hold. `effvit_deploy.memory_guard` turns it into a peak estimate with
factors calibrated against measured peaks. Ops inside a leaf module (a softmax twin's attention matrix) are not
counted.
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
    height, width = resolution
    if isinstance(model, str):
        with torch.device("meta"):
            module = get_builder(model)(num_classes=1000)
    else:
        module = model
    total = 0

    def on_forward(mod: nn.Module, _inputs: tuple[torch.Tensor, ...], output: object) -> None:
        nonlocal total
        if next(mod.children(), None) is not None:
            return  # containers re-expose their children's outputs
        for t in output if isinstance(output, tuple | list) else (output,):
            if isinstance(t, torch.Tensor):
                total += t.numel() * FP32_BYTES

    params = sum(p.numel() for p in module.parameters()) * FP32_BYTES
    device = next(module.parameters()).device
    if device.type != "meta":
        # a real module at a huge resolution would allocate: measure its shapes on a meta copy instead
        import copy

        module = copy.deepcopy(module).to("meta")
        device = torch.device("meta")
    handles = [m.register_forward_hook(on_forward) for m in module.modules()]
    try:
        with torch.no_grad():
            module.eval()(torch.zeros(1, 3, height, width, device=device))
    finally:
        for h in handles:
            h.remove()
    return total, params
