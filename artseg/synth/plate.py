"""A synthetic ligand-binding plate: the ArtSeg-CHO-M4R concentration-response experiments.

Paper §2.1 and §2.3.4: live CHO-K1-hM4R cells with 2 nM of a fluorescent ligand, displaced
by increasing concentrations of an unlabelled competitor; four fields per well,
duplicate wells, ten concentration-response experiments with several ligands. Each cell's
bound-ligand fluorescence follows the one-site competition (Hill slope -1)

    F(c) = Bottom + (Top - Bottom) / (1 + 10^(log10 c - LogIC50)),

times a well-to-well and a cell-to-cell log-normal factor. Artifacts (99.2 % of fields)
glow or block light and so bias the cell-minus-background intensity unless excluded;
``truth.json`` records the LogIC50 each experiment was drawn with.
"""

from __future__ import annotations

import json
import string
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from artseg.errors import ArtsegInputError
from artseg.io import atomic_write_csv, atomic_write_text, write_labels, write_mask, write_tiff
from artseg.synth.field import Field, synthesize_field
from artseg.synth.fluorescence import LIGAND_ARTIFACT_GLOW, FluorescenceImaging
from artseg.synth.optics import sample_illumination
from artseg.synth.presets import DEFAULT_SHAPE, get_preset
from artseg.synth.seeding import check_seed, stream

__all__ = [
    "LIGANDS",
    "PLATE_COLUMNS",
    "ExperimentTruth",
    "generate_plate",
    "hill_response",
    "plate_design",
    "simulate_plate",
]

# Competitors and their approximate LogIC50 (molar) against 2 nM UR-CG072 at M4R.
LIGANDS = (
    ("atropine", -9.0),
    ("pirenzepine", -7.5),
    ("UNSW-MK259", -8.3),
    ("arecoline", -5.5),
)
PLATE_COLUMNS = [
    "experiment", "ligand", "concentration", "well", "field",
    "brightfield", "fluorescence", "artifact_mask", "cell_truth", "artifact_types",
]

_BETWEEN_EXPERIMENT_SD = 0.1  # LogIC50 scatter of biological replicates (paper: 0.11)
_WELL_CV = 0.065
_CELL_CV = 0.2
_HALF_LOG = 0.5


@dataclass(frozen=True)
class ExperimentTruth:
    """The parameters one concentration-response experiment was simulated with."""

    ligand: str
    log_ic50: float
    top: float
    bottom: float
    background: float
    hill_slope: float = -1.0

    def as_dict(self) -> dict:
        """JSON-ready mapping (the ``truth.json`` entry)."""
        return {
            "ligand": self.ligand,
            "log_ic50": self.log_ic50,
            "top": self.top,
            "bottom": self.bottom,
            "hill_slope": self.hill_slope,
            "background": self.background,
        }


def hill_response(concentration: np.ndarray | float, truth: ExperimentTruth) -> np.ndarray:
    """Bound-ligand signal at molar ``concentration`` (0 = vehicle gives ``top``).

    Examples
    --------
    >>> t = ExperimentTruth("x", log_ic50=-8.0, top=100.0, bottom=10.0, background=0.0)
    >>> float(hill_response(1e-8, t))
    55.0
    """
    concentration = np.asarray(concentration, dtype=float)
    with np.errstate(divide="ignore"):
        log_c = np.where(concentration > 0, np.log10(np.where(concentration > 0, concentration, 1.0)), -np.inf)
    return truth.bottom + (truth.top - truth.bottom) / (1.0 + 10.0 ** (log_c - truth.log_ic50))


