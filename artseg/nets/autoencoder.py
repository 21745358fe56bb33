"""Convolutional autoencoder of Bergmann et al. (2019), scaled to the patch size.

Architecture of Table 1 in "Improving Unsupervised Defect Segmentation by Applying
Structural Similarity to Autoencoders" (VISAPP 2019): for a 128 px patch, four stride-2
4x4 convolutions (interleaved with 3x3 ones) bring it to 8x8, a valid 8x8 convolution maps
it to a ``latent_dim`` vector, and the decoder mirrors the encoder with transposed
convolutions. Leaky ReLU (slope 0.2) follows every layer except the latent code and the
reconstruction, which are linear. Other patch sizes keep the layer stack and scale the
bottleneck kernel to ``patch_size // 16``. Weights use He initialisation for Leaky ReLU (the
paper does not say which; PyTorch's default scaling shrinks the signal through the 18 layers
and training on an SSIM loss then stalls for many epochs); the output layer starts at zero.
"""

from __future__ import annotations

import torch
from torch import nn

from artseg.errors import ArtsegInputError

__all__ = ["SSIMAutoencoder"]

_LEAKY_SLOPE = 0.2


def _conv(in_channels: int, out_channels: int, kernel: int, stride: int, padding: int = 1) -> nn.Conv2d:
    # padding 1 keeps 3x3/stride-1 sizes and exactly halves with 4x4/stride 2
    return nn.Conv2d(in_channels, out_channels, kernel, stride=stride, padding=padding)


def _deconv(in_channels: int, out_channels: int, kernel: int, stride: int, padding: int = 1) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(in_channels, out_channels, kernel, stride=stride, padding=padding)


def _with_activations(layers: list[nn.Module], linear_last: bool = True) -> nn.Sequential:
    stack: list[nn.Module] = []
    for index, layer in enumerate(layers):
        stack.append(layer)
        if not (linear_last and index == len(layers) - 1):
            stack.append(nn.LeakyReLU(_LEAKY_SLOPE))
    return nn.Sequential(*stack)


class SSIMAutoencoder(nn.Module):
    """Bergmann et al. (2019) convolutional autoencoder for square patches.

    Parameters
    ----------
    patch_size : int
        Side of the (square) input patch; a multiple of 16 (the paper uses 128).
    latent_dim : int
        Size of the bottleneck code (the paper uses 100).
    base_width : int
        Filters of the first layers (32 in the paper); deeper layers use 2x and 4x.
    in_channels : int
        Image channels (1 for brightfield).

    Raises
    ------
    ArtsegInputError
        If ``patch_size`` is not a positive multiple of 16.

    Examples
    --------
    >>> import torch
    >>> net = SSIMAutoencoder(patch_size=32, latent_dim=8, base_width=4)
    >>> net(torch.zeros(2, 1, 32, 32)).shape
    torch.Size([2, 1, 32, 32])
    """

    def __init__(self, patch_size: int = 128, latent_dim: int = 100, base_width: int = 32, in_channels: int = 1):
        super().__init__()
        if patch_size < 16 or patch_size % 16:
            raise ArtsegInputError(f"autoencoder patch_size must be a positive multiple of 16, got {patch_size}")
        self.patch_size = patch_size
        self.latent_dim = latent_dim
        self.base_width = base_width
        self.in_channels = in_channels
        w = base_width
        bottleneck = patch_size // 16
        self.encoder = _with_activations(
            [
                _conv(in_channels, w, 4, 2),
                _conv(w, w, 4, 2),
                _conv(w, w, 3, 1),
                _conv(w, 2 * w, 4, 2),
                _conv(2 * w, 2 * w, 3, 1),
                _conv(2 * w, 4 * w, 4, 2),
                _conv(4 * w, 2 * w, 3, 1),
                _conv(2 * w, w, 3, 1),
                _conv(w, latent_dim, bottleneck, 1, padding=0),
            ]
        )
        self.decoder = _with_activations(
            [
                _deconv(latent_dim, w, bottleneck, 1, padding=0),
                _conv(w, 2 * w, 3, 1),
                _conv(2 * w, 4 * w, 3, 1),
                _deconv(4 * w, 2 * w, 4, 2),
                _conv(2 * w, 2 * w, 3, 1),
                _deconv(2 * w, w, 4, 2),
                _conv(w, w, 3, 1),
                _deconv(w, w, 4, 2),
                _deconv(w, in_channels, 4, 2),
            ]
        )
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, a=_LEAKY_SLOPE, nonlinearity="leaky_relu")
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.ConvTranspose2d):
                # fan_out of a transposed convolution's weight is its number of inputs per output
                nn.init.kaiming_normal_(module.weight, a=_LEAKY_SLOPE, mode="fan_out", nonlinearity="leaky_relu")
                nn.init.zeros_(module.bias)
        # A zero output layer starts every reconstruction flat (at the bias, see
        # match_output_mean): random initial structure is uncorrelated with the input, and an
        # SSIM loss first spends hundreds of steps suppressing it before learning anything.
        nn.init.zeros_(self.decoder[-1].weight)

    def encode(self, patches: torch.Tensor) -> torch.Tensor:
        """Latent codes ``(N, latent_dim, 1, 1)`` of patches ``(N, C, P, P)``."""
        return self.encoder(patches)

    @torch.no_grad()
    def match_output_mean(self, patches: torch.Tensor) -> None:
        """Shift the output bias so reconstructions of ``patches`` start at their mean brightness.

        An SSIM loss needs this: if the untrained output's mean has the opposite sign of the
        images', the luminance term is negative and the loss is lowered by inflating the
        output's variance until SSIM sits at 0 with vanishing gradients.
        """
        output_layer = self.decoder[-1]
        offset = patches.float().mean() - self.forward(patches).float().mean()
        output_layer.bias += offset.to(output_layer.bias.dtype)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        """Reconstruct patches ``(N, C, P, P)``."""
        if patches.shape[-2:] != (self.patch_size, self.patch_size):
            raise ArtsegInputError(
                f"autoencoder expects {self.patch_size}x{self.patch_size} patches, got {tuple(patches.shape[-2:])}"
            )
        return self.decoder(self.encoder(patches))
