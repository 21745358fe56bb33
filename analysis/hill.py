"""Dose-response (Hill) fitting: GraphPad's "log(inhibitor) vs. response" model with lmfit.

The paper (Methods, "Ligand binding") fits well-average specific fluorescence against the
competitor concentration with the Hill equation, Hill slope fixed at -1, and reports
LogIC50 +- SE and R^2. This module holds the pure model function :func:`hill` and the fitter
:func:`fit_hill`, whose result (:class:`HillFit`) round-trips through JSON.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

import lmfit
import numpy as np
from scipy import special, stats

from artseg.errors import ArtsegInputError

__all__ = ["HillFit", "PARAMETER_NAMES", "fit_hill", "hill"]

PARAMETER_NAMES: tuple[str, ...] = ("bottom", "top", "log_ic50", "hill_slope")
"""Order of the Hill parameters in covariance matrices and fitting vectors."""

FORMAT_VERSION = 1
_LN10 = math.log(10.0)
_MIN_DISTINCT_CONCENTRATIONS = 4
# MINPACK defaults stop ~5-6 significant digits from the optimum; certified NIST values need
# the tolerances near machine precision.
_TOLERANCE = 1e-15
_MAX_FUNCTION_EVALUATIONS = 2000
# Cosine between the residual vector and any Jacobian column (MINPACK's gtol criterion)
# above which a reported optimum is not accepted as stationary.
_STATIONARITY_COSINE = 1e-5
# Reciprocal condition number of the column-scaled Jacobian below which parameters are
# not identifiable from the data (Prism calls such fits "ambiguous").
_MIN_RECIPROCAL_CONDITION = 1e-10
# MINPACK lmdif exit codes that mean "stopped at a (numerically) stationary point":
# 1-4 the documented convergence tests, 6-8 "tolerance too small, no further progress".
_CONVERGED_CODES = frozenset({1, 2, 3, 4, 6, 7, 8})


def _logistic_argument(x: np.ndarray, log_ic50: float, hill_slope: float) -> np.ndarray:
    """``ln(10) * HillSlope * (X - LogIC50)``, with X = -inf (zero dose) handled exactly."""
    with np.errstate(invalid="ignore"):
        argument = _LN10 * hill_slope * (x - log_ic50)
    # -inf * 0 is undefined; a zero slope makes the curve flat everywhere, so use the midpoint.
    return np.where(np.isnan(argument) & ~np.isnan(x), 0.0, argument)


def hill(
    x: np.ndarray | float,
    bottom: float,
    top: float,
    log_ic50: float,
    hill_slope: float,
) -> np.ndarray:
    """Evaluate the Hill equation on the log10-concentration axis.

    Parameters
    ----------
    x : array_like
        log10 of the concentration (X). ``-inf`` stands for concentration 0 (vehicle) and
        gives the X -> -inf asymptote exactly (Top for a negative Hill slope).
    bottom, top : float
        Plateaus. Top is the asymptote at low X when ``hill_slope < 0`` and at high X when
        ``hill_slope > 0``.
    log_ic50 : float
        log10 of the concentration giving a response half way between Bottom and Top.
    hill_slope : float
        Steepness; -1 is the "log(inhibitor) vs. response" standard slope.

    Returns
    -------
    numpy.ndarray
        Response Y, float64, same shape as `x`.

    Notes
    -----
    GraphPad Prism's "log(inhibitor) vs. response -- variable slope" model,

    .. math:: Y = B + \\frac{T - B}{1 + 10^{(\\mathrm{LogIC50} - X)\\,\\mathrm{HillSlope}}},

    evaluated as :math:`B + (T - B)\\,\\sigma(\\ln 10 \\cdot h\\,(X - \\mathrm{LogIC50}))`
    with :math:`h` = HillSlope and the logistic function :math:`\\sigma`, which never
    overflows.

    Examples
    --------
    >>> float(hill(-6.0, bottom=10.0, top=110.0, log_ic50=-6.0, hill_slope=-1.0))
    60.0
    >>> float(hill(-np.inf, bottom=10.0, top=110.0, log_ic50=-6.0, hill_slope=-1.0))
    110.0
    """
    log_concentration = np.asarray(x, dtype=np.float64)
    fraction = special.expit(_logistic_argument(log_concentration, log_ic50, hill_slope))
    return bottom + (top - bottom) * fraction


def _hill_jacobian(
    x: np.ndarray, bottom: float, top: float, log_ic50: float, hill_slope: float
) -> np.ndarray:
    """Analytic derivatives of :func:`hill`, shape ``(n, 4)`` in :data:`PARAMETER_NAMES` order."""
    fraction = special.expit(_logistic_argument(x, log_ic50, hill_slope))
    logistic_derivative = fraction * (1.0 - fraction)
    span = top - bottom
    with np.errstate(invalid="ignore"):
        d_log_ic50 = -span * logistic_derivative * _LN10 * hill_slope
        d_hill_slope = span * logistic_derivative * _LN10 * (x - log_ic50)
    # At zero dose (x = -inf) the curve sits on its asymptote: no dependence on LogIC50/slope.
    at_asymptote = np.isinf(x)
    d_log_ic50 = np.where(at_asymptote, 0.0, d_log_ic50)
    d_hill_slope = np.where(at_asymptote, 0.0, d_hill_slope)
    return np.column_stack([1.0 - fraction, fraction, d_log_ic50, d_hill_slope])


def _nan_interval() -> tuple[float, float]:
    return (math.nan, math.nan)


@dataclass(frozen=True)
class HillFit:
    """Result of :func:`fit_hill`.

    Parameters are NaN when ``success`` is False; ``message`` says why. Standard errors of
    fixed parameters are NaN. ``covariance`` lists the free parameters' asymptotic
    covariance in the order of ``free_parameters``.
    """

    log_ic50: float = math.nan
    top: float = math.nan
    bottom: float = math.nan
    hill_slope: float = math.nan
    log_ic50_se: float = math.nan
    top_se: float = math.nan
    bottom_se: float = math.nan
    hill_slope_se: float = math.nan
    log_ic50_ci: tuple[float, float] = field(default_factory=_nan_interval)
    top_ci: tuple[float, float] = field(default_factory=_nan_interval)
    bottom_ci: tuple[float, float] = field(default_factory=_nan_interval)
    hill_slope_ci: tuple[float, float] = field(default_factory=_nan_interval)
    r_squared: float = math.nan
    rss: float = math.nan
    n: int = 0
    dof: int = 0
    success: bool = False
    message: str = ""
    free_parameters: tuple[str, ...] = ()
    covariance: tuple[tuple[float, ...], ...] = ()

    @property
    def ic50(self) -> float:
        """IC50 in concentration units (``10 ** log_ic50``)."""
        return 10.0**self.log_ic50

    def predict(self, x: np.ndarray | float, *, log_x: bool = False) -> np.ndarray:
        """Fitted curve at `x` (concentration, or log10 concentration when `log_x`)."""
        log_concentration = np.asarray(x, dtype=np.float64) if log_x else _log10_concentration(x)
        return hill(log_concentration, self.bottom, self.top, self.log_ic50, self.hill_slope)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON dictionary (NaN written as ``None``), readable by :meth:`from_dict`."""
        return {"format_version": FORMAT_VERSION, **_nan_to_none(asdict(self))}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "HillFit":
        """Rebuild a result written by :meth:`to_dict` (unknown keys are ignored).

        Raises
        ------
        ArtsegInputError
            If the dictionary comes from a newer format version.
        """
        version = data.get("format_version", FORMAT_VERSION)
        if version > FORMAT_VERSION:
            raise ArtsegInputError(
                f"Hill fit record has format_version {version}; this ArtSeg reads up to "
                f"{FORMAT_VERSION}"
            )
        values = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        for name in ("log_ic50", "top", "bottom", "hill_slope", "r_squared", "rss") + tuple(
            f"{p}_se" for p in PARAMETER_NAMES
        ):
            if name in values:
                values[name] = _float(values[name])
        for parameter in PARAMETER_NAMES:
            key = f"{parameter}_ci"
            if key in values:
                values[key] = tuple(_float(v) for v in values[key])
        if "free_parameters" in values:
            values["free_parameters"] = tuple(values["free_parameters"])
        if "covariance" in values:
            values["covariance"] = tuple(
                tuple(_float(v) for v in row) for row in values["covariance"]
            )
        for name, kind in (("n", int), ("dof", int), ("success", bool), ("message", str)):
            if name in values:
                values[name] = kind(values[name])
        return cls(**values)


