"""Differentiable structural similarity (SSIM) for the SSIM autoencoder.

SSIM (Wang et al. 2004, eq. 13) compares two images window by window through their local
means, variances and covariance. Here every local statistic is a separable Gaussian-weighted
average (window 11, sigma 1.5, the standard of Wang et al.), computed with 1-D convolutions
so the map can be used as a training loss and as an anomaly map (Bergmann et al. 2019).
"""

from __future__ import annotations

import torch

from artseg.errors import ArtsegInputError

__all__ = ["gaussian_window", "ssim_map", "ssim"]

_PADDINGS = ("symmetric", "valid")


def gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Return a normalised 1-D Gaussian window.

    Parameters
    ----------
    size : int
        Number of taps (odd).
    sigma : float
        Standard deviation in pixels.

    Returns
    -------
    torch.Tensor
        Float32 tensor of shape ``(size,)`` summing to 1.

    Raises
    ------
    ArtsegInputError
        If ``size`` is not a positive odd number or ``sigma`` is not positive.
    """
    if size < 1 or size % 2 == 0:
        raise ArtsegInputError(f"SSIM window size must be a positive odd number, got {size}")
    if sigma <= 0:
        raise ArtsegInputError(f"SSIM window sigma must be positive, got {sigma}")
    offsets = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    weights = torch.exp(-(offsets**2) / (2 * sigma**2))
    return (weights / weights.sum()).to(torch.float32)


def _window_matrix(length: int, window: torch.Tensor, padding: str) -> torch.Tensor:
    """Matrix ``A`` with ``A @ v`` = the windowed average of ``v`` along one axis.

    ``"symmetric"`` folds the border mirroring (scipy.ndimage mode ``"reflect"``, the rule
    skimage uses) into the matrix, so full-size maps match ``structural_similarity(full=True)``.
    """
    size = window.numel()
    radius = size // 2
    if padding == "valid":
        outputs = length - size + 1
        sources = torch.arange(outputs)[:, None] + torch.arange(size)[None, :]
    else:
        outputs = length
        sources = torch.arange(outputs)[:, None] + torch.arange(-radius, radius + 1)[None, :]
        sources = torch.remainder(sources, 2 * length)
        sources = torch.where(sources >= length, 2 * length - 1 - sources, sources)
    matrix = torch.zeros(outputs, length, dtype=torch.float32)
    rows = torch.arange(outputs)[:, None].expand_as(sources)
    matrix.index_put_((rows.reshape(-1), sources.reshape(-1)), window.repeat(outputs), accumulate=True)
    return matrix


def _banded_matmul(matrix: torch.Tensor, values: torch.Tensor, block: int = 512) -> torch.Tensor:
    # matrix @ values over the second-to-last axis; long axes go block by block, each block
    # multiplying only the few input rows its band touches (dense products cost O(n^2)).
    if matrix.shape[0] <= block:
        return matrix @ values
    pieces = []
    for start in range(0, matrix.shape[0], block):
        rows = matrix[start : start + block]
        touched = rows.any(dim=0).nonzero()
        low, high = int(touched[0]), int(touched[-1]) + 1
        pieces.append(rows[:, low:high] @ values[..., low:high, :])
    return torch.cat(pieces, dim=-2)


def _local_mean(images: torch.Tensor, row_matrix: torch.Tensor, col_matrix: torch.Tensor) -> torch.Tensor:
    # Separable Gaussian filtering as two banded matrix products: far faster on CPU than a
    # 1-channel convolution with an 11-tap kernel, forward and backward.
    smoothed = _banded_matmul(row_matrix, images)
    return _banded_matmul(col_matrix, smoothed.transpose(-1, -2)).transpose(-1, -2)


def ssim_map(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    data_range: float = 1.0,
    window_size: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
    padding: str = "symmetric",
) -> torch.Tensor:
    """Per-pixel SSIM between two image batches (differentiable).

    Parameters
    ----------
    x, y : torch.Tensor
        Images of shape ``(N, C, H, W)``; each channel is compared separately.
    data_range : float
        Dynamic range of the images (``max - min`` possible value); sets the stabilisers
        ``C1 = (k1 * data_range)**2`` and ``C2 = (k2 * data_range)**2``.
    window_size, sigma : int, float
        Gaussian window of the local statistics.
    k1, k2 : float
        Stabiliser constants of Wang et al. (2004).
    padding : {"symmetric", "valid"}
        ``"symmetric"`` mirrors the borders and returns an ``(N, C, H, W)`` map (the
        values of ``skimage.metrics.structural_similarity(..., full=True)``);
        ``"valid"`` skips border windows and returns ``(N, C, H - w + 1, W - w + 1)``,
        whose mean is skimage's mean SSIM.

    Returns
    -------
    torch.Tensor
        SSIM values, 1 where the images agree, in the dtype of ``x`` promoted to float32.

    Raises
    ------
    ArtsegInputError
        On mismatched shapes, non-4-D input, an unknown ``padding`` or images smaller than
        the window.

    Notes
    -----
    With Gaussian-weighted means ``mu``, variances ``var`` (population, not sample) and
    covariance ``cov`` (Wang et al. 2004, eq. 13)::

        SSIM = (2 mu_x mu_y + C1) (2 cov_xy + C2) / ((mu_x^2 + mu_y^2 + C1) (var_x + var_y + C2))

    Statistics are computed in float32 even under bf16 autocast: the variance is a small
    difference of large terms and bf16 would destroy it.

    Examples
    --------
    >>> import torch
    >>> x = torch.rand(1, 1, 32, 32)
    >>> round(float(ssim_map(x, x).min()), 4)
    1.0
    """
    if x.shape != y.shape or x.dim() != 4:
        raise ArtsegInputError(
            f"SSIM needs two (N, C, H, W) tensors of equal shape, got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    if padding not in _PADDINGS:
        raise ArtsegInputError(f"SSIM padding must be one of {_PADDINGS}, got {padding!r}")
    if min(x.shape[-2:]) < window_size and padding == "valid":
        raise ArtsegInputError(f"images of size {tuple(x.shape[-2:])} are smaller than the SSIM window {window_size}")
    with torch.autocast(device_type=x.device.type, enabled=False):
        x = x.float()
        y = y.float()
        window = gaussian_window(window_size, sigma)
        rows = _window_matrix(x.shape[-2], window, padding).to(x.device)
        cols = _window_matrix(x.shape[-1], window, padding).to(x.device)
        mean_x = _local_mean(x, rows, cols)
        mean_y = _local_mean(y, rows, cols)
        var_x = _local_mean(x * x, rows, cols) - mean_x**2
        var_y = _local_mean(y * y, rows, cols) - mean_y**2
        cov_xy = _local_mean(x * y, rows, cols) - mean_x * mean_y
        c1 = (k1 * data_range) ** 2
        c2 = (k2 * data_range) ** 2
        numerator = (2 * mean_x * mean_y + c1) * (2 * cov_xy + c2)
        denominator = (mean_x**2 + mean_y**2 + c1) * (var_x + var_y + c2)
        return numerator / denominator


def ssim(x: torch.Tensor, y: torch.Tensor, **kwargs) -> torch.Tensor:
    """Mean SSIM per image of a batch.

    Parameters
    ----------
    x, y : torch.Tensor
        Images of shape ``(N, C, H, W)``.
    **kwargs
        Passed to :func:`ssim_map` (``data_range``, ``window_size``, ``sigma``, ``k1``,
        ``k2``, ``padding``).

    Returns
    -------
    torch.Tensor
        Shape ``(N,)``: the SSIM map averaged over channels and pixels.

    See Also
    --------
    ssim_map : the per-pixel map.
    """
    return ssim_map(x, y, **kwargs).mean(dim=(1, 2, 3))
