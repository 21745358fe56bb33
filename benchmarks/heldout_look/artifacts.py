"""The five artifact kinds of the held-out look, each drawn with its own pixel mask.

Every drawer takes the field's artifact stream and shape and returns an :class:`Artifact`: what
it adds to the optical path (``phase``, seen through phase contrast), what it multiplies the
image by (``transmission``), where it defocuses what lies under it (``blur``, 0..1) and the
``mask`` of the pixels it visibly changes.

- **debris**: one to four angular shards (random convex-ish polygons), dark and mottled.
- **fibre**: a thin wandering strand (a path whose turning rate is a random process),
  semi-transparent, sometimes frayed into a branch or two.
- **bubble**: an air bubble, round or slightly flattened: a broad dark rim with a thin bright
  edge, a bright interior with faint interference fringes, and the cells under it out of focus.
- **clump**: a grape-like aggregate of five to twenty-two rounded, detached cells, each
  phase-bright with a dark rim.
- **dust**: a few specks: sharp dark grains in focus, or faint dark-rimmed donuts (dust on the
  optics, out of focus).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage.draw import polygon

from .textures import bump, elliptic_radius, granules, smooth_noise

ARTIFACT_KINDS = ("debris", "fibre", "bubble", "clump", "dust")


@dataclass(frozen=True)
class Artifact:
    """One artifact: its effect on the field and its pixel mask."""

    kind: str
    mask: np.ndarray
    phase: np.ndarray | None = None
    transmission: np.ndarray | None = None
    blur: np.ndarray | None = None


def _shard(rng, shape, centre, radius) -> np.ndarray:
    """A filled polygon of 4-8 vertices at uneven radii: an angular fragment."""
    k = int(rng.integers(4, 9))
    angles = np.sort(rng.uniform(0, 2 * np.pi, k))
    radii = radius * rng.uniform(0.45, 1.0, k)
    rows = centre[0] + radii * np.sin(angles)
    cols = centre[1] + radii * np.cos(angles)
    mask = np.zeros(shape, bool)
    rr, cc = polygon(rows, cols, shape)
    mask[rr, cc] = True
    return mask


def debris(rng: np.random.Generator, shape: tuple[int, int]) -> Artifact:
    """Angular shards of opaque material, mottled inside, with a phase halo."""
    side = min(shape)
    centre = rng.uniform(0.1, 0.9) * shape[0], rng.uniform(0.1, 0.9) * shape[1]
    size = rng.uniform(4.0, min(17.0, 0.12 * side))
    mask = np.zeros(shape, bool)
    for _ in range(int(rng.integers(1, 5))):
        offset = rng.normal(0.0, 1.1 * size, 2)
        mask |= _shard(rng, shape, (centre[0] + offset[0], centre[1] + offset[1]), size * rng.uniform(0.5, 1.0))
    darkness = rng.uniform(0.35, 0.8) * (0.8 + 0.2 * np.clip(smooth_noise(rng, shape, 2.5), -2, 2))
    transmission = 1.0 - ndimage.gaussian_filter(mask * darkness, 0.6)
    phase = ndimage.gaussian_filter(mask * rng.uniform(0.4, 1.0), 0.8)
    return Artifact("debris", ndimage.binary_dilation(mask), phase=phase, transmission=transmission)


def _wandering_path(rng, start, heading, length, wiggle) -> np.ndarray:
    """Points one pixel apart along a path whose turning rate is an Ornstein-Uhlenbeck process."""
    n = max(int(length), 2)
    turn = np.zeros(n)
    for i in range(1, n):
        turn[i] = 0.92 * turn[i - 1] + rng.normal(0.0, wiggle)
    angles = heading + np.cumsum(turn)
    steps = np.stack([np.sin(angles), np.cos(angles)], axis=1)
    return np.asarray(start, float) + np.cumsum(steps, axis=0)


def _path_distance(shape, paths) -> np.ndarray:
    """Distance of every pixel to the nearest drawn path point (paths may leave the field)."""
    pad = 8
    canvas = np.ones((shape[0] + 2 * pad, shape[1] + 2 * pad), bool)
    for points in paths:
        rows = np.rint(points[:, 0]).astype(int) + pad
        cols = np.rint(points[:, 1]).astype(int) + pad
        keep = (rows >= 0) & (rows < canvas.shape[0]) & (cols >= 0) & (cols < canvas.shape[1])
        canvas[rows[keep], cols[keep]] = False
    return ndimage.distance_transform_edt(canvas)[pad:-pad, pad:-pad]


def fibre(rng: np.random.Generator, shape: tuple[int, int]) -> Artifact:
    """A thin, wandering, semi-transparent strand, sometimes frayed."""
    side = min(shape)
    start = rng.uniform(0, shape[0]), rng.uniform(0, shape[1])
    heading = rng.uniform(0, 2 * np.pi)
    length = rng.uniform(0.6, 1.6) * side
    main = _wandering_path(rng, start, heading, length, rng.uniform(0.006, 0.03))
    main = np.concatenate([_wandering_path(rng, start, heading + np.pi, length / 2, 0.01)[::-1], main])
    paths = [main]
    for _ in range(int(rng.choice([0, 0, 1, 2]))):
        at = main[int(rng.integers(0, len(main)))]
        paths.append(_wandering_path(rng, at, rng.uniform(0, 2 * np.pi), rng.uniform(0.1, 0.3) * side, 0.03))
    half_width = rng.uniform(0.7, 2.2)
    distance = _path_distance(shape, paths)
    profile = np.sqrt(np.clip(1.0 - (distance / (half_width + 0.5)) ** 2, 0.0, 1.0))
    # a glass or nylon strand refracts more than it absorbs: phase of either sign (dark or bright core)
    transmission = 1.0 - rng.uniform(0.05, 0.3) * profile
    phase = rng.choice([-1.0, 1.0]) * rng.uniform(0.5, 1.2) * profile
    return Artifact("fibre", distance <= half_width + 1.0, phase=phase, transmission=transmission)


def bubble(rng: np.random.Generator, shape: tuple[int, int]) -> Artifact:
    """An air bubble: dark refracting rim, thin bright edge, fringed bright interior, blur beneath."""
    side = min(shape)
    radius = rng.uniform(9.0, max(10.0, min(44.0, 0.3 * side)))
    centre = rng.uniform(-0.1, 1.1) * shape[0], rng.uniform(-0.1, 1.1) * shape[1]
    rho = elliptic_radius(shape, centre, radius, rng.uniform(1.0, 1.35), rng.uniform(0, np.pi))
    rim = rng.uniform(0.12, 0.3)
    fringes = rng.uniform(2.0, 6.0)
    interior = (rho < 1.0) * (rng.uniform(0.05, 0.15) + 0.04 * np.cos(2 * np.pi * fringes * rho**2))
    dark_rim = rng.uniform(0.55, 0.85) * bump(rho, 1.0 - rim / 2, rim / 2)
    bright_edge = rng.uniform(0.15, 0.35) * bump(rho, 1.02, 0.03)
    transmission = ndimage.gaussian_filter(1.0 + interior - dark_rim + bright_edge, 0.7)
    blur = np.clip((1.0 - rho) / 0.2, 0.0, 1.0)
    return Artifact("bubble", rho <= 1.04, transmission=transmission, blur=blur)


def clump(rng: np.random.Generator, shape: tuple[int, int]) -> Artifact:
    """Rounded detached cells stuck together, each bright with a dark rim."""
    side = min(shape)
    n = int(rng.integers(5, 23 if side >= 128 else 12))
    centres = [np.array([rng.uniform(0.15, 0.85) * shape[0], rng.uniform(0.15, 0.85) * shape[1]])]
    radii = [rng.uniform(3.5, 7.5)]
    for _ in range(n - 1):
        radius = rng.uniform(3.5, 7.5)
        neighbour = int(rng.integers(0, len(centres)))
        direction = rng.uniform(0, 2 * np.pi)
        reach = (radius + radii[neighbour]) * rng.uniform(0.7, 0.95)
        centres.append(centres[neighbour] + reach * np.array([np.sin(direction), np.cos(direction)]))
        radii.append(radius)
    brightness = np.zeros(shape)
    rim = np.zeros(shape)
    mask = np.zeros(shape, bool)
    for centre, radius in zip(centres, radii):
        rho = elliptic_radius(shape, centre, radius, rng.uniform(1.0, 1.2), rng.uniform(0, np.pi))
        brightness = np.maximum(brightness, rng.uniform(0.5, 0.9) * np.clip(1.0 - rho**2, 0.0, 1.0))
        rim = np.maximum(rim, bump(rho, 0.95, 0.15))
        mask |= rho <= 1.05
    grain = 1.0 + 0.2 * granules(rng, shape, 0.7, 2.0)
    transmission = np.clip(1.0 + brightness * grain - 0.65 * rim, 0.2, None)
    phase = ndimage.gaussian_filter(mask * 0.5, 1.0)
    return Artifact("clump", mask, phase=phase, transmission=transmission)


def dust(rng: np.random.Generator, shape: tuple[int, int]) -> Artifact:
    """A few dust specks: sharp dark grains, or faint out-of-focus donuts."""
    transmission = np.ones(shape)
    mask = np.zeros(shape, bool)
    out_of_focus = rng.random() < 0.5
    centre = rng.uniform(0.1, 0.9) * shape[0], rng.uniform(0.1, 0.9) * shape[1]
    spread = rng.uniform(6.0, 0.3 * min(shape))
    for _ in range(int(rng.integers(1, 8))):
        at = centre[0] + rng.normal(0.0, spread), centre[1] + rng.normal(0.0, spread)
        if out_of_focus:
            rho = elliptic_radius(shape, at, rng.uniform(5.0, 12.0))
            depth = rng.uniform(0.25, 0.45)
            # a defocused speck: a dark ring, a lighter disc, a bright diffraction spot at its centre
            shadow = 0.4 * (rho < 0.85) + bump(rho, 0.85, 0.18) - 0.5 * bump(rho, 0.0, 0.25)
            transmission *= 1.0 - depth * shadow
            mask |= rho <= 1.0
        else:
            grain = _shard(rng, shape, at, rng.uniform(2.0, 4.5))
            grain |= elliptic_radius(shape, at, 1.2) <= 1.0
            transmission *= 1.0 - rng.uniform(0.45, 0.85) * ndimage.gaussian_filter(grain.astype(float), 0.5)
            mask |= ndimage.binary_dilation(grain)
    if out_of_focus:
        transmission = ndimage.gaussian_filter(transmission, 0.8)
    return Artifact("dust", mask, transmission=transmission)


DRAWERS = {"debris": debris, "fibre": fibre, "bubble": bubble, "clump": clump, "dust": dust}
