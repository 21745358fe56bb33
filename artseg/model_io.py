"""Model folders: ``config.json`` plus one ``<name>.pt`` state_dict per network (and per tensor set).

``config.json`` records the format version, the package version, every network's spec
(so the folder rebuilds its networks without pickled code), the SHA-256 of every weight
file, and whatever metadata the caller adds (configuration, normalisation, cut-offs,
training summary). Weights are written with ``torch.save(state_dict)`` and read with
``torch.load(..., weights_only=True)``. Every file is written under a temporary name and
renamed; ``config.json`` is written last, so a folder without it is incomplete.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path
from typing import Any

import torch
from torch import nn

from artseg import __version__
from artseg.errors import ArtsegInputError
from artseg.io.outputs import atomic_target, atomic_write_text
from artseg.nets import build_network, network_spec

FORMAT_NAME = "artseg-model"
FORMAT_VERSION = 1
CONFIG_NAME = "config.json"


def save_model_folder(
    folder: str | Path,
    networks: dict[str, nn.Module],
    metadata: dict[str, Any],
    *,
    tensors: dict[str, dict[str, torch.Tensor]] | None = None,
) -> Path:
    """Write networks and metadata to ``folder`` (created if needed; existing files replaced).

    Parameters
    ----------
    folder : path
    networks : dict
        ``{name: module}``; each module must be a registered network (see
        :func:`artseg.nets.register_network`). Saved as ``<name>.pt``.
    metadata : dict
        JSON-serialisable; stored under ``"metadata"`` in ``config.json``.
    tensors : dict, optional
        ``{name: {key: tensor}}``: fitted numbers that are not a network's weights (a
        baseline's Gaussians or memory bank). Saved as ``<name>.pt`` with their SHA-256 and
        read back by :func:`load_model_tensors`.

    Returns
    -------
    pathlib.Path
        The ``config.json`` path.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = tensors or {}
    clash = sorted(set(networks) & set(tensors))
    if clash:
        raise ValueError(f"names used for both networks and tensors: {', '.join(clash)}")
    entries = {}
    for name, module in networks.items():
        file_name = f"{name}.pt"
        state = {key: value.detach().cpu().contiguous() for key, value in module.state_dict().items()}
        with atomic_target(folder / file_name) as temporary:
            torch.save(state, temporary)
        entries[name] = {
            "spec": network_spec(module),
            "file": file_name,
            "sha256": file_sha256(folder / file_name),
        }
    tensor_entries = {}
    for name, values in tensors.items():
        file_name = f"{name}.pt"
        with atomic_target(folder / file_name) as temporary:
            # strides kept: a fitted matrix read back in another layout multiplies with other rounding
            torch.save({key: value.detach().cpu() for key, value in values.items()}, temporary)
        tensor_entries[name] = {"file": file_name, "sha256": file_sha256(folder / file_name)}
    document = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "artseg_version": __version__,
        "networks": entries,
        "metadata": metadata,
    }
    if tensor_entries:
        document["tensors"] = tensor_entries
    text = json.dumps(document, indent=2, sort_keys=False) + "\n"
    atomic_write_text(folder / CONFIG_NAME, text)
    return folder / CONFIG_NAME


def read_model_config(folder: str | Path) -> dict[str, Any]:
    """Return the validated ``config.json`` of a model folder (weights not read)."""
    folder = Path(folder)
    path = folder / CONFIG_NAME
    if not folder.is_dir():
        raise ArtsegInputError(f"{folder}: model folder does not exist")
    if not path.is_file():
        raise ArtsegInputError(f"{path}: missing; {folder} is not a (complete) ArtSeg model folder")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ArtsegInputError(f"{path}: unreadable model config ({err})") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT_NAME:
        raise ArtsegInputError(f"{path}: not an ArtSeg model config (format is not {FORMAT_NAME!r})")
    version = document.get("format_version")
    if version != FORMAT_VERSION:
        raise ArtsegInputError(
            f"{path}: model format version {version!r} is not supported by artseg {__version__} "
            f"(expects {FORMAT_VERSION}); retrain the model or use the artseg version that wrote it "
            f"({document.get('artseg_version', 'unknown')})"
        )
    if not isinstance(document.get("networks"), dict) or not isinstance(document.get("metadata"), dict):
        raise ArtsegInputError(f"{path}: 'networks' and 'metadata' must be mappings")
    return document


