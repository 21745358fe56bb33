"""``artseg label`` without a browser: the labelling state, the saved files, the HTTP API and its token."""

import io
import json
import re
import threading
import urllib.error
import urllib.request

import imageio.v3 as iio
import numpy as np
import pandas as pd
import pytest

from artseg.cli import main
from artseg.errors import ArtsegInputError
from artseg.io import atomic_write_csv, read_image, read_image_manifest, write_mask, write_tiff
from artseg.label import (
    Field,
    LabelStore,
    answer_counts,
    attach_predictions,
    collect_fields,
    labels_table,
    next_unanswered,
    record_answer,
    skipped_path,
)
from artseg.label.render import display_gray, mask_overlay, png_bytes
from artseg.label.server import LabelApp, make_server, page_url, read_page

SHAPE = (24, 32)


def _fields(n):
    return [Field(image=f"/data/f{i}.tif", name=f"f{i}.tif") for i in range(n)]


def _write_images(folder, names, seed=0):
    rng = np.random.default_rng(seed)
    for name in names:
        write_tiff(folder / name, rng.integers(100, 3000, size=SHAPE).astype(np.uint16))


# --------------------------------------------------------------------------- pure state


def test_next_unanswered_resumes_at_the_first_gap_and_wraps_round():
    fields = _fields(5)
    answers = {"/data/f0.tif": "artifact", "/data/f1.tif": "skip", "/data/f3.tif": "clean"}
    assert next_unanswered(fields, answers) == 2
    assert next_unanswered(fields, answers, after=2) == 4
    assert next_unanswered(fields, answers, after=4) == 2  # wraps round to an earlier gap
    assert next_unanswered(fields, {f.image: "clean" for f in fields}, after=1) is None


def test_record_answer_returns_a_copy_and_rejects_unknown_answers():
    before = {"/data/f0.tif": "skip"}
    after = record_answer(before, "/data/f0.tif", "artifact")
    assert after == {"/data/f0.tif": "artifact"} and before == {"/data/f0.tif": "skip"}
    with pytest.raises(ValueError, match="not one of artifact, clean, skip"):
        record_answer(before, "/data/f0.tif", "maybe")


def test_answer_counts_count_only_the_sessions_fields():
    fields = _fields(3)
    answers = {"/data/f0.tif": "artifact", "/data/f2.tif": "skip", "/elsewhere.tif": "clean"}
    assert answer_counts(fields, answers) == {"artifact": 1, "clean": 0, "skip": 1, "answered": 2, "total": 3}


def test_labels_table_leaves_out_skips_and_keeps_earlier_rows():
    fields = [Field("/data/a/f0.tif", "f0.tif", split="train"), Field("/data/a/f1.tif", "f1.tif"),
              Field("/data/a/f2.tif", "f2.tif", split="val")]
    answers = {"/data/a/f0.tif": "artifact", "/data/a/f1.tif": "skip", "/data/a/f2.tif": "clean"}
    kept = [{"image": "/data/b/g.tif", "label": 1, "split": None}]
    table = labels_table(fields, answers, "/data", kept_rows=kept)
    assert table["image"].tolist() == ["a/f0.tif", "a/f2.tif", "b/g.tif"]
    assert table["label"].tolist() == [1, 0, 1] and table["label"].dtype == np.int64
    assert table["split"].tolist()[:2] == ["train", "val"] and pd.isna(table["split"].iloc[2])
    no_split = labels_table(fields[1:2], {"/data/a/f1.tif": "clean"}, "/data/a")
    assert list(no_split.columns) == ["image", "label"]
    assert labels_table(fields, {}, "/data").empty


# --------------------------------------------------------------------------- fields and files


def test_collect_fields_from_a_folder_sorted_without_the_prediction_folder(tmp_path):
    _write_images(tmp_path, ["b.tif", "a.tif", "sub/c.png"])
    write_mask(tmp_path / "pred" / "a.png", np.ones(SHAPE, dtype=bool))
    fields = collect_fields(tmp_path, exclude=[tmp_path / "pred"])
    assert [f.name for f in fields] == ["a.tif", "b.tif", "sub/c.png"]
    assert fields[0].image == str(tmp_path.resolve() / "a.tif")


