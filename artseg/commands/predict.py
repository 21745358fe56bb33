"""``artseg predict``: artifact masks for a folder or manifest of images, resumable.

Writes ``<out>/<relative folder>/<image stem>.png`` (0/255 mask), optionally
``<image stem>_prob.tif`` (float32 U-Net probability), and ``<out>/predictions.csv`` with
``image, p_artifact, artifact_fraction, n_objects, contains_artifact``; ``image`` is the path
relative to the input folder (or manifest folder). Images whose mask and row already exist
are skipped unless ``--overwrite``.

``--scheduler ADDRESS`` / ``--workers N`` run :func:`predict_field` as tasks on a Dask cluster
(:mod:`artseg.distributed`): workers read the images and write the masks themselves, the
driver writes ``predictions.csv``; the outputs equal the serial run's. ``--shard I/N`` does
every N-th image from the I-th and keeps its rows in ``shards/predictions.shard-I-of-N.csv``;
``--merge-shards`` writes ``predictions.csv`` from all N parts (:mod:`artseg.shards`).
"""

from __future__ import annotations

import argparse
from pathlib import Path, PurePath
from typing import Iterator

import pandas as pd
from tqdm.auto import tqdm

from artseg.distributed import FieldTasks, add_engine_arguments, cluster_client, engine_from_args, model_reference
from artseg.errors import ArtsegInputError
from artseg.io import (
    IMAGE_SUFFIXES,
    atomic_write_csv,
    check_output_folder,
    read_image,
    read_image_manifest,
    write_mask,
    write_tiff,
)
from artseg.shards import SHARDS_FOLDER, Shard, add_shard_arguments, find_parts, read_table, shard_option

PREDICTIONS_CSV = "predictions.csv"
COLUMNS = ("image", "p_artifact", "artifact_fraction", "n_objects", "contains_artifact")
# predictions.csv is rewritten (atomically) this often, so an interrupted run loses little.
CHECKPOINT_EVERY = 50


def register(subparsers) -> None:
    """Add the ``predict`` subcommand."""
    parser = subparsers.add_parser(
        "predict",
        help="segment artifacts in a folder or manifest of images with a trained model",
        description="One mask PNG per image, nested as the inputs are, plus predictions.csv. "
                    "Resumable: images already predicted are skipped unless --overwrite.",
    )
    parser.add_argument("--model", required=True, type=Path, help="model folder written by 'artseg train'")
    parser.add_argument("--input", required=True, type=Path,
                        help="folder (all .tif/.tiff/.png/.jpg/.jpeg below it) or manifest CSV with an image column")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--save-prob", action="store_true", help="also write <stem>_prob.tif probability maps")
    parser.add_argument("--overwrite", action="store_true", help="predict again images already predicted")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_engine_arguments(parser)
    add_shard_arguments(parser)
    parser.set_defaults(func=run)


def collect_inputs(input_path: Path, out_dir: Path) -> list[tuple[Path, PurePath]]:
    """Return ``(image path, path relative to the input root)`` pairs, sorted.

    Raises
    ------
    ArtsegInputError
        Missing input, a file that is not a CSV, no images, or two images that would write
        the same mask (same folder and stem).
    """
    if input_path.is_dir():
        root = input_path.resolve()
        out_resolved = out_dir.resolve()
        found = sorted(
            path for path in root.rglob("*")
            if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES
            and out_resolved not in path.parents
        )
        items = [(path, PurePath(path.relative_to(root).as_posix())) for path in found]
    elif input_path.is_file():
        if input_path.suffix.lower() != ".csv":
            raise ArtsegInputError(f"{input_path}: --input must be a folder of images or a manifest .csv")
        manifest = read_image_manifest(input_path, check_shapes=False)
        root = input_path.parent.resolve()
        items = []
        for image in manifest["image"]:
            path = Path(image)
            try:
                relative = PurePath(path.relative_to(root).as_posix())
            except ValueError:
                relative = PurePath(path.name)
            items.append((path, relative))
    else:
        raise ArtsegInputError(f"{input_path}: input folder or manifest not found")
    if not items:
        raise ArtsegInputError(f"{input_path}: no images ({', '.join(IMAGE_SUFFIXES)}) found")
    seen: dict[PurePath, PurePath] = {}
    for _, relative in items:
        key = relative.parent / relative.stem
        if key in seen and seen[key] != relative:
            raise ArtsegInputError(
                f"{input_path}: {seen[key].as_posix()} and {relative.as_posix()} would both write {key.as_posix()}.png"
            )
        seen[key] = relative
    return items


def output_paths(out_dir: Path, relative: PurePath) -> tuple[Path, Path]:
    """Mask and probability paths of one image."""
    folder = out_dir / relative.parent
    return folder / f"{relative.stem}.png", folder / f"{relative.stem}_prob.tif"


