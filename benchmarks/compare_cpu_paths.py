"""Run one command on this CPU's own compute path and on the AVX2-only path; compare its tables.

The AVX2-only path is forced with ``ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2`` (what an
AVX2-only x86-64 CPU runs: fp32, contiguous layout, AVX2 kernels; ``artseg info`` shows it).
Each run gets its own empty cache (``ARTSEG_CACHE``), so data generation is repeated on
each path too, and its own output folder. Every CSV the two runs wrote is compared: text
columns must be equal, numeric columns are reported by their largest absolute difference.

    python benchmarks/compare_cpu_paths.py --out benchmarks/out/cpu_paths -- python -m analysis.ligand_affinity --quiet
    python benchmarks/compare_cpu_paths.py --out benchmarks/out/cpu_paths_nuclei -- python -m analysis.nuclei_impact --quiet

The command must accept ``--out DIR`` (added here). Prints a Markdown table for
benchmarks/RESULTS.md ("Compute path").
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

PATHS = {"native": {}, "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}}


def run_on_path(command: list[str], folder: Path, extra_env: dict[str, str]) -> float:
    """Run ``command --out folder/out`` with a fresh cache; return the wall seconds."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    env = {**os.environ, **extra_env, "ARTSEG_CACHE": str(folder / "cache")}
    info = subprocess.run([sys.executable, "-m", "artseg", "info"], env=env, capture_output=True, text=True)
    (folder / "info.txt").write_text(info.stdout)
    started = time.perf_counter()
    with (folder / "log.txt").open("w") as log:
        subprocess.run([*command, "--out", str(folder / "out")], env=env, stdout=log, stderr=subprocess.STDOUT,
                       check=True)
    return time.perf_counter() - started


def compare_tables(a: Path, b: Path, normalise=None) -> pd.DataFrame:
    """One row per CSV and column: equal (text, after ``normalise`` of each value) or largest |difference| (numbers)."""
    rows = []
    for csv in sorted(a.glob("*.csv")):
        left, right = pd.read_csv(csv), pd.read_csv(b / csv.name)
        if left.shape != right.shape or list(left.columns) != list(right.columns):
            rows.append({"table": csv.name, "column": "(shape)", "result": f"{left.shape} vs {right.shape}"})
            continue
        for column in left.columns:
            x, y = left[column], right[column]
            if x.dtype.kind in "fi" and y.dtype.kind in "fi":
                x, y = x.to_numpy(float), y.to_numpy(float)
                same_nan = np.array_equal(np.isnan(x), np.isnan(y))
                same_inf = np.array_equal(np.where(np.isinf(x), x, 0), np.where(np.isinf(y), y, 0))
                finite = np.isfinite(x) & np.isfinite(y)
                diff = float(np.max(np.abs(x[finite] - y[finite]))) if finite.any() else 0.0
                rows.append({"table": csv.name, "column": column, "result": f"max |Δ| {diff:.3g}"
                             + ("" if same_nan else " (NaN differ)") + ("" if same_inf else " (inf differ)")})
            else:
                x, y = x.astype(str), y.astype(str)
                if normalise is not None:
                    x, y = x.map(normalise), y.map(normalise)
                rows.append({"table": csv.name, "column": column, "result": "equal" if x.equals(y) else "DIFFERENT"})
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/cpu_paths"))
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    seconds = {name: run_on_path(command, args.out / name, env) for name, env in PATHS.items()}
    for name in PATHS:
        print(f"{name}: {seconds[name]:.0f} s; " + " ".join((args.out / name / "info.txt").read_text().split()))
    table = compare_tables(args.out / "native" / "out", args.out / "avx2" / "out")
    print("| table | column | native vs AVX2-only |\n|---|---|---|")
    for row in table.itertuples():
        print(f"| {row.table} | {row.column} | {row.result} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
