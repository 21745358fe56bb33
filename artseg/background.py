"""Smooth background estimation and clean-image synthesis (paper §2.1, "Artifact annotation").

The ArtSeg-CHO-M4R clean images were made by replacing annotated artifact pixels with
a two-dimensional second-order polynomial fitted to the image, plus zero-centred noise
taken from the background pixels. Here the fit is robust: least squares on a regular
subsample of the pixels outside the excluded mask, iterated with sigma clipping so that
cells and unannotated structures do not pull the surface. All functions are pure.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from artseg.errors import ArtsegInputError

__all__ = [
    "BackgroundFit",
    "background_residual_std",
    "fit_background",
    "fit_background_model",
    "polynomial_terms",
    "synthesize_clean",
]

# 1.4826 * MAD estimates the standard deviation of Gaussian noise.
_MAD_TO_SIGMA = 1.482602218505602


def polynomial_terms(order: int) -> list[tuple[int, int]]:
    """Return the exponents ``(i, j)`` of the monomials ``x**i * y**j`` with ``i + j <= order``.

    Examples
    --------
    >>> polynomial_terms(1)
    [(0, 0), (1, 0), (0, 1)]
    """
    if order < 0:
        raise ValueError(f"polynomial order must be >= 0, got {order}")
    return [(i, total - i) for total in range(order + 1) for i in range(total, -1, -1)]


def _unit_coordinates(length: int) -> np.ndarray:
    # Coordinates in [-1, 1] keep the normal equations well conditioned at any image size.
    return np.linspace(-1.0, 1.0, length) if length > 1 else np.zeros(1)


@dataclass(frozen=True)
class BackgroundFit:
    """A fitted polynomial background surface.

    Attributes
    ----------
    coefficients : numpy.ndarray
        One per term of :func:`polynomial_terms` (coordinates scaled to [-1, 1]).
    order : int
        Polynomial order.
    shape : tuple of int
        ``(H, W)`` of the fitted image.
    residual_center, residual_std : float
        Median and robust (MAD) standard deviation of the inlier residuals.
    n_samples, n_inliers : int
        Pixels used for the fit, and those kept by the last clipping round.
    """

    coefficients: np.ndarray
    order: int
    shape: tuple[int, int]
    residual_center: float
    residual_std: float
    n_samples: int
    n_inliers: int

    def evaluate(self) -> np.ndarray:
        """Return the background surface as a float64 ``(H, W)`` image."""
        height, width = self.shape
        x, y = _unit_coordinates(width), _unit_coordinates(height)
        # surface = sum_j y**j * p_j(x); Horner's rule in y keeps one full-size array.
        row_polynomials = np.zeros((self.order + 1, width))
        for coefficient, (i, j) in zip(self.coefficients, polynomial_terms(self.order)):
            row_polynomials[j] += coefficient * x**i
        surface = np.empty(self.shape)
        surface[:] = row_polynomials[self.order]
        for j in range(self.order - 1, -1, -1):
            surface *= y[:, None]
            surface += row_polynomials[j]
        return surface


def _as_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 2:
        raise ArtsegInputError(f"expected a 2-D gray image, got shape {image.shape}")
    if image.dtype.kind not in "uif":
        raise ArtsegInputError(f"expected a numeric image, got dtype {image.dtype}")
    return image


def _as_mask(mask: np.ndarray | None, shape: tuple[int, ...], what: str) -> np.ndarray:
    if mask is None:
        return np.zeros(shape, dtype=bool)
    mask = np.asarray(mask)
    if mask.shape != shape:
        raise ArtsegInputError(f"{what} shape {mask.shape} does not match image shape {shape}")
    return mask.astype(bool, copy=False)


def fit_background_model(
    image: np.ndarray,
    exclude_mask: np.ndarray | None = None,
    *,
    order: int = 2,
    n_iter: int = 10,
    clip_sigma: float = 3.0,
    max_samples: int = 50_000,
) -> BackgroundFit:
    """Fit a 2-D polynomial background robustly and return the fit.

    Parameters
    ----------
    image : numpy.ndarray
        2-D gray image (any numeric dtype; non-finite pixels are ignored).
    exclude_mask : numpy.ndarray of bool, optional
        Pixels that must not influence the fit (artifacts, known cells).
    order : int
        Polynomial order (2 in the paper).
    n_iter : int
        Maximum sigma-clipping rounds after the first fit; stops early once the
        inlier set no longer changes.
    clip_sigma : float
        Residuals further than ``clip_sigma`` robust standard deviations from the
        median residual are dropped for the next round.
    max_samples : int
        The fit uses a regular grid subsample of about this many (up to 4x) usable
        pixels, so cost does not grow with image size.

    Returns
    -------
    BackgroundFit

    Raises
    ------
    ArtsegInputError
        Not a 2-D numeric image, mask shape mismatch, or too few usable pixels.

    Notes
    -----
    Model: ``b(x, y) = sum c_ij x**i y**j`` over ``i + j <= order`` with ``x, y`` scaled
    to [-1, 1], solved by least squares; each round refits on the pixels whose residual
    ``r`` satisfies ``|r - median(r)| <= clip_sigma * 1.4826 * MAD(r)``.
    """
    image = _as_image(image)
    excluded = _as_mask(exclude_mask, image.shape, "exclude_mask")
    terms = polynomial_terms(order)
    usable = ~excluded
    if image.dtype.kind == "f":
        usable &= np.isfinite(image)
    n_usable = int(np.count_nonzero(usable))
    minimum = 10 * len(terms)
    if n_usable < minimum:
        raise ArtsegInputError(
            f"too few background pixels ({n_usable}) outside the excluded mask to fit an "
            f"order-{order} polynomial (need at least {minimum})"
        )
    stride = max(1, int(np.sqrt(n_usable / max_samples)))
    rows, cols = np.nonzero(usable[::stride, ::stride])
    rows, cols = rows * stride, cols * stride
    values = image[rows, cols].astype(np.float64)
    x = _unit_coordinates(image.shape[1])[cols]
    y = _unit_coordinates(image.shape[0])[rows]
    design = np.stack([x**i * y**j for i, j in terms], axis=1)

    inliers = np.ones(values.size, dtype=bool)
    for round_index in range(n_iter + 1):
        coefficients = np.linalg.lstsq(design[inliers], values[inliers], rcond=None)[0]
        residual = values - design @ coefficients
        center = float(np.median(residual[inliers]))
        spread = _MAD_TO_SIGMA * float(np.median(np.abs(residual[inliers] - center)))
        if round_index == n_iter or spread == 0.0:
            break
        updated = np.abs(residual - center) <= clip_sigma * spread
        if np.count_nonzero(updated) < minimum or np.array_equal(updated, inliers):
            break
        inliers = updated
    return BackgroundFit(
        coefficients=coefficients,
        order=order,
        shape=(int(image.shape[0]), int(image.shape[1])),
        residual_center=center,
        residual_std=spread,
        n_samples=int(values.size),
        n_inliers=int(np.count_nonzero(inliers)),
    )


def fit_background(
    image: np.ndarray,
    exclude_mask: np.ndarray | None = None,
    *,
    order: int = 2,
    n_iter: int = 10,
    clip_sigma: float = 3.0,
    max_samples: int = 50_000,
) -> np.ndarray:
    """Estimate the smooth background of a brightfield image (paper §2.1).

    Parameters
    ----------
    image : numpy.ndarray
        2-D gray image.
    exclude_mask : numpy.ndarray of bool, optional
        Pixels left out of the fit (artifacts, cells).
    order, n_iter, clip_sigma, max_samples
        See :func:`fit_background_model`.

    Returns
    -------
    numpy.ndarray
        float64 ``(H, W)`` background surface.

    See Also
    --------
    fit_background_model : the same fit, returning coefficients and residual statistics.

    Examples
    --------
    >>> import numpy as np
    >>> yy, xx = np.mgrid[0:64, 0:64]
    >>> image = 100 + 0.5 * xx + 0.01 * yy**2
    >>> bool(np.allclose(fit_background(image), image))
    True
    """
    fit = fit_background_model(
        image, exclude_mask, order=order, n_iter=n_iter, clip_sigma=clip_sigma, max_samples=max_samples
    )
    return fit.evaluate()


def background_residual_std(
    image: np.ndarray,
    background: np.ndarray | None = None,
    exclude_mask: np.ndarray | None = None,
    *,
    order: int = 2,
) -> float:
    """Robust standard deviation (1.4826 MAD) of ``image - background`` outside ``exclude_mask``.

    Parameters
    ----------
    image : numpy.ndarray
        2-D gray image.
    background : numpy.ndarray, optional
        Background surface; fitted with :func:`fit_background` (order ``order``) if omitted.
    exclude_mask : numpy.ndarray of bool, optional
        Pixels to ignore (artifacts, cells).

    Returns
    -------
    float
        The imaging-noise level of the background, in image units.
    """
    image = _as_image(image)
    excluded = _as_mask(exclude_mask, image.shape, "exclude_mask")
    if background is None:
        background = fit_background(image, excluded, order=order)
    background = np.asarray(background, dtype=np.float64)
    if background.shape != image.shape:
        raise ArtsegInputError(f"background shape {background.shape} does not match image shape {image.shape}")
    residual = (image.astype(np.float64) - background)[~excluded]
    residual = residual[np.isfinite(residual)]
    if residual.size == 0:
        raise ArtsegInputError("no background pixels outside the excluded mask")
    return float(_MAD_TO_SIGMA * np.median(np.abs(residual - np.median(residual))))


def _cast_like(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return np.clip(np.rint(values), info.min, info.max).astype(dtype)
    info = np.finfo(dtype)
    return np.clip(values, info.min, info.max).astype(dtype)


def synthesize_clean(
    image: np.ndarray,
    artifact_mask: np.ndarray,
    rng: np.random.Generator | int,
    *,
    exclude_mask: np.ndarray | None = None,
    order: int = 2,
    clip_sigma: float = 3.0,
) -> np.ndarray:
    """Replace artifact pixels with background plus background-like noise (paper §2.1).

    Parameters
    ----------
    image : numpy.ndarray
        2-D gray image, any integer or float dtype.
    artifact_mask : numpy.ndarray of bool
        Pixels to replace.
    rng : numpy.random.Generator or int
        Source of the noise (an int is used as a seed).
    exclude_mask : numpy.ndarray of bool, optional
        Further pixels (e.g. cells) kept out of the fit and of the noise pool; they
        are not replaced.
    order : int
        Background polynomial order.
    clip_sigma : float
        Residuals beyond this many robust standard deviations are not used as noise.

    Returns
    -------
    numpy.ndarray
        Same dtype and shape as ``image``. Pixels outside ``artifact_mask`` are
        bit-for-bit the input; pixels inside are ``background + noise``, rounded and
        clipped to the dtype's range.

    Raises
    ------
    ArtsegInputError
        Not a 2-D numeric image, mask shape mismatch, or too few background pixels.

    Notes
    -----
    The noise is resampled with replacement from the residuals ``image - background``
    of pixels that are neither artifact nor excluded and lie within the clipping band
    of the robust fit, then centred to zero mean. Resampling keeps the background's
    noise distribution (including non-Gaussian camera noise) but not its spatial
    correlation; brightfield camera noise is close to white, so the fill is not
    visible as a texture change.
    """
    image = _as_image(image)
    artifact = _as_mask(artifact_mask, image.shape, "artifact mask")
    generator = np.random.default_rng(rng)
    clean = image.copy()
    n_replaced = int(np.count_nonzero(artifact))
    if n_replaced == 0:
        return clean
    excluded = artifact | _as_mask(exclude_mask, image.shape, "exclude_mask")
    fit = fit_background_model(image, excluded, order=order, clip_sigma=clip_sigma)
    background = fit.evaluate()
    residual = image.astype(np.float64) - background
    pool_mask = ~excluded & np.isfinite(residual)
    if fit.residual_std > 0:
        pool_mask &= np.abs(residual - fit.residual_center) <= clip_sigma * fit.residual_std
    noise_pool = residual[pool_mask]
    noise_pool -= noise_pool.mean()
    noise = noise_pool[generator.integers(0, noise_pool.size, size=n_replaced)]
    clean[artifact] = _cast_like(background[artifact] + noise, image.dtype)
    return clean
