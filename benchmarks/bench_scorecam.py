"""Score-CAM speed, memory and fidelity on a briefly trained ResNet50.

A ResNet50 (3 input channels, 2 logits) is trained for a few epochs with
``artseg.train.fit`` to tell synthetic brightfield-like fields with dark artifact
blobs from clean ones, so its Score-CAM channel weights are far from uniform (a
random-init network gives nearly equal weights and hides fidelity loss). Then
each Score-CAM variant runs in its own subprocess on 224x224 artifact images
(seconds per image, peak RSS), and its maps are compared with exact float32
Score-CAM (Pearson r per image). A second, free analysis replays top-k choices
from the exact run's recorded channel weights (all fp32) to compare channel
rankings and what unscored channels get.

Usage (from the repository root; results go to benchmarks/out/scorecam)::

    python benchmarks/bench_scorecam.py                      # all default variants
    python benchmarks/bench_scorecam.py --variants exact-fp32 bf16-top256 --n-images 2
    python benchmarks/bench_scorecam.py --markdown           # print a RESULTS.md table

Take timings when the machine is otherwise idle (``uptime``); the script prints the
load average before and after each variant.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from artseg.cam import combine_channel_maps, score_cam, score_cam_reference
from artseg.cam._score_cam import _nearest_scored_weights  # the replay must use score_cam's own rule
from artseg.nets import ResNet
from artseg.train import TrainConfig, fit

OUT_DIR = Path(__file__).resolve().parent / "out" / "scorecam"
TRAIN_SIZE, CAM_SIZE = 128, 224
VARIANTS: dict[str, dict] = {
    "exact-fp32": dict(precision="fp32"),
    "bf16": dict(precision="bf16"),
    "fp32-top256": dict(precision="fp32", top_k=256),
    "bf16-top512": dict(precision="bf16", top_k=512),
    "bf16-top256": dict(precision="bf16", top_k=256),
    "bf16-top128": dict(precision="bf16", top_k=128),
    "bf16-top64": dict(precision="bf16", top_k=64),
    "reference-loop": dict(),  # score_cam_reference: one masked input at a time, fp32
}
DEFAULT_VARIANTS = [name for name in VARIANTS if name != "reference-loop"]


# --------------------------------------------------------------------------- data
def toy_field(rng: np.random.Generator, size: int, with_artifact: bool) -> np.ndarray:
    """A brightfield-like RGB field ``(3, size, size)``, normalised to roughly N(0, 1).

    Uneven background, cell rings and noise; one or two bright soft blobs (halos, in
    every field: distractors the classifier must learn to ignore); and, if
    `with_artifact`, one to three dark blobs of the same sizes (debris). The
    distractors make Score-CAM's channel weights matter: the plain activation sum
    highlights both kinds of blob, the class-weighted sum should not.
    """
    scale = size / CAM_SIZE
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    field = 0.6 + 0.05 * np.sin(xx / (40 * scale) + rng.uniform(0, 6)) * np.cos(yy / (55 * scale))
    for _ in range(rng.integers(15, 30)):
        cy, cx = rng.uniform(0, size, 2)
        radius = rng.uniform(6, 12) * scale
        distance = np.hypot(yy - cy, xx - cx)
        field += 0.15 * np.exp(-((distance - radius) ** 2) / (2 * (1.2 * scale) ** 2))
        field -= 0.04 * (distance < radius)
    blobs = [0.6] * int(rng.integers(1, 3))
    if with_artifact:
        blobs += [-0.6] * int(rng.integers(1, 4))
    for contrast in blobs:
        cy, cx = rng.uniform(0.15 * size, 0.85 * size, 2)
        ay, ax = rng.uniform(8, 24, 2) * scale
        inside = ((yy - cy) / ay) ** 2 + ((xx - cx) / ax) ** 2
        field *= 1.0 + contrast * rng.uniform(0.8, 1.1) / (1.0 + np.exp(np.minimum((inside - 1.0) * 6.0, 60.0)))
    field += 0.02 * rng.standard_normal(field.shape)
    gains = np.array([1.0, 0.97, 1.03], dtype=np.float32)[:, None, None]
    return ((field[None] * gains - 0.6) / 0.25).astype(np.float32)


def toy_dataset(n_images: int, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Half artifact, half clean fields and one-hot ``(N, 2)`` targets (clean, artifact)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n_images) % 2
    images = np.stack([toy_field(rng, size, bool(label)) for label in labels])
    return torch.from_numpy(images), torch.nn.functional.one_hot(torch.from_numpy(labels), 2).float()


# --------------------------------------------------------------------------- model
def trained_resnet50(cache: Path, epochs: int, seed: int = 0) -> nn.Module:
    """ResNet50 (3 channels, 2 logits) trained briefly on the toy task; cached by settings."""
    weights_path = cache / f"resnet50_toy2_e{epochs}_s{seed}_{TRAIN_SIZE}px.pt"
    torch.manual_seed(seed)
    model = ResNet(50, in_channels=3, num_logits=2)
    if weights_path.exists():
        model.load_state_dict(torch.load(weights_path, weights_only=True))
        return model.eval()
    train_x, train_y = toy_dataset(256, TRAIN_SIZE, seed=seed + 1)
    val_x, val_y = toy_dataset(64, TRAIN_SIZE, seed=seed + 2)
    config = TrainConfig(epochs=epochs, batch_size=16, lr=1e-3, plateau_patience=3, seed=seed)
    result = fit(model, train_x, train_y, val_x, val_y, config=config, desc="ResNet50 toy")
    with torch.inference_mode():
        predicted = model(val_x).argmax(dim=1)
    accuracy = float((predicted == val_y.argmax(dim=1)).float().mean())
    print(f"trained: best epoch {result.best_epoch}, val loss {result.best_val_loss:.3f}, "
          f"val accuracy {accuracy:.3f}", flush=True)
    cache.mkdir(parents=True, exist_ok=True)
    temporary = weights_path.with_suffix(".tmp")
    torch.save(model.state_dict(), temporary)
    temporary.replace(weights_path)
    return model.eval()


class ProbabilityRecorder(nn.Module):
    """Wraps a classifier and records the artifact probability of every forward pass."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.last_stage = model.last_stage
        self.recorded: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.model(x)
        self.recorded.append(torch.softmax(logits.float(), dim=1)[:, 1].detach())
        return logits


