"""Hierarchical patch encoder and position classifier of Patch SVDD (Yi & Yoon, ACCV 2020).

The small encoder maps a ``K`` px patch to a ``D``-vector with one stride-2 3x3 convolution
followed by valid 3x3 convolutions (eight layers in all for the paper's K = 32), Leaky ReLU
0.1 between layers and tanh on the output. The hierarchical encoder embeds a ``2K`` px patch
by encoding its four non-overlapping ``K`` px quarters with the small encoder and merging the
2x2 grid of codes (2x2 convolution, 1x1 convolution, tanh). Both are fully convolutional,
so :meth:`HierarchicalPatchEncoder.dense_embeddings` embeds every patch of a whole image on
a regular grid in one pass, identical to cropping the patches one by one.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from artseg.errors import ArtsegInputError

__all__ = ["SmallPatchEncoder", "HierarchicalPatchEncoder", "PositionClassifier", "PatchSVDDNetwork"]

_LEAKY_SLOPE = 0.1
# Hidden widths of the paper's 32 px encoder; other patch sizes resample this profile.
_PAPER_WIDTHS = (32, 64, 128, 128, 64, 32, 32)
_MERGE_WIDTH = 128
_NUM_POSITIONS = 8


def _hidden_widths(num_hidden: int, width_scale: float) -> list[int]:
    picks = np.round(np.linspace(0, len(_PAPER_WIDTHS) - 1, num_hidden)).astype(int)
    return [max(1, int(round(_PAPER_WIDTHS[i] * width_scale))) for i in picks]


class SmallPatchEncoder(nn.Module):
    """Encode ``patch_size`` px patches into ``embedding_dim`` vectors (Patch SVDD, K = 32).

    Parameters
    ----------
    patch_size : int
        Patch side ``K``; ``K - 3`` must be divisible by 4 after the stride-2 layer, i.e.
        ``K % 4 == 0`` and ``K >= 8`` (the paper uses 32).
    embedding_dim : int
        Code size ``D`` (64 in the paper).
    width_scale : float
        Multiplier of the paper's hidden widths (1.0 = paper).
    in_channels : int
        Image channels.

    Raises
    ------
    ArtsegInputError
        For an unsupported ``patch_size``.
    """

    def __init__(self, patch_size: int = 32, embedding_dim: int = 64, width_scale: float = 1.0, in_channels: int = 1):
        super().__init__()
        if patch_size < 8 or patch_size % 4:
            raise ArtsegInputError(f"Patch SVDD small patch size must be a multiple of 4 and >= 8, got {patch_size}")
        self.patch_size = patch_size
        self.embedding_dim = embedding_dim
        after_stride = (patch_size - 3) // 2 + 1
        num_valid_convs = (after_stride - 1) // 2
        widths = _hidden_widths(num_valid_convs, width_scale)
        channels = [in_channels, *widths, embedding_dim]
        layers: list[nn.Module] = [nn.Conv2d(channels[0], channels[1], 3, stride=2)]
        for c_in, c_out in zip(channels[1:-1], channels[2:]):
            layers += [nn.LeakyReLU(_LEAKY_SLOPE), nn.Conv2d(c_in, c_out, 3)]
        self.layers = nn.Sequential(*layers)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Codes of every ``K`` px window at stride 2: ``(N, D, (H - K) // 2 + 1, ...)``.

        For a batch of ``K`` px patches the output is ``(N, D, 1, 1)``.
        """
        return torch.tanh(self.layers(images))


