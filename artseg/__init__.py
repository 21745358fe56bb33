"""ArtSeg: find artifacts in brightfield microscopy images from image-level labels.

Implements ScoreCAM-U-Net (Ali, Hollo, Laasfeld et al., "ArtSeg: Rapid Artifact
Segmentation and Removal in Brightfield Cell Microscopy Images") and the paper's
comparison models, plus the tools to measure artifacts' effect on downstream analyses.
"""

__version__ = "0.1.0"