# --------------------------------------------------------------------------- one variant
def run_variant(name: str, n_images: int, repeats: int, batch_size: int, epochs: int) -> dict:
    """Time one variant on the cached model and images; save its maps; return a summary."""
    model = trained_resnet50(OUT_DIR, epochs)
    images = torch.from_numpy(np.load(OUT_DIR / "images.npy"))[:n_images]
    recorder = ProbabilityRecorder(model) if name == "exact-fp32" else None
    seconds, cpu_seconds, maps = [], [], []
    for image in images:
        for _ in range(repeats):
            if recorder is not None:
                recorder.recorded.clear()
            started, cpu_started = time.perf_counter(), time.process_time()
            if name == "reference-loop":
                image_map = score_cam_reference(model, image[None])
            else:
                image_map = score_cam(recorder or model, image[None], batch_size=batch_size, **VARIANTS[name])
            seconds.append(time.perf_counter() - started)
            cpu_seconds.append(time.process_time() - cpu_started)
        maps.append(image_map[0])
        if recorder is not None:
            # first record is the activation pass; the rest are the masked inputs in channel order
            np.save(OUT_DIR / f"weights_{len(maps) - 1}.npy", torch.cat(recorder.recorded[1:]).numpy())
    np.save(OUT_DIR / f"maps_{name}.npy", np.stack(maps))
    return dict(
        variant=name,
        seconds=seconds,
        cpu_seconds=cpu_seconds,
        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        threads=torch.get_num_threads(),
    )


