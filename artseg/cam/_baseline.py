"""What a masked-out pixel becomes in Score-CAM's masked inputs."""

from __future__ import annotations

import math

import torch

from artseg.errors import ArtsegInputError

BaselineSpec = None | float | str | torch.Tensor


def baseline_images(images: torch.Tensor, baseline: BaselineSpec) -> torch.Tensor:
    """Per-image baseline that Score-CAM blends towards where a mask is 0.

    The masked input is ``baseline + mask * (image - baseline)``; with the original
    Score-CAM's zero baseline this is ``mask * image``.

    Parameters
    ----------
    images : torch.Tensor
        ``(N, C, H, W)`` float images.
    baseline : None, float, {"mean", "background"} or torch.Tensor
        ``None`` (original Score-CAM) or a number: that constant. ``"mean"``: each
        image's per-channel mean. ``"background"``: each image's per-channel median,
        a robust background level for brightfield fields where artifacts (often
        dark) cover a minority of pixels. A tensor: any baseline broadcastable to
        `images`, e.g. a fitted background image.

    Returns
    -------
    torch.Tensor
        float32 tensor of shape ``(N, C, 1, 1)`` or ``(N, C, H, W)``.

    Raises
    ------
    ArtsegInputError
        For an unknown string, a non-finite number, or a tensor that does not broadcast.
    """
    n_images, n_channels = images.shape[:2]
    if baseline is None:
        return images.new_zeros((n_images, n_channels, 1, 1))
    if isinstance(baseline, str):
        flat = images.reshape(n_images, n_channels, -1)
        if baseline == "mean":
            level = flat.mean(dim=2)
        elif baseline == "background":
            level = flat.median(dim=2).values
        else:
            raise ArtsegInputError(
                f"baseline must be None, a number, 'mean', 'background' or a tensor, got {baseline!r}"
            )
        return level[:, :, None, None].float()
    if isinstance(baseline, torch.Tensor):
        try:
            expanded = torch.broadcast_to(baseline.to(images.device, torch.float32), images.shape)
        except RuntimeError:
            raise ArtsegInputError(
                f"baseline tensor of shape {tuple(baseline.shape)} does not broadcast to images "
                f"of shape {tuple(images.shape)}"
            ) from None
        if not torch.isfinite(expanded).all():
            raise ArtsegInputError("baseline tensor contains NaN or infinite values")
        return expanded
    if isinstance(baseline, (int, float)) and not isinstance(baseline, bool):
        if not math.isfinite(baseline):
            raise ArtsegInputError(f"baseline must be finite, got {baseline!r}")
        return images.new_full((n_images, n_channels, 1, 1), float(baseline))
    raise ArtsegInputError(
        f"baseline must be None, a number, 'mean', 'background' or a tensor, got {type(baseline).__name__}"
    )