def load_model_folder(folder: str | Path) -> tuple[dict[str, nn.Module], dict[str, Any]]:
    """Rebuild the networks of a model folder and return ``(networks, metadata)``.

    Networks are returned in eval mode on the CPU.

    Raises
    ------
    ArtsegInputError
        Missing folder or file, unsupported format version, a weight file whose SHA-256 differs
        from the recorded one, or weights that do not fit the recorded architecture.
    """
    folder = Path(folder)
    document = read_model_config(folder)
    networks = {}
    for name, entry in document["networks"].items():
        try:
            spec, file_name, expected_hash = entry["spec"], entry["file"], entry["sha256"]
        except (KeyError, TypeError):
            raise ArtsegInputError(f"{folder / CONFIG_NAME}: network {name!r} lacks spec, file or sha256") from None
        path = folder / file_name
        module = build_network(spec)
        state = _read_checked_state(folder, file_name, expected_hash)
        try:
            module.load_state_dict(state, strict=True)
        except (RuntimeError, TypeError, AttributeError, ValueError, KeyError) as err:
            raise ArtsegInputError(
                f"{path}: weights do not fit the recorded {spec.get('name')} network ({_first_line(err)})"
            ) from None
        networks[name] = module.eval()
    return networks, document["metadata"]


def load_model_tensors(folder: str | Path) -> dict[str, dict[str, torch.Tensor]]:
    """Return the tensors saved with ``save_model_folder(..., tensors=...)`` (``{}`` if none).

    Raises
    ------
    ArtsegInputError
        As :func:`load_model_folder`: a missing or modified file, or one holding other objects.
    """
    folder = Path(folder)
    entries = read_model_config(folder).get("tensors", {})
    if not isinstance(entries, dict):
        raise ArtsegInputError(f"{folder / CONFIG_NAME}: 'tensors' must be a mapping")
    loaded = {}
    for name, entry in entries.items():
        try:
            file_name, expected_hash = entry["file"], entry["sha256"]
        except (KeyError, TypeError):
            raise ArtsegInputError(f"{folder / CONFIG_NAME}: tensors {name!r} lack file or sha256") from None
        state = _read_checked_state(folder, file_name, expected_hash)
        if not isinstance(state, dict) or not all(isinstance(value, torch.Tensor) for value in state.values()):
            raise ArtsegInputError(f"{folder / file_name}: expected a mapping of tensors")
        loaded[name] = state
    return loaded


def _read_checked_state(folder: Path, file_name: str, expected_hash: str) -> Any:
    """``torch.load`` (tensors only) of a file of the folder whose SHA-256 matches config.json."""
    path = folder / file_name
    if Path(file_name).name != file_name:
        raise ArtsegInputError(f"{folder / CONFIG_NAME}: weight file name {file_name!r} must be a plain name")
    if not path.is_file():
        raise ArtsegInputError(f"{path}: weight file missing")
    actual_hash = file_sha256(path)
    if actual_hash != expected_hash:
        raise ArtsegInputError(
            f"{path}: SHA-256 {actual_hash[:12]}... does not match config.json ({str(expected_hash)[:12]}...); "
            "the file was modified or corrupted"
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise ArtsegInputError(
            f"{path}: holds objects other than tensors; refusing to unpickle it (weights_only=True)"
        ) from None
    except (RuntimeError, EOFError, ValueError) as err:
        raise ArtsegInputError(f"{path}: unreadable weight file ({_first_line(err)})") from None


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def file_sha256(path: str | Path) -> str:
    """Return the hexadecimal SHA-256 of a file."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def model_digest(model) -> str | None:
    """SHA-256 (32 hex digits) of a segmenter's weights, configuration and calibration.

    What identifies a fitted model in memory, whatever folder it came from: the key of
    remembered masks, of shard runs and of models saved for cluster workers. A wrapper with a
    ``segmenter`` attribute is unwrapped; None gives None.
    """
    if model is None:
        return None
    segmenter = getattr(model, "segmenter", model)
    digest = hashlib.sha256()
    digest.update(repr((segmenter.config, segmenter.calibration, getattr(segmenter, "cam_stage", None))).encode())
    for network in (getattr(segmenter, "unet", None), getattr(segmenter, "classifier", None)):
        if network is not None:
            for name, tensor in network.state_dict().items():
                digest.update(name.encode())
                digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:32]
