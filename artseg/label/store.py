"""Files of a labelling session: the fields to show, the earlier answers, every answer saved.

The answers live in the output image manifest (``labels.csv``: ``image, label[, split]``, read by
``artseg train``) and, for skipped fields, a sidecar ``labels.skipped.csv`` (one ``image``
column) so a restart does not show them again. Both are rewritten atomically after every
answer, so killing the server or closing the browser loses nothing.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path, PurePath

import numpy as np
import pandas as pd

from artseg.errors import ArtsegInputError
from artseg.io import IMAGE_SUFFIXES, atomic_write_csv, read_image_manifest
from artseg.label.state import (
    ANSWER_OF_LABEL,
    Field,
    answer_counts,
    labels_table,
    next_unanswered,
    record_answer,
    skipped_table,
)

# Written by ``artseg predict`` (artseg/commands/predict.py): masks at <out>/<relative folder>/<stem>.png.
PREDICTIONS_CSV = "predictions.csv"


def skipped_path(out_csv: Path) -> Path:
    """The sidecar listing skipped fields: ``labels.csv`` -> ``labels.skipped.csv``."""
    return out_csv.with_name(f"{out_csv.stem}.skipped.csv")


def _normalised(path: Path) -> str:
    return os.path.normpath(str(path))


def _split_or_none(value) -> str | None:
    return value if isinstance(value, str) and value != "" else None


def collect_fields(images: Path, *, exclude: Sequence[Path] = ()) -> list[Field]:
    """The fields to label: every image below a folder (sorted), or a manifest's rows in order.

    Parameters
    ----------
    images : pathlib.Path
        Folder (all .tif/.tiff/.png/.jpg/.jpeg below it) or image manifest CSV.
    exclude : sequence of pathlib.Path
        Folders whose images are not fields (the model's output folder when it lies inside).

    Raises
    ------
    ArtsegInputError
        Missing input, a file that is not a CSV, an invalid manifest or no images.
    """
    if images.is_dir():
        root = images.resolve()
        excluded = [folder.resolve() for folder in exclude]
        found = sorted(
            path for path in root.rglob("*")
            if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES
            and not any(folder == path.parent or folder in path.parents for folder in excluded)
        )
        fields = [Field(image=_normalised(path), name=path.relative_to(root).as_posix()) for path in found]
    elif images.is_file():
        if images.suffix.lower() != ".csv":
            raise ArtsegInputError(f"{images}: --images must be a folder of images or a manifest .csv")
        manifest = read_image_manifest(images, check_shapes=False)
        root = images.parent.resolve()
        splits = manifest["split"] if "split" in manifest.columns else [None] * len(manifest)
        fields = []
        for image, split in zip(manifest["image"], splits):
            path = Path(image)
            try:
                name = path.relative_to(root).as_posix()
            except ValueError:
                name = path.name
            fields.append(Field(image=image, name=name, split=_split_or_none(split)))
    else:
        raise ArtsegInputError(f"{images}: images folder or manifest not found")
    if not fields:
        raise ArtsegInputError(f"{images}: no images ({', '.join(IMAGE_SUFFIXES)}) found")
    seen: set[str] = set()
    for field in fields:
        if field.image in seen:
            raise ArtsegInputError(f"{images}: image {field.name} is listed twice")
        seen.add(field.image)
    return fields


def attach_predictions(fields: Sequence[Field], prediction_dir: Path) -> list[Field]:
    """Add each field's predicted mask and ``p_artifact`` from an ``artseg predict`` output folder.

    Fields the model did not predict keep no overlay.

    Raises
    ------
    ArtsegInputError
        The folder or its ``predictions.csv`` is missing or unreadable.
    """
    csv_path = prediction_dir / PREDICTIONS_CSV
    if not csv_path.is_file():
        raise ArtsegInputError(f"{prediction_dir}: no {PREDICTIONS_CSV}; --overlay takes an 'artseg predict' output folder")
    try:
        table = pd.read_csv(csv_path, dtype={"image": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise ArtsegInputError(f"{csv_path}: cannot read predictions ({str(err).splitlines()[0]})") from None
    if "image" not in table.columns:
        raise ArtsegInputError(f"{csv_path}: predictions lack an image column")
    probabilities = table["p_artifact"] if "p_artifact" in table.columns else [np.nan] * len(table)
    p_of_name = {str(name): float(p) for name, p in zip(table["image"], probabilities)}
    attached = []
    for field in fields:
        relative = PurePath(field.name)
        mask = prediction_dir / relative.parent / f"{relative.stem}.png"
        p_artifact = p_of_name.get(field.name)
        attached.append(Field(
            image=field.image,
            name=field.name,
            split=field.split,
            overlay=str(mask) if field.name in p_of_name and mask.is_file() else None,
            p_artifact=None if p_artifact is None or not np.isfinite(p_artifact) else p_artifact,
        ))
    return attached


def _has_rows(csv_path: Path) -> bool:
    """Whether an existing CSV has data rows (a header-only file is an empty answer list)."""
    try:
        return len(pd.read_csv(csv_path, dtype=str)) > 0
    except pd.errors.EmptyDataError:
        return False
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise ArtsegInputError(f"{csv_path}: cannot read earlier answers ({str(err).splitlines()[0]}); "
                               "fix or delete it") from None


def read_earlier_answers(out_csv: Path, fields: Sequence[Field]) -> tuple[dict[str, str], list[dict]]:
    """Answers saved by an earlier session, and its labelled rows for images not among ``fields``.

    Raises
    ------
    ArtsegInputError
        The labels file is not a valid image manifest (as ``artseg train`` would reject it).
    """
    answers: dict[str, str] = {}
    kept: list[dict] = []
    wanted = {field.image for field in fields}
    sidecar = skipped_path(out_csv)
    if sidecar.is_file() and _has_rows(sidecar):
        skipped = read_image_manifest(sidecar, check_shapes=False)
        answers.update({image: "skip" for image in skipped["image"] if image in wanted})
    if out_csv.is_file() and _has_rows(out_csv):
        labelled = read_image_manifest(out_csv, require_label=True, check_shapes=False)
        splits = labelled["split"] if "split" in labelled.columns else [None] * len(labelled)
        for image, label, split in zip(labelled["image"], labelled["label"], splits):
            if image in wanted:
                answers[image] = ANSWER_OF_LABEL[int(label)]  # a label outranks a stale skip
            else:
                kept.append({"image": image, "label": int(label), "split": _split_or_none(split)})
    return answers, kept


class LabelStore:
    """The answers of one session, saved atomically after every change; safe across threads.

    Parameters
    ----------
    fields : sequence of Field
        The fields in labelling order.
    out_csv : pathlib.Path
        The labels file (image manifest) to write; earlier answers in it are resumed.
    """

    def __init__(self, fields: Sequence[Field], out_csv: Path) -> None:
        self.fields = list(fields)
        self.out_csv = Path(out_csv)
        self._folder = str(self.out_csv.parent.resolve())
        self._lock = threading.Lock()
        self.answers, self._kept = read_earlier_answers(self.out_csv, self.fields)

    def counts(self) -> dict[str, int]:
        """Fields per answer, plus ``answered`` and ``total``."""
        with self._lock:
            return answer_counts(self.fields, self.answers)

    def resume_index(self) -> int | None:
        """The first unanswered field, ``None`` when every field is answered."""
        with self._lock:
            return next_unanswered(self.fields, self.answers)

    def answer(self, index: int, answer: str) -> int | None:
        """Record ``answer`` for field ``index``, save both files, return the next unanswered field.

        Raises
        ------
        IndexError
            No such field.
        ValueError
            Unknown answer.
        """
        if not 0 <= index < len(self.fields):
            raise IndexError(f"no field {index}")
        with self._lock:
            answers = record_answer(self.answers, self.fields[index].image, answer)
            self._save(answers)
            self.answers = answers
            return next_unanswered(self.fields, answers, after=index)

    def _save(self, answers: dict[str, str]) -> None:
        atomic_write_csv(labels_table(self.fields, answers, self._folder, kept_rows=self._kept), self.out_csv)
        sidecar = skipped_path(self.out_csv)
        skipped = skipped_table(self.fields, answers, self._folder)
        if len(skipped) or sidecar.exists():
            atomic_write_csv(skipped, sidecar)
