"""Outlier wells of a dose-response curve: the ROUT method (Motulsky & Brown 2006).

ROUT ("robust regression and outlier removal", GraphPad Prism's outlier option) works in three
steps:

1. a *robust* Hill fit that assumes Lorentzian (Cauchy) scatter, so that a few wild points
   barely pull the curve: it minimises :math:`\\sum \\ln(1 + (r_i / s)^2)` with the scale
   :math:`s` set adaptively to the robust standard deviation of the residuals (RSDR) of the
   current fit, starting from the least-squares fit;
2. each residual of that fit gets a two-sided p value from :math:`|r_i| / \\mathrm{RSDR}` on
   the t distribution with N − K degrees of freedom (K free parameters), and the points are
   called outliers by the false-discovery-rate procedure (Benjamini–Hochberg) at level Q;
3. the outliers are removed and the remaining points are fitted by ordinary least squares
   (:func:`analysis.hill.fit_hill`).

``RSDR = P68 · N / (N − K)``, the 68.27th percentile of the absolute residuals with a
small-sample correction. Off by default in ``python -m analysis.ligand_affinity`` (the paper
did not use it); ``--outliers rout`` adds one ``<mode>+rout`` fit per experiment and mode.

References
----------
Motulsky HJ, Brown RE (2006). Detecting outliers when fitting data with nonlinear regression
-- a new method based on robust nonlinear regression and the false discovery rate. BMC
Bioinformatics 7:123. doi:10.1186/1471-2105-7-123
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize, stats
from statsmodels.stats.multitest import multipletests

from analysis.hill import PARAMETER_NAMES, HillFit, _hill_jacobian, _log10_concentration, fit_hill, hill
from artseg.errors import ArtsegInputError

__all__ = [
    "DEFAULT_Q",
    "OUTLIER_COLUMNS",
    "ROUT_SUFFIX",
    "RobustFit",
    "RoutResult",
    "robust_hill_fit",
    "robust_sd",
    "rout",
    "rout_flags",
    "rout_wells",
]

DEFAULT_Q = 0.01
"""Prism's default ROUT coefficient Q (1 %)."""
ROUT_SUFFIX = "+rout"
"""Appended to a removal mode's name for its fits without outliers (``model+rout``)."""
OUTLIER_COLUMNS = [
    "experiment", "ligand", "mode", "well", "concentration", "specific", "robust_prediction",
    "residual", "rsdr", "p_value", "q_value", "outlier",
]
# The fraction of a Gaussian within one SD of the mean: P68 of |residuals| estimates the SD.
_P68 = 100.0 * (stats.norm.cdf(1.0) - stats.norm.cdf(-1.0))
_MAX_SCALE_ROUNDS = 50
_SCALE_TOLERANCE = 1e-6
# Evaluations per round: a round that wanders is cut short and the next one resumes from there.
_ROUND_EVALUATIONS = 200
# The robust curve only has to follow the bulk of the points: LogIC50 is kept within this many
# log units of the tested concentrations, so that flat or incomplete data cannot send it off.
_LOG_IC50_REACH = 2.0


def robust_sd(residuals: np.ndarray, n_params: int) -> float:
    """Robust standard deviation of residuals (RSDR): ``P68(|r|) · N / (N − K)``.

    Parameters
    ----------
    residuals : array_like
        Residuals of a fit (NaN not allowed).
    n_params : int
        Number of fitted parameters K (< N).

    Returns
    -------
    float
        The 68.27th percentile of the absolute residuals times ``N / (N − K)``.

    Examples
    --------
    >>> round(robust_sd(np.array([-1.0, 1.0, -1.0, 1.0, 50.0]), 1), 4)
    1.25
    """
    values = np.abs(np.asarray(residuals, dtype=np.float64))
    n = values.size
    if n <= n_params:
        raise ArtsegInputError(f"robust_sd: need more residuals than parameters, got {n} for {n_params}")
    return float(np.percentile(values, _P68)) * n / (n - n_params)


