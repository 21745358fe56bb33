"""How far a Hill fit can be trusted: Prism-style quality flags and profile-likelihood intervals.

:func:`analysis.hill.fit_hill` returns the least-squares optimum and its asymptotic standard
errors. This module judges that result against the data it came from:

- ``ambiguous`` -- some parameter's *dependency* (GraphPad Prism: 1 - 1 / (C_ii (C^-1)_ii)
  for the parameter covariance C) exceeds 0.9999: the data cannot separate it from the others,
  as when a plateau or the IC50 lies outside the tested concentrations.
- ``outside_range`` -- LogIC50 lies beyond the tested (non-zero) concentrations.
- ``no_displacement`` -- the extra-sum-of-squares F test of the curve against a horizontal line
  is not significant: the data show no concentration dependence, so no IC50 exists.
- ``not_converged`` -- the fitter stopped without reaching an optimum.

:func:`profile_interval` gives Prism's asymmetric profile-likelihood interval of LogIC50: every
LogIC50 whose best residual sum of squares, the other parameters re-optimised, stays below
``RSS_min (1 + F(confidence; 1, dof) / dof)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
from scipy import optimize, stats

from analysis.hill import PARAMETER_NAMES, HillFit, hill

__all__ = [
    "FLAGS",
    "FitQuality",
    "assess_fit",
    "dependencies",
    "displacement_test",
    "profile_interval",
    "profile_rss",
]

FLAGS = ("ambiguous", "outside_range", "no_displacement", "not_converged")
"""Every flag :func:`assess_fit` can raise, in the order they are listed."""

# Prism's threshold for an "ambiguous" fit.
AMBIGUOUS_DEPENDENCY = 0.9999
# Range of |Hill slope| searched when the slope is profiled out (the paper's slope is 1).
_SLOPE_SEARCH = (0.05, 50.0)
_SLOPE_GRID = np.geomspace(*_SLOPE_SEARCH, 29)


def dependencies(covariance: Sequence[Sequence[float]]) -> np.ndarray:
    """Prism's dependency of each free parameter on the others.

    Parameters
    ----------
    covariance : array_like, shape (p, p)
        Covariance of the free parameters (``HillFit.covariance``).

    Returns
    -------
    numpy.ndarray
        ``1 - 1 / (C_ii (C^-1)_ii)`` per parameter, in [0, 1]: 0 when a parameter is
        uncorrelated with the rest, 1 when it is a combination of them. All ones when `C` is
        singular.
    """
    matrix = np.asarray(covariance, dtype=np.float64)
    if matrix.size == 0:
        return np.zeros(0)
    if matrix.shape[0] == 1:
        return np.zeros(1)
    # Correlation form: dependency is scale-free, and the correlation matrix inverts stably.
    scale = np.sqrt(np.diag(matrix))
    if not np.all(np.isfinite(scale) & (scale > 0)):
        return np.ones(matrix.shape[0])
    correlation = matrix / np.outer(scale, scale)
    try:
        inverse_diagonal = np.diag(np.linalg.inv(correlation))
    except np.linalg.LinAlgError:
        return np.ones(matrix.shape[0])
    with np.errstate(divide="ignore"):
        values = 1.0 - 1.0 / inverse_diagonal
    return np.clip(np.where(inverse_diagonal > 0, values, 1.0), 0.0, 1.0)


def _projected_rss(log_x: np.ndarray, y: np.ndarray, log_ic50: float, hill_slope: float,
                   bottom: float | None, top: float | None) -> float:
    """Least RSS over the free plateaus for a given LogIC50 and slope (the model is linear in them)."""
    fraction = hill(log_x, 0.0, 1.0, log_ic50, hill_slope)
    columns, target = [], y.copy()
    if bottom is None:
        columns.append(1.0 - fraction)
    else:
        target = target - bottom * (1.0 - fraction)
    if top is None:
        columns.append(fraction)
    else:
        target = target - top * fraction
    if not columns:
        return float(target @ target)
    design = np.column_stack(columns)
    coefficients, *_ = np.linalg.lstsq(design, target, rcond=None)
    residual = target - design @ coefficients
    return float(residual @ residual)


def profile_rss(
    log_x: np.ndarray,
    y: np.ndarray,
    log_ic50: float,
    *,
    hill_slope: float | None = -1.0,
    bottom: float | None = None,
    top: float | None = None,
    slope_sign: float = -1.0,
) -> float:
    """Least residual sum of squares with LogIC50 held at `log_ic50`, the rest re-optimised.

    Parameters
    ----------
    log_x, y : numpy.ndarray
        log10 concentrations (``-inf`` = vehicle) and responses.
    log_ic50 : float
        The value LogIC50 is held at.
    hill_slope, bottom, top : float or None
        Fixed values, or None for parameters that are free (as in :func:`fit_hill`).
    slope_sign : float
        Sign of a free Hill slope. With both plateaus free the curves of slopes h and -h are
        the same set (Top and Bottom swap), so one sign loses nothing.

    Returns
    -------
    float
        The profile RSS. Top and Bottom enter linearly and are solved exactly; a free slope
        is found on a log grid of |h| in [0.05, 50], refined by bounded Brent search.
    """
    if hill_slope is not None:
        return _projected_rss(log_x, y, log_ic50, hill_slope, bottom, top)
    sign = 1.0 if slope_sign > 0 else -1.0

    def rss_at(log_abs_slope: float) -> float:
        return _projected_rss(log_x, y, log_ic50, sign * math.exp(log_abs_slope), bottom, top)

    log_grid = np.log(_SLOPE_GRID)
    values = np.array([rss_at(v) for v in log_grid])
    best = int(np.argmin(values))
    low, high = log_grid[max(best - 1, 0)], log_grid[min(best + 1, log_grid.size - 1)]
    refined = optimize.minimize_scalar(rss_at, bounds=(low, high), method="bounded",
                                       options={"xatol": 1e-6})
    return float(min(values[best], refined.fun))


def _fixed_parameters(fit: HillFit) -> dict[str, float | None]:
    """The values `fit` held fixed (None for its free parameters)."""
    return {name: (None if name in fit.free_parameters else float(getattr(fit, name)))
            for name in PARAMETER_NAMES}


def profile_interval(
    log_x: np.ndarray,
    y: np.ndarray,
    fit: HillFit,
    *,
    confidence: float = 0.95,
    search_decades: float = 5.0,
) -> tuple[float, float]:
    """Profile-likelihood confidence interval of LogIC50 (Prism's asymmetric interval).

    Parameters
    ----------
    log_x, y : numpy.ndarray
        The data `fit` came from, on the log10 axis (``-inf`` = vehicle).
    fit : HillFit
        A successful fit with LogIC50 free; its fixed parameters stay fixed.
    confidence : float
        Coverage, e.g. 0.95.
    search_decades : float
        How far beyond the tested concentrations a limit is looked for.

    Returns
    -------
    (float, float)
        Lower and upper limit. A side on which the profile never rises above the threshold
        within the search range is ``-inf`` / ``+inf``: the data do not bound LogIC50 there.
        ``(nan, nan)`` for a failed fit.
    """
    if not fit.success or "log_ic50" not in fit.free_parameters or fit.dof < 1:
        return (math.nan, math.nan)
    fixed = _fixed_parameters(fit)
    sign = -1.0 if fit.hill_slope < 0 else 1.0

    def rss(value: float) -> float:
        return profile_rss(log_x, y, value, hill_slope=fixed["hill_slope"], bottom=fixed["bottom"],
                           top=fixed["top"], slope_sign=sign)

    estimate = float(fit.log_ic50)
    rss_min = min(float(fit.rss), rss(estimate))
    threshold = rss_min * (1.0 + float(stats.f.ppf(confidence, 1, fit.dof)) / fit.dof)
    tested = log_x[np.isfinite(log_x)]
    search_low = min(float(tested.min()), estimate) - search_decades
    search_high = max(float(tested.max()), estimate) + search_decades
    step = fit.log_ic50_se if math.isfinite(fit.log_ic50_se) and fit.log_ic50_se > 0 else 0.1
    step = float(np.clip(step, 0.01, 1.0))

    def excess(value: float) -> float:
        return rss(value) - threshold

    if excess(estimate) >= 0:  # the estimate is not the least-squares optimum: no interval about it
        return (math.nan, math.nan)
    limits = []
    for direction, bound in ((-1.0, search_low), (1.0, search_high)):
        inside, offset = estimate, step
        limit = direction * math.inf
        while True:
            trial = estimate + direction * offset
            past_bound = (trial - bound) * direction >= 0
            trial = bound if past_bound else trial
            if excess(trial) > 0:
                limit = optimize.brentq(excess, *sorted((inside, trial)), xtol=1e-8)
                break
            if past_bound:
                break
            inside, offset = trial, offset * 2.0
        limits.append(float(limit))
    return (limits[0], limits[1])


def displacement_test(y: np.ndarray, rss_curve: float, n_free: int) -> tuple[float, float]:
    """Extra-sum-of-squares F test of the curve against a horizontal line through the mean.

    Parameters
    ----------
    y : numpy.ndarray
        Responses.
    rss_curve : float
        Residual sum of squares of the curve.
    n_free : int
        Free parameters of the curve (the line has one).

    Returns
    -------
    (float, float)
        F statistic and its p value; ``(nan, nan)`` when the test has no degrees of freedom.
    """
    n = int(y.size)
    dof_curve, dof_line = n - n_free, n - 1
    if dof_curve < 1 or dof_line <= dof_curve or not math.isfinite(rss_curve):
        return (math.nan, math.nan)
    rss_line = float(np.sum((y - y.mean()) ** 2))
    if rss_curve <= 0.0:
        return (math.inf, 0.0) if rss_line > 0 else (math.nan, math.nan)
    f_statistic = max(rss_line - rss_curve, 0.0) / (dof_line - dof_curve) / (rss_curve / dof_curve)
    return f_statistic, float(stats.f.sf(f_statistic, dof_line - dof_curve, dof_curve))


def _restricted_rss(log_x: np.ndarray, y: np.ndarray, fixed: Mapping[str, float | None],
                    margin: float = 1.0) -> float:
    """Least RSS over LogIC50 within the tested range +- `margin` (for fits that did not converge)."""
    tested = log_x[np.isfinite(log_x)]
    grid = np.arange(tested.min() - margin, tested.max() + margin + 1e-9, 0.1)
    signs = (-1.0, 1.0) if fixed["hill_slope"] is None and (fixed["top"] is not None
                                                             or fixed["bottom"] is not None) else (-1.0,)
    return min(profile_rss(log_x, y, float(v), hill_slope=fixed["hill_slope"], bottom=fixed["bottom"],
                           top=fixed["top"], slope_sign=s) for v in grid for s in signs)


@dataclass(frozen=True)
class FitQuality:
    """What :func:`assess_fit` concluded about one fit.

    ``success`` is the fit's own success and-ed with "it displaces"; ``message`` is the fit's
    message, or the reason for the failure the flags add. ``ci_low``/``ci_high`` bound LogIC50
    (NaN without an IC50). ``max_dependency`` is NaN when no covariance is available.
    """

    flags: tuple[str, ...]
    success: bool
    message: str
    ci_low: float
    ci_high: float
    displacement_f: float
    displacement_p: float
    max_dependency: float

    @property
    def flag_text(self) -> str:
        """Flags joined by ``;`` (empty when none), as written to ``fits.csv``."""
        return ";".join(self.flags)

    @property
    def displaces(self) -> bool:
        return "no_displacement" not in self.flags


def assess_fit(
    x: np.ndarray,
    y: np.ndarray,
    fit: HillFit,
    *,
    ci: str = "profile",
    confidence: float = 0.95,
    alpha: float = 0.05,
    ambiguous_dependency: float = AMBIGUOUS_DEPENDENCY,
    log_x: bool = False,
    displaces: bool | None = None,
    hill_slope: float | None = -1.0,
    bottom: float | None = None,
    top: float | None = None,
) -> FitQuality:
    """Flag a Hill fit and bound its LogIC50.

    Parameters
    ----------
    x, y : numpy.ndarray
        The data given to :func:`fit_hill` (concentrations, 0 = vehicle, or log10 with `log_x`).
    fit : HillFit
        Its result.
    ci : {"profile", "wald"}
        Profile-likelihood interval (default) or estimate +- t(dof) SE.
    confidence : float
        Coverage of the interval.
    alpha : float
        Level of the displacement F test: ``no_displacement`` when p >= `alpha`.
    ambiguous_dependency : float
        Dependency above which the fit is ``ambiguous``.
    log_x : bool
        Whether `x` is already log10 concentration.
    displaces : bool, optional
        A decision on displacement made elsewhere (e.g. after a false-discovery-rate
        adjustment over many compounds) that replaces ``p < alpha``; it applies only where the
        F test could be run.
    hill_slope, bottom, top : float or None
        The values :func:`fit_hill` held fixed (None = fitted), needed when the fit failed and
        carries no values.

    Returns
    -------
    FitQuality
        Flags (a subset of :data:`FLAGS`, in that order), success, message, interval and the
        F test. A fit that did not converge, or was rejected as unidentifiable, is tested for
        displacement with the best curve whose LogIC50 lies within a decade of the tested
        range, so flat data are called ``no_displacement`` whether or not the fitter converged.
    """
    if ci not in ("profile", "wald"):
        raise ValueError(f"ci must be 'profile' or 'wald', got {ci!r}")
    x_values = np.asarray(x, dtype=np.float64)
    y_values = np.asarray(y, dtype=np.float64)
    with np.errstate(divide="ignore"):
        log_concentration = x_values if log_x else np.where(x_values > 0, np.log10(
            np.where(x_values > 0, x_values, 1.0)), -np.inf)
    fixed = {"bottom": bottom, "top": top, "log_ic50": None, "hill_slope": hill_slope}
    flags: set[str] = set()
    message = fit.message
    max_dependency = math.nan

    tested = log_concentration[np.isfinite(log_concentration)]
    usable = (y_values.size > 0 and np.all(np.isfinite(y_values)) and tested.size > 0
              and fit.free_parameters)
    rss_curve = math.nan
    if fit.success:
        max_dependency = float(dependencies(fit.covariance).max()) if fit.covariance else math.nan
        if max_dependency > ambiguous_dependency:
            flags.add("ambiguous")
        if tested.size and not tested.min() <= fit.log_ic50 <= tested.max():
            flags.add("outside_range")
        rss_curve = float(fit.rss)
    elif fit.message.startswith("did not converge"):
        flags.add("not_converged")
    elif fit.message.startswith("ambiguous fit"):
        flags.add("ambiguous")
    elif fit.message.startswith("flat data"):
        flags.add("no_displacement")
    if usable and (fit.success or flags & {"not_converged", "ambiguous"}):
        if not fit.success:
            rss_curve = _restricted_rss(log_concentration, y_values, fixed)
        f_statistic, p_value = displacement_test(y_values, rss_curve, len(fit.free_parameters))
    else:
        f_statistic, p_value = math.nan, math.nan
    significant = p_value < alpha if displaces is None else displaces
    if math.isfinite(p_value) and not significant:
        flags.add("no_displacement")
        rule = f">= {alpha:g}" if displaces is None else "after multiplicity adjustment"
        message = (f"no displacement: the curve fits no better than a horizontal line "
                   f"(F = {f_statistic:.3g}, p = {p_value:.3g} {rule})")
        if not fit.success:
            message += f"; {fit.message}"

    success = bool(fit.success) and "no_displacement" not in flags
    ci_low = ci_high = math.nan
    if success:
        if ci == "wald":
            ci_low, ci_high = _wald(fit, confidence)
        else:
            ci_low, ci_high = profile_interval(log_concentration, y_values, fit, confidence=confidence)
    return FitQuality(
        flags=tuple(flag for flag in FLAGS if flag in flags), success=success, message=message,
        ci_low=ci_low, ci_high=ci_high, displacement_f=f_statistic, displacement_p=p_value,
        max_dependency=max_dependency,
    )


def _wald(fit: HillFit, confidence: float) -> tuple[float, float]:
    if not math.isfinite(fit.log_ic50_se) or fit.dof < 1:
        return (math.nan, math.nan)
    half_width = float(stats.t.ppf(0.5 + confidence / 2.0, fit.dof)) * fit.log_ic50_se
    return (fit.log_ic50 - half_width, fit.log_ic50 + half_width)
