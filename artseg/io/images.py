"""Reading images: TIFF planes and channels, PNG/JPEG, masks and label images, shapes.

Every problem with a user's file becomes an :class:`~artseg.errors.ArtsegInputError` whose
one-line message names the file and what is wrong with it.
"""

from __future__ import annotations

import os
from xml.etree import ElementTree
from collections.abc import Sequence
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import tifffile

from artseg.errors import ArtsegInputError

TIFF_SUFFIXES = (".tif", ".tiff")
IMAGE_SUFFIXES = (*TIFF_SUFFIXES, ".png", ".jpg", ".jpeg")

# ITU-R BT.709 luma weights, the convention of skimage.color.rgb2gray.
_LUMA_WEIGHTS = np.array([0.2125, 0.7154, 0.0721])


# --------------------------------------------------------------------------- images


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def _decoder_reason(err: BaseException) -> str:
    reason = _one_line(err)
    # imageio's message for a file no decoder accepts names the plugin, not the problem.
    if "can not handle the given uri" in reason:
        return "corrupt file or not a TIFF/PNG/JPEG image"
    return reason


def _require_file(path: Path, what: str = "image") -> None:
    if not path.is_file():
        raise ArtsegInputError(f"{what} file not found: {path}")


def _as_path(path: str | os.PathLike | None) -> Path:
    if path is None or (isinstance(path, float) and np.isnan(path)) or str(path) == "":
        raise ArtsegInputError("no image file given (empty manifest cell?)")
    return Path(path)


# --------------------------------------------------------------------------- channel selection
#
# An image path may end in ``#channel=NAME`` or ``#channel=INDEX`` to read one plane of a
# multi-channel or multi-page TIFF: ``field.ome.tif#channel=RFP`` (an OME channel name) or
# ``stack.tif#channel=1`` (0-based). Only that plane is read from disk. The suffix travels
# with the path through manifests, so every reader and shape check understands it.

CHANNEL_MARK = "#channel="


def split_channel(path: str | os.PathLike) -> tuple[Path, str | None]:
    """Split ``"field.ome.tif#channel=RFP"`` into the file and the channel asked for.

    Parameters
    ----------
    path : str or path-like
        An image path, with or without a ``#channel=NAME|INDEX`` suffix.

    Returns
    -------
    (pathlib.Path, str or None)
        The file, and the channel text (``None`` without a suffix).

    Raises
    ------
    ArtsegInputError
        The suffix is there but names no channel.

    Examples
    --------
    >>> split_channel("plate/B03_s1.ome.tif#channel=Bright field")
    (PosixPath('plate/B03_s1.ome.tif'), 'Bright field')
    """
    text = os.fspath(path)
    file_part, mark, channel = text.rpartition(CHANNEL_MARK)
    if not mark:
        return Path(text), None
    channel = channel.strip()
    if not file_part or not channel:
        raise ArtsegInputError(f"{text}: expected FILE{CHANNEL_MARK}NAME or FILE{CHANNEL_MARK}INDEX")
    return Path(file_part), channel


def with_channel(path: str | os.PathLike, channel: str | None) -> str:
    """The inverse of :func:`split_channel`: ``path`` with its ``#channel=`` suffix (if any)."""
    return os.fspath(path) if channel is None else f"{os.fspath(path)}{CHANNEL_MARK}{channel}"


def _local_tag(element) -> str:
    return element.tag.rsplit("}", 1)[-1]


def _ome_channel_names(tif: tifffile.TiffFile) -> list[str]:
    """Channel names of the first OME image, in order ("" where unnamed); [] if not OME."""
    if not tif.is_ome or not tif.ome_metadata:
        return []
    try:
        root = ElementTree.fromstring(tif.ome_metadata)
    except ElementTree.ParseError:
        return []
    for pixels in root.iter():
        if _local_tag(pixels) == "Pixels":
            return [(c.get("Name") or "") for c in pixels if _local_tag(c) == "Channel"]
    return []


def _plane_axes(axes: str, shape: Sequence[int]) -> list[str]:
    """Axes beyond one plane that hold more than one entry (``YX`` and colour samples excluded)."""
    return [f"{a}={s}" for a, s in zip(axes, shape) if a not in "YXS" and s > 1]


def _stack_error(path, shape: tuple[int, ...], axes: str) -> ArtsegInputError:
    return ArtsegInputError(
        f"cannot read image: {path}: expected one 2-D image, got shape {shape} "
        f"({', '.join(_plane_axes(axes, shape))}); choose a plane by ending the path in "
        f"{CHANNEL_MARK}NAME or {CHANNEL_MARK}INDEX"
    )


