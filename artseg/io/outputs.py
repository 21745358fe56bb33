"""Writing outputs: the one atomic writer (files and folders) and the output-path checks.

Every writer puts its bytes in a temporary file (or folder) beside the target and renames it into
place only when complete, so an interrupted run never leaves a half-written output.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pandas as pd
import tifffile

from artseg.errors import ArtsegInputError

from artseg.io.images import TIFF_SUFFIXES, IMAGE_SUFFIXES

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


# --------------------------------------------------------------------------- writers


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


@contextlib.contextmanager
def atomic_target(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it into place, else delete it.

    The temporary name keeps ``path``'s suffix, so writers that choose a format by suffix
    (matplotlib, imageio, numpy) work on it.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> with atomic_target(folder / "table.txt") as temporary:
    ...     _ = temporary.write_text("done")
    >>> sorted(p.name for p in folder.iterdir())
    ['table.txt']
    """
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
    with atomic_target(path) as temp:
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
    with atomic_target(path) as temp:
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
    with atomic_target(path) as temp:
        temp.write_text(text, encoding="utf-8")


def atomic_write_csv(df: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write a DataFrame as CSV (no index) atomically."""
    with atomic_target(path) as temp:
        df.to_csv(temp, index=False)




@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike, *, replace: bool = False) -> Iterator[Path]:
    """Yield an empty staging folder beside ``path``; on success rename it to ``path``.

    A failure (any exception) deletes the staging folder, so ``path`` is either absent, the
    previous complete folder, or the new complete one, never half-written.

    Parameters
    ----------
    path : str or path-like
        The folder to create.
    replace : bool
        Replace an existing ``path``; otherwise an existing ``path`` is an error.

    Raises
    ------
    ArtsegInputError
        ``path`` exists (and ``replace`` is False) or is a file.
    """
    path = check_output_folder(path, option="output folder")
    if path.exists() and not replace:
        raise ArtsegInputError(f"{path}: output folder exists already")
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial"))
    try:
        yield staging
        os.chmod(staging, 0o777 & ~_UMASK)  # mkdtemp creates 0700
        if path.exists():
            retired = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, retired)
            os.replace(staging, path)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.replace(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
