"""fields.csv (CellProfiler-style per-field table) and the Prism XY tables (analysis.tables)."""

import numpy as np
import pandas as pd
import pytest

from analysis.quantify import field_intensities
from analysis.tables import METADATA_COLUMNS, field_table, plate_names, prism_file_name, prism_tables
from artseg.errors import ArtsegInputError


def _field_rows():
    """Two fields of one well and one of another, three modes, measured by field_intensities."""
    rng = np.random.default_rng(0)
    rows = []
    for experiment, well, field in (("e1", "A01", 0), ("e1", "A01", 1), ("e1", "B02", 0)):
        fluorescence = rng.uniform(100, 200, (20, 30))
        cells = np.zeros((20, 30), dtype=bool)
        cells[5:15, 5:15] = True
        manual = np.zeros_like(cells)
        manual[:4, :6 + field] = True  # 24 or 28 of 600 pixels
        model = np.zeros_like(cells)
        model[-3:, :] = True  # 90 of 600
        for mode, mask in (("manual", manual), ("model", model), ("none", None)):
            rows.append({"experiment": experiment, "ligand": "lig", "concentration": 1e-8, "well": well,
                         "field": field, "mode": mode,
                         **field_intensities(fluorescence, cells, mask, exclusion_margin=2)})
    return pd.DataFrame(rows)


def test_field_table_has_one_row_per_field_with_metadata_coverage_and_means_per_mode():
    rows = _field_rows()
    plates = pd.DataFrame({"experiment": "e1", "well": ["A01", "A01", "B02"], "field": [0, 1, 0],
                           "Metadata_Plate": "P1"})
    table = field_table(rows, plates)
    assert list(table.columns) == METADATA_COLUMNS + [
        "artifact_coverage_manual", "artifact_coverage_model", "cell_mean_manual", "background_mean_manual",
        "cell_mean_model", "background_mean_model", "cell_mean_none", "background_mean_none"]
    assert table[["Metadata_Plate", "Metadata_Well", "Metadata_Site"]].values.tolist() == [
        ["P1", "A01", 0], ["P1", "A01", 1], ["P1", "B02", 0]]
    # coverage counts the mask itself, not the 2-pixel exclusion margin around it
    np.testing.assert_allclose(table["artifact_coverage_manual"], [24 / 600, 28 / 600, 24 / 600])
    np.testing.assert_allclose(table["artifact_coverage_model"], 90 / 600)
    for mode in ("manual", "model", "none"):
        expected = rows[rows["mode"] == mode]
        np.testing.assert_array_equal(table[f"cell_mean_{mode}"], expected["cell_mean"])
        np.testing.assert_array_equal(table[f"background_mean_{mode}"], expected["background_mean"])
    assert not table["cell_mean_manual"].equals(table["cell_mean_none"])


def test_field_table_without_manual_masks_has_no_manual_coverage():
    rows = _field_rows()
    table = field_table(rows[rows["mode"] != "manual"])
    assert "artifact_coverage_manual" not in table.columns and "artifact_coverage_model" in table.columns
    assert (table["Metadata_Plate"] == "").all()


def test_field_table_names_a_missing_column():
    with pytest.raises(ArtsegInputError, match="missing column.*cell_mean"):
        field_table(_field_rows().drop(columns="cell_mean"))


def test_plate_names_prefer_the_plate_column():
    manifest = pd.DataFrame({"experiment": ["a", "b"], "well": ["A01", "A01"], "field": [0, 0], "plate": ["P7", "P8"]})
    assert plate_names(manifest, "stem").tolist() == ["P7", "P8"]
    assert plate_names(manifest.drop(columns="plate"), "stem").tolist() == ["a", "b"]  # one plate per experiment
    distinct = manifest.drop(columns="plate").assign(well=["A01", "A02"])
    assert plate_names(distinct, "stem").tolist() == ["stem", "stem"]


def _wells():
    rows = []
    for c, values in ((0.0, [900.0, 910.0, 905.0]), (1e-9, [800.0, np.nan, 790.0]), (1e-7, [300.0, 310.0, 305.0])):
        for replicate, value in enumerate(values):
            rows.append({"experiment": "atropine 1", "mode": "model+rout", "concentration": c,
                         "well": f"{'ABC'[replicate]}{int(-np.log10(c)) if c else 1:02d}", "specific": value})
    return pd.DataFrame(rows)


def test_prism_table_puts_replicates_side_by_side_on_log_concentration():
    tables = prism_tables(_wells(), vehicle_offset=2.0)
    assert list(tables) == ["atropine_1_model+rout.csv"]
    table = tables["atropine_1_model+rout.csv"]
    assert list(table.columns) == ["log_concentration", "replicate_1", "replicate_2", "replicate_3"]
    np.testing.assert_allclose(table["log_concentration"], [-11.0, -9.0, -7.0])  # vehicle 2 logs below 1e-9
    np.testing.assert_array_equal(table.iloc[0, 1:], [900.0, 910.0, 905.0])
    assert np.isnan(table.iloc[1, 2])  # the blanked well stays blank


def test_prism_tables_keep_two_experiments_apart_when_their_names_clean_to_the_same():
    wells = pd.concat([_wells(), _wells().assign(experiment="atropine/1")])
    assert sorted(prism_tables(wells)) == ["atropine_1_model+rout.csv", "atropine_1_model+rout_2.csv"]
    assert prism_file_name("a b", "none") == "a_b_none.csv"


def test_prism_tables_refuse_a_non_positive_vehicle_offset():
    with pytest.raises(ArtsegInputError, match="vehicle_offset"):
        prism_tables(_wells(), vehicle_offset=0)
