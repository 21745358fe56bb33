"""The paper's model comparison (sections 2.3.2-2.3.3, section 3.2, Fig. 3, Supplementary Tables 1-4).

Six models behind one protocol (:class:`Detector`: ``fit(manifest)``, ``predict(image)``,
``save`` / ``load`` in the :mod:`artseg.model_io` folder format), built by name
(:func:`build_detectors`), each tuned on the ``val`` split and scored on ``test``
(:func:`run_benchmark`, resumable), with the paper's tables (:mod:`artseg.comparison.tables`)
written by :func:`write_outputs`.

Modules: ``detector`` (the protocol), ``segmenters`` (U-Net, ScoreCAM-U-Net, ScoreCAM),
``baselines`` (AE, PaDiM, PatchSVDD), ``registry`` (names, presets, building), ``splits``
(reading a split), ``protocol`` (cut-off choice, size filters, scoring), ``tables``,
``runner`` (the resumable run), ``outputs`` (the files of ``artseg benchmark``).
"""

from artseg.comparison.baselines import BASELINE_PRESETS, AnomalyBaseline, BaselineSettings
from artseg.comparison.detector import Detector, DetectorOutput, predict_all
from artseg.comparison.outputs import write_outputs
from artseg.comparison.protocol import (
    PAPER_MIN_OBJECT_SIZE,
    ModelResult,
    choose_cutoff,
    evaluate_model,
    object_size_settings,
    paper_min_object_size,
    pick_examples,
    scale_object_size,
)
from artseg.comparison.registry import (
    BASELINE_NAMES,
    DETECTOR_NAMES,
    baseline_settings,
    build_detectors,
    detector_class,
    detector_slug,
)
from artseg.comparison.runner import BenchmarkResult, run_benchmark
from artseg.comparison.segmenters import SharedClassifier
from artseg.comparison.splits import SplitData, load_split
from artseg.comparison.tables import (
    TABLE_ROWS,
    comparison_markdown,
    comparison_table,
    markdown_table,
    scores_table,
    size_cutoff_markdown,
    size_cutoff_table,
)

__all__ = [
    "BASELINE_NAMES",
    "BASELINE_PRESETS",
    "DETECTOR_NAMES",
    "PAPER_MIN_OBJECT_SIZE",
    "TABLE_ROWS",
    "AnomalyBaseline",
    "BaselineSettings",
    "BenchmarkResult",
    "Detector",
    "DetectorOutput",
    "ModelResult",
    "SharedClassifier",
    "SplitData",
    "baseline_settings",
    "build_detectors",
    "choose_cutoff",
    "comparison_markdown",
    "comparison_table",
    "detector_class",
    "detector_slug",
    "evaluate_model",
    "load_split",
    "markdown_table",
    "object_size_settings",
    "paper_min_object_size",
    "pick_examples",
    "predict_all",
    "run_benchmark",
    "scale_object_size",
    "scores_table",
    "size_cutoff_markdown",
    "size_cutoff_table",
    "write_outputs",
]
