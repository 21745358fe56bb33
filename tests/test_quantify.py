"""Tests for analysis.quantify on hand-made fields whose answers are known by construction."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.quantify import aggregate_wells, field_intensities, pearson_with_ci, well_table
from artseg.errors import ArtsegInputError

CELL_LEVEL, BACKGROUND_LEVEL, ARTIFACT_LEVEL = 100.0, 10.0, 5000.0


def hand_made_field() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """10x10 field: a 4x4 cell block, and a bright artifact over 4 cell + 6 background px."""
    fluorescence = np.full((10, 10), BACKGROUND_LEVEL)
    cells = np.zeros((10, 10), dtype=bool)
    cells[2:6, 2:6] = True
    fluorescence[cells] = CELL_LEVEL
    artifact = np.zeros((10, 10), dtype=bool)
    artifact[4:6, 4:9] = True  # 2x5: 2x2 inside the cell block, 2x3 outside
    fluorescence[artifact] = ARTIFACT_LEVEL
    return fluorescence.astype(np.uint16), cells, artifact


def test_exclusion_removes_the_artifact_from_cell_and_background():
    fluorescence, cells, artifact = hand_made_field()
    result = field_intensities(fluorescence, cells, artifact)
    assert result["cell_mean"] == CELL_LEVEL
    assert result["background_mean"] == BACKGROUND_LEVEL
    assert (result["n_cell_px"], result["n_background_px"]) == (16 - 4, 100 - 16 - 6)
    assert result["n_excluded_px"] == 10


def test_without_exclusion_the_artifact_biases_both_means():
    fluorescence, cells, _ = hand_made_field()
    result = field_intensities(fluorescence, cells)
    assert result["cell_mean"] == pytest.approx((12 * CELL_LEVEL + 4 * ARTIFACT_LEVEL) / 16)
    assert result["background_mean"] == pytest.approx(
        (78 * BACKGROUND_LEVEL + 6 * ARTIFACT_LEVEL) / 84)
    assert (result["n_cell_px"], result["n_background_px"], result["n_excluded_px"]) == (
        16, 84, 0)


def test_label_image_works_as_cell_mask():
    fluorescence, cells, artifact = hand_made_field()
    labels = np.zeros(cells.shape, dtype=np.int32)
    labels[2:6, 2:4], labels[2:6, 4:6] = 1, 7
    assert field_intensities(fluorescence, labels, artifact.astype(np.uint8)) == (
        field_intensities(fluorescence, cells, artifact))


def test_background_margin_drops_a_ring_around_cells():
    fluorescence = np.full((9, 9), 10.0)
    cells = np.zeros((9, 9), dtype=bool)
    cells[4, 4] = True
    fluorescence[4, 4] = 100.0
    fluorescence[[3, 5, 4, 4], [4, 4, 3, 5]] = 40.0  # glow in the 4-neighbours
    plain = field_intensities(fluorescence, cells)
    ringed = field_intensities(fluorescence, cells, background_margin=1)
    assert plain["background_mean"] == pytest.approx((76 * 10.0 + 4 * 40.0) / 80)
    assert ringed["background_mean"] == 10.0
    assert ringed["n_background_px"] == 81 - 1 - 4
    assert ringed["cell_mean"] == plain["cell_mean"] == 100.0


def test_exclusion_margin_also_drops_the_glow_around_an_artifact():
    fluorescence = np.full((9, 9), 10.0)
    cells = np.zeros((9, 9), dtype=bool)
    cells[:, :2] = True
    fluorescence[:, :2] = 30.0
    artifact = np.zeros((9, 9), dtype=bool)
    artifact[4, 5] = True
    fluorescence[4, 5] = 500.0
    fluorescence[[3, 5, 4, 4], [5, 5, 4, 6]] = 100.0  # the artifact's glow blurs into its 4-neighbours
    tight = field_intensities(fluorescence, cells, artifact)
    ringed = field_intensities(fluorescence, cells, artifact, exclusion_margin=1)
    assert tight["background_mean"] == pytest.approx((58 * 10.0 + 4 * 100.0) / 62)
    assert ringed["background_mean"] == 10.0
    assert ringed["n_excluded_px"] == 5 and ringed["n_background_px"] == 81 - 18 - 5
    assert ringed["cell_mean"] == tight["cell_mean"] == 30.0
    assert field_intensities(fluorescence, cells, None, exclusion_margin=3) == field_intensities(fluorescence, cells)


def test_everything_excluded_gives_nan_with_zero_counts():
    fluorescence, cells, _ = hand_made_field()
    result = field_intensities(fluorescence, cells, np.ones(cells.shape, dtype=bool))
    assert math.isnan(result["cell_mean"]) and math.isnan(result["background_mean"])
    assert result["n_cell_px"] == result["n_background_px"] == 0


def test_nan_pixels_raise_naming_the_file():
    fluorescence, cells, artifact = hand_made_field()
    image = fluorescence.astype(np.float32)
    image[0, 0] = np.nan
    with pytest.raises(ArtsegInputError, match=r"plate1/A01_f2_fluo\.tif: .*1 NaN"):
        field_intensities(image, cells, artifact, source="plate1/A01_f2_fluo.tif")


@pytest.mark.parametrize(
    ("fluorescence", "cells", "kwargs", "problem"),
    [
        (np.zeros((4, 4)), np.zeros((4, 5)), {}, "cell mask has shape"),
        (np.zeros((4, 4)), np.zeros((4, 4)), {"exclusion_mask": np.zeros((3, 4))},
         "exclusion mask has shape"),
        (np.zeros((2, 4, 4)), np.zeros((2, 4, 4)), {}, "2-D"),
        (np.zeros((4, 4)), np.zeros((4, 4)), {"background_margin": -1}, "background_margin"),
        (np.zeros((4, 4)), np.zeros((4, 4)), {"exclusion_margin": 1.5}, "exclusion_margin"),
    ],
)
def test_malformed_inputs_raise_naming_the_source(fluorescence, cells, kwargs, problem):
    with pytest.raises(ArtsegInputError, match=f"field_7: .*{problem}"):
        field_intensities(fluorescence, cells, source="field_7", **kwargs)


def field_table() -> pd.DataFrame:
    """Per-field rows the way a caller streams them: two wells, two removal modes."""
    fluorescence, cells, artifact = hand_made_field()
    everything = np.ones(cells.shape, dtype=bool)
    rows = []
    for mode, exclusion in (("none", None), ("manual", artifact)):
        for well, concentration, field_exclusions in (
            ("A01", 0.0, [exclusion, exclusion]),
            ("A02", 1e-7, [everything, everything]),  # every field fully excluded
        ):
            for field_index, field_exclusion in enumerate(field_exclusions):
                scale = 1.0 + field_index  # fields of a well differ in brightness
                measured = field_intensities(fluorescence * scale, cells, field_exclusion)
                rows.append({"experiment": "exp1", "ligand": "atropine",
                             "concentration": concentration, "well": well,
                             "field": field_index, "mode": mode, **measured})
    return pd.DataFrame(rows)


def test_well_means_are_unweighted_means_of_usable_fields():
    wells = aggregate_wells(field_table()).set_index(["well", "mode"])
    manual = wells.loc[("A01", "manual")]
    assert manual["n_fields"] == manual["n_fields_total"] == 2
    assert manual["cell_mean"] == pytest.approx((CELL_LEVEL + 2 * CELL_LEVEL) / 2)
    assert manual["background_mean"] == pytest.approx(1.5 * BACKGROUND_LEVEL)
    assert manual["specific"] == pytest.approx(1.5 * (CELL_LEVEL - BACKGROUND_LEVEL))
    assert manual["n_cell_px"] == 24
    assert wells.loc[("A01", "none"), "cell_mean"] > manual["cell_mean"]


def test_well_with_all_fields_excluded_is_nan():
    wells = aggregate_wells(field_table())
    excluded = wells[wells["well"] == "A02"]
    assert len(excluded) == 2
    assert (excluded["n_fields"] == 0).all() and (excluded["n_fields_total"] == 2).all()
    assert excluded[["cell_mean", "background_mean", "specific"]].isna().all().all()


def test_field_missing_one_side_is_not_used_for_either_mean():
    rows = pd.DataFrame({
        "experiment": "e", "ligand": "L", "concentration": 1e-6, "well": "B03",
        "cell_mean": [50.0, 95.0, 90.0], "background_mean": [5.0, np.nan, 7.0],
    })
    well = aggregate_wells(rows).iloc[0]
    assert (well["n_fields"], well["n_fields_total"]) == (2, 3)
    assert (well["cell_mean"], well["background_mean"], well["specific"]) == (70.0, 6.0, 64.0)
    assert "mode" not in aggregate_wells(rows).columns


def test_aggregate_rejects_a_table_without_wells():
    with pytest.raises(ArtsegInputError, match="missing column.*well"):
        aggregate_wells(field_table().drop(columns="well"))
    assert well_table is aggregate_wells


# --- Pearson correlation with Fisher-z interval ------------------------------------------


def test_pearson_matches_scipy_fisher_interval():
    rng = np.random.default_rng(5)
    x = rng.normal(size=30)
    y = 0.7 * x + rng.normal(scale=0.5, size=30)
    r, low, high = pearson_with_ci(x, y, alpha=0.1)
    reference = stats.pearsonr(x, y)
    interval = reference.confidence_interval(confidence_level=0.9)
    assert r == pytest.approx(reference.statistic, rel=1e-12)
    assert (low, high) == pytest.approx((interval.low, interval.high), rel=1e-12)


def test_pearson_drops_nan_pairs():
    x = np.array([1.0, 2.0, np.nan, 4.0, 5.0, 6.0])
    y = np.array([1.2, 1.9, 3.0, np.nan, 5.3, 5.8])
    kept = ~(np.isnan(x) | np.isnan(y))
    assert pearson_with_ci(x, y) == pytest.approx(pearson_with_ci(x[kept], y[kept]))
    assert not math.isnan(pearson_with_ci(x, y)[1])


@pytest.mark.parametrize(
    ("x", "y", "nan_positions"),
    [
        ([1.0, 2.0], [2.0, 1.0], (0, 1, 2)),  # too few pairs for r
        ([1.0, 2.0, 3.0], [1.0, 3.0, 2.0], (1, 2)),  # r but no interval
        ([1.0, 2.0, 3.0, 4.0], [3.0, 3.0, 3.0, 3.0], (0, 1, 2)),  # constant side
    ],
)
def test_pearson_degenerate_inputs_give_nan(x, y, nan_positions):
    result = pearson_with_ci(x, y)
    assert [i for i, value in enumerate(result) if math.isnan(value)] == list(nan_positions)


def test_pearson_rejects_unpaired_input():
    with pytest.raises(ArtsegInputError, match="differ in length"):
        pearson_with_ci([1, 2, 3, 4], [1, 2, 3])