def _locate_channel(tif: tifffile.TiffFile, channel: str, path) -> tuple[int, int]:
    """Return ``(axis, index)`` of ``channel`` in the first series of ``tif``.

    The channel axis is the file's ``C`` axis; without one, its colour samples (``S``);
    without those, the one axis of several pages (a plain multi-page TIFF). A channel
    given as digits is a 0-based index, anything else an OME channel name (exact, else
    the one name equal ignoring case). A single-plane file has only index 0 (axis -1).
    """
    series = tif.series[0]
    axes, shape = series.axes, tuple(series.shape)
    if "C" in axes:
        axis = axes.index("C")
    elif "S" in axes:
        axis = axes.index("S")
    else:
        stacked = [i for i, (a, s) in enumerate(zip(axes, shape)) if a not in "YX" and s > 1]
        if len(stacked) > 1:
            raise ArtsegInputError(
                f"cannot read image: {path}: no channel axis among {', '.join(_plane_axes(axes, shape))}"
            )
        axis = stacked[0] if stacked else None
    count = 1 if axis is None else shape[axis]
    names = _ome_channel_names(tif) if axis is not None and axes[axis] == "C" else []
    if channel.isdigit():
        index = int(channel)
        if index >= count:
            raise ArtsegInputError(f"cannot read image: {path}: channel index {index} out of range "
                                   f"(the file has {count} channel(s), numbered from 0)")
    else:
        exact = [i for i, name in enumerate(names) if name == channel]
        loose = [i for i, name in enumerate(names) if name.casefold() == channel.casefold()]
        found = exact or (loose if len(loose) == 1 else [])
        if len(names) != count or not found:
            known = ", ".join(repr(n) for n in names) if len(names) == count else "none (use an index)"
            raise ArtsegInputError(f"cannot read image: {path}: no channel named {channel!r} "
                                   f"(channel names: {known})")
        index = found[0]
    if axis is None:
        return -1, 0
    others = [f"{a}={s}" for i, (a, s) in enumerate(zip(axes, shape)) if i != axis and a not in "YXS" and s > 1]
    if others:
        raise ArtsegInputError(f"cannot read image: {path}: after choosing a channel the file still has "
                               f"{', '.join(others)} planes; export one plane per channel")
    return axis, index


def _read_tiff_plane(tif: tifffile.TiffFile, channel: str | None, path) -> tuple[np.ndarray, str]:
    """Read one plane of the first series (the ``channel`` one), touching only its page(s)."""
    series = tif.series[0]
    axes, shape = series.axes, tuple(series.shape)
    if channel is None:
        if _plane_axes(axes, shape):
            raise _stack_error(path, shape, axes)
        return series.asarray(), axes
    axis, index = _locate_channel(tif, channel, path)
    if axis < 0:
        return series.asarray(), axes
    n_outer = len(axes) - len(series.keyframe.axes)  # axes counting pages; the rest lie inside one page
    if axis < n_outer:
        position = [0] * n_outer
        position[axis] = index
        key = int(np.ravel_multi_index(position, shape[:n_outer]))
        return tif.asarray(key=key, series=0), series.keyframe.axes
    pixels = series.asarray()  # the channel lies inside the page (colour samples): one page is read
    return np.take(pixels, index, axis=axis), axes[:axis] + axes[axis + 1:]


def _read_pixels(path: str | os.PathLike) -> tuple[np.ndarray, bool]:
    """Return the stored pixel array of one image and whether its last axis holds colour samples."""
    path = _as_path(path)
    file_path, channel = split_channel(path)
    _require_file(file_path)
    try:
        if file_path.suffix.lower() in TIFF_SUFFIXES:
            with tifffile.TiffFile(file_path) as tif:
                pixels, axes = _read_tiff_plane(tif, channel, path)
            has_samples = "S" in axes
            if has_samples:
                pixels = np.moveaxis(pixels, axes.index("S"), -1)
        else:
            if channel is not None:
                raise ArtsegInputError(f"cannot read image: {path}: {CHANNEL_MARK} needs a TIFF file")
            pixels = iio.imread(file_path, plugin="pillow")
            has_samples = pixels.ndim == 3 and pixels.shape[-1] in (2, 3, 4)
    except ArtsegInputError:
        raise
    except Exception as err:  # any decoder failure means the same thing to the user
        raise ArtsegInputError(f"cannot read image: {path}: {_decoder_reason(err)}") from err
    _require_finite(pixels, path)
    return pixels, has_samples


