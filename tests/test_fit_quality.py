"""Fit-quality flags, profile-likelihood intervals and Cheng–Prusoff Ki (analysis.fit_quality, binding)."""

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.affinity import FIT_COLUMNS, fit_experiments
from analysis.binding import cheng_prusoff_ki, validate_tracer
from analysis.fit_quality import FLAGS, assess_fit, dependencies, displacement_test, profile_interval
from analysis.hill import fit_hill, hill
from artseg.errors import ArtsegInputError

REFERENCE = Path(__file__).parent / "data" / "reference"
# vehicle + 8 half-log doses 1e-10 .. 10^-6.5 M in duplicate (benchmarks/bench_hill_ci.py)
DOSE = np.repeat(np.r_[0.0, 10.0 ** np.arange(-10.0, -6.4, 0.5)], 2)
LOG_DOSE = np.where(DOSE > 0, np.log10(np.where(DOSE > 0, DOSE, 1.0)), -np.inf)


def _curve(log_ic50, seed, noise=40.0):
    rng = np.random.default_rng(seed)
    clean = np.full(DOSE.size, 1000.0) if log_ic50 is None else hill(LOG_DOSE, 100.0, 1000.0, log_ic50, -1.0)
    return clean + rng.normal(0.0, noise, DOSE.size)


def test_dependency_of_two_correlated_parameters_is_their_squared_correlation():
    r = 0.8
    covariance = np.array([[4.0, r * 2.0 * 3.0], [r * 2.0 * 3.0, 9.0]])
    np.testing.assert_allclose(dependencies(covariance), [r**2, r**2])
    np.testing.assert_allclose(dependencies(np.diag([1.0, 5.0, 0.1])), [0.0, 0.0, 0.0], atol=1e-15)
    assert dependencies([[1.0, 1.0], [1.0, 1.0]]).tolist() == [1.0, 1.0]  # singular


def test_well_posed_curve_has_no_flags_and_a_profile_interval_close_to_wald():
    y = _curve(-8.0, seed=0)
    fit = fit_hill(DOSE, y)
    profile = assess_fit(DOSE, y, fit)
    wald = assess_fit(DOSE, y, fit, ci="wald")
    assert profile.flags == () and profile.flag_text == "" and profile.success
    assert profile.max_dependency < 0.9
    assert profile.ci_low < fit.log_ic50 < profile.ci_high
    assert (wald.ci_low, wald.ci_high) == pytest.approx(fit.log_ic50_ci)
    # slope fixed, plateaus free: the profile is nearly quadratic, so the two agree closely
    assert profile.ci_low == pytest.approx(wald.ci_low, abs=0.01)
    assert profile.ci_high == pytest.approx(wald.ci_high, abs=0.01)


def test_profile_interval_meets_its_defining_threshold():
    y = _curve(-7.3, seed=4)
    fit = fit_hill(DOSE, y, hill_slope=None)
    low, high = profile_interval(LOG_DOSE, y, fit)
    threshold = fit.rss * (1 + stats.f.ppf(0.95, 1, fit.dof) / fit.dof)
    for limit in (low, high):  # at each limit the re-optimised fit has exactly the threshold RSS
        held = fit_hill(DOSE, y, hill_slope=None, log_ic50=limit)
        assert held.rss == pytest.approx(threshold, rel=1e-6)


def test_profile_interval_of_ryegrass_matches_drcs_published_ed50_interval():
    data = json.loads((REFERENCE / "drc_ryegrass.json").read_text())
    dose, root_length = np.array(data["conc"]), np.array(data["rootl"])
    fit = fit_hill(dose, root_length, hill_slope=None)
    quality = assess_fit(dose, root_length, fit, hill_slope=None)
    published = np.log10(data["published"]["LL.4"]["ED_delta"]["ED50"][2:4])  # drc ED(): 2.67053, 3.44538
    assert quality.flags == () and quality.success
    # drc's interval is Wald on the dose scale with Hessian SEs; on the log scale the profile
    # interval agrees to 0.004 log10 units (1 %)
    np.testing.assert_allclose([quality.ci_low, quality.ci_high], published, atol=0.005)
    assert data["published"]["LL.4"]["confint_95_t20"]["e"] == pytest.approx(
        data["published"]["LL.4"]["ED_delta"]["ED50"][2:4], abs=1e-5)


def test_incomplete_curve_is_flagged_and_its_interval_left_open_above():
    y = _curve(-6.0, seed=2)  # true LogIC50 half a decade above the top dose
    fit = fit_hill(DOSE, y)
    quality = assess_fit(DOSE, y, fit)
    assert "outside_range" in quality.flags and "no_displacement" not in quality.flags
    assert quality.success
    assert math.isfinite(quality.ci_low) and quality.ci_low < -6.5 and quality.ci_high == math.inf
    assert quality.ci_low <= -6.0


def test_runaway_fit_with_four_free_parameters_is_ambiguous_and_not_a_success():
    rng = np.random.default_rng(1)
    y = hill(LOG_DOSE, 100.0, 1000.0, -5.0, -1.0) + rng.normal(0.0, 40.0, DOSE.size)
    fit = fit_hill(DOSE, y, hill_slope=None)
    assert fit.success and fit.log_ic50 > 5 and fit.bottom < -1e6  # the fitter alone accepts it
    quality = assess_fit(DOSE, y, fit, hill_slope=None)
    assert quality.flags == ("ambiguous", "outside_range", "no_displacement")
    assert quality.max_dependency > 0.9999 and not quality.success
    assert quality.message.startswith("no displacement") and math.isnan(quality.ci_low)