def _row_letters(index: int) -> str:
    letters = string.ascii_uppercase
    return letters[index] if index < 26 else letters[index // 26 - 1] + letters[index % 26]


def _well_name(replicate: int, column: int, n_columns: int) -> str:
    """``A01`` style: replicate = row, concentration = column (wrapping past 24 columns)."""
    if n_columns <= 24:
        return f"{_row_letters(replicate)}{column + 1:02d}"
    linear = replicate * n_columns + column
    return f"{_row_letters(linear // 24)}{linear % 24 + 1:02d}"


def plate_design(
    seed: int,
    *,
    n_experiments: int = 10,
    n_concentrations: int = 8,
    wells_per_concentration: int = 2,
    fields_per_well: int = 4,
) -> tuple[pd.DataFrame, dict[str, ExperimentTruth]]:
    """Lay out the plate: which ligand, concentration and well each field belongs to.

    Parameters
    ----------
    seed : int
        Run seed (draws each experiment's true parameters).
    n_experiments : int
        Concentration-response curves; ligands cycle through :data:`LIGANDS`, so the
        default 10 gives 3 + 3 + 2 + 2 replicate experiments.
    n_concentrations : int
        Competitor concentrations in half-log steps centred on the ligand's LogIC50; a
        vehicle well (concentration 0) is added.
    wells_per_concentration : int
        Replicate wells (duplicates by default).
    fields_per_well : int
        Fields of view per well.

    Returns
    -------
    design : pandas.DataFrame
        One row per field: ``experiment, ligand, concentration, well, field``.
    truth : dict
        Experiment name -> :class:`ExperimentTruth`.

    Raises
    ------
    ArtsegInputError
        A count below 1 (or below 3 concentrations, too few for a curve).
    """
    seed = check_seed(seed)
    for name, value, minimum in (
        ("experiments", n_experiments, 1),
        ("concentrations", n_concentrations, 3),
        ("wells per concentration", wells_per_concentration, 1),
        ("fields per well", fields_per_well, 1),
    ):
        if int(value) < minimum:
            raise ArtsegInputError(f"plate needs at least {minimum} {name}, got {value}")
    rng = stream(seed, "plate_design")
    rows, truth = [], {}
    for experiment_index in range(n_experiments):
        ligand, nominal = LIGANDS[experiment_index % len(LIGANDS)]
        name = f"{ligand}_{experiment_index // len(LIGANDS) + 1}"
        top = float(1000.0 * rng.lognormal(0.0, 0.1))
        truth[name] = ExperimentTruth(
            ligand=ligand,
            log_ic50=float(nominal + rng.normal(0.0, _BETWEEN_EXPERIMENT_SD)),
            top=top,
            bottom=float(top * rng.uniform(0.08, 0.15)),
            background=float(rng.uniform(300.0, 500.0)),
        )
        center = np.round(nominal / _HALF_LOG) * _HALF_LOG
        log_concentrations = center + (np.arange(n_concentrations) - (n_concentrations - 1) / 2) * _HALF_LOG
        concentrations = [0.0, *(10.0**log_concentrations)]
        for replicate in range(wells_per_concentration):
            for column, concentration in enumerate(concentrations):
                well = _well_name(replicate, column, len(concentrations))
                for field_index in range(fields_per_well):
                    rows.append(
                        {"experiment": name, "ligand": ligand, "concentration": concentration, "well": well, "field": field_index}
                    )
    return pd.DataFrame(rows, columns=["experiment", "ligand", "concentration", "well", "field"]), truth


def _experiment_imaging(seed: int, experiment_index: int, truth: ExperimentTruth) -> FluorescenceImaging:
    # One camera, one excitation pattern and one medium per experiment (plate).
    rng = stream(seed, "plate_design", 1 + experiment_index)
    return FluorescenceImaging(
        cell_signal=truth.top,
        cell_variation=_CELL_CV,
        background=truth.background,
        autofluorescence=LIGAND_ARTIFACT_GLOW * truth.top,
        offset=100.0,
        adu_per_electron=1.0,
        read_noise=3.0,
        psf_sigma=1.4,
        illumination=sample_illumination(rng, 0.3),
    )


def simulate_plate(
    design: pd.DataFrame,
    truth: dict[str, ExperimentTruth],
    *,
    seed: int,
    shape: tuple[int, int] = DEFAULT_SHAPE,
    progress: bool = False,
) -> Iterator[tuple[int, Field]]:
    """Yield ``(row index, Field)`` for every field of a plate design (pure, lazy).

    Each well gets one well-to-well factor on its mean signal; each field is drawn from
    its own generator ``(seed, plate_field, row index)`` and contains artifacts with the
    CHO-M4R prevalence.
    """
    preset = get_preset("cho_m4r")
    imaging = {name: _experiment_imaging(seed, i, t) for i, (name, t) in enumerate(truth.items())}
    well_factors: dict[tuple[str, str], float] = {}
    rows = design.to_dict("records")
    for index, row in enumerate(tqdm(rows, desc="plate", unit="field", disable=not progress)):
        rng = stream(seed, "plate_field", index)
        key = (row["experiment"], row["well"])
        if key not in well_factors:
            well_factors[key] = float(rng.lognormal(-(_WELL_CV**2) / 2, _WELL_CV))
        experiment = truth[row["experiment"]]
        level = float(hill_response(row["concentration"], experiment)) * well_factors[key]
        with_artifacts = bool(rng.random() < preset.prevalence)
        settings = imaging[row["experiment"]].with_cell_signal(level)
        yield index, synthesize_field(rng, preset, shape, with_artifacts, fluorescence_imaging=settings)


def generate_plate(
    out_dir: str | Path,
    *,
    seed: int,
    n_experiments: int = 10,
    n_concentrations: int = 8,
    wells_per_concentration: int = 2,
    fields_per_well: int = 4,
    size: tuple[int, int] = DEFAULT_SHAPE,
    progress: bool = True,
) -> Path:
    """Write a synthetic binding plate: images under ``plate/``, ``plate.csv`` and ``truth.json``.

    Parameters
    ----------
    out_dir : str or Path
        Folder receiving ``plate.csv``, ``truth.json`` and ``plate/{brightfield,
        fluorescence,masks,cells}/``.
    seed : int
        Run seed; the same seed writes identical files.
    n_experiments, n_concentrations, wells_per_concentration, fields_per_well : int
        Plate layout (see :func:`plate_design`); defaults give 720 fields.
    size : tuple of int
        ``(H, W)`` of each field.
    progress : bool
        Show a progress bar.

    Returns
    -------
    Path
        The plate manifest ``plate.csv`` (plate-manifest columns of DESIGN.md plus
        ``cell_truth``, the true cell labels, deliberately not named ``cell_mask`` so the
        toolkit segments cells itself, and ``artifact_types``, the kinds of artifact in the
        field joined by ``;``).
    """
    out_dir = Path(out_dir)
    design, truth = plate_design(
        seed,
        n_experiments=n_experiments,
        n_concentrations=n_concentrations,
        wells_per_concentration=wells_per_concentration,
        fields_per_well=fields_per_well,
    )
    records = []
    for index, field in simulate_plate(design, truth, seed=seed, shape=tuple(size), progress=progress):
        row = design.iloc[index]
        stem = f"{row['experiment']}_{row['well']}_f{int(row['field'])}"
        paths = {
            "brightfield": f"plate/brightfield/{stem}.tif",
            "fluorescence": f"plate/fluorescence/{stem}.tif",
            "artifact_mask": f"plate/masks/{stem}.png",
            "cell_truth": f"plate/cells/{stem}.tif",
        }
        write_tiff(out_dir / paths["brightfield"], field.brightfield)
        write_tiff(out_dir / paths["fluorescence"], field.fluorescence)
        write_mask(out_dir / paths["artifact_mask"], field.artifact_mask)
        write_labels(out_dir / paths["cell_truth"], field.cells)
        records.append({**row.to_dict(), **paths, "artifact_types": ";".join(sorted(set(field.artifact_types)))})
    manifest = pd.DataFrame(records, columns=PLATE_COLUMNS)
    atomic_write_text(out_dir / "truth.json", json.dumps({k: v.as_dict() for k, v in truth.items()}, indent=2) + "\n")
    plate_csv = out_dir / "plate.csv"
    atomic_write_csv(manifest, plate_csv)
    return plate_csv
