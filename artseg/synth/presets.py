"""Dataset presets: the numbers that make a synthetic dataset stand in for one of the paper's.

Each preset mirrors a dataset of paper §2.1 and §3.1: pixel size, cells per field,
artifact prevalence, artifacts per field, the artifact size distribution (mean area as a
share of the paper's field, heavy tail up to ~60 % of it) and which artifact types dominate.
Cell and artifact sizes are in pixels at the paper's pixel size, so a 256 x 256 field is a
crop of a paper field: its artifacts are as large as the paper's, and fewer per field.
"""

from __future__ import annotations

from dataclasses import dataclass

from artseg.errors import ArtsegInputError

__all__ = [
    "ARTIFACT_TYPES",
    "CellLine",
    "DEFAULT_SHAPE",
    "PRESETS",
    "Preset",
    "get_preset",
    "resolve_shape",
]

DEFAULT_SHAPE = (256, 256)

# Brightfield artifact kinds, each rendered with its own look (see artifacts.py).
ARTIFACT_TYPES = ("dust", "debris", "fibre", "clump", "bubble", "out_of_focus")


@dataclass(frozen=True)
class CellLine:
    """Morphology of one cell line, in pixels at the preset's pixel size.

    Attributes
    ----------
    name : str
        Cell line name.
    cells_per_mpx : float
        Mean number of cells per 10^6 pixels (before the per-image density factor).
    cell_radius : float
        Mean equivalent cell radius.
    nucleus_radius : float
        Mean equivalent nucleus radius (area ~ pi r^2).
    elongation : float
        Mean long/short axis ratio of cells (1 = round).
    roughness : float
        Amplitude of the cell outline's low harmonics (0 = smooth ellipse).
    clustering : float
        Probability that a field's cells grow in colonies rather than spread evenly.
    thickness : float
        Relative optical thickness of a cell (live, rounded cells are thicker).
    """

    name: str
    cells_per_mpx: float
    cell_radius: float
    nucleus_radius: float
    elongation: float = 1.3
    roughness: float = 0.08
    clustering: float = 0.3
    thickness: float = 1.0


@dataclass(frozen=True)
class Preset:
    """Everything that distinguishes one synthetic dataset from another.

    Attributes
    ----------
    name : str
        Preset name used on the command line.
    paper_shape : tuple of int
        ``(H, W)`` of the paper's fields (``--paper-size``).
    um_per_px : float
        Pixel size of the paper's images (µm).
    prevalence : float
        Share of fields with at least one artifact in the paper's data (§2.1).
    mean_artifacts : float
        Mean artifacts per artifact-containing paper-sized field.
    artifact_count_dispersion : float
        Negative-binomial shape of the count (small = heavy tail).
    mean_area_fraction : float
        Mean artifact area as a share of the paper's field (§3.1).
    max_area_fraction : float
        Largest single artifact as a share of the (possibly cropped) field.
    type_weights : dict
        Relative frequency of each artifact type.
    annotation_margin : int
        Pixels the annotated mask extends past the artifact's body: its halo (tight
        polygons, 1 px) or a loose freehand outline (CHO-M4R, 4 px).
    cell_lines : tuple of CellLine
        One is drawn per field.
    fluorescence : str
        ``"nuclear"`` (Hoechst / DRAQ5 stain) or ``"membrane"`` (bound fluorescent ligand).
    default_n_images : int
        Size of the balanced training set of the paper (§2.3.1).
    live_cells : bool
        Live cells are rounder and thicker, with brighter halos.
    """

    name: str
    paper_shape: tuple[int, int]
    um_per_px: float
    prevalence: float
    mean_artifacts: float
    artifact_count_dispersion: float
    mean_area_fraction: float
    max_area_fraction: float
    type_weights: dict[str, float]
    annotation_margin: int
    cell_lines: tuple[CellLine, ...]
    fluorescence: str
    default_n_images: int
    live_cells: bool = False


_SEVEN_CELL_LINES = (
    # 0.59 µm/px, ~350 cells per 1080^2 field, nuclei ~400 px (§2.1, §3.3.1).
    CellLine("MCF7", 300.0, 19.0, 12.0, elongation=1.2, roughness=0.06, clustering=0.8),
    CellLine("HT1080", 260.0, 22.0, 12.5, elongation=2.0, roughness=0.12, clustering=0.2),
    CellLine("HeLa", 300.0, 21.0, 12.5, elongation=1.4, roughness=0.10, clustering=0.3),
    CellLine("HepG2", 380.0, 17.0, 11.5, elongation=1.2, roughness=0.06, clustering=0.9),
    CellLine("A549", 280.0, 22.0, 12.5, elongation=1.3, roughness=0.09, clustering=0.4),
    CellLine("MDCK", 360.0, 18.0, 11.5, elongation=1.15, roughness=0.05, clustering=0.7),
    CellLine("NIH3T3", 220.0, 25.0, 13.5, elongation=2.4, roughness=0.14, clustering=0.1),
)

