"""ROUT outlier detection by simulation: false flags on clean curves, power on planted outliers.

Usage: ``python benchmarks/bench_rout.py [--curves 500] [--q 1]`` (prints a Markdown table and the
command; about a minute with the defaults on one core).

Each curve is a plate curve as in ``bench_hill_ci.py`` -- vehicle plus 8 half-log concentrations
1e-10 .. 10^-6.5 M in duplicate (N = 18), Top 1000, Bottom 100, LogIC50 −8, Hill slope −1, Gaussian
noise SD 40 -- fitted with the slope fixed at −1 (K = 3). Outliers are planted at random wells,
displaced by the stated number of noise SDs up or down. Reported per case: the share of curves
with at least one well flagged falsely (Motulsky & Brown 2006 measured 1-3 % at Q = 1 %), false
flags per well, the share of planted outliers found (sensitivity), the false discovery rate among
flagged wells, and the RMS error of LogIC50 from least squares on all wells vs the ROUT refit.
"""

from __future__ import annotations

import argparse
import math
import platform
import sys
import time

import numpy as np

from analysis.hill import fit_hill, hill
from analysis.outliers import rout

CONCENTRATIONS = np.repeat(np.r_[0.0, 10.0 ** np.arange(-10.0, -6.4, 0.5)], 2)
TOP, BOTTOM, LOG_IC50, NOISE = 1000.0, 100.0, -8.0, 40.0
CASES = [  # name, planted outliers, their size in noise SDs
    ("clean (Gaussian scatter only)", 0, 0.0),
    ("1 outlier, 4 SD", 1, 4.0),
    ("1 outlier, 6 SD", 1, 6.0),
    ("1 outlier, 10 SD", 1, 10.0),
    ("2 outliers, 8 SD", 2, 8.0),
    ("3 outliers, 8 SD", 3, 8.0),
]


def simulate(rng: np.random.Generator, n_outliers: int, size: float) -> tuple[np.ndarray, np.ndarray]:
    """One curve's responses and the indices of its planted outliers."""
    log_x = np.full(CONCENTRATIONS.shape, -np.inf)
    log_x[CONCENTRATIONS > 0] = np.log10(CONCENTRATIONS[CONCENTRATIONS > 0])
    y = hill(log_x, BOTTOM, TOP, LOG_IC50, -1.0) + rng.normal(0.0, NOISE, log_x.size)
    planted = rng.choice(y.size, size=n_outliers, replace=False)
    y[planted] += rng.choice([-1.0, 1.0], size=n_outliers) * size * NOISE
    return y, planted


def run_case(n_outliers: int, size: float, curves: int, q: float, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    any_false = false_flags = found = flagged = 0
    errors_all, errors_rout = [], []
    for _ in range(curves):
        y, planted = simulate(rng, n_outliers, size)
        result = rout(CONCENTRATIONS, y, q=q)
        truth = np.zeros(y.size, dtype=bool)
        truth[planted] = True
        false_here = int(np.sum(result.outlier & ~truth))
        any_false += false_here > 0
        false_flags += false_here
        found += int(np.sum(result.outlier & truth))
        flagged += int(result.outlier.sum())
        ordinary = fit_hill(CONCENTRATIONS, y)
        if ordinary.success and result.refit.success:
            errors_all.append(ordinary.log_ic50 - LOG_IC50)
            errors_rout.append(result.refit.log_ic50 - LOG_IC50)
    rms = (lambda e: math.sqrt(float(np.mean(np.square(e)))) if e else math.nan)
    return {
        "curves_with_false_flag": any_false / curves,
        "false_per_well": false_flags / (curves * CONCENTRATIONS.size),
        "sensitivity": found / (curves * n_outliers) if n_outliers else math.nan,
        "fdr": (flagged - found) / flagged if flagged and n_outliers else math.nan,
        "rms_all": rms(errors_all), "rms_rout": rms(errors_rout),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--curves", type=int, default=500, help="simulated curves per case (500)")
    parser.add_argument("--q", type=float, default=1.0, help="ROUT Q in percent (1)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    q = args.q / 100.0
    print(f"command: python {' '.join(sys.argv)}")
    print(f"CPU: {platform.processor() or platform.machine()}, numpy {np.__version__}, Q = {args.q:g} %, "
          f"{args.curves} curves per case, N = {CONCENTRATIONS.size} wells per curve\n")
    print("| case | curves with a false flag | false flags per well | sensitivity | FDR of flags "
          "| LogIC50 RMS error, all wells | LogIC50 RMS error, ROUT refit | s |")
    print("|---|---|---|---|---|---|---|---|")
    for index, (name, n_outliers, size) in enumerate(CASES):
        start = time.perf_counter()
        r = run_case(n_outliers, size, args.curves, q, args.seed + index)
        sensitivity, fdr = ("—" if math.isnan(r[k]) else f"{r[k]:.3f}" for k in ("sensitivity", "fdr"))
        print(f"| {name} | {r['curves_with_false_flag']:.3f} | {r['false_per_well']:.4f} | {sensitivity} "
              f"| {fdr} | {r['rms_all']:.3f} | {r['rms_rout']:.3f} | {time.perf_counter() - start:.0f} |")


if __name__ == "__main__":
    main()
