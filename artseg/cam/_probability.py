"""Reading a class probability from a classifier's logits (the Score-CAM weight)."""

from __future__ import annotations

import torch

from artseg.errors import ArtsegInputError

ACTIVATIONS = ("auto", "softmax", "sigmoid")


def resolve_activation(activation: str, num_logits: int) -> str:
    """Return ``"softmax"`` or ``"sigmoid"`` for a model with `num_logits` outputs.

    ``"auto"`` reads a single logit as sigmoid(artifact) and several logits with a
    softmax (mutually exclusive classes). ``"sigmoid"`` with several logits treats
    them as independent labels (multi-label artifact types).
    """
    if activation not in ACTIVATIONS:
        raise ArtsegInputError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
    if activation == "auto":
        return "sigmoid" if num_logits == 1 else "softmax"
    if activation == "softmax" and num_logits == 1:
        raise ArtsegInputError("activation='softmax' needs a model with at least 2 logits, got 1")
    return activation


def check_class_index(class_idx: int | None, num_logits: int, activation: str) -> None:
    """Raise `ArtsegInputError` unless `class_idx` names a class of this model."""
    if class_idx is None:
        return
    num_classes = 2 if (activation == "sigmoid" and num_logits == 1) else num_logits
    if isinstance(class_idx, bool) or not isinstance(class_idx, int) or not 0 <= class_idx < num_classes:
        raise ArtsegInputError(
            f"class_idx must be an int in [0, {num_classes - 1}] for a model with "
            f"{num_logits} logit(s) read with {activation}, got {class_idx!r}"
        )


def class_probability(logits: torch.Tensor, class_idx: torch.Tensor, activation: str) -> torch.Tensor:
    """Probability of one class per row of `logits`.

    Parameters
    ----------
    logits : torch.Tensor
        ``(B, L)`` model outputs; computed in float32 whatever their dtype.
    class_idx : torch.Tensor
        ``(B,)`` integer class per row.
    activation : {"softmax", "sigmoid"}
        ``softmax`` over the `L` logits, or ``sigmoid`` per logit. A single sigmoid
        logit is the artifact probability: class 1 is ``sigmoid(z)``, class 0 its
        complement ``sigmoid(-z)``.

    Returns
    -------
    torch.Tensor
        ``(B,)`` float32 probabilities.
    """
    logits = logits.float()
    rows = torch.arange(logits.shape[0], device=logits.device)
    if activation == "softmax":
        return torch.softmax(logits, dim=1)[rows, class_idx]
    if logits.shape[1] == 1:
        sign = torch.where(class_idx == 1, 1.0, -1.0).to(logits.device)
        return torch.sigmoid(sign * logits[:, 0])
    return torch.sigmoid(logits[rows, class_idx])


def predicted_class(logits: torch.Tensor, activation: str) -> torch.Tensor:
    """The most probable class per row of ``(B, L)`` `logits` (``(B,)`` int64)."""
    if activation == "sigmoid" and logits.shape[1] == 1:
        return (logits[:, 0] >= 0).long()
    return logits.argmax(dim=1)