PRESETS: dict[str, Preset] = {
    "seven_cell_lines": Preset(
        name="seven_cell_lines",
        paper_shape=(1080, 1080),
        um_per_px=0.59,
        prevalence=344 / 3024,
        mean_artifacts=1.8,
        artifact_count_dispersion=3.0,
        mean_area_fraction=4417 / 1080**2,
        max_area_fraction=0.55,
        type_weights={"dust": 0.22, "debris": 0.30, "fibre": 0.12, "clump": 0.14, "bubble": 0.10, "out_of_focus": 0.12},
        annotation_margin=1,
        cell_lines=_SEVEN_CELL_LINES,
        fluorescence="nuclear",
        default_n_images=2 * 344,
    ),
    "lncap": Preset(
        name="lncap",
        paper_shape=(2156, 2556),
        um_per_px=0.325,
        prevalence=51 / 784,
        mean_artifacts=1.3,
        artifact_count_dispersion=4.0,
        mean_area_fraction=75_933 / (2556 * 2156),
        max_area_fraction=0.5,
        type_weights={"dust": 0.15, "debris": 0.30, "fibre": 0.20, "clump": 0.12, "bubble": 0.10, "out_of_focus": 0.13},
        annotation_margin=1,
        # 0.325 µm/px; small prostate cells growing in tight colonies (681 per field).
        cell_lines=(CellLine("LNCaP", 160.0, 17.0, 11.0, elongation=1.35, roughness=0.10, clustering=0.9),),
        fluorescence="nuclear",
        default_n_images=2 * 51,
    ),
    "cho_m4r": Preset(
        name="cho_m4r",
        paper_shape=(904, 1224),
        um_per_px=0.323,
        prevalence=1171 / 1181,
        mean_artifacts=13_713 / 1171,
        artifact_count_dispersion=1.5,
        mean_area_fraction=0.0031,
        max_area_fraction=0.63,
        type_weights={"dust": 0.30, "debris": 0.32, "fibre": 0.06, "clump": 0.14, "bubble": 0.08, "out_of_focus": 0.10},
        annotation_margin=4,
        # Live CHO-K1-hM4R cells 5-7 h after seeding: large, round, thick (0.323 µm/px).
        cell_lines=(CellLine("CHO-K1-hM4R", 120.0, 26.0, 13.0, elongation=1.15, roughness=0.07, clustering=0.25, thickness=1.6),),
        fluorescence="membrane",
        default_n_images=2 * 1171,
        live_cells=True,
    ),
}


def get_preset(preset: str | Preset) -> Preset:
    """Return the :class:`Preset` for a name (or the preset itself).

    Raises
    ------
    ArtsegInputError
        Unknown preset name.
    """
    if isinstance(preset, Preset):
        return preset
    try:
        return PRESETS[preset]
    except KeyError:
        raise ArtsegInputError(f"unknown preset {preset!r} (choose from {', '.join(PRESETS)})") from None


def resolve_shape(size: int | tuple[int, ...] | list[int] | None, preset: Preset, *, paper_size: bool = False) -> tuple[int, int]:
    """Turn a ``--size`` value into ``(H, W)``.

    Parameters
    ----------
    size : int, (H, W) or None
        One number for a square field, two for ``H W``; ``None`` = 256 x 256.
    preset : Preset
        Supplies the paper's field size.
    paper_size : bool
        Use the paper's field size (``size`` must then be None).

    Raises
    ------
    ArtsegInputError
        Both ``size`` and ``paper_size``, or a side outside 32..8192 pixels.
    """
    if paper_size:
        if size is not None:
            raise ArtsegInputError("give either --size or --paper-size, not both")
        return preset.paper_shape
    if size is None:
        return DEFAULT_SHAPE
    values = [size] if isinstance(size, int) else list(size)
    if len(values) == 1:
        values = values * 2
    if len(values) != 2:
        raise ArtsegInputError(f"--size takes one or two numbers (H W), got {len(values)}")
    height, width = (int(v) for v in values)
    if not (32 <= height <= 8192 and 32 <= width <= 8192):
        raise ArtsegInputError(f"field size {height}x{width} is outside 32..8192 pixels per side")
    return height, width
