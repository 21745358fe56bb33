"""Ligand affinity tables: Hill fits per experiment and mode, and the paper's summary metrics.

Pure functions on the well table (§2.3.4 "Ligand affinity estimation", §3.3.2): LogIC50
from a "log(inhibitor) vs response" fit with the Hill slope fixed at −1, |ΔLogIC50| against
manual artifact removal, R², and the Pearson r of well intensities against manual removal.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from statsmodels.stats.multitest import multipletests

from analysis.binding import cheng_prusoff_ki
from analysis.fit_quality import assess_fit
from analysis.hill import fit_hill
from analysis.quantify import pearson_with_ci

FIT_COLUMNS = [
    "experiment", "ligand", "mode", "log_ic50", "log_ic50_se", "top", "bottom", "hill_slope",
    "r_squared", "n", "success", "message", "abs_delta_vs_manual", "abs_error_vs_truth",
    # fit quality, confidence interval and binding constant (appended; see fit_quality, binding)
    "fit_flags", "log_ic50_ci_low", "log_ic50_ci_high", "displacement_p", "displacement_q",
    "ki", "log_ki",
]
_BASE_FIT_COLUMNS = FIT_COLUMNS[:FIT_COLUMNS.index("abs_delta_vs_manual")]
_CURVE_COLUMNS = ["log_ic50", "log_ic50_se", "top", "bottom", "hill_slope"]
# A fitted LogIC50 further than this (log10 units) outside the tested concentrations is not trusted.
OUT_OF_RANGE_LOG = 1.0
SUMMARY_COLUMNS = [
    "mode", "n_experiments", "n_fitted", "mean_abs_delta_log_ic50_vs_manual", "mean_r_squared",
    "pearson_r_vs_manual", "pearson_r_ci_low", "pearson_r_ci_high", "mean_abs_error_vs_truth",
    "n_common", "mean_abs_delta_log_ic50_vs_manual_common",
]


def fit_experiments(
    wells: pd.DataFrame, truth: dict[str, float] | None = None, *, hill_slope: float | None = -1.0,
    ci: str = "profile", confidence: float = 0.95, alpha: float = 0.05,
    tracer_concentration: float | None = None, tracer_kd: float | None = None,
    fdr_q: float | None = None,
) -> pd.DataFrame:
    """Fit one Hill curve per (experiment, mode) to the wells' specific signal.

    Parameters
    ----------
    wells : DataFrame
        Columns ``experiment``, ``ligand``, ``concentration`` (molar, 0 = vehicle), ``mode``,
        ``specific``. Wells with a NaN signal (every field excluded) are left out of the fit.
    truth : dict, optional
        Experiment -> true LogIC50; fills ``abs_error_vs_truth``.
    hill_slope : float or None
        Fixed Hill slope (−1, the paper's choice) or None to fit it.
    ci : {"profile", "wald"}
        LogIC50 interval: profile likelihood (Prism's asymmetric interval) or estimate ± t·SE.
    confidence : float
        Coverage of that interval.
    alpha : float
        Level of the displacement F test (curve against a horizontal line).
    tracer_concentration, tracer_kd : float, optional
        Tracer concentration and Kd (molar) for Cheng–Prusoff ``ki`` / ``log_ki``
        (:mod:`analysis.binding`; competitive displacement at equilibrium).
    fdr_q : float, optional
        False discovery rate (a fraction, e.g. 0.05): a fit then counts as displacing only when
        its Benjamini–Hochberg adjusted p (``displacement_q``, over the experiments of one mode)
        is at most `fdr_q`, instead of ``p < alpha``.

    Notes
    -----
    A converged fit whose LogIC50 lies more than ``OUT_OF_RANGE_LOG`` log units outside the
    tested concentrations is reported with ``success=False`` and the reason (the data do not
    define it), so that summaries average only interpretable estimates.

    ``fit_flags`` lists the :mod:`analysis.fit_quality` flags (``ambiguous``, ``outside_range``,
    ``no_displacement``, ``not_converged``; ``;``-separated, empty when none). A
    ``no_displacement`` fit has ``success=False``, the F test in ``message`` and no curve
    parameters: a compound that does not displace has no IC50.

    Returns
    -------
    DataFrame
        One row per experiment and mode with the columns of ``FIT_COLUMNS``;
        ``abs_delta_vs_manual`` = |LogIC50(mode) − LogIC50(manual)| where both fits succeeded.
    """
    assessed = []
    for (experiment, mode), data in wells.groupby(["experiment", "mode"], sort=True):
        usable = data[np.isfinite(data["specific"].to_numpy(dtype=float))]
        x = usable["concentration"].to_numpy(dtype=float)
        y = usable["specific"].to_numpy(dtype=float)
        result = fit_hill(x, y, hill_slope=hill_slope)
        quality = assess_fit(x, y, result, ci=ci, confidence=confidence, alpha=alpha, hill_slope=hill_slope)
        assessed.append((experiment, mode, data, usable, x, y, result, quality))
    p_values = pd.Series([q.displacement_p for *_, q in assessed], dtype=float)
    modes = pd.Series([mode for _, mode, *_ in assessed], dtype=object)
    q_values = _benjamini_hochberg(p_values, modes)
    rows = []
    for (experiment, mode, data, usable, x, y, result, quality), q_value in zip(assessed, q_values):
        if fdr_q is not None and np.isfinite(q_value):
            quality = assess_fit(x, y, result, ci=ci, confidence=confidence, alpha=alpha,
                                 hill_slope=hill_slope, displaces=bool(q_value <= fdr_q))
        success, message = quality.success, quality.message  # the fit's own unless it does not displace
        tested = np.log10(usable.loc[usable["concentration"] > 0, "concentration"].to_numpy(dtype=float))
        if success and len(tested) and not (tested.min() - OUT_OF_RANGE_LOG <= result.log_ic50
                                            <= tested.max() + OUT_OF_RANGE_LOG):
            # Like Prism's "ambiguous": the data do not define an IC50 this far from what was tested.
            success = False
            message = (f"LogIC50 {result.log_ic50:.2f} lies more than {OUT_OF_RANGE_LOG:g} log units outside "
                       f"the tested range [{tested.min():.2f}, {tested.max():.2f}]")
        rows.append({
            "experiment": experiment,
            "ligand": data["ligand"].iloc[0],
            "mode": mode,
            "log_ic50": result.log_ic50,
            "log_ic50_se": result.log_ic50_se,
            "top": result.top,
            "bottom": result.bottom,
            "hill_slope": result.hill_slope,
            "r_squared": result.r_squared,
            "n": result.n,
            "success": success,
            "message": message,
            "fit_flags": quality.flag_text,
            "log_ic50_ci_low": quality.ci_low,
            "log_ic50_ci_high": quality.ci_high,
            "displacement_p": quality.displacement_p,
            "displacement_q": q_value,
        })
        if "no_displacement" in quality.flags:
            rows[-1].update(dict.fromkeys(_CURVE_COLUMNS, np.nan))
    fits = pd.DataFrame(rows, columns=_BASE_FIT_COLUMNS + FIT_COLUMNS[FIT_COLUMNS.index("fit_flags"):])
    fits["abs_delta_vs_manual"] = np.nan
    if (fits["mode"] == "manual").any():
        manual = fits[(fits["mode"] == "manual") & fits["success"]].set_index("experiment")["log_ic50"]
        reference = fits["experiment"].map(manual)
        fits["abs_delta_vs_manual"] = np.where(fits["success"], (fits["log_ic50"] - reference).abs(),
                                               np.nan)
    fits["abs_error_vs_truth"] = np.nan
    if truth:
        true_values = fits["experiment"].map(lambda e: truth.get(str(e), np.nan)).astype(float)
        fits["abs_error_vs_truth"] = np.where(fits["success"], (fits["log_ic50"] - true_values).abs(),
                                              np.nan)
    fits["log_ki"] = np.nan
    if tracer_concentration is not None and tracer_kd is not None:
        fits["log_ki"] = cheng_prusoff_ki(fits["log_ic50"].to_numpy(dtype=float), tracer_concentration,
                                          tracer_kd)
    fits["ki"] = 10.0 ** fits["log_ki"]
    return fits[FIT_COLUMNS]


def _benjamini_hochberg(p_values: pd.Series, groups: pd.Series) -> np.ndarray:
    """Benjamini–Hochberg adjusted p values within each group; NaN where p is NaN."""
    adjusted = np.full(len(p_values), np.nan)
    for group in groups.drop_duplicates():
        index = np.flatnonzero((groups == group).to_numpy() & p_values.notna().to_numpy())
        if index.size:
            adjusted[index] = multipletests(p_values.to_numpy()[index], method="fdr_bh")[1]
    return adjusted


def summarize(wells: pd.DataFrame, fits: pd.DataFrame) -> pd.DataFrame:
    """One row per mode: the paper's three downstream metrics plus the error against truth.

    Parameters
    ----------
    wells, fits : DataFrame
        Outputs of the quantification and of :func:`fit_experiments`.

    Returns
    -------
    DataFrame
        Columns of ``SUMMARY_COLUMNS``. ``pearson_r_vs_manual`` correlates the wells' specific
        signal with the same wells under manual removal (95 % CI from Fisher's z); it is NaN
        when no manual masks were given. ``mean_abs_delta_log_ic50_vs_manual`` averages each
        mode's own fitted experiments, so a mode some of whose experiments fail to fit is
        compared on fewer, possibly easier, experiments; ``..._common`` averages only the ``n_common`` experiments fitted in
        every mode, the like-for-like comparison.
    """
    has_manual = (wells["mode"] == "manual").any()
    manual = None
    if has_manual:
        manual = wells[wells["mode"] == "manual"].set_index(["experiment", "well"])["specific"]
    fitted_in_every_mode = fits.groupby("experiment")["success"].all()
    common = set(fitted_in_every_mode.index[fitted_in_every_mode])
    rows = []
    for mode in fits["mode"].drop_duplicates():
        mode_fits = fits[fits["mode"] == mode]
        ok = mode_fits[mode_fits["success"]]
        r = lo = hi = np.nan
        if manual is not None:
            mode_wells = wells[wells["mode"] == mode].set_index(["experiment", "well"])["specific"]
            paired = pd.concat([mode_wells.rename("mode"), manual.rename("manual")], axis=1).dropna()
            if len(paired) >= 4:
                r, lo, hi = pearson_with_ci(paired["mode"].to_numpy(), paired["manual"].to_numpy())
        rows.append({
            "mode": mode,
            "n_experiments": int(len(mode_fits)),
            "n_fitted": int(len(ok)),
            "mean_abs_delta_log_ic50_vs_manual": _mean(ok["abs_delta_vs_manual"]),
            "mean_r_squared": _mean(ok["r_squared"]),
            "pearson_r_vs_manual": r,
            "pearson_r_ci_low": lo,
            "pearson_r_ci_high": hi,
            "mean_abs_error_vs_truth": _mean(ok["abs_error_vs_truth"]),
            "n_common": int(len(common)),
            "mean_abs_delta_log_ic50_vs_manual_common": _mean(
                ok.loc[ok["experiment"].isin(common), "abs_delta_vs_manual"]),
        })
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def _mean(values: pd.Series) -> float:
    values = values.dropna()
    return float(values.mean()) if len(values) else float("nan")


def read_truth(data: dict) -> dict[str, float]:
    """Normalise a truth mapping: experiment -> LogIC50, or experiment -> {"log_ic50": ...}."""
    truth = {}
    for experiment, value in data.items():
        if isinstance(value, dict):
            value = value.get("log_ic50")
        truth[str(experiment)] = float(value)
    return truth
