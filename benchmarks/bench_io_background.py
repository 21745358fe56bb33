"""Speed of image I/O, manifest validation, background fitting and clean-image synthesis.

Run from the repository root: ``python benchmarks/bench_io_background.py``. Prints a
Markdown table (best of ``--repeats`` runs) to paste into ``benchmarks/RESULTS.md``.
Files go to a temporary folder that is removed afterwards.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from artseg import io
from artseg.background import fit_background, synthesize_clean


def best_time(function, repeats: int) -> float:
    """Best wall time of ``repeats`` calls, in seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


NOISE_STD = 300.0


def synthetic_field(shape: tuple[int, int], seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A uint16 field: polynomial background + noise + one dark disc artifact; also the true surface."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    y, x = 2 * yy / shape[0] - 1, 2 * xx / shape[1] - 1
    surface = 20000 + 3000 * x - 2000 * y + 4000 * x**2 + 3000 * y**2
    image = surface + rng.normal(0, NOISE_STD, shape)
    radius = 0.1 * min(shape) * np.sqrt(shape[1] / shape[0] * 3)
    artifact = (yy - shape[0] / 2) ** 2 + (xx - shape[1] / 3) ** 2 < radius**2
    image[artifact] = 5000
    return np.clip(image, 0, 65535).astype(np.uint16), artifact, surface


def quality(image: np.ndarray, artifact: np.ndarray, surface: np.ndarray) -> list[str]:
    """Accuracy of the unmasked background fit and of the synthesized fill, in noise standard deviations."""
    fit_error = np.abs(fit_background(image) - surface).max() / NOISE_STD
    fill = synthesize_clean(image, artifact, 0)[artifact].astype(np.float64) - surface[artifact]
    return [
        f"fit_background without the mask (artifact = outliers): max |error| = {fit_error:.3f} noise std",
        f"synthesize_clean fill minus true background: mean {fill.mean() / NOISE_STD:+.3f}, "
        f"std {fill.std() / NOISE_STD:.3f} noise std",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--height", type=int, default=2000)
    parser.add_argument("--width", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--manifest-rows", type=int, default=1000)
    args = parser.parse_args()
    shape = (args.height, args.width)
    image, artifact, surface = synthetic_field(shape)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        tiff, png, mask_png = folder / "field.tif", folder / "field.png", folder / "mask.png"
        io.write_tiff(tiff, image)
        io.write_image(png, image)
        io.write_mask(mask_png, artifact)
        label = f"{shape[0]}x{shape[1]} uint16"
        rows.append((f"write_tiff (atomic), {label}", best_time(lambda: io.write_tiff(tiff, image), args.repeats)))
        rows.append((f"read_image TIFF, {label}", best_time(lambda: io.read_image(tiff), args.repeats)))
        rows.append((f"read_image PNG, {label}", best_time(lambda: io.read_image(png), args.repeats)))
        rows.append((f"read_mask PNG, {shape[0]}x{shape[1]}", best_time(lambda: io.read_mask(mask_png), args.repeats)))
        as_float = io.read_image(tiff)
        rows.append((f"normalize_percentile, {label}", best_time(lambda: io.normalize_percentile(as_float), args.repeats)))
        rows.append((f"fit_background, {label}", best_time(lambda: fit_background(image), args.repeats)))
        rows.append(
            (
                f"synthesize_clean, {label}, {artifact.mean():.1%} masked",
                best_time(lambda: synthesize_clean(image, artifact, 0), args.repeats),
            )
        )
        manifest = folder / "manifest.csv"
        pd.DataFrame(
            {"image": ["field.tif"] * args.manifest_rows, "label": ["artifact"] * args.manifest_rows,
             "mask": ["mask.png"] * args.manifest_rows}
        ).to_csv(manifest, index=False)
        rows.append(
            (
                f"read_image_manifest, {args.manifest_rows} rows with masks (shape check)",
                best_time(lambda: io.read_image_manifest(manifest), args.repeats),
            )
        )
    print("| operation | best time |\n|---|---|")
    for name, seconds in rows:
        print(f"| {name} | {seconds * 1000:.1f} ms |")
    print()
    for line in quality(image, artifact, surface):
        print(f"- {line}")


if __name__ == "__main__":
    main()
