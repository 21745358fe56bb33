"""Per-position multivariate Gaussians and Mahalanobis distance maps (PaDiM, Defard et al. 2020)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from artseg.errors import ArtsegInputError

__all__ = ["GaussianAccumulator", "PositionGaussians", "mahalanobis_map"]


class GaussianAccumulator:
    """Streaming mean and covariance of ``d``-vectors at every position of a feature grid.

    Batches of embeddings ``(N, d, h, w)`` are added one at a time, so the training set never
    has to be held in memory; sums are kept in float64 so the one-pass covariance
    ``(sum x x^T - n mu mu^T) / (n - 1)`` stays accurate.
    """

    def __init__(self) -> None:
        self.count = 0
        self._sum: torch.Tensor | None = None
        self._outer_sum: torch.Tensor | None = None
        self._grid: tuple[int, int] = (0, 0)

    def add(self, embeddings: torch.Tensor) -> None:
        """Accumulate a batch of embeddings ``(N, d, h, w)``."""
        if embeddings.dim() != 4:
            raise ArtsegInputError(f"embeddings must be (N, d, h, w), got shape {tuple(embeddings.shape)}")
        vectors = embeddings.double().flatten(2).permute(2, 0, 1)  # (positions, N, d)
        batch_sum = vectors.sum(dim=1)
        batch_outer = vectors.transpose(1, 2) @ vectors
        if self._sum is None:
            self._sum, self._outer_sum = batch_sum, batch_outer
        else:
            if batch_sum.shape != self._sum.shape:
                raise ArtsegInputError(
                    f"embedding grid changed from {tuple(self._sum.shape)} to {tuple(batch_sum.shape)} positions x channels"
                )
            self._sum += batch_sum
            self._outer_sum += batch_outer
        self.count += embeddings.shape[0]
        self._grid = tuple(embeddings.shape[-2:])

    def finalize(self, regularization: float = 0.01) -> "PositionGaussians":
        """Mean and precision (inverse of covariance + ``regularization * I``) per position.

        Raises
        ------
        ArtsegInputError
            With fewer than two embeddings per position.
        """
        if self._sum is None or self.count < 2:
            raise ArtsegInputError(f"a Gaussian per position needs at least 2 clean images, got {self.count}")
        mean = self._sum / self.count
        covariance = (self._outer_sum - self.count * mean[:, :, None] * mean[:, None, :]) / (self.count - 1)
        identity = torch.eye(covariance.shape[-1], dtype=covariance.dtype)
        precision = torch.linalg.inv(covariance + regularization * identity)
        return PositionGaussians(mean=mean.float(), precision=precision.float(), grid=self._grid)


@dataclass
class PositionGaussians:
    """Fitted Gaussians: ``mean`` ``(h*w, d)``, ``precision`` ``(h*w, d, d)``, ``grid`` ``(h, w)``."""

    mean: torch.Tensor
    precision: torch.Tensor
    grid: tuple[int, int]


def mahalanobis_map(embeddings: torch.Tensor, gaussians: PositionGaussians, position_chunk: int = 1024) -> torch.Tensor:
    """Mahalanobis distance of each position's embedding to that position's Gaussian.

    Parameters
    ----------
    embeddings : torch.Tensor
        ``(N, d, h, w)`` test embeddings on the grid the Gaussians were fitted on.
    gaussians : PositionGaussians
        Output of :meth:`GaussianAccumulator.finalize`.
    position_chunk : int
        Positions processed at once (bounds the temporary memory).

    Returns
    -------
    torch.Tensor
        ``(N, h, w)`` float32 distances ``sqrt((x - mu)^T Sigma^-1 (x - mu))``.

    Raises
    ------
    ArtsegInputError
        If the grid or the channel count differs from the fitted one.
    """
    n, d, h, w = embeddings.shape
    positions, fitted_d = gaussians.mean.shape
    if (h, w) != tuple(gaussians.grid) or d != fitted_d:
        raise ArtsegInputError(
            f"embeddings of shape (d={d}, {h}x{w}) do not match the fitted Gaussians (d={fitted_d}, "
            f"{gaussians.grid[0]}x{gaussians.grid[1]})"
        )
    centred = embeddings.float().flatten(2).permute(2, 0, 1) - gaussians.mean[:, None, :]  # (positions, N, d)
    squared = torch.empty(positions, n, dtype=torch.float32)
    for start in range(0, positions, position_chunk):
        stop = start + position_chunk
        block = centred[start:stop]
        squared[start:stop] = ((block @ gaussians.precision[start:stop]) * block).sum(dim=-1)
    return squared.clamp_min(0).sqrt().T.reshape(n, h, w)
