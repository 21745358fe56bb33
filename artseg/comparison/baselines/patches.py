"""Patch sampling and patch-to-pixel score spreading shared by the patch-based detectors."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from artseg.errors import ArtsegInputError

__all__ = [
    "random_crops",
    "gather_patches",
    "sample_jitter_pairs",
    "sample_neighbour_pairs",
    "NEIGHBOUR_DIRECTIONS",
    "distribute_patch_scores",
]

# (row, column) direction of the 8 neighbours, indexed by the position-classification label.
NEIGHBOUR_DIRECTIONS = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))


def random_crops(
    images: Sequence[np.ndarray], crop_size: int, crops_per_image: int, rng: np.random.Generator
) -> np.ndarray:
    """Cut square crops at uniformly random positions from each image.

    Parameters
    ----------
    images : sequence of ndarray
        2-D images, each at least ``crop_size`` on both sides.
    crop_size : int
        Side of the crops.
    crops_per_image : int
        Crops taken from every image.
    rng : numpy.random.Generator
        Source of the positions.

    Returns
    -------
    ndarray
        ``(len(images) * crops_per_image, crop_size, crop_size)`` float32, grouped by image.

    Raises
    ------
    ArtsegInputError
        If an image is smaller than the crop.
    """
    crops = np.empty((len(images) * crops_per_image, crop_size, crop_size), dtype=np.float32)
    for image_index, image in enumerate(images):
        height, width = image.shape
        if height < crop_size or width < crop_size:
            raise ArtsegInputError(
                f"clean image {image_index}: size {height}x{width} is smaller than the {crop_size} px training crop"
            )
        rows = rng.integers(0, height - crop_size + 1, size=crops_per_image)
        cols = rng.integers(0, width - crop_size + 1, size=crops_per_image)
        for k, (row, col) in enumerate(zip(rows, cols)):
            crops[image_index * crops_per_image + k] = image[row : row + crop_size, col : col + crop_size]
    return crops


def gather_patches(
    images: torch.Tensor, batch_index: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, size: int
) -> torch.Tensor:
    """Cut one ``size`` px patch per request out of a batch of images (differentiable).

    Parameters
    ----------
    images : torch.Tensor
        ``(B, C, H, W)``.
    batch_index, rows, cols : torch.Tensor
        ``(P,)`` long tensors: source image and top-left corner of each patch.
    size : int
        Patch side.

    Returns
    -------
    torch.Tensor
        ``(P, C, size, size)``.
    """
    offsets = torch.arange(size, device=images.device)
    row_grid = (rows[:, None] + offsets)[:, :, None]
    col_grid = (cols[:, None] + offsets)[:, None, :]
    patches = images[batch_index[:, None, None], :, row_grid, col_grid]
    return patches.permute(0, 3, 1, 2)


def sample_jitter_pairs(
    num_pairs: int, extent: int, patch_size: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Corners of patch pairs a few pixels apart (the Patch SVDD loss, Yi & Yoon 2020).

    The first patch is uniform in an ``extent`` px square; the second is shifted by up to
    ``max(1, patch_size // 32)`` px on each axis (never by zero on both), clipped to the square.

    Returns
    -------
    rows_1, cols_1, rows_2, cols_2 : torch.Tensor
        ``(num_pairs,)`` long tensors.
    """
    limit = extent - patch_size
    rows_1 = torch.randint(0, limit + 1, (num_pairs,), generator=generator)
    cols_1 = torch.randint(0, limit + 1, (num_pairs,), generator=generator)
    reach = max(1, patch_size // 32)
    # Draw from the (2r + 1)^2 - 1 non-zero shifts directly instead of rejection sampling.
    side = 2 * reach + 1
    codes = torch.randint(0, side * side - 1, (num_pairs,), generator=generator)
    codes = codes + (codes >= (side * side) // 2).long()
    shift_rows = codes // side - reach
    shift_cols = codes % side - reach
    rows_2 = (rows_1 + shift_rows).clamp(0, limit)
    cols_2 = (cols_1 + shift_cols).clamp(0, limit)
    return rows_1, cols_1, rows_2, cols_2


def sample_neighbour_pairs(
    num_pairs: int, extent: int, patch_size: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Corners of a patch and one of its 8 neighbours, with the neighbour's label.

    As in Patch SVDD's self-supervised task: the neighbour sits ``3K/4 + u`` px away along
    the direction of its label (``u`` uniform in ``[0, K/4)``), clipped to the square.

    Returns
    -------
    rows_1, cols_1, rows_2, cols_2, labels : torch.Tensor
        ``(num_pairs,)`` long tensors; ``labels`` index :data:`NEIGHBOUR_DIRECTIONS`.
    """
    limit = extent - patch_size
    rows_1 = torch.randint(0, limit + 1, (num_pairs,), generator=generator)
    cols_1 = torch.randint(0, limit + 1, (num_pairs,), generator=generator)
    labels = torch.randint(0, len(NEIGHBOUR_DIRECTIONS), (num_pairs,), generator=generator)
    directions = torch.tensor(NEIGHBOUR_DIRECTIONS)[labels]
    spread = max(1, patch_size // 4)
    distance = 3 * patch_size // 4 + torch.randint(0, spread, (num_pairs, 2), generator=generator)
    rows_2 = (rows_1 + directions[:, 0] * distance[:, 0]).clamp(0, limit)
    cols_2 = (cols_1 + directions[:, 1] * distance[:, 1]).clamp(0, limit)
    return rows_1, cols_1, rows_2, cols_2, labels


def distribute_patch_scores(
    patch_scores: torch.Tensor, image_shape: tuple[int, int], patch_size: int, stride: int
) -> torch.Tensor:
    """Spread scores of grid patches to pixels: each pixel averages the patches covering it.

    Parameters
    ----------
    patch_scores : torch.Tensor
        ``(I, J)`` score of the patch with top-left corner ``(i * stride, j * stride)``.
    image_shape : tuple of int
        ``(H, W)`` of the image the grid was taken from.
    patch_size, stride : int
        Patch side and grid step.

    Returns
    -------
    torch.Tensor
        ``(H, W)`` float32; pixels no patch covers (a border narrower than the stride) take
        the value of the nearest covered pixel.

    Examples
    --------
    >>> import torch
    >>> distribute_patch_scores(torch.tensor([[0.0, 2.0]]), (2, 3), patch_size=2, stride=1)
    tensor([[0., 1., 2.],
            [0., 1., 2.]])
    """
    if patch_scores.dim() != 2:
        raise ArtsegInputError(f"patch scores must be a 2-D grid, got shape {tuple(patch_scores.shape)}")
    height, width = image_shape
    kernel = torch.ones(1, 1, patch_size, patch_size, dtype=torch.float32, device=patch_scores.device)
    scores = patch_scores.float()[None, None]
    summed = F.conv_transpose2d(scores, kernel, stride=stride)
    counts = F.conv_transpose2d(torch.ones_like(scores), kernel, stride=stride)
    covered_h, covered_w = summed.shape[-2:]
    averaged = summed / counts
    pad_h, pad_w = max(0, height - covered_h), max(0, width - covered_w)
    if pad_h or pad_w:
        averaged = F.pad(averaged, (0, pad_w, 0, pad_h), mode="replicate")
    return averaged[0, 0, :height, :width]