def test_collect_fields_from_a_manifest_keeps_its_order_and_splits(tmp_path):
    _write_images(tmp_path / "img", ["x.tif", "y.tif"])
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("image,split\nimg/y.tif,test\nimg/x.tif,\n")
    fields = collect_fields(manifest)
    assert [(f.name, f.split) for f in fields] == [("img/y.tif", "test"), ("img/x.tif", None)]
    manifest.write_text("image\nimg/x.tif\nimg/x.tif\n")
    with pytest.raises(ArtsegInputError, match="listed twice"):
        collect_fields(manifest)


@pytest.mark.parametrize("make, message", [
    (lambda p: p / "missing", "not found"),
    (lambda p: (p / "notes.txt").write_text("x") and p / "notes.txt", "manifest .csv"),
    (lambda p: (p / "empty").mkdir() or p / "empty", "no images"),
])
def test_collect_fields_rejects_bad_inputs_in_one_line(tmp_path, make, message):
    with pytest.raises(ArtsegInputError, match=message):
        collect_fields(make(tmp_path))


def test_attach_predictions_reads_masks_and_probabilities_as_predict_writes_them(tmp_path):
    _write_images(tmp_path / "img", ["a.tif", "sub/b.tif", "c.tif"])
    write_mask(tmp_path / "pred" / "sub" / "b.png", np.ones(SHAPE, dtype=bool))
    atomic_write_csv(pd.DataFrame({"image": ["sub/b.tif", "c.tif"], "p_artifact": [0.8, 0.1]}),
                     tmp_path / "pred" / "predictions.csv")
    fields = attach_predictions(collect_fields(tmp_path / "img"), tmp_path / "pred")
    by_name = {f.name: f for f in fields}
    assert by_name["sub/b.tif"].overlay == str(tmp_path / "pred" / "sub" / "b.png")
    assert by_name["sub/b.tif"].p_artifact == pytest.approx(0.8)
    assert by_name["c.tif"].overlay is None and by_name["c.tif"].p_artifact == pytest.approx(0.1)
    assert by_name["a.tif"].overlay is None and by_name["a.tif"].p_artifact is None
    with pytest.raises(ArtsegInputError, match="predictions.csv"):
        attach_predictions(fields, tmp_path / "img")


def test_store_saves_every_answer_and_a_new_store_resumes(tmp_path):
    _write_images(tmp_path / "img", [f"f{i}.tif" for i in range(4)])
    out = tmp_path / "labels" / "labels.csv"
    out.parent.mkdir()
    fields = collect_fields(tmp_path / "img")
    store = LabelStore(fields, out)
    assert store.resume_index() == 0
    assert store.answer(0, "skip") == 1
    assert pd.read_csv(out).empty  # a header, no label yet: a skip is not a label
    assert store.answer(1, "artifact") == 2
    assert store.answer(3, "clean") == 2

    resumed = LabelStore(fields, out)
    assert resumed.resume_index() == 2
    assert resumed.counts() == {"artifact": 1, "clean": 1, "skip": 1, "answered": 3, "total": 4}
    assert resumed.answer(0, "clean") == 2  # the skipped field labelled after all
    assert resumed.answer(2, "artifact") is None
    table = read_image_manifest(out, require_label=True)  # as 'artseg train' reads it
    assert [(p.split("/")[-1], label) for p, label in zip(table["image"], table["label"])] == [
        ("f0.tif", 0), ("f1.tif", 1), ("f2.tif", 1), ("f3.tif", 0)]
    assert pd.read_csv(out)["image"].tolist()[0] == "../img/f0.tif"  # relative to the CSV
    assert pd.read_csv(skipped_path(out)).empty
    assert sorted(p.name for p in out.parent.iterdir()) == ["labels.csv", "labels.skipped.csv"]  # no temp files


