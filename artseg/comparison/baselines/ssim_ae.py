"""SSIM autoencoder: reconstruction with a structural-similarity loss (Bergmann et al. 2019).

"Improving Unsupervised Defect Segmentation by Applying Structural Similarity to
Autoencoders" (VISAPP 2019). A convolutional autoencoder (:class:`artseg.nets.autoencoder.
SSIMAutoencoder`) is trained on random clean patches to maximise the SSIM between a patch and
its reconstruction. A test image is reconstructed patch by patch with a sliding window (the
overlapping reconstructions blended) and the anomaly map is ``1 - SSIM`` between the image
and its reconstruction.

SSIM window: the paper specifies an 11 x 11 window and K1 = 0.01, K2 = 0.03 but not its
weighting. We use the Gaussian weighting (sigma 1.5) of Wang et al. (2004), which is what the
public re-implementations use (``tf.image.ssim``), and which a uniform window only
approximates with more ringing at edges; both are settable (``ssim_sigma``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from artseg.comparison.baselines.base import AnomalyBaseline, BaselineSettings, train_on_crops
from artseg.comparison.baselines.patches import random_crops
from artseg.comparison.baselines.ssim import ssim, ssim_map
from artseg.errors import ArtsegInputError
from artseg.nets.autoencoder import SSIMAutoencoder
from artseg.tiling import predict_tiled
from artseg.train import autocast_context

__all__ = ["SSIMAESettings", "SSIMAutoencoderDetector"]


@dataclass
class SSIMAESettings(BaselineSettings):
    """SSIM autoencoder settings (defaults: Bergmann et al. 2019 on textures).

    Attributes
    ----------
    image_size : int or None
        Resize side (MVTec textures were resized to 256 with 128 px patches).
    patch_size : int
        Autoencoder input side, a multiple of 16 (paper: 128).
    latent_dim : int
        Bottleneck size (paper: 100).
    base_width : int
        First-layer filters (paper: 32).
    training_patches : int
        Random clean patches cut for training, spread evenly over the images (paper: 10 000).
    epochs, batch_size, lr : int, int, float
        Training loop settings (paper: 200, 128, Adam 2e-4; its weight decay of 1e-5 is
        not used by the shared training loop).
    ssim_window, ssim_sigma : int, float
        SSIM window (see the module docstring).
    data_range : float
        Dynamic range of the normalised images, for the SSIM constants.
    inference_stride : int
        Step of the sliding window at test time; divides ``patch_size``.
    batch_size_inference : int
        Patches per forward pass at test time.
    precision : {"auto", "bf16", "fp32"}
        Network precision (SSIM itself is always computed in float32).
    """

    image_size: int | None = 256
    patch_size: int = 128
    latent_dim: int = 100
    base_width: int = 32
    training_patches: int = 10_000
    epochs: int = 200
    batch_size: int = 128
    lr: float = 2e-4
    ssim_window: int = 11
    ssim_sigma: float = 1.5
    data_range: float = 1.0
    inference_stride: int = 32
    batch_size_inference: int = 64
    precision: str = "auto"

    # "paper": Bergmann et al., 128 px patches, d = 100, 10 000 patches, 200 epochs, batch 128, lr 2e-4.
    # "fast": 64 px patches, narrower network, 3000 patches, 10 epochs.
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "fast": {"patch_size": 64, "base_width": 16, "training_patches": 3000, "epochs": 10, "batch_size": 32,
                 "lr": 1e-3, "inference_stride": 16},
        "paper": {},
    }


class SSIMAutoencoderDetector(AnomalyBaseline):
    """SSIM autoencoder anomaly detector, the comparison's "AE" (see the module docstring).

    Parameters
    ----------
    settings : SSIMAESettings, str, dict or None
        Defaults to the paper's settings (see :meth:`BaselineSettings.resolve`).
    normalization : (float, float)
        Percentiles of the whole-image normalisation of raw images.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> clean = rng.random((3, 32, 32)).astype(np.float32)
    >>> settings = SSIMAESettings(image_size=32, patch_size=16, latent_dim=4, base_width=4,
    ...                           training_patches=6, epochs=1, batch_size=4, inference_stride=8)
    >>> SSIMAutoencoderDetector(settings).fit_clean(clean, progress=False).predict_map(clean[0]).shape
    (32, 32)
    """

    name = "AE"
    slug = "ae"
    settings_class = SSIMAESettings

    def __init__(self, settings: SSIMAESettings | str | dict | None = None, *,
                 normalization: tuple[float, float] = (1.0, 99.8)):
        super().__init__(settings, normalization=normalization)
        if self.settings.patch_size % self.settings.inference_stride:
            raise ArtsegInputError(
                f"inference_stride {self.settings.inference_stride} must divide the patch size {self.settings.patch_size}"
            )
        self.network: SSIMAutoencoder | None = None  # built at fitting time, under its seed

    def _build_network(self) -> SSIMAutoencoder:
        settings = self.settings
        return SSIMAutoencoder(settings.patch_size, settings.latent_dim, settings.base_width)

    def _ssim_settings(self) -> dict:
        settings = self.settings
        return dict(data_range=settings.data_range, window_size=settings.ssim_window, sigma=settings.ssim_sigma)

    def _fit_prepared(self, fit_images, calibration_images, *, seed, progress):
        settings = self.settings
        self.network = self._build_network()  # initialised under the seed set by fit_clean()
        rng = np.random.default_rng(seed)
        per_image = max(1, -(-settings.training_patches // len(fit_images)))
        train_patches = random_crops(fit_images, settings.patch_size, per_image, rng)
        val_patches = random_crops(calibration_images, settings.patch_size, per_image, rng)
        self.network.match_output_mean(torch.from_numpy(train_patches[:256])[:, None])
        similarity = self._ssim_settings()

        def compute_loss(network, patches, _targets):
            return 1.0 - ssim(network(patches), patches, **similarity).mean()

        train_on_crops(self.network, train_patches, val_patches, settings, seed=seed, compute_loss=compute_loss,
                       desc="ssim_ae: train", progress=progress)

    def reconstruct(self, image: np.ndarray) -> np.ndarray:
        """Patchwise reconstruction of a (resized) 2-D image.

        Patches of ``patch_size`` overlap by ``patch_size - inference_stride`` and are blended
        by :func:`artseg.tiling.predict_tiled`, which down-weights patch borders.

        Raises
        ------
        ArtsegInputError
            If the image is smaller than a patch.
        """
        settings = self.settings
        size = settings.patch_size
        if min(image.shape) < size:
            raise ArtsegInputError(f"image of size {image.shape} is smaller than the {size} px autoencoder patch")

        def rebuild(patches: np.ndarray) -> np.ndarray:
            with torch.no_grad(), autocast_context(settings.precision):
                return self.network(torch.from_numpy(patches)).float().numpy()

        return predict_tiled(
            rebuild,
            image,
            tile_size=size,
            overlap=size - settings.inference_stride,
            batch_size=settings.batch_size_inference,
            multiple=settings.inference_stride,
        )[0]

    def _score_prepared(self, image: np.ndarray) -> np.ndarray:
        reconstruction = self.reconstruct(image)
        similarity = ssim_map(
            torch.from_numpy(image)[None, None], torch.from_numpy(reconstruction)[None, None], **self._ssim_settings()
        )
        return (1.0 - similarity[0, 0]).numpy().astype(np.float32)

    def _model_state(self) -> dict[str, torch.Tensor]:
        return {f"network.{key}": value for key, value in self.network.state_dict().items()}

    def _load_model_state(self, state: dict[str, torch.Tensor]) -> None:
        network_state = {key[len("network."):]: value for key, value in state.items() if key.startswith("network.")}
        self.network = self._build_network()
        try:
            self.network.load_state_dict(network_state)
        except RuntimeError as error:
            raise ArtsegInputError(f"SSIM autoencoder state does not match its settings: {error}") from error
        self.network.eval()
