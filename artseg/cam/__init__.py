"""Score-CAM saliency maps: which pixels made the classifier say "artifact".

Public API
----------
score_cam
    Batched Score-CAM: a spread sample of 128 channels by default (``top_k=None``: all,
    exact), baselines, bf16 scoring.
score_cam_reference
    The plain float32 one-mask-at-a-time loop, for checking `score_cam`.
resolve_target_layer
    The rule that picks the explained layer when none is given.
combine_channel_maps
    Weighted channel sum -> ReLU -> [0, 1], the last step of Score-CAM.
spread_channels, nearest_scored_weights, AUTO_CHANNELS
    The default channel selection: which channels are scored, and the weight an unscored
    channel borrows from its nearest scored one.

See ``docs/score_cam.md`` for the exact algorithm and how it differs from other libraries.
"""

from artseg.cam._layers import resolve_target_layer
from artseg.cam._reference import score_cam_reference
from artseg.cam._score_cam import AUTO_CHANNELS, combine_channel_maps, nearest_scored_weights, score_cam, spread_channels

__all__ = ["AUTO_CHANNELS", "combine_channel_maps", "nearest_scored_weights", "resolve_target_layer", "score_cam",
           "score_cam_reference", "spread_channels"]
