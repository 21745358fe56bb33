"""The segmenters' former module, kept so that scripts importing from it still work.

Import from :mod:`artseg` instead (``from artseg import ArtifactSegmenter, PixelSegmenter``);
the code lives in :mod:`artseg.segmenter` (the weak recipe composed), :mod:`artseg.pixel_model`
(the U-Net stage and the strongly supervised segmenter), :mod:`artseg.weak` (the weak stages),
:mod:`artseg.calibration` and :mod:`artseg.training_data`.
"""

from artseg.calibration import Calibration
from artseg.pixel_model import PixelSegmenter, Prediction
from artseg.segmenter import ArtifactSegmenter, load_segmenter, make_segmenter
from artseg.training_data import TrainingData, assign_splits, load_training_data
from artseg.weak import make_pseudo_masks

__all__ = ["ArtifactSegmenter", "Calibration", "PixelSegmenter", "Prediction", "TrainingData", "assign_splits",
           "load_segmenter", "load_training_data", "make_pseudo_masks", "make_segmenter"]
