"""Binding constants from displacement IC50s: the Cheng-Prusoff equation.

Valid for a competitor that displaces the fluorescent tracer *competitively* (both bind the same
site, mutually exclusively) with the binding *at equilibrium*, the tracer concentration known and
its Kd measured independently (e.g. by saturation binding). For allosteric or non-equilibrium
displacement the IC50 is not convertible this way.
"""

from __future__ import annotations

import math

import numpy as np

from artseg.errors import ArtsegInputError

__all__ = ["cheng_prusoff_ki", "validate_tracer"]


def validate_tracer(tracer_concentration: float | None, tracer_kd: float | None) -> None:
    """Check a tracer specification (molar); one-line :class:`ArtsegInputError` if unusable.

    Both or neither must be given; the concentration must be >= 0 and Kd > 0, both finite.
    """
    if tracer_concentration is None and tracer_kd is None:
        return
    if tracer_kd is None:
        raise ArtsegInputError("--tracer-concentration needs --tracer-kd (the tracer's Kd, molar) "
                               "for Cheng-Prusoff Ki")
    if tracer_concentration is None:
        raise ArtsegInputError("--tracer-kd needs --tracer-concentration (molar) for Cheng-Prusoff Ki")
    if not (math.isfinite(tracer_kd) and tracer_kd > 0):
        raise ArtsegInputError(f"--tracer-kd: expected a positive molar Kd, got {tracer_kd:g}")
    if not (math.isfinite(tracer_concentration) and tracer_concentration >= 0):
        raise ArtsegInputError(f"--tracer-concentration: expected a non-negative molar concentration, "
                               f"got {tracer_concentration:g}")


def cheng_prusoff_ki(log_ic50: np.ndarray | float, tracer_concentration: float,
                     tracer_kd: float) -> np.ndarray:
    """log10 Ki from log10 IC50 by Cheng-Prusoff, ``Ki = IC50 / (1 + [L] / Kd)``.

    Parameters
    ----------
    log_ic50 : array_like
        log10 IC50 (molar); NaN stays NaN.
    tracer_concentration, tracer_kd : float
        Tracer concentration [L] and its dissociation constant Kd, molar (see
        :func:`validate_tracer`).

    Returns
    -------
    numpy.ndarray
        log10 Ki. Working in logs keeps the shift exact for any IC50.

    Examples
    --------
    >>> float(cheng_prusoff_ki(-7.0, tracer_concentration=1e-9, tracer_kd=1e-9))  # Ki = IC50 / 2
    -7.301029995663981
    """
    return np.asarray(log_ic50, dtype=np.float64) - math.log10(1.0 + tracer_concentration / tracer_kd)