def _require_finite(pixels: np.ndarray, path: Path) -> None:
    """Refuse a float image holding NaN or infinity: every reader goes through here."""
    if pixels.dtype.kind not in "fc":
        return
    n_bad = int(pixels.size - np.count_nonzero(np.isfinite(pixels)))
    if n_bad:
        raise ArtsegInputError(f"{path}: {n_bad} pixel(s) are NaN or infinite; images must hold finite values")


def _as_2d(pixels: np.ndarray, has_samples: bool, path: Path, *, to_gray) -> np.ndarray:
    """Drop singleton axes and reduce colour samples to one plane with ``to_gray``."""
    spatial = tuple(s for s in (pixels.shape[:-1] if has_samples else pixels.shape) if s != 1)
    if len(spatial) != 2:
        raise ArtsegInputError(f"cannot read image: {path}: expected one 2-D image, got shape {pixels.shape}")
    if has_samples:
        return to_gray(pixels.reshape(*spatial, pixels.shape[-1]))
    return pixels.reshape(spatial)


def _luminance(pixels: np.ndarray) -> np.ndarray:
    samples = pixels.shape[-1]
    if samples in (1, 2):  # gray or gray + alpha
        return pixels[..., 0].astype(np.float64)
    return pixels[..., :3].astype(np.float64) @ _LUMA_WEIGHTS


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read a brightfield image as a 2-D float32 gray array of raw (unscaled) values.

    Parameters
    ----------
    path : str or path-like
        TIFF (8/16-bit integer or float, read with tifffile) or PNG/JPEG (imageio).
        One plane of a multi-channel, multi-page or OME-TIFF is chosen by ending the
        path in ``#channel=NAME`` (OME channel name) or ``#channel=INDEX`` (0-based);
        only that plane is read.

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` float32. RGB/RGBA images are converted to luminance
        (BT.709 weights, alpha ignored); values keep the stored scale.

    Raises
    ------
    ArtsegInputError
        The file is missing, cannot be decoded, is not a single 2-D image, or is a
        float image holding NaN or infinite pixels.

    See Also
    --------
    read_image_raw : the same image in its stored dtype.
    normalize_percentile : scale to ~[0, 1] before feeding a network.
    """
    path = _as_path(path)
    pixels, has_samples = _read_pixels(path)
    gray = _as_2d(pixels, has_samples, path, to_gray=_luminance)
    return gray.astype(np.float32, copy=False)


def read_image_raw(path: str | os.PathLike) -> np.ndarray:
    """Read an image as a 2-D gray array in its stored dtype.

    Used where the output must keep the input's dtype (clean-image synthesis).
    Colour images are converted to luminance, rounded and cast back to the stored dtype.

    Parameters
    ----------
    path : str or path-like
        Image file (see :func:`read_image`).

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` array with the file's dtype.

    Raises
    ------
    ArtsegInputError
        The file is missing, cannot be decoded, is not a single 2-D image, or is a
        float image holding NaN or infinite pixels.
    """
    path = _as_path(path)
    pixels, has_samples = _read_pixels(path)

    def to_gray_same_dtype(colour: np.ndarray) -> np.ndarray:
        gray = _luminance(colour)
        if np.issubdtype(colour.dtype, np.integer):
            info = np.iinfo(colour.dtype)
            gray = np.clip(np.rint(gray), info.min, info.max)
        return gray.astype(colour.dtype)

    return _as_2d(pixels, has_samples, path, to_gray=to_gray_same_dtype)


def read_labels(path: str | os.PathLike) -> np.ndarray:
    """Read an instance label image (or mask) as 2-D int32, values as stored.

    Parameters
    ----------
    path : str or path-like
        Integer TIFF/PNG; a colour file is accepted only when its colour channels are equal.

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` int32.

    Raises
    ------
    ArtsegInputError
        Missing or unreadable file, differing colour channels, non-integer (or
        NaN/infinite) values or labels too large for int32.
    """
    path = _as_path(path)
    pixels, has_samples = _read_pixels(path)

    def first_channel_if_gray(colour: np.ndarray) -> np.ndarray:
        planes = colour[..., : min(colour.shape[-1], 3)]
        if not np.all(planes == planes[..., :1]):
            raise ArtsegInputError(f"{path}: label image has colour channels that differ")
        return colour[..., 0]

    labels = _as_2d(pixels, has_samples, path, to_gray=first_channel_if_gray)
    if labels.dtype.kind == "f":  # finite: _read_pixels refuses NaN and infinity
        if not np.all(labels == np.round(labels)):
            raise ArtsegInputError(f"{path}: label image holds non-integer values")
    if labels.dtype.kind == "b":
        return labels.astype(np.int32)
    if labels.size and (labels.min() < np.iinfo(np.int32).min or labels.max() > np.iinfo(np.int32).max):
        raise ArtsegInputError(f"{path}: label values do not fit in int32")
    return labels.astype(np.int32)


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """Read a mask as 2-D bool: any non-zero pixel is True.

    Parameters
    ----------
    path : str or path-like
        Mask file (0/1, 0/255 or any non-zero marking; colour allowed, alpha ignored).

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` bool.

    Raises
    ------
    ArtsegInputError
        Missing or unreadable file, not a single 2-D image, or NaN/infinite pixels.
    """
    path = _as_path(path)
    pixels, has_samples = _read_pixels(path)

    def any_colour_set(colour: np.ndarray) -> np.ndarray:
        planes = colour[..., :1] if colour.shape[-1] in (1, 2) else colour[..., :3]
        return np.any(planes != 0, axis=-1)

    return _as_2d(pixels, has_samples, path, to_gray=any_colour_set) != 0


def image_shape(path: str | os.PathLike) -> tuple[int, int]:
    """Return ``(H, W)`` of an image file, reading only its header where the format allows.

    Raises
    ------
    ArtsegInputError
        Missing or unreadable file, or not a single 2-D image.
    """
    path = _as_path(path)
    file_path, channel = split_channel(path)
    _require_file(file_path)
    try:
        if file_path.suffix.lower() in TIFF_SUFFIXES:
            with tifffile.TiffFile(file_path) as tif:
                series = tif.series[0]
                shape, axes = tuple(series.shape), series.axes
                if channel is None and _plane_axes(axes, shape):
                    raise _stack_error(path, shape, axes)
                axis = -1 if channel is None else _locate_channel(tif, channel, path)[0]
            if axis >= 0:
                shape, axes = shape[:axis] + shape[axis + 1:], axes[:axis] + axes[axis + 1:]
            spatial = tuple(s for s, a in zip(shape, axes) if a != "S" and s != 1)
        else:
            if channel is not None:
                raise ArtsegInputError(f"cannot read image: {path}: {CHANNEL_MARK} needs a TIFF file")
            props = iio.improps(file_path, plugin="pillow")
            shape = props.shape
            has_samples = len(shape) == 3 and shape[-1] in (2, 3, 4)
            spatial = tuple(s for s in (shape[:-1] if has_samples else shape) if s != 1)
    except ArtsegInputError:
        raise
    except Exception as err:
        raise ArtsegInputError(f"cannot read image: {path}: {_decoder_reason(err)}") from err
    if len(spatial) != 2:
        raise ArtsegInputError(f"cannot read image: {path}: expected one 2-D image, got shape {shape}")
    return int(spatial[0]), int(spatial[1])


def check_same_shape(
    a,
    b,
    what: str,
    path: str | os.PathLike,
    *,
    reference: str | os.PathLike | None = None,
    reference_what: str = "image",
) -> None:
    """Raise a clear error unless two images (or shapes) agree.

    Parameters
    ----------
    a, b : numpy.ndarray or tuple of int
        The reference image (e.g. the brightfield) and the one that must match it.
    what : str
        What ``b`` is, in the user's words (``"mask"``, ``"fluorescence"``).
    path : str or path-like
        The file ``b`` came from, named in the message.
    reference : str or path-like, optional
        The file ``a`` came from, named in the message when given.
    reference_what : str
        What ``a`` is (default ``"image"``).

    Raises
    ------
    ArtsegInputError
        ``"<path>: mask shape (h, w) does not match image shape (H, W) of <reference>"``.
    """
    shape_a = tuple(a) if isinstance(a, (tuple, list)) else tuple(np.shape(a))
    shape_b = tuple(b) if isinstance(b, (tuple, list)) else tuple(np.shape(b))
    if shape_a != shape_b:
        source = "" if reference is None else f" of {reference}"
        raise ArtsegInputError(
            f"{path}: {what} shape {shape_b} does not match {reference_what} shape {shape_a}{source}"
        )


