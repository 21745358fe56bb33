#!/usr/bin/env bash
# Issue 23's check against a scheduler and two workers started by hand on 127.0.0.1: artseg predict
# and the ligand analysis with --scheduler give the serial runs' outputs, and the scheduler counts
# the per-field tasks it ran (a preloaded plugin, benchmarks/count_tasks.py).
#   bash benchmarks/cluster_by_hand.sh /tmp/by_hand
set -euo pipefail
out=${1:-bench-out/cluster_by_hand}
rm -rf "$out" && mkdir -p "$out"
here=$(cd "$(dirname "$0")" && pwd)
python3 -m artseg synth --preset cho_m4r --out "$out/data" --n-images 16 --seed 3 --plate-experiments 2 \
    --plate-concentrations 4 --plate-fields-per-well 1 --quiet
dask scheduler --host 127.0.0.1 --port 8786 --no-dashboard --preload "$here/count_tasks.py" > "$out/scheduler.log" 2>&1 &
scheduler=$!
dask worker tcp://127.0.0.1:8786 --nworkers 2 --nthreads 1 --no-dashboard > "$out/workers.log" 2>&1 &
workers=$!
trap 'kill $workers $scheduler 2>/dev/null || true' EXIT
sleep 8
model=data/weights/artseg_cho_m4r_fast_seed0 cells=data/weights/cells_cho_m4r_seed0
for run in serial cluster; do
    extra=(); [ "$run" = cluster ] && extra=(--scheduler tcp://127.0.0.1:8786)
    python3 -m artseg predict --model "$model" --input "$out/data/manifest.csv" --out "$out/predict_$run" --quiet "${extra[@]}"
    python3 -m analysis.ligand_affinity --manifest "$out/data/plate.csv" --truth "$out/data/truth.json" --model "$model" \
        --cell-model "$cells" --out "$out/ligand_$run" --quiet "${extra[@]}"
done
python3 - "$out" <<'PY'
import sys
from pathlib import Path
import numpy as np, pandas as pd
from distributed import Client
from artseg.io import read_mask
out = Path(sys.argv[1])
masks = sorted((out / "predict_serial").rglob("*.png"))
same = all(np.array_equal(read_mask(m), read_mask(out / "predict_cluster" / m.relative_to(out / "predict_serial")))
           for m in masks)
print(f"predict: {len(masks)} masks, bit-identical to serial: {same}")
for table in ("wells", "fits", "summary", "fields"):
    a, b = (pd.read_csv(out / f"ligand_{run}" / f"{table}.csv") for run in ("serial", "cluster"))
    print(f"ligand {table}.csv equal to serial: {a.equals(b)}")
with Client("tcp://127.0.0.1:8786", timeout=10) as client:
    counts = client.run_on_scheduler(lambda dask_scheduler: dict(dask_scheduler.plugins["count-tasks"].counts))
print("tasks the scheduler ran, by name:", counts)
PY
