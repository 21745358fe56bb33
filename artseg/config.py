"""Configuration of the ScoreCAM-U-Net segmenter: one dataclass, loaded from JSON or TOML.

``load_config("paper")`` carries the paper's numbers (§2.2, §2.3, DESIGN.md), ``"fast"`` the
same pipeline with small networks and few epochs for a 2-core CPU. A file may name a
``base`` (``"fast"``, ``"paper"`` or another file) and override any field, nested fields
included: ``{"base": "fast", "unet": {"width": 32}}``.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from artseg.errors import ArtsegInputError
from artseg.nets.registry import validate_spec
from artseg.train import TrainConfig

BUILTIN_CONFIGS = ("fast", "paper", "paper_plus")
MODES = ("weak", "strong")
PRECISIONS = ("auto", "bf16", "fp32")
PSEUDO_METHODS = ("fixed", "otsu")
# cam.flips: which mirror images of the input Score-CAM also explains; their maps, mirrored
# back, are averaged with the plain one (test-time augmentation of the map)
CAM_FLIPS = {"none": ((),), "horizontal": ((), (-1,)), "all": ((), (-1,), (-2,), (-2, -1))}
CALIBRATION_SOURCES = ("masks", "pseudo")


@dataclass
class InputConfig:
    """How images reach the networks.

    Every image is first scaled by its own ``normalize_low`` / ``normalize_high``
    percentiles (whole image, before any tiling). The classifier (and Score-CAM) sees it
    resized to ``classifier_size`` × ``classifier_size`` (aspect ratio not kept). The U-Net
    works on the image scaled by ``unet_scale`` (1.0 = native pixels), is trained on
    ``unet_patch`` × ``unet_patch`` patches and predicts through tiled inference.
    """

    classifier_size: int = 512
    unet_scale: float = 1.0
    unet_patch: int = 512
    normalize_low: float = 1.0
    normalize_high: float = 99.8


@dataclass
class CamConfig:
    """Score-CAM and pseudo-labels (paper §2.2, §2.3.1).

    ``target_stage`` is the attribute path of the explained layer in the classifier
    (``"last_stage"`` = the last convolutional stage); several paths joined by ``+``
    (``"layer3+layer4"``) average those stages' maps; ``"auto"`` picks one of
    ``stage_candidates`` at fit time by the pooled IoU of its pseudo-masks against the
    validation pixel masks (like the cut-off, §2.3.3), the first one when there are none.
    ``top_k`` is Score-CAM's channel selection (:func:`artseg.cam.score_cam`; ``None`` scores
    every channel). ``flips`` averages the map with the maps of the mirrored input
    (``"horizontal"``: left-right, ``"all"``: the four flips), mirrored back: the classifier
    is not mirror-equivariant, so the maps disagree where each is unsure. Maps above
    ``pseudo_cutoff`` become pseudo-mask pixels of artifact-labelled images
    (``pseudo_method="fixed"``, the paper's 0.05), or above a per-map Otsu cut-off that is
    never below ``pseudo_cutoff`` (``"otsu"``).
    """

    target_stage: str = "last_stage"
    stage_candidates: list[str] = field(default_factory=lambda: ["last_stage", "layer3"])
    batch_size: int = 64
    top_k: int | None = None
    flips: str = "none"
    pseudo_cutoff: float = 0.05
    pseudo_method: str = "fixed"
    precision: str = "auto"


# Options measured and not kept (benchmarks/RESULTS.md, "Tried, not kept"; their code is in
# commit RETIRED_IN_COMMIT). A model folder or configuration file that still names one loads
# when it holds the value that meant "off"; any other value is a one-line error.
RETIRED_IN_COMMIT = "b4c081f"
RETIRED_FIELDS = {
    "cam": {
        "baseline": None, "pseudo_percentile": 90.0, "refine": "none", "superpixel_segments": 400,
        "refine_min_fraction": 0.5, "self_training_rounds": 0, "self_training_confidence": 0.5,
        "self_training_clean_quantile": 0.999, "self_training_fallback": False, "self_training_dilation": 8,
        "min_image_probability": 0.0, "unet_loss": "bce", "mil_top_fraction": 0.02, "mil_min_pixels": 16,
        "mil_weight": 1.0, "mil_positive_core": False,
    },
}


@dataclass
class PostprocessConfig:
    """Gate, probability cut-off and smallest kept object (paper §2.3.3).

    ``cutoff`` / ``min_object_size`` set to ``None`` are chosen on validation data by pooled
    pixel IoU, from ``cutoff_grid`` / ``min_object_size_grid`` (sizes in native pixels).
    In weak mode ``calibrate_on="masks"`` selects them against the validation pixel masks
    when the manifest has them (the paper's practice); ``"pseudo"`` against the validation
    pseudo-masks, so no pixel label is used anywhere. ``gate_threshold`` is the classifier
    probability below which a weak-mode image gets an empty mask; ``None`` chooses it with
    the cut-off, from ``gate_grid`` (the classifier misses artifact images the U-Net alone
    would segment, so the best gate is often below 0.5).
    """

    gate_threshold: float | None = 0.5
    # gate_threshold=None: the gate is chosen on validation data with the cut-off, from this grid
    gate_grid: list[float] = field(default_factory=lambda: [0.0, 0.1, 0.2, 0.3, 0.4, 0.5])
    cutoff: float | None = None
    cutoff_grid: list[float] = field(
        default_factory=lambda: [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35,
                                 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95]
    )
    min_object_size: int | None = None
    min_object_size_grid: list[int] = field(default_factory=lambda: [0, 50, 100, 250, 500, 1000])
    calibrate_on: str = "masks"


@dataclass
class TilingConfig:
    """Tiled U-Net inference (:func:`artseg.tiling.predict_tiled`)."""

    tile_size: int = 512
    overlap: int = 64
    batch_size: int = 4


def _paper_classifier() -> dict:
    return {"name": "resnet", "depth": 50, "in_channels": 1, "num_logits": 1, "base_width": 64, "dilate_last": False,
            "pool": "avg"}


def _paper_unet() -> dict:
    return {"name": "unet", "in_channels": 1, "out_channels": 1, "width": 64, "levels": 5, "convs_per_block": 3,
            "batch_norm": False}


@dataclass
class SegmenterConfig:
    """Everything a segmenter needs; the defaults are the paper's.

    Read by :class:`artseg.ArtifactSegmenter` and :class:`artseg.PixelSegmenter`. ``mode`` is ``"weak"`` (ScoreCAM-U-Net: classifier → Score-CAM pseudo-masks → U-Net,
    U-Net gated by the classifier) or ``"strong"`` (U-Net trained on the manifest's pixel
    masks, applied to every image). ``seed`` seeds everything (network initialisation,
    splits, shuffling, augmentation); the ``seed`` of the nested train configs is derived
    from it. ``val_fraction`` is used only when the manifest has no ``split`` column.
    """

    name: str = "paper"
    mode: str = "weak"
    seed: int = 0
    val_fraction: float = 0.2
    classifier: dict = field(default_factory=_paper_classifier)
    unet: dict = field(default_factory=_paper_unet)
    classifier_train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=150, batch_size=16))
    unet_train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=150, batch_size=8))
    input: InputConfig = field(default_factory=InputConfig)
    cam: CamConfig = field(default_factory=CamConfig)
    postprocess: PostprocessConfig = field(default_factory=PostprocessConfig)
    tiling: TilingConfig = field(default_factory=TilingConfig)


def config_to_dict(config: SegmenterConfig) -> dict[str, Any]:
    """Return the configuration as plain JSON-serialisable data."""
    return dataclasses.asdict(config)


def config_from_dict(data: dict[str, Any], *, source: str = "configuration") -> SegmenterConfig:
    """Build a validated :class:`SegmenterConfig` from (possibly partial) plain data.

    Missing fields keep the paper defaults; unknown fields or wrong types raise
    :class:`ArtsegInputError` naming ``source`` and the field.
    """
    merged = merge_overrides(config_to_dict(SegmenterConfig()), drop_retired(data, source=source), source=source)
    config = _build(SegmenterConfig, merged, source, "")
    validate_config(config, source=source)
    return config


def load_config(name_or_path: str | Path) -> SegmenterConfig:
    """Load ``"fast"``, ``"paper"``, ``"paper_plus"`` or a JSON/TOML file of overrides.

    Parameters
    ----------
    name_or_path : str or path
        A built-in name or a ``.json`` / ``.toml`` file. A file may contain ``"base"``
        (a built-in name or a path relative to the file) whose values it overrides;
        without ``base`` it overrides the paper defaults.

    Returns
    -------
    SegmenterConfig

    Raises
    ------
    ArtsegInputError
        Missing or unparsable file, unknown field, wrong type or out-of-range value.

    Examples
    --------
    >>> load_config("fast").unet["width"]
    16
    """
    return config_from_dict(_resolve_document(name_or_path, seen=()), source=str(name_or_path))


def merge_overrides(base: dict[str, Any], overrides: dict[str, Any], *, source: str, path: str = "") -> dict[str, Any]:
    """Return ``base`` with ``overrides`` applied recursively (network specs merged key by key).

    A network spec that changes ``name`` replaces the base spec instead of merging with it.
    """
    if not isinstance(overrides, dict):
        raise ArtsegInputError(f"{source}: {path or 'configuration'} must be a mapping, got {overrides!r}")
    result = copy.deepcopy(base)
    for key, value in overrides.items():
        where = f"{path}{key}"
        if key not in result:
            raise ArtsegInputError(f"{source}: unknown configuration field {where!r}")
        current = result[key]
        if isinstance(current, dict) and isinstance(value, dict):
            if "name" in current and value.get("name", current["name"]) != current["name"]:
                result[key] = copy.deepcopy(value)
            elif "name" in current:
                result[key] = {**current, **copy.deepcopy(value)}
            else:
                result[key] = merge_overrides(current, value, source=source, path=where + ".")
        else:
            result[key] = copy.deepcopy(value)
    return result


def validate_config(config: SegmenterConfig, *, source: str = "configuration") -> None:
    """Raise ArtsegInputError for values outside their allowed range."""
    problems = []
    if config.mode not in MODES:
        problems.append(f"mode must be one of {MODES}, got {config.mode!r}")
    if not 0.0 < config.val_fraction < 1.0:
        problems.append(f"val_fraction must be in (0, 1), got {config.val_fraction}")
    for name in ("classifier_train", "unet_train"):
        train = getattr(config, name)
        if train.epochs < 1 or train.batch_size < 1 or train.lr <= 0:
            problems.append(f"{name}: epochs, batch_size and lr must be positive")
        if train.precision not in PRECISIONS:
            problems.append(f"{name}.precision must be one of {PRECISIONS}, got {train.precision!r}")
    if config.cam.precision not in PRECISIONS:
        problems.append(f"cam.precision must be one of {PRECISIONS}, got {config.cam.precision!r}")
    if config.cam.target_stage == "auto" and not config.cam.stage_candidates:
        problems.append("cam.target_stage 'auto' needs a non-empty cam.stage_candidates list")
    if not 0.0 <= config.cam.pseudo_cutoff < 1.0:
        problems.append(f"cam.pseudo_cutoff must be in [0, 1), got {config.cam.pseudo_cutoff}")
    problems.extend(_weak_problems(config))
    if config.cam.top_k is not None and config.cam.top_k < 1:
        problems.append(f"cam.top_k must be >= 1 or null, got {config.cam.top_k}")
    if config.input.classifier_size < 32 or config.input.unet_patch < 1 or config.input.unet_scale <= 0:
        problems.append("input: classifier_size must be >= 32, unet_patch >= 1 and unet_scale > 0")
    if not 0.0 <= config.input.normalize_low < config.input.normalize_high <= 100.0:
        problems.append("input: need 0 <= normalize_low < normalize_high <= 100")
    gate = config.postprocess.gate_threshold
    if gate is not None and not 0.0 <= gate <= 1.0:
        problems.append(f"postprocess.gate_threshold must be in [0, 1] or null, got {gate}")
    if not config.postprocess.gate_grid or not all(0.0 <= g <= 1.0 for g in config.postprocess.gate_grid):
        problems.append(f"postprocess.gate_grid must be a non-empty list of values in [0, 1], "
                        f"got {config.postprocess.gate_grid}")
    if not config.postprocess.cutoff_grid or not config.postprocess.min_object_size_grid:
        problems.append("postprocess: cutoff_grid and min_object_size_grid must not be empty")
    if config.tiling.overlap >= config.tiling.tile_size:
        problems.append("tiling.overlap must be smaller than tiling.tile_size")
    levels = config.unet.get("levels", 5)
    if config.input.unet_patch % 2**levels:
        problems.append(f"input.unet_patch {config.input.unet_patch} must be a multiple of 2**levels = {2**levels}")
    if config.tiling.tile_size % 2**levels:
        problems.append(f"tiling.tile_size {config.tiling.tile_size} must be a multiple of 2**levels = {2**levels}")
    for key in ("classifier", "unet"):
        validate_spec(getattr(config, key), where=f"{source}: {key}")
    if problems:
        raise ArtsegInputError(f"{source}: " + "; ".join(problems))


def _weak_problems(config: SegmenterConfig) -> list[str]:
    """Range checks of the pseudo-label and calibration-source fields."""
    cam, problems = config.cam, []
    if cam.pseudo_method not in PSEUDO_METHODS:
        problems.append(f"cam.pseudo_method must be one of {PSEUDO_METHODS}, got {cam.pseudo_method!r}")
    if cam.flips not in CAM_FLIPS:
        problems.append(f"cam.flips must be one of {tuple(CAM_FLIPS)}, got {cam.flips!r}")
    if config.postprocess.calibrate_on not in CALIBRATION_SOURCES:
        problems.append(f"postprocess.calibrate_on must be one of {CALIBRATION_SOURCES}, "
                        f"got {config.postprocess.calibrate_on!r}")
    return problems


def drop_retired(data: dict[str, Any], *, source: str) -> dict[str, Any]:
    """``data`` without the retired fields that hold their "off" value (see :data:`RETIRED_FIELDS`).

    Raises
    ------
    ArtsegInputError
        A retired field set to anything else: the option is gone, so the model or
        configuration cannot mean the same thing any more.
    """
    data = dict(data)
    for section, retired in RETIRED_FIELDS.items():
        values = data.get(section)
        if not isinstance(values, dict):
            continue
        values = dict(values)
        for name, off in retired.items():
            if name in values:
                value = values.pop(name)
                if value != off:
                    raise ArtsegInputError(
                        f"{source}: {section}.{name}={value!r} is an option measured and not kept (removed after "
                        f"commit {RETIRED_IN_COMMIT}; benchmarks/RESULTS.md, 'Tried, not kept'): drop it, or "
                        "retrain the model")
        data[section] = values
    return data


def _resolve_document(name_or_path: str | Path, seen: tuple[str, ...]) -> dict[str, Any]:
    """Return the fully merged override document of a built-in name or file (bases applied)."""
    key = str(name_or_path)
    if key in seen or len(seen) > 8:
        raise ArtsegInputError(f"{key}: configuration 'base' chain loops ({' -> '.join(seen + (key,))})")
    if key in BUILTIN_CONFIGS:
        text = resources.files("artseg.configs").joinpath(f"{key}.json").read_text(encoding="utf-8")
        document, folder = _parse(text, ".json", key), None
    else:
        path = Path(name_or_path)
        if not path.is_file():
            raise ArtsegInputError(
                f"{path}: no such configuration file (built-in configurations: {', '.join(BUILTIN_CONFIGS)})"
            )
        document, folder = _parse(path.read_text(encoding="utf-8"), path.suffix.lower(), str(path)), path.parent
    document = drop_retired(document, source=key)
    base = document.pop("base", None)
    if base is None:
        return document
    if base not in BUILTIN_CONFIGS and folder is not None and not Path(base).is_absolute():
        base = str(folder / base)
    merged_base = merge_overrides(config_to_dict(SegmenterConfig()), _resolve_document(base, seen + (key,)),
                                  source=str(base))
    return merge_overrides(merged_base, document, source=key)


def _parse(text: str, suffix: str, source: str) -> dict[str, Any]:
    try:
        if suffix == ".toml":
            import tomllib

            document = tomllib.loads(text)
        elif suffix == ".json":
            document = json.loads(text)
        else:
            raise ArtsegInputError(f"{source}: configuration files must be .json or .toml, not {suffix!r}")
    except (ValueError, ImportError) as err:
        if isinstance(err, ArtsegInputError):
            raise
        raise ArtsegInputError(f"{source}: cannot parse configuration ({str(err).splitlines()[0]})") from None
    if not isinstance(document, dict):
        raise ArtsegInputError(f"{source}: configuration must be a mapping at the top level")
    return document


def _build(cls, data: dict[str, Any], source: str, prefix: str):
    hints = typing.get_type_hints(cls)
    values = {}
    for item in dataclasses.fields(cls):
        value = data[item.name]
        hint = hints[item.name]
        where = f"{prefix}{item.name}"
        if dataclasses.is_dataclass(hint):
            if not isinstance(value, dict):
                raise ArtsegInputError(f"{source}: {where} must be a mapping, got {value!r}")
            unknown = set(value) - {f.name for f in dataclasses.fields(hint)}
            if unknown:
                raise ArtsegInputError(f"{source}: unknown configuration field {where}.{sorted(unknown)[0]}")
            full = {**dataclasses.asdict(hint()), **value}
            values[item.name] = _build(hint, full, source, where + ".")
        else:
            values[item.name] = _check_type(value, hint, source, where)
    return cls(**values)


def _check_type(value, hint, source: str, where: str):
    origin = typing.get_origin(hint)
    options = typing.get_args(hint) if origin in (typing.Union, types.UnionType) else (hint,)
    for option in options:
        if option is type(None) and value is None:
            return None
        if option is bool and isinstance(value, bool):
            return value
        if option is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if option is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if option is str and isinstance(value, str):
            return value
        if option is dict and isinstance(value, dict):
            return dict(value)
        if typing.get_origin(option) is list and isinstance(value, list):
            (item_type,) = typing.get_args(option)
            return [_check_type(item, item_type, source, f"{where}[{i}]") for i, item in enumerate(value)]
    raise ArtsegInputError(f"{source}: {where} must be {_type_name(hint)}, got {value!r}")


def _type_name(hint) -> str:
    return str(hint).replace("typing.", "").replace("<class '", "").replace("'>", "")
