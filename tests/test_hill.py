"""Tests for analysis.hill against certified (NIST StRD) and published (R drc) reference fits."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from analysis.hill import HillFit, fit_hill, hill
from artseg.errors import ArtsegInputError

REFERENCE_DIR = Path(__file__).parent / "data" / "reference"
LN10 = math.log(10.0)


def load_reference(name: str) -> dict:
    return json.loads((REFERENCE_DIR / name).read_text())


def matching_digits(estimate: float, certified: float) -> float:
    """NIST's log relative error: the number of significant digits that agree."""
    if estimate == certified:
        return 16.0
    return -math.log10(abs(estimate - certified) / abs(certified))


def ll4(dose: np.ndarray, b: float, c: float, d: float, e: float) -> np.ndarray:
    """drc's LL.4 written independently of analysis.hill (dose 0 gives d for b > 0)."""
    ratio_power = np.zeros_like(dose)
    positive = dose > 0
    ratio_power[positive] = np.exp(b * (np.log(dose[positive]) - np.log(e)))
    return c + (d - c) / (1.0 + ratio_power)


def drc_parameters(fit: HillFit) -> np.ndarray:
    """Hill fit -> drc LL.4 (b, c, d, e)."""
    return np.array([-fit.hill_slope, fit.bottom, fit.top, 10.0**fit.log_ic50])


