"""One training loop for every network in ArtSeg (paper §2.3.1).

Adam (lr 0.002), binary cross-entropy on logits, learning rate ÷10 after ``plateau_patience``
epochs without validation improvement, a fixed number of epochs, the best-validation weights
kept, optional early stopping, flips / 90° rotations / intensity jitter, seeded, with a tqdm
bar and a per-epoch CSV log. Precision and activation layout come from :mod:`artseg.hardware`
(bf16 autocast + channels_last where the hardware has native bf16, fp32 + contiguous elsewhere).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from artseg.augment import augment_batch
from artseg.errors import ArtsegInputError
from artseg.hardware import memory_format_for, resolve_precision

LossFn = Callable[[nn.Module, torch.Tensor, "torch.Tensor | None"], torch.Tensor]
LOG_COLUMNS = ("epoch", "train_loss", "val_loss", "lr", "seconds")


@dataclass
class TrainConfig:
    """Settings of :func:`fit` (defaults are the paper's, §2.3.1).

    ``precision`` is ``"auto"`` (bf16 where :func:`resolve_precision` finds fast support),
    ``"bf16"`` or ``"fp32"``. ``early_stop_patience=None`` trains all ``epochs``.
    """

    epochs: int = 150
    batch_size: int = 8
    lr: float = 0.002
    plateau_patience: int = 10
    plateau_factor: float = 0.1
    early_stop_patience: int | None = None
    augment: bool = True
    intensity_jitter: float = 0.1
    precision: str = "auto"
    seed: int = 0


@dataclass
class TrainResult:
    """Outcome of :func:`fit`: the epoch whose weights the model now holds, and the log."""

    best_epoch: int
    best_val_loss: float
    history: list[dict] = field(default_factory=list)
    stopped_early: bool = False
    precision: str = "fp32"


def autocast_context(precision: str, device_type: str = "cpu") -> contextlib.AbstractContextManager:
    """Return a bf16 autocast context for ``precision == "bf16"``, else a no-op context."""
    if resolve_precision(precision, device_type) == "bf16":
        return torch.autocast(device_type=device_type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def bce_with_logits_loss(model: nn.Module, images: torch.Tensor, targets: torch.Tensor | None) -> torch.Tensor:
    """Default loss: binary cross-entropy between ``sigmoid(model(images))`` and ``targets``."""
    if targets is None:
        raise ArtsegInputError("targets are None: a self-supervised fit needs compute_loss")
    logits = model(images)
    return F.binary_cross_entropy_with_logits(logits.float(), targets.float())


def fit(
    model: nn.Module,
    train_x: torch.Tensor,
    train_y: torch.Tensor | None,
    val_x: torch.Tensor | None,
    val_y: torch.Tensor | None,
    *,
    config: TrainConfig,
    compute_loss: LossFn | None = None,
    log_csv: str | Path | None = None,
    desc: str = "train",
    progress: bool = True,
) -> TrainResult:
    """Train ``model`` in place and leave it holding its best-validation weights.

    Parameters
    ----------
    model : torch.nn.Module
        Trained on the device its parameters are on.
    train_x, val_x : torch.Tensor
        Images ``(N, C, H, W)`` (float32, or any dtype: batches are cast to float32 on the
        fly). ``val_x=None`` monitors the training loss instead.
    train_y, val_y : torch.Tensor or None
        Image-level targets ``(N, K)`` or pixel targets ``(N, K, H, W)`` (flips and rotations
        are then applied to images and targets together), or ``None`` for self-supervised
        losses (``compute_loss`` required).
    config : TrainConfig
    compute_loss : callable, optional
        ``compute_loss(model, x, y) -> scalar tensor``; default :func:`bce_with_logits_loss`.
    log_csv : path, optional
        Per-epoch log with columns ``epoch, train_loss, val_loss, lr, seconds``.
    desc : str
        Label of the progress bar.
    progress : bool
        Show a tqdm bar over epochs.

    Returns
    -------
    TrainResult

    Raises
    ------
    ArtsegInputError
        Empty or mismatched inputs, bad settings.

    Notes
    -----
    Paper §2.3.1: Adam, lr 0.002, divided by 10 when the validation loss has not improved
    for 10 epochs, 150 epochs, best-validation checkpoint. Shuffling uses a seeded
    ``torch.Generator`` and augmentation a seeded ``numpy.random.Generator``, so a run is
    repeatable given the seed and the initial weights.
    """
    train_x, train_y, val_x, val_y = _check_inputs(train_x, train_y, val_x, val_y, config)
    loss_fn = compute_loss or bce_with_logits_loss
    device = next(model.parameters()).device
    precision = resolve_precision(config.precision, device.type)
    memory_format = memory_format_for(precision, device.type)
    model.to(memory_format=memory_format)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="min", factor=config.plateau_factor, patience=config.plateau_patience
    )
    shuffle_generator = torch.Generator().manual_seed(config.seed)
    augment_rng = np.random.default_rng(config.seed)

    best_state = _copy_state(model)
    best_epoch, best_loss, stopped_early = 0, float("inf"), False
    history: list[dict] = []
    log_writer = _CsvLog(log_csv) if log_csv is not None else None
    bar = tqdm(range(1, config.epochs + 1), desc=desc, unit="epoch", disable=not progress, leave=False)
    try:
        for epoch in bar:
            started = time.perf_counter()
            lr = optimizer.param_groups[0]["lr"]
            model.train()
            order = torch.randperm(train_x.shape[0], generator=shuffle_generator)
            train_loss = 0.0
            for start in range(0, len(order), config.batch_size):
                index = order[start : start + config.batch_size]
                x = train_x[index]
                y = None if train_y is None else train_y[index]
                x, y = _to_device(x, y, device, memory_format)
                if config.augment:
                    x, y = augment_batch(x, y, augment_rng, intensity_jitter=config.intensity_jitter)
                    x = x.contiguous(memory_format=memory_format)
                with autocast_context(precision, device.type):
                    loss = loss_fn(model, x, y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                train_loss += float(loss.detach()) * len(index)
            train_loss /= train_x.shape[0]
            if val_x is None:
                val_loss = train_loss
            else:
                val_loss = evaluate_loss(
                    model, val_x, val_y, batch_size=config.batch_size, precision=precision, compute_loss=loss_fn
                )
            scheduler.step(val_loss)
            if val_loss < best_loss:
                best_epoch, best_loss, best_state = epoch, val_loss, _copy_state(model)
            row = dict(epoch=epoch, train_loss=train_loss, val_loss=val_loss, lr=lr,
                       seconds=time.perf_counter() - started)
            history.append(row)
            if log_writer is not None:
                log_writer.write(row)
            bar.set_postfix(train=f"{train_loss:.4f}", val=f"{val_loss:.4f}", lr=f"{lr:.1e}")
            if config.early_stop_patience is not None and epoch - best_epoch >= config.early_stop_patience:
                stopped_early = True
                break
    finally:
        bar.close()
        if log_writer is not None:
            log_writer.close()
    model.load_state_dict(best_state)
    model.to(memory_format=torch.contiguous_format)
    model.eval()
    return TrainResult(best_epoch, best_loss, history, stopped_early, precision)


def train_network(network: nn.Module, train_x: torch.Tensor, train_y: torch.Tensor | None,
                  val_x: torch.Tensor, val_y: torch.Tensor | None, config: TrainConfig, *, seed: int, name: str,
                  log_dir: str | Path | None = None, progress: bool = True,
                  compute_loss: LossFn | None = None) -> TrainResult:
    """:func:`fit` one network of a recipe: seeded, validated when there are validation rows, logged.

    Parameters
    ----------
    network : torch.nn.Module
        Trained in place on the device it is on.
    train_x, train_y, val_x, val_y : torch.Tensor
        As for :func:`fit`; an empty ``val_x`` monitors the training loss.
    config : TrainConfig
        Its ``seed`` is replaced by ``seed``.
    name : str
        The network's name in the progress bar and in ``<log_dir>/<name>_log.csv``.
    """
    has_val = len(val_x) > 0
    return fit(network, train_x, train_y, val_x if has_val else None, val_y if has_val else None,
               config=dataclasses.replace(config, seed=seed), compute_loss=compute_loss,
               log_csv=None if log_dir is None else Path(log_dir) / f"{name}_log.csv", desc=name, progress=progress)


def training_summary(result: TrainResult) -> dict:
    """What a model folder records of one network's training."""
    return {"best_epoch": result.best_epoch, "best_val_loss": result.best_val_loss,
            "epochs_run": len(result.history), "stopped_early": result.stopped_early, "precision": result.precision}


def evaluate_loss(
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor | None,
    *,
    batch_size: int,
    precision: str = "fp32",
    compute_loss: LossFn | None = None,
) -> float:
    """Return the sample-weighted mean loss of ``model`` in eval mode, without gradients."""
    loss_fn = compute_loss or bce_with_logits_loss
    device = next(model.parameters()).device
    memory_format = memory_format_for(precision, device.type)
    was_training = model.training
    model.eval()
    total = 0.0
    with torch.no_grad():
        for start in range(0, images.shape[0], batch_size):
            x = images[start : start + batch_size]
            y = None if targets is None else targets[start : start + batch_size]
            x, y = _to_device(x, y, device, memory_format)
            with autocast_context(precision, device.type):
                total += float(loss_fn(model, x, y)) * x.shape[0]
    model.train(was_training)
    return total / images.shape[0]


def _check_inputs(train_x, train_y, val_x, val_y, config: TrainConfig):
    if config.epochs < 1 or config.batch_size < 1:
        raise ArtsegInputError(f"epochs and batch_size must be >= 1, got {config.epochs}, {config.batch_size}")
    train_x = _as_tensor(train_x, "train_x")
    train_y = None if train_y is None else _as_tensor(train_y, "train_y")
    if train_x.ndim != 4 or train_x.shape[0] == 0:
        raise ArtsegInputError(f"train_x must be a non-empty (N, C, H, W) tensor, got shape {tuple(train_x.shape)}")
    if train_y is not None and train_y.shape[0] != train_x.shape[0]:
        raise ArtsegInputError(f"train_x has {train_x.shape[0]} samples but train_y has {train_y.shape[0]}")
    if val_x is not None:
        val_x = _as_tensor(val_x, "val_x")
        val_y = None if val_y is None else _as_tensor(val_y, "val_y")
        if val_x.shape[0] == 0:
            val_x, val_y = None, None
        elif val_y is not None and val_y.shape[0] != val_x.shape[0]:
            raise ArtsegInputError(f"val_x has {val_x.shape[0]} samples but val_y has {val_y.shape[0]}")
    return train_x, train_y, val_x, val_y


def _as_tensor(array, name: str) -> torch.Tensor:
    # Kept in its own dtype (e.g. uint8 masks, float16 images) and cast per batch, so large
    # pixel-target sets need not be held in float32.
    if isinstance(array, np.ndarray):
        array = torch.from_numpy(np.ascontiguousarray(array))
    if not isinstance(array, torch.Tensor):
        raise ArtsegInputError(f"{name} must be a tensor or numpy array, got {type(array).__name__}")
    return array


def _to_device(x, y, device, memory_format):
    x = x.to(device, non_blocking=True).float().contiguous(memory_format=memory_format)
    if y is not None:
        y = y.to(device, non_blocking=True).float()
    return x, y


def _copy_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {key: value.detach().clone() for key, value in model.state_dict().items()}


class _CsvLog:
    """Per-epoch CSV log, flushed every row so a running fit can be watched."""

    def __init__(self, path: str | Path):
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("w", newline="")
        self._writer = csv.DictWriter(self._file, fieldnames=LOG_COLUMNS)
        self._writer.writeheader()

    def write(self, row: dict) -> None:
        self._writer.writerow({key: row[key] for key in LOG_COLUMNS})
        self._file.flush()

    def close(self) -> None:
        self._file.close()