@dataclass(frozen=True)
class RobustFit:
    """Result of :func:`robust_hill_fit`; parameters NaN when ``success`` is False."""

    bottom: float = math.nan
    top: float = math.nan
    log_ic50: float = math.nan
    hill_slope: float = math.nan
    rsdr: float = math.nan
    n: int = 0
    n_params: int = 0
    success: bool = False
    message: str = ""

    def predict(self, log_x: np.ndarray) -> np.ndarray:
        """The robust curve at log10 concentrations `log_x` (−inf = vehicle)."""
        return hill(np.asarray(log_x, dtype=np.float64), self.bottom, self.top, self.log_ic50, self.hill_slope)


def _both_scales(x, log_x: bool) -> tuple[np.ndarray, np.ndarray]:
    """Concentrations and their log10 (vehicle: 0 and −inf), from either."""
    values = np.asarray(x, dtype=np.float64)
    if log_x:
        return np.power(10.0, values), values
    return values, _log10_concentration(values)


def _crude_start(log_x: np.ndarray, y: np.ndarray, hill_slope: float | None) -> dict[str, float]:
    """Plateaus from the medians at the two ends of the range, LogIC50 mid-range (outlier-proof)."""
    levels = np.unique(log_x)
    low, high = float(np.median(y[log_x == levels[0]])), float(np.median(y[log_x == levels[-1]]))
    finite = levels[np.isfinite(levels)]
    slope = -1.0 if hill_slope is None else hill_slope
    top, bottom = (low, high) if slope < 0 else (high, low)
    return {"bottom": bottom, "top": top, "log_ic50": float(np.median(finite)), "hill_slope": slope}


def _lorentzian_fit(log_x, y, start: np.ndarray, free: list[int], fixed: dict[int, float]):
    """Adaptive Lorentzian fit from `start`; returns (parameters, residuals, RSDR) or None."""
    full = np.array([fixed.get(i, 0.0) for i in range(4)], dtype=np.float64)

    def parameters(theta):
        values = full.copy()
        values[free] = theta
        return values

    def residuals(theta):
        return hill(log_x, *parameters(theta)) - y

    def jacobian(theta):
        return _hill_jacobian(log_x, *parameters(theta))[:, free]

    tested = log_x[np.isfinite(log_x)]
    low, high = np.full(len(free), -np.inf), np.full(len(free), np.inf)
    low[free.index(2)], high[free.index(2)] = tested.min() - _LOG_IC50_REACH, tested.max() + _LOG_IC50_REACH
    theta = np.clip(np.asarray(start, dtype=np.float64)[free], low, high)
    y_span = float(np.ptp(y)) or 1.0
    scale = max(robust_sd(residuals(theta), len(free)), 1e-9 * y_span)
    for _ in range(_MAX_SCALE_ROUNDS):
        result = optimize.least_squares(residuals, theta, jac=jacobian, loss="cauchy", f_scale=scale,
                                        method="trf", x_scale="jac", bounds=(low, high), xtol=1e-10,
                                        ftol=1e-10, gtol=1e-10, max_nfev=_ROUND_EVALUATIONS)
        if not np.all(np.isfinite(result.x)):
            return None
        theta = result.x
        new_scale = max(robust_sd(result.fun, len(free)), 1e-9 * y_span)
        converged = abs(new_scale - scale) <= _SCALE_TOLERANCE * scale
        scale = new_scale
        if converged:
            break
    return parameters(theta), residuals(theta), robust_sd(residuals(theta), len(free))


