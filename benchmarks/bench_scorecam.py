"""Score-CAM speed, memory and fidelity on a briefly trained ResNet50, against torchcam.

A ResNet50 (3 input channels, 2 logits) is trained for a few epochs with
``artseg.train.fit`` to tell synthetic brightfield-like fields with dark artifact
blobs from clean ones, so its Score-CAM channel weights are far from uniform (a
random-init network gives nearly equal weights and hides fidelity loss). Then
each Score-CAM variant runs in its own subprocess on ``--cam-size`` artifact images
(seconds per image, peak RSS), and its maps are compared with exact float32
Score-CAM (Pearson r per image). A second, free analysis replays top-k choices
from the exact run's recorded channel weights (all fp32) to compare channel
rankings and what unscored channels get.

Variants: ``default`` is ``score_cam(model, images)`` as users call it (128 channels
spread over the peak-activation ranking, precision "auto" = bf16 where the CPU has
it, else fp32); ``fp32-auto`` the same in fp32; ``*-topK`` the K highest-peak
channels; ``exact-*`` all 2048 channels; ``torchcam`` and ``pytorch-grad-cam`` those
libraries' ScoreCAM with their default batch sizes, maps upsampled (bilinear) to
the input size. pytorch-grad-cam imports torchvision, cv2 and ttach at import time; without
them the variant reports why it cannot run.

Usage (from the repository root; results go to ``--out-dir``, default
benchmarks/out/scorecam)::

    python benchmarks/bench_scorecam.py                      # all default variants
    python benchmarks/bench_scorecam.py --variants exact-fp32 bf16-top256 --n-images 2
    python benchmarks/bench_scorecam.py --cam-size 128 --variants exact-fp32 default torchcam
    python benchmarks/bench_scorecam.py --markdown           # print a RESULTS.md table

The AVX2 path on an AVX-512 machine: prefix ``ONEDNN_MAX_CPU_ISA=AVX2
ATEN_CPU_CAPABILITY=avx2`` (``default`` then resolves to fp32, as on an AVX2 CPU).
Take timings when the machine is otherwise idle (``uptime``); the script prints the
load average before and after each variant.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
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
# the replay must use score_cam's own rules
from artseg.cam import AUTO_CHANNELS, nearest_scored_weights, spread_channels
from artseg.hardware import cpu_capability, cpu_model_name
from artseg.nets import ResNet
from artseg.hardware import inference_memory_format
from artseg.train import TrainConfig, fit, resolve_precision

OUT_DIR = Path(__file__).resolve().parent / "out" / "scorecam"
TRAIN_SIZE, CAM_SIZE = 128, 224
VARIANTS: dict[str, dict] = {
    "default": dict(),  # score_cam(model, images): what users call
    "fp32-auto": dict(precision="fp32"),  # the default where "auto" precision is fp32 (AVX2)
    "exact-fp32": dict(precision="fp32", top_k=None),
    "bf16": dict(precision="bf16", top_k=None),
    "fp32-top512": dict(precision="fp32", top_k=512),
    "fp32-top256": dict(precision="fp32", top_k=256),
    "fp32-top128": dict(precision="fp32", top_k=128),
    "fp32-top64": dict(precision="fp32", top_k=64),
    "bf16-top512": dict(precision="bf16", top_k=512),
    "bf16-top256": dict(precision="bf16", top_k=256),
    "bf16-top128": dict(precision="bf16", top_k=128),
    "bf16-top64": dict(precision="bf16", top_k=64),
    "reference-loop": dict(top_k=None),  # score_cam_reference: one masked input at a time, fp32
    "torchcam": dict(top_k=None),  # torchcam.methods.ScoreCAM, fp32, its default batch size (32)
    "pytorch-grad-cam": dict(top_k=None),  # pytorch_grad_cam.ScoreCAM, fp32, its default batch size (16)
}
PEERS = ("torchcam", "pytorch-grad-cam")
DEFAULT_VARIANTS = [name for name in VARIANTS if name not in ("reference-loop", *PEERS)]


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


# --------------------------------------------------------------------------- peers
def torchcam_score_cam(model: nn.Module, image: torch.Tensor) -> np.ndarray:
    """torchcam's ScoreCAM map of class 1 (artifact) for one image, upsampled to its size."""
    from torchcam.methods import ScoreCAM  # only the methods subpackage: no torchvision needed

    with ScoreCAM(model, target_layer=model.last_stage, input_shape=tuple(image.shape)) as extractor:
        with torch.inference_mode():
            logits = model(image[None])
        low_res = extractor(class_idx=1, scores=logits)[0][0]  # first target layer, first image
    return _upsampled_unit_map(low_res, image.shape[-2:])


