"""Synthetic brightfield + fluorescence microscopy with artifacts and full ground truth.

Stands in for the paper's three datasets (seven cell lines, LNCaP, ArtSeg-CHO-M4R) for
training, benchmarking and both downstream analyses. The per-field function
:func:`synthesize_field` is pure; :func:`generate_dataset` and :func:`generate_plate`
write ordinary image files and manifests, exactly what a user would bring.

Examples
--------
>>> import numpy as np
>>> from artseg.synth import synthesize_field
>>> field = synthesize_field(np.random.default_rng(0), "cho_m4r", (64, 64), True)
>>> field.brightfield.shape, field.n_artifacts > 0
((64, 64), True)
"""

from artseg.synth.artifacts import ArtifactSpec, render_artifacts, sample_artifacts
from artseg.synth.dataset import GENERATOR_VERSION, MANIFEST_COLUMNS, FieldPlan, PlateOptions, generate_dataset, is_current_dataset, plan_fields
from artseg.synth.field import Field, synthesize_field
from artseg.synth.plate import (
    LIGANDS,
    PLATE_COLUMNS,
    ExperimentTruth,
    generate_plate,
    hill_response,
    plate_design,
    simulate_plate,
)
from artseg.synth.presets import ARTIFACT_TYPES, DEFAULT_SHAPE, PRESETS, CellLine, Preset, get_preset, resolve_shape

__all__ = [
    "ARTIFACT_TYPES",
    "DEFAULT_SHAPE",
    "GENERATOR_VERSION",
    "LIGANDS",
    "MANIFEST_COLUMNS",
    "PLATE_COLUMNS",
    "PRESETS",
    "ArtifactSpec",
    "CellLine",
    "ExperimentTruth",
    "Field",
    "FieldPlan",
    "PlateOptions",
    "Preset",
    "generate_dataset",
    "generate_plate",
    "get_preset",
    "hill_response",
    "is_current_dataset",
    "plan_fields",
    "plate_design",
    "render_artifacts",
    "resolve_shape",
    "sample_artifacts",
    "simulate_plate",
    "synthesize_field",
]
