"""The cell layer of the held-out look: an optical-path (phase) map of adherent cells.

Cells are the regions of a jittered-seed Voronoi tessellation drawn in a stretched coordinate
frame, so one field's cells share an elongation and a direction, as cells migrating on a dish
do. A density between sparse and confluent decides how many regions hold a cell and how much
of its region each cell fills; a confluent layer keeps one-pixel gaps between neighbours,
which phase contrast shows as bright borders. Each cell is a dome of optical path with a
ruffled edge, granular cytoplasm, a denser nucleus and one to three nucleoli. A few rounded
(mitotic) cells sit on top: round, bright, single, and *not* artifacts, so a model must tell
them from clumps of detached cells.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from .textures import bump, dots, elliptic_radius, granules, smooth_noise


@dataclass(frozen=True)
class CellLayer:
    """Optical path (``phase``, arbitrary units, 0 = medium) and transmission (absorption) of the cells."""

    phase: np.ndarray
    transmission: np.ndarray
    density: float


def _stretched_seeds(rng, shape, spacing: float, angle: float, aspect: float):
    """Jittered grid of seeds in the stretched frame covering the (padded) field."""
    height, width = shape
    corners = np.array([[0, 0], [0, width], [height, 0], [height, width]], float)
    frame = _to_frame(corners, angle, aspect)
    low, high = frame.min(axis=0) - 2 * spacing, frame.max(axis=0) + 2 * spacing
    grid_r = np.arange(low[0], high[0], spacing)
    grid_c = np.arange(low[1], high[1], spacing)
    seeds = np.stack(np.meshgrid(grid_r, grid_c, indexing="ij"), axis=-1).reshape(-1, 2)
    return seeds + rng.uniform(-0.42, 0.42, seeds.shape) * spacing


def _to_frame(points: np.ndarray, angle: float, aspect: float) -> np.ndarray:
    """Rotate by ``angle`` and shrink the first axis by ``aspect`` (cells long along it)."""
    c, s = np.cos(angle), np.sin(angle)
    rotated = np.stack([c * points[:, 0] + s * points[:, 1], -s * points[:, 0] + c * points[:, 1]], axis=1)
    rotated[:, 0] /= aspect
    return rotated


def cell_layer(rng: np.random.Generator, shape: tuple[int, int]) -> CellLayer:
    """Draw one field's cells.

    Parameters
    ----------
    rng : numpy.random.Generator
        The field's cell stream (nothing else draws from it).
    shape : (int, int)
        Field shape.

    Returns
    -------
    CellLayer

    Examples
    --------
    >>> layer = cell_layer(np.random.default_rng(1), (64, 64))
    >>> layer.phase.shape, bool(layer.phase.max() > 0)
    ((64, 64), True)
    """
    density = float(rng.uniform(0.15, 1.0))
    spacing = float(rng.uniform(15.0, 26.0))
    angle, aspect = float(rng.uniform(0, np.pi)), float(rng.uniform(1.0, 2.3))
    seeds = _stretched_seeds(rng, shape, spacing, angle, aspect)
    pixels = np.indices(shape, dtype=np.float64).reshape(2, -1).T
    seed_distance, owner = cKDTree(seeds).query(_to_frame(pixels, angle, aspect))
    owner = owner.reshape(shape)
    seed_distance = seed_distance.reshape(shape)

    border = np.zeros(shape, bool)
    border[:-1, :] |= owner[:-1, :] != owner[1:, :]
    border[:, :-1] |= owner[:, :-1] != owner[:, 1:]
    border_distance = ndimage.distance_transform_edt(~border)
    # 0 at a cell's seed, 1 on the border of its region, ruffled by smooth noise
    radial = seed_distance / (seed_distance + border_distance / np.sqrt(aspect) + 1e-9)
    radial = radial + 0.07 * smooth_noise(rng, shape, 1.8)

    n = len(seeds)
    occupied = rng.random(n) < 0.25 + 0.75 * density
    fill = np.clip(rng.uniform(0.45, 0.75, n) + 0.35 * density, 0.4, 1.05)
    height = rng.uniform(0.55, 1.05, n)
    nucleus = rng.uniform(0.28, 0.42, n)
    inside = occupied[owner] & (radial < fill[owner]) & (border_distance >= 1.0)
    relative = np.where(inside, radial / fill[owner], 1.0)
    dome = np.sqrt(np.clip(1.0 - relative**2, 0.0, 1.0)) ** 0.7
    phase = height[owner] * dome * (1.0 + 0.18 * granules(rng, shape))
    phase += 0.35 * height[owner] * inside * (relative < nucleus[owner] + 0.03 * smooth_noise(rng, shape, 1.5))

    seed_pixels = _seed_pixels(seeds, angle, aspect)
    lit = occupied & (seed_pixels[:, 0] > -4) & (seed_pixels[:, 0] < shape[0] + 4) \
        & (seed_pixels[:, 1] > -4) & (seed_pixels[:, 1] < shape[1] + 4)
    nucleoli = []
    for centre in seed_pixels[lit]:
        for _ in range(int(rng.integers(1, 4))):
            nucleoli.append(centre + rng.normal(0.0, 0.12 * spacing, 2))
    nucleoli = np.array(nucleoli).reshape(-1, 2)
    phase += dots(shape, nucleoli, rng.uniform(0.25, 0.45, len(nucleoli)), 1.0) * inside
    phase = ndimage.gaussian_filter(phase * inside, 0.7)
    transmission = np.exp(-0.03 * phase) * _rounded_cells(rng, shape)
    return CellLayer(phase=phase, transmission=transmission, density=density)


def _seed_pixels(seeds: np.ndarray, angle: float, aspect: float) -> np.ndarray:
    """Seeds back in pixel coordinates (the inverse of :func:`_to_frame`)."""
    unstretched = seeds.copy()
    unstretched[:, 0] *= aspect
    c, s = np.cos(angle), np.sin(angle)
    return np.stack([c * unstretched[:, 0] - s * unstretched[:, 1], s * unstretched[:, 0] + c * unstretched[:, 1]],
                    axis=1)


def _rounded_cells(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Zero to two rounded single cells as a transmission factor: bright, dark-rimmed, like mitotic cells."""
    transmission = np.ones(shape)
    for _ in range(int(rng.choice([0, 0, 1, 1, 2]))):
        centre = rng.uniform(0, shape[0]), rng.uniform(0, shape[1])
        rho = elliptic_radius(shape, centre, rng.uniform(4.5, 7.5))
        transmission *= 1.0 + rng.uniform(0.3, 0.6) * np.clip(1 - rho**2, 0, 1) - 0.45 * bump(rho, 1.0, 0.18)
    return transmission
