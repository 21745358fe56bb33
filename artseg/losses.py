"""Training losses for pixel networks under weak (image-level) supervision.

The paper trains its U-Net with binary cross-entropy on binarised Score-CAM maps. At
CPU scale those maps are coarse (one cell per 32 px) and the pseudo-masks over-inclusive,
so :func:`partial_mil_loss` offers a second way to use the same maps: pixels the map rules
out are negatives, pixels it points at are *unknown*, and one multiple-instance term per
image asks that the most artifact-like pixels of an artifact image's unknown region be
artifact while the most artifact-like pixels of a clean image are not. Clean images then
teach, pixel by pixel, what normal cells and background look like; the artifact labels
still come from image-level labels only.

Targets are ``uint8`` maps with :data:`NEGATIVE` (0), :data:`POSITIVE` (1) and
:data:`UNKNOWN` (2); see :func:`artseg.weak.partial_targets`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from artseg.errors import ArtsegInputError

NEGATIVE, POSITIVE, UNKNOWN = 0, 1, 2


def top_fraction_pool(logits: torch.Tensor, region: torch.Tensor, *, top_fraction: float,
                      min_pixels: int) -> torch.Tensor:
    """Mean of the largest logits inside a region, one value per sample.

    Parameters
    ----------
    logits : torch.Tensor
        ``(N, H*W)`` pixel logits.
    region : torch.Tensor
        ``(N, H*W)`` bool; every row must hold at least one True.
    top_fraction : float
        Share of each row's region pixels that is pooled.
    min_pixels : int
        At least this many pixels are pooled (fewer only when the region is smaller).

    Returns
    -------
    torch.Tensor
        ``(N,)`` pooled logits.
    """
    pooled = []
    for row_logits, row_region in zip(logits, region):
        n_region = int(row_region.sum())
        k = min(n_region, max(min_pixels, math.ceil(top_fraction * n_region)))
        pooled.append(row_logits[row_region].topk(k).values.mean())
    return torch.stack(pooled)


def partial_mil_loss(model: nn.Module, images: torch.Tensor, targets: torch.Tensor | None, *,
                     top_fraction: float = 0.02, min_pixels: int = 16, mil_weight: float = 1.0) -> torch.Tensor:
    """Partial-label BCE plus a two-sided multiple-instance term (a ``compute_loss`` for ``fit``).

    Parameters
    ----------
    model : torch.nn.Module
        Maps ``(N, C, H, W)`` images to ``(N, 1, H, W)`` logits.
    images : torch.Tensor
        A batch of images.
    targets : torch.Tensor
        ``(N, 1, H, W)`` maps of :data:`NEGATIVE` / :data:`POSITIVE` / :data:`UNKNOWN`.
    top_fraction, min_pixels : float, int
        Pooling of :func:`top_fraction_pool`.
    mil_weight : float
        Weight of the multiple-instance term against the pixel term.

    Returns
    -------
    torch.Tensor
        Scalar loss: mean BCE over known pixels + `mil_weight` × BCE of the pooled logits,
        where samples with positive or unknown pixels pool over those pixels towards 1 and
        samples without any pool over all their pixels towards 0.
    """
    if targets is None:
        raise ArtsegInputError("partial_mil_loss needs pixel targets")
    logits = model(images).float()
    if logits.shape != targets.shape:
        raise ArtsegInputError(f"logits {tuple(logits.shape)} and targets {tuple(targets.shape)} differ in shape")
    known = targets != UNKNOWN
    if bool(known.any()):
        pixel_term = F.binary_cross_entropy_with_logits(logits[known], targets[known].float())
    else:
        pixel_term = logits.sum() * 0.0
    flat_logits = logits.flatten(1)
    candidates = (targets.flatten(1) == POSITIVE) | (targets.flatten(1) == UNKNOWN)
    has_candidates = candidates.any(dim=1)
    region = torch.where(has_candidates[:, None], candidates, torch.ones_like(candidates))
    pooled = top_fraction_pool(flat_logits, region, top_fraction=top_fraction, min_pixels=min_pixels)
    mil_term = F.binary_cross_entropy_with_logits(pooled, has_candidates.float())
    return pixel_term + mil_weight * mil_term
