"""Batched Score-CAM (Wang et al. 2020) for any torch classifier returning logits."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from artseg.cam._baseline import BaselineSpec, baseline_images
from artseg.cam._layers import evaluation_mode, recorded_output, resolve_target_layer
from artseg.cam._probability import (
    check_class_index,
    class_probability,
    predicted_class,
    resolve_activation,
)
from artseg.errors import ArtsegInputError

# Channels scored by top_k="auto". On a briefly trained ResNet50 (2048 last-stage channels,
# 128x128 inputs) 128 channels spread over the peak-activation ranking reproduce exact
# Score-CAM at Pearson r >= 0.9998 (pseudo-mask IoU >= 0.996) for 1/16 of the masked forward
# passes, where the 128 highest-peak channels reach r 0.998 but IoU 0.87, below the unscored
# activation sum (benchmarks/bench_scorecam.py, benchmarks/RESULTS.md "Score-CAM speed").
AUTO_CHANNELS = 128


def score_cam(
    model: nn.Module,
    images: torch.Tensor | np.ndarray,
    *,
    target_layer: nn.Module | None = None,
    class_idx: int | None = 1,
    batch_size: int = 64,
    top_k: int | str | None = "auto",
    baseline: BaselineSpec = None,
    precision: str = "auto",
    activation: str = "auto",
    progress: bool = False,
) -> np.ndarray:
    """Score-CAM saliency maps of one class, one map per input image.

    Parameters
    ----------
    model : torch.nn.Module
        Classifier returning logits ``(N, L)``. Put in eval mode for the call; the
        train/eval flag of every module is restored afterwards.
    images : torch.Tensor or numpy.ndarray
        ``(N, C, H, W)`` float images, already normalised as the model expects.
    target_layer : torch.nn.Module, optional
        Submodule whose output ``(N, K, h, w)`` holds the activation maps. ``None``:
        ``model.last_stage`` if present, else the last direct child containing an
        ``nn.Conv2d`` (see `resolve_target_layer`).
    class_idx : int or None, default 1
        Class explained. For a single-logit model 1 is the artifact probability
        ``sigmoid(z)`` and 0 its complement; for several logits, the softmax index.
        ``None`` explains each image's predicted class.
    batch_size : int, default 64
        Masked inputs scored per forward pass (also images per pass when reading
        activations). Changes speed and memory, not the result.
    top_k : "auto", int or None, default "auto"
        Which channels are scored (one masked forward pass each); every other
        non-constant channel takes the weight of the scored channel whose normalised
        map (its mask) is closest. ``"auto"``: 128 non-constant channels spread
        evenly over the ranking by peak absolute activation (the strongest, then
        every ``K/128``-th), a sample of every kind of mask; every channel when at
        most 128 vary (ArtSeg's fast ResNet18 has 128), so exact there. On
        ResNet50's 2048 channels: 1/16 of the forward passes at Pearson r >= 0.9998
        against exact (``benchmarks/RESULTS.md``). An int: the `top_k` channels
        with the highest peak absolute activation. ``None`` (or ``top_k >= K``):
        every channel, exact Score-CAM.
    baseline : None, float, {"mean", "background"} or torch.Tensor
        Value a masked-out pixel takes: masked input = ``baseline + mask * (image -
        baseline)``. ``None`` is the original zero baseline (``mask * image``);
        ``"background"`` (per-image median) makes masked-out regions look like empty
        background instead of dark, which matters when artifacts are dark.
    precision : {"auto", "bf16", "fp32"}, default "auto"
        Arithmetic of the masked-input forward passes (the cost centre). ``"auto"``
        uses bfloat16 autocast where the CPU has native bf16, float32 elsewhere (e.g. on
        AVX2-only CPUs), in the layout `artseg.hardware.inference_memory_format` chooses.
        Activations, probabilities and the weighted sum are always float32/float64.
    activation : {"auto", "softmax", "sigmoid"}, default "auto"
        How logits become probabilities: ``auto`` = sigmoid for one logit, softmax
        for several; ``sigmoid`` with several logits = independent (multi-label) classes.
    progress : bool, default False
        Show a tqdm bar over the masked forward passes.

    Returns
    -------
    numpy.ndarray
        float32 ``(N, H, W)`` maps in ``[0, 1]``; an image whose map is constant
        after the ReLU (no positive evidence) gets all zeros.

    Raises
    ------
    ArtsegInputError
        Malformed images, a target layer outside the model or without a 4-D output,
        a class index the model does not have, or invalid options.

    See Also
    --------
    artseg.cam.score_cam_reference : the plain one-mask-at-a-time loop this agrees with.

    Notes
    -----
    Follows the reference implementation (github.com/haofanwang/Score-CAM,
    ``cam/scorecam.py``). With activations :math:`A_k` of the target layer for the
    image :math:`X`, :math:`U_k` the bilinear upsampling of :math:`A_k` to the input
    size (``align_corners=False``) and :math:`M_k` its min-max normalisation
    (channels whose :math:`U_k` is constant are skipped, weight 0):

    .. math::

        w_k = p_c\\big(b + M_k \\odot (X - b)\\big), \\qquad
        L = \\mathrm{minmax}\\Big(\\mathrm{ReLU}\\big(\\textstyle\\sum_k w_k U_k\\big)\\Big)

    where :math:`p_c` is the softmax (or sigmoid) probability of class :math:`c` and
    :math:`b` the baseline (0 in the original). The raw upsampled maps
    :math:`U_k`, not the normalised masks, are summed. Because bilinear upsampling
    is linear, :math:`\\sum_k w_k U_k = U(\\sum_k w_k A_k)`: the sum is formed at
    the activation resolution in float64 and upsampled once. This is the ArtSeg
    paper's Section 2.2 (Ali et al.) with ResNet's last stage as target layer.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU()),
    ...                     nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 1))
    >>> maps = score_cam(net, torch.rand(2, 1, 32, 32), precision="fp32")
    >>> maps.shape, float(maps.min()) >= 0.0, float(maps.max()) <= 1.0
    ((2, 32, 32), True, True)
    """
    from artseg.hardware import inference_layout, inference_memory_format
    from artseg.train import autocast_context, resolve_precision

    image_batch = _checked_images(images)
    _check_positive_int("batch_size", batch_size)
    if top_k is not None and not (isinstance(top_k, str) and top_k == "auto"):
        _check_positive_int("top_k", top_k, "'auto', None or a positive integer")
    layer = resolve_target_layer(model, target_layer)
    device = _model_device(model)
    image_batch = image_batch.to(device)
    forward_precision = resolve_precision(precision, device.type)
    memory_format = inference_memory_format(forward_precision, device.type)

    with evaluation_mode(model), torch.inference_mode(), inference_layout(model, memory_format):
        activations, logits = _activations_and_logits(model, layer, image_batch, batch_size, memory_format)
        read_as = resolve_activation(activation, logits.shape[1])
        check_class_index(class_idx, logits.shape[1], read_as)
        if class_idx is None:
            targets = predicted_class(logits, read_as)
        else:
            targets = torch.full((len(image_batch),), class_idx, dtype=torch.long)
        baselines = baseline_images(image_batch, baseline)
        channel_sets = [_ranked_channels(a, top_k) for a in activations]
        total = sum(len(channels) for channels in channel_sets)
        maps = []
        with tqdm(total=total, desc="Score-CAM", unit="mask", disable=not progress) as bar:
            for i, channels in enumerate(channel_sets):
                score_masked = partial(
                    _masked_class_probability, model=model, target=int(targets[i]),
                    read_as=read_as, memory_format=memory_format,
                    precision_context=partial(autocast_context, forward_precision, device.type),
                )
                weights = _channel_weights(
                    score_masked, image_batch[i], baselines[i], activations[i],
                    channels, batch_size, bar,
                )
                maps.append(combine_channel_maps(activations[i], weights, image_batch.shape[-2:]))
    return np.stack(maps).astype(np.float32)


def combine_channel_maps(
    activations: torch.Tensor, weights: torch.Tensor, size: tuple[int, int]
) -> np.ndarray:
    """Score-CAM's final map: ``minmax(ReLU(sum_k weights_k * upsample(activations_k)))``.

    Parameters
    ----------
    activations : torch.Tensor
        ``(K, h, w)`` activation maps of one image.
    weights : torch.Tensor
        ``(K,)`` channel weights.
    size : tuple of int
        Output ``(H, W)``.

    Returns
    -------
    numpy.ndarray
        float64 ``(H, W)`` in ``[0, 1]``; all zeros when the ReLU'd map is constant.

    Notes
    -----
    Bilinear upsampling is linear, so the weighted sum is taken at ``(h, w)`` in
    float64 and upsampled once instead of upsampling all `K` maps.
    """
    low_res = torch.einsum("k,khw->hw", weights.double(), activations.double())
    upsampled = F.interpolate(
        low_res[None, None], size=tuple(size), mode="bilinear", align_corners=False
    )[0, 0]
    saliency = torch.relu(upsampled)
    low, high = saliency.min(), saliency.max()
    if high <= low:
        return np.zeros(tuple(size))
    return ((saliency - low) / (high - low)).cpu().numpy()


def _masked_class_probability(
    masked: torch.Tensor,
    *,
    model: nn.Module,
    target: int,
    read_as: str,
    memory_format: torch.memory_format,
    precision_context: Callable[[], AbstractContextManager],
) -> torch.Tensor:
    """Probability of class `target` for each masked input ``(B, C, H, W)``."""
    with precision_context():
        logits = model(masked.contiguous(memory_format=memory_format))
    return class_probability(logits, torch.full((len(masked),), target), read_as)


def _channel_weights(
    score_masked: Callable[[torch.Tensor], torch.Tensor],
    image: torch.Tensor,
    baseline: torch.Tensor,
    activations: torch.Tensor,
    channels: torch.Tensor,
    batch_size: int,
    bar: tqdm,
) -> torch.Tensor:
    """Score-CAM weight of every channel of one image (``(K,)`` float64).

    Channels in `channels` are scored; constant channels get 0; the remaining
    (unscored, top-k) channels get the weight of the scored channel whose mask is
    closest (`nearest_scored_weights`).
    """
    n_channels = activations.shape[0]
    size = image.shape[-2:]
    weights = torch.zeros(n_channels, dtype=torch.float64)
    scored = torch.zeros(n_channels, dtype=torch.bool)
    difference = image - baseline
    for start in range(0, len(channels), batch_size):
        chunk = channels[start:start + batch_size]
        upsampled = F.interpolate(
            activations[chunk, None], size=tuple(size), mode="bilinear", align_corners=False
        )
        low = upsampled.amin(dim=(2, 3), keepdim=True)
        high = upsampled.amax(dim=(2, 3), keepdim=True)
        varying = (high > low).flatten()
        if varying.any():
            masks = (upsampled[varying] - low[varying]) / (high[varying] - low[varying])
            masked = baseline + masks * difference
            weights[chunk[varying]] = score_masked(masked).double().cpu()
            scored[chunk[varying]] = True
        bar.update(len(chunk))
    unscored = ~scored
    unscored[channels] = False
    if unscored.any() and scored.any():
        weights[unscored] = nearest_scored_weights(activations, weights, scored, unscored)
    return weights


def nearest_scored_weights(
    activations: torch.Tensor, weights: torch.Tensor, scored: torch.Tensor, unscored: torch.Tensor
) -> torch.Tensor:
    """Weights for `unscored` channels, each copied from the scored channel with the closest mask.

    A channel's mask is its min-max normalised map, so channels whose normalised maps
    are close (Euclidean distance at activation resolution) mask the input alike and
    get alike scores. Constant unscored channels get 0, as when scored.
    """
    flat = activations.flatten(1).float()
    low, high = flat.amin(dim=1, keepdim=True), flat.amax(dim=1, keepdim=True)
    varying = (high > low).flatten().cpu()
    shapes = (flat - low) / torch.where(high > low, high - low, 1.0)
    nearest = torch.cdist(shapes[unscored.to(flat.device)], shapes[scored.to(flat.device)]).argmin(dim=1)
    return torch.where(varying[unscored], weights[scored][nearest.cpu()], 0.0)


def _ranked_channels(activations: torch.Tensor, top_k: int | str | None) -> torch.Tensor:
    """Indices of the channels to score: all, a spread sample ("auto"), or the `top_k` highest peaks."""
    n_channels = activations.shape[0]
    if isinstance(top_k, str):  # "auto", checked by score_cam
        return spread_channels(activations, AUTO_CHANNELS)
    if top_k is None or top_k >= n_channels:
        return torch.arange(n_channels)
    return _peak_order(activations)[:top_k]


def spread_channels(activations: torch.Tensor, n_scored: int) -> torch.Tensor:
    """`n_scored` non-constant channels evenly spaced over the ranking by peak |activation|.

    Ranks 0, ``(V-1)/(n-1)``, ..., ``V-1`` (rounded) of the `V` non-constant channels,
    strongest first: strong, middling and weak channels in proportion, so every unscored
    channel finds a scored one with a similar mask (the `n_scored` strongest alone are
    all localised maps, unlike the bulk). Constant channels get weight 0 unscored.
    """
    flat = activations.flatten(1)
    varying = (flat.amax(dim=1) > flat.amin(dim=1)).cpu()
    order = _peak_order(activations)
    order = order[varying[order]]
    if n_scored >= len(order):
        return order
    ranks = torch.linspace(0, len(order) - 1, n_scored, dtype=torch.float64).round().long()
    return order[ranks]


def _peak_order(activations: torch.Tensor) -> torch.Tensor:
    """Channel indices sorted by peak absolute activation, highest first (on the CPU)."""
    energy = activations.abs().flatten(1).amax(dim=1)
    # stable sort so ties are broken by channel index: deterministic across runs
    return torch.sort(energy, descending=True, stable=True).indices.cpu()


def _activations_and_logits(
    model: nn.Module, layer: nn.Module, images: torch.Tensor, batch_size: int,
    memory_format: torch.memory_format = torch.contiguous_format,
) -> tuple[torch.Tensor, torch.Tensor]:
    """float32 target-layer activations ``(N, K, h, w)`` and logits ``(N, L)``."""
    activations, logits = [], []
    with recorded_output(layer) as recorded:
        for start in range(0, len(images), batch_size):
            recorded.clear()
            out = model(images[start:start + batch_size].contiguous(memory_format=memory_format))
            if not recorded:
                raise ArtsegInputError(
                    f"target layer {type(layer).__name__} was not called in the model's forward pass"
                )
            if not isinstance(out, torch.Tensor) or out.ndim != 2:
                raise ArtsegInputError(
                    "model must return logits of shape (N, L), got "
                    + (f"shape {tuple(out.shape)}" if isinstance(out, torch.Tensor) else type(out).__name__)
                )
            activations.append(recorded[-1].float())
            logits.append(out.float())
    return torch.cat(activations), torch.cat(logits).cpu()


def _checked_images(images: torch.Tensor | np.ndarray) -> torch.Tensor:
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(np.ascontiguousarray(images))
    if not isinstance(images, torch.Tensor):
        raise ArtsegInputError(
            f"images must be a (N, C, H, W) tensor or array, got {type(images).__name__}"
        )
    if images.ndim != 4 or min(images.shape) == 0:
        raise ArtsegInputError(f"images must have shape (N, C, H, W), got {tuple(images.shape)}")
    if images.is_complex() or images.dtype == torch.bool:
        raise ArtsegInputError(f"images must be real-valued, got dtype {images.dtype}")
    images = images.detach().float()
    if not torch.isfinite(images).all():
        raise ArtsegInputError("images contain NaN or infinite values")
    return images


def _check_positive_int(name: str, value: object, expected: str = "a positive integer") -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ArtsegInputError(f"{name} must be {expected}, got {value!r}")


def _model_device(model: nn.Module) -> torch.device:
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")
