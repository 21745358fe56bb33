"""Coverage of the LogIC50 confidence intervals (profile likelihood vs Wald) by simulation.

Usage: ``python benchmarks/bench_hill_ci.py [--seeds 200]`` (prints a Markdown table; about five
minutes with the default 200 seeds per case on one core).

Each case simulates a plate curve -- vehicle plus 8 half-log concentrations 1e-10 .. 10^-6.5 M in
duplicate, Top 1000, Bottom 100, Gaussian noise SD 40 -- fits it with :func:`fit_hill` and asks
:func:`assess_fit` for the 95 % interval both ways. Coverage is the share of intervals that
contain the true LogIC50, over the seeds whose fit succeeded (a fit flagged
``no_displacement`` or not converged gets no interval). A flat "compound" (no displacement)
measures how often the F test wrongly calls displacement.
"""

from __future__ import annotations

import argparse
import math
import platform
import time

import numpy as np

from analysis.fit_quality import assess_fit
from analysis.hill import fit_hill, hill

CONCENTRATIONS = np.repeat(np.r_[0.0, 10.0 ** np.arange(-10.0, -6.4, 0.5)], 2)
TOP, BOTTOM, NOISE = 1000.0, 100.0, 40.0
CASES = [
    # name, true LogIC50 (None = flat), true slope, fitted slope (None = free)
    ("well-posed, slope fixed -1", -8.0, -1.0, -1.0),
    ("well-posed, slope free", -8.0, -1.0, None),
    ("half-complete (LogIC50 at the top dose), slope fixed -1", -6.5, -1.0, -1.0),
    ("incomplete (LogIC50 0.5 above top dose), slope fixed -1", -6.0, -1.0, -1.0),
    ("incomplete (LogIC50 0.5 above top dose), slope free", -6.0, -1.0, None),
    ("flat (no displacement), slope fixed -1", None, -1.0, -1.0),
]


def simulate(log_ic50: float | None, slope: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    log_x = np.full(CONCENTRATIONS.shape, -np.inf)
    log_x[CONCENTRATIONS > 0] = np.log10(CONCENTRATIONS[CONCENTRATIONS > 0])
    clean = np.full(log_x.shape, TOP) if log_ic50 is None else hill(log_x, BOTTOM, TOP, log_ic50, slope)
    return clean + rng.normal(0.0, NOISE, log_x.size)


def run_case(log_ic50: float | None, slope: float, fitted_slope: float | None, seeds: int) -> dict:
    counts = {"fitted": 0, "no_displacement": 0, "not_converged": 0, "ambiguous": 0, "outside_range": 0}
    hits = {"profile": 0, "wald": 0}
    widths = {"profile": [], "wald": []}
    unbounded = 0
    for seed in range(seeds):
        y = simulate(log_ic50, slope, seed)
        fit = fit_hill(CONCENTRATIONS, y, hill_slope=fitted_slope)
        profile = assess_fit(CONCENTRATIONS, y, fit, ci="profile", hill_slope=fitted_slope)
        wald = assess_fit(CONCENTRATIONS, y, fit, ci="wald", hill_slope=fitted_slope)
        for flag in profile.flags:
            counts[flag] += 1
        if not profile.success:
            continue
        counts["fitted"] += 1
        unbounded += not (math.isfinite(profile.ci_low) and math.isfinite(profile.ci_high))
        for name, quality in (("profile", profile), ("wald", wald)):
            if log_ic50 is not None:
                hits[name] += quality.ci_low <= log_ic50 <= quality.ci_high
            widths[name].append(quality.ci_high - quality.ci_low)
    fitted = max(counts["fitted"], 1)
    return {
        **counts, "seeds": seeds, "unbounded": unbounded,
        "coverage_profile": hits["profile"] / fitted, "coverage_wald": hits["wald"] / fitted,
        "median_width_profile": float(np.median(widths["profile"])) if widths["profile"] else math.nan,
        "median_width_wald": float(np.median(widths["wald"])) if widths["wald"] else math.nan,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=200, help="noise seeds per case (default 200)")
    seeds = parser.parse_args().seeds
    print(f"CPU: {platform.processor() or platform.machine()}, numpy {np.__version__}, {seeds} seeds per case")
    print("| case | fitted / seeds | 95% coverage, profile | 95% coverage, Wald | median width, profile "
          "| median width, Wald | profile unbounded | flagged no_displacement | not_converged | ambiguous "
          "| outside_range | time |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, log_ic50, slope, fitted_slope in CASES:
        start = time.perf_counter()
        r = run_case(log_ic50, slope, fitted_slope, seeds)
        elapsed = time.perf_counter() - start
        coverage = ("n/a", "n/a") if log_ic50 is None else (f"{r['coverage_profile']:.3f}",
                                                             f"{r['coverage_wald']:.3f}")
        print(f"| {name} | {r['fitted']} / {r['seeds']} | {coverage[0]} | {coverage[1]} "
              f"| {r['median_width_profile']:.3f} | {r['median_width_wald']:.3f} | {r['unbounded']} "
              f"| {r['no_displacement']} | {r['not_converged']} | {r['ambiguous']} | {r['outside_range']} "
              f"| {elapsed:.0f} s |")


if __name__ == "__main__":
    main()