def test_flat_data_are_called_no_displacement_converged_or_not():
    flagged, successes = 0, 0
    for seed in range(20):
        y = _curve(None, seed)
        fit = fit_hill(DOSE, y)
        quality = assess_fit(DOSE, y, fit)
        flagged += "no_displacement" in quality.flags
        successes += quality.success
        assert quality.success == (fit.success and "no_displacement" not in quality.flags)
    assert flagged >= 17 and successes <= 2  # alpha = 0.05: about one in twenty passes by chance


def test_all_equal_responses_and_non_convergence_get_their_flags():
    y = np.full(DOSE.size, 5.0)
    assert assess_fit(DOSE, y, fit_hill(DOSE, y)).flags == ("no_displacement",)
    x = np.log10([1e-9, 1e-8, 1e-7, 1e-6, 1e-5])
    step = [10.0, 10.0, 10.0, 0.0, 0.0]
    fit = fit_hill(x, step, log_x=True, hill_slope=None)
    quality = assess_fit(x, step, fit, log_x=True, hill_slope=None)
    assert not fit.success and quality.flags == ("not_converged",) and not quality.success
    assert quality.message == fit.message and quality.displacement_p < 0.05


def test_displacement_f_test_matches_the_textbook_formula():
    y = np.array([10.0, 9.0, 7.0, 4.0, 2.0, 1.0])
    rss_line = float(np.sum((y - y.mean()) ** 2))
    f_statistic, p_value = displacement_test(y, rss_curve=1.5, n_free=3)
    expected = ((rss_line - 1.5) / 2) / (1.5 / 3)
    assert f_statistic == pytest.approx(expected)
    assert p_value == pytest.approx(stats.f.sf(expected, 2, 3))
    assert all(math.isnan(v) for v in displacement_test(y[:3], 0.1, 3))


def _wells(curves, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for experiment, (ligand, log_ic50) in curves.items():
        for i, c in enumerate(DOSE):
            x = LOG_DOSE[i]
            value = (1000.0 if log_ic50 is None else hill(x, 100.0, 1000.0, log_ic50, -1.0)) + rng.normal(0, 40)
            rows.append({"experiment": experiment, "ligand": ligand, "concentration": c, "well": f"W{i:02d}",
                         "mode": "manual", "specific": value})
    return pd.DataFrame(rows)


def test_fits_table_gets_flags_intervals_and_cheng_prusoff_ki():
    wells = _wells({"a": ("A", -8.0), "b": ("A", -7.5), "inert": ("X", None)})
    fits = fit_experiments(wells, tracer_concentration=3e-9, tracer_kd=1e-9).set_index("experiment")
    assert list(fits.reset_index().columns) == FIT_COLUMNS
    assert FIT_COLUMNS[:14] == ["experiment", "ligand", "mode", "log_ic50", "log_ic50_se", "top", "bottom",
                                "hill_slope", "r_squared", "n", "success", "message", "abs_delta_vs_manual",
                                "abs_error_vs_truth"]
    for active in ("a", "b"):
        row = fits.loc[active]
        assert row["success"] and row["fit_flags"] == ""
        assert row["log_ic50_ci_low"] < row["log_ic50"] < row["log_ic50_ci_high"]
        assert row["ki"] == pytest.approx(10 ** row["log_ic50"] / (1 + 3e-9 / 1e-9), rel=1e-12)
        assert row["log_ki"] == pytest.approx(row["log_ic50"] - math.log10(4.0), abs=1e-12)
    inert = fits.loc["inert"]
    assert "no_displacement" in inert["fit_flags"].split(";") and not inert["success"]
    assert inert[["log_ic50", "log_ic50_se", "log_ic50_ci_low", "ki", "log_ki"]].isna().all()
    assert inert["message"].startswith("no displacement")
    assert set(";".join(fits["fit_flags"]).split(";")) - {""} <= set(FLAGS)


def test_fdr_adjusted_displacement_is_stricter_than_the_raw_test():
    curves = {f"e{i}": ("A", None) for i in range(12)} | {"active": ("B", -8.0)}
    wells = _wells(curves, seed=5)
    raw = fit_experiments(wells).set_index("experiment")
    adjusted = fit_experiments(wells, fdr_q=0.05).set_index("experiment")
    assert (adjusted["displacement_q"] >= raw["displacement_p"] - 1e-15).all()
    pd.testing.assert_series_equal(raw["displacement_q"], adjusted["displacement_q"])
    assert adjusted.loc["active", "success"] and adjusted.loc["active", "fit_flags"] == ""
    raw_calls = (~raw["fit_flags"].str.contains("no_displacement")).sum()
    adjusted_calls = (~adjusted["fit_flags"].str.contains("no_displacement")).sum()
    assert adjusted_calls <= raw_calls and adjusted_calls == 1


def test_cheng_prusoff_and_tracer_validation():
    assert float(cheng_prusoff_ki(-7.0, 0.0, 1e-9)) == -7.0  # no tracer: Ki = IC50
    assert 10 ** float(cheng_prusoff_ki(-6.0, 9e-9, 1e-9)) == pytest.approx(1e-7)  # IC50 / 10
    validate_tracer(None, None)
    validate_tracer(1e-9, 2e-9)
    for concentration, kd, needle in [(1e-9, None, "--tracer-kd"), (None, 1e-9, "--tracer-concentration"),
                                      (1e-9, 0.0, "--tracer-kd"), (1e-9, -1e-9, "--tracer-kd"),
                                      (-1e-9, 1e-9, "--tracer-concentration"), (1e-9, math.inf, "--tracer-kd")]:
        with pytest.raises(ArtsegInputError, match=needle) as error:
            validate_tracer(concentration, kd)
        assert "\n" not in str(error.value)
