"""One field of the held-out look: cells, artifacts, optics and camera, from independent streams.

Each field has its own four random streams (cells, artifacts, light, camera), spawned from the
dataset seed by the field's index, so a field does not depend on how many fields are made, and
the same field drawn without artifacts has the same cells, light and sensor settings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .artifacts import ARTIFACT_KINDS, DRAWERS, Artifact
from .cells import cell_layer
from .optics import FULL_SCALE, camera, illumination, phase_contrast

MIN_MASK_PIXELS = 12


@dataclass(frozen=True)
class Field:
    """A rendered field: uint16 ``image``, bool artifact ``mask`` and the ``kinds`` drawn on it."""

    image: np.ndarray
    mask: np.ndarray
    kinds: tuple[str, ...]


def field_streams(seed: int, index: int) -> dict[str, np.random.Generator]:
    """The four independent random streams of field ``index`` of the dataset made with ``seed``.

    Examples
    --------
    >>> a, b = field_streams(0, 3), field_streams(0, 3)
    >>> float(a["cells"].random()) == float(b["cells"].random())
    True
    """
    children = np.random.SeedSequence(seed, spawn_key=(index,)).spawn(4)  # = SeedSequence(seed).spawn(n)[index]
    return {name: np.random.default_rng(child) for name, child in zip(("cells", "artifacts", "light", "camera"),
                                                                       children)}


def draw_artifacts(rng: np.random.Generator, shape: tuple[int, int]) -> list[Artifact]:
    """One to three artifacts of random kinds, each showing at least ``MIN_MASK_PIXELS`` in the field."""
    count = 1 + int(rng.binomial(2, 0.3))
    drawn = []
    for kind in rng.choice(ARTIFACT_KINDS, size=count):
        for _ in range(20):
            artifact = DRAWERS[str(kind)](rng, shape)
            if artifact.mask.sum() >= MIN_MASK_PIXELS:
                drawn.append(artifact)
                break
    return drawn


def render_field(seed: int, index: int, *, size: int = 192, with_artifacts: bool = True,
                 bit_depth: int = 12) -> Field:
    """Render field ``index`` of the dataset made with ``seed``.

    Parameters
    ----------
    seed, index : int
        Dataset seed and the field's place in it.
    size : int
        Side of the square field in pixels.
    with_artifacts : bool
        Draw artifacts (an artifact field) or not (a clean one); the cells, light and camera
        settings are the same either way.
    bit_depth : {12, 16}
        Camera range.

    Returns
    -------
    Field

    Examples
    --------
    >>> field = render_field(0, 0, size=64)
    >>> field.image.dtype, field.image.shape, bool(field.mask.any()), len(field.kinds) >= 1
    (dtype('uint16'), (64, 64), True, True)
    """
    if bit_depth not in FULL_SCALE:
        raise ValueError(f"bit_depth must be 12 or 16, got {bit_depth}")
    shape = (size, size)
    streams = field_streams(seed, index)
    cells = cell_layer(streams["cells"], shape)
    halo_sigma = float(streams["light"].uniform(3.0, 7.0))
    strength = float(streams["light"].uniform(0.45, 0.85))
    artifacts = draw_artifacts(streams["artifacts"], shape) if with_artifacts else []

    phase = cells.phase + sum((a.phase for a in artifacts if a.phase is not None), np.zeros(shape))
    relative = phase_contrast(phase, halo_sigma=halo_sigma, strength=strength) * cells.transmission
    for artifact in artifacts:
        if artifact.blur is not None:
            relative = (1 - artifact.blur) * relative + artifact.blur * ndimage.gaussian_filter(relative, 3.0)
        if artifact.transmission is not None:
            relative = relative * artifact.transmission
    relative = relative * illumination(streams["light"], shape)
    image = camera(streams["camera"], relative, bit_depth=bit_depth)
    mask = np.zeros(shape, bool)
    for artifact in artifacts:
        mask |= artifact.mask
    return Field(image=image, mask=mask, kinds=tuple(a.kind for a in artifacts))
