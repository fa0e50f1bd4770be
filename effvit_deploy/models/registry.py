"""Model registry: one dict from model name to builder, filled by decorators in the family modules."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from ..errors import InvalidInputError

ModelBuilder = Callable[..., nn.Module]
_REGISTRY: dict[str, ModelBuilder] = {}


def register_model(name: str) -> Callable[[ModelBuilder], ModelBuilder]:
    """Register `fn(num_classes=...) -> nn.Module` under `name`."""

    def wrap(fn: ModelBuilder) -> ModelBuilder:
        assert name not in _REGISTRY, f"model {name} registered twice"
        _REGISTRY[name] = fn
        return fn

    return wrap


def names() -> list[str]:
    """All registered model names, in registration order."""
    return list(_REGISTRY)


def get_builder(name: str) -> ModelBuilder:
    """The builder for `name`, or an error that lists the valid names."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise InvalidInputError(f"unknown model {name!r}; choose one of: {', '.join(_REGISTRY)}") from None
