"""PaDiM: a Gaussian per patch position over multi-stage CNN embeddings (Defard et al. 2020).

"PaDiM: a Patch Distribution Modeling Framework for Anomaly Detection and Localization"
(ICPR workshops 2021). Each position of the first stage's feature grid gets an embedding
made of the activations of stages 1-3 (deeper stages upsampled by repetition to the first
stage's grid, as the authors' reference code does), reduced to ``d`` randomly chosen channels.
A multivariate Gaussian (mean, covariance + 0.01 I) is fitted per position on clean images;
the anomaly score is the Mahalanobis distance, upsampled bilinearly to the image and smoothed
with a Gaussian of sigma 4.

Deviation from the paper: no ImageNet weights exist here. In the comparison the backbone is
the shared artifact classifier's ResNet (:class:`~artseg.comparison.segmenters.SharedClassifier`,
trained on the manifest first); it has seen artifact images during classifier training, which
the original method's generic ImageNet backbone had not, but its Gaussians are still fitted on
clean images only. A backbone can also be passed in; without either, a seeded randomly
initialised ResNet-18 is used, whose batch-norm statistics are first re-estimated on the clean
images (otherwise a random network's activations drift in scale stage after stage).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter
from torch import nn
from tqdm.auto import tqdm

from artseg.comparison.baselines.base import AnomalyBaseline, BaselineSettings, clean_training_images
from artseg.comparison.baselines.gaussian import GaussianAccumulator, PositionGaussians, mahalanobis_map
from artseg.errors import ArtsegInputError
from artseg.train import autocast_context

if TYPE_CHECKING:
    from artseg.comparison.segmenters import SharedClassifier

__all__ = ["PaDiMSettings", "PaDiM", "embedding_channels", "stage_outputs"]


@dataclass
class PaDiMSettings(BaselineSettings):
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

    # "paper": Defard et al., 224 px, ResNet-18 layers 1-3, d = 100, epsilon 0.01, sigma 4.
    # "fast": native 256 px synthetic images, a narrower default backbone.
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {"fast": {"image_size": 256, "backbone_width": 32}, "paper": {}}


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


def embedding_channels(backbone: nn.Module, layers: tuple[str, ...]) -> int:
    """Channels of the embedding PaDiM builds from ``layers`` of ``backbone`` (0 if unknown).

    Counted as the output channels of each stage's last convolution.
    """
    available = 0
    for layer in layers:
        try:
            module = backbone.get_submodule(layer)
        except AttributeError:
            raise ArtsegInputError(f"PaDiM backbone has no stage {layer!r}") from None
        convolutions = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
        available += convolutions[-1].out_channels if convolutions else 0
    return available


class PaDiM(AnomalyBaseline):
    """PaDiM anomaly detector (see the module docstring for the method and its deviation).

    Parameters
    ----------
    settings : PaDiMSettings, str, dict or None
        Defaults to the paper's settings (see :meth:`BaselineSettings.resolve`).
    normalization : (float, float)
        Percentiles of the whole-image normalisation of raw images.
    backbone : torch.nn.Module, optional
        Feature extractor with the submodules named in ``settings.layers`` taking ``(N, 1, H, W)``
        images normalised like the clean images; copied, never modified.
    shared : SharedClassifier, optional
        The comparison's shared classifier: :meth:`fit` trains it (unless trained) and uses
        its ResNet as backbone, keeping all of its embedding channels when it has fewer than
        ``num_features`` (Defard et al. keep a random subset of ``d`` channels; a narrow
        classifier may have fewer than ``d`` in stages 1-3).

    Without ``backbone`` and ``shared``: a seeded random ResNet-18 built at fitting time.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> clean = rng.random((4, 64, 64)).astype(np.float32)
    >>> settings = PaDiMSettings(image_size=64, num_features=8, backbone_width=8)
    >>> padim = PaDiM(settings).fit_clean(clean, progress=False)
    >>> padim.predict_map(clean[0]).shape
    (64, 64)
    """

    name = "PaDiM"
    slug = "padim"
    settings_class = PaDiMSettings

    def __init__(self, settings: PaDiMSettings | str | dict | None = None, *,
                 normalization: tuple[float, float] = (1.0, 99.8), backbone: nn.Module | None = None,
                 shared: SharedClassifier | None = None):
        super().__init__(settings, normalization=normalization)
        if self.settings.image_size is None:
            raise ArtsegInputError("PaDiM needs a fixed image_size: its Gaussians are tied to grid positions")
        if backbone is not None and shared is not None:
            raise ArtsegInputError("PaDiM takes a backbone or the shared classifier, not both")
        self.backbone = None if backbone is None else _frozen_copy(backbone)
        self.shared = shared
        self._random_backbone = backbone is None and shared is None
        self._num_features = self.settings.num_features
        self.channel_index: torch.Tensor | None = None
        self.gaussians: PositionGaussians | None = None

    def _fit(self, manifest, *, seed, progress):
        if self.shared is None:
            super()._fit(manifest, seed=seed, progress=progress)
            return
        clean = clean_training_images(manifest, *self.normalization)
        self.shared.ensure_fitted(manifest, seed=seed, progress=progress)
        self.backbone = _frozen_copy(self.shared.classifier)
        available = embedding_channels(self.backbone, self.settings.layers)
        self._num_features = min(int(self.settings.num_features), available) if available else self.settings.num_features
        self.fit_clean(clean, seed=seed, progress=progress)

    def _fit_prepared(self, fit_images, calibration_images, *, seed, progress):
        if self.backbone is None:
            self.backbone = self._default_backbone()
        batches = _batches(fit_images, self.settings.batch_size)
        if self._random_backbone:
            _estimate_batchnorm_statistics(self.backbone, batches, self.settings.layers)
        generator = torch.Generator().manual_seed(seed)
        accumulator = GaussianAccumulator()
        self.channel_index = None
        for batch in tqdm(batches, desc="padim: fit Gaussians", unit="batch", disable=not progress, leave=False):
            features = self._all_features(batch)
            if self.channel_index is None:
                total = features.shape[1]
                if self._num_features > total:
                    raise ArtsegInputError(
                        f"PaDiM num_features={self._num_features} exceeds the backbone's {total} channels"
                    )
                self.channel_index = torch.randperm(total, generator=generator)[: self._num_features]
            accumulator.add(features.index_select(1, self.channel_index))
        self.gaussians = accumulator.finalize(self.settings.regularization)

    def _score_prepared(self, image: np.ndarray) -> np.ndarray:
        batch = torch.from_numpy(np.ascontiguousarray(image))[None, None]
        embeddings = self._all_features(batch).index_select(1, self.channel_index)
        distances = mahalanobis_map(embeddings, self.gaussians)
        upsampled = F.interpolate(distances[:, None], size=image.shape, mode="bilinear", align_corners=False)
        return gaussian_filter(upsampled[0, 0].numpy(), sigma=self.settings.smoothing_sigma).astype(np.float32)

    def _all_features(self, batch: torch.Tensor) -> torch.Tensor:
        with torch.no_grad(), autocast_context(self.settings.precision):
            stages = stage_outputs(self.backbone, batch, self.settings.layers)
        grid = stages[0].shape[-2:]
        upsampled = [F.interpolate(stage.float(), size=grid, mode="nearest") for stage in stages]
        return torch.cat(upsampled, dim=1)

    def _default_backbone(self) -> nn.Module:
        from artseg.nets import ResNet

        return ResNet(depth=self.settings.backbone_depth, base_width=self.settings.backbone_width).eval()

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
            raise ArtsegInputError(f"PaDiM state does not match its settings: {_first_line(error)}") from error

    def _extra_metadata(self) -> dict[str, Any]:
        from artseg.nets import network_spec

        try:
            return {"backbone": network_spec(self.backbone)}
        except ArtsegInputError as error:
            raise ArtsegInputError(f"PaDiM can only save a backbone built by artseg.nets: {error}") from error

    def _restore_extra(self, model: dict[str, Any]) -> None:
        from artseg.nets import build_network

        if "backbone" not in model:
            raise ArtsegInputError("PaDiM config.json has no 'backbone' spec")
        self.backbone = _frozen_copy(build_network(model["backbone"]))


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


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
