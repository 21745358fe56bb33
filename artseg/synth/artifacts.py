"""Artifacts: how many, how large, what kind, and how each kind looks (paper §3.1, Supp. Fig. 2).

Sampling (:func:`sample_artifacts`) and drawing (:func:`render_artifacts`) are separate
so the size and type statistics can be checked on thousands of draws without rendering.
Each kind writes into the same optical layers as the cells (thickness for phase halos,
absorbance for dark or bright transmission), hides the cells beneath it (occlusion),
and either adds autofluorescence or blocks fluorescence:

===============  ============================================  ==============================
kind             brightfield look                              fluorescence
===============  ============================================  ==============================
dust             small, sharp, dark dots                       mostly blocks, some glow
debris           irregular dark or refractile textured blobs   mostly autofluorescent
fibre            long thin curved dark lines                   mostly autofluorescent
clump            piled round detached cells, bright halos      bright (dead cells take stain)
bubble           light interior, dark rim, bright outer ring   blocks
out_of_focus     large soft low-contrast shadows               dims, or adds haze
===============  ============================================  ==============================
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage, special
from skimage.segmentation import expand_labels

from artseg.synth.cells import Bodies, rasterize_bodies
from artseg.synth.presets import ARTIFACT_TYPES, Preset
from artseg.synth.textures import smooth_noise

__all__ = [
    "ArtifactLayers",
    "ArtifactSpec",
    "area_scale",
    "render_artifacts",
    "sample_artifacts",
]

# Per kind: median area as a share of the paper's field and log-normal sigma, before the
# preset's scale factor brings the mixture's mean to the paper's mean artifact area.
_AREA_MODEL = {
    "dust": (1.5e-4, 0.9),
    "debris": (8e-4, 1.3),
    "fibre": (2.5e-3, 0.8),
    "clump": (5e-3, 1.3),
    "bubble": (2e-3, 1.0),
    "out_of_focus": (1e-2, 0.9),
}
_MIN_AREA_PX = 3.0
_MAX_FIBRE_WIDTH = 14.0


@dataclass(frozen=True)
class ArtifactSpec:
    """One artifact to draw: its kind, centre ``(y, x)`` and target footprint area in pixels."""

    kind: str
    center: tuple[float, float]
    area: float


@dataclass
class ArtifactLayers:
    """Everything the artifacts of one field contribute.

    Attributes
    ----------
    labels : numpy.ndarray
        int32 artifact instance labels of the annotated mask (with the preset's margin).
    kinds : list of str
        Kind of each label (``kinds[i]`` for label ``i + 1``).
    occlusion : numpy.ndarray
        float32 in [0, 1]: how much of the cells beneath is hidden.
    thickness, absorbance : numpy.ndarray
        float32 optical path and optical density added by the artifacts.
    fluorescence_added : numpy.ndarray
        float32 autofluorescence, in units of a typical cell's (or nucleus's) signal.
    fluorescence_transmission : numpy.ndarray
        float32 factor in (0, 1] on the sample's fluorescence (blocking artifacts).
    """

    labels: np.ndarray
    kinds: list[str]
    occlusion: np.ndarray
    thickness: np.ndarray
    absorbance: np.ndarray
    fluorescence_added: np.ndarray
    fluorescence_transmission: np.ndarray

    @classmethod
    def empty(cls, shape: tuple[int, int]) -> "ArtifactLayers":
        """Layers of a field without artifacts."""
        zeros = np.zeros(shape, np.float32)
        return cls(
            labels=np.zeros(shape, np.int32),
            kinds=[],
            occlusion=zeros.copy(),
            thickness=zeros.copy(),
            absorbance=zeros.copy(),
            fluorescence_added=zeros.copy(),
            fluorescence_transmission=np.ones(shape, np.float32),
        )

    @property
    def mask(self) -> np.ndarray:
        """bool artifact mask (the annotation)."""
        return self.labels > 0


def area_scale(preset: Preset) -> float:
    """Factor on the per-kind median areas that gives the preset's mean artifact area.

    The mean of a log-normal with median ``m`` and sigma ``s`` is ``m exp(s^2 / 2)``; the
    factor solves ``scale * sum_k w_k m_k exp(s_k^2 / 2) = mean_area_fraction``.
    """
    weights = np.array([preset.type_weights.get(kind, 0.0) for kind in ARTIFACT_TYPES])
    means = np.array([m * np.exp(s**2 / 2) for m, s in (_AREA_MODEL[kind] for kind in ARTIFACT_TYPES)])
    return float(preset.mean_area_fraction / (weights @ means / weights.sum()))


def sample_artifacts(rng: np.random.Generator, preset: Preset, shape: tuple[int, int]) -> list[ArtifactSpec]:
    """Draw the artifacts of one artifact-containing field.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness.
    preset : Preset
        Count, size and type statistics.
    shape : tuple of int
        ``(H, W)`` of the field, a crop of (or equal to) the preset's paper field.

    Returns
    -------
    list of ArtifactSpec
        At least one artifact. Areas are in pixels at the preset's pixel size, like the
        cells: log-normal per kind with the paper's mean area, clipped to
        ``[3 px, max_area_fraction * H * W]``, so a crop shows artifacts as large as the
        paper's. The count is ``1 + NegBin`` with the preset's extra mean scaled by the
        field's share of a paper field (a crop holds fewer artifacts) and its dispersion
        (heavy-tailed for CHO-M4R). At the paper's field size both match the paper.
    """
    height, width = shape
    field_area = float(height * width)
    paper_area = float(preset.paper_shape[0] * preset.paper_shape[1])
    crop_share = min(field_area / paper_area, 1.0)
    extra_mean = max((preset.mean_artifacts - 1.0) * crop_share, 1e-6)
    dispersion = preset.artifact_count_dispersion
    count = 1 + int(rng.negative_binomial(dispersion, dispersion / (dispersion + extra_mean)))
    kinds = list(ARTIFACT_TYPES)
    weights = np.array([preset.type_weights.get(kind, 0.0) for kind in kinds])
    chosen = rng.choice(len(kinds), size=count, p=weights / weights.sum())
    scale = area_scale(preset)
    specs = []
    for index in chosen:
        kind = kinds[index]
        median, sigma = _AREA_MODEL[kind]
        fraction = median * scale * rng.lognormal(0.0, sigma)
        area = float(np.clip(fraction * paper_area, _MIN_AREA_PX, preset.max_area_fraction * field_area))
        center = (float(rng.uniform(0, height)), float(rng.uniform(0, width)))
        specs.append(ArtifactSpec(kind=kind, center=center, area=area))
    return specs


# --------------------------------------------------------------------------- drawing helpers


@dataclass(frozen=True)
class _Frame:
    window: tuple[slice, slice]
    yy: np.ndarray
    xx: np.ndarray
    center_index: tuple[int, int] | None


def _frame(center: tuple[float, float], half_height: float, half_width: float, shape: tuple[int, int]) -> _Frame | None:
    """Local pixel grid around ``center`` (coordinates relative to it), clipped to the field."""
    cy, cx = center
    y0, y1 = max(0, int(np.floor(cy - half_height))), min(shape[0], int(np.ceil(cy + half_height)) + 1)
    x0, x1 = max(0, int(np.floor(cx - half_width))), min(shape[1], int(np.ceil(cx + half_width)) + 1)
    if y0 >= y1 or x0 >= x1:
        return None
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    row, col = int(cy) - y0, int(cx) - x0
    center_index = (row, col) if 0 <= row < y1 - y0 and 0 <= col < x1 - x0 else None
    return _Frame((slice(y0, y1), slice(x0, x1)), yy - np.float32(cy), xx - np.float32(cx), center_index)


def _blob_radial(rng: np.random.Generator, frame: _Frame, radius: float, elongation: float, roughness: float) -> np.ndarray:
    """Normalised radius of an irregular ellipse of equivalent radius ``radius`` (< 1 inside)."""
    orientation = rng.uniform(0.0, np.pi)
    u = frame.xx * np.cos(orientation) + frame.yy * np.sin(orientation)
    v = frame.yy * np.cos(orientation) - frame.xx * np.sin(orientation)
    semi_major, semi_minor = radius * np.sqrt(elongation), radius / np.sqrt(elongation)
    angle = np.arctan2(v, u)
    outline = np.ones_like(angle)
    for k in range(2, 7):
        outline += roughness * rng.uniform(0.2, 1.0) / np.sqrt(k - 1) * np.cos(k * angle - rng.uniform(0, 2 * np.pi))
    return (np.sqrt((u / semi_major) ** 2 + (v / semi_minor) ** 2) / np.maximum(outline, 0.3)).astype(np.float32)


def _edge_cover(radial: np.ndarray, radius: float) -> np.ndarray:
    """Anti-aliased inside-ness (1 inside, 0 outside, ~1 px ramp) of a radial shape."""
    return np.clip((1.0 - radial) * radius + 0.5, 0.0, 1.0).astype(np.float32)


def _fluorescence_effect(
    rng: np.random.Generator, p_glow: float, glow: tuple[float, float], block: tuple[float, float], weight: np.ndarray
) -> dict:
    """Autofluorescence (probability ``p_glow``; log-normal brightness ``glow`` = (median,
    sigma), heavy-tailed like real debris) or blocking (uniform ``block`` range)."""
    if rng.random() < p_glow:
        brightness = min(glow[0] * rng.lognormal(0.0, glow[1]), 40.0)
        return {"fluorescence_added": brightness * weight}
    return {"fluorescence_transmission": 1.0 - rng.uniform(*block) * weight}


# --------------------------------------------------------------------------- one function per kind


def _dust(rng, spec, shape, cell_radius, cell_thickness, nuclear_stain):
    radius = max(np.sqrt(spec.area / np.pi), 0.6)
    frame = _frame(spec.center, radius + 3, radius + 3, shape)
    if frame is None:
        return None
    distance = np.hypot(frame.yy, frame.xx)
    cover = np.clip(radius + 0.5 - distance, 0.0, 1.0).astype(np.float32)
    # Most specks are dark; some refract light and show a bright core.
    density = rng.uniform(0.12, 0.45) if rng.random() < 0.7 else -rng.uniform(0.08, 0.22)
    maps = {
        "footprint": distance < radius + 0.25,
        "absorbance": density * cover,
        "thickness": 0.25 * cell_thickness * cover,
        "occlusion": cover,
        **_fluorescence_effect(rng, 0.4, (0.5, 0.8), (0.5, 0.8), cover),
    }
    return frame, maps


def _debris(rng, spec, shape, cell_radius, cell_thickness, nuclear_stain):
    radius = np.sqrt(spec.area / np.pi)
    elongation = rng.uniform(1.0, 2.2)
    extent = 1.5 * radius * np.sqrt(elongation) + 3
    frame = _frame(spec.center, extent, extent, shape)
    if frame is None:
        return None
    radial = _blob_radial(rng, frame, radius, elongation, rng.uniform(0.1, 0.3))
    lumpy = radial + 0.22 * smooth_noise(rng, radial.shape, max(2.0, radius / 3))
    cover = _edge_cover(lumpy, max(radius, 1.0))
    texture = smooth_noise(rng, radial.shape, rng.uniform(1.5, 3.0))
    dome = np.sqrt(np.clip(1.0 - radial**2, 0.0, 1.0))
    if rng.random() < 0.45:  # refractile: bright and dark specks, strong halo
        absorbance = cover * (0.06 * texture + rng.uniform(-0.12, 0.0))
        thickness = cell_thickness * cover * (rng.uniform(0.3, 0.75) + 0.4 * texture)
    else:
        absorbance = cover * rng.uniform(0.08, 0.3) * (1.0 + 0.4 * texture)
        thickness = cell_thickness * cover * (rng.uniform(0.25, 1.1) * dome + 0.4 * texture)
    glow_weight = cover * np.clip(1.0 + 0.4 * texture, 0.0, None)
    maps = {
        "footprint": lumpy < 1.0,
        "absorbance": absorbance,
        "thickness": thickness,
        "occlusion": 0.9 * cover,
        **_fluorescence_effect(rng, 0.7, (1.2, 0.5), (0.3, 0.7), glow_weight),
    }
    return frame, maps


def _fibre_path(rng: np.random.Generator, length: float) -> np.ndarray:
    """Points (y, x), one pixel apart, of a smooth random curve centred on the origin."""
    steps = max(2, int(np.ceil(length)))
    turning = rng.uniform(0.3, 2.5)
    bend = ndimage.gaussian_filter1d(rng.standard_normal(steps), max(steps / 6, 1.0), mode="nearest")
    bend *= turning / max(np.abs(bend).sum(), 1e-9)
    heading = rng.uniform(0, 2 * np.pi) + np.cumsum(bend)
    points = np.cumsum(np.stack([np.sin(heading), np.cos(heading)], 1), axis=0)
    return points - points.mean(axis=0)


def _fibre(rng, spec, shape, cell_radius, cell_thickness, nuclear_stain):
    # Textile fibres and hairs: thin (a few px) and long; only huge ones get somewhat wider.
    # One longer than the field crosses it, and the crop shows only part of its area.
    width = float(np.clip(rng.lognormal(np.log(2.5), 0.35), 1.5, 8.0))
    diagonal = float(np.hypot(*shape))
    length = spec.area / width
    if length > 1.3 * diagonal:
        length = 1.3 * diagonal
        width = float(min(spec.area / length, _MAX_FIBRE_WIDTH))
    if length < 6 * width:
        width = max(np.sqrt(spec.area / 6), 1.0)
        length = spec.area / width
    path = _fibre_path(rng, length) + np.array(spec.center)
    pad = width + 3
    y0, x0 = path.min(axis=0) - pad
    y1, x1 = path.max(axis=0) + pad
    center = ((y0 + y1) / 2, (x0 + x1) / 2)
    frame = _frame(center, (y1 - y0) / 2, (x1 - x0) / 2, shape)
    if frame is None:
        return None
    origin = (frame.window[0].start, frame.window[1].start)
    rows = np.rint(path[:, 0]).astype(int) - origin[0]
    cols = np.rint(path[:, 1]).astype(int) - origin[1]
    local_shape = frame.yy.shape
    keep = (rows >= 0) & (rows < local_shape[0]) & (cols >= 0) & (cols < local_shape[1])
    if not keep.any():
        return None
    centerline = np.ones(local_shape, bool)
    centerline[rows[keep], cols[keep]] = False
    distance = ndimage.distance_transform_edt(centerline).astype(np.float32)
    half = width / 2
    cover = np.clip(half + 0.5 - distance, 0.0, 1.0).astype(np.float32)
    tube = np.sqrt(np.clip(1.0 - (distance / max(half, 0.75)) ** 2, 0.0, 1.0)).astype(np.float32)
    maps = {
        "footprint": distance <= max(half, 0.5),
        "absorbance": rng.uniform(0.08, 0.35) * cover * (0.7 + 0.3 * tube),
        "thickness": cell_thickness * rng.uniform(0.6, 1.5) * tube * min(width / 4, 1.5),
        "occlusion": cover,
        **_fluorescence_effect(rng, 0.75, (1.2, 0.5), (0.4, 0.7), cover),
    }
    frame = _Frame(frame.window, frame.yy, frame.xx, None)
    return frame, maps


def _clump(rng, spec, shape, cell_radius, cell_thickness, nuclear_stain):
    radius = np.sqrt(spec.area / np.pi)
    body_radius = float(np.clip(cell_radius * rng.uniform(0.4, 0.65), 2.0, max(2.0, 0.8 * radius)))
    n_bodies = int(np.clip(np.rint(1.7 * spec.area / (np.pi * body_radius**2)), 2, 600))
    extent = radius + body_radius + 4
    frame = _frame(spec.center, extent, extent, shape)
    if frame is None:
        return None
    spread = max(radius - 0.5 * body_radius, 0.5)
    distance = spread * np.sqrt(rng.uniform(0, 1, n_bodies))
    angle = rng.uniform(0, 2 * np.pi, n_bodies)
    origin = np.array([frame.yy[0, 0], frame.xx[0, 0]])
    centers = np.stack([distance * np.sin(angle), distance * np.cos(angle)], 1) - origin
    height = np.zeros(frame.yy.shape, np.float32)
    lens = np.zeros(frame.yy.shape, np.float32)
    union = np.zeros(frame.yy.shape, bool)
    for layer in (0, 1):  # two layers of round bodies: piled-up cells overlap
        members = np.arange(layer, n_bodies, 2)
        if members.size == 0:
            continue
        bodies = Bodies(
            centers=centers[members],
            radii=body_radius * rng.lognormal(0.0, 0.15, members.size),
            elongation=rng.uniform(1.0, 1.2, members.size),
            orientation=rng.uniform(0, np.pi, members.size),
            harmonic_amplitudes=0.03 * rng.uniform(0, 1, (members.size, 4)),
            harmonic_phases=rng.uniform(0, 2 * np.pi, (members.size, 4)),
        )
        labels, radial = rasterize_bodies(frame.yy.shape, bodies)
        inside = labels > 0
        dome = np.where(inside, np.sqrt(np.clip(1.0 - radial**2, 0.0, 1.0)), 0.0)
        height += dome
        # Rounded cells act as lenses: a bright core inside a dark rim.
        lens += np.where(radial < 0.6, 1.0 - (radial / 0.6) ** 2, 0.0)
        union |= inside
    footprint = ndimage.binary_fill_holes(ndimage.binary_closing(union, iterations=2)) | union
    cover = ndimage.gaussian_filter(footprint.astype(np.float32), 0.7)
    glow = np.clip(lens, 0, 1) if nuclear_stain else height / max(float(height.max()), 1e-6)
    maps = {
        "footprint": footprint,
        "absorbance": 0.04 * height - rng.uniform(0.04, 0.14) * np.clip(lens, 0, 1.5),
        "thickness": cell_thickness * rng.uniform(0.45, 0.85) * height,
        "occlusion": 0.9 * cover,
        **_fluorescence_effect(rng, 0.85, (1.5, 0.5), (0.2, 0.5), glow),
    }
    return frame, maps


def _bubble(rng, spec, shape, cell_radius, cell_thickness, nuclear_stain):
    radius = max(np.sqrt(spec.area / np.pi), 2.0)
    elongation = rng.uniform(1.0, 1.15)
    extent = radius * np.sqrt(elongation) + 4
    frame = _frame(spec.center, extent, extent, shape)
    if frame is None:
        return None
    radial = _blob_radial(rng, frame, radius, elongation, 0.02)
    rim_width = float(np.clip(rng.uniform(0.08, 0.2), 1.5 / radius, 0.5))
    interior = np.clip((1.0 - rim_width - radial) * radius + 0.5, 0.0, 1.0)
    rim = np.exp(-(((radial - (1.0 - rim_width / 2)) / (rim_width / 2 + 0.5 / radius)) ** 2))
    maps = {
        "footprint": radial < 1.0 + 0.5 / radius,
        "absorbance": -rng.uniform(0.06, 0.2) * interior + rng.uniform(0.12, 0.35) * rim,
        "thickness": cell_thickness * rng.uniform(0.45, 1.05) * rim,
        "occlusion": np.maximum(0.45 * interior, rim),
        "fluorescence_transmission": np.clip(1.0 - rng.uniform(0.3, 0.6) * interior - 0.5 * rim, 0.05, 1.0),
    }
    return frame, maps


def _out_of_focus(rng, spec, shape, cell_radius, cell_thickness, nuclear_stain):
    radius = np.sqrt(spec.area / np.pi)
    elongation = rng.uniform(1.0, 1.6)
    edge = rng.uniform(0.2, 0.45) * radius + 1.5
    extent = radius * np.sqrt(elongation) * 1.2 + 3 * edge
    frame = _frame(spec.center, extent, extent, shape)
    if frame is None:
        return None
    radial = _blob_radial(rng, frame, radius, elongation, rng.uniform(0.05, 0.15))
    distance_out = (radial - 1.0) * radius
    soft = (0.5 * special.erfc(distance_out / (edge * np.sqrt(2.0)))).astype(np.float32)
    # Defocused objects keep a faint diffraction fringe around their blurred shadow.
    fringe = np.exp(-(((distance_out - 0.5 * edge) / (0.7 * edge)) ** 2)).astype(np.float32)
    strength = rng.uniform(0.06, 0.18) if rng.random() < 0.75 else -rng.uniform(0.05, 0.12)
    maps = {
        "footprint": radial < 1.0,
        "absorbance": strength * soft - 0.3 * strength * fringe,
        "thickness": cell_thickness * rng.uniform(0.2, 0.6) * soft,
        "occlusion": rng.uniform(0.4, 0.7) * soft,
        **_fluorescence_effect(rng, 0.4, (0.25, 0.5), (0.1, 0.35), soft),
    }
    return frame, maps


_RENDERERS = {
    "dust": _dust,
    "debris": _debris,
    "fibre": _fibre,
    "clump": _clump,
    "bubble": _bubble,
    "out_of_focus": _out_of_focus,
}


def render_artifacts(
    rng: np.random.Generator,
    specs: list[ArtifactSpec],
    shape: tuple[int, int],
    *,
    cell_radius: float,
    cell_thickness: float = 1.0,
    nuclear_stain: bool = True,
    annotation_margin: int = 0,
) -> ArtifactLayers:
    """Draw artifacts into optical and fluorescence layers plus their annotated mask.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness for shapes and textures.
    specs : list of ArtifactSpec
        From :func:`sample_artifacts` (or hand-made).
    shape : tuple of int
        ``(H, W)``.
    cell_radius, cell_thickness : float
        Scale of the cells (clumps are made of cell-sized bodies, fibres are thin next to cells).
    nuclear_stain : bool
        Clumps glow where their condensed nuclei are (nuclear stain) or all over (ligand).
    annotation_margin : int
        Pixels the annotated mask extends past each artifact (loose freehand annotation).

    Returns
    -------
    ArtifactLayers
        Later artifacts lie on top of earlier ones; an artifact completely covered by later
        ones is dropped, so ``kinds`` lists exactly the labels present.
    """
    layers = ArtifactLayers.empty(shape)
    kinds: list[str] = []
    for spec in specs:
        if spec.kind not in _RENDERERS:
            raise ValueError(f"unknown artifact kind {spec.kind!r}; known: {', '.join(ARTIFACT_TYPES)}")
        drawn = _RENDERERS[spec.kind](rng, spec, shape, cell_radius, cell_thickness, nuclear_stain)
        if drawn is None:
            continue
        frame, maps = drawn
        footprint = maps["footprint"]
        if frame.center_index is not None:
            footprint[frame.center_index] = True
        if not footprint.any():
            continue
        window = frame.window
        kinds.append(spec.kind)
        layers.labels[window][footprint] = len(kinds)
        layers.occlusion[window] = np.maximum(layers.occlusion[window], maps["occlusion"])
        layers.thickness[window] += maps["thickness"]
        layers.absorbance[window] += maps["absorbance"]
        if "fluorescence_added" in maps:
            layers.fluorescence_added[window] += maps["fluorescence_added"]
        if "fluorescence_transmission" in maps:
            layers.fluorescence_transmission[window] *= maps["fluorescence_transmission"]
    if annotation_margin > 0 and kinds:
        layers.labels = expand_labels(layers.labels, annotation_margin).astype(np.int32)
    present = np.unique(layers.labels[layers.labels > 0])
    if present.size < len(kinds):
        relabel = np.zeros(len(kinds) + 1, np.int32)
        relabel[present] = np.arange(1, present.size + 1)
        layers.labels = relabel[layers.labels]
        kinds = [kinds[i - 1] for i in present]
    layers.kinds = kinds
    np.clip(layers.occlusion, 0.0, 1.0, out=layers.occlusion)
    return layers
