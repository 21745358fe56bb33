"""Pixel-, object- and image-level scores of a segmentation (paper Box 1).

Every function takes arrays and returns numbers or tables. Scores come from counts of
true positives (TP), false positives (FP) and false negatives (FN):

- precision = TP / (TP + FP), recall = TP / (TP + FN),
- F1 = 2 P R / (P + R) = 2 TP / (2 TP + FP + FN), IoU = TP / (TP + FP + FN).

Empty cases never divide by zero: with nothing to find and nothing found (TP = FP = FN = 0)
every score is 1.0. Otherwise an undefined ratio is 0.0: precision when nothing was
predicted but something was there to find, recall when something was predicted but
there was nothing to find. With these choices both F1 formulas above always agree.

Many images are scored *pooled*: counts are summed over all images, then turned into
scores. :func:`pixel_scores_per_image` gives the per-image scores and their mean instead.

``scores`` turns counts into scores, ``pixels`` scores pixels and probability maps, ``objects``
matches objects and calls images.
"""

from artseg.metrics.objects import (
    DEFAULT_IOU_THRESHOLDS,
    image_f1,
    image_scores,
    matched_predictions,
    mean_object_f1,
    object_scores,
    object_scores_table,
)
from artseg.metrics.pixels import (
    DEFAULT_CUTOFFS,
    PAPER_MIN_SIZES,
    area_under_pr_curve,
    iou_after_size_filter,
    size_filter_counts,
    pixel_scores,
    pixel_scores_per_image,
    pr_auc,
    pr_curve,
)
from artseg.metrics.scores import SCORE_NAMES, confusion_scores

__all__ = [
    "DEFAULT_CUTOFFS",
    "PAPER_MIN_SIZES",
    "matched_predictions",
    "DEFAULT_IOU_THRESHOLDS",
    "SCORE_NAMES",
    "area_under_pr_curve",
    "confusion_scores",
    "image_f1",
    "image_scores",
    "iou_after_size_filter",
    "size_filter_counts",
    "mean_object_f1",
    "object_scores",
    "object_scores_table",
    "pixel_scores",
    "pixel_scores_per_image",
    "pr_auc",
    "pr_curve",
]
