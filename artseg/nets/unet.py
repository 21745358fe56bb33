"""The paper's U-Net (§2.2, after Ronneberger et al. 2015 and Fishman et al. 2021).

Encoder: ``levels`` blocks of ``convs_per_block`` 3×3 convolutions + ReLU, each followed by a
2×2 max-pool and a skip connection; bottleneck: one more block; decoder: ``levels`` blocks,
each preceded by ×2 upsampling and concatenation with its skip. Every convolution has the
same number of filters (``width``; 64 in the paper). With the defaults (5 levels × 3 convs)
the encoder and decoder have 15 convolutions each, as in the paper.
"""

from __future__ import annotations

import torch
from torch import nn

from artseg.errors import ArtsegInputError


def _conv_block(in_ch: int, out_ch: int, n_convs: int, batch_norm: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for index in range(n_convs):
        layers.append(nn.Conv2d(in_ch if index == 0 else out_ch, out_ch, 3, padding=1, bias=not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm2d(out_ch))
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class UNet(nn.Module):
    """U-Net returning per-pixel logits.

    Parameters
    ----------
    in_channels, out_channels : int
        Input image channels and output logit maps (one "artifact" map by default).
    width : int
        Filters of every convolution (64 in the paper).
    levels : int
        Number of 2×2 poolings; input height and width must be divisible by ``2**levels``.
    convs_per_block : int
        3×3 convolutions per block (3 in the paper).
    batch_norm : bool
        Batch normalisation after each convolution (off in the paper).

    Attributes
    ----------
    init_kwargs : dict
        Constructor arguments, for :func:`artseg.nets.network_spec`.

    Examples
    --------
    >>> net = UNet(width=8, levels=2, convs_per_block=1)
    >>> net(torch.zeros(1, 1, 32, 32)).shape
    torch.Size([1, 1, 32, 32])
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        width: int = 64,
        levels: int = 5,
        convs_per_block: int = 3,
        batch_norm: bool = False,
    ):
        super().__init__()
        if levels < 1 or convs_per_block < 1 or width < 1:
            raise ArtsegInputError(
                f"UNet needs levels, convs_per_block and width >= 1, got {levels}, {convs_per_block}, {width}"
            )
        self.init_kwargs = dict(
            in_channels=in_channels,
            out_channels=out_channels,
            width=width,
            levels=levels,
            convs_per_block=convs_per_block,
            batch_norm=batch_norm,
        )
        self.levels = levels
        self.encoder = nn.ModuleList(
            _conv_block(in_channels if level == 0 else width, width, convs_per_block, batch_norm)
            for level in range(levels)
        )
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = _conv_block(width, width, convs_per_block, batch_norm)
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        self.decoder = nn.ModuleList(
            _conv_block(2 * width, width, convs_per_block, batch_norm) for _ in range(levels)
        )
        self.head = nn.Conv2d(width, out_channels, 1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    @property
    def size_multiple(self) -> int:
        """Input height and width must be multiples of this number."""
        return 2**self.levels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits ``(N, out_channels, H, W)`` for input ``(N, in_channels, H, W)``."""
        height, width = x.shape[-2:]
        if height % self.size_multiple or width % self.size_multiple:
            raise ArtsegInputError(
                f"UNet input {height}x{width} is not divisible by 2**levels = {self.size_multiple}"
            )
        skips = []
        for block in self.encoder:
            x = block(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)
        for block, skip in zip(self.decoder, reversed(skips)):
            x = block(torch.cat([self.upsample(x), skip], dim=1))
        return self.head(x)
