"""The paper's model comparison (§2.3.2-2.3.3, §3.2, Fig. 3, Supplementary Tables 1-4).

Six models (:mod:`artseg.detectors`) are trained on a manifest's ``train`` split. Each one's
probability cut-off is chosen on the ``val`` split by pooled pixel IoU, with the dataset's
smallest-object filter applied; the models are then scored on the ``test`` split with that
cut-off. The table builders here are pure functions of maps, masks and labels;
:func:`run_benchmark` is the orchestration (fit or reload models, predict, evaluate);
:mod:`artseg.commands.benchmark` writes the tables and figures.

Conventions of the tables:

- pixel-wise precision, recall, F1 and IoU are *pooled* over all test pixels (paper Box 1);
  ``mean_image_iou`` in ``scores.csv`` is the unweighted mean of per-image IoU;
- the image-level call "contains artifact" is the classifier gate (probability >= the
  configuration's ``gate_threshold``) for the classifier-based models (ScoreCAM-U-Net and
  ScoreCAM, which therefore share it, as in the paper) and "the post-processed mask is not
  empty" for the others;
- object sizes are given at the paper's field size and scaled by field area to the images
  at hand (the synthetic presets draw artifact areas as shares of the field).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from artseg.config import SegmenterConfig, config_to_dict
from artseg.detectors import (
    DETECTOR_NAMES,
    Detector,
    build_detectors,
    detector_slug,
    predict_all,
)
from artseg.errors import ArtsegInputError
from artseg.io import atomic_write_csv, atomic_write_text, check_same_shape, read_image, read_mask
from artseg.metrics import image_scores, iou_after_size_filter, pixel_scores, pixel_scores_per_image, pr_auc, pr_curve
from artseg.postprocess import DEFAULT_CUTOFFS, PAPER_MIN_SIZES, binarize, remove_small, search_cutoff

__all__ = [
    "PAPER_MIN_OBJECT_SIZE",
    "TABLE_ROWS",
    "BenchmarkResult",
    "ModelResult",
    "SplitData",
    "atomic_save",
    "choose_cutoff",
    "comparison_table",
    "evaluate_model",
    "load_split",
    "markdown_table",
    "object_size_settings",
    "paper_min_object_size",
    "pick_examples",
    "run_benchmark",
    "scale_object_size",
    "scores_table",
    "size_cutoff_table",
]

# Smallest kept object at the paper's field size (§2.3.3).
PAPER_MIN_OBJECT_SIZE = {"seven_cell_lines": 1000, "cho_m4r": 500, "lncap": 500}
# Rows of Supplementary Table 1: (key in the score dicts, row label).
TABLE_ROWS = (
    ("image_f1", "image F1"),
    ("f1", "pixel F1"),
    ("precision", "precision"),
    ("recall", "recall"),
    ("iou", "IoU"),
)
RUN_FILE = "run.json"


# --------------------------------------------------------------------------- object sizes


def scale_object_size(size: int, paper_shape: Sequence[int], shape: Sequence[int]) -> int:
    """Scale an object size in pixels from the paper's field to another field by area.

    Parameters
    ----------
    size : int
        Pixels at the paper's field size (0 = no filter).
    paper_shape, shape : sequence of int
        ``(H, W)`` of the paper's fields and of the fields at hand.

    Returns
    -------
    int
        ``round(size * H * W / (H_paper * W_paper))``, at least 1 for a positive size.

    Examples
    --------
    >>> scale_object_size(500, (904, 1224), (256, 256))
    30
    """
    if size < 0:
        raise ArtsegInputError(f"object size must be >= 0, got {size}")
    if size == 0:
        return 0
    ratio = float(np.prod(shape)) / float(np.prod(paper_shape))
    return max(1, int(round(size * ratio)))


def paper_min_object_size(preset: str) -> int:
    """The paper's smallest kept object (pixels at its field size) for a dataset preset.

    Raises
    ------
    ArtsegInputError
        For a preset the paper gives no size for.
    """
    try:
        return PAPER_MIN_OBJECT_SIZE[preset]
    except KeyError:
        raise ArtsegInputError(
            f"no paper object-size filter for preset {preset!r} (known: {', '.join(PAPER_MIN_OBJECT_SIZE)}); "
            "give the size explicitly"
        ) from None


# --------------------------------------------------------------------------- evaluation (pure)


def choose_cutoff(
    val_maps: Sequence[np.ndarray],
    val_masks: Sequence[np.ndarray],
    min_object_size: int,
    cutoffs: Sequence[float] = DEFAULT_CUTOFFS,
) -> tuple[float, float]:
    """The probability cut-off maximising pooled pixel IoU on validation images (§2.3.3).

    Parameters
    ----------
    val_maps : sequence of numpy.ndarray
        Probability maps of the validation images.
    val_masks : sequence of numpy.ndarray
        Their ground-truth artifact masks.
    min_object_size : int
        Objects smaller than this are removed before scoring, as at test time.
    cutoffs : sequence of float
        Candidates (default: :data:`artseg.postprocess.DEFAULT_CUTOFFS`, 0 and 1e-5 ... 0.99).

    Returns
    -------
    cutoff : float
        The smallest candidate reaching the best IoU.
    val_iou : float
        That IoU.

    Examples
    --------
    >>> truth = np.zeros((1, 8, 8), bool); truth[0, 2:6, 2:6] = True
    >>> probability = np.where(truth, 0.7, 0.2)
    >>> choose_cutoff(probability, truth, min_object_size=0)
    (0.2, 1.0)
    """
    return search_cutoff(list(val_maps), list(val_masks), cutoffs=cutoffs, min_size=int(min_object_size), progress=False)


@dataclass
class ModelResult:
    """Everything the benchmark measured for one model.

    Attributes
    ----------
    name : str
        Model name.
    cutoff, val_iou : float
        Cut-off chosen on validation data and its pooled validation IoU.
    min_object_size : int
        Smallest kept object (pixels of the images at hand).
    scores : dict
        Test scores (fractions): ``image_f1``, ``image_precision``, ``image_recall``,
        pooled pixel ``precision``, ``recall``, ``f1``, ``iou``, ``mean_image_iou``, ``pr_auc``.
    per_image : pandas.DataFrame
        One row per test image.
    pr_curve : pandas.DataFrame
        Pooled pixel PR curve on the test images (no size filter), one row per cut-off.
    size_table : pandas.DataFrame
        Pooled test scores after each object-size filter (``min_size`` column).
    masks : list of numpy.ndarray
        Post-processed test masks.
    timings : dict
        ``fit_seconds``, ``predict_seconds_per_image``, ``from_cache``.
    """

    name: str
    cutoff: float
    val_iou: float
    min_object_size: int
    scores: dict
    per_image: pd.DataFrame
    pr_curve: pd.DataFrame
    size_table: pd.DataFrame
    masks: list
    timings: dict = field(default_factory=dict)


def evaluate_model(
    name: str,
    test_maps: Sequence[np.ndarray],
    test_masks: Sequence[np.ndarray],
    test_labels: Sequence[int],
    test_image_scores: Sequence[float],
    *,
    cutoff: float,
    min_object_size: int,
    gate_threshold: float | None = None,
    size_grid: Sequence[int] = PAPER_MIN_SIZES,
    image_names: Sequence[str] | None = None,
    val_iou: float = float("nan"),
) -> ModelResult:
    """Score one model's test maps at a fixed cut-off and object-size filter.

    Parameters
    ----------
    name : str
        Model name.
    test_maps, test_masks : sequence of numpy.ndarray
        Probability maps and ground-truth masks of the test images.
    test_labels : sequence of int
        Image labels (1 = contains artifact).
    test_image_scores : sequence of float
        The model's image scores (:meth:`artseg.detectors.Detector.image_score`).
    cutoff : float
        Probability cut-off, chosen beforehand on validation data.
    min_object_size : int
        Objects smaller than this are removed.
    gate_threshold : float, optional
        For classifier-gated models: the image is called artifact-containing when its
        score is at least this. ``None``: when its post-processed mask is not empty.
    size_grid : sequence of int
        Object-size filters of the size table (pixels of the images at hand).
    image_names : sequence of str, optional
        Names for the per-image table.
    val_iou : float
        Validation IoU at ``cutoff`` (recorded only).

    Returns
    -------
    ModelResult
    """
    test_maps, test_masks = list(test_maps), list(test_masks)
    labels = np.asarray(test_labels, dtype=int)
    image_score_values = np.asarray(test_image_scores, dtype=float)
    if not (len(test_maps) == len(test_masks) == len(labels) == len(image_score_values)):
        raise ArtsegInputError(
            f"{name}: {len(test_maps)} maps, {len(test_masks)} masks, {len(labels)} labels and "
            f"{len(image_score_values)} image scores; they must pair up"
        )
    masks = [remove_small(binarize(prob, cutoff), int(min_object_size)) for prob in test_maps]
    if gate_threshold is None:
        calls = np.array([bool(mask.any()) for mask in masks])
    else:
        calls = image_score_values >= gate_threshold
    pooled = pixel_scores(test_masks, masks)
    names = list(image_names) if image_names is not None else [str(i) for i in range(len(masks))]
    per_image, mean = pixel_scores_per_image(test_masks, masks, names=names)
    per_image.insert(1, "label", labels)
    per_image.insert(2, "image_score", image_score_values)
    per_image.insert(3, "called_artifact", calls.astype(int))
    image = image_scores(labels, calls)
    curve = pr_curve(test_maps, test_masks)
    size_table = iou_after_size_filter(test_maps, test_masks, cutoff, sizes=sorted(set(int(s) for s in size_grid)))
    scores = {
        "image_f1": image["f1"],
        "image_precision": image["precision"],
        "image_recall": image["recall"],
        "precision": pooled["precision"],
        "recall": pooled["recall"],
        "f1": pooled["f1"],
        "iou": pooled["iou"],
        "mean_image_iou": mean["iou"],
        "pr_auc": area if np.isfinite(area := pr_auc(test_maps, test_masks)) else float("nan"),
    }
    return ModelResult(
        name=name, cutoff=float(cutoff), val_iou=float(val_iou), min_object_size=int(min_object_size),
        scores=scores, per_image=per_image, pr_curve=curve, size_table=size_table, masks=masks,
    )


def comparison_table(results: Mapping[str, ModelResult] | Sequence[ModelResult]) -> pd.DataFrame:
    """Supplementary Table 1: rows image F1, pixel F1, precision, recall, IoU; one column per model.

    Parameters
    ----------
    results : mapping or sequence of ModelResult
        Models in column order.

    Returns
    -------
    pandas.DataFrame
        Percentages rounded to one decimal, index named ``metric``.

    See Also
    --------
    markdown_table : the same as a pipe table (``table.md``).
    """
    results = list(results.values()) if isinstance(results, Mapping) else list(results)
    data = {result.name: [round(100.0 * result.scores[key], 1) for key, _ in TABLE_ROWS] for result in results}
    return pd.DataFrame(data, index=pd.Index([label for _, label in TABLE_ROWS], name="metric"))


def size_cutoff_table(
    results: Mapping[str, ModelResult] | Sequence[ModelResult],
    paper_sizes: Sequence[int],
    scaled_sizes: Sequence[int],
) -> pd.DataFrame:
    """Supplementary Tables 2-4: test IoU (%) after removing objects smaller than each size.

    Parameters
    ----------
    results : mapping or sequence of ModelResult
        Their ``size_table`` must contain every scaled size.
    paper_sizes : sequence of int
        Sizes at the paper's field size (the rows).
    scaled_sizes : sequence of int
        The same sizes in pixels of the images at hand, in the same order.

    Returns
    -------
    pandas.DataFrame
        Columns ``paper_size_px``, ``min_size_px`` and one IoU column per model.
    """
    results = list(results.values()) if isinstance(results, Mapping) else list(results)
    if len(paper_sizes) != len(scaled_sizes):
        raise ArtsegInputError("paper_sizes and scaled_sizes must have the same length")
    table = pd.DataFrame({"paper_size_px": list(paper_sizes), "min_size_px": list(scaled_sizes)})
    for result in results:
        iou_by_size = dict(zip(result.size_table["min_size"].astype(int), result.size_table["iou"]))
        missing = [size for size in scaled_sizes if int(size) not in iou_by_size]
        if missing:
            raise ArtsegInputError(f"{result.name}: no size-filter score for size(s) {missing}")
        table[result.name] = [round(100.0 * iou_by_size[int(size)], 1) for size in scaled_sizes]
    return table


def markdown_table(table: pd.DataFrame, *, index: bool = True) -> str:
    """A pipe table of a DataFrame (numbers as they are, one decimal for floats)."""
    frame = table.reset_index() if index else table

    def cell(value: Any) -> str:
        if isinstance(value, (float, np.floating)):
            return "n/a" if not np.isfinite(value) else f"{value:.1f}"
        return str(value)
    header = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    rows = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows]) + "\n"


def pick_examples(test_masks: Sequence[np.ndarray], test_labels: Sequence[int], count: int = 4) -> list[int]:
    """Test images to show as examples (Fig. 3A), chosen without looking at any model.

    Artifact-containing images are ranked by true artifact area and ``count`` of them are
    taken evenly from the largest down to the lower quartile (the smallest artifacts are
    hard to see at figure scale).

    Returns
    -------
    list of int
        Indices into the test images, largest artifact first.

    Examples
    --------
    >>> masks = [np.zeros((4, 4), bool), np.ones((4, 4), bool), np.eye(4, dtype=bool)]
    >>> pick_examples(masks, [0, 1, 1], count=1)
    [1]
    """
    areas = [int(np.count_nonzero(mask)) for mask in test_masks]
    positive = [i for i, (label, area) in enumerate(zip(test_labels, areas)) if int(label) == 1 and area > 0]
    ranked = sorted(positive, key=lambda i: (-areas[i], i))
    if count <= 0 or not ranked:
        return []
    if len(ranked) <= count:
        return ranked
    last = max(count - 1, int(round(0.75 * (len(ranked) - 1))))
    positions = np.unique(np.round(np.linspace(0, last, count)).astype(int))
    return [ranked[p] for p in positions]


# --------------------------------------------------------------------------- data


@dataclass
class SplitData:
    """Raw images, ground-truth masks and labels of one manifest split."""

    names: list[str]
    images: list[np.ndarray]
    masks: list[np.ndarray]
    labels: np.ndarray


def load_split(manifest: pd.DataFrame, split: str, *, progress: bool = True) -> SplitData:
    """Read one split's images and masks (clean images without a mask get an empty one).

    Raises
    ------
    ArtsegInputError
        No rows in the split, a row without a label, an artifact image without a mask,
        or a mask whose shape differs from its image.
    """
    if "split" not in manifest.columns:
        raise ArtsegInputError("the benchmark needs a manifest with a 'split' column (train/val/test)")
    if "label" not in manifest.columns:
        raise ArtsegInputError("the benchmark needs a manifest with a 'label' column")
    rows = manifest[manifest["split"] == split]
    if rows.empty:
        raise ArtsegInputError(f"manifest has no {split!r} images")
    names, images, masks, labels = [], [], [], []
    has_masks = "mask" in rows.columns
    for index, row in tqdm(rows.iterrows(), total=len(rows), desc=f"reading {split} images", unit="image",
                           disable=not progress, leave=False):
        if pd.isna(row["label"]):
            raise ArtsegInputError(f"manifest row {index} ({row['image']}): no label")
        image = read_image(row["image"])
        mask_path = row["mask"] if has_masks else None
        if isinstance(mask_path, str) and mask_path:
            mask = read_mask(mask_path)
            check_same_shape(image.shape, mask.shape, "mask", mask_path)
        elif int(row["label"]) == 1:
            raise ArtsegInputError(f"manifest row {index} ({row['image']}): an artifact image needs a mask to be scored")
        else:
            mask = np.zeros(image.shape, dtype=bool)
        names.append(str(row["image"]))
        images.append(image)
        masks.append(mask)
        labels.append(int(row["label"]))
    return SplitData(names, images, masks, np.asarray(labels, dtype=int))


def object_size_settings(
    shape: Sequence[int],
    preset: str | None = None,
    min_object_size: int | None = None,
    paper_shape: Sequence[int] | None = None,
) -> dict:
    """The smallest-object filter and the size-table grid for fields of ``shape``.

    Parameters
    ----------
    shape : sequence of int
        ``(H, W)`` of the benchmark's images.
    preset : str, optional
        Dataset preset: supplies the paper's field size and smallest object (§2.3.3).
    min_object_size : int, optional
        Override, in pixels of the images at hand.
    paper_shape : sequence of int, optional
        The paper's field size; default the preset's.

    Returns
    -------
    dict
        ``shape``, ``paper_shape``, ``paper_min_object_size``, ``min_object_size``,
        ``paper_sizes`` (Supp. Tables 2-4 sizes) and ``sizes`` (the same scaled by area).
    """
    if preset is not None and paper_shape is None:
        from artseg.synth import get_preset

        paper_shape = get_preset(preset).paper_shape
    paper_min = paper_min_object_size(preset) if preset is not None else None
    if paper_shape is None:
        scale = lambda size: int(size)  # noqa: E731  sizes are already in pixels of these images
    else:
        scale = lambda size: scale_object_size(size, paper_shape, shape)  # noqa: E731
    if min_object_size is None:
        min_object_size = scale(paper_min) if paper_min is not None else 0
    if min_object_size < 0:
        raise ArtsegInputError(f"min_object_size must be >= 0, got {min_object_size}")
    return {
        "shape": [int(v) for v in shape],
        "paper_shape": None if paper_shape is None else [int(v) for v in paper_shape],
        "paper_min_object_size": paper_min,
        "min_object_size": int(min_object_size),
        "paper_sizes": list(PAPER_MIN_SIZES),
        "sizes": [scale(size) for size in PAPER_MIN_SIZES],
    }


# --------------------------------------------------------------------------- orchestration


@dataclass
class BenchmarkResult:
    """Outcome of :func:`run_benchmark` (what :func:`write_outputs` writes)."""

    results: dict[str, ModelResult]
    object_sizes: dict
    test: SplitData
    examples: list[int]
    summary: dict

    @property
    def table(self) -> pd.DataFrame:
        """Supplementary Table 1 (see :func:`comparison_table`)."""
        return comparison_table(self.results)

    @property
    def size_table(self) -> pd.DataFrame:
        """Supplementary Tables 2-4 (see :func:`size_cutoff_table`)."""
        return size_cutoff_table(self.results, self.object_sizes["paper_sizes"], self.object_sizes["sizes"])


def _fingerprint(manifest: pd.DataFrame, config: SegmenterConfig, seed: int) -> dict:
    """What the cached models of a benchmark folder depend on (baselines also check their own settings)."""
    columns = [c for c in ("image", "label", "split", "mask") if c in manifest.columns]
    rows = manifest[columns].astype(str).to_csv(index=False)
    return {
        "manifest_sha256": hashlib.sha256(rows.encode()).hexdigest(),
        "config": config_to_dict(config),
        "seed": int(seed),
    }


def _check_run_folder(out_dir: Path, fingerprint: dict) -> None:
    path = out_dir / RUN_FILE
    if path.is_file():
        try:
            previous = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise ArtsegInputError(f"{path}: unreadable ({error}); delete it to start over") from error
        if previous != json.loads(json.dumps(fingerprint)):
            raise ArtsegInputError(
                f"{out_dir}: holds a benchmark of another dataset, configuration or seed; "
                "choose another --out or delete that folder"
            )
    else:
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(fingerprint, indent=2))


def atomic_save(path: Path, write: Callable[[str], None]) -> None:
    """Call ``write(temporary_path)`` (same suffix as ``path``) and rename the result to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}")
    os.close(handle)
    try:
        write(temporary)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _save_maps(path: Path, names: dict[str, list[str]], maps: dict[str, list[np.ndarray]],
               scores: dict[str, np.ndarray], seconds_per_image: float) -> None:
    arrays: dict[str, np.ndarray] = {"seconds_per_image": np.array(seconds_per_image)}
    for split in maps:
        arrays[f"{split}_names"] = np.array(names[split], dtype=str)
        arrays[f"{split}_scores"] = np.asarray(scores[split], dtype=np.float64)
        for index, probability in enumerate(maps[split]):
            arrays[f"{split}_{index:05d}"] = np.asarray(probability, dtype=np.float32)
    atomic_save(path, lambda temporary: np.savez_compressed(temporary, **arrays))


