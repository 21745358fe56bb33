"""Reading and writing images and manifests: the one place where files are touched.

Everything else in ArtSeg works on arrays. Images are read one at a time by the
callers (manifests hold paths, not pixels), every writer is atomic (a temporary
file in the target folder, then :func:`os.replace`), and every problem with a
user's file becomes an :class:`~artseg.errors.ArtsegInputError` whose one-line
message names the file (and manifest row) and what is wrong with it.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from xml.etree import ElementTree
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pandas as pd
import tifffile

from artseg.errors import ArtsegInputError

__all__ = [
    "CHANNEL_MARK",
    "IMAGE_SUFFIXES",
    "TIFF_SUFFIXES",
    "atomic_write_csv",
    "atomic_write_text",
    "check_output_file",
    "check_output_folder",
    "check_same_shape",
    "image_shape",
    "normalize_percentile",
    "read_image",
    "read_image_manifest",
    "read_image_raw",
    "read_labels",
    "read_mask",
    "read_nuclei_manifest",
    "read_plate_manifest",
    "split_channel",
    "validate_mask_shapes",
    "with_channel",
    "write_image",
    "write_labels",
    "write_mask",
    "write_tiff",
]

TIFF_SUFFIXES = (".tif", ".tiff")
IMAGE_SUFFIXES = (*TIFF_SUFFIXES, ".png", ".jpg", ".jpeg")

# ITU-R BT.709 luma weights, the convention of skimage.color.rgb2gray.
_LUMA_WEIGHTS = np.array([0.2125, 0.7154, 0.0721])

_LABEL_VALUES = {"1": 1, "artifact": 1, "0": 0, "clean": 0, "1.0": 1, "0.0": 0}
_SPLIT_VALUES = {"train": "train", "val": "val", "validation": "val", "test": "test"}
_WELL_PATTERN = re.compile(r"^([A-Za-z]{1,2})0*(\d{1,3})$")

# Columns holding file paths; they are resolved against the manifest's folder.
_IMAGE_MANIFEST_PATHS = ("image", "mask", "nuclei", "cells", "fluorescence")
_PLATE_PATHS = ("brightfield", "fluorescence", "artifact_mask", "cell_mask", "cell_truth")
_NUCLEI_PATHS = ("image", "nuclei", "artifact_mask", "nuclei_pred")


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


def _first_existing(path: Path) -> Path:
    """``path`` itself or its nearest ancestor that exists (lstat: a dangling link counts)."""
    for candidate in (path, *path.parents):
        if os.path.lexists(candidate):
            return candidate
    return Path(".")


def check_output_folder(path: str | os.PathLike, option: str = "--out") -> Path:
    """Check, before any work is done, that ``path`` is a folder or can be created as one.

    Parameters
    ----------
    path : str or path-like
        The output folder a command will write into (it need not exist yet).
    option : str
        What named it (the command-line option), for the message.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    ArtsegInputError
        ``"<path>: --out exists and is not a folder"``, or an ancestor of ``path`` is a file.
    """
    path = Path(path)
    existing = _first_existing(path)
    if existing == path and not path.is_dir():
        raise ArtsegInputError(f"{path}: {option} exists and is not a folder")
    if not existing.is_dir():
        raise ArtsegInputError(f"{path}: {option} cannot be created: {existing} exists and is not a folder")
    return path


def check_output_file(path: str | os.PathLike, option: str = "--out") -> Path:
    """Check, before any work is done, that ``path`` can be written as a file.

    Parameters
    ----------
    path : str or path-like
        The output file (it need not exist yet; its folders are created when it is written).
    option : str
        What named it (the command-line option), for the message.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    ArtsegInputError
        ``"<path>: --out is an existing folder, not a file"``, or an ancestor of ``path`` is a file.
    """
    path = Path(path)
    if path.is_dir():
        raise ArtsegInputError(f"{path}: {option} is an existing folder, not a file")
    existing = _first_existing(path.parent)
    if not existing.is_dir():
        raise ArtsegInputError(f"{path}: {option} cannot be written: {existing} exists and is not a folder")
    return path


def normalize_percentile(image: np.ndarray, low: float = 1.0, high: float = 99.8) -> np.ndarray:
    """Scale a whole image so its ``low`` and ``high`` percentiles map to 0 and 1.

    Computed on the whole image, so call it before tiling: tiles of one image then
    share one scaling and tiled predictions agree with whole-image ones.

    Parameters
    ----------
    image : numpy.ndarray
        Any-shaped numeric array; non-finite values are ignored for the percentiles.
    low, high : float
        Percentiles (0-100, ``low < high``).

    Returns
    -------
    numpy.ndarray
        float32, ~[0, 1] (values beyond the percentiles are not clipped). A flat
        image (both percentiles equal) becomes all zeros instead of dividing by zero.

    Examples
    --------
    >>> import numpy as np
    >>> out = normalize_percentile(np.arange(101, dtype=np.uint16), 0, 100)
    >>> float(out.min()), float(out.max())
    (0.0, 1.0)
    """
    if not 0.0 <= low < high <= 100.0:
        raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100, got {low}, {high}")
    values = np.asarray(image, dtype=np.float32)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return np.zeros_like(values)
    lo, hi = np.percentile(finite, [low, high])
    span = hi - lo
    if not span > np.finfo(np.float32).eps * max(abs(lo), abs(hi), 1.0):
        return np.where(np.isfinite(values), 0.0, values).astype(np.float32)
    return ((values - lo) / span).astype(np.float32)


# --------------------------------------------------------------------------- writers


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


@contextlib.contextmanager
def _atomic_target(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it into place, else delete it."""
    path = check_output_file(path, option="output")
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=f".tmp{path.suffix}"
    )
    os.close(handle)
    temp = Path(temp_name)
    try:
        yield temp
        os.chmod(temp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the file ordinary permissions
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def write_tiff(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write an array as a TIFF, keeping its dtype, atomically.

    Parameters
    ----------
    path : str or path-like
        Destination; parent folders are created.
    array : numpy.ndarray
        2-D image (or any array tifffile accepts).
    """
    array = np.asarray(array)
    is_colour = array.ndim == 3 and array.shape[-1] in (3, 4)
    with _atomic_target(path) as temp:
        tifffile.imwrite(temp, array, photometric="rgb" if is_colour else "minisblack")


def write_image(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write an image by suffix (TIFF keeps any dtype; PNG/JPEG via imageio), atomically.

    Raises
    ------
    ArtsegInputError
        Unsupported suffix.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in TIFF_SUFFIXES:
        write_tiff(path, array)
        return
    if suffix not in IMAGE_SUFFIXES:
        supported = ", ".join(IMAGE_SUFFIXES)
        raise ArtsegInputError(f"{path}: unsupported image format {suffix!r} (use one of {supported})")
    with _atomic_target(path) as temp:
        iio.imwrite(temp, np.asarray(array), extension=suffix)


def write_mask(path: str | os.PathLike, mask: np.ndarray) -> None:
    """Write a boolean mask as 8-bit 0/255, PNG or TIFF by suffix, atomically.

    Raises
    ------
    ArtsegInputError
        Suffix other than PNG or TIFF (JPEG would corrupt a mask).
    """
    path = Path(path)
    if path.suffix.lower() not in (*TIFF_SUFFIXES, ".png"):
        raise ArtsegInputError(f"{path}: masks are written as .png or .tif, not {path.suffix!r}")
    write_image(path, np.where(np.asarray(mask, dtype=bool), 255, 0).astype(np.uint8))


def write_labels(path: str | os.PathLike, labels: np.ndarray) -> None:
    """Write an instance label image as uint16 (PNG or TIFF by suffix), atomically.

    A TIFF with more than 65535 labels is stored as uint32 instead.

    Raises
    ------
    ArtsegInputError
        Negative labels, too many labels for a PNG, or an unsupported suffix.
    """
    path = Path(path)
    labels = np.asarray(labels)
    if path.suffix.lower() not in (*TIFF_SUFFIXES, ".png"):
        raise ArtsegInputError(f"{path}: label images are written as .png or .tif, not {path.suffix!r}")
    top = int(labels.max()) if labels.size else 0
    if labels.size and labels.min() < 0:
        raise ArtsegInputError(f"{path}: label images cannot hold negative labels")
    if top > np.iinfo(np.uint16).max:
        if path.suffix.lower() == ".png":
            raise ArtsegInputError(f"{path}: {top} labels do not fit a 16-bit PNG; use .tif")
        write_tiff(path, labels.astype(np.uint32))
        return
    write_image(path, labels.astype(np.uint16))


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write UTF-8 text atomically (temporary file in the same folder, then rename)."""
    with _atomic_target(path) as temp:
        temp.write_text(text, encoding="utf-8")


def atomic_write_csv(df: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write a DataFrame as CSV (no index) atomically."""
    with _atomic_target(path) as temp:
        df.to_csv(temp, index=False)


# --------------------------------------------------------------------------- manifests


def _read_csv_table(csv_path: Path, required: Sequence[str]) -> pd.DataFrame:
    """Read a manifest as strings ("" for empty cells) and check it has rows and the required columns."""
    _require_file(csv_path, "manifest")
    try:
        table = pd.read_csv(csv_path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise ArtsegInputError(f"{csv_path}: manifest is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise ArtsegInputError(f"{csv_path}: cannot parse manifest: {_one_line(err)}") from err
    table.columns = [str(c).strip() for c in table.columns]
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise ArtsegInputError(
            f"{csv_path}: missing required column(s) {', '.join(missing)} "
            f"(found: {', '.join(table.columns) or 'none'})"
        )
    if len(table) == 0:
        raise ArtsegInputError(f"{csv_path}: manifest has no rows")
    return table.apply(lambda column: column.str.strip())


def _row_name(csv_path: Path, index: int) -> str:
    # Row numbers as a spreadsheet shows them: the header is row 1.
    return f"{csv_path}: row {index + 2}"


def _resolve_paths(
    table: pd.DataFrame, csv_path: Path, columns: Iterable[str], *, must_exist: Iterable[str]
) -> None:
    """Make path columns absolute in place (empty cells become None); check ``must_exist`` files."""
    base = csv_path.parent.resolve()
    must_exist = set(must_exist)
    for column in columns:
        if column not in table.columns:
            continue
        resolved: list[str | None] = []
        for index, value in enumerate(table[column]):
            if value == "":
                resolved.append(None)
                continue
            try:
                file_part, channel = split_channel(value)  # a #channel= suffix stays on the path
            except ArtsegInputError as err:
                raise ArtsegInputError(f"{_row_name(csv_path, index)}: {column}: {err}") from None
            full = file_part.expanduser()
            full = Path(os.path.normpath(full if full.is_absolute() else base / full))
            if column in must_exist and not full.is_file():
                raise ArtsegInputError(f"{_row_name(csv_path, index)}: {column} file not found: {full}")
            resolved.append(with_channel(full, channel))
        table[column] = pd.Series(resolved, index=table.index, dtype=object)


def _require_values(table: pd.DataFrame, csv_path: Path, columns: Iterable[str]) -> None:
    for column in columns:
        for index in np.flatnonzero(table[column].isna() | (table[column] == "")):
            raise ArtsegInputError(f"{_row_name(csv_path, int(index))}: empty {column}")


def _has_path(value) -> bool:
    return isinstance(value, (str, os.PathLike)) and str(value) != ""


def _check_row_shapes(table: pd.DataFrame, reference: str, columns: Sequence[str], row_name) -> None:
    """Check each row's ``columns`` files against its ``reference`` file; ``row_name(i)`` labels errors."""
    present = [c for c in columns if c in table.columns]
    if not present:
        return
    for position, values in enumerate(table[[reference, *present]].to_dict("records")):
        paths = {c: values[c] for c in present if _has_path(values[c])}
        if not paths:
            continue
        try:
            reference_shape = image_shape(values[reference])
            for column, path in paths.items():
                check_same_shape(reference_shape, image_shape(path), column, path,
                                 reference=values[reference], reference_what=reference)
        except ArtsegInputError as err:
            raise ArtsegInputError(f"{row_name(position)}: {err}") from None


def validate_mask_shapes(
    manifest_df: pd.DataFrame, *, reference: str = "image", columns: Sequence[str] = ("mask",)
) -> None:
    """Check that every mask has its image's shape, reading file headers only.

    Parameters
    ----------
    manifest_df : pandas.DataFrame
        A manifest as returned by :func:`read_image_manifest` (absolute paths; ``None`` = no file).
    reference : str
        Column of the image the others must match.
    columns : sequence of str
        Columns to check; absent columns are skipped.

    Raises
    ------
    ArtsegInputError
        Naming the DataFrame index of the row and the mismatching file.
    """
    _check_row_shapes(manifest_df, reference, columns, lambda i: f"manifest row {manifest_df.index[i]}")


def read_image_manifest(
    csv_path: str | os.PathLike, *, require_label: bool = False, check_shapes: bool = True
) -> pd.DataFrame:
    """Read and validate an image manifest (columns ``image, label, mask, split``).

    Parameters
    ----------
    csv_path : str or path-like
        CSV file; paths inside are relative to its folder (absolute paths allowed).
    require_label : bool
        Require a ``label`` column with a value on every row (training).
    check_shapes : bool
        Check each mask's shape against its image (file headers only).

    Returns
    -------
    pandas.DataFrame
        One row per image, extra columns kept. Path columns (``image``, ``mask`` and
        the synthetic ground-truth columns ``nuclei``, ``cells``, ``fluorescence``)
        are absolute strings, ``None`` where empty. ``label`` is int 0/1 (nullable
        ``Int64`` if some rows are unlabelled and labels are not required);
        ``split`` is ``train``/``val``/``test`` (``validation`` accepted) or ``None``.

    Raises
    ------
    ArtsegInputError
        Missing/empty/unparsable CSV, missing column, empty image cell, label other
        than 1/0/artifact/clean (case-insensitive), unknown split, missing image or
        mask file, mask shape different from its image.
    """
    csv_path = Path(csv_path)
    required = ["image", "label"] if require_label else ["image"]
    table = _read_csv_table(csv_path, required)
    _require_values(table, csv_path, required)
    if "label" in table.columns:
        labels: list[int | None] = []
        for index, value in enumerate(table["label"]):
            key = value.lower()
            if key == "":
                labels.append(None)
            elif key in _LABEL_VALUES:
                labels.append(_LABEL_VALUES[key])
            else:
                raise ArtsegInputError(
                    f"{_row_name(csv_path, index)}: label {value!r} is not one of 1, 0, artifact, clean"
                )
        table["label"] = pd.array(labels, dtype="Int64")
        if not table["label"].isna().any():
            table["label"] = table["label"].astype(np.int64)
    if "split" in table.columns:
        splits: list[str | None] = []
        for index, value in enumerate(table["split"]):
            if value == "":
                splits.append(None)
            elif value.lower() in _SPLIT_VALUES:
                splits.append(_SPLIT_VALUES[value.lower()])
            else:
                raise ArtsegInputError(
                    f"{_row_name(csv_path, index)}: split {value!r} is not one of train, val, test"
                )
        table["split"] = pd.Series(splits, index=table.index, dtype=object)
    _resolve_paths(table, csv_path, _IMAGE_MANIFEST_PATHS, must_exist=("image", "mask"))
    if check_shapes:
        _check_row_shapes(table, "image", ["mask"], lambda i: _row_name(csv_path, i))
    return table


def _normalize_well(value: str) -> str | None:
    match = _WELL_PATTERN.match(value)
    if match is None:
        return None
    return f"{match.group(1).upper()}{int(match.group(2)):02d}"


def read_plate_manifest(csv_path: str | os.PathLike, *, check_shapes: bool = True) -> pd.DataFrame:
    """Read and validate a plate manifest (one row per field of view).

    Parameters
    ----------
    csv_path : str or path-like
        CSV with columns ``experiment, ligand, concentration, well, field,
        brightfield, fluorescence`` and optional ``artifact_mask, cell_mask``.
    check_shapes : bool
        Check that fluorescence and masks match the brightfield shape (headers only).

    Returns
    -------
    pandas.DataFrame
        ``concentration`` float (molar, >= 0; 0 = vehicle), ``field`` int, ``well``
        normalised to ``A01`` style, path columns absolute (``None`` where empty).

    Raises
    ------
    ArtsegInputError
        Missing column, empty required cell, non-numeric or negative concentration,
        malformed well or field, missing file, shape mismatch.
    """
    csv_path = Path(csv_path)
    required = ["experiment", "ligand", "concentration", "well", "field", "brightfield", "fluorescence"]
    table = _read_csv_table(csv_path, required)
    _require_values(table, csv_path, required)
    concentrations = pd.to_numeric(table["concentration"], errors="coerce")
    for index, (text, number) in enumerate(zip(table["concentration"], concentrations)):
        if not np.isfinite(number) or number < 0:
            raise ArtsegInputError(
                f"{_row_name(csv_path, index)}: concentration {text!r} is not a number >= 0 (molar)"
            )
    table["concentration"] = concentrations.astype(np.float64)
    wells = []
    for index, value in enumerate(table["well"]):
        well = _normalize_well(value)
        if well is None:
            raise ArtsegInputError(f"{_row_name(csv_path, index)}: well {value!r} is not like A01")
        wells.append(well)
    table["well"] = wells
    fields = pd.to_numeric(table["field"], errors="coerce")
    for index, (text, number) in enumerate(zip(table["field"], fields)):
        if not np.isfinite(number) or number < 0 or number != int(number):
            raise ArtsegInputError(f"{_row_name(csv_path, index)}: field {text!r} is not an integer >= 0")
    table["field"] = fields.astype(np.int64)
    _resolve_paths(table, csv_path, _PLATE_PATHS, must_exist=_PLATE_PATHS)
    if check_shapes:
        others = ["fluorescence", "artifact_mask", "cell_mask", "cell_truth"]
        _check_row_shapes(table, "brightfield", others, lambda i: _row_name(csv_path, i))
    return table


def read_nuclei_manifest(csv_path: str | os.PathLike, *, check_shapes: bool = True) -> pd.DataFrame:
    """Read and validate a nuclei manifest (``image, nuclei`` + optional ``artifact_mask, nuclei_pred``).

    Parameters
    ----------
    csv_path : str or path-like
        CSV file; paths relative to its folder.
    check_shapes : bool
        Check that label images and masks match the image shape (headers only).

    Returns
    -------
    pandas.DataFrame
        Path columns absolute (``None`` where empty); other columns kept as text.

    Raises
    ------
    ArtsegInputError
        Missing column, empty required cell, missing file, shape mismatch.
    """
    csv_path = Path(csv_path)
    table = _read_csv_table(csv_path, ["image", "nuclei"])
    _require_values(table, csv_path, ["image", "nuclei"])
    _resolve_paths(table, csv_path, _NUCLEI_PATHS, must_exist=_NUCLEI_PATHS)
    if check_shapes:
        _check_row_shapes(table, "image", _NUCLEI_PATHS[1:], lambda i: _row_name(csv_path, i))
    return table
