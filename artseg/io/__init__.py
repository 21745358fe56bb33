"""Reading and writing images and manifests: the one place where files are touched.

Everything else in ArtSeg works on arrays. Images are read one at a time by the callers
(manifests hold paths, not pixels); every writer is atomic (:mod:`artseg.io.outputs`); every
problem with a user's file becomes an :class:`~artseg.errors.ArtsegInputError` whose one-line
message names the file (and manifest row) and what is wrong with it.

``images`` reads pixels, ``manifests`` reads tables of paths, ``outputs`` writes.
"""

from artseg.io.images import (
    CHANNEL_MARK,
    IMAGE_SUFFIXES,
    TIFF_SUFFIXES,
    check_same_shape,
    image_shape,
    read_image,
    read_image_raw,
    read_labels,
    read_mask,
    split_channel,
    with_channel,
)
from artseg.io.manifests import (
    normalize_letter_well,
    read_image_manifest,
    read_nuclei_manifest,
    read_plate_manifest,
    validate_mask_shapes,
)
from artseg.io.outputs import (
    atomic_folder,
    atomic_target,
    atomic_write_csv,
    atomic_write_text,
    check_output_file,
    check_output_folder,
    write_image,
    write_labels,
    write_mask,
    write_tiff,
)
from artseg.preprocess import normalize_percentile

__all__ = [
    "CHANNEL_MARK",
    "IMAGE_SUFFIXES",
    "TIFF_SUFFIXES",
    "atomic_folder",
    "atomic_target",
    "atomic_write_csv",
    "atomic_write_text",
    "check_output_file",
    "check_output_folder",
    "check_same_shape",
    "image_shape",
    "normalize_percentile",
    "normalize_letter_well",
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