def _load_maps(path: Path, names: dict[str, list[str]]):
    """Cached maps and scores if ``path`` holds them for exactly these images, else None."""
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as data:
        if any(f"{split}_names" not in data or data[f"{split}_names"].tolist() != names[split] for split in names):
            return None
        maps = {split: [data[f"{split}_{i:05d}"] for i in range(len(names[split]))] for split in names}
        scores = {split: data[f"{split}_scores"] for split in names}
        return maps, scores, float(data["seconds_per_image"])


def run_benchmark(
    manifest: pd.DataFrame,
    out_dir: str | os.PathLike,
    *,
    config: SegmenterConfig,
    preset: str | None = None,
    min_object_size: int | None = None,
    models: Sequence[str] = DETECTOR_NAMES,
    seed: int = 0,
    baseline_settings: Mapping[str, str | dict] | None = None,
    n_examples: int = 4,
    progress: bool = True,
) -> BenchmarkResult:
    """Train, tune and test the comparison models on one dataset (paper §2.3.2-2.3.3).

    Parameters
    ----------
    manifest : pandas.DataFrame
        Image manifest with ``image``, ``label``, ``mask`` and ``split`` (train/val/test);
        val and test artifact images need masks (the strong U-Net needs them on train too).
    out_dir : path
        Benchmark folder: trained models are kept in ``models/<name>`` and probability
        maps in ``maps/<name>.npz``, so an interrupted run resumes where it stopped.
    config : SegmenterConfig
        Settings of the weak and strong segmenters (:func:`artseg.config.load_config`).
    preset : str, optional
        Synthetic dataset preset: gives the paper's smallest object and field size.
    min_object_size : int, optional
        Override of the smallest kept object, in pixels of these images.
    models : sequence of str
        Models to compare, in table order (default all six, paper order).
    seed : int
        Seeds every model's training.
    baseline_settings : mapping, optional
        Per-baseline settings (see :func:`artseg.detectors.build_detectors`).
    n_examples : int
        Test images in the overlay figure.
    progress : bool
        Show progress bars.

    Returns
    -------
    BenchmarkResult

    Raises
    ------
    ArtsegInputError
        Malformed manifest, a folder holding another run, unknown models.
    """
    out_dir = Path(out_dir)
    started = time.perf_counter()
    models = list(models)
    detectors = {detector.name: detector for detector in
                 build_detectors(config, models, baseline_settings=baseline_settings)}
    val = load_split(manifest, "val", progress=progress)
    test = load_split(manifest, "test", progress=progress)
    if not (manifest["split"] == "train").any():
        raise ArtsegInputError("manifest has no 'train' images")
    _check_run_folder(out_dir, _fingerprint(manifest, config, seed))
    sizes = object_size_settings(test.images[0].shape, preset, min_object_size)
    names = {"val": val.names, "test": test.names}
    results: dict[str, ModelResult] = {}
    # Fit in the paper's order so the shared classifier is trained by ScoreCAM-U-Net first.
    fit_order = sorted(models, key=DETECTOR_NAMES.index)
    bar = tqdm(fit_order, desc="benchmark", unit="model", disable=not progress)
    for name in bar:
        detector = detectors[name]
        bar.set_postfix_str(name)
        model_dir = out_dir / "models" / detector_slug(name)
        maps_path = out_dir / "maps" / f"{detector_slug(name)}.npz"
        from_cache = Detector.is_saved(model_dir)
        if from_cache:  # loaded even when its maps are cached: loading checks the model's settings
            detector.load(model_dir)
        else:
            detector.fit(manifest, seed=seed, progress=progress)
            detector.save(model_dir)
        cached = _load_maps(maps_path, names) if from_cache else None
        if cached is None:
            maps, scores, seconds = {}, {}, 0.0
            for split, data in (("val", val), ("test", test)):
                maps[split], scores[split], per_image = predict_all(detector, data.images, progress=progress)
                seconds += per_image * len(data.images)
            seconds /= len(val.images) + len(test.images)
            _save_maps(maps_path, names, maps, scores, seconds)
        else:
            maps, scores, seconds = cached
        fit_seconds = detector.fit_seconds
        cutoff, val_iou = choose_cutoff(maps["val"], val.masks, sizes["min_object_size"])
        # the image-level call of the classifier-based models is the classifier's (maps are gated already)
        gate = detector.shared.require_fitted(name).image_call_threshold if detector.gated else None
        result = evaluate_model(
            name, maps["test"], test.masks, test.labels, scores["test"], cutoff=cutoff,
            min_object_size=sizes["min_object_size"], gate_threshold=gate, size_grid=sizes["sizes"],
            image_names=test.names, val_iou=val_iou,
        )
        result.timings = {"fit_seconds": fit_seconds, "predict_seconds_per_image": seconds, "from_cache": from_cache}
        results[name] = result
    ordered = {name: results[name] for name in models}
    summary = {
        "preset": preset,
        "seed": int(seed),
        "config": config.name,
        "models": models,
        "n_images": {split: int((manifest["split"] == split).sum()) for split in ("train", "val", "test")},
        "n_artifact_images": {split: int(((manifest["split"] == split) & (manifest["label"] == 1)).sum())
                              for split in ("train", "val", "test")},
        "object_sizes": sizes,
        "seconds": time.perf_counter() - started,
    }
    return BenchmarkResult(ordered, sizes, test, pick_examples(test.masks, test.labels, n_examples), summary)



# --------------------------------------------------------------------------- outputs


def scores_table(result: BenchmarkResult) -> pd.DataFrame:
    """One row per model: test scores (fractions), cut-off, object size and timings."""
    rows = []
    for name, model in result.results.items():
        rows.append({
            "model": name,
            **model.scores,
            "cutoff": model.cutoff,
            "val_iou": model.val_iou,
            "min_object_size": model.min_object_size,
            **model.timings,
        })
    return pd.DataFrame(rows)