def robust_hill_fit(x, y, *, log_x: bool = False, hill_slope: float | None = -1.0) -> RobustFit:
    """Fit the Hill equation assuming Lorentzian scatter (ROUT step 1).

    Parameters
    ----------
    x : array_like
        Concentrations (0 = vehicle), or log10 concentrations with ``log_x=True``.
    y : array_like
        Responses.
    log_x : bool
        Whether `x` is already log10 concentration.
    hill_slope : float or None
        Held fixed (−1, the paper) or None to fit it.

    Returns
    -------
    RobustFit
        Parameters, the final RSDR, ``success`` and ``message``. Starts from the least-squares
        fit and from a median-based guess; keeps the fit with the smaller RSDR.

    Notes
    -----
    The Lorentzian merit function is scipy's ``least_squares(loss="cauchy")``; its scale is
    re-set to the RSDR of the current fit until it stops changing (the paper's adaptive fit,
    which grows more robust as the curve settles onto the bulk of the points).
    """
    concentration, log_concentration = _both_scales(x, log_x)
    y_values = np.asarray(y, dtype=np.float64)
    n = int(y_values.size)
    n_params = 3 if hill_slope is not None else 4
    if n <= n_params + 1 or np.unique(log_concentration).size < 4:
        return RobustFit(n=n, n_params=n_params, message=f"too few points for a robust fit: {n}")
    if not np.all(np.isfinite(y_values)):
        return RobustFit(n=n, n_params=n_params, message="input contains NaN or infinite values")
    free = [0, 1, 2] if hill_slope is not None else [0, 1, 2, 3]
    fixed = {} if hill_slope is None else {3: float(hill_slope)}
    starts = [_crude_start(log_concentration, y_values, hill_slope)]
    least_squares = fit_hill(concentration, y_values, hill_slope=hill_slope)
    if least_squares.success:
        starts.insert(0, {name: getattr(least_squares, name) for name in PARAMETER_NAMES})
    best = None
    for start in starts:
        fitted = _lorentzian_fit(log_concentration, y_values,
                                 np.array([start[name] for name in PARAMETER_NAMES]), free, fixed)
        if fitted is not None and (best is None or fitted[2] < best[2]):
            best = fitted
    if best is None:
        return RobustFit(n=n, n_params=n_params, message="robust fit did not converge")
    values = dict(zip(PARAMETER_NAMES, map(float, best[0])))
    return RobustFit(**values, rsdr=float(best[2]), n=n, n_params=n_params, success=True, message="converged")