def grad_cam_score_cam(model: nn.Module, image: torch.Tensor) -> np.ndarray:
    """pytorch-grad-cam's ScoreCAM map of class 1 for one image (at the input size already)."""
    from pytorch_grad_cam import ScoreCAM  # imports torchvision, cv2 and ttach at import time
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    with ScoreCAM(model=model, target_layers=[model.last_stage]) as extractor:
        return extractor(input_tensor=image[None], targets=[ClassifierOutputTarget(1)])[0]


def _upsampled_unit_map(low_res: torch.Tensor, size: torch.Size) -> np.ndarray:
    upsampled = torch.nn.functional.interpolate(
        low_res[None, None].float(), size=tuple(size), mode="bilinear", align_corners=False)[0, 0]
    low, high = upsampled.min(), upsampled.max()
    return ((upsampled - low) / (high - low)).numpy() if high > low else np.zeros(tuple(size))


PEER_FUNCTIONS = {"torchcam": torchcam_score_cam, "pytorch-grad-cam": grad_cam_score_cam}
PEER_MODULES = {"torchcam": "torchcam.methods", "pytorch-grad-cam": "pytorch_grad_cam"}
# modules the peer's Score-CAM imports at import time (pytorch-grad-cam's package __init__
# imports every method and its utils: torchvision transforms, cv2 resizing, ttach)
PEER_REQUIRES = {"torchcam": (), "pytorch-grad-cam": ("torchvision", "cv2", "ttach", "sklearn")}


# --------------------------------------------------------------------------- one variant
def run_variant(name: str, n_images: int, repeats: int, batch_size: int, epochs: int, out_dir: Path) -> dict:
    """Time one variant on the cached model and images; save its maps; return a summary."""
    model = trained_resnet50(OUT_DIR, epochs)  # one cache for every --out-dir: same weights
    images = torch.from_numpy(np.load(out_dir / "images.npy"))[:n_images]
    recorder = ProbabilityRecorder(model) if name == "exact-fp32" else None
    if name in PEERS or name == "reference-loop":
        precision = "fp32"
    else:
        precision = resolve_precision(VARIANTS[name].get("precision", "auto"))
    layout = "channels_last" if inference_memory_format(precision) == torch.channels_last else "contiguous"
    summary = dict(variant=name, precision=precision, layout=layout, threads=torch.get_num_threads(),
                   cpu=cpu_model_name(), cpu_capability=cpu_capability(), torch=torch.__version__,
                   size=int(images.shape[-1]), top_k=VARIANTS[name].get("top_k", f"{AUTO_CHANNELS} spread"))
    if name in PEERS:
        summary.update(layout="contiguous")
        package = PEER_MODULES[name].split(".")[0]
        needed = (package, *PEER_REQUIRES[name])
        missing = [module for module in needed if importlib.util.find_spec(module) is None]
        if missing:
            return dict(summary, unavailable=f"{package} needs {', '.join(missing)} (not installed)")
        try:
            importlib.import_module(PEER_MODULES[name])
        except ImportError as error:
            return dict(summary, unavailable=f"{type(error).__name__}: {error}")
    seconds, cpu_seconds, maps = [], [], []
    for image in images:
        for _ in range(repeats):
            if recorder is not None:
                recorder.recorded.clear()
            started, cpu_started = time.perf_counter(), time.process_time()
            if name == "reference-loop":
                image_map = score_cam_reference(model, image[None])[0]
            elif name in PEERS:
                image_map = PEER_FUNCTIONS[name](model, image)
            else:
                image_map = score_cam(recorder or model, image[None], batch_size=batch_size, **VARIANTS[name])[0]
            seconds.append(time.perf_counter() - started)
            cpu_seconds.append(time.process_time() - cpu_started)
        maps.append(image_map)
        if recorder is not None:
            # first record is the activation pass; the rest are the masked inputs in channel order
            np.save(out_dir / f"weights_{len(maps) - 1}.npy", torch.cat(recorder.recorded[1:]).numpy())
    np.save(out_dir / f"maps_{name}.npy", np.stack(maps))
    return dict(
        summary,
        seconds=seconds,
        cpu_seconds=cpu_seconds,
        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    )