def _earlier_rows(csv_path: Path) -> dict[str, dict]:
    if not csv_path.is_file():
        return {}
    try:
        table = pd.read_csv(csv_path, dtype={"image": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise ArtsegInputError(f"{csv_path}: cannot read earlier predictions ({str(err).splitlines()[0]}); "
                               "fix or delete it, or pass --overwrite") from None
    missing = [column for column in COLUMNS[:4] if column not in table.columns]
    if missing:
        raise ArtsegInputError(f"{csv_path}: earlier predictions lack column(s) {', '.join(missing)}; "
                               "delete it or pass --overwrite")
    return {str(row["image"]): row for row in table.to_dict("records")}


def _write_rows(rows: dict[str, dict], csv_path: Path) -> None:
    table = pd.DataFrame([rows[key] for key in sorted(rows)])
    atomic_write_csv(table.reindex(columns=[c for c in COLUMNS if c in table.columns]), csv_path)


def predict_field(field: dict, *, segmenter) -> dict:
    """Predict one image, write its mask (and probability map); return its ``predictions.csv`` row.

    ``field`` holds ``image`` (path), ``key`` (the row's ``image`` value), ``mask`` and ``prob``
    (output paths; ``prob`` None = no probability map). The same function runs in the serial
    loop and as a Dask task.
    """
    from artseg.postprocess import label_objects

    prediction = segmenter.predict(read_image(field["image"]))
    write_mask(field["mask"], prediction.mask)
    if field["prob"] is not None:
        write_tiff(field["prob"], prediction.probability.astype("float32"))
    return {
        "image": field["key"],
        "p_artifact": float(prediction.p_artifact),
        "artifact_fraction": float(prediction.mask.mean()),
        "n_objects": int(label_objects(prediction.mask).max()),
        "contains_artifact": int(prediction.contains_artifact),
    }


def run(args: argparse.Namespace) -> int:
    """Predict every input image not yet predicted; returns the exit status."""
    from artseg.segmenter import load_segmenter

    out_dir = check_output_folder(args.out)
    engine = engine_from_args(args)
    shard = shard_option(args)
    segmenter = None if args.merge_shards else load_segmenter(args.model)
    items = collect_inputs(Path(args.input), out_dir)
    if args.merge_shards:
        return merge_shards(out_dir, items)
    csv_path = out_dir / PREDICTIONS_CSV
    if shard is not None:
        items = [items[position] for position in shard.positions(len(items))]
        csv_path = out_dir / SHARDS_FOLDER / shard.file_name("predictions")
    earlier = {} if args.overwrite else _earlier_rows(csv_path)
    rows = dict(earlier)
    todo = []
    for path, relative in items:
        key = relative.as_posix()
        mask_path, prob_path = output_paths(out_dir, relative)
        done = key in earlier and mask_path.is_file() and (not args.save_prob or prob_path.is_file())
        if not done:
            # absolute: a worker elsewhere has another working directory
            todo.append({"image": str(Path(path).absolute()), "key": key, "mask": str(mask_path.absolute()),
                         "prob": str(prob_path.absolute()) if args.save_prob else None})
    skipped = len(items) - len(todo)
    predicted = 0
    try:
        for row in _predicted_rows(todo, segmenter, args, engine):
            rows[row["image"]] = row
            predicted += 1
            if predicted % CHECKPOINT_EVERY == 0:
                _write_rows(rows, csv_path)
    finally:
        if rows and (predicted or not csv_path.is_file()):
            _write_rows(rows, csv_path)
    print(f"{predicted} image(s) predicted, {skipped} already done (skipped) -> {out_dir}")
    return 0


def _predicted_rows(todo: list[dict], segmenter, args: argparse.Namespace, engine) -> Iterator[dict]:
    """Rows of the images in ``todo`` as they are predicted: in this process, or as Dask tasks."""
    if engine is None:
        for field in tqdm(todo, desc="predict", unit="image", disable=args.quiet):
            yield predict_field(field, segmenter=segmenter)
        return
    if not todo:
        return
    with cluster_client(engine) as client:
        tasks = FieldTasks(client, predict_field, todo, models={"segmenter": model_reference(segmenter, args.model)},
                           fields_per_task=engine.fields_per_task, desc="predict", unit="image",
                           progress=not args.quiet)
        for _, row in tasks:
            yield row
    print(tasks.summary())


def merge_shards(out_dir: Path, items: list[tuple[Path, PurePath]]) -> int:
    """Write ``predictions.csv`` from the ``--shard`` parts, once every image has its row and mask."""
    count, parts = find_parts(out_dir, "predictions")
    dtypes = {"image": "object", "n_objects": "int64", "contains_artifact": "int64"}
    rows: dict[str, dict] = {}
    for index, path in sorted(parts.items()):
        for row in read_table(path, dtypes).to_dict("records"):
            rows[str(row["image"])] = row
    expected = {relative.as_posix(): output_paths(out_dir, relative)[0] for _, relative in items}
    missing = [position for position, key in enumerate(expected)
               if key not in rows or not expected[key].is_file()]
    if missing:
        first = items[missing[0]][1].as_posix()
        raise ArtsegInputError(f"{out_dir / SHARDS_FOLDER}: {len(missing)} image(s) not predicted yet (first {first}); "
                               f"run --shard {Shard(missing[0] % count + 1, count)} (again)")
    _write_rows({key: rows[key] for key in expected}, out_dir / PREDICTIONS_CSV)
    print(f"{len(expected)} image(s) from {count} shard(s) -> {out_dir / PREDICTIONS_CSV}")
    return 0
