"""Tiled inference for images larger than the network's comfortable input (cellpose-style).

The image is reflect-padded to a multiple of ``multiple`` and cut into overlapping tiles whose
origins are multiples of ``multiple`` (so a U-Net's pooling grid is the same in every tile and
in the whole image). Tiles are predicted in small batches and blended with per-tile weights:
along an edge shared with a neighbouring tile the weight is zero for the outer quarter of the
overlap (where zero-padding inside the network distorts the output), then rises as a cosine
ramp to one. Edges on the image border keep full weight. Memory is bounded by one batch of
tiles plus the (K, H, W) accumulators.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from tqdm.auto import tqdm

from artseg.errors import ArtsegInputError

PredictFn = Callable[[np.ndarray], np.ndarray]


def tile_origins(length: int, tile: int, overlap: int, multiple: int) -> list[int]:
    """Return tile start positions along one axis of a padded length.

    ``length`` and ``tile`` are multiples of ``multiple``. Starts are multiples of ``multiple``,
    the first is 0, the last is ``length - tile``, and neighbouring tiles overlap by at least
    ``overlap`` pixels.
    """
    if tile >= length:
        return [0]
    span_units = (length - tile) // multiple
    max_step_units = max(1, (tile - overlap) // multiple)
    n_tiles = -(-span_units // max_step_units) + 1
    units = np.floor(np.linspace(0, span_units, n_tiles) + 0.5).astype(int)
    return sorted({int(u) * multiple for u in units})


def edge_window(size: int, ramp_before: bool, ramp_after: bool, overlap: int) -> np.ndarray:
    """1-D blending weights of one tile: a cosine ramp on each side that has a neighbour.

    Weights are 0 for the first ``overlap // 4`` pixels from a shared edge, then rise over
    ``overlap - 2 * (overlap // 4)`` pixels to 1; a side without a neighbour stays at 1.
    """
    weights = np.ones(size, dtype=np.float64)
    margin = overlap // 4
    ramp = max(1, overlap - 2 * margin)
    distance = np.arange(size, dtype=np.float64)
    rise = np.sin(0.5 * np.pi * np.clip((distance - margin + 0.5) / ramp, 0.0, 1.0)) ** 2
    if ramp_before:
        weights = np.minimum(weights, rise)
    if ramp_after:
        weights = np.minimum(weights, rise[::-1])
    return weights


def predict_tiled(
    predict_fn: PredictFn,
    image: np.ndarray,
    *,
    tile_size: int = 512,
    overlap: int = 64,
    batch_size: int = 4,
    multiple: int = 32,
    progress: bool = False,
) -> np.ndarray:
    """Predict a large image tile by tile and blend the tiles without seams.

    Parameters
    ----------
    predict_fn : callable
        ``predict_fn(batch)`` with ``batch`` float32 ``(B, C, h, w)`` returns ``(B, K, h, w)``
        (e.g. per-pixel probabilities of a U-Net). ``h`` and ``w`` are multiples of ``multiple``.
    image : numpy.ndarray
        ``(H, W)`` or ``(C, H, W)``, already normalised.
    tile_size : int
        Tile height and width (rounded up to a multiple of ``multiple``); smaller images are
        predicted in one piece after padding.
    overlap : int
        Minimum overlap of neighbouring tiles in pixels. Tiled and whole-image predictions agree
        exactly when the network's receptive field radius is at most ``overlap // 4``.
    batch_size : int
        Tiles per call of ``predict_fn`` (bounds memory).
    multiple : int
        Padding and tile origins are multiples of this (``2**levels`` of the U-Net or more).
    progress : bool
        Show a tqdm bar over tile batches.

    Returns
    -------
    numpy.ndarray
        float32 ``(K, H, W)``.

    Raises
    ------
    ArtsegInputError
        Bad image dimensions or settings, or ``predict_fn`` output of the wrong shape.

    Examples
    --------
    >>> out = predict_tiled(lambda b: b * 2, np.ones((100, 70), np.float32), tile_size=64, overlap=32)
    >>> out.shape, float(out.min()), float(out.max())
    ((1, 100, 70), 2.0, 2.0)
    """
    image = np.asarray(image, dtype=np.float32)
    if image.ndim == 2:
        image = image[None]
    if image.ndim != 3 or min(image.shape[1:]) < 1:
        raise ArtsegInputError(f"predict_tiled needs an (H, W) or (C, H, W) image, got shape {image.shape}")
    if multiple < 1 or overlap < 0 or batch_size < 1 or tile_size < 1:
        raise ArtsegInputError(
            f"bad tiling settings: tile_size={tile_size}, overlap={overlap}, batch_size={batch_size}, "
            f"multiple={multiple}"
        )
    _, height, width = image.shape
    tile = _round_up(tile_size, multiple)
    if overlap >= tile:
        raise ArtsegInputError(f"overlap {overlap} must be smaller than the tile size {tile}")
    padded_h, padded_w = _round_up(height, multiple), _round_up(width, multiple)
    padded = np.pad(image, ((0, 0), (0, padded_h - height), (0, padded_w - width)), mode="reflect")
    tile_h, tile_w = min(tile, padded_h), min(tile, padded_w)
    rows = tile_origins(padded_h, tile_h, overlap, multiple)
    cols = tile_origins(padded_w, tile_w, overlap, multiple)
    row_windows = [edge_window(tile_h, i > 0, i < len(rows) - 1, overlap) for i in range(len(rows))]
    col_windows = [edge_window(tile_w, j > 0, j < len(cols) - 1, overlap) for j in range(len(cols))]
    tiles = [(i, j) for i in range(len(rows)) for j in range(len(cols))]

    accumulated: np.ndarray | None = None
    weight_sum = np.zeros((padded_h, padded_w), dtype=np.float64)
    batches = range(0, len(tiles), batch_size)
    for start in tqdm(batches, desc="tiles", unit="batch", disable=not progress, leave=False):
        chunk = tiles[start : start + batch_size]
        batch = np.stack([padded[:, rows[i] : rows[i] + tile_h, cols[j] : cols[j] + tile_w] for i, j in chunk])
        output = np.asarray(predict_fn(batch))
        if output.ndim != 4 or output.shape[0] != len(chunk) or output.shape[2:] != (tile_h, tile_w):
            raise ArtsegInputError(
                f"predict_fn returned shape {output.shape} for a batch of shape {batch.shape}; "
                f"expected ({len(chunk)}, K, {tile_h}, {tile_w})"
            )
        if accumulated is None:
            accumulated = np.zeros((output.shape[1], padded_h, padded_w), dtype=np.float64)
        for (i, j), tile_output in zip(chunk, output):
            window = np.outer(row_windows[i], col_windows[j])
            region = (slice(rows[i], rows[i] + tile_h), slice(cols[j], cols[j] + tile_w))
            accumulated[(slice(None),) + region] += tile_output * window
            weight_sum[region] += window
    blended = accumulated / weight_sum
    return blended[:, :height, :width].astype(np.float32)


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def extract_patches(image: np.ndarray, target: np.ndarray | None, patch: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Cut an image (and its pixel target) into ``patch`` × ``patch`` training patches.

    The image is reflect-padded to at least ``patch`` per side; patches cover it with the
    least overlap (:func:`tile_origins` with ``multiple=1``). The target is padded and cut
    the same way, so every patch stays aligned with its labels.

    Parameters
    ----------
    image : numpy.ndarray
        ``(H, W)``.
    target : numpy.ndarray or None
        ``(H, W)`` mask or map, or ``None``.
    patch : int
        Patch side in pixels.

    Returns
    -------
    patches : numpy.ndarray
        ``(P, patch, patch)`` of ``image.dtype``.
    target_patches : numpy.ndarray or None
        ``(P, patch, patch)`` of ``target.dtype``.
    """
    image = np.asarray(image)
    if image.ndim != 2:
        raise ArtsegInputError(f"extract_patches needs a 2-D image, got shape {image.shape}")
    if target is not None and np.shape(target) != image.shape:
        raise ArtsegInputError(f"target shape {np.shape(target)} does not match image shape {image.shape}")
    pad = ((0, max(0, patch - image.shape[0])), (0, max(0, patch - image.shape[1])))
    image = np.pad(image, pad, mode="reflect") if any(p for _, p in pad) else image
    if target is not None:
        target = np.pad(np.asarray(target), pad, mode="reflect") if any(p for _, p in pad) else np.asarray(target)
    rows = tile_origins(image.shape[0], patch, 0, 1)
    cols = tile_origins(image.shape[1], patch, 0, 1)
    windows = [(slice(r, r + patch), slice(c, c + patch)) for r in rows for c in cols]
    patches = np.stack([image[w] for w in windows])
    target_patches = None if target is None else np.stack([target[w] for w in windows])
    return patches, target_patches
