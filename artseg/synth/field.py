"""One synthetic field of view: brightfield, fluorescence and all their ground truth."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from artseg.synth.artifacts import ArtifactLayers, render_artifacts, sample_artifacts
from artseg.synth.cells import render_cells
from artseg.synth.fluorescence import (
    FluorescenceImaging,
    membrane_signal,
    nuclear_signal,
    render_fluorescence,
    sample_fluorescence_imaging,
)
from artseg.synth.optics import render_brightfield, sample_brightfield_imaging
from artseg.synth.presets import Preset, get_preset

__all__ = ["Field", "synthesize_field"]

_MAX_ARTIFACT_DRAWS = 20


@dataclass
class Field:
    """A synthetic field of view with its ground truth.

    Attributes
    ----------
    brightfield, fluorescence : numpy.ndarray
        uint16 ``(H, W)`` images.
    artifact_mask : numpy.ndarray
        bool annotated artifact mask (empty for a clean field).
    nuclei, cells : numpy.ndarray
        int32 instance labels; nucleus ``i`` lies in cell ``i``.
    artifact_types : list of str
        Kind of each artifact instance (``artifact_labels`` value ``i + 1``).
    artifact_labels : numpy.ndarray
        int32 artifact instance labels.
    cell_line : str
        Cell line drawn for this field.
    """

    brightfield: np.ndarray
    fluorescence: np.ndarray
    artifact_mask: np.ndarray
    nuclei: np.ndarray
    cells: np.ndarray
    artifact_types: list[str] = field(default_factory=list)
    artifact_labels: np.ndarray | None = None
    cell_line: str = ""

    @property
    def n_artifacts(self) -> int:
        """Number of artifact instances."""
        return len(self.artifact_types)


def _child_generators(rng: np.random.Generator, count: int) -> list[np.random.Generator]:
    # Independent streams for cells, artifacts and each channel's optics: a field drawn
    # with and without artifacts from equal generators shows the same cells and noise.
    return [np.random.default_rng(int(seed)) for seed in rng.integers(0, 2**62, count)]


def synthesize_field(
    rng: np.random.Generator,
    preset_params: str | Preset,
    shape: tuple[int, int],
    with_artifacts: bool,
    *,
    fluorescence_imaging: FluorescenceImaging | None = None,
) -> Field:
    """Synthesize one brightfield + fluorescence field and its ground truth (pure).

    Parameters
    ----------
    rng : numpy.random.Generator
        The field's generator; equal generators give identical fields.
    preset_params : str or Preset
        ``seven_cell_lines``, ``lncap``, ``cho_m4r`` or a custom :class:`Preset`.
    shape : tuple of int
        ``(H, W)`` in pixels; cells keep the preset's pixel size, artifact areas scale with
        the field area.
    with_artifacts : bool
        Draw at least one artifact (count, size and kinds from the preset) or none.
    fluorescence_imaging : FluorescenceImaging, optional
        Fixed fluorescence levels and camera (a plate well); drawn per field if omitted.

    Returns
    -------
    Field

    Notes
    -----
    Cells, artifacts, brightfield optics and fluorescence optics use separate random
    streams split off ``rng``, so the same ``rng`` state with ``with_artifacts`` True and
    False gives the same cells, illumination and noise: a clean twin of the field.

    Examples
    --------
    >>> import numpy as np
    >>> f = synthesize_field(np.random.default_rng(0), "seven_cell_lines", (64, 64), True)
    >>> f.brightfield.dtype, f.artifact_mask.any()
    (dtype('uint16'), np.True_)
    """
    preset = get_preset(preset_params)
    shape = (int(shape[0]), int(shape[1]))
    cell_rng, artifact_rng, brightfield_rng, fluorescence_rng = _child_generators(rng, 4)

    line = preset.cell_lines[int(cell_rng.integers(len(preset.cell_lines)))]
    density_factor = float(cell_rng.lognormal(0.0, 0.6))
    cells = render_cells(cell_rng, shape, line, density_factor=density_factor, live=preset.live_cells)

    artifacts = ArtifactLayers.empty(shape)
    if with_artifacts:
        for _ in range(_MAX_ARTIFACT_DRAWS):
            artifacts = render_artifacts(
                artifact_rng,
                sample_artifacts(artifact_rng, preset, shape),
                shape,
                cell_radius=line.cell_radius,
                cell_thickness=line.thickness,
                nuclear_stain=preset.fluorescence == "nuclear",
                annotation_margin=preset.annotation_margin,
            )
            if artifacts.kinds:
                break

    imaging = sample_brightfield_imaging(brightfield_rng, live_cells=preset.live_cells)
    brightfield = render_brightfield(brightfield_rng, cells, artifacts, imaging)

    settings = fluorescence_imaging or sample_fluorescence_imaging(fluorescence_rng, preset.fluorescence)
    if preset.fluorescence == "membrane":
        signal = membrane_signal(fluorescence_rng, cells, settings)
    else:
        signal = nuclear_signal(fluorescence_rng, cells, settings)
    fluorescence = render_fluorescence(fluorescence_rng, signal, artifacts, settings)

    return Field(
        brightfield=brightfield,
        fluorescence=fluorescence,
        artifact_mask=artifacts.mask,
        nuclei=cells.nuclei,
        cells=cells.cells,
        artifact_types=list(artifacts.kinds),
        artifact_labels=artifacts.labels,
        cell_line=line.name,
    )