# --------------------------------------------------------------------------- analysis
PSEUDO_MASK_CUTOFF = 0.05  # paper §2.3.1: Score-CAM > 0.05 becomes the U-Net's pseudo-mask


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def pseudo_mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of the two maps' pseudo-masks (map > 0.05)."""
    mask_a, mask_b = a > PSEUDO_MASK_CUTOFF, b > PSEUDO_MASK_CUTOFF
    return float((mask_a & mask_b).sum() / max((mask_a | mask_b).sum(), 1))


def replay_top_k(model: nn.Module, images: torch.Tensor, ks: list[int]) -> list[dict]:
    """Fidelity of weight choices replayed from the exact run's fp32 channel weights.

    For each image the exact run recorded the weight of every non-constant channel.
    Controls: all weights equal ("uniform": the plain activation sum, no scoring at
    all). Top-k: keep the k best-ranked channels' exact weights (ranked by mean or
    peak |activation|; ``score_cam`` uses the peak) and give the others the mean
    scored weight ("fill"), zero ("drop"), or the weight of the scored channel with
    the closest normalised map ("nearest", what ``score_cam`` does).
    """
    exact_maps = np.load(OUT_DIR / "maps_exact-fp32.npy")
    rows = []
    for i, image in enumerate(images[: len(exact_maps)]):
        activations = _last_stage_activations(model, image)
        flat = activations.flatten(1)
        non_constant = flat.amax(dim=1) > flat.amin(dim=1)
        recorded = torch.from_numpy(np.load(OUT_DIR / f"weights_{i}.npy")).double()
        if len(recorded) != int(non_constant.sum()):
            raise RuntimeError("recorded weights do not match the non-constant channels")
        weights = torch.zeros(len(flat), dtype=torch.float64)
        weights[non_constant] = recorded
        exact = combine_channel_maps(activations, weights, image.shape[-2:])
        if pearson(exact, exact_maps[i]) < 0.9999:
            raise RuntimeError("replayed exact weights do not reproduce the exact map")

        def row(**fields) -> dict:
            approx = combine_channel_maps(activations, fields.pop("weights"), image.shape[-2:])
            return dict(image=i, **fields, r=pearson(approx, exact), iou=pseudo_mask_iou(approx, exact))

        rows.append(dict(image=i, weights=(
            f"min {recorded.min():.3f}, median {recorded.median():.3f}, max {recorded.max():.3f}, "
            f"std {recorded.std():.3f} over {len(recorded)} of {len(flat)} channels")))
        rows.append(row(k=0, ranking="-", unscored="uniform", weights=non_constant.double()))
        rankings = {"mean": flat.abs().mean(dim=1), "max": flat.abs().amax(dim=1)}
        for k in ks:
            for ranking, energy in rankings.items():
                scored = torch.zeros(len(flat), dtype=torch.bool)
                scored[torch.sort(energy, descending=True, stable=True).indices[:k]] = True
                scored &= non_constant
                unscored = ~scored & non_constant
                estimates = {
                    "fill": weights[scored].mean(),
                    "drop": 0.0,
                    "nearest": _nearest_scored_weights(activations, weights, scored, unscored),
                }
                for rule, estimate in estimates.items():
                    replay = torch.where(scored, weights, 0.0)
                    replay[unscored] = estimate
                    rows.append(row(k=k, ranking=ranking, unscored=rule, weights=replay))
    return rows


def _last_stage_activations(model: nn.Module, image: torch.Tensor) -> torch.Tensor:
    recorded = []
    handle = model.last_stage.register_forward_hook(lambda m, i, o: recorded.append(o))
    with torch.inference_mode():
        model(image[None])
    handle.remove()
    return recorded[0][0].float()


