"""Choosing the layer whose activations Score-CAM explains, and reading them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from artseg.errors import ArtsegInputError


def _contains_conv2d(module: nn.Module) -> bool:
    return any(isinstance(sub, nn.Conv2d) for sub in module.modules())


def resolve_target_layer(model: nn.Module, target_layer: nn.Module | None = None) -> nn.Module:
    """Return the module whose output is the activation stack Score-CAM weights.

    Parameters
    ----------
    model : torch.nn.Module
        The classifier.
    target_layer : torch.nn.Module, optional
        A submodule of `model`. Returned as is after checking that it belongs to
        `model`.

    Returns
    -------
    torch.nn.Module
        `target_layer` if given; otherwise ``model.last_stage`` when the model has
        that attribute (ArtSeg's own networks), otherwise the last direct child of
        `model`, in registration order, that is or contains an ``nn.Conv2d``.

    Raises
    ------
    ArtsegInputError
        If `target_layer` is not a submodule of `model`, or no convolutional child
        exists to choose.

    Notes
    -----
    Registration order is the order in which ``__init__`` assigned the children,
    which for ordinary feed-forward classifiers (torchvision ResNet/VGG, ArtSeg's
    ResNet) is also execution order. A model that registers its stages out of order
    should pass `target_layer` explicitly.
    """
    if target_layer is not None:
        if not isinstance(target_layer, nn.Module):
            raise ArtsegInputError(
                f"target_layer must be an nn.Module of the model, got {type(target_layer).__name__}"
            )
        if not any(sub is target_layer for sub in model.modules()):
            raise ArtsegInputError(
                f"target_layer {type(target_layer).__name__} is not a submodule of the model"
            )
        return target_layer
    last_stage = getattr(model, "last_stage", None)
    if isinstance(last_stage, nn.Module):
        return last_stage
    for child in reversed(list(model.children())):
        if _contains_conv2d(child):
            return child
    raise ArtsegInputError(
        f"cannot choose a Score-CAM target layer: {type(model).__name__} has no "
        "'last_stage' attribute and no child containing nn.Conv2d; pass target_layer"
    )


@contextmanager
def recorded_output(layer: nn.Module) -> Iterator[list[torch.Tensor]]:
    """Record `layer`'s forward outputs while the context is open.

    Yields a list that receives the detached output of every call of `layer`; the
    hook is removed on exit, also when the body raises.
    """
    outputs: list[torch.Tensor] = []

    def keep_output(module: nn.Module, inputs: tuple, output: object) -> None:
        if not isinstance(output, torch.Tensor) or output.ndim != 4:
            raise ArtsegInputError(
                f"target layer {type(module).__name__} must output a (N, K, h, w) tensor, got "
                + (f"shape {tuple(output.shape)}" if isinstance(output, torch.Tensor)
                   else type(output).__name__)
            )
        outputs.append(output.detach())

    handle = layer.register_forward_hook(keep_output)
    try:
        yield outputs
    finally:
        handle.remove()


@contextmanager
def evaluation_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put `model` in eval mode for the context, then restore every module's flag."""
    previous = {module: module.training for module in model.modules()}
    model.eval()
    try:
        yield model
    finally:
        for module, was_training in previous.items():
            module.training = was_training
