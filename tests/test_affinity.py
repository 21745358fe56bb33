import numpy as np
import pandas as pd
import pytest

from analysis.affinity import FIT_COLUMNS, SUMMARY_COLUMNS, fit_experiments, read_truth, summarize
from analysis.hill import hill


def _wells(true_log_ic50, bias_none=0.0, seed=0):
    """Duplicate wells, 8 concentrations + vehicle, for three removal modes."""
    rng = np.random.default_rng(seed)
    concentrations = np.r_[0.0, 10.0 ** np.arange(-10, -6, 0.5)]
    rows = []
    for experiment, log_ic50 in true_log_ic50.items():
        for i, c in enumerate(np.repeat(concentrations, 2)):
            x = np.log10(c) if c > 0 else -np.inf
            clean = hill(x, 100.0, 1000.0, log_ic50, -1.0) + rng.normal(0, 10)
            well = f"A{i + 1:02d}"
            for mode, value in (("manual", clean), ("model", clean + rng.normal(0, 5)),
                                ("none", clean + bias_none * 1000.0 / (1 + 10 ** (log_ic50 - x + 1)))):
                rows.append({"experiment": experiment, "ligand": "L", "concentration": c,
                             "well": well, "mode": mode, "specific": value})
    return pd.DataFrame(rows)


def test_fit_experiments_recovers_truth_and_deltas():
    truth = {"e1": -8.0, "e2": -7.0}
    wells = _wells(truth, bias_none=0.5)
    fits = fit_experiments(wells, truth)
    assert list(fits.columns) == FIT_COLUMNS
    assert len(fits) == 6 and fits["success"].all()
    manual = fits[fits["mode"] == "manual"].set_index("experiment")
    for experiment, value in truth.items():
        assert manual.loc[experiment, "log_ic50"] == pytest.approx(value, abs=0.1)
    assert (fits.loc[fits["mode"] == "manual", "abs_delta_vs_manual"] == 0).all()
    none_delta = fits.loc[fits["mode"] == "none", "abs_delta_vs_manual"].mean()
    model_delta = fits.loc[fits["mode"] == "model", "abs_delta_vs_manual"].mean()
    assert none_delta > model_delta
    assert fits["abs_error_vs_truth"].notna().all()


def test_summary_orders_modes_like_the_paper_pattern():
    truth = {"e1": -8.0, "e2": -7.5, "e3": -9.0}
    wells = _wells(truth, bias_none=0.5, seed=1)
    summary = summarize(wells, fit_experiments(wells, truth))
    assert list(summary.columns) == SUMMARY_COLUMNS
    by_mode = summary.set_index("mode")
    assert by_mode.loc["manual", "pearson_r_vs_manual"] == pytest.approx(1.0)
    assert by_mode.loc["model", "pearson_r_vs_manual"] > by_mode.loc["none", "pearson_r_vs_manual"]
    lo, hi = by_mode.loc["model", ["pearson_r_ci_low", "pearson_r_ci_high"]]
    assert lo <= by_mode.loc["model", "pearson_r_vs_manual"] <= hi


def test_experiment_with_too_few_concentrations_is_reported_not_raised():
    wells = _wells({"e1": -8.0})
    few = wells[wells["concentration"].isin(sorted(wells["concentration"].unique())[:3])]
    fits = fit_experiments(few)
    assert not fits["success"].any()
    assert fits["message"].str.len().gt(0).all()
    summary = summarize(few, fits)
    assert (summary["n_fitted"] == 0).all()


def test_all_excluded_well_is_left_out_of_the_fit():
    wells = _wells({"e1": -8.0})
    wells.loc[wells["well"] == "A03", "specific"] = np.nan
    fits = fit_experiments(wells)
    assert fits["success"].all()
    assert (fits["n"] == 17).all()


def test_read_truth_accepts_numbers_and_records():
    assert read_truth({"a": -8, "b": {"log_ic50": -7.5, "ligand": "x"}}) == {"a": -8.0, "b": -7.5}


def test_log_ic50_far_outside_the_tested_range_is_not_a_success(monkeypatch):
    import dataclasses

    import analysis.affinity as affinity

    real_fit = affinity.fit_hill

    def runaway_fit(*args, **kwargs):  # converged, but at an IC50 the data cannot define
        return dataclasses.replace(real_fit(*args, **kwargs), log_ic50=2.0)

    monkeypatch.setattr(affinity, "fit_hill", runaway_fit)
    fits = fit_experiments(_wells({"e1": -8.0}))
    assert not fits["success"].any()
    assert fits["message"].str.contains("outside the tested range").all()


def test_common_delta_compares_modes_on_the_experiments_every_mode_fitted():
    truth = {"e1": -8.0, "e2": -7.5, "e3": -9.0}
    wells = _wells(truth, bias_none=0.5, seed=2)
    fits = fit_experiments(wells, truth)
    # the "none" fit of e3 fails: its own mean leaves e3 out, the common mean leaves it out everywhere
    failed = (fits["mode"] == "none") & (fits["experiment"] == "e3")
    fits.loc[failed, "success"] = False
    summary = summarize(wells, fits).set_index("mode")
    assert (summary["n_common"] == 2).all()
    model = fits[(fits["mode"] == "model") & fits["success"]].set_index("experiment")["abs_delta_vs_manual"]
    assert summary.loc["model", "mean_abs_delta_log_ic50_vs_manual"] == pytest.approx(model.mean())
    assert summary.loc["model", "mean_abs_delta_log_ic50_vs_manual_common"] == pytest.approx(
        model.loc[["e1", "e2"]].mean())
    none = fits[(fits["mode"] == "none") & fits["success"]].set_index("experiment")["abs_delta_vs_manual"]
    assert summary.loc["none", "mean_abs_delta_log_ic50_vs_manual"] == pytest.approx(none.mean())
    assert summary.loc["none", "mean_abs_delta_log_ic50_vs_manual_common"] == pytest.approx(none.mean())
    assert summary.loc["manual", "mean_abs_delta_log_ic50_vs_manual_common"] == 0.0
