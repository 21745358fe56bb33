"""The labelling state: which fields there are, what each was answered, where to resume.

Pure functions on plain values (lists, dicts, strings); the files are read and written by
:mod:`artseg.label.store`. A field's answer is one of :data:`ANSWERS`; a skipped field is
answered but carries no label, so it never reaches the image manifest.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

ANSWERS = ("artifact", "clean", "skip")
# The image manifest's label values (docs/CONTRACTS.md): 1 = contains artifacts, 0 = clean.
LABEL_OF_ANSWER = {"artifact": 1, "clean": 0}
ANSWER_OF_LABEL = {1: "artifact", 0: "clean"}


@dataclass(frozen=True)
class Field:
    """One field of view to label.

    Attributes
    ----------
    image : str
        Absolute, normalised path of the image file (the key its answer is stored under).
    name : str
        Path relative to the input folder or manifest folder, as ``artseg predict`` names it.
    split : str or None
        ``train``/``val``/``test`` carried over from an input manifest, else ``None``.
    overlay : str or None
        Mask file of a model's prediction for this field, if one was given and exists.
    p_artifact : float or None
        The model's probability that the field contains artifacts, from ``predictions.csv``.
    """

    image: str
    name: str
    split: str | None = None
    overlay: str | None = None
    p_artifact: float | None = None


def record_answer(answers: Mapping[str, str], image: str, answer: str) -> dict[str, str]:
    """Return a copy of ``answers`` with ``image`` answered ``answer``.

    Raises
    ------
    ValueError
        ``answer`` is not one of :data:`ANSWERS`.
    """
    if answer not in ANSWERS:
        raise ValueError(f"answer {answer!r} is not one of {', '.join(ANSWERS)}")
    updated = dict(answers)
    updated[image] = answer
    return updated


def next_unanswered(fields: Sequence[Field], answers: Mapping[str, str], after: int = -1) -> int | None:
    """Index of the first unanswered field after position ``after``, wrapping round; ``None`` if all are answered.

    ``after=-1`` gives the first unanswered field, where a restarted session resumes.

    Examples
    --------
    >>> fields = [Field(image=f"/f{i}.tif", name=f"f{i}.tif") for i in range(4)]
    >>> next_unanswered(fields, {"/f0.tif": "clean", "/f2.tif": "skip"}, after=0)
    1
    >>> next_unanswered(fields, {"/f0.tif": "clean", "/f3.tif": "skip"}, after=2)
    1
    """
    count = len(fields)
    for step in range(1, count + 1):
        index = (after + step) % count
        if fields[index].image not in answers:
            return index
    return None


def answer_counts(fields: Sequence[Field], answers: Mapping[str, str]) -> dict[str, int]:
    """Number of fields per answer, plus ``answered`` and ``total``, counting only these fields."""
    counts = {answer: 0 for answer in ANSWERS}
    for field in fields:
        answer = answers.get(field.image)
        if answer is not None:
            counts[answer] += 1
    counts["answered"] = sum(counts[answer] for answer in ANSWERS)
    counts["total"] = len(fields)
    return counts


def relative_to(path: str, folder: str) -> str:
    """``path`` relative to ``folder`` with forward slashes (absolute where no relative path exists)."""
    try:
        relative = os.path.relpath(path, folder)
    except ValueError:  # another drive on Windows
        return path
    return relative.replace(os.sep, "/")


def labels_table(
    fields: Sequence[Field],
    answers: Mapping[str, str],
    csv_folder: str,
    *,
    kept_rows: Sequence[Mapping[str, object]] = (),
) -> pd.DataFrame:
    """The image manifest of the labelled fields: ``image, label`` (and ``split`` when known).

    Parameters
    ----------
    fields : sequence of Field
        The fields in labelling order.
    answers : mapping
        Absolute image path -> answer; ``skip`` answers are left out (they carry no label).
    csv_folder : str
        Folder of the CSV; image paths are written relative to it.
    kept_rows : sequence of mapping
        Rows of an earlier labels file whose images are not among ``fields`` (absolute
        ``image``, ``label`` 0/1, optional ``split``); kept after the fields' rows so a
        session on another folder never drops earlier labels.

    Returns
    -------
    pandas.DataFrame
        Columns ``image, label`` and ``split`` if any row has one; ``label`` is 1 (artifact) or 0 (clean).
    """
    rows = []
    for field in fields:
        answer = answers.get(field.image)
        if answer in LABEL_OF_ANSWER:
            rows.append({"image": field.image, "label": LABEL_OF_ANSWER[answer], "split": field.split})
    rows.extend({"image": row["image"], "label": int(row["label"]), "split": row.get("split")} for row in kept_rows)
    table = pd.DataFrame(rows, columns=["image", "label", "split"])
    table["image"] = [relative_to(path, csv_folder) for path in table["image"]]
    table["label"] = table["label"].astype("int64")
    if table["split"].isna().all():
        table = table.drop(columns="split")
    return table


def skipped_table(fields: Sequence[Field], answers: Mapping[str, str], csv_folder: str) -> pd.DataFrame:
    """The fields answered ``skip``, as one ``image`` column relative to ``csv_folder``."""
    skipped = [relative_to(field.image, csv_folder) for field in fields if answers.get(field.image) == "skip"]
    return pd.DataFrame({"image": skipped}, dtype=object)