def drc_covariance(dose: np.ndarray, response: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """drc's covariance, 2 s^2 H^-1 with H the Hessian of the RSS (central differences)."""

    def rss(parameters: np.ndarray) -> float:
        return float(np.sum((ll4(dose, *parameters) - response) ** 2))

    steps = 1e-4 * np.maximum(np.abs(theta), 1e-2)
    size = theta.size
    hessian = np.empty((size, size))
    for i in range(size):
        for j in range(size):
            total = 0.0
            for si, sj, sign in ((1, 1, 1), (1, -1, -1), (-1, 1, -1), (-1, -1, 1)):
                shifted = theta.copy()
                shifted[i] += si * steps[i]
                shifted[j] += sj * steps[j]
                total += sign * rss(shifted)
            hessian[i, j] = total / (4.0 * steps[i] * steps[j])
    variance = rss(theta) / (dose.size - size)
    return 2.0 * variance * np.linalg.inv(hessian)


# --- the model function ----------------------------------------------------------------


def test_hill_matches_the_prism_equation_at_moderate_x():
    x = np.linspace(-9.0, -5.0, 9)
    bottom, top, log_ic50, slope = 12.0, 480.0, -7.2, -0.8
    expected = bottom + (top - bottom) / (1.0 + 10.0 ** ((log_ic50 - x) * slope))
    np.testing.assert_allclose(hill(x, bottom, top, log_ic50, slope), expected, rtol=1e-13)


def test_hill_midpoint_and_both_asymptotes():
    assert hill(-6.5, 10.0, 90.0, -6.5, -1.3) == pytest.approx(50.0, rel=1e-15)
    falling = hill(np.array([-np.inf, np.inf]), 10.0, 90.0, -6.5, -1.0)
    rising = hill(np.array([-np.inf, np.inf]), 10.0, 90.0, -6.5, 2.0)
    np.testing.assert_array_equal(falling, [90.0, 10.0])
    np.testing.assert_array_equal(rising, [10.0, 90.0])


def test_hill_extreme_arguments_do_not_overflow():
    values = hill(np.array([-1e6, 1e6]), 1.0, 2.0, 0.0, -50.0)
    np.testing.assert_array_equal(values, [2.0, 1.0])


def test_zero_slope_gives_the_midpoint_everywhere_including_zero_dose():
    values = hill(np.array([-np.inf, -3.0, 4.0]), 0.0, 8.0, -1.0, 0.0)
    np.testing.assert_array_equal(values, [4.0, 4.0, 4.0])


# --- NIST StRD Rat42 (certified values) ------------------------------------------------


def hill_start_from_nist(b: list[float]) -> dict[str, float]:
    b1, b2, b3 = b
    return {"top": b1, "log_ic50": b2 / b3, "hill_slope": b3 / LN10}


@pytest.mark.parametrize("start_key", ["start1", "start2", None])
def test_rat42_reproduces_certified_parameters_and_standard_errors(start_key):
    reference = load_reference("nist_rat42.json")
    certified = reference["certified"]
    start = hill_start_from_nist(reference[start_key]) if start_key else None
    fit = fit_hill(reference["x"], reference["y"], log_x=True, bottom=0.0, hill_slope=None,
                   start=start)
    assert fit.success, fit.message
    assert (fit.n, fit.dof) == (certified["n"], certified["dof"])

    # Rat42: y = b1 / (1 + exp(b2 - b3 x))  ->  Top = b1, HillSlope = b3/ln10, LogIC50 = b2/b3
    b1, b2, b3 = fit.top, fit.log_ic50 * fit.hill_slope * LN10, fit.hill_slope * LN10
    for estimate, value in zip((b1, b2, b3), certified["params"]):
        assert matching_digits(estimate, value) >= 6
    assert matching_digits(fit.rss, certified["rss"]) >= 8
    assert matching_digits(math.sqrt(fit.rss / fit.dof), certified["residual_sd"]) >= 8

    # SEs of b2, b3 from the Hill covariance by the delta method (exact for this linear-in-
    # the-derivatives reparameterisation at the optimum).
    index = {name: i for i, name in enumerate(fit.free_parameters)}
    covariance = np.array(fit.covariance)
    gradient_b2 = np.zeros(len(index))
    gradient_b2[index["log_ic50"]] = LN10 * fit.hill_slope
    gradient_b2[index["hill_slope"]] = LN10 * fit.log_ic50
    se_b2 = math.sqrt(gradient_b2 @ covariance @ gradient_b2)
    se_b3 = LN10 * fit.hill_slope_se
    for estimate, value in zip((fit.top_se, se_b2, se_b3), certified["sd"]):
        assert matching_digits(estimate, value) >= 5
    assert math.isnan(fit.bottom_se)
    assert fit.bottom == 0.0


# --- drc ryegrass LL.4 (zero-dose controls are the upper asymptote) ---------------------


def test_ryegrass_ll4_with_zero_dose_controls_matches_drc():
    reference = load_reference("drc_ryegrass.json")
    dose, root_length = np.array(reference["conc"]), np.array(reference["rootl"])
    published = reference["published"]["LL.4"]
    verification = reference["verification"]

    fit = fit_hill(dose, root_length, hill_slope=None)
    assert fit.success, fit.message
    assert (fit.n, fit.dof) == (24, published["df"])
    drc_printed = published["estimates_more_digits"]
    ours = dict(zip("bcde", drc_parameters(fit)))
    for name in "bcde":
        assert ours[name] == pytest.approx(drc_printed[name], rel=2e-5)
    assert fit.log_ic50 == pytest.approx(verification["LogIC50_log10e"], rel=1e-7)
    # drc stops ~1e-6 short of the optimum: our RSS must not be worse than at its estimates.
    drc_rss = np.sum((ll4(dose, *[drc_printed[k] for k in "bcde"]) - root_length) ** 2)
    assert fit.rss <= drc_rss
    assert fit.rss == pytest.approx(published["rss_derived"], rel=1e-6)
    assert fit.r_squared == pytest.approx(verification["R2_prism_style"], rel=1e-8)

    # Gauss-Newton (Prism/NIST) SEs recorded in the reference's verification section.
    assert fit.log_ic50_se == pytest.approx(verification["SE_LogIC50_JtJ"], rel=1e-5)
    jtj_se = {"b": 0.45843, "c": 0.20951, "d": 0.18973, "e": 0.18583}
    assert f"b {jtj_se['b']}, c {jtj_se['c']}, d {jtj_se['d']}, e {jtj_se['e']}" in (
        reference["se_method"]
    )
    assert fit.hill_slope_se == pytest.approx(jtj_se["b"], rel=1e-4)
    assert fit.bottom_se == pytest.approx(jtj_se["c"], rel=1e-4)
    assert fit.top_se == pytest.approx(jtj_se["d"], rel=1e-4)
    assert ours["e"] * LN10 * fit.log_ic50_se == pytest.approx(jtj_se["e"], rel=1e-4)

    # drc's own (Hessian) SEs and t-based 95 % interval from the same optimum.
    drc_se = np.sqrt(np.diag(drc_covariance(dose, root_length, drc_parameters(fit))))
    np.testing.assert_allclose(drc_se, [published["se"][k] for k in "bcde"], rtol=1e-4)
    # Same t(20) quantile as drc's confint; only the SE estimator differs.
    low, high = published["confint_95_t20"]["d"]
    t_quantile = (high - low) / (2.0 * published["se"]["d"])
    np.testing.assert_allclose(
        fit.top_ci, [fit.top - t_quantile * fit.top_se, fit.top + t_quantile * fit.top_se],
        rtol=1e-6)


def test_ryegrass_without_controls_differs_as_recorded():
    reference = load_reference("drc_ryegrass.json")
    dose, root_length = np.array(reference["conc"]), np.array(reference["rootl"])
    without = reference["verification"]["prism_style_fit_without_zero_dose_controls"]
    treated = dose > 0
    fit = fit_hill(np.log10(dose[treated]), root_length[treated], log_x=True, hill_slope=None)
    assert fit.success and fit.n == 18
    assert fit.top == pytest.approx(without["Top"], rel=1e-5)
    assert fit.bottom == pytest.approx(without["Bottom"], rel=1e-4)
    assert fit.log_ic50 == pytest.approx(without["LogIC50"], rel=1e-5)
    assert fit.hill_slope == pytest.approx(without["HillSlope"], rel=1e-5)
    np.testing.assert_allclose(
        [fit.top_se, fit.bottom_se, fit.log_ic50_se, fit.hill_slope_se],
        [0.49818, 0.24038, 0.0381, 0.59722], rtol=3e-4)


def test_zero_concentration_is_the_limit_of_tiny_concentrations():
    reference = load_reference("drc_ryegrass.json")
    dose, root_length = np.array(reference["conc"]), np.array(reference["rootl"])
    with_zero = fit_hill(dose, root_length, hill_slope=None)
    tiny = fit_hill(np.where(dose == 0, 1e-40, dose), root_length, hill_slope=None)
    assert with_zero.success and tiny.success
    for name in ("log_ic50", "top", "bottom", "hill_slope", "log_ic50_se", "rss"):
        assert getattr(with_zero, name) == pytest.approx(getattr(tiny, name), rel=1e-7)


# --- drc spinach (five LL.4 curves) and acidiq (ED delta-method SEs) ---------------------


@pytest.mark.parametrize("curve", [1, 2, 3, 4, 5])
def test_spinach_curves_match_drc(curve):
    reference = load_reference("drc_spinach.json")
    data = reference["data"]
    rows = np.array(data["CURVE"]) == curve
    dose, slope = np.array(data["DOSE"])[rows], np.array(data["SLOPE"])[rows]
    published = {k: v[curve - 1] for k, v in reference["published"]["estimates_by_curve"].items()}

    fit = fit_hill(dose, slope, hill_slope=None)
    assert fit.success, fit.message
    b, c, d, e = drc_parameters(fit)
    # drc's BFGS stops ~1e-5 relative from the optimum (reference's verification_note).
    assert b == pytest.approx(published["b"], rel=1e-4)
    assert d == pytest.approx(published["d"], rel=1e-4)
    assert e == pytest.approx(published["e"], rel=1e-4)
    assert c == pytest.approx(published["c"], abs=1e-4)
    drc_rss = np.sum((ll4(dose, *[published[k] for k in "bcde"]) - slope) ** 2)
    assert fit.rss <= drc_rss


def test_acidiq17_effective_doses_and_their_drc_standard_errors():
    reference = load_reference("drc_acidiq17.json")
    dose, growth = np.array(reference["dose"]), np.array(reference["rgr"])
    fit = fit_hill(dose, growth, hill_slope=None)
    assert fit.success, fit.message
    theta = drc_parameters(fit)
    covariance = drc_covariance(dose, growth, theta)
    b, _, _, e = theta
    for percent, (published_ed, published_se) in reference["published"]["ED"].items():
        p = float(percent)
        ratio = p / (100.0 - p)
        effective_dose = e * ratio ** (1.0 / b)
        gradient = np.array([-effective_dose * math.log(ratio) / b**2, 0.0, 0.0,
                             ratio ** (1.0 / b)])
        assert effective_dose == pytest.approx(published_ed, rel=1e-5)
        assert math.sqrt(gradient @ covariance @ gradient) == pytest.approx(published_se,
                                                                            rel=1e-4)


# --- simulated data --------------------------------------------------------------------


def simulate_plate(rng: np.random.Generator, log_ic50: float, noise_sd: float):
    concentrations = np.r_[0.0, 10.0 ** np.arange(-10.0, -4.5, 0.5)]
    dose = np.repeat(concentrations, 2)
    x = np.full(dose.shape, -np.inf)
    x[dose > 0] = np.log10(dose[dose > 0])
    response = hill(x, 200.0, 1000.0, log_ic50, -1.0) + rng.normal(0.0, noise_sd, dose.size)
    return dose, response


def test_recovers_known_log_ic50_with_calibrated_standard_errors():
    rng = np.random.default_rng(20240501)
    true_log_ic50 = -7.3
    fits = [fit_hill(*simulate_plate(rng, true_log_ic50, 40.0)) for _ in range(150)]
    assert all(fit.success for fit in fits)
    estimates = np.array([fit.log_ic50 for fit in fits])
    standard_errors = np.array([fit.log_ic50_se for fit in fits])
    assert abs(estimates.mean() - true_log_ic50) < 0.02
    assert np.median(standard_errors) == pytest.approx(estimates.std(ddof=1), rel=0.2)
    covered = np.mean([lo <= true_log_ic50 <= hi for lo, hi in (f.log_ic50_ci for f in fits)])
    assert 0.88 <= covered <= 0.99
    assert all(math.isnan(f.hill_slope_se) and f.hill_slope == -1.0 for f in fits)


def test_free_slope_recovery_and_top_above_bottom_for_rising_data():
    x = np.repeat(np.linspace(-9.0, -4.0, 11), 3)
    rng = np.random.default_rng(7)
    y = hill(x, 5.0, 50.0, -6.4, 1.7) + rng.normal(0.0, 0.5, x.size)
    fit = fit_hill(x, y, log_x=True, hill_slope=None)
    assert fit.success, fit.message
    assert fit.top > fit.bottom and fit.hill_slope > 0
    assert abs(fit.log_ic50 + 6.4) < 3 * fit.log_ic50_se
    assert abs(fit.hill_slope - 1.7) < 3 * fit.hill_slope_se
    predicted = fit.predict(x, log_x=True)
    expected_r2 = 1 - np.sum((y - predicted) ** 2) / np.sum((y - y.mean()) ** 2)
    assert fit.r_squared == pytest.approx(expected_r2, rel=1e-12)


def test_fixed_plateaus_are_held_and_reported_without_errors():
    dose, response = simulate_plate(np.random.default_rng(3), -6.8, 25.0)
    fit = fit_hill(dose, response, bottom=200.0, top=1000.0)
    assert fit.success, fit.message
    assert (fit.bottom, fit.top, fit.hill_slope) == (200.0, 1000.0, -1.0)
    assert fit.free_parameters == ("log_ic50",) and fit.dof == fit.n - 1
    assert all(math.isnan(v) for v in (fit.bottom_se, fit.top_se, *fit.top_ci))
    assert fit.log_ic50_ci[0] < fit.log_ic50 < fit.log_ic50_ci[1]


def test_fixed_log_ic50_is_held_while_plateaus_are_fitted():
    dose, response = simulate_plate(np.random.default_rng(4), -6.8, 25.0)
    fit = fit_hill(dose, response, log_ic50=-6.0)
    free = fit_hill(dose, response)
    assert fit.success and fit.log_ic50 == -6.0 and math.isnan(fit.log_ic50_se)
    assert fit.free_parameters == ("bottom", "top")
    assert fit.rss > free.rss


# --- failures are reported, not raised --------------------------------------------------


@pytest.mark.parametrize(
    ("x", "y", "reason"),
    [
        ([0, 1e-8, 1e-7, 1e-6], [9.0, 8.0, 3.0, 1.0], "too few points"),  # n == free params
        ([0, 0, 1e-7, 1e-7, 1e-6, 1e-6], [9, 9.2, 5, 5.1, 1, 1.2], "too few points"),
        ([0, 1e-9, 1e-8, 1e-7, 1e-6, 1e-5], [4.0] * 6, "flat"),
        ([0, 1e-9, 1e-8, 1e-7, 1e-6, 1e-5], [9, 9, np.nan, 4, 1, 1], "NaN"),
        ([0, 1e-9, 1e-8, np.inf, 1e-6, 1e-5], [9, 9, 7, 4, 1, 1], "infinite"),
    ],
)
def test_unfittable_data_gives_success_false_with_reason(x, y, reason):
    fit = fit_hill(x, y, hill_slope=None)
    assert not fit.success
    assert reason in fit.message
    assert math.isnan(fit.log_ic50) and math.isnan(fit.log_ic50_se)
    assert fit.n == len(y)


def test_diverging_fit_is_reported_as_not_converged():
    # A sharp step: the least-squares slope runs off to -infinity.
    x = np.log10([1e-9, 1e-8, 1e-7, 1e-6, 1e-5])
    fit = fit_hill(x, [10.0, 10.0, 10.0, 0.0, 0.0], log_x=True, hill_slope=None)
    assert not fit.success
    assert "converge" in fit.message


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"x": [0, 1, 2], "y": [1, 2]}, "equal length"),
        ({"x": [-1e-9, 1e-8, 1e-7, 1e-6], "y": [1, 2, 3, 4]}, ">= 0"),
        ({"x": [0, 1, 2, 3], "y": [1, 2, 3, 4], "top": math.nan}, "finite"),
        ({"x": [0, 1, 2, 3], "y": [1, 2, 3, 4], "start": {"ec50": 1.0}}, "unknown"),
    ],
)
def test_bad_arguments_raise_input_error(kwargs, problem):
    with pytest.raises(ArtsegInputError, match=problem):
        fit_hill(**kwargs)


