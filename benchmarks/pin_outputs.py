"""Record the outputs a restructuring must not change, and compare two recordings.

Each pinned command runs with its own empty cache (``ARTSEG_CACHE``), so the networks really run
(no remembered masks) and data generation is repeated. Pins: the two embedded-default analyses,
``bench_weak.py`` on one seed of the cho_m4r and lncap presets (small sets) and ``artseg
benchmark`` on a tiny configuration. Tables are compared column by column (text equal, numbers
by their largest absolute difference; paths inside the run's cache by their last two parts); text
outputs line by line, timing lines excepted.

    python benchmarks/pin_outputs.py record --out benchmarks/out/pins/before
    python benchmarks/pin_outputs.py record --out benchmarks/out/pins/after
    python benchmarks/pin_outputs.py compare benchmarks/out/pins/before benchmarks/out/pins/after

Run both recordings on the same machine, thread count and compute path. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare_cpu_paths import compare_tables  # noqa: E402

# Frozen here, not imported from the tests: a pin must not move when the tests' tiny settings do.
TINY_CONFIG = {
    "classifier": {"depth": 18, "base_width": 4},
    "unet": {"width": 4, "levels": 2, "convs_per_block": 1},
    "classifier_train": {"epochs": 2, "batch_size": 8, "precision": "fp32"},
    "unet_train": {"epochs": 2, "batch_size": 8, "precision": "fp32"},
    "input": {"classifier_size": 64, "unet_patch": 64},
    "cam": {"batch_size": 32, "precision": "fp32"},
    "tiling": {"tile_size": 64, "overlap": 8, "batch_size": 4},
}
BENCH_WEAK = [sys.executable, "benchmarks/bench_weak.py", "--n-images", "96", "--size", "128", "--seed", "0"]
PINS = {
    "ligand": ([sys.executable, "-m", "analysis.ligand_affinity", "--quiet"], "folder"),
    "nuclei": ([sys.executable, "-m", "analysis.nuclei_impact", "--quiet"], "folder"),
    "weak_cho_m4r": ([*BENCH_WEAK, "--preset", "cho_m4r"], "stdout"),
    "weak_lncap": ([*BENCH_WEAK, "--preset", "lncap"], "stdout"),
    "benchmark_tiny": ([sys.executable, "-m", "artseg", "benchmark", "--preset", "cho_m4r", "--n-images", "32",
                        "--size", "64", "--models", "U-Net,ScoreCAM-U-Net,ScoreCAM", "--quiet"], "folder"),
}


def record(out: Path, names: list[str]) -> None:
    """Run each pinned command into ``out/<name>/`` with a fresh cache."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "tiny.json").write_text(json.dumps(TINY_CONFIG))
    for name in names:
        command, kind = PINS[name]
        folder = out / name
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        if name == "benchmark_tiny":
            command = [*command, "--config", str(out / "tiny.json")]
        if kind == "folder":
            command = [*command, "--out", str(folder / "out")]
        env = {**os.environ, "ARTSEG_CACHE": str(folder / "cache")}
        started = time.perf_counter()
        with (folder / "stdout.txt").open("w") as stdout, (folder / "stderr.txt").open("w") as stderr:
            subprocess.run(command, env=env, stdout=stdout, stderr=stderr, check=True)
        seconds = time.perf_counter() - started
        (folder / "done").write_text(f"{seconds:.0f} s\n")
        print(f"{name}: {seconds:.0f} s", flush=True)


def _cache_relative(value: str) -> str:
    """A path inside a run's cache by its last two parts (each run has its own cache folder)."""
    value = str(value)
    return "/".join(value.split("/")[-2:]) if "/cache/" in value else value


def compare(before: Path, after: Path) -> list[tuple[str, str, str]]:
    """(pin, what, result) for every table column and every stdout recording of pins both runs finished."""
    rows = []
    for name, (_, kind) in PINS.items():
        a, b = before / name, after / name
        if not ((a / "done").exists() and (b / "done").exists()):
            continue
        if kind == "folder":
            for row in compare_tables(a / "out", b / "out", normalise=_cache_relative).itertuples():
                rows.append((name, f"{row.table}:{row.column}", row.result))
        else:
            left = [line for line in (a / "stdout.txt").read_text().splitlines() if "seconds" not in line]
            right = [line for line in (b / "stdout.txt").read_text().splitlines() if "seconds" not in line]
            diff = [line for line in difflib.ndiff(left, right) if line[:2] in ("- ", "+ ")]
            removed = sum(line.startswith("- ") for line in diff)
            result = "equal" if not diff else f"{removed} lines only before, {len(diff) - removed} only after"
            rows.append((name, "stdout", result))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="action", required=True)
    rec = sub.add_parser("record")
    rec.add_argument("--out", type=Path, required=True)
    rec.add_argument("--only", default=",".join(PINS), help="comma-separated pins")
    cmp = sub.add_parser("compare")
    cmp.add_argument("before", type=Path)
    cmp.add_argument("after", type=Path)
    args = parser.parse_args(argv)
    if args.action == "record":
        record(args.out, [name.strip() for name in args.only.split(",")])
        return 0
    rows = compare(args.before, args.after)
    print("| pin | output | before vs after |\n|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 0 if all(r[2] == "equal" or r[2].startswith("max |Δ| 0 ") or r[2] == "max |Δ| 0" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
