"""The tables of benchmarks/bench_ligand_ladder.py (issue 19's removal ladder), on hand-made runs."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_ligand_ladder import field_biases, kind_contributions, ladder, well_biases  # noqa: E402


def _summary(modes: dict[str, float]) -> pd.DataFrame:
    return pd.DataFrame([{"mode": mode, "mean_abs_delta_log_ic50_vs_manual": delta, "mean_abs_error_vs_truth": 0.1,
                          "mean_r_squared": 0.9, "pearson_r_vs_manual": 1 - delta, "n_fitted": 3}
                         for mode, delta in modes.items()])


def test_the_ladder_takes_each_rung_from_its_run():
    table = ladder({"weak": _summary({"manual": 0.0, "model": 0.3, "none": 0.6}),
                    "strong": _summary({"manual": 0.0, "model": 0.1})})
    assert table["rung"].tolist() == ["manual", "strong", "weak", "none"]
    assert table["abs_delta_vs_manual"].tolist() == [0.0, 0.1, 0.3, 0.6]


def _fields(cell_model: list[float], coverage_model: list[float]) -> pd.DataFrame:
    # three fields of one well, then one field of another; manual and none as below
    return pd.DataFrame({
        "Metadata_Experiment": "e1", "Metadata_Well": ["A01", "A01", "A01", "A02"], "Metadata_Site": [0, 1, 2, 0],
        "artifact_coverage_manual": [0.1, 0.0, 0.2, 0.0], "artifact_coverage_model": coverage_model,
        "cell_mean_manual": [100.0, 100.0, 100.0, 50.0], "background_mean_manual": 10.0,
        "cell_mean_model": cell_model, "background_mean_model": 10.0,
        "cell_mean_none": [140.0, 100.0, 120.0, 50.0], "background_mean_none": 10.0,
    })


def test_field_and_well_biases_and_what_each_model_removes_per_kind():
    plate = pd.DataFrame({"experiment": "e1", "well": ["A01", "A01", "A01", "A02"], "field": [0, 1, 2, 0],
                          "artifact_types": ["clump", np.nan, "clump;fibre", np.nan]})
    fields = field_biases({"weak": _fields([120.0, 100.0, 120.0, 50.0], [0.05, 0.0, 0.0, 0.0]),
                           "strong": _fields([100.0, 100.0, 110.0, 50.0], [0.1, 0.0, 0.1, 0.0])}, plate)
    assert fields["bias_none"].tolist() == [40.0, 0.0, 20.0, 0.0]
    assert fields["bias_weak"].tolist() == [20.0, 0.0, 20.0, 0.0]
    assert fields["bias_strong"].tolist() == [0.0, 0.0, 10.0, 0.0]
    wells = well_biases(fields)
    assert wells["Metadata_Well"].tolist() == ["A01", "A02"]  # largest no-removal bias first
    assert wells.loc[0, "bias_none"] == pytest.approx(20.0) and wells.loc[0, "artifact_types"] == "clump;fibre"
    assert wells.loc[0, "relative_bias_none"] == pytest.approx(20 / 90)  # specific = cell - background
    kinds = kind_contributions(fields).set_index("kind")
    assert kinds.loc["clump", "n_fields"] == 2 and kinds.loc["clump", "share_of_bias_none"] == pytest.approx(1.0)
    assert kinds.loc["fibre", "share_of_bias_none"] == pytest.approx(20 / 60)
    assert kinds.loc["clump", "removed_by_weak"] == pytest.approx(1 - 40 / 60)
    assert kinds.loc["clump", "removed_by_strong"] == pytest.approx(1 - 10 / 60)
    assert kinds.loc["fibre", "removed_by_weak"] == pytest.approx(0.0)
    assert kinds.loc["clump", "coverage_weak"] == pytest.approx(0.025)


def test_a_plate_without_kinds_says_so():
    plate = pd.DataFrame({"experiment": "e1", "well": ["A01", "A01", "A01", "A02"], "field": [0, 1, 2, 0]})
    same = _fields([100.0, 100.0, 100.0, 50.0], [0.1, 0.0, 0.2, 0.0])
    fields = field_biases({"weak": same, "strong": same}, plate)
    assert set(fields["artifact_types"]) == {"not recorded"}
