"""Per-field work on a Dask LocalCluster (2 processes, 127.0.0.1) and in --shard parts equals the serial run."""

import os
import signal
import time

import pandas as pd
import pytest

from analysis import ligand_affinity, nuclei_impact
from artseg import distributed
from artseg.cli import main as artseg_main
from artseg.commands.predict import predict_field
from artseg.distributed import Engine, FieldTasks, ModelRef, cached_model, map_fields
from artseg.errors import ArtsegInputError
from artseg.model_io import file_sha256
from artseg.shards import parse_shard
from artseg.synth import PlateOptions, generate_dataset

# A strongly supervised U-Net small enough to train in seconds; its probabilities sit near the
# cut-off, so its masks are speckled and change with any difference in the arithmetic.
TINY_STRONG_TOML = """
base = "fast"
mode = "strong"
[unet]
width = 4
levels = 2
convs_per_block = 1
[unet_train]
epochs = 4
batch_size = 4
[input]
unet_patch = 64
unet_scale = 1.0
[tiling]
tile_size = 64
overlap = 16
[postprocess]
cutoff_grid = [0.3, 0.5]
min_object_size_grid = [0]
"""


@pytest.fixture(scope="module")
def cluster():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      **distributed.LOCAL_CLUSTER_HTTP) as local, Client(local, set_as_default=False) as client:
        yield local.scheduler_address, client


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A 128² cho_m4r plate, an artifact and a cell U-Net, and a nuclei manifest of its 12 training fields."""
    root = tmp_path_factory.mktemp("distributed")
    generate_dataset("cho_m4r", root / "data", n_images=12, seed=3, size=128, progress=False,
                     plate=PlateOptions(n_experiments=2, n_concentrations=5, wells_per_concentration=2,
                                        fields_per_well=1))
    (root / "tiny.toml").write_text(TINY_STRONG_TOML)
    table = pd.read_csv(root / "data" / "manifest.csv")
    table.assign(mask=table["cells"]).to_csv(root / "data" / "cells.csv", index=False)
    for name, manifest in (("model", "manifest.csv"), ("cells", "cells.csv")):
        assert artseg_main(["train", "--manifest", str(root / "data" / manifest), "--out", str(root / name),
                            "--config", str(root / "tiny.toml"), "--quiet"]) == 0
    pd.DataFrame({"image": table["image"], "nuclei": table["nuclei"], "artifact_mask": table["mask"]}).to_csv(
        root / "data" / "nuclei.csv", index=False)
    return root


def _predict(data, out, *extra):
    return artseg_main(["predict", "--model", str(data / "model"), "--input", str(data / "data" / "manifest.csv"),
                        "--out", str(out), "--quiet", *map(str, extra)])


def _ligand(data, out, *extra):
    # no exclusion ring: the speckled masks would exclude whole fields; Wald intervals are quicker
    return ligand_affinity.main(["--manifest", str(data / "data" / "plate.csv"), "--model", str(data / "model"),
                                 "--cell-model", str(data / "cells"), "--out", str(out), "--quiet",
                                 "--exclusion-margin", "0", "--ci", "wald", *map(str, extra)])


def _nuclei(data, out, *extra):
    return nuclei_impact.main(["--manifest", str(data / "data" / "nuclei.csv"), "--model", str(data / "model"),
                               "--nuclei-model", str(data / "cells"), "--out", str(out), "--quiet", *map(str, extra)])


@pytest.fixture(scope="module")
def serial(data):
    """The serial runs every other run must equal, file for file."""
    out = data / "serial"
    assert _predict(data, out / "predict", "--save-prob") == 0
    assert _ligand(data, out / "ligand") == 0
    assert _nuclei(data, out / "nuclei") == 0
    return out


def _files(folder):
    return {path.relative_to(folder).as_posix(): path.read_bytes()
            for path in sorted(folder.rglob("*")) if path.is_file() and path.suffix in (".png", ".tif", ".csv")
            and "shards" not in path.parts}


def test_predict_on_a_cluster_writes_the_serial_masks_and_resumes(data, serial, cluster, tmp_path, capsys):
    address, _ = cluster
    out = tmp_path / "predict"
    assert _predict(data, out, "--save-prob", "--scheduler", address) == 0
    assert "12 task(s) on 2 Dask worker(s)" in capsys.readouterr().out
    expected = _files(serial / "predict")
    assert len(expected) == 12 * 2 + 1
    assert _files(out) == expected  # masks, float32 probability maps and predictions.csv, byte for byte
    masks = pd.read_csv(out / "predictions.csv")["artifact_fraction"]
    assert masks.between(0.001, 0.999).all()  # speckled masks, not all-or-nothing ones
    (out / "images" / "0003.png").unlink()
    assert _predict(data, out, "--save-prob", "--scheduler", address) == 0
    assert "1 image(s) predicted, 11 already done" in capsys.readouterr().out
    assert _files(out) == expected


def test_bad_input_met_on_a_worker_is_one_line(data, cluster, tmp_path, capsys):
    address, _ = cluster
    images = tmp_path / "images"
    images.mkdir()
    (images / "broken.tif").write_bytes(b"not a TIFF")
    status = artseg_main(["predict", "--model", str(data / "model"), "--input", str(images), "--out",
                          str(tmp_path / "out"), "--quiet", "--scheduler", address])
    err = capsys.readouterr().err.strip()
    assert status == 2 and len(err.splitlines()) == 1 and "broken.tif" in err, err


def test_analyses_on_a_cluster_equal_the_serial_runs(data, serial, cluster, tmp_path, capsys):
    address, _ = cluster
    assert _ligand(data, tmp_path / "ligand", "--scheduler", address) == 0  # both U-Nets run on the workers
    n_fields = len(pd.read_csv(data / "data" / "plate.csv"))
    assert f"{n_fields} task(s) on 2 Dask worker(s)" in capsys.readouterr().out
    assert _files(tmp_path / "ligand") == _files(serial / "ligand")
    wells = pd.read_csv(serial / "ligand" / "wells.csv").pivot_table(
        index=["experiment", "well"], columns="mode", values="specific")
    assert wells.notna().all().all() and (wells["model"] != wells["none"]).all()
    assert _nuclei(data, tmp_path / "nuclei", "--scheduler", address) == 0
    assert "12 task(s) on 2 Dask worker(s)" in capsys.readouterr().out
    assert _files(tmp_path / "nuclei") == _files(serial / "nuclei")
    assert len(pd.read_csv(serial / "nuclei" / "nuclei.csv")) > 0


def test_models_without_a_folder_reach_the_workers_through_the_cache(data, cluster, tmp_path, monkeypatch):
    from analysis.defaults import RememberedMasks
    from artseg.io import read_plate_manifest

    address, _ = cluster
    monkeypatch.setenv("ARTSEG_CACHE", str(tmp_path / "cache"))
    models = [RememberedMasks(cached_model(ModelRef(str(data / name), file_sha256(data / name / "config.json"))),
                              tmp_path / "masks") for name in ("model", "cells")]
    plate = read_plate_manifest(data / "data" / "plate.csv")
    serial_rows = ligand_affinity.quantify_plate(plate, ("manual", "model", "none"), *models, progress=False)
    cluster_rows = ligand_affinity.quantify_plate(plate, ("manual", "model", "none"), *models, progress=False,
                                                  engine=Engine(scheduler=address))
    pd.testing.assert_frame_equal(cluster_rows, serial_rows)
    saved = list((tmp_path / "cache" / "distributed" / "models").iterdir())
    assert len(saved) == 2 and all((folder / "config.json").is_file() for folder in saved)


def _sleepy_square(field, *, delay):
    time.sleep(delay * (8 - field))  # later fields finish first
    return field * field


def test_workers_flag_starts_a_local_cluster_of_its_own(capsys):
    # a builtin as the per-field function: the new worker process has nothing heavy to import
    assert map_fields(abs, [-3, 1, -2], engine=Engine(workers=1), progress=False) == [3, 1, 2]
    assert "3 task(s) on 1 Dask worker(s): tcp://127.0.0.1:" in capsys.readouterr().out


def _torch_threads(field):
    import torch

    return torch.get_num_threads()


def test_each_task_gets_its_share_of_the_host_cores(cluster):
    _, client = cluster
    share = max(1, len(os.sched_getaffinity(0)) // 2)  # two single-thread workers on this host
    assert distributed.threads_by_host(client) == {"127.0.0.1": share}
    assert {threads for _, threads in FieldTasks(client, _torch_threads, [0, 1, 2, 3], models={},
                                                 progress=False)} == {share}


def test_results_come_back_in_input_order_whatever_order_tasks_finish_in(cluster):
    address, client = cluster
    tasks = FieldTasks(client, _sleepy_square, list(range(8)), models={}, options={"delay": 0.04}, progress=False)
    finished = [position for position, _ in tasks]
    assert sorted(finished) == list(range(8)) and finished != list(range(8))
    assert map_fields(_sleepy_square, list(range(8)), options={"delay": 0.02}, engine=Engine(scheduler=address),
                      progress=False) == [field * field for field in range(8)]
    assert map_fields(_sleepy_square, list(range(5)), options={"delay": 0.0}, engine=Engine(scheduler=address,
                      fields_per_task=2), progress=False) == [0, 1, 4, 9, 16]


def slow_predict_field(field, *, segmenter):
    time.sleep(0.3)
    return predict_field(field, segmenter=segmenter)


def test_a_worker_killed_mid_run_has_its_fields_redone(data, serial, cluster, tmp_path):
    _, client = cluster
    images = sorted((data / "data" / "images").glob("*.tif"))
    fields = [{"image": str(path), "key": f"images/{path.name}", "mask": str(tmp_path / f"{path.stem}.png"),
               "prob": None} for path in images]
    prefix = "artseg-slow-predict-field"
    redone_before = client.run_on_scheduler(
        lambda dask_scheduler: getattr(dask_scheduler.task_prefixes.get(prefix), "suspicious", 0))
    tasks = FieldTasks(client, slow_predict_field, fields, progress=False,
                       models={"segmenter": ModelRef(str(data / "model"), file_sha256(data / "model" / "config.json"))})
    rows, killed = [], None
    for position, row in tasks:
        rows.append((position, row))
        if killed is None:
            busy = [worker for worker, keys in client.processing().items() if keys]
            killed = busy[0]
            pid = client.run(os.getpid, workers=[killed])[killed]
            os.kill(pid, signal.SIGKILL)
    redone = client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.task_prefixes[prefix].suspicious)
    assert redone > redone_before  # a task was running on the killed worker and ran again elsewhere
    assert sorted(position for position, _ in rows) == list(range(len(fields)))  # each field once
    expected = pd.read_csv(serial / "predict" / "predictions.csv").set_index("image")
    got = pd.DataFrame([row for _, row in rows]).set_index("image").loc[expected.index]
    pd.testing.assert_frame_equal(got, expected)
    for path in images:
        mask = f"{path.stem}.png"
        assert (tmp_path / mask).read_bytes() == (serial / "predict" / "images" / mask).read_bytes()


def test_shard_parts_merge_into_the_serial_outputs(data, serial, tmp_path, capsys):
    out = tmp_path / "predict"
    assert _predict(data, out, "--save-prob", "--shard", "1/2") == 0
    assert _predict(data, out, "--merge-shards") == 2
    assert "run --shard 2/2" in capsys.readouterr().err
    assert _predict(data, out, "--save-prob", "--shard", "2/2") == 0
    assert _predict(data, out, "--merge-shards") == 0
    assert _files(out) == _files(serial / "predict")

    for index in (1, 2):
        assert _ligand(data, tmp_path / "ligand", "--shard", f"{index}/2") == 0
        said = capsys.readouterr().out
        assert f"wrote part {index}/2 of the fields" in said and "wrote wells.csv" not in said
    assert _ligand(data, tmp_path / "ligand", "--merge-shards", "--exclusion-margin", 1) == 2  # the last one counts
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "other inputs or settings" in err
    assert _ligand(data, tmp_path / "ligand", "--merge-shards") == 0
    assert _files(tmp_path / "ligand") == _files(serial / "ligand")

    for index in (1, 2):
        assert _nuclei(data, tmp_path / "nuclei", "--shard", f"{index}/2") == 0
    assert _nuclei(data, tmp_path / "nuclei", "--shard", "2/2") == 0
    assert "part already complete" in capsys.readouterr().out
    assert _nuclei(data, tmp_path / "nuclei", "--merge-shards") == 0
    assert _files(tmp_path / "nuclei") == _files(serial / "nuclei")


def test_an_unreachable_scheduler_is_one_line(data, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(distributed, "DEFAULT_CONNECT_TIMEOUT", 1.0)
    started = time.perf_counter()
    assert _predict(data, tmp_path / "out", "--scheduler", "tcp://127.0.0.1:9") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: --scheduler tcp://127.0.0.1:9: cannot connect")
    assert time.perf_counter() - started < 30
    assert not (tmp_path / "out" / "predictions.csv").exists()


@pytest.mark.parametrize("extra, needle", [
    (["--workers", "0"], "--workers: expected at least 1"),
    (["--workers", "2", "--scheduler", "tcp://127.0.0.1:9"], "give one or the other"),
    (["--shard", "3/2"], "--shard: expected I/N"),
    (["--shard", "1/2", "--merge-shards"], "either does one part or merges"),
])
def test_bad_engine_and_shard_flags_are_one_line(data, tmp_path, capsys, extra, needle):
    assert _predict(data, tmp_path / "out", *extra) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err, err


def test_parts_of_different_splits_are_refused(data, tmp_path, capsys):
    out = tmp_path / "predict"
    assert _predict(data, out, "--shard", "1/2") == 0
    assert _predict(data, out, "--shard", "1/3") == 0
    assert _predict(data, out, "--merge-shards") == 2
    assert "parts of different splits (N = 2, 3)" in capsys.readouterr().err


def test_parse_shard_reads_i_of_n():
    assert parse_shard(" 2 / 5 ").positions(12).tolist() == [1, 6, 11]
    with pytest.raises(ArtsegInputError):
        parse_shard("0/4")
    with pytest.raises(ArtsegInputError):
        parse_shard("two/4")
