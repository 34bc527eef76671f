"""A small registry of named model configurations behind one factory, `create_model`."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from torch import nn

from emenet.errors import EMENetInputError
from emenet.models.emenet import EMENet, EMENetConfig
from emenet.models.emenet_va import EMENetVA, EMENetVAConfig

_ModelFactory = Callable[..., nn.Module]
_REGISTRY: dict[str, _ModelFactory] = {}


def register_model(name: str) -> Callable[[_ModelFactory], _ModelFactory]:
    def wrap(fn: _ModelFactory) -> _ModelFactory:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} registered twice")
        _REGISTRY[name] = fn
        return fn
    return wrap


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def create_model(name: str, **overrides) -> nn.Module:
    """Build a registered model; keyword arguments override its config fields.

    >>> create_model("emenet_v_aux", temporal_model="LSTM").tasks
    ('EXPR', 'AU', 'VA', 'FA')
    """
    if name not in _REGISTRY:
        raise EMENetInputError(f"unknown model {name!r}; valid models are {list_models()}")
    return _REGISTRY[name](**overrides)


@register_model("emenet_v")
def emenet_v(**overrides) -> EMENet:
    return EMENet(replace(EMENetConfig(tasks=("EXPR", "AU", "VA")), **overrides))


@register_model("emenet_v_aux")
def emenet_v_aux(**overrides) -> EMENet:
    return EMENet(replace(EMENetConfig(tasks=("EXPR", "AU", "VA", "FA")), **overrides))


@register_model("emenet_va")
def emenet_va(**overrides) -> EMENetVA:
    return EMENetVA(replace(EMENetVAConfig(tasks=("EXPR", "AU", "VA")), **overrides))


@register_model("emenet_va_aux")
def emenet_va_aux(**overrides) -> EMENetVA:
    """EMENet-VA with both auxiliary heads: face alignment (FA) and voice activity (VAD)."""
    return EMENetVA(replace(EMENetVAConfig(tasks=("EXPR", "AU", "VA", "FA", "VAD")), **overrides))
