"""Replicate experiments of one ligand: summary statistics, a global fit and its comparisons.

``summary_by_ligand.csv`` has one row per ligand and removal mode: the LogIC50 of the
experiments that fitted (mean, SD, SEM and the t interval of the mean), pKi when the tracer is
known, an equivalence test (TOST) of the mode against manual removal, and optionally a *global*
fit -- Top and Bottom (and a free Hill slope) shared by the replicate experiments, LogIC50 per
experiment -- with the extra-sum-of-squares F test and AIC of "one LogIC50 for all replicates"
against separate ones (GraphPad Prism's Compare tab, drc's ``compParm``).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import optimize, stats
from statsmodels.stats.weightstats import ttost_paired

from analysis.hill import _hill_jacobian, _log10_concentration, hill

__all__ = ["LIGAND_SUMMARY_COLUMNS", "compare_shared_log_ic50", "mean_interval", "summarize_by_ligand",
           "equivalence_p"]

LIGAND_SUMMARY_COLUMNS = [
    "ligand", "mode", "n_experiments", "n_fitted", "n_no_displacement",
    "mean_log_ic50", "sd_log_ic50", "sem_log_ic50", "log_ic50_ci_low", "log_ic50_ci_high",
    "mean_pki", "pki_ci_low", "pki_ci_high", "tost_p_vs_manual",
    "global_log_ic50", "global_log_ic50_se", "global_f_one_log_ic50", "global_p_one_log_ic50",
    "global_aic_one_log_ic50", "global_aic_separate",
]
DEFAULT_EQUIVALENCE_MARGIN = 0.5
"""Equivalence margin of the TOST, log10 units: LogIC50s within ±0.5 (about 3-fold in IC50)."""


def mean_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float, float, float]:
    """Mean, SD, SEM and the t interval of the mean of `values` (NaN entries dropped).

    Returns
    -------
    (mean, sd, sem, low, high)
        SD, SEM and the interval are NaN for fewer than two values.
    """
    array = np.asarray(values, dtype=np.float64)
    array = array[np.isfinite(array)]
    if array.size == 0:
        return (math.nan,) * 5
    mean = float(array.mean())
    if array.size < 2:
        return (mean, math.nan, math.nan, math.nan, math.nan)
    sd = float(array.std(ddof=1))
    sem = sd / math.sqrt(array.size)
    half_width = float(stats.t.ppf(0.5 + confidence / 2.0, array.size - 1)) * sem
    return (mean, sd, sem, mean - half_width, mean + half_width)


def equivalence_p(values: Sequence[float], reference: Sequence[float], margin: float) -> float:
    """Paired TOST p value for ``|mean(values - reference)| < margin`` (small p = equivalent).

    Parameters
    ----------
    values, reference : array_like
        Paired LogIC50s (e.g. model-removal and manual-removal fits of the same experiments).
    margin : float
        Equivalence margin, log10 units (> 0).

    Returns
    -------
    float
        The larger of the two one-sided p values (statsmodels ``ttost_paired``); NaN for fewer
        than two pairs. Identical differences give 0 or 1 exactly (the t statistic is undefined).
    """
    first = np.asarray(values, dtype=np.float64)
    second = np.asarray(reference, dtype=np.float64)
    keep = np.isfinite(first) & np.isfinite(second)
    first, second = first[keep], second[keep]
    if first.size < 2:
        return math.nan
    differences = first - second
    if np.ptp(differences) == 0.0:
        return 0.0 if abs(differences[0]) < margin else 1.0
    return float(ttost_paired(first, second, -margin, margin)[0])


def _global_residuals(theta: np.ndarray, curves: list[tuple[np.ndarray, np.ndarray]],
                      hill_slope: float | None, shared_log_ic50: bool) -> np.ndarray:
    bottom, top = theta[0], theta[1]
    slope = hill_slope if hill_slope is not None else theta[2]
    offset = 2 if hill_slope is not None else 3
    parts = []
    for i, (log_x, y) in enumerate(curves):
        log_ic50 = theta[offset] if shared_log_ic50 else theta[offset + i]
        parts.append(hill(log_x, bottom, top, log_ic50, slope) - y)
    return np.concatenate(parts)


def _global_jacobian(theta: np.ndarray, curves: list[tuple[np.ndarray, np.ndarray]],
                     hill_slope: float | None, shared_log_ic50: bool) -> np.ndarray:
    offset = 2 if hill_slope is not None else 3
    slope = hill_slope if hill_slope is not None else theta[2]
    blocks = []
    for i, (log_x, _) in enumerate(curves):
        log_ic50 = theta[offset] if shared_log_ic50 else theta[offset + i]
        full = _hill_jacobian(log_x, theta[0], theta[1], log_ic50, slope)
        block = np.zeros((log_x.size, theta.size))
        block[:, 0], block[:, 1] = full[:, 0], full[:, 1]
        if hill_slope is None:
            block[:, 2] = full[:, 3]
        block[:, offset if shared_log_ic50 else offset + i] = full[:, 2]
        blocks.append(block)
    return np.vstack(blocks)


def _least_squares(start: np.ndarray, curves, hill_slope, shared_log_ic50):
    result = optimize.least_squares(
        _global_residuals, start, jac=_global_jacobian, method="lm",
        args=(curves, hill_slope, shared_log_ic50), xtol=1e-12, ftol=1e-12, gtol=1e-12, max_nfev=5000)
    return result, float(result.fun @ result.fun)


def compare_shared_log_ic50(
    curves: Sequence[tuple[np.ndarray, np.ndarray]],
    starts: Sequence[tuple[float, float, float, float]],
    *,
    hill_slope: float | None = -1.0,
) -> dict[str, float]:
    """Global fit of replicate curves and the test of one LogIC50 for all of them.

    Parameters
    ----------
    curves : sequence of (concentration, response)
        One pair of arrays per replicate experiment (concentrations linear, 0 = vehicle).
    starts : sequence of (bottom, top, log_ic50, hill_slope)
        Each experiment's own fit, for the starting values.
    hill_slope : float or None
        Held fixed (−1, the paper) or None to fit one slope shared by the experiments.

    Returns
    -------
    dict
        ``global_log_ic50`` and ``global_log_ic50_se`` of the shared-LogIC50 model;
        ``global_f_one_log_ic50`` / ``global_p_one_log_ic50``, the extra-sum-of-squares F test of
        one LogIC50 against one per experiment (Top, Bottom and slope shared in both; small p =
        the replicates differ); ``global_aic_one_log_ic50`` / ``global_aic_separate``,
        ``N ln(RSS/N) + 2K`` with K counting the variance (lower is better). NaN entries when
        fewer than two curves are given or a fit fails.
    """
    result = dict.fromkeys(LIGAND_SUMMARY_COLUMNS[LIGAND_SUMMARY_COLUMNS.index("global_log_ic50"):],
                           math.nan)
    if len(curves) < 2:
        return result
    data = [(_log10_concentration(np.asarray(x, dtype=np.float64)), np.asarray(y, dtype=np.float64))
            for x, y in curves]
    start_array = np.asarray(starts, dtype=np.float64)
    bottom, top = float(np.mean(start_array[:, 0])), float(np.mean(start_array[:, 1]))
    head = [bottom, top] if hill_slope is not None else [bottom, top, float(np.mean(start_array[:, 3]))]
    shared, rss_shared = _least_squares(np.r_[head, float(np.mean(start_array[:, 2]))], data, hill_slope,
                                        True)
    # Separate LogIC50s from each experiment's own fit and from the shared optimum: the better of
    # the two, so that the nested comparison never rests on a poorer local optimum.
    candidates = [_least_squares(np.r_[head, start_array[:, 2]], data, hill_slope, False),
                  _least_squares(np.r_[shared.x[:-1], np.full(len(data), shared.x[-1])], data,
                                 hill_slope, False)]
    separate, rss_separate = min(candidates, key=lambda candidate: candidate[1])
    n = sum(y.size for _, y in data)
    p_separate, p_shared = separate.x.size, shared.x.size
    if not (separate.success and shared.success) or n <= p_separate or rss_separate <= 0:
        return result
    rss_shared = max(rss_shared, rss_separate)  # the nested model cannot fit better
    dof_separate, dof_shared = n - p_separate, n - p_shared
    f_statistic = ((rss_shared - rss_separate) / (dof_shared - dof_separate)) / (rss_separate / dof_separate)
    jacobian = shared.jac
    try:
        covariance = rss_shared / dof_shared * np.linalg.inv(jacobian.T @ jacobian)
        se = float(math.sqrt(covariance[-1, -1]))
    except (np.linalg.LinAlgError, ValueError):
        se = math.nan
    result.update({
        "global_log_ic50": float(shared.x[-1]),
        "global_log_ic50_se": se,
        "global_f_one_log_ic50": float(f_statistic),
        "global_p_one_log_ic50": float(stats.f.sf(f_statistic, dof_shared - dof_separate, dof_separate)),
        "global_aic_one_log_ic50": n * math.log(rss_shared / n) + 2 * (p_shared + 1),
        "global_aic_separate": n * math.log(rss_separate / n) + 2 * (p_separate + 1),
    })
    return result


def summarize_by_ligand(
    fits: pd.DataFrame,
    wells: pd.DataFrame | None = None,
    *,
    confidence: float = 0.95,
    equivalence_margin: float = DEFAULT_EQUIVALENCE_MARGIN,
    hill_slope: float | None = -1.0,
) -> pd.DataFrame:
    """One row per ligand and mode over its replicate experiments.

    Parameters
    ----------
    fits : DataFrame
        ``fits.csv`` rows (:func:`analysis.affinity.fit_experiments`).
    wells : DataFrame, optional
        ``wells.csv`` rows; when given, the global fit and its comparison are computed over the
        experiments whose own fit succeeded (else those columns are NaN).
    confidence : float
        Coverage of the interval of the mean LogIC50 (t with n − 1 df).
    equivalence_margin : float
        TOST margin, log10 units, for ``tost_p_vs_manual``.
    hill_slope : float or None
        The slope used for the fits (the global fit shares a free one).

    Returns
    -------
    DataFrame
        Columns of ``LIGAND_SUMMARY_COLUMNS``. Only successful fits enter the statistics;
        ``n_no_displacement`` counts experiments flagged ``no_displacement``. ``mean_pki`` is
        −mean(log Ki), NaN without a tracer.
    """
    rows = []
    flags = fits["fit_flags"].map(lambda value: value if isinstance(value, str) else "")
    for (ligand, mode), group in fits.groupby(["ligand", "mode"], sort=True):
        ok = group[group["success"].astype(bool)]
        mean, sd, sem, low, high = mean_interval(ok["log_ic50"], confidence)
        pki_mean, _, _, pki_low, pki_high = mean_interval(-ok["log_ki"], confidence)
        tost = math.nan
        if mode != "manual":
            manual = fits[(fits["ligand"] == ligand) & (fits["mode"] == "manual") & fits["success"].astype(bool)]
            paired = ok.set_index("experiment")["log_ic50"].to_frame("mode").join(
                manual.set_index("experiment")["log_ic50"].rename("manual"), how="inner")
            tost = equivalence_p(paired["mode"], paired["manual"], equivalence_margin)
        row = {
            "ligand": ligand, "mode": mode, "n_experiments": int(len(group)), "n_fitted": int(len(ok)),
            "n_no_displacement": int(flags[group.index].str.contains("no_displacement").sum()),
            "mean_log_ic50": mean, "sd_log_ic50": sd, "sem_log_ic50": sem,
            "log_ic50_ci_low": low, "log_ic50_ci_high": high,
            "mean_pki": pki_mean, "pki_ci_low": pki_low, "pki_ci_high": pki_high,
            "tost_p_vs_manual": tost,
        }
        if wells is not None and len(ok) >= 2:
            curves = []
            for experiment in ok["experiment"]:
                data = wells[(wells["experiment"] == experiment) & (wells["mode"] == mode)]
                data = data[np.isfinite(data["specific"].to_numpy(dtype=float))]
                curves.append((data["concentration"].to_numpy(dtype=float),
                               data["specific"].to_numpy(dtype=float)))
            starts = ok[["bottom", "top", "log_ic50", "hill_slope"]].to_numpy(dtype=float)
            row.update(compare_shared_log_ic50(curves, starts, hill_slope=hill_slope))
        rows.append(row)
    return pd.DataFrame(rows, columns=LIGAND_SUMMARY_COLUMNS)