def rout_flags(residuals, rsdr: float, n_params: int, q: float = DEFAULT_Q) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which residuals of a robust fit are outliers at false discovery rate `q` (ROUT step 2).

    Parameters
    ----------
    residuals : array_like
        Residuals of the robust fit.
    rsdr : float
        Their robust standard deviation (:func:`robust_sd`).
    n_params : int
        Free parameters of the fit (the t distribution has N − K degrees of freedom).
    q : float
        The ROUT coefficient Q as a fraction (0.01 = Prism's default 1 %).

    Returns
    -------
    outlier, p_value, q_value : numpy.ndarray
        Boolean outlier flags, two-sided p values of ``|r| / RSDR`` and their
        Benjamini–Hochberg adjusted values; a point is an outlier when its adjusted value is
        at most `q` (every point with a larger residual is then one too).

    Examples
    --------
    >>> residuals = np.array([0.5, -0.8, 1.0, -1.1, 0.9, -0.6, 12.0, 0.7, -1.0, 0.4])
    >>> outlier, p, _ = rout_flags(residuals, robust_sd(residuals, 3), 3, q=0.01)
    >>> np.flatnonzero(outlier).tolist()
    [6]
    """
    values = np.abs(np.asarray(residuals, dtype=np.float64))
    if not 0 < q < 1:
        raise ArtsegInputError(f"rout_flags: q must be a fraction in (0, 1), got {q}")
    dof = values.size - n_params
    if dof < 1:
        raise ArtsegInputError(f"rout_flags: need more residuals than parameters, got {values.size} for {n_params}")
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(values == 0, 0.0, values / rsdr)
    p_value = 2.0 * stats.t.sf(ratio, dof)
    outlier, q_value = multipletests(p_value, alpha=q, method="fdr_bh")[:2]
    return np.asarray(outlier, dtype=bool), p_value, np.asarray(q_value, dtype=np.float64)


@dataclass(frozen=True)
class RoutResult:
    """Result of :func:`rout`: per-point flags and p values, the robust fit and the refit."""

    outlier: np.ndarray
    p_value: np.ndarray
    q_value: np.ndarray
    robust: RobustFit
    refit: HillFit | None


def rout(x, y, *, q: float = DEFAULT_Q, log_x: bool = False, hill_slope: float | None = -1.0,
         refit: bool = True) -> RoutResult:
    """ROUT: robust fit, outliers at false discovery rate `q`, least-squares refit without them.

    Parameters
    ----------
    x, y : array_like
        Concentrations (0 = vehicle; log10 with ``log_x=True``) and responses.
    q : float
        Q as a fraction (0.01 = 1 %, Prism's default).
    log_x : bool
        Whether `x` is log10 concentration.
    hill_slope : float or None
        Held fixed (−1, the paper) or None to fit it.
    refit : bool
        Whether to fit the points left by least squares (step 3); False leaves ``refit`` None,
        for callers that refit themselves.

    Returns
    -------
    RoutResult
        No point is flagged when the robust fit fails (``robust.success`` False, ``refit`` is
        then the least-squares fit of all points).

    Examples
    --------
    >>> log_x = np.repeat(np.arange(-10.0, -4.0), 2)
    >>> y = hill(log_x, 100.0, 1000.0, -7.5, -1.0) + np.tile([-8.0, 8.0], 6)
    >>> y[4] += 600.0
    >>> result = rout(log_x, y, log_x=True)
    >>> np.flatnonzero(result.outlier).tolist(), round(result.refit.log_ic50, 1)
    ([4], -7.5)
    """
    concentration, log_concentration = _both_scales(x, log_x)
    y_values = np.asarray(y, dtype=np.float64)
    robust = robust_hill_fit(concentration, y_values, hill_slope=hill_slope)
    n = y_values.size
    if not robust.success:
        outlier, p_value, q_value = np.zeros(n, dtype=bool), np.full(n, np.nan), np.full(n, np.nan)
    else:
        residuals = y_values - robust.predict(log_concentration)
        outlier, p_value, q_value = rout_flags(residuals, robust.rsdr, robust.n_params, q)
    least_squares = fit_hill(concentration[~outlier], y_values[~outlier], hill_slope=hill_slope) if refit else None
    return RoutResult(outlier, p_value, q_value, robust, least_squares)


def rout_wells(wells: pd.DataFrame, *, q: float = DEFAULT_Q,
               hill_slope: float | None = -1.0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """ROUT on every experiment and removal mode of a well table.

    Parameters
    ----------
    wells : DataFrame
        ``wells.csv`` rows (``experiment, ligand, concentration, well, mode, specific``).
    q : float
        Q as a fraction.
    hill_slope : float or None
        The slope of the fits (fixed −1 or None = free).

    Returns
    -------
    rout_table : DataFrame
        The same wells with ``mode`` renamed ``<mode>+rout`` and ``specific`` set to NaN for
        the outliers, so that :func:`analysis.affinity.fit_experiments` fits them without.
    outliers : DataFrame
        ``OUTLIER_COLUMNS``: one row per tested well (finite signal) with the robust curve's
        prediction, the residual, the RSDR, p and adjusted p, and ``outlier``.
    """
    missing = [c for c in ("experiment", "ligand", "concentration", "well", "mode", "specific")
               if c not in wells.columns]
    if missing:
        raise ArtsegInputError(f"well table: missing column(s) {', '.join(missing)}")
    rout_table = wells.copy()
    rows = []
    for (experiment, mode), data in wells.groupby(["experiment", "mode"], sort=True):
        usable = data[np.isfinite(data["specific"].to_numpy(dtype=float))]
        x = usable["concentration"].to_numpy(dtype=float)
        y = usable["specific"].to_numpy(dtype=float)
        result = rout(x, y, q=q, hill_slope=hill_slope, refit=False)
        prediction = result.robust.predict(_log10_concentration(x))
        for (index, well), value, fitted, p, adjusted, flagged in zip(
                usable["well"].items(), y, prediction, result.p_value, result.q_value, result.outlier):
            rows.append({
                "experiment": experiment, "ligand": data["ligand"].iloc[0], "mode": mode, "well": well,
                "concentration": float(usable.at[index, "concentration"]), "specific": float(value),
                "robust_prediction": float(fitted), "residual": float(value - fitted),
                "rsdr": result.robust.rsdr, "p_value": float(p), "q_value": float(adjusted),
                "outlier": bool(flagged),
            })
            if flagged:
                rout_table.loc[index, "specific"] = np.nan
    rout_table["mode"] = rout_table["mode"].astype(str) + ROUT_SUFFIX
    return rout_table, pd.DataFrame(rows, columns=OUTLIER_COLUMNS)
