"""Cells and nuclei: where they sit, their instance labels and their optical thickness.

Cells are seeded by dart throwing (evenly or in colonies), grown as irregular ellipses and
split where they touch by the nearest-seed (Voronoi) partition, so neighbours share a
border like confluent cells do. Each cell is a dome of optical thickness with a thicker
nucleus, cytoplasmic granules and nucleoli; the brightfield look (halo, dark rim) comes
from that thickness in :mod:`artseg.synth.optics`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from artseg.synth.presets import CellLine
from artseg.synth.textures import bandpass_noise

__all__ = ["Bodies", "CellLayers", "labels_from_radius", "place_bodies", "rasterize_bodies", "render_cells"]

_HARMONICS = np.arange(2, 6)


@dataclass(frozen=True)
class Bodies:
    """Geometry of round-ish bodies (cells, or the cells of a detached clump).

    All arrays have one entry per body; ``centers`` is ``(n, 2)`` as ``(y, x)`` pixels.
    ``harmonic_amplitudes`` and ``harmonic_phases`` are ``(n, 4)`` for outline harmonics 2..5.
    """

    centers: np.ndarray
    radii: np.ndarray
    elongation: np.ndarray
    orientation: np.ndarray
    harmonic_amplitudes: np.ndarray
    harmonic_phases: np.ndarray

    @property
    def count(self) -> int:
        """Number of bodies."""
        return int(self.radii.size)


@dataclass(frozen=True)
class CellLayers:
    """Ground truth and optical maps of the cells of one field.

    Attributes
    ----------
    cells, nuclei : numpy.ndarray
        int32 instance labels; a nucleus has its cell's label.
    cell_radial, nucleus_radial : numpy.ndarray
        float32 normalised radius (0 at the centre, 1 at the outline; >= 1 outside).
    cell_radius : numpy.ndarray
        float32 equivalent radius per label (index 0 unused).
    thickness : numpy.ndarray
        float32 optical path difference (relative units) of cells, nuclei and granules.
    absorbance : numpy.ndarray
        float32 optical density of the cells.
    """

    cells: np.ndarray
    nuclei: np.ndarray
    cell_radial: np.ndarray
    nucleus_radial: np.ndarray
    cell_radius: np.ndarray
    thickness: np.ndarray
    absorbance: np.ndarray


def _body_shapes(rng: np.random.Generator, radii: np.ndarray, elongation: float, roughness: float) -> dict:
    n = radii.size
    stretch = 1.0 + (elongation - 1.0) * rng.lognormal(0.0, 0.3, n)
    amplitudes = roughness * rng.uniform(0.3, 1.0, (n, _HARMONICS.size)) / np.sqrt(_HARMONICS - 1.0)
    return {
        "elongation": np.clip(stretch, 1.0, 4.0),
        "orientation": rng.uniform(0.0, np.pi, n),
        "harmonic_amplitudes": amplitudes,
        "harmonic_phases": rng.uniform(0.0, 2 * np.pi, (n, _HARMONICS.size)),
    }


def place_bodies(
    rng: np.random.Generator,
    shape: tuple[int, int],
    line: CellLine,
    *,
    density_factor: float = 1.0,
) -> Bodies:
    """Seed the cells of one field by dart throwing.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness.
    shape : tuple of int
        ``(H, W)`` of the field.
    line : CellLine
        Morphology and density of the cell line.
    density_factor : float
        Multiplies the line's mean density (per-image seeding variation).

    Returns
    -------
    Bodies
        Centres may lie up to one radius outside the field (cells cut by the border).

    Notes
    -----
    A candidate is kept when it is at least 0.75 (r_i + r_j) from every kept cell, so
    neighbours can touch and are then split by :func:`rasterize_bodies`. With
    probability ``line.clustering`` the candidates gather around a few colony centres.
    """
    height, width = shape
    expected = line.cells_per_mpx * height * width / 1e6 * density_factor
    n_target = int(rng.poisson(expected))
    margin = line.cell_radius
    if n_target == 0:
        empty = np.zeros(0)
        return Bodies(np.zeros((0, 2)), empty, empty, empty, np.zeros((0, 4)), np.zeros((0, 4)))
    n_candidates = 25 * n_target
    if rng.random() < line.clustering:
        n_colonies = max(1, int(rng.poisson(n_target / 15.0)))
        colony_centers = rng.uniform([0.0, 0.0], [height, width], (n_colonies, 2))
        spread = line.cell_radius * np.sqrt(n_target / n_colonies) * 1.1
        candidates = colony_centers[rng.integers(0, n_colonies, n_candidates)]
        candidates = candidates + rng.normal(0.0, spread, (n_candidates, 2))
    else:
        candidates = rng.uniform([-margin, -margin], [height + margin, width + margin], (n_candidates, 2))
    candidate_radii = line.cell_radius * rng.lognormal(0.0, 0.15, n_candidates)
    inside = (
        (candidates[:, 0] > -margin)
        & (candidates[:, 0] < height + margin)
        & (candidates[:, 1] > -margin)
        & (candidates[:, 1] < width + margin)
    )
    candidates, candidate_radii = candidates[inside], candidate_radii[inside]

    kept_centers, kept_radii = _dart_throw(candidates, candidate_radii, n_target, spacing=0.75)
    radii = np.asarray(kept_radii)
    return Bodies(
        centers=np.asarray(kept_centers).reshape(-1, 2),
        radii=radii,
        **_body_shapes(rng, radii, line.elongation, line.roughness),
    )


def _dart_throw(
    candidates: np.ndarray, radii: np.ndarray, n_target: int, *, spacing: float
) -> tuple[list[tuple[float, float]], list[float]]:
    """Keep candidates in order unless closer than ``spacing * (r_i + r_j)`` to a kept one.

    Kept centres are bucketed on a grid as wide as the largest exclusion distance, so
    each candidate is checked against the 3 x 3 neighbouring buckets only.
    """
    if len(radii) == 0:
        return [], []
    bucket = max(2.0 * spacing * float(radii.max()), 1e-6)
    grid: dict[tuple[int, int], list[int]] = {}
    kept_centers: list[tuple[float, float]] = []
    kept_radii: list[float] = []

    def too_close(y: float, x: float, radius: float, key_y: int, key_x: int) -> bool:
        for neighbour in ((key_y + dy, key_x + dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)):
            for index in grid.get(neighbour, ()):
                other_y, other_x = kept_centers[index]
                limit = spacing * (radius + kept_radii[index])
                if (y - other_y) ** 2 + (x - other_x) ** 2 < limit * limit:
                    return True
        return False

    for (y, x), radius in zip(candidates.tolist(), radii.tolist()):
        key_y, key_x = int(y // bucket), int(x // bucket)
        if too_close(y, x, radius, key_y, key_x):
            continue
        grid.setdefault((key_y, key_x), []).append(len(kept_centers))
        kept_centers.append((y, x))
        kept_radii.append(radius)
        if len(kept_centers) == n_target:
            break
    return kept_centers, kept_radii


def rasterize_bodies(shape: tuple[int, int], bodies: Bodies) -> tuple[np.ndarray, np.ndarray]:
    """Label each pixel with its nearest body and its normalised radius within it.

    Parameters
    ----------
    shape : tuple of int
        ``(H, W)`` of the output.
    bodies : Bodies
        Geometry; centres may lie outside the frame.

    Returns
    -------
    labels : numpy.ndarray
        int32, body index + 1 where the pixel lies inside its nearest body's outline, else 0.
    radial : numpy.ndarray
        float32 normalised radius with respect to the nearest body (< 1 inside).

    Notes
    -----
    Nearest seeds come from one Euclidean distance transform with indices (a Voronoi
    partition), so touching bodies get a straight shared border. The outline of body
    ``i`` in its own frame ``(u, v)`` is ``rho = sqrt((u/a)^2 + (v/b)^2) / (1 + sum_k A_k
    cos(k t - phi_k))`` with ``a b = r^2``, ``a / b`` the elongation and ``t`` the polar angle.
    """
    height, width = shape
    if bodies.count == 0:
        return np.zeros(shape, np.int32), np.full(shape, np.inf, np.float32)
    overhang = max(0.0, -bodies.centers.min(), bodies.centers[:, 0].max() - height, bodies.centers[:, 1].max() - width)
    pad = int(np.ceil(overhang)) + 1
    seeds = np.zeros((height + 2 * pad, width + 2 * pad), np.int32)
    rows = np.clip(np.rint(bodies.centers[:, 0]).astype(int) + pad, 0, seeds.shape[0] - 1)
    cols = np.clip(np.rint(bodies.centers[:, 1]).astype(int) + pad, 0, seeds.shape[1] - 1)
    seeds[rows, cols] = np.arange(1, bodies.count + 1)
    nearest = ndimage.distance_transform_edt(seeds == 0, return_distances=False, return_indices=True)
    inner = (slice(pad, pad + height), slice(pad, pad + width))
    owner = seeds[nearest[0][inner], nearest[1][inner]] - 1
    return labels_from_radius(owner, bodies)


def labels_from_radius(owner: np.ndarray, bodies: Bodies) -> tuple[np.ndarray, np.ndarray]:
    """Normalised radius of each pixel in the body ``owner`` assigns it to, and the labels.

    Parameters
    ----------
    owner : numpy.ndarray
        int ``(H, W)`` body index (0-based) per pixel.
    bodies : Bodies
        Geometry of the bodies.

    Returns
    -------
    labels : numpy.ndarray
        int32, ``owner + 1`` where the normalised radius is below 1, else 0.
    radial : numpy.ndarray
        float32 normalised radius (see :func:`rasterize_bodies`).
    """
    height, width = owner.shape
    n_harmonics = bodies.harmonic_amplitudes.shape[1]
    per_body = np.concatenate(
        [
            bodies.centers.T,
            np.cos(bodies.orientation)[None],
            np.sin(bodies.orientation)[None],
            (1.0 / (bodies.radii * np.sqrt(bodies.elongation)))[None],
            (np.sqrt(bodies.elongation) / bodies.radii)[None],
            (bodies.harmonic_amplitudes * np.cos(bodies.harmonic_phases)).T,
            (bodies.harmonic_amplitudes * np.sin(bodies.harmonic_phases)).T,
        ],
        axis=0,
    ).astype(np.float32)

    def gathered(row: int) -> np.ndarray:
        # One contiguous gather per quantity: fast, and never a (H, W, n_quantities) block.
        return per_body[row][owner]

    dy = np.arange(height, dtype=np.float32)[:, None] - gathered(0)
    dx = np.arange(width, dtype=np.float32)[None, :] - gathered(1)
    cos_o, sin_o = gathered(2), gathered(3)
    u = (dx * cos_o + dy * sin_o) * gathered(4)
    v = (dy * cos_o - dx * sin_o) * gathered(5)
    del dx, dy, cos_o, sin_o
    ellipse_radius = np.sqrt(u * u + v * v)
    # cos(k t) and sin(k t) of the polar angle t by the angle-addition recurrence.
    safe = np.maximum(ellipse_radius, np.float32(1e-6))
    cos_1, sin_1 = np.where(ellipse_radius > 0, u / safe, np.float32(1.0)), v / safe
    cos_k, sin_k = cos_1, sin_1
    outline = np.ones(owner.shape, np.float32)
    for k_index in range(n_harmonics):
        cos_k, sin_k = cos_k * cos_1 - sin_k * sin_1, sin_k * cos_1 + cos_k * sin_1  # harmonic k_index + 2
        outline += cos_k * gathered(6 + k_index) + sin_k * gathered(6 + n_harmonics + k_index)
    radial = (ellipse_radius / np.maximum(outline, 0.3)).astype(np.float32)
    labels = np.where(radial < 1.0, owner + 1, 0).astype(np.int32)
    return labels, radial


def _touching_borders(labels: np.ndarray) -> np.ndarray:
    """Pixels of a cell that touch a different cell (not background)."""
    border = np.zeros(labels.shape, bool)
    for before, after in (
        ((slice(None, -1), slice(None)), (slice(1, None), slice(None))),
        ((slice(None), slice(None, -1)), (slice(None), slice(1, None))),
    ):
        differs = (labels[before] != labels[after]) & (labels[before] > 0) & (labels[after] > 0)
        border[before] |= differs
        border[after] |= differs
    return border


def _nuclei(
    rng: np.random.Generator, labels: np.ndarray, bodies: Bodies, line: CellLine
) -> tuple[np.ndarray, np.ndarray, Bodies]:
    """Nucleus labels, normalised nuclear radius and geometry: one ellipse per cell, inside it."""
    n = bodies.count
    radii = line.nucleus_radius * rng.lognormal(0.0, 0.12, n)
    # A nucleus must fit its cell: its short semi-axis stays below ~65 % of the cell's.
    radii = np.minimum(radii, 0.65 * bodies.radii * bodies.elongation**-0.25)
    stretch = np.clip(np.sqrt(bodies.elongation) * rng.lognormal(0.0, 0.08, n), 1.0, 1.8)
    shift = rng.uniform(0.0, 0.2, n) * bodies.radii
    shift_angle = bodies.orientation + rng.choice([0.0, np.pi], n)
    nucleus_bodies = Bodies(
        centers=bodies.centers + np.stack([np.sin(shift_angle), np.cos(shift_angle)], 1) * shift[:, None],
        radii=radii,
        elongation=stretch,
        orientation=bodies.orientation + rng.normal(0.0, 0.2, n),
        harmonic_amplitudes=0.03 * rng.uniform(0.0, 1.0, (n, _HARMONICS.size)),
        harmonic_phases=rng.uniform(0.0, 2 * np.pi, (n, _HARMONICS.size)),
    )
    if n == 0:
        return np.zeros(labels.shape, np.int32), np.full(labels.shape, np.inf, np.float32), nucleus_bodies
    # Each cell's pixels are measured against its own nucleus, not the nearest one.
    nuclei, radial = labels_from_radius(np.maximum(labels - 1, 0), nucleus_bodies)
    nuclei = np.where(labels > 0, nuclei, 0).astype(np.int32)
    radial = np.where(labels > 0, radial, np.inf).astype(np.float32)
    return nuclei, radial, nucleus_bodies


def _spots(
    rng: np.random.Generator,
    owners: np.ndarray,
    bodies: Bodies,
    per_body: np.ndarray,
    reach: float,
    sigma: float,
) -> np.ndarray:
    """Small Gaussian spots of unit peak scattered within each body.

    ``per_body[i]`` spots are dropped uniformly within ``reach`` radii of body ``i``'s centre
    and kept only where ``owners`` (a label image) equals ``i + 1``.
    """
    owner = np.repeat(np.arange(bodies.count), per_body)
    angle = rng.uniform(0.0, 2 * np.pi, owner.size)
    distance = reach * bodies.radii[owner] * np.sqrt(rng.uniform(0.0, 1.0, owner.size))
    rows = np.rint(bodies.centers[owner, 0] + distance * np.sin(angle)).astype(int)
    cols = np.rint(bodies.centers[owner, 1] + distance * np.cos(angle)).astype(int)
    inside = (rows >= 0) & (rows < owners.shape[0]) & (cols >= 0) & (cols < owners.shape[1])
    rows, cols, owner = rows[inside], cols[inside], owner[inside]
    own = owners[rows, cols] == owner + 1
    spots = np.zeros(owners.shape, np.float32)
    spots[rows[own], cols[own]] = 1.0
    return ndimage.gaussian_filter(spots, sigma) * np.float32(2 * np.pi * sigma**2)


def _round_up(rng: np.random.Generator, bodies: Bodies, share: float) -> tuple[Bodies, np.ndarray]:
    """Turn a share of the cells into rounded (mitotic) cells: smaller, round, smooth."""
    rounded = rng.random(bodies.count) < share
    shrink = np.where(rounded, 0.7, 1.0)
    return (
        Bodies(
            centers=bodies.centers,
            radii=bodies.radii * shrink,
            elongation=np.where(rounded, 1.0, bodies.elongation),
            orientation=bodies.orientation,
            harmonic_amplitudes=bodies.harmonic_amplitudes * np.where(rounded, 0.2, 1.0)[:, None],
            harmonic_phases=bodies.harmonic_phases,
        ),
        rounded,
    )


def render_cells(
    rng: np.random.Generator,
    shape: tuple[int, int],
    line: CellLine,
    *,
    density_factor: float = 1.0,
    live: bool = False,
) -> CellLayers:
    """Place and draw the cells of one field.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness.
    shape : tuple of int
        ``(H, W)``.
    line : CellLine
        Cell line morphology.
    density_factor : float
        Per-image multiplier of the seeding density.
    live : bool
        Live cells are domed (rounded); fixed cells are flat with a steep edge.

    Returns
    -------
    CellLayers
    """
    bodies = place_bodies(rng, shape, line, density_factor=density_factor)
    # Every culture has some rounded (dividing) cells and dark vesicles; how many varies
    # from field to field. Both put strong, artifact-like extremes into clean images.
    bodies, rounded = _round_up(rng, bodies, rng.uniform(0.0, 0.15))
    labels, radial = rasterize_bodies(shape, bodies)
    nuclei, nucleus_radial, nucleus_bodies = _nuclei(rng, labels, bodies, line)
    inside = labels > 0

    per_cell_thickness = line.thickness * rng.lognormal(0.0, 0.2, bodies.count) * np.where(rounded, 1.4, 1.0)
    cell_thickness = np.append(0.0, per_cell_thickness).astype(np.float32)[labels]
    is_round = np.append(False, rounded)[labels]
    profile_power = np.where(is_round | live, np.float32(0.5), np.float32(0.3))
    dome = np.where(inside, np.clip(1.0 - radial**2, 0.0, 1.0) ** profile_power, 0.0).astype(np.float32)
    nucleus_dome = np.where(nuclei > 0, np.sqrt(np.clip(1.0 - nucleus_radial**2, 0.0, 1.0)), 0.0).astype(np.float32)

    granules = bandpass_noise(rng, shape, 0.8, 2.0)
    chromatin = bandpass_noise(rng, shape, 0.6, 1.5)
    cytoplasm = inside & (nuclei == 0)
    nucleoli = _spots(rng, nuclei, nucleus_bodies, rng.integers(1, 4, bodies.count), 0.5, 1.3)
    vesicles_per_cell = rng.uniform(0.0, 15.0)
    vesicle_counts = rng.poisson(vesicles_per_cell, bodies.count)
    vesicles = _spots(rng, np.where(cytoplasm, labels, 0), bodies, vesicle_counts, 0.85, rng.uniform(0.7, 1.2))
    vesicle_density = rng.uniform(0.15, 0.7) * (1.0 if rng.random() < 0.75 else -0.5)

    thickness = cell_thickness * (
        dome
        + 0.45 * nucleus_dome
        + 0.18 * granules * np.where(cytoplasm, dome, 0.0)
        + 0.06 * chromatin * nucleus_dome
        + 0.25 * nucleoli * nucleus_dome
        + 0.3 * vesicles
    )
    border = _touching_borders(labels)
    thickness = np.where(border, thickness * 0.4, thickness).astype(np.float32)
    # Nuclei are smoother and a little lighter than the granular cytoplasm around them.
    absorbance = (
        0.015 * thickness
        + 0.03 * np.clip(granules, 0.0, None) * np.where(cytoplasm, dome, 0.0) * cell_thickness
        - 0.025 * nucleus_dome * cell_thickness
        + 0.03 * nucleoli * nucleus_dome
        + vesicle_density * vesicles
        - 0.35 * np.where(is_round, np.clip(1.0 - (radial / 0.7) ** 2, 0.0, 1.0), 0.0)
    ).astype(np.float32)

    radius_by_label = np.append(0.0, bodies.radii).astype(np.float32)
    return CellLayers(
        cells=labels,
        nuclei=nuclei,
        cell_radial=np.where(inside, radial, np.maximum(radial, 1.0)).astype(np.float32),
        nucleus_radial=nucleus_radial,
        cell_radius=radius_by_label,
        thickness=thickness,
        absorbance=absorbance,
    )