# --- serialisation -----------------------------------------------------------------------


def assert_same_fit(a: HillFit, b: HillFit) -> None:
    assert json.dumps(a.to_dict(), sort_keys=True) == json.dumps(b.to_dict(), sort_keys=True)


def test_json_round_trip_of_success_and_failure():
    dose, response = simulate_plate(np.random.default_rng(11), -7.0, 30.0)
    for fit in (fit_hill(dose, response), fit_hill([1, 2], [3, 4])):
        text = json.dumps(fit.to_dict(), allow_nan=False)
        restored = HillFit.from_dict(json.loads(text))
        assert_same_fit(restored, fit)
        assert isinstance(restored.log_ic50_ci, tuple)
        assert restored.success == fit.success and restored.message == fit.message


def test_reads_a_version_1_record_and_rejects_newer_ones():
    version_1 = {
        "format_version": 1, "log_ic50": -7.1, "top": 1000.0, "bottom": 200.0,
        "hill_slope": -1.0, "log_ic50_se": 0.05, "top_se": 20.0, "bottom_se": 15.0,
        "hill_slope_se": None, "log_ic50_ci": [-7.2, -7.0], "top_ci": [958.0, 1042.0],
        "bottom_ci": [169.0, 231.0], "hill_slope_ci": [None, None], "r_squared": 0.97,
        "rss": 1234.5, "n": 24, "dof": 21, "success": True, "message": "converged",
        "free_parameters": ["bottom", "top", "log_ic50"],
        "covariance": [[225.0, 0.0, 0.1], [0.0, 400.0, -0.2], [0.1, -0.2, 0.0025]],
    }
    fit = HillFit.from_dict(version_1)
    assert fit.log_ic50 == -7.1 and fit.dof == 21 and fit.success
    assert math.isnan(fit.hill_slope_se) and math.isnan(fit.hill_slope_ci[1])
    assert fit.covariance[2] == (0.1, -0.2, 0.0025)
    assert fit.ic50 == pytest.approx(10**-7.1)
    with pytest.raises(ArtsegInputError, match="format_version"):
        HillFit.from_dict({**version_1, "format_version": 99})
