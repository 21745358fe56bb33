"""ROUT outlier detection (analysis.outliers): the formulas, planted outliers, clean curves, well tables."""

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.multitest import multipletests

from analysis.hill import fit_hill, hill
from analysis.outliers import OUTLIER_COLUMNS, robust_hill_fit, robust_sd, rout, rout_flags, rout_wells
from artseg.errors import ArtsegInputError

# The plate curve of benchmarks/bench_rout.py: vehicle + 8 half-log doses in duplicate, noise SD 40.
CONCENTRATIONS = np.repeat(np.r_[0.0, 10.0 ** np.arange(-10.0, -6.4, 0.5)], 2)
LOG_X = np.where(CONCENTRATIONS > 0, np.log10(np.where(CONCENTRATIONS > 0, CONCENTRATIONS, 1.0)), -np.inf)
TRUE_CURVE = hill(LOG_X, 100.0, 1000.0, -8.0, -1.0)
NOISE = 40.0


def _curve(rng):
    return TRUE_CURVE + rng.normal(0.0, NOISE, CONCENTRATIONS.size)


def test_robust_sd_is_the_68th_percentile_with_the_small_sample_correction():
    residuals = np.arange(1.0, 11.0)  # |r| = 1..10
    expected = np.percentile(residuals, 68.26894921370859) * 10 / (10 - 3)
    assert robust_sd(-residuals, 3) == pytest.approx(expected)
    with pytest.raises(ArtsegInputError, match="more residuals than parameters"):
        robust_sd(residuals[:3], 3)


def test_flags_are_benjamini_hochberg_on_t_p_values():
    rng = np.random.default_rng(4)
    residuals = rng.normal(0.0, 1.0, 20)
    residuals[[3, 11]] = [9.0, -7.5]
    scale = robust_sd(residuals, 3)
    outlier, p_value, q_value = rout_flags(residuals, scale, 3, q=0.01)
    from scipy import stats
    expected_p = 2 * stats.t.sf(np.abs(residuals) / scale, 20 - 3)
    np.testing.assert_allclose(p_value, expected_p)
    reject, adjusted = multipletests(expected_p, alpha=0.01, method="fdr_bh")[:2]
    np.testing.assert_array_equal(outlier, reject)
    np.testing.assert_allclose(q_value, adjusted)
    assert np.flatnonzero(outlier).tolist() == [3, 11]
    # a larger Q can only flag more points
    assert rout_flags(residuals, scale, 3, q=0.1)[0].sum() >= outlier.sum()


@pytest.mark.parametrize("q", [0.0, 1.0, -0.01])
def test_q_outside_the_unit_interval_is_refused(q):
    with pytest.raises(ArtsegInputError, match="q must be a fraction"):
        rout_flags(np.ones(10), 1.0, 3, q=q)


def test_robust_fit_is_not_pulled_by_a_wild_point_but_least_squares_is():
    rng = np.random.default_rng(0)
    y = _curve(rng)
    y[9] += 25 * NOISE  # the middle of the curve, where it moves LogIC50 most
    robust = robust_hill_fit(CONCENTRATIONS, y)
    ordinary = fit_hill(CONCENTRATIONS, y)
    assert robust.success and ordinary.success
    assert abs(robust.log_ic50 + 8.0) < 0.1 < abs(ordinary.log_ic50 + 8.0)
    assert robust.rsdr == pytest.approx(NOISE, rel=0.5)


def test_planted_outliers_are_found_and_the_refit_is_closer_to_the_truth():
    rng = np.random.default_rng(1)
    found = planted_total = false = 0
    errors_all, errors_rout = [], []
    for _ in range(40):
        y = _curve(rng)
        planted = rng.choice(y.size, size=2, replace=False)
        y[planted] += rng.choice([-1.0, 1.0], size=2) * 10 * NOISE
        result = rout(CONCENTRATIONS, y, q=0.01)
        found += int(result.outlier[planted].sum())
        planted_total += planted.size
        false += int(result.outlier.sum() - result.outlier[planted].sum())
        errors_all.append(fit_hill(CONCENTRATIONS, y).log_ic50 + 8.0)
        errors_rout.append(result.refit.log_ic50 + 8.0)
        assert result.refit.n == y.size - result.outlier.sum()
    assert found / planted_total >= 0.9  # bench_rout.py: 0.93 for 2 outliers at 8 SD
    assert false <= 3  # 40 curves x 16 clean wells each
    assert np.sqrt(np.mean(np.square(errors_rout))) < 0.6 * np.sqrt(np.mean(np.square(errors_all)))


def test_clean_curves_are_rarely_flagged_at_q_one_percent():
    rng = np.random.default_rng(2)
    flagged_curves = sum(bool(rout(CONCENTRATIONS, _curve(rng), q=0.01).outlier.any()) for _ in range(60))
    # the paper measured 1-3 % of experiments at Q = 1 %; bench_rout.py 2.4 % (500 curves)
    assert flagged_curves <= 4


def test_too_few_points_flag_nothing_and_keep_the_least_squares_fit():
    result = rout(CONCENTRATIONS[:4], TRUE_CURVE[:4])
    assert not result.robust.success and "too few points" in result.robust.message
    assert not result.outlier.any()


def _wells():
    rng = np.random.default_rng(5)
    rows = []
    for experiment in ("e1", "e2"):
        y = _curve(rng)
        if experiment == "e1":
            y[7] += 15 * NOISE
        for mode in ("manual", "none"):
            for index, (c, value) in enumerate(zip(CONCENTRATIONS, y)):
                rows.append({"experiment": experiment, "ligand": "lig", "concentration": c,
                             "well": f"{'AB'[index % 2]}{index // 2 + 1:02d}", "mode": mode,
                             "specific": value if mode == "manual" else value + 5.0})
    wells = pd.DataFrame(rows)
    wells.loc[(wells["experiment"] == "e2") & (wells["well"] == "A01"), "specific"] = np.nan  # not usable
    return wells


def test_rout_wells_renames_the_modes_and_blanks_exactly_the_outliers():
    wells = _wells()
    without, outliers = rout_wells(wells, q=0.01)
    assert list(outliers.columns) == OUTLIER_COLUMNS
    assert set(without["mode"]) == {"manual+rout", "none+rout"}
    assert len(outliers) == wells["specific"].notna().sum()  # every usable well tested, the NaN one not
    flagged = outliers[outliers["outlier"]]
    assert set(zip(flagged["experiment"], flagged["well"])) == {("e1", "B04")}
    blanked = without["specific"].isna() & wells["specific"].notna()
    assert set(zip(without.loc[blanked, "experiment"], without.loc[blanked, "well"])) == {("e1", "B04")}
    kept = without["specific"].notna()
    np.testing.assert_array_equal(without.loc[kept, "specific"], wells.loc[kept, "specific"])
    np.testing.assert_allclose(outliers["residual"], outliers["specific"] - outliers["robust_prediction"])


def test_rout_wells_names_missing_columns():
    with pytest.raises(ArtsegInputError, match="missing column.*specific"):
        rout_wells(_wells().drop(columns="specific"))
