"""Patch SVDD: self-supervised patch embeddings and nearest-neighbour distances (Yi & Yoon 2020).

"Patch SVDD: Patch-level SVDD for Anomaly Detection and Segmentation" (ACCV 2020). A
hierarchical encoder (``2K`` px patches built from four ``K`` px sub-encodings; K = 32 in the
paper) is trained on clean images with two losses at both scales:

* Patch SVDD: neighbouring patches (a few pixels apart) get nearby embeddings,
  ``mean ||f(p) - f(p')||``;
* self-supervised relative position: a classifier tells which of the 8 neighbours ``p2``
  is of ``p1`` from ``f(p1) - f(p2)`` (cross-entropy), which keeps embeddings informative.

Loss = CE_big + CE_small + lambda (SVDD_big + SVDD_small). At test time every patch on a grid
(stride 4 for ``K``, 16 for ``2K``) is scored by the distance to its nearest training patch
embedding; scores are spread to pixels (mean over the patches covering each pixel) and the
two scales are multiplied, as in the paper.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from artseg.comparison.baselines.base import AnomalyBaseline, BaselineSettings, train_on_crops
from artseg.comparison.baselines.nearest import nearest_distances
from artseg.comparison.baselines.patches import (
    distribute_patch_scores,
    gather_patches,
    random_crops,
    sample_jitter_pairs,
    sample_neighbour_pairs,
)
from artseg.errors import ArtsegInputError
from artseg.nets.patch_encoder import PatchSVDDNetwork
from artseg.train import autocast_context

__all__ = ["PatchSVDDSettings", "PatchSVDD", "patch_svdd_loss"]

_AGGREGATIONS = ("multiply", "average")


@dataclass
class PatchSVDDSettings(BaselineSettings):
    """Patch SVDD settings (defaults: Yi & Yoon 2020 and their reference code).

    Attributes
    ----------
    image_size : int or None
        Resize side (the paper resizes MVTec images to 256).
    small_patch_size : int
        ``K`` of the small encoder; the big patches are ``2K`` (paper: 32 / 64).
    embedding_dim : int
        ``D`` (paper: 64).
    width_scale : float
        Multiplier of the small encoder's channel widths (1 = paper).
    small_stride, big_stride : int
        Test-time patch grid steps (paper code: 4 and 16).
    svdd_weight : float
        ``lambda`` of the SVDD term (reference code default: 1).
    position_noise : float
        Std of the per-patch offset and per-pixel noise added to position-task patches so the
        classifier cannot solve it from pixel continuity (reference code: 0.02).
    pairs_per_image : int
        Pairs drawn per task from each training crop at each step.
    crop_size : int or None
        Side of the training crops; ``None`` = the whole resized image.
    crops_per_image : int
        Crops cut from each clean image (they are resampled into pairs at every step).
    epochs, batch_size, lr : int, int, float
        Training loop settings (``batch_size`` counts crops). Paper: Adam, lr 1e-4, 300
        epochs of 100 pairs per image and task; with 16 pairs per crop and step that is
        1875 epochs here.
    scale_aggregation : {"multiply", "average"}
        How the two scales' maps are combined (paper: multiply).
    max_bank_size : int or None
        Keep at most this many training embeddings per scale (seeded subsample) to bound
        search time; ``None`` keeps all (paper).
    precision : {"auto", "bf16", "fp32"}
        Training precision.
    """

    image_size: int | None = 256
    small_patch_size: int = 32
    embedding_dim: int = 64
    width_scale: float = 1.0
    small_stride: int = 4
    big_stride: int = 16
    svdd_weight: float = 1.0
    position_noise: float = 0.02
    pairs_per_image: int = 16
    crop_size: int | None = None
    crops_per_image: int = 1
    epochs: int = 1875
    batch_size: int = 4
    lr: float = 1e-4
    scale_aggregation: str = "multiply"
    max_bank_size: int | None = None
    precision: str = "fp32"

    # "paper": Yi & Yoon 2020, K = 64 / 32, D = 64, strides 16 / 4, Adam lr 1e-4, multiply.
    # "fast": half-size patches (16 / 32 px), narrower encoder, short schedule, capped bank.
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "fast": {"small_patch_size": 16, "width_scale": 0.5, "small_stride": 8, "big_stride": 8, "crop_size": 96,
                 "crops_per_image": 2, "pairs_per_image": 8, "epochs": 8, "batch_size": 8, "lr": 1e-3,
                 "max_bank_size": 30_000},
        "paper": {},
    }


def patch_svdd_loss(
    network: PatchSVDDNetwork,
    crops: torch.Tensor,
    *,
    pairs_per_image: int,
    svdd_weight: float,
    position_noise: float,
    generator: torch.Generator,
) -> torch.Tensor:
    """Patch SVDD training loss on a batch of clean crops (both scales, both tasks).

    Parameters
    ----------
    network : PatchSVDDNetwork
    crops : torch.Tensor
        ``(B, C, S, S)`` clean crops, ``S >= 2K``.
    pairs_per_image : int
        Pairs per task drawn from each crop.
    svdd_weight : float
        ``lambda``.
    position_noise : float
        Noise std for the position task.
    generator : torch.Generator
        Source of the patch positions and noise.

    Returns
    -------
    torch.Tensor
        Scalar ``CE_2K + CE_K + lambda (SVDD_2K + SVDD_K)``.
    """
    batch, _, height, width = crops.shape
    extent = min(height, width)
    count = batch * pairs_per_image
    source = torch.arange(batch, device=crops.device).repeat_interleave(pairs_per_image)
    encoder = network.encoder
    scales = (
        (encoder, network.position_big, encoder.patch_size),
        (encoder.small, network.position_small, encoder.small_patch_size),
    )
    total = crops.new_zeros((), dtype=torch.float32)
    for encode, classifier, size in scales:
        rows_1, cols_1, rows_2, cols_2, labels = sample_neighbour_pairs(count, extent, size, generator)
        pairs = torch.cat(
            [gather_patches(crops, source, rows_1, cols_1, size), gather_patches(crops, source, rows_2, cols_2, size)]
        )
        if position_noise > 0:
            offset = torch.randn(pairs.shape[0], pairs.shape[1], 1, 1, generator=generator) * position_noise
            pixel_noise = torch.randn(pairs.shape, generator=generator) * position_noise
            pairs = pairs + (offset + pixel_noise).to(pairs.device, pairs.dtype)
        codes_1, codes_2 = encode(pairs).split(count)
        position_loss = F.cross_entropy(classifier(codes_1, codes_2).float(), labels.to(crops.device))

        rows_1, cols_1, rows_2, cols_2 = sample_jitter_pairs(count, extent, size, generator)
        pairs = torch.cat(
            [gather_patches(crops, source, rows_1, cols_1, size), gather_patches(crops, source, rows_2, cols_2, size)]
        )
        codes_1, codes_2 = encode(pairs).float().split(count)
        svdd_loss = (codes_1 - codes_2).flatten(1).norm(dim=1).mean()
        total = total + position_loss + svdd_weight * svdd_loss
    return total


class PatchSVDD(AnomalyBaseline):
    """Patch SVDD anomaly detector (see the module docstring).

    Parameters
    ----------
    settings : PatchSVDDSettings, str, dict or None
        Defaults to the paper's settings (see :meth:`BaselineSettings.resolve`).
    normalization : (float, float)
        Percentiles of the whole-image normalisation of raw images.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> clean = rng.random((3, 48, 48)).astype(np.float32)
    >>> settings = PatchSVDDSettings(image_size=48, small_patch_size=8, width_scale=0.25, embedding_dim=8,
    ...                              small_stride=2, big_stride=4, epochs=1, batch_size=2)
    >>> PatchSVDD(settings).fit_clean(clean, progress=False).predict_map(clean[0]).shape
    (48, 48)
    """

    name = "PatchSVDD"
    slug = "patchsvdd"
    settings_class = PatchSVDDSettings

    def __init__(self, settings: PatchSVDDSettings | str | dict | None = None, *,
                 normalization: tuple[float, float] = (1.0, 99.8)):
        super().__init__(settings, normalization=normalization)
        if self.settings.scale_aggregation not in _AGGREGATIONS:
            raise ArtsegInputError(
                f"scale_aggregation must be one of {_AGGREGATIONS}, got {self.settings.scale_aggregation!r}"
            )
        self.network: PatchSVDDNetwork | None = None  # built at fitting time, under its seed
        self.bank_small: torch.Tensor | None = None
        self.bank_big: torch.Tensor | None = None

    def _build_network(self) -> PatchSVDDNetwork:
        settings = self.settings
        return PatchSVDDNetwork(settings.small_patch_size, settings.embedding_dim, settings.width_scale)

    def _fit_prepared(self, fit_images, calibration_images, *, seed, progress):
        settings = self.settings
        self.network = self._build_network()  # initialised under the seed set by fit_clean()
        crop_size = settings.crop_size or min(min(image.shape) for image in fit_images + calibration_images)
        if crop_size < 2 * settings.small_patch_size:
            raise ArtsegInputError(f"Patch SVDD crop_size {crop_size} is smaller than the {2 * settings.small_patch_size} px patch")
        rng = np.random.default_rng(seed)
        train_crops = random_crops(fit_images, crop_size, settings.crops_per_image, rng)
        val_crops = random_crops(calibration_images, crop_size, settings.crops_per_image, rng)
        generator = torch.Generator().manual_seed(seed)

        def compute_loss(network, crops, _targets):
            return patch_svdd_loss(
                network,
                crops,
                pairs_per_image=settings.pairs_per_image,
                svdd_weight=settings.svdd_weight,
                position_noise=settings.position_noise,
                generator=generator,
            )

        train_on_crops(self.network, train_crops, val_crops, settings, seed=seed, compute_loss=compute_loss,
                       desc="patchsvdd: train", progress=progress)
        small_codes, big_codes = [], []
        for image in tqdm(fit_images, desc="patchsvdd: memory bank", unit="image", disable=not progress, leave=False):
            small, big = self._dense_codes(image)
            small_codes.append(small.reshape(-1, small.shape[-1]))
            big_codes.append(big.reshape(-1, big.shape[-1]))
        self.bank_small = _subsample(torch.cat(small_codes), settings.max_bank_size, rng)
        self.bank_big = _subsample(torch.cat(big_codes), settings.max_bank_size, rng)

    def _dense_codes(self, image: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Grid codes of one image at both scales, ``(I, J, D)`` each, in float32."""
        tensor = torch.from_numpy(np.ascontiguousarray(image))[None, None]
        with torch.no_grad(), autocast_context(self.settings.precision):
            small, big = self.network.encoder.dense_embeddings(tensor, self.settings.small_stride, self.settings.big_stride)
        return small[0].float().permute(1, 2, 0), big[0].float().permute(1, 2, 0)

    def _score_prepared(self, image: np.ndarray) -> np.ndarray:
        settings = self.settings
        small, big = self._dense_codes(image)
        maps = []
        for codes, bank, size, stride in (
            (small, self.bank_small, settings.small_patch_size, settings.small_stride),
            (big, self.bank_big, 2 * settings.small_patch_size, settings.big_stride),
        ):
            distances = nearest_distances(codes.reshape(-1, codes.shape[-1]), bank).reshape(codes.shape[:2])
            maps.append(distribute_patch_scores(distances, image.shape, size, stride))
        combined = maps[0] * maps[1] if settings.scale_aggregation == "multiply" else (maps[0] + maps[1]) / 2
        return combined.numpy().astype(np.float32)

    def _model_state(self) -> dict[str, torch.Tensor]:
        state = {f"network.{key}": value for key, value in self.network.state_dict().items()}
        state["bank_small"] = self.bank_small
        state["bank_big"] = self.bank_big
        return state

    def _load_model_state(self, state: dict[str, torch.Tensor]) -> None:
        try:
            network_state = {key[len("network."):]: value for key, value in state.items() if key.startswith("network.")}
            self.network = self._build_network()
            self.network.load_state_dict(network_state)
            self.bank_small = state["bank_small"].float()
            self.bank_big = state["bank_big"].float()
        except (KeyError, RuntimeError) as error:
            raise ArtsegInputError(f"Patch SVDD state does not match its settings: {error}") from error
        self.network.eval()


def _subsample(codes: torch.Tensor, limit: int | None, rng: np.random.Generator) -> torch.Tensor:
    if limit is None or codes.shape[0] <= limit:
        return codes.contiguous()
    keep = np.sort(rng.choice(codes.shape[0], size=limit, replace=False))
    return codes[torch.from_numpy(keep)].contiguous()