def test_store_keeps_labels_of_images_outside_this_session(tmp_path):
    _write_images(tmp_path / "one", ["a.tif"])
    _write_images(tmp_path / "two", ["b.tif"])
    out = tmp_path / "labels.csv"
    LabelStore(collect_fields(tmp_path / "one"), out).answer(0, "artifact")
    LabelStore(collect_fields(tmp_path / "two"), out).answer(0, "clean")
    table = read_image_manifest(out, require_label=True)
    assert dict(zip([p.split("/")[-1] for p in table["image"]], table["label"])) == {"a.tif": 1, "b.tif": 0}


def test_store_rejects_a_labels_file_train_could_not_read(tmp_path):
    _write_images(tmp_path / "img", ["a.tif"])
    out = tmp_path / "labels.csv"
    out.write_text("image,label\nimg/a.tif,perhaps\n")
    with pytest.raises(ArtsegInputError, match="label 'perhaps'"):
        LabelStore(collect_fields(tmp_path / "img"), out)


def test_display_gray_scales_by_percentiles_and_overlay_is_see_through():
    image = np.arange(100, dtype=np.float32).reshape(10, 10)
    gray = display_gray(image, 10, 90)
    assert gray.dtype == np.uint8 and gray.min() == 0 and gray.max() == 255
    assert gray[0, 5] == 0 and gray[9, 5] == 255  # beyond the percentiles: clipped
    mask = np.zeros((3, 4), dtype=bool)
    mask[1, 2] = True
    layer = mask_overlay(mask, colour=(1, 2, 3), opacity=100)
    assert layer.shape == (3, 4, 4) and layer[1, 2].tolist() == [1, 2, 3, 100] and layer[0, 0, 3] == 0


@pytest.mark.parametrize("shape, level", [((37, 53), 0), ((300, 301), 0), ((5, 7, 4), 1), ((1, 1), 9)])
def test_png_bytes_decode_to_the_same_pixels(shape, level):
    pixels = np.random.default_rng(1).integers(0, 256, size=shape, dtype=np.uint8)
    np.testing.assert_array_equal(iio.imread(io.BytesIO(png_bytes(pixels, level))), pixels)
    with pytest.raises(ValueError, match="uint8"):
        png_bytes(pixels.astype(np.uint16))


# --------------------------------------------------------------------------- HTTP API


