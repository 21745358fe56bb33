"""Speed of dose-response fitting and per-field intensity quantification.

Usage: ``python benchmarks/bench_hill_quantify.py`` (prints a Markdown table; a few seconds).
"""

from __future__ import annotations

import platform
import time
from typing import Callable

import numpy as np
import pandas as pd

from analysis.hill import fit_hill, hill
from analysis.quantify import aggregate_wells, field_intensities


def best_time(function: Callable[[], object], repeats: int) -> float:
    """Fastest of `repeats` runs, in seconds (least disturbed by other load on the machine)."""
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        timings.append(time.perf_counter() - start)
    return min(timings)


def plate_curve(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    concentrations = np.r_[0.0, 10.0 ** np.arange(-10.0, -4.5, 0.5)]
    dose = np.repeat(concentrations, 2)
    log_dose = np.full(dose.shape, -np.inf)
    log_dose[dose > 0] = np.log10(dose[dose > 0])
    return dose, hill(log_dose, 200.0, 1000.0, -7.3, -1.0) + rng.normal(0, 40, dose.size)


def main() -> None:
    rng = np.random.default_rng(0)
    dose, response = plate_curve(rng)
    shape = (904, 1224)  # one ArtSeg-CHO-M4R field
    fluorescence = rng.integers(0, 4096, shape).astype(np.uint16)
    cells = rng.random(shape) < 0.3
    artifact = np.zeros(shape, dtype=bool)
    artifact[100:300, 200:500] = True
    n_rows = 100_000
    field_rows = pd.DataFrame({
        "experiment": rng.integers(0, 50, n_rows).astype(str),
        "ligand": "L", "concentration": rng.integers(0, 12, n_rows) * 1e-8,
        "well": rng.integers(0, 96, n_rows).astype(str),
        "mode": rng.choice(["none", "manual", "model"], n_rows),
        "cell_mean": rng.random(n_rows), "background_mean": rng.random(n_rows),
    })

    measurements = [
        ("fit_hill, 24 points, slope fixed -1 (4 starts)",
         best_time(lambda: fit_hill(dose, response), 20)),
        ("fit_hill, 24 points, slope free (8 starts)",
         best_time(lambda: fit_hill(dose, response, hill_slope=None), 20)),
        ("field_intensities, 1224x904 uint16, artifact mask",
         best_time(lambda: field_intensities(fluorescence, cells, artifact), 10)),
        ("field_intensities, same, background_margin=3",
         best_time(lambda: field_intensities(fluorescence, cells, artifact,
                                             background_margin=3), 10)),
        ("aggregate_wells, 100 000 field rows",
         best_time(lambda: aggregate_wells(field_rows), 3)),
    ]
    print(f"CPU: {platform.processor() or platform.machine()}, numpy {np.__version__}")
    print("| operation | best time |")
    print("|---|---|")
    for name, seconds in measurements:
        print(f"| {name} | {seconds * 1e3:.1f} ms |")


if __name__ == "__main__":
    main()