# --------------------------------------------------------------------------- analysis
PSEUDO_MASK_CUTOFF = 0.05  # paper §2.3.1: Score-CAM > 0.05 becomes the U-Net's pseudo-mask


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def pseudo_mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of the two maps' pseudo-masks (map > 0.05)."""
    mask_a, mask_b = a > PSEUDO_MASK_CUTOFF, b > PSEUDO_MASK_CUTOFF
    return float((mask_a & mask_b).sum() / max((mask_a | mask_b).sum(), 1))


def replay_top_k(model: nn.Module, images: torch.Tensor, ks: list[int], out_dir: Path) -> list[dict]:
    """Fidelity of weight choices replayed from the exact run's fp32 channel weights.

    For each image the exact run recorded the weight of every non-constant channel.
    Controls: all weights equal ("uniform": the plain activation sum, no scoring at
    all). Top-k: keep the exact weights of k channels, chosen as the k highest by mean
    or peak |activation| (``score_cam(top_k=k)`` uses the peak) or spread evenly over
    the peak ranking ("spread", ``top_k="auto"``), and give the others the mean
    scored weight ("fill"), zero ("drop"), or the weight of the scored channel with
    the closest normalised map ("nearest", what ``score_cam`` does).
    """
    exact_maps = np.load(out_dir / "maps_exact-fp32.npy")
    rows = []
    for i, image in enumerate(images[: len(exact_maps)]):
        activations = _last_stage_activations(model, image)
        flat = activations.flatten(1)
        non_constant = flat.amax(dim=1) > flat.amin(dim=1)
        recorded = torch.from_numpy(np.load(out_dir / f"weights_{i}.npy")).double()
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
        rankings = {
            "mean": lambda k: torch.sort(flat.abs().mean(dim=1), descending=True, stable=True).indices[:k],
            "max": lambda k: torch.sort(flat.abs().amax(dim=1), descending=True, stable=True).indices[:k],
            "spread": lambda k: spread_channels(activations, k),
        }
        for k in ks:
            for ranking, choose in rankings.items():
                scored = torch.zeros(len(flat), dtype=torch.bool)
                scored[choose(k)] = True
                scored &= non_constant
                unscored = ~scored & non_constant
                estimates = {
                    "fill": weights[scored].mean(),
                    "drop": 0.0,
                    "nearest": nearest_scored_weights(activations, weights, scored, unscored),
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
    parser.add_argument("--batch-size", type=int, default=64, help="score_cam batch size (peers use theirs)")
    parser.add_argument("--epochs", type=int, default=4, help="toy-task training epochs")
    parser.add_argument("--cam-size", type=int, default=CAM_SIZE, help="side of the explained images")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--out-dir", type=Path, default=OUT_DIR,
                        help="images, maps and weights of this run (the trained model stays in the default)")
    parser.add_argument("--markdown", action="store_true", help="print a RESULTS.md table")
    parser.add_argument("--run-variant", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    if args.run_variant:
        summary = run_variant(args.run_variant, args.n_images, args.repeats, args.batch_size, args.epochs,
                              args.out_dir)
        print("RESULT " + json.dumps(summary), flush=True)
        return 0

    args.out_dir.mkdir(parents=True, exist_ok=True)
    model = trained_resnet50(OUT_DIR, args.epochs)
    rng = np.random.default_rng(123)
    images = np.stack([toy_field(rng, args.cam_size, True) for _ in range(max(args.n_images, 3))])
    np.save(args.out_dir / "images.npy", images)
    with torch.inference_mode():
        p_artifact = torch.softmax(model(torch.from_numpy(images)), dim=1)[:, 1]
    print(f"CPU {cpu_model_name()}, capability {cpu_capability()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; {args.cam_size}x{args.cam_size} images", flush=True)
    print("artifact probability of the benchmark images:", np.round(p_artifact.numpy(), 3).tolist())

    summaries = []
    for name in args.variants:
        load_before = os.getloadavg()[0]
        command = [sys.executable, __file__, "--run-variant", name, "--n-images", str(args.n_images),
                   "--repeats", str(args.repeats), "--batch-size", str(args.batch_size),
                   "--epochs", str(args.epochs), "--out-dir", str(args.out_dir)]
        if args.threads:
            command += ["--threads", str(args.threads)]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        summary = json.loads(output.split("RESULT ", 1)[1])
        summary["load"] = (load_before, os.getloadavg()[0])
        summaries.append(summary)
        if "unavailable" in summary:
            print(f"{name:15s} cannot run here: {summary['unavailable']}", flush=True)
            continue
        print(f"{name:15s} median {np.median(summary['seconds']):7.2f} s/image "
              f"(runs {np.round(summary['seconds'], 2).tolist()}), CPU "
              f"{np.median(summary['cpu_seconds']):7.2f} s/image, peak RSS "
              f"{summary['peak_rss_mb']:.0f} MB, {summary['precision']} {summary['layout']}, "
              f"load {summary['load'][0]:.2f}->{summary['load'][1]:.2f}", flush=True)

    exact_path = args.out_dir / "maps_exact-fp32.npy"
    if exact_path.exists():
        exact = np.load(exact_path)
        for summary in summaries:
            if "unavailable" in summary:
                continue
            maps = np.load(args.out_dir / f"maps_{summary['variant']}.npy")
            n = min(len(maps), len(exact))
            summary["r"] = [pearson(maps[i], exact[i]) for i in range(n)]
            summary["iou"] = [pseudo_mask_iou(maps[i], exact[i]) for i in range(n)]
            print(f"{summary['variant']:15s} r vs exact fp32 per image {np.round(summary['r'], 4).tolist()}")
        replay = replay_top_k(model, torch.from_numpy(images), [32, 64, 96, 128, 192, 256, 512, 1024],
                              args.out_dir)
        print(replay_table(replay))
    if args.markdown:
        print(markdown_table(summaries))
    return 0


def markdown_table(summaries: list[dict]) -> str:
    """Markdown: one row per variant, under a line naming the CPU, path and threads."""
    first = summaries[0]
    lines = [f"CPU: {first['cpu']}; ATen capability {first['cpu_capability']}; torch {first['torch']}; "
             f"{first['threads']} threads; {first['size']}x{first['size']} images", "",
             "| variant | channels scored | precision, layout | s/image (median) | CPU s/image (median) | runs | "
             "min r vs exact fp32 | min IoU of map>0.05 | peak RSS MB | load before/after |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for s in summaries:
        if "unavailable" in s:
            lines.append(f"| {s['variant']} | - | - | cannot run: {s['unavailable']} | | | | | | |")
            continue
        r = f"{min(s['r']):.4f}" if s.get("r") else "n/a"
        iou = f"{min(s['iou']):.3f}" if s.get("iou") else "n/a"
        scored = "all" if s["top_k"] in (None, "all") else s["top_k"]
        lines.append(f"| {s['variant']} | {scored} | {s['precision']}, {s['layout']} | "
                     f"{np.median(s['seconds']):.2f} | {np.median(s['cpu_seconds']):.2f} | "
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