@pytest.fixture
def served(tmp_path):
    """A server on a free port, running in a thread; stopped (if still running) after the test."""
    _write_images(tmp_path / "img", ["f0.tif", "f1.tif", "f2.tif"])
    write_mask(tmp_path / "pred" / "f1.png", np.eye(*SHAPE, dtype=bool))
    atomic_write_csv(pd.DataFrame({"image": ["f1.tif"], "p_artifact": [0.7]}), tmp_path / "pred" / "predictions.csv")
    fields = attach_predictions(collect_fields(tmp_path / "img"), tmp_path / "pred")
    app = LabelApp(LabelStore(fields, tmp_path / "labels.csv"))
    server = make_server(app, 0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    base = page_url(server, app).split("/?")[0]
    try:
        yield base, app, thread
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
        server.server_close()


def _request(url, data=None):
    """(status, headers, body bytes) of one request; error statuses are returned, not raised."""
    body = None if data is None else (data if isinstance(data, bytes) else json.dumps(data).encode())
    request = urllib.request.Request(url, data=body, method="GET" if data is None else "POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, reply.headers, reply.read()
    except urllib.error.HTTPError as err:
        with err:
            return err.code, err.headers, err.read()


@pytest.mark.parametrize("path", ["/", "/api/state", "/image/0.png", "/overlay/1.png", "/api/answer", "/api/quit"])
def test_every_route_needs_the_token(served, path):
    base, app, thread = served
    post = {"index": 0, "answer": "clean"} if path.startswith("/api/answer") or path == "/api/quit" else None
    wrong = app.token[:-1] + ("y" if app.token.endswith("x") else "x")  # never the token itself
    for query in ("", "?token=", "?token=" + wrong):
        status, _, body = _request(base + path + query, post)
        assert status == 403 and b"token" in body
    assert app.store.answers == {} and thread.is_alive()


def test_page_is_self_contained(served):
    base, app, _ = served
    status, headers, page = _request(f"{base}/?token={app.token}")
    assert status == 200 and page == read_page()
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    text = page.decode()
    assert not re.search(r"""(src|href|action)\s*=\s*["']?\s*(https?:)?//""", text)
    assert "<link" not in text and not re.search(r"<script[^>]+src", text) and "@import" not in text


def test_state_pictures_and_answers_over_http(served, tmp_path):
    base, app, _ = served
    token = f"?token={app.token}"
    status, _, body = _request(f"{base}/api/state{token}")
    state = json.loads(body)
    assert status == 200 and state["start"] == 0 and state["counts"]["total"] == 3
    assert [(f["name"], f["overlay"], f["p_artifact"]) for f in state["fields"]] == [
        ("f0.tif", False, None), ("f1.tif", True, 0.7), ("f2.tif", False, None)]

    status, headers, png = _request(f"{base}/image/2.png{token}")
    assert status == 200 and headers["Content-Type"] == "image/png"
    np.testing.assert_array_equal(iio.imread(io.BytesIO(png)), display_gray(read_image(tmp_path / "img" / "f2.tif")))
    status, _, png = _request(f"{base}/overlay/1.png{token}")
    layer = iio.imread(io.BytesIO(png))
    assert status == 200 and layer.shape == (*SHAPE, 4) and layer[0, 0, 3] > 0 and layer[0, 1, 3] == 0
    assert _request(f"{base}/overlay/0.png{token}")[0] == 404
    assert _request(f"{base}/image/3.png{token}")[0] == 404
    assert _request(f"{base}/nowhere{token}")[0] == 404

    status, _, body = _request(f"{base}/api/answer{token}", {"index": 1, "answer": "artifact"})
    assert status == 200 and json.loads(body)["next"] == 2 and json.loads(body)["counts"]["artifact"] == 1
    assert pd.read_csv(tmp_path / "labels.csv")["image"].tolist() == ["img/f1.tif"]  # saved before the reply
    for bad in ({"index": 7, "answer": "clean"}, {"index": 0, "answer": "maybe"}, {"index": "0", "answer": "clean"},
                {"answer": "clean"}, b"not json", [1, 2]):
        assert _request(f"{base}/api/answer{token}", bad)[0] == 400
    assert app.store.counts()["answered"] == 1


def test_quit_stops_the_server(served):
    base, app, thread = served
    status, _, body = _request(f"{base}/api/quit?token={app.token}", b"{}")
    assert status == 200 and json.loads(body) == {"stopped": True}
    thread.join(timeout=10)
    assert not thread.is_alive()


def test_a_port_in_use_is_a_one_line_error(served):
    base, app, _ = served
    assert base.startswith("http://127.0.0.1:")  # loopback only, never 0.0.0.0
    port = int(base.rsplit(":", 1)[1])
    with pytest.raises(ArtsegInputError, match=f"--port {port}: cannot listen on 127.0.0.1"):
        make_server(app, port)


# --------------------------------------------------------------------------- command line


@pytest.mark.parametrize("extra, message", [
    (["--out", "labels.txt"], "written as a .csv"),
    (["--out", "manifest.csv"], "overwrite the --images manifest"),
    (["--out", "labels.csv", "--overlay", "nowhere"], "--overlay folder not found"),
    (["--out", "labels.csv", "--port", "70000"], "--port must be in 0..65535"),
])
def test_command_rejects_bad_options_before_serving(tmp_path, monkeypatch, capsys, extra, message):
    _write_images(tmp_path / "img", ["a.tif"])
    (tmp_path / "manifest.csv").write_text("image\nimg/a.tif\n")
    monkeypatch.chdir(tmp_path)
    assert main(["label", "--images", "manifest.csv", "--no-browser", *extra]) == 2
    assert message in capsys.readouterr().err
