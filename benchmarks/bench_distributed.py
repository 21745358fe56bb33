"""Campaign scale on dask.distributed: fields/s serial vs LocalCluster workers, per-task overhead, a plate.

Run from the repository root: ``python benchmarks/bench_distributed.py --out bench-out/distributed``
(``--quick``: tiny sizes, a smoke run of a minute or two). Prints Markdown tables, the command
that made them and the machine, to paste into ``benchmarks/RESULTS.md``:

1. ``artseg predict`` (the shipped CHO-M4R artifact model) on ``--fields`` brightfield fields
   of the plate below: serial, ``--workers 1`` and ``--workers 2``; wall seconds (cluster
   start included), fields/s and the peak summed RSS of the process tree.
2. The scheduler's cost per task: ``--tiny-tasks`` tasks that do nothing (``abs``) on a
   LocalCluster of 2 workers, submitted at once (throughput), and 100 tasks one after the
   other (round trip).
3. ``python -m analysis.ligand_affinity`` end to end (segment artifacts and cells, quantify,
   fit) on a 96-well plate, 4 fields a well, of 1224 x 904 fields (the paper's CHO-M4R field
   size), with the shipped models: serial and ``--workers 2``.
4. A projection of a 10⁵-field campaign on N workers from 1 and 2: per-field worker time
   ``t_field`` (``predict`` per field in one process, model loaded) and scheduler time per task
   ``t_task`` (section 2, tasks at once); the
   scheduler becomes the limit at ``N* = t_field / t_task`` workers (``--fields-per-task k``
   moves it to ``k N*``).

Generated data (the plate takes minutes to synthesise at full size) stays in ``--out`` and is
reused by later runs.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "data" / "weights"
ARTIFACT_MODEL = WEIGHTS / "artseg_cho_m4r_fast_seed0"
CELL_MODEL = WEIGHTS / "cells_cho_m4r_seed0"
PAPER_SHAPE = (904, 1224)
CAMPAIGN_FIELDS = 100_000


def peak_tree_rss(process, interval: float = 0.2) -> tuple[threading.Thread, list[int]]:
    """Sample the summed RSS of ``process`` and its descendants until it ends; peak in ``box[0]``."""
    import psutil  # a dependency of distributed

    box = [0]

    def sample():
        try:
            parent = psutil.Process(process.pid)
        except psutil.NoSuchProcess:
            return
        while process.poll() is None:
            total = 0
            for member in [parent, *parent.children(recursive=True)]:
                try:
                    total += member.memory_info().rss
                except psutil.NoSuchProcess:
                    pass
            box[0] = max(box[0], total)
            time.sleep(interval)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    return thread, box


def timed_command(command: list[str]) -> tuple[float, float]:
    """Run ``command``; return (wall seconds, peak summed RSS in GB) or exit on failure."""
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    thread, peak = peak_tree_rss(process)
    output, _ = process.communicate()
    wall = time.perf_counter() - started
    thread.join()
    if process.returncode != 0:
        sys.exit(f"failed ({process.returncode}): {' '.join(command)}\n{output[-3000:]}")
    return wall, peak[0] / 1e9


def make_plate(out: Path, quick: bool) -> Path:
    """The benchmark plate (generated once): 96 wells x 4 fields of 1224 x 904, or a tiny one."""
    from artseg.synth import PlateOptions, generate_dataset

    folder = out / ("plate_quick" if quick else "plate_96x4")
    if not (folder / "plate.csv").is_file():
        if quick:
            options = PlateOptions(n_experiments=1, n_concentrations=4, wells_per_concentration=1, fields_per_well=2)
        else:  # 6 x 8 x 2 = 96 wells
            options = PlateOptions(n_experiments=6, n_concentrations=8, wells_per_concentration=2, fields_per_well=4)
        print(f"generating the benchmark plate into {folder} ...", flush=True)
        generate_dataset("cho_m4r", folder, n_images=2, seed=0, size=(128, 160) if quick else PAPER_SHAPE,
                         plate=options, progress=True)
    return folder / "plate.csv"


def steady_field_seconds(plate_csv: Path, n_fields: int) -> float:
    """Seconds per field of ``predict`` in this process once the model is loaded (no start-up)."""
    from artseg.distributed import ModelRef, cached_model
    from artseg.io import read_image
    from artseg.model_io import file_sha256

    segmenter = cached_model(ModelRef(str(ARTIFACT_MODEL), file_sha256(ARTIFACT_MODEL / "config.json")))
    paths = [plate_csv.parent / path for path in pd.read_csv(plate_csv)["brightfield"].head(n_fields + 1)]
    segmenter.predict(read_image(paths[0]))  # warm-up
    started = time.perf_counter()
    for path in paths[1:]:
        segmenter.predict(read_image(path))
    return (time.perf_counter() - started) / max(1, len(paths) - 1)


def predict_throughput(plate_csv: Path, out: Path, n_fields: int) -> pd.DataFrame:
    """Section 1."""
    plate = pd.read_csv(plate_csv)
    manifest = out / "predict_fields.csv"
    pd.DataFrame({"image": [str(plate_csv.parent / p) for p in plate["brightfield"].head(n_fields)]}).to_csv(
        manifest, index=False)
    rows = []
    for label, extra in (("serial", []), ("--workers 1", ["--workers", "1"]), ("--workers 2", ["--workers", "2"])):
        target = out / f"predict_{label.strip('-').replace(' ', '_')}"
        command = [sys.executable, "-m", "artseg", "predict", "--model", str(ARTIFACT_MODEL), "--input", str(manifest),
                   "--out", str(target), "--overwrite", "--quiet", *extra]
        wall, rss = timed_command(command)
        fields = min(n_fields, len(plate))
        rows.append({"run": label, "fields": fields, "wall_s": round(wall, 1), "fields_per_s": round(fields / wall, 3),
                     "peak_rss_gb": round(rss, 2)})
    return pd.DataFrame(rows)


def task_overhead(n_tasks: int) -> tuple[pd.DataFrame, float]:
    """Section 2; also returns the scheduler seconds per task at full throughput."""
    from distributed import Client, LocalCluster

    from artseg.distributed import LOCAL_CLUSTER_HTTP, FieldTasks

    rows = []
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      **LOCAL_CLUSTER_HTTP) as cluster, Client(cluster, set_as_default=False) as client:
        list(FieldTasks(client, abs, list(range(20)), models={}, progress=False))  # warm up
        for per_task in (1, 10):
            started = time.perf_counter()
            done = list(FieldTasks(client, abs, list(range(n_tasks)), models={}, fields_per_task=per_task,
                                   progress=False))
            wall = time.perf_counter() - started
            assert len(done) == n_tasks
            tasks = -(-n_tasks // per_task)
            rows.append({"submitted": f"{n_tasks} fields at once, {per_task} per task", "tasks": tasks,
                         "wall_s": round(wall, 2), "ms_per_task": round(1000 * wall / tasks, 2),
                         "tasks_per_s": round(tasks / wall, 1)})
        started = time.perf_counter()
        for value in range(100):
            client.submit(abs, -value, pure=False).result()
        wall = time.perf_counter() - started
        rows.append({"submitted": "one at a time (round trip)", "tasks": 100, "wall_s": round(wall, 2),
                     "ms_per_task": round(10 * wall, 2), "tasks_per_s": round(100 / wall, 1)})
    table = pd.DataFrame(rows)
    return table, float(table["ms_per_task"].iloc[0]) / 1000


def plate_end_to_end(plate_csv: Path, out: Path) -> pd.DataFrame:
    """Section 3."""
    n_fields = len(pd.read_csv(plate_csv))
    rows = []
    for label, extra in (("serial", []), ("--workers 2", ["--workers", "2"])):
        target = out / f"ligand_{label.strip('-').replace(' ', '_')}"
        command = [sys.executable, "-m", "analysis.ligand_affinity", "--manifest", str(plate_csv),
                   "--model", str(ARTIFACT_MODEL), "--cell-model", str(CELL_MODEL), "--out", str(target), "--quiet",
                   *extra]
        wall, rss = timed_command(command)
        rows.append({"run": label, "fields": n_fields, "wall_s": round(wall, 1),
                     "fields_per_s": round(n_fields / wall, 3), "peak_rss_gb": round(rss, 2)})
    serial, cluster = (pd.read_csv(out / f"ligand_{name}" / "wells.csv") for name in ("serial", "workers_2"))
    rows[0]["wells_csv_equal_to_serial"], rows[1]["wells_csv_equal_to_serial"] = "", serial.equals(cluster)
    return pd.DataFrame(rows)


def projection(field_seconds: float, task_seconds: float) -> pd.DataFrame:
    """Section 4: hours for a 10⁵-field campaign on N workers, one field per task."""
    crossover = field_seconds / task_seconds
    rows = []
    for workers in sorted({1, 2, 8, 32, 128, 512, 2048, max(1, round(crossover))}):
        seconds = CAMPAIGN_FIELDS * max(field_seconds / workers, task_seconds)
        rows.append({"workers": workers, "campaign_hours": round(seconds / 3600, 2),
                     "limit": "scheduler" if field_seconds / workers < task_seconds else "workers"})
    return pd.DataFrame(rows)


def markdown(table: pd.DataFrame) -> str:
    """A Markdown table (pandas' ``to_markdown`` needs the tabulate package)."""
    lines = ["| " + " | ".join(map(str, table.columns)) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)


def machine() -> str:
    import dask
    import torch

    return (f"{platform.processor() or platform.machine()}, {len(os.sched_getaffinity(0))} usable cores, "
            f"torch {torch.__version__} (CPU capability {torch.backends.cpu.get_cpu_capability()}), "
            f"dask {dask.__version__}, Python {platform.python_version()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench-out") / "distributed",
                        help="working folder (generated plate, outputs)")
    parser.add_argument("--fields", type=int, default=32, help="fields of the predict throughput runs")
    parser.add_argument("--tiny-tasks", type=int, default=2000, help="tasks of the overhead run")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument("--skip-plate", action="store_true", help="leave out the end-to-end plate run")
    args = parser.parse_args()
    if args.quick:
        args.fields, args.tiny_tasks = min(args.fields, 4), min(args.tiny_tasks, 200)
    args.out = args.out.resolve()  # the manifests written here hold paths that must not depend on the folder
    args.out.mkdir(parents=True, exist_ok=True)
    plate_csv = make_plate(args.out, args.quick)

    print(f"`python {' '.join(sys.argv)}` on {machine()}\n", flush=True)
    print("### artseg predict: serial vs LocalCluster workers (wall includes start-up and the cluster start)\n")
    print(markdown(predict_throughput(plate_csv, args.out, args.fields)), "\n", flush=True)
    field_seconds = steady_field_seconds(plate_csv, min(args.fields, 8))
    overhead, task_seconds = task_overhead(args.tiny_tasks)
    print("### Scheduler cost per task (LocalCluster, 2 workers, tasks that do nothing)\n")
    print(markdown(overhead), "\n", flush=True)
    if not args.skip_plate:
        print(f"### Plate end to end: python -m analysis.ligand_affinity, shipped models, "
              f"{'tiny quick plate' if args.quick else '96 wells x 4 fields of 1224 x 904'}\n")
        print(markdown(plate_end_to_end(plate_csv, args.out)), "\n", flush=True)
    print(f"### Projection: {CAMPAIGN_FIELDS:,} fields, t_field = {field_seconds:.3f} s (predict per field, model "
          f"loaded, all cores of this machine), "
          f"t_task = {1000 * task_seconds:.2f} ms (scheduler, per task); "
          f"the scheduler is the limit beyond N* = {field_seconds / task_seconds:.0f} workers\n")
    print(markdown(projection(field_seconds, task_seconds)))


if __name__ == "__main__":
    main()
