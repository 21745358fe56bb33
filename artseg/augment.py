"""Training-time augmentations: dihedral transforms shared by image and pixel targets,
and mild intensity jitter on the image only. Pure functions on torch tensors."""

from __future__ import annotations

import numpy as np
import torch


def random_dihedral(
    images: torch.Tensor, targets: torch.Tensor | None, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Flip and rotate each sample by a random element of the dihedral group.

    Parameters
    ----------
    images : torch.Tensor
        ``(N, C, H, W)``.
    targets : torch.Tensor or None
        Pixel targets ``(N, K, H, W)``, transformed exactly like their image; ``None`` or
        image-level targets (``ndim < 4``) are returned unchanged.
    rng : numpy.random.Generator
        Source of the random choices.

    Returns
    -------
    images, targets : torch.Tensor
        Transformed copies. 90° rotations are used only for square images, so shapes are kept.
    """
    n, _, height, width = images.shape
    allowed_turns = np.array([0, 1, 2, 3]) if height == width else np.array([0, 2])
    turns = rng.choice(allowed_turns, size=n)
    flips = rng.random(n) < 0.5
    pixel_targets = targets is not None and targets.ndim == 4
    out_images, out_targets = [], []
    for index in range(n):
        image = _dihedral(images[index], int(turns[index]), bool(flips[index]))
        out_images.append(image)
        if pixel_targets:
            out_targets.append(_dihedral(targets[index], int(turns[index]), bool(flips[index])))
    new_targets = torch.stack(out_targets) if pixel_targets else targets
    return torch.stack(out_images), new_targets


def _dihedral(tensor: torch.Tensor, turns: int, flip: bool) -> torch.Tensor:
    if flip:
        tensor = torch.flip(tensor, dims=(-1,))
    if turns:
        tensor = torch.rot90(tensor, turns, dims=(-2, -1))
    return tensor


def jitter_intensity(images: torch.Tensor, rng: np.random.Generator, strength: float) -> torch.Tensor:
    """Return ``images * gain + offset`` with one random gain and offset per sample.

    ``gain ~ U(1 - strength, 1 + strength)`` and ``offset ~ U(-strength/2, strength/2)``,
    mimicking illumination changes between fields on images normalised to about [0, 1].
    ``strength = 0`` returns the input unchanged.
    """
    if strength <= 0:
        return images
    n = images.shape[0]
    gain = torch.as_tensor(rng.uniform(1 - strength, 1 + strength, n), dtype=images.dtype)
    offset = torch.as_tensor(rng.uniform(-strength / 2, strength / 2, n), dtype=images.dtype)
    shape = (n,) + (1,) * (images.ndim - 1)
    return images * gain.view(shape).to(images.device) + offset.view(shape).to(images.device)


def augment_batch(
    images: torch.Tensor,
    targets: torch.Tensor | None,
    rng: np.random.Generator,
    *,
    intensity_jitter: float,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Apply :func:`random_dihedral` (jointly) and then :func:`jitter_intensity` (images only)."""
    images, targets = random_dihedral(images, targets, rng)
    return jitter_intensity(images, rng, intensity_jitter), targets