# --------------------------------------------------------------------------- driver
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=DEFAULT_VARIANTS, choices=list(VARIANTS))
    parser.add_argument("--n-images", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per image (median reported)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=4, help="toy-task training epochs")
    parser.add_argument("--markdown", action="store_true", help="print a RESULTS.md table")
    parser.add_argument("--run-variant", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.run_variant:
        summary = run_variant(args.run_variant, args.n_images, args.repeats, args.batch_size, args.epochs)
        print("RESULT " + json.dumps(summary), flush=True)
        return 0

    OUT_DIR.mkdir(parents=True, exist_ok=True)
    model = trained_resnet50(OUT_DIR, args.epochs)
    rng = np.random.default_rng(123)
    images = np.stack([toy_field(rng, CAM_SIZE, True) for _ in range(max(args.n_images, 3))])
    np.save(OUT_DIR / "images.npy", images)
    with torch.inference_mode():
        p_artifact = torch.softmax(model(torch.from_numpy(images)), dim=1)[:, 1]
    print("artifact probability of the benchmark images:", np.round(p_artifact.numpy(), 3).tolist())

    summaries = []
    for name in args.variants:
        load_before = os.getloadavg()[0]
        command = [sys.executable, __file__, "--run-variant", name, "--n-images", str(args.n_images),
                   "--repeats", str(args.repeats), "--batch-size", str(args.batch_size),
                   "--epochs", str(args.epochs)]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        summary = json.loads(output.split("RESULT ", 1)[1])
        summary["load"] = (load_before, os.getloadavg()[0])
        summaries.append(summary)
        print(f"{name:15s} median {np.median(summary['seconds']):7.2f} s/image "
              f"(runs {np.round(summary['seconds'], 2).tolist()}), CPU "
              f"{np.median(summary['cpu_seconds']):7.2f} s/image, peak RSS "
              f"{summary['peak_rss_mb']:.0f} MB, load {summary['load'][0]:.2f}->{summary['load'][1]:.2f}",
              flush=True)

    exact_path = OUT_DIR / "maps_exact-fp32.npy"
    if exact_path.exists():
        exact = np.load(exact_path)
        for summary in summaries:
            maps = np.load(OUT_DIR / f"maps_{summary['variant']}.npy")
            n = min(len(maps), len(exact))
            summary["r"] = [pearson(maps[i], exact[i]) for i in range(n)]
            summary["iou"] = [pseudo_mask_iou(maps[i], exact[i]) for i in range(n)]
        replay = replay_top_k(model, torch.from_numpy(images), [32, 64, 128, 256, 512, 1024])
        print(replay_table(replay))
    if args.markdown:
        print(markdown_table(summaries))
    return 0


def markdown_table(summaries: list[dict]) -> str:
    lines = ["| variant | s/image (median) | CPU s/image (median) | runs | min r vs exact fp32 | "
             "min IoU of map>0.05 | peak RSS MB | load before/after |",
             "|---|---|---|---|---|---|---|---|"]
    for s in summaries:
        r = f"{min(s['r']):.4f}" if s.get("r") else "n/a"
        iou = f"{min(s['iou']):.3f}" if s.get("iou") else "n/a"
        lines.append(f"| {s['variant']} | {np.median(s['seconds']):.2f} | {np.median(s['cpu_seconds']):.2f} | "
                     f"{len(s['seconds'])} | {r} | {iou} | "
                     f"{s['peak_rss_mb']:.0f} | {s['load'][0]:.1f}/{s['load'][1]:.1f} |")
    return "\n".join(lines)


def replay_table(rows: list[dict]) -> str:
    """Markdown: exact-weight statistics per image, then min r / IoU over images per rule."""
    lines = [f"- image {row['image']}: channel weights {row['weights']}" for row in rows if "weights" in row]
    lines += ["", "| k scored | ranking | unscored channels get | min r | min IoU of map>0.05 |",
              "|---|---|---|---|---|"]
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        if "r" in row:
            groups.setdefault((row["k"], row["ranking"], row["unscored"]), []).append(row)
    for (k, ranking, rule), members in groups.items():
        lines.append(f"| {k} | {ranking} | {rule} | {min(m['r'] for m in members):.4f} | "
                     f"{min(m['iou'] for m in members):.3f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