def _float(value: Any) -> float:
    return math.nan if value is None else float(value)


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (list, tuple)):
        return [_nan_to_none(v) for v in value]
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    return value


def _log10_concentration(concentration: np.ndarray | float) -> np.ndarray:
    """log10 of concentrations, with 0 mapped to -inf without a divide-by-zero warning."""
    values = np.asarray(concentration, dtype=np.float64)
    log_values = np.full(values.shape, -np.inf)
    np.log10(values, out=log_values, where=values > 0)
    return log_values


def _failure(message: str, n: int, n_free: int, free: tuple[str, ...]) -> HillFit:
    return HillFit(n=n, dof=max(n - n_free, 0), success=False, message=message,
                   free_parameters=free)


def _validate_fixed(name: str, value: float | None) -> float | None:
    if value is None:
        return None
    number = float(value)
    if not math.isfinite(number):
        raise ArtsegInputError(f"fit_hill: fixed {name} must be a finite number, got {value!r}")
    return number


def _group_means(log_x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    levels, inverse = np.unique(log_x, return_inverse=True)
    sums = np.bincount(inverse, weights=y)
    counts = np.bincount(inverse)
    return levels, sums / counts


def _half_way_crossing(levels: np.ndarray, means: np.ndarray, level: float) -> float:
    """X where the piecewise-linear curve through the group means first crosses `level`."""
    finite = np.isfinite(levels)
    x_values, y_values = levels[finite], means[finite]
    if x_values.size == 1:
        return float(x_values[0])
    for i in range(x_values.size - 1):
        low, high = y_values[i] - level, y_values[i + 1] - level
        if low == 0.0:
            return float(x_values[i])
        if low * high < 0.0:
            weight = low / (low - high)
            return float(x_values[i] + weight * (x_values[i + 1] - x_values[i]))
    return float(np.median(x_values))


def _starting_points(
    log_x: np.ndarray,
    y: np.ndarray,
    fixed: Mapping[str, float | None],
) -> list[dict[str, float]]:
    """Candidate starting values guessed from the data (several, to dodge local minima).

    Plateaus come from the group means at the two ends of the concentration range; the Hill
    slope sign follows the trend (so that Top >= Bottom when everything is free); LogIC50 is
    tried at the half-way crossing and at the quartiles of the tested concentrations.
    """
    levels, means = _group_means(log_x, y)
    low_end, high_end = float(means[0]), float(means[-1])
    finite_levels = levels[np.isfinite(levels)]
    x_range = float(finite_levels[-1] - finite_levels[0]) if finite_levels.size > 1 else 1.0

    if fixed["hill_slope"] is not None:
        slopes = [fixed["hill_slope"]]
    else:
        direction = 1.0 if high_end >= low_end else -1.0
        slopes = sorted({direction * 1.0, direction * 4.0 / x_range}, key=abs)

    starts: list[dict[str, float]] = []
    for slope in slopes:
        # Top is the X -> -inf plateau for a falling slope and the X -> +inf one for a rising.
        top_guess, bottom_guess = (low_end, high_end) if slope < 0 else (high_end, low_end)
        top = fixed["top"] if fixed["top"] is not None else top_guess
        bottom = fixed["bottom"] if fixed["bottom"] is not None else bottom_guess
        half_way = _half_way_crossing(levels, means, 0.5 * (top + bottom))
        candidates = (
            [fixed["log_ic50"]] if fixed["log_ic50"] is not None
            else [half_way, *np.quantile(finite_levels, [0.25, 0.5, 0.75])]
        )
        for log_ic50 in dict.fromkeys(round(float(c), 12) for c in candidates):
            starts.append({"bottom": bottom, "top": top, "log_ic50": log_ic50,
                           "hill_slope": slope})
    return starts


def _minimize(
    log_x: np.ndarray,
    y: np.ndarray,
    start: Mapping[str, float],
    free: tuple[str, ...],
) -> tuple[dict[str, float] | None, str]:
    """One Levenberg-Marquardt run; returns (parameters, message), parameters None on failure."""
    params = lmfit.Parameters()
    for name in PARAMETER_NAMES:
        params.add(name, value=float(start[name]), vary=name in free)
    free_columns = [PARAMETER_NAMES.index(name) for name in free]

    def residual(p: lmfit.Parameters) -> np.ndarray:
        return hill(log_x, p["bottom"].value, p["top"].value, p["log_ic50"].value,
                    p["hill_slope"].value) - y

    def jacobian(p: lmfit.Parameters) -> np.ndarray:
        full = _hill_jacobian(log_x, p["bottom"].value, p["top"].value, p["log_ic50"].value,
                              p["hill_slope"].value)
        return full[:, free_columns]

    minimizer = lmfit.Minimizer(residual, params, calc_covar=False)
    result = minimizer.minimize(
        method="leastsq", Dfun=jacobian, xtol=_TOLERANCE, ftol=_TOLERANCE, gtol=_TOLERANCE,
        max_nfev=_MAX_FUNCTION_EVALUATIONS,
    )
    estimates = {name: float(result.params[name].value) for name in PARAMETER_NAMES}
    if result.aborted or result.ier == 5:
        return None, f"did not converge within {_MAX_FUNCTION_EVALUATIONS} function evaluations"
    if result.ier not in _CONVERGED_CODES:
        return None, f"did not converge: {result.lmdif_message.strip() or result.message}"
    if not all(math.isfinite(v) for v in estimates.values()):
        return None, "did not converge: parameters became non-finite"
    return estimates, "converged"


def _is_stationary(jacobian: np.ndarray, residuals: np.ndarray) -> bool:
    residual_norm = float(np.linalg.norm(residuals))
    column_norms = np.linalg.norm(jacobian, axis=0)
    if residual_norm == 0.0 or not np.all(column_norms > 0):
        return True
    cosines = np.abs(jacobian.T @ residuals) / (column_norms * residual_norm)
    return bool(np.all(cosines <= _STATIONARITY_COSINE))


def _asymptotic_covariance(jacobian: np.ndarray, rss: float, dof: int) -> np.ndarray | None:
    """``s^2 (J^T J)^-1`` with ``s^2 = RSS/dof`` (NIST / Prism form); None if singular."""
    column_norms = np.linalg.norm(jacobian, axis=0)
    if not np.all(column_norms > 0):
        return None
    # Scale columns so the conditioning test ignores the parameters' units.
    _, singular_values, right_vectors = np.linalg.svd(jacobian / column_norms, full_matrices=False)
    if singular_values[-1] <= _MIN_RECIPROCAL_CONDITION * singular_values[0]:
        return None
    scaled_inverse = (right_vectors.T / singular_values**2) @ right_vectors
    return (rss / dof) * scaled_inverse / np.outer(column_norms, column_norms)


def fit_hill(
    x: Sequence[float] | np.ndarray,
    y: Sequence[float] | np.ndarray,
    *,
    log_x: bool = False,
    hill_slope: float | None = -1.0,
    bottom: float | None = None,
    top: float | None = None,
    log_ic50: float | None = None,
    start: Mapping[str, float] | None = None,
    confidence: float = 0.95,
) -> HillFit:
    """Fit the Hill ("log(inhibitor) vs. response") equation by least squares.

    Parameters
    ----------
    x : array_like
        Concentrations (linear units; 0 = vehicle control), one per observation. With
        ``log_x=True``, log10 concentrations instead.
    y : array_like
        Responses, one per observation. Replicates are fitted as individual points.
    log_x : bool, default False
        Whether `x` is already log10 concentration.
    hill_slope, bottom, top, log_ic50 : float or None
        A number holds the parameter fixed at that value; None fits it. The default holds the
        Hill slope at -1 as in the paper.
    start : mapping, optional
        Starting values (any of ``bottom, top, log_ic50, hill_slope``) for the free
        parameters. When given, only this start is tried, with missing entries guessed;
        otherwise several starts are guessed from the data and the best fit is kept.
    confidence : float, default 0.95
        Coverage of the confidence intervals.

    Returns
    -------
    HillFit
        Estimates, standard errors, confidence intervals, ``r_squared``, ``rss``, ``n``,
        ``dof``, ``success`` and ``message``. Never raises for bad *data*: fewer
        observations than free parameters + 1, fewer than 4 distinct concentrations,
        constant `y`, NaN/inf values, non-convergence or unidentifiable parameters all give
        ``success=False`` with the reason in ``message`` and NaN estimates.

    Raises
    ------
    ArtsegInputError
        If `x` and `y` differ in length, are not 1-D, a concentration is negative, or a
        fixed value is not finite.

    See Also
    --------
    hill : the model function.

    Notes
    -----
    Zero concentrations enter as X = -inf, where the model equals its left asymptote (Top
    for a negative slope), so vehicle controls are kept rather than dropped. Minimisation
    is Levenberg-Marquardt (lmfit ``leastsq``, analytic Jacobian, tolerances 1e-15).
    Standard errors are the asymptotic ones used by NIST StRD and GraphPad Prism,
    :math:`\\sqrt{\\mathrm{diag}(s^2 (J^T J)^{-1})}` with :math:`s^2 = \\mathrm{RSS}/\\mathrm{dof}`;
    intervals are estimate +- t(dof) x SE. :math:`R^2 = 1 - \\mathrm{RSS}/\\mathrm{SS_{tot}}` about
    the mean of all Y. With slope, Top and Bottom all free the curve (T, B, L, h) equals
    (B, T, L, -h); the fit reports the form with Top >= Bottom.

    Examples
    --------
    >>> concentration = np.array([0, 1e-9, 1e-8, 1e-7, 1e-6, 1e-5])
    >>> response = hill(np.log10(concentration[1:]), 5.0, 100.0, -7.0, -1.0)
    >>> fit = fit_hill(concentration, np.r_[100.0, response])
    >>> round(fit.log_ic50, 6), fit.success
    (-7.0, True)
    """
    fixed = {
        "bottom": _validate_fixed("bottom", bottom),
        "top": _validate_fixed("top", top),
        "log_ic50": _validate_fixed("log_ic50", log_ic50),
        "hill_slope": _validate_fixed("hill_slope", hill_slope),
    }
    free = tuple(name for name in PARAMETER_NAMES if fixed[name] is None)
    x_values = np.asarray(x, dtype=np.float64)
    y_values = np.asarray(y, dtype=np.float64)
    if x_values.ndim != 1 or y_values.ndim != 1 or x_values.shape != y_values.shape:
        raise ArtsegInputError(
            f"fit_hill: x and y must be 1-D of equal length, got shapes {x_values.shape} "
            f"and {y_values.shape}"
        )
    n = int(y_values.size)
    n_free = len(free)

    if not (np.all(np.isfinite(x_values)) and np.all(np.isfinite(y_values))):
        return _failure("input contains NaN or infinite values", n, n_free, free)
    if not log_x and np.any(x_values < 0):
        raise ArtsegInputError("fit_hill: concentrations must be >= 0 (0 = vehicle control)")
    if n_free == 0:
        return _failure("no free parameters to fit", n, n_free, free)
    n_distinct = int(np.unique(x_values).size)
    if n <= n_free or n_distinct < _MIN_DISTINCT_CONCENTRATIONS:
        return _failure(
            f"too few points: {n} observations at {n_distinct} distinct concentrations for "
            f"{n_free} free parameters (need more than {n_free} observations and at least "
            f"{_MIN_DISTINCT_CONCENTRATIONS} concentrations)", n, n_free, free)
    if np.ptp(y_values) == 0.0:
        return _failure("flat data: all responses are equal", n, n_free, free)

    log_concentration = x_values if log_x else _log10_concentration(x_values)
    if start is not None:
        unknown = set(start) - set(PARAMETER_NAMES)
        if unknown:
            raise ArtsegInputError(f"fit_hill: unknown start parameter(s) {sorted(unknown)}")
        guess = _starting_points(log_concentration, y_values, fixed)[0]
        starts = [{**guess, **{k: float(v) for k, v in start.items() if k in free}}]
    else:
        starts = _starting_points(log_concentration, y_values, fixed)

    best: dict[str, float] | None = None
    best_rss = math.inf
    message = "did not converge"
    for candidate in starts:
        estimates, message_here = _minimize(log_concentration, y_values, candidate, free)
        if estimates is None:
            message = message_here
            continue
        rss = float(np.sum((hill(log_concentration, **estimates) - y_values) ** 2))
        if rss < best_rss:
            best, best_rss = estimates, rss
    if best is None:
        return _failure(message, n, n_free, free)

    if free == PARAMETER_NAMES and best["top"] < best["bottom"]:
        best = {"bottom": best["top"], "top": best["bottom"], "log_ic50": best["log_ic50"],
                "hill_slope": -best["hill_slope"]}

    residuals = hill(log_concentration, **best) - y_values
    jacobian = _hill_jacobian(log_concentration, **best)[
        :, [PARAMETER_NAMES.index(name) for name in free]
    ]
    if not _is_stationary(jacobian, residuals):
        return _failure("did not converge: stopped away from a stationary point",
                        n, n_free, free)
    dof = n - n_free
    rss = float(residuals @ residuals)
    covariance = _asymptotic_covariance(jacobian, rss, dof)
    if covariance is None:
        return _failure(
            "ambiguous fit: parameters are not identifiable from these data (singular "
            "Jacobian), e.g. no points on one plateau", n, n_free, free)

    t_quantile = float(stats.t.ppf(0.5 + confidence / 2.0, dof))
    standard_errors = dict.fromkeys(PARAMETER_NAMES, math.nan)
    standard_errors.update(zip(free, np.sqrt(np.diag(covariance)).tolist()))
    intervals = {
        name: ((best[name] - t_quantile * se, best[name] + t_quantile * se)
               if math.isfinite(se) else _nan_interval())
        for name, se in standard_errors.items()
    }
    total_sum_of_squares = float(np.sum((y_values - y_values.mean()) ** 2))
    return HillFit(
        log_ic50=best["log_ic50"], top=best["top"], bottom=best["bottom"],
        hill_slope=best["hill_slope"],
        log_ic50_se=standard_errors["log_ic50"], top_se=standard_errors["top"],
        bottom_se=standard_errors["bottom"], hill_slope_se=standard_errors["hill_slope"],
        log_ic50_ci=intervals["log_ic50"], top_ci=intervals["top"],
        bottom_ci=intervals["bottom"], hill_slope_ci=intervals["hill_slope"],
        r_squared=1.0 - rss / total_sum_of_squares, rss=rss, n=n, dof=dof, success=True,
        message="converged", free_parameters=free,
        covariance=tuple(tuple(row) for row in covariance.tolist()),
    )