class HierarchicalPatchEncoder(nn.Module):
    """Patch SVDD encoder of ``2K`` px patches built on a :class:`SmallPatchEncoder`.

    Parameters
    ----------
    small_patch_size : int
        ``K`` of the small encoder; the big patch is ``2K`` (paper: 32 and 64).
    embedding_dim : int
        Code size ``D`` shared by both scales (64 in the paper).
    width_scale : float
        Multiplier of the small encoder's hidden widths.
    in_channels : int
        Image channels.

    Examples
    --------
    >>> import torch
    >>> encoder = HierarchicalPatchEncoder(small_patch_size=16, embedding_dim=8, width_scale=0.25)
    >>> encoder(torch.zeros(3, 1, 32, 32)).shape
    torch.Size([3, 8, 1, 1])
    """

    def __init__(self, small_patch_size: int = 32, embedding_dim: int = 64, width_scale: float = 1.0, in_channels: int = 1):
        super().__init__()
        self.small = SmallPatchEncoder(small_patch_size, embedding_dim, width_scale, in_channels)
        self.merge = nn.Conv2d(embedding_dim, _MERGE_WIDTH, 2)
        self.project = nn.Conv2d(_MERGE_WIDTH, embedding_dim, 1)
        self.small_patch_size = small_patch_size
        self.patch_size = 2 * small_patch_size
        self.embedding_dim = embedding_dim

    def _merge_codes(self, code_grid: torch.Tensor, dilation: int = 1, stride: int = 1) -> torch.Tensor:
        merged = F.conv2d(code_grid, self.merge.weight, self.merge.bias, stride=stride, dilation=dilation)
        return torch.tanh(self.project(F.leaky_relu(merged, _LEAKY_SLOPE)))

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        """Codes ``(N, D, 1, 1)`` of ``2K`` px patches ``(N, C, 2K, 2K)``."""
        k = self.small_patch_size
        if patches.shape[-2:] != (2 * k, 2 * k):
            raise ArtsegInputError(f"hierarchical encoder expects {2 * k} px patches, got {tuple(patches.shape[-2:])}")
        n = patches.shape[0]
        quarters = torch.cat(
            [patches[..., :k, :k], patches[..., :k, k:], patches[..., k:, :k], patches[..., k:, k:]], dim=0
        )
        codes = self.small(quarters).split(n, dim=0)
        top = torch.cat([codes[0], codes[1]], dim=3)
        bottom = torch.cat([codes[2], codes[3]], dim=3)
        return self._merge_codes(torch.cat([top, bottom], dim=2))

    def dense_embeddings(self, images: torch.Tensor, small_stride: int, big_stride: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Embed every patch of whole images on a regular grid, both scales in one pass.

        Parameters
        ----------
        images : torch.Tensor
            ``(N, C, H, W)`` with ``H, W >= 2K``.
        small_stride, big_stride : int
            Grid steps (even numbers) of the ``K`` and ``2K`` px patches (paper: 4 and 16).

        Returns
        -------
        small_codes, big_codes : torch.Tensor
            ``(N, D, I, J)``: the code of the patch whose top-left corner is
            ``(i * stride, j * stride)``; ``I = (H - patch) // stride + 1``.

        Notes
        -----
        The small encoder is all valid convolutions with one stride 2, so run over an image
        it codes every ``K`` window at stride 2. The quarters of the ``2K`` patch at ``(h, w)``
        are the ``K`` windows ``K`` px apart, i.e. ``K / 2`` steps apart on that grid: the
        merging 2x2 convolution becomes a dilated one.
        """
        if small_stride % 2 or big_stride % 2:
            raise ArtsegInputError(f"Patch SVDD strides must be even, got {small_stride} and {big_stride}")
        if min(images.shape[-2:]) < self.patch_size:
            raise ArtsegInputError(f"image of size {tuple(images.shape[-2:])} is smaller than the {self.patch_size} px patch")
        every_second = self.small(images)
        small_codes = every_second[..., :: small_stride // 2, :: small_stride // 2]
        big_codes = self._merge_codes(every_second, dilation=self.small_patch_size // 2, stride=big_stride // 2)
        return small_codes, big_codes


class PositionClassifier(nn.Module):
    """Predict which of the 8 neighbours a patch is from the difference of two codes.

    The self-supervised task of Patch SVDD (after Doersch et al. 2015): an MLP
    ``D -> 128 -> 128 -> 8`` with Leaky ReLU 0.1 on ``code_1 - code_2``.
    """

    def __init__(self, embedding_dim: int = 64, hidden: int = 128):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(embedding_dim, hidden),
            nn.LeakyReLU(_LEAKY_SLOPE),
            nn.Linear(hidden, hidden),
            nn.LeakyReLU(_LEAKY_SLOPE),
            nn.Linear(hidden, _NUM_POSITIONS),
        )

    def forward(self, codes_1: torch.Tensor, codes_2: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, 8)`` for codes ``(N, D, 1, 1)`` or ``(N, D)``."""
        return self.layers(codes_1.flatten(1) - codes_2.flatten(1))


class PatchSVDDNetwork(nn.Module):
    """Everything Patch SVDD trains: the encoder and one position classifier per scale.

    ``forward`` codes ``2K`` px patches; the losses live in :mod:`artseg.comparison.baselines.patchsvdd`.
    """

    def __init__(self, small_patch_size: int = 32, embedding_dim: int = 64, width_scale: float = 1.0, in_channels: int = 1):
        super().__init__()
        self.encoder = HierarchicalPatchEncoder(small_patch_size, embedding_dim, width_scale, in_channels)
        self.position_big = PositionClassifier(embedding_dim)
        self.position_small = PositionClassifier(embedding_dim)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        """Codes ``(N, D, 1, 1)`` of ``2K`` px patches."""
        return self.encoder(patches)
