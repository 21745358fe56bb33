"""Speed and quality of the synthetic generator (artseg.synth).

Speed: one field per preset at 256 x 256 and at the paper's size (CPU time of this process
and wall time, best of N), and the full default CHO-M4R plate (720 fields at 256 x 256)
written to disk. Quality: LogIC50 error of the default plate fitted with and without the
true artifact masks (true cell labels, well means of cell minus background, Hill slope -1),
and the cross-validated accuracy of a logistic regression on global intensity statistics.

Usage: ``python benchmarks/bench_synth.py [--repeats 5] [--skip-plate] [--skip-quality]``
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np
from scipy import optimize, stats

from artseg.synth import PRESETS, generate_plate, plate_design, simulate_plate, synthesize_field


def _timed(function, repeats):
    best_cpu = best_wall = np.inf
    for _ in range(repeats):
        cpu, wall = time.process_time(), time.perf_counter()
        function()
        best_cpu = min(best_cpu, time.process_time() - cpu)
        best_wall = min(best_wall, time.perf_counter() - wall)
    return best_cpu, best_wall


def field_speed(repeats):
    rows = []
    for name, preset in PRESETS.items():
        for shape in ((256, 256), preset.paper_shape):
            n = repeats if shape == (256, 256) else max(1, repeats // 3)
            seeds = iter(range(10_000))
            cpu, wall = _timed(lambda: synthesize_field(np.random.default_rng(next(seeds)), preset, shape, True), n)
            rows.append((name, f"{shape[0]}x{shape[1]}", cpu, wall))
    return rows


def plate_speed():
    with tempfile.TemporaryDirectory() as folder:
        cpu, wall = time.process_time(), time.perf_counter()
        generate_plate(folder, seed=0, progress=False)
        return time.process_time() - cpu, time.perf_counter() - wall


def _hill(x, bottom, top, log_ic50):
    return bottom + (top - bottom) / (1 + 10 ** (x - log_ic50))


def plate_quality(shape=(256, 256)):
    design, truth = plate_design(0)
    sums = []
    for _, field in simulate_plate(design, truth, seed=0, shape=shape):
        fluorescence, cells, keep = field.fluorescence.astype(float), field.cells > 0, ~field.artifact_mask
        regions = (cells, ~cells, cells & keep, ~cells & keep)
        sums.append([value for region in regions for value in (fluorescence[region].sum(), region.sum())])
    columns = ["c", "cn", "b", "bn", "ck", "ckn", "bk", "bkn"]
    design[columns] = np.array(sums)
    result = {"naive": [], "masked": [], "naive_r2": [], "masked_r2": [], "naive_vs_masked": []}
    for experiment, rows in design.groupby("experiment"):
        wells = rows.groupby(["well", "concentration"])[columns].sum().reset_index()
        specific = {
            "naive": (wells["c"] / wells["cn"] - wells["b"] / wells["bn"]).to_numpy(),
            "masked": (wells["ck"] / wells["ckn"] - wells["bk"] / wells["bkn"]).to_numpy(),
        }
        positive = wells["concentration"] > 0
        log_x = np.where(positive, np.log10(wells["concentration"].where(positive, 1.0)), -14.0)
        fitted = {}
        for mode, y in specific.items():
            params, _ = optimize.curve_fit(_hill, log_x, y, p0=[y.min(), y.max(), np.median(log_x[positive])], maxfev=20000)
            residual = y - _hill(log_x, *params)
            result[mode].append(abs(params[2] - truth[experiment].log_ic50))
            result[mode + "_r2"].append(1 - residual @ residual / np.sum((y - y.mean()) ** 2))
            fitted[mode] = params[2]
        result["naive_vs_masked"].append(abs(fitted["naive"] - fitted["masked"]))
    return {key: float(np.mean(values)) for key, values in result.items()}


def _features(image):
    values = image.astype(np.float64).ravel()
    noise = np.median(np.abs(np.diff(image.astype(np.float64), axis=1))) / 0.954
    return np.array([values.mean(), values.std(), *np.percentile(values, [1, 5, 50, 95, 99]), noise, stats.skew(values), stats.kurtosis(values)])


def global_cue_accuracy(preset, n_per_class=150, shape=(256, 256)):
    features, labels = [], []
    for index in range(2 * n_per_class):
        field = synthesize_field(np.random.default_rng([77, index]), preset, shape, bool(index % 2))
        features.append(_features(field.brightfield))
        labels.append(index % 2)
    features, labels = np.array(features), np.array(labels)
    order = np.random.default_rng(0).permutation(len(labels))
    correct = 0
    for test in np.array_split(order, 5):
        train = np.setdiff1d(order, test)
        mean, std = features[train].mean(0), features[train].std(0) + 1e-12
        x_train, x_test = (features[train] - mean) / std, (features[test] - mean) / std
        x_train, x_test = np.c_[np.ones(len(train)), x_train], np.c_[np.ones(len(test)), x_test]
        y = labels[train]

        def loss(w):
            z = x_train @ w
            return np.sum(np.logaddexp(0, z) - y * z) + w[1:] @ w[1:]

        weights = optimize.minimize(loss, np.zeros(x_train.shape[1]), method="L-BFGS-B").x
        correct += np.sum(((x_test @ weights) > 0) == labels[test])
    return correct / len(labels)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-plate", action="store_true")
    parser.add_argument("--skip-quality", action="store_true")
    args = parser.parse_args(argv)
    print(f"python {sys.version.split()[0]}, numpy {np.__version__}, load average {os.getloadavg()[0]:.1f}")
    print("| preset | field | CPU time | wall time |\n|---|---|---|---|")
    for name, shape, cpu, wall in field_speed(args.repeats):
        print(f"| {name} | {shape} | {cpu * 1e3:.0f} ms | {wall * 1e3:.0f} ms |")
    if not args.skip_plate:
        cpu, wall = plate_speed()
        print(f"| cho_m4r plate, 720 fields + files | 256x256 | {cpu:.1f} s | {wall:.1f} s |")
    if not args.skip_quality:
        quality = plate_quality()
        print(
            "default plate, mean over 10 experiments: |LogIC50 - truth| naive {naive:.3f}, masked {masked:.3f}; "
            "|naive - masked| {naive_vs_masked:.3f}; R^2 naive {naive_r2:.3f}, masked {masked_r2:.3f}".format(**quality)
        )
        for preset in ("seven_cell_lines", "lncap", "cho_m4r"):
            print(f"global-statistics logistic regression, 5-fold CV accuracy, {preset}: {global_cue_accuracy(preset):.3f}")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
