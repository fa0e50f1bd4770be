"""Static feature-map sizes: the (H, W) each module of a given type sees at an input resolution, without computing.

The model runs once on the meta device (shapes only, no arithmetic, no memory for activations) through
`torch.func.functional_call`, with forward pre-hooks that record each matching module's input size. A model whose
forward cannot run on meta tensors (data-dependent Python, `.item()`) is run once for real on zeros instead. The
model's own parameters are not touched; the hooks are removed before returning.
"""

from __future__ import annotations

import torch
from torch import nn


def input_sizes(
    model: nn.Module, resolution: tuple[int, int], types: type[nn.Module] | tuple[type[nn.Module], ...]
) -> dict[str, tuple[int, int]]:
    """{qualified module name: (H, W) of its first input} for every module of `types`, for a (1, C, H, W) input."""
    return {name: (shape[-2], shape[-1]) for name, shape in input_shapes(model, resolution, types).items()}


def input_shapes(
    model: nn.Module, resolution: tuple[int, int], types: type[nn.Module] | tuple[type[nn.Module], ...]
) -> dict[str, tuple[int, ...]]:
    """{qualified module name: full shape of its first input} for every module of `types`, as `input_sizes`."""
    names = {module: name for name, module in model.named_modules() if isinstance(module, types)}
    if not names:
        return {}
    sizes: dict[str, tuple[int, ...]] = {}

    def record(module: nn.Module, args: tuple) -> None:
        sizes[names[module]] = tuple(int(d) for d in args[0].shape)

    hooks = [module.register_forward_pre_hook(record) for module in names]
    try:
        meta_state = {k: v.to("meta") for k, v in (*model.named_parameters(), *model.named_buffers())}
        example = torch.empty(1, _in_channels(model), *resolution, device="meta")
        with torch.no_grad():
            try:
                torch.func.functional_call(model, meta_state, (example,))
            except (RuntimeError, NotImplementedError, TypeError):
                sizes.clear()
                param = next(iter(model.parameters()), None)
                dtype = param.dtype if param is not None else torch.float32
                model(torch.zeros(1, _in_channels(model), *resolution, dtype=dtype))
    finally:
        for hook in hooks:
            hook.remove()
    return sizes


def _in_channels(model: nn.Module) -> int:
    """Input channels of the first conv (3 for every registry model)."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            return module.in_channels
    return 3
