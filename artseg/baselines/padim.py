"""PaDiM: a Gaussian per patch position over multi-stage CNN embeddings (Defard et al. 2020).

"PaDiM: a Patch Distribution Modeling Framework for Anomaly Detection and Localization"
(ICPR workshops 2021). Each position of the first stage's feature grid gets an embedding
made of the activations of stages 1-3 (deeper stages upsampled by repetition to the first
stage's grid, as the authors' reference code does), reduced to ``d`` randomly chosen channels.
A multivariate Gaussian (mean, covariance + 0.01 I) is fitted per position on clean images;
the anomaly score is the Mahalanobis distance, upsampled bilinearly to the image and smoothed
with a Gaussian of sigma 4.

Deviation from the paper: no ImageNet weights exist here. The backbone is passed in (the
benchmark passes the trained artifact classifier's ResNet); without one, a seeded randomly
initialised ResNet-18 is used, whose batch-norm statistics are first re-estimated on the clean
images (otherwise a random network's activations drift in scale stage after stage).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter
from torch import nn
from tqdm.auto import tqdm

from artseg.baselines.base import AnomalyDetector, DetectorConfig
from artseg.baselines.gaussian import GaussianAccumulator, PositionGaussians, mahalanobis_map
from artseg.errors import ArtsegInputError
from artseg.train import autocast_context

__all__ = ["PaDiMConfig", "PaDiM", "stage_outputs"]


@dataclass
class PaDiMConfig(DetectorConfig):
    """PaDiM settings (defaults: the paper's ResNet-18 variant "R18-Rd100").

    Attributes
    ----------
    image_size : int
        Side the images are resized to (paper: 224); required, positions are absolute.
    layers : tuple of str
        Backbone submodules whose outputs form the embedding, first = finest grid.
    num_features : int
        ``d``, the random channel subset kept (paper: 100 for ResNet-18).
    regularization : float
        ``epsilon`` added to each covariance diagonal (paper: 0.01).
    smoothing_sigma : float
        Gaussian smoothing of the upsampled map, in pixels of ``image_size`` (paper: 4).
    batch_size : int
        Images per backbone forward pass.
    backbone_depth, backbone_width : int
        Default random backbone (when none is passed): ResNet depth and base width.
    precision : {"fp32", "bf16", "auto"}
        Backbone forward precision.
    """

    image_size: int | None = 224
    layers: tuple[str, ...] = ("layer1", "layer2", "layer3")
    num_features: int = 100
    regularization: float = 0.01
    smoothing_sigma: float = 4.0
    batch_size: int = 8
    backbone_depth: int = 18
    backbone_width: int = 64
    precision: str = "fp32"

    @classmethod
    def fast(cls) -> "PaDiMConfig":
        """Native 256 px synthetic images, a narrower default backbone."""
        return cls(image_size=256, backbone_width=32)

    @classmethod
    def paper(cls) -> "PaDiMConfig":
        """Defard et al.: 224 px, ResNet-18 layers 1-3, d = 100, epsilon 0.01, sigma 4."""
        return cls()


class _StopForward(Exception):
    """Raised by a hook once the last needed stage has run, to skip the rest of the network."""


def stage_outputs(backbone: nn.Module, images: torch.Tensor, layers: tuple[str, ...]) -> list[torch.Tensor]:
    """Outputs of the named submodules of ``backbone`` for ``images``, in ``layers`` order.

    The forward pass stops as soon as every requested output exists, so the classifier's
    deeper stages and head are never computed.

    Raises
    ------
    ArtsegInputError
        If the backbone has no submodule of that name or never calls it.
    """
    captured: dict[str, torch.Tensor] = {}

    def capture(name: str):
        def hook(_module, _inputs, output):
            captured[name] = output
            if len(captured) == len(layers):
                raise _StopForward

        return hook

    handles = []
    try:
        for name in layers:
            try:
                module = backbone.get_submodule(name)
            except AttributeError:
                raise ArtsegInputError(f"PaDiM backbone {type(backbone).__name__} has no submodule {name!r}") from None
            handles.append(module.register_forward_hook(capture(name)))
        try:
            backbone(images)
        except _StopForward:
            pass
    finally:
        for handle in handles:
            handle.remove()
    missing = [name for name in layers if name not in captured]
    if missing:
        raise ArtsegInputError(f"PaDiM backbone never ran submodule(s) {', '.join(missing)}")
    return [captured[name] for name in layers]


class PaDiM(AnomalyDetector):
    """PaDiM anomaly detector (see the module docstring for the method and its deviation).

    Parameters
    ----------
    config : PaDiMConfig, optional
        Defaults to :meth:`PaDiMConfig.paper`.
    backbone : torch.nn.Module, optional
        Feature extractor with the submodules named in ``config.layers`` taking ``(N, 1, H, W)``
        images normalised like the clean images; copied, never modified. ``None``: a seeded
        random ResNet-18 built at :meth:`fit`.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> clean = rng.random((4, 64, 64)).astype(np.float32)
    >>> config = PaDiMConfig(image_size=64, num_features=8, backbone_width=8)
    >>> detector = PaDiM(config).fit(clean, progress=False)
    >>> detector.predict_map(clean[0]).shape
    (64, 64)
    """

    name = "padim"
    config_class = PaDiMConfig

    def __init__(self, config: PaDiMConfig | None = None, backbone: nn.Module | None = None):
        super().__init__(config)
        if self.config.image_size is None:
            raise ArtsegInputError("PaDiM needs a fixed image_size: its Gaussians are tied to grid positions")
        self.backbone = None if backbone is None else _frozen_copy(backbone)
        self._random_backbone = backbone is None
        self.channel_index: torch.Tensor | None = None
        self.gaussians: PositionGaussians | None = None

    def _fit_prepared(self, fit_images, calibration_images, *, seed, progress):
        if self.backbone is None:
            self.backbone = self._default_backbone()
        batches = _batches(fit_images, self.config.batch_size)
        if self._random_backbone:
            _estimate_batchnorm_statistics(self.backbone, batches, self.config.layers)
        generator = torch.Generator().manual_seed(seed)
        accumulator = GaussianAccumulator()
        for batch in tqdm(batches, desc="padim: fit Gaussians", unit="batch", disable=not progress, leave=False):
            features = self._all_features(batch)
            if self.channel_index is None:
                total = features.shape[1]
                if self.config.num_features > total:
                    raise ArtsegInputError(
                        f"PaDiM num_features={self.config.num_features} exceeds the backbone's {total} channels"
                    )
                self.channel_index = torch.randperm(total, generator=generator)[: self.config.num_features]
            accumulator.add(features.index_select(1, self.channel_index))
        self.gaussians = accumulator.finalize(self.config.regularization)

    def _score_prepared(self, image: np.ndarray) -> np.ndarray:
        batch = torch.from_numpy(np.ascontiguousarray(image))[None, None]
        embeddings = self._all_features(batch).index_select(1, self.channel_index)
        distances = mahalanobis_map(embeddings, self.gaussians)
        upsampled = F.interpolate(distances[:, None], size=image.shape, mode="bilinear", align_corners=False)
        return gaussian_filter(upsampled[0, 0].numpy(), sigma=self.config.smoothing_sigma).astype(np.float32)

    def _all_features(self, batch: torch.Tensor) -> torch.Tensor:
        with torch.no_grad(), autocast_context(self.config.precision):
            stages = stage_outputs(self.backbone, batch, self.config.layers)
        grid = stages[0].shape[-2:]
        upsampled = [F.interpolate(stage.float(), size=grid, mode="nearest") for stage in stages]
        return torch.cat(upsampled, dim=1)

    def _default_backbone(self) -> nn.Module:
        from artseg.nets import ResNet

        return ResNet(depth=self.config.backbone_depth, base_width=self.config.backbone_width).eval()

    def _model_state(self) -> dict[str, torch.Tensor]:
        state = {f"backbone.{key}": value for key, value in self.backbone.state_dict().items()}
        state["channel_index"] = self.channel_index
        state["mean"] = self.gaussians.mean
        state["precision"] = self.gaussians.precision
        state["grid"] = torch.tensor(self.gaussians.grid)
        return state

    def _load_model_state(self, state: dict[str, torch.Tensor]) -> None:
        try:
            backbone_state = {key[len("backbone."):]: value for key, value in state.items() if key.startswith("backbone.")}
            if self.backbone is None:
                self.backbone = self._default_backbone()
            self.backbone.load_state_dict(backbone_state)
            self.channel_index = state["channel_index"].long()
            grid = tuple(int(v) for v in state["grid"])
            self.gaussians = PositionGaussians(mean=state["mean"].float(), precision=state["precision"].float(), grid=grid)
        except (KeyError, RuntimeError) as error:
            raise ArtsegInputError(f"PaDiM state does not match its config: {error}") from error

    def _extra_metadata(self) -> dict[str, Any]:
        from artseg.nets import network_spec

        try:
            return {"backbone": network_spec(self.backbone)}
        except ArtsegInputError as error:
            raise ArtsegInputError(f"PaDiM can only save a backbone built by artseg.nets: {error}") from error

    @classmethod
    def _from_metadata(cls, config: PaDiMConfig, metadata: dict[str, Any]) -> "PaDiM":
        from artseg.nets import build_network

        if "backbone" not in metadata:
            raise ArtsegInputError("PaDiM config.json has no 'backbone' spec")
        return cls(config, backbone=build_network(metadata["backbone"]))


def _frozen_copy(backbone: nn.Module) -> nn.Module:
    frozen = copy.deepcopy(backbone).cpu().eval()
    for parameter in frozen.parameters():
        parameter.requires_grad_(False)
    return frozen


def _batches(images: list[np.ndarray], batch_size: int) -> list[torch.Tensor]:
    return [
        torch.from_numpy(np.stack(images[start : start + batch_size]))[:, None]
        for start in range(0, len(images), batch_size)
    ]


def _estimate_batchnorm_statistics(backbone: nn.Module, batches: list[torch.Tensor], layers: tuple[str, ...]) -> None:
    norms = [module for module in backbone.modules() if isinstance(module, nn.modules.batchnorm._BatchNorm)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average over all batches, independent of their order
    backbone.train()
    with torch.no_grad():
        for batch in batches:
            stage_outputs(backbone, batch, layers)
    backbone.eval()
