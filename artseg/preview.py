"""Montages of fields with their artifact outlines, to look at a dataset before training on it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage
from skimage.transform import resize

__all__ = ["montage", "outline"]

_OUTLINE_COLOR = (255, 40, 40)
_LABEL_COLORS = {0: (60, 200, 90), 1: (255, 190, 0)}
_GAP_COLOR = (24, 24, 24)


def outline(mask: np.ndarray, thickness: int = 1) -> np.ndarray:
    """Inner boundary pixels of a boolean mask, ``thickness`` pixels wide.

    Examples
    --------
    >>> import numpy as np
    >>> m = np.zeros((5, 5), bool); m[1:4, 1:4] = True
    >>> int(outline(m).sum())
    8
    """
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return np.zeros_like(mask)
    eroded = ndimage.binary_erosion(mask, iterations=max(1, thickness), border_value=1)
    return mask & ~eroded


def _to_gray_uint8(image: np.ndarray, low: float, high: float) -> np.ndarray:
    values = np.asarray(image, dtype=np.float32)
    lo, hi = np.percentile(values, [low, high])
    scaled = (values - lo) / (hi - lo) if hi > lo else np.zeros_like(values)
    return np.clip(np.rint(scaled * 255), 0, 255).astype(np.uint8)


def montage(
    images: Sequence[np.ndarray],
    masks: Sequence[np.ndarray | None] | None = None,
    *,
    labels: Sequence[int | None] | None = None,
    columns: int | None = None,
    tile_size: int | tuple[int, int] | None = None,
    low: float = 0.5,
    high: float = 99.5,
    gap: int = 4,
    outline_color: tuple[int, int, int] = _OUTLINE_COLOR,
    outline_thickness: int = 1,
    gray_levels: int = 256,
) -> np.ndarray:
    """Arrange gray fields in a grid with their artifact outlines drawn in colour.

    Parameters
    ----------
    images : sequence of numpy.ndarray
        2-D gray images of any dtype; each is scaled by its own ``low``/``high`` percentiles.
    masks : sequence of numpy.ndarray or None, optional
        Artifact masks (non-zero = artifact), one per image; ``None`` entries draw nothing.
    labels : sequence of int or None, optional
        Image-level labels; a thin frame shows them (amber = artifact, green = clean).
    columns : int, optional
        Grid columns (at most ``n``); default ``ceil(sqrt(n))``.
    tile_size : int or (H, W), optional
        Size every field is resized to; default the first image's shape.
    low, high : float
        Percentiles mapped to black and white.
    gap : int
        Pixels between tiles (label frames are drawn inside the gap).
    outline_color : tuple of int
        RGB of the artifact outlines.
    outline_thickness : int
        Outline width in tile pixels.
    gray_levels : int
        Distinct gray levels (2..256); fewer levels make much smaller PNG files.

    Returns
    -------
    numpy.ndarray
        uint8 ``(rows * (h + gap) + gap, columns * (w + gap) + gap, 3)``.

    Raises
    ------
    ValueError
        No images, or ``masks`` / ``labels`` of a different length than ``images``.

    Examples
    --------
    >>> import numpy as np
    >>> grid = montage([np.zeros((8, 8)), np.ones((8, 8))], columns=2, gap=1)
    >>> grid.shape, grid.dtype
    ((10, 19, 3), dtype('uint8'))
    """
    if len(images) == 0:
        raise ValueError("montage needs at least one image")
    if not 2 <= gray_levels <= 256:
        raise ValueError(f"gray_levels must be in 2..256, got {gray_levels}")
    if masks is not None and len(masks) != len(images):
        raise ValueError(f"{len(masks)} masks for {len(images)} images")
    if labels is not None and len(labels) != len(images):
        raise ValueError(f"{len(labels)} labels for {len(images)} images")
    n = len(images)
    columns = min(columns or int(np.ceil(np.sqrt(n))), n)
    rows = int(np.ceil(n / columns))
    if tile_size is None:
        tile_h, tile_w = np.shape(images[0])[:2]
    elif isinstance(tile_size, int):
        tile_h = tile_w = tile_size
    else:
        tile_h, tile_w = tile_size
    grid = np.empty((rows * (tile_h + gap) + gap, columns * (tile_w + gap) + gap, 3), np.uint8)
    grid[...] = _GAP_COLOR
    for index, image in enumerate(images):
        gray = _to_gray_uint8(image, low, high)
        if gray.shape != (tile_h, tile_w):
            gray = np.rint(resize(gray, (tile_h, tile_w), order=1, preserve_range=True, anti_aliasing=True)).astype(np.uint8)
        if gray_levels < 256:
            step = 255.0 / (gray_levels - 1)
            gray = np.rint(np.rint(gray / step) * step).astype(np.uint8)
        tile = np.repeat(gray[..., None], 3, axis=2)
        mask = None if masks is None else masks[index]
        if mask is not None:
            mask = np.asarray(mask) != 0
            if mask.shape != (tile_h, tile_w):
                mask = resize(mask.astype(np.float32), (tile_h, tile_w), order=0) > 0.5
            tile[outline(mask, outline_thickness)] = outline_color
        row, col = divmod(index, columns)
        top, left = gap + row * (tile_h + gap), gap + col * (tile_w + gap)
        label = None if labels is None else labels[index]
        if label is not None and gap > 0:
            frame = max(1, gap // 2)
            grid[top - frame : top + tile_h + frame, left - frame : left + tile_w + frame] = _LABEL_COLORS[int(bool(label))]
        grid[top : top + tile_h, left : left + tile_w] = tile
    return grid
