"""Speed of the segmentation metrics on one 1080x1080 field (the seven-cell-lines size).

Usage: ``python benchmarks/bench_metrics.py`` (prints a Markdown table; ~20 s).

The object benchmark is 1000 ground-truth objects (jittered squares, some touching)
against a prediction in which every object is shifted and resized, 5% are missed, 100
spurious objects are added and label ids are non-consecutive, so the relabelling and
sparse-overlap paths are exercised.
"""

from __future__ import annotations

import platform
import time
from typing import Callable

import numpy as np

from artseg.metrics import iou_after_size_filter, mean_object_f1, object_scores, pixel_scores, pr_curve
from artseg.calibration import search_cutoff
from artseg.postprocess import remove_small

SHAPE = (1080, 1080)


def best_time(function: Callable[[], object], repeats: int) -> float:
    """Fastest of `repeats` runs, in seconds (least disturbed by other load on the machine)."""
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        timings.append(time.perf_counter() - start)
    return min(timings)


def object_fields(rng: np.random.Generator, n_objects: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """Ground-truth and predicted instance labels with ``n_objects`` true objects."""
    truth = np.zeros(SHAPE, dtype=np.int32)
    pred = np.zeros(SHAPE, dtype=np.int32)
    grid = int(np.ceil(np.sqrt(n_objects)))
    pitch = SHAPE[0] // grid
    pred_ids = rng.permutation(50_000)[: n_objects + 100] * 7 + 3
    for index in range(n_objects):
        row, col = divmod(index, grid)
        top, left = row * pitch + rng.integers(0, 4), col * pitch + rng.integers(0, 4)
        size = rng.integers(pitch - 12, pitch + 1)  # some squares touch their neighbours
        truth[top : top + size, left : left + size] = index + 1
        if rng.random() < 0.95:
            dy, dx, grow = rng.integers(-4, 5, size=3)
            y0, x0 = max(top + dy, 0), max(left + dx, 0)
            pred[y0 : y0 + size + grow, x0 : x0 + size + grow] = pred_ids[index]
    for index in range(100):
        y, x = rng.integers(0, SHAPE[0] - 10, size=2)
        pred[y : y + 8, x : x + 8] = pred_ids[n_objects + index]
    return truth, pred


def main() -> None:
    rng = np.random.default_rng(0)
    truth, pred = object_fields(rng)
    n_true = len(np.unique(truth)) - 1
    n_pred = len(np.unique(pred)) - 1
    prob = np.clip(rng.normal(0.2, 0.15, SHAPE) + 0.6 * (truth > 0), 0, 1).astype(np.float32)
    true_mask = truth > 0

    rows = [
        (f"object_scores, IoU > 0.5 ({n_true} true, {n_pred} predicted objects)", best_time(lambda: object_scores(truth, pred), 10)),
        ("object_scores, IoU > 0.3 (assignment path)", best_time(lambda: object_scores(truth, pred, iou_threshold=0.3), 10)),
        ("mean_object_f1, 9 thresholds 0.50-0.90", best_time(lambda: mean_object_f1(truth, pred), 10)),
        ("pixel_scores, one field", best_time(lambda: pixel_scores(true_mask, pred > 0), 20)),
        ("pr_curve, one float32 field, 109 default cutoffs", best_time(lambda: pr_curve(prob, true_mask), 10)),
        ("remove_small, min_size 500", best_time(lambda: remove_small(prob > 0.5, 500), 10)),
        ("iou_after_size_filter, 6 paper sizes", best_time(lambda: iou_after_size_filter(prob, true_mask, 0.5), 10)),
        ("search_cutoff, min_size 0 (histogram)", best_time(lambda: search_cutoff(prob, true_mask), 5)),
        ("search_cutoff, min_size 500 (coarse + refine, 32 candidates)",
         best_time(lambda: search_cutoff(prob, true_mask, min_size=500, progress=False), 2)),
    ]
    print(f"python {platform.python_version()}, numpy {np.__version__}, {platform.machine()}")
    print("| operation (1080x1080 field) | best time |")
    print("|---|---|")
    for name, seconds in rows:
        print(f"| {name} | {seconds * 1000:.1f} ms |")


if __name__ == "__main__":
    main()
