"""Plain Score-CAM loop, one masked input at a time: the yardstick for `score_cam`."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from artseg.cam._baseline import BaselineSpec, baseline_images
from artseg.cam._layers import evaluation_mode, recorded_output, resolve_target_layer
from artseg.cam._probability import class_probability, predicted_class, resolve_activation


def score_cam_reference(
    model: nn.Module,
    images: torch.Tensor,
    *,
    target_layer: nn.Module | None = None,
    class_idx: int | None = 1,
    baseline: BaselineSpec = None,
    activation: str = "auto",
) -> np.ndarray:
    """Exact float32 Score-CAM written as the reference code's loop.

    Transcribes ``cam/scorecam.py`` of github.com/haofanwang/Score-CAM: for every
    image and every channel, upsample the raw activation map (bilinear,
    ``align_corners=False``), skip it if constant, min-max normalise it, score
    ``baseline + mask * (image - baseline)`` alone in float32, and accumulate
    ``probability * upsampled raw map`` at full resolution in float64; then ReLU and
    min-max normalise. No batching, no autocast, no top-k, no low-resolution sum.
    Slow (one forward per channel and image); meant for tests and benchmarks.

    Parameters
    ----------
    model, images, target_layer, class_idx, baseline, activation
        As in `artseg.cam.score_cam`.

    Returns
    -------
    numpy.ndarray
        float32 ``(N, H, W)`` in ``[0, 1]`` (zeros where the ReLU'd map is constant).
    """
    layer = resolve_target_layer(model, target_layer)
    images = torch.as_tensor(images).float()
    height, width = images.shape[-2:]
    maps = []
    with evaluation_mode(model), torch.no_grad():
        baselines = baseline_images(images, baseline)
        for image, image_baseline in zip(images, baselines):
            with recorded_output(layer) as recorded:
                logits = model(image[None])
            activations = recorded[-1][0].float()
            read_as = resolve_activation(activation, logits.shape[1])
            target = predicted_class(logits, read_as) if class_idx is None else torch.tensor([class_idx])
            saliency = torch.zeros((height, width), dtype=torch.float64)
            for channel_map in activations:
                upsampled = F.interpolate(
                    channel_map[None, None], size=(height, width), mode="bilinear",
                    align_corners=False,
                )
                if upsampled.max() == upsampled.min():
                    continue
                mask = (upsampled - upsampled.min()) / (upsampled.max() - upsampled.min())
                masked = image_baseline + mask * (image - image_baseline)
                probability = class_probability(model(masked), target, read_as)
                saliency += probability.double().item() * upsampled[0, 0].double()
            saliency = torch.relu(saliency)
            low, high = saliency.min(), saliency.max()
            maps.append(
                ((saliency - low) / (high - low)).numpy() if high > low else np.zeros((height, width))
            )
    return np.stack(maps).astype(np.float32)
