"""ArtSeg: find artifacts in brightfield microscopy images from image-level labels.

Implements ScoreCAM-U-Net (Ali, Hollo, Laasfeld et al., "ArtSeg: Rapid Artifact
Segmentation and Removal in Brightfield Cell Microscopy Images") and the paper's
comparison models, plus the tools to measure artifacts' effect on downstream analyses.

The public names (imported on first use, so ``artseg --help`` and the file readers need no torch):
:class:`ArtifactSegmenter` (weakly supervised ScoreCAM-U-Net), :class:`PixelSegmenter`
(strongly supervised U-Net), :func:`load_segmenter`, :func:`make_segmenter`,
:func:`load_config`, :func:`score_cam`.
"""

__version__ = "0.1.0"

_PUBLIC = {
    "ArtifactSegmenter": "artseg.segmenter",
    "PixelSegmenter": "artseg.pixel_model",
    "load_segmenter": "artseg.segmenter",
    "make_segmenter": "artseg.segmenter",
    "load_config": "artseg.config",
    "score_cam": "artseg.cam",
}
__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str):
    if name in _PUBLIC:
        import importlib

        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'artseg' has no attribute {name!r}")
