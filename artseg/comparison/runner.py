"""Run the paper's model comparison on one dataset, resumably (sections 2.3.2-2.3.3, Fig. 3).

:func:`run_benchmark` fits (or reloads) each model on the manifest's ``train`` split, predicts
the ``val`` and ``test`` images, chooses each model's cut-off on ``val`` and scores ``test``
(:mod:`artseg.comparison.protocol`). The run folder keeps every fitted model
(``models/<slug>``) and its maps (``maps/<slug>.npz``), so an interrupted run resumes; its
``run.json`` fingerprints the dataset, configuration and seed, and a folder holding another
run is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from artseg.comparison.baselines import BaselineSettings
from artseg.comparison.detector import Detector, predict_all
from artseg.comparison.protocol import ModelResult, choose_cutoff, evaluate_model, object_size_settings, pick_examples
from artseg.comparison.registry import DETECTOR_NAMES, build_detectors
from artseg.comparison.splits import SplitData, load_split
from artseg.comparison.tables import comparison_table, size_cutoff_table
from artseg.config import SegmenterConfig, config_to_dict
from artseg.errors import ArtsegInputError
from artseg.io import atomic_target, atomic_write_text

__all__ = ["RUN_FILE", "BenchmarkResult", "run_benchmark"]

RUN_FILE = "run.json"


@dataclass
class BenchmarkResult:
    """Outcome of :func:`run_benchmark` (what :func:`artseg.comparison.write_outputs` writes)."""

    results: dict[str, ModelResult]
    object_sizes: dict
    test: SplitData
    examples: list[int]
    summary: dict

    @property
    def table(self) -> pd.DataFrame:
        """Supplementary Table 1 (see :func:`~artseg.comparison.tables.comparison_table`)."""
        return comparison_table(self.results)

    @property
    def size_table(self) -> pd.DataFrame:
        """Supplementary Tables 2-4 (see :func:`~artseg.comparison.tables.size_cutoff_table`)."""
        return size_cutoff_table(self.results, self.object_sizes["paper_sizes"], self.object_sizes["sizes"])


def _fingerprint(manifest: pd.DataFrame, config: SegmenterConfig, seed: int) -> dict:
    """What the cached models of a run folder depend on (baselines also check their own settings)."""
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


def _save_maps(path: Path, names: dict[str, list[str]], maps: dict[str, list[np.ndarray]],
               scores: dict[str, np.ndarray], seconds_per_image: float) -> None:
    arrays: dict[str, np.ndarray] = {"seconds_per_image": np.array(seconds_per_image)}
    for split in maps:
        arrays[f"{split}_names"] = np.array(names[split], dtype=str)
        arrays[f"{split}_scores"] = np.asarray(scores[split], dtype=np.float64)
        for index, probability in enumerate(maps[split]):
            arrays[f"{split}_{index:05d}"] = np.asarray(probability, dtype=np.float32)
    with atomic_target(path) as temporary:
        np.savez_compressed(temporary, **arrays)


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


def _maps_of(detector: Detector, splits: dict[str, SplitData], progress: bool):
    """Maps and scores of every split's images, and the mean seconds per image."""
    maps, scores, seconds = {}, {}, 0.0
    for split, data in splits.items():
        maps[split], scores[split], per_image = predict_all(detector, data.images, progress=progress)
        seconds += per_image * len(data.images)
    return maps, scores, seconds / sum(len(data.images) for data in splits.values())


def run_benchmark(
    manifest: pd.DataFrame,
    out_dir: str | os.PathLike,
    *,
    config: SegmenterConfig,
    preset: str | None = None,
    min_object_size: int | None = None,
    models: Sequence[str] = DETECTOR_NAMES,
    seed: int = 0,
    baseline_preset: str = "fast",
    baseline_settings: Mapping[str, BaselineSettings | str | dict] | None = None,
    n_examples: int = 4,
    progress: bool = True,
) -> BenchmarkResult:
    """Train, tune and test the comparison models on one dataset (paper sections 2.3.2-2.3.3).

    Parameters
    ----------
    manifest : pandas.DataFrame
        Image manifest with ``image``, ``label``, ``mask`` and ``split`` (train/val/test);
        val and test artifact images need masks (the strong U-Net needs them on train too).
    out_dir : path
        Run folder: fitted models are kept in ``models/<slug>`` and probability maps in
        ``maps/<slug>.npz``, so an interrupted run resumes where it stopped.
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
    baseline_preset : {"fast", "paper"}
        Settings of the anomaly baselines (see :func:`artseg.comparison.build_detectors`).
    baseline_settings : mapping, optional
        Per-baseline settings instead of the preset's.
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
        Malformed manifest, a folder holding another run or models saved by an older artseg,
        unknown models.
    """
    out_dir = Path(out_dir)
    started = time.perf_counter()
    models = list(models)
    detectors = {detector.name: detector for detector in
                 build_detectors(config, models, baseline_preset=baseline_preset, baseline_settings=baseline_settings)}
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
        model_dir = out_dir / "models" / detector.slug
        maps_path = out_dir / "maps" / f"{detector.slug}.npz"
        from_cache = Detector.is_saved(model_dir)
        if from_cache:  # loaded even when its maps are cached: loading checks the model's settings
            detector.load(model_dir)
        else:
            detector.fit(manifest, seed=seed, progress=progress)
            detector.save(model_dir)
        cached = _load_maps(maps_path, names) if from_cache else None
        if cached is None:
            maps, scores, seconds = _maps_of(detector, {"val": val, "test": test}, progress)
            _save_maps(maps_path, names, maps, scores, seconds)
        else:
            maps, scores, seconds = cached
        cutoff, val_iou = choose_cutoff(maps["val"], val.masks, sizes["min_object_size"])
        result = evaluate_model(
            name, maps["test"], test.masks, test.labels, scores["test"], cutoff=cutoff,
            min_object_size=sizes["min_object_size"], gate_threshold=detector.image_call_threshold,
            size_grid=sizes["sizes"], image_names=test.names, val_iou=val_iou,
        )
        result.timings = {"fit_seconds": detector.fit_seconds, "predict_seconds_per_image": seconds,
                          "from_cache": from_cache}
        results[name] = result
    ordered = {name: results[name] for name in models}
    summary = {
        "preset": preset,
        "seed": int(seed),
        "config": config.name,
        "baseline_preset": baseline_preset,
        "models": models,
        "n_images": {split: int((manifest["split"] == split).sum()) for split in ("train", "val", "test")},
        "n_artifact_images": {split: int(((manifest["split"] == split) & (manifest["label"] == 1)).sum())
                              for split in ("train", "val", "test")},
        "object_sizes": sizes,
        "seconds": time.perf_counter() - started,
    }
    return BenchmarkResult(ordered, sizes, test, pick_examples(test.masks, test.labels, n_examples), summary)
