"""Build networks from plain-dict specs and recover the spec of a built network.

A spec is ``{"name": <registered name>, **constructor keyword arguments}``; it is what a model
folder's ``config.json`` stores, so a folder rebuilds its networks without pickled code.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn

from artseg.errors import ArtsegInputError
from artseg.nets.resnet import ResNet
from artseg.nets.unet import UNet

_REGISTRY: dict[str, type[nn.Module]] = {}


def register_network(name: str, cls: type[nn.Module]) -> None:
    """Make ``cls`` buildable as ``{"name": name, ...}``.

    The class must accept its settings as keyword arguments and keep them in
    ``self.init_kwargs`` (a JSON-serialisable dict) so :func:`network_spec` can recover them.
    """
    existing = _REGISTRY.get(name)
    if existing is not None and existing is not cls:
        raise ValueError(f"network name {name!r} is already registered for {existing.__name__}")
    _REGISTRY[name] = cls


register_network("resnet", ResNet)
register_network("unet", UNet)


def registered_networks() -> list[str]:
    """Return the names accepted by :func:`build_network`."""
    return sorted(_REGISTRY)


def validate_spec(spec: dict[str, Any], where: str = "network spec") -> None:
    """Raise ArtsegInputError if ``spec`` names no registered network or an unknown argument."""
    if not isinstance(spec, dict) or "name" not in spec:
        raise ArtsegInputError(f"{where}: must be a mapping with a 'name' key, got {spec!r}")
    cls = _REGISTRY.get(spec["name"])
    if cls is None:
        raise ArtsegInputError(
            f"{where}: unknown network {spec['name']!r} (known: {', '.join(registered_networks())})"
        )
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
    unknown = sorted(set(spec) - {"name"} - accepted)
    if unknown:
        raise ArtsegInputError(
            f"{where}: {spec['name']} has no argument(s) {', '.join(unknown)} "
            f"(accepted: {', '.join(sorted(accepted))})"
        )


def build_network(spec: dict[str, Any], *, seed: int | None = None) -> nn.Module:
    """Return a freshly initialised network described by ``spec``.

    Parameters
    ----------
    spec : dict
        ``{"name": "resnet" | "unet" | <registered>, **kwargs}``.
    seed : int, optional
        Initialise the weights from this seed (torch's global generator is left as it was).

    Returns
    -------
    torch.nn.Module

    Raises
    ------
    ArtsegInputError
        Unknown name or argument.

    Examples
    --------
    >>> net = build_network({"name": "unet", "width": 8, "levels": 2})
    >>> network_spec(net)["width"]
    8
    """
    validate_spec(spec)
    kwargs = {key: value for key, value in spec.items() if key != "name"}
    if seed is None:
        return _REGISTRY[spec["name"]](**kwargs)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _REGISTRY[spec["name"]](**kwargs)


def network_spec(module: nn.Module) -> dict[str, Any]:
    """Return the spec that rebuilds ``module`` with :func:`build_network` (weights excluded)."""
    for name, cls in _REGISTRY.items():
        if type(module) is cls:
            return {"name": name, **dict(module.init_kwargs)}
    raise ArtsegInputError(f"{type(module).__name__} is not a registered network; call register_network first")
