"""The compute path per CPU (artseg.hardware), and the AVX2-only path exercised on every machine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from artseg import hardware
from artseg.cli import main
from artseg.errors import ArtsegInputError

REPO = Path(__file__).resolve().parents[1]
# ATen and oneDNN both capped at AVX2: a bigger CPU then runs the kernels an AVX2-only CPU runs
AVX2_ONLY = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}

# A weak-mode fit (classifier, Score-CAM, U-Net with BatchNorm) and a strong-mode fit of the
# widths the tests use, with precision "auto": on an AVX2-only CPU this is fp32 training,
# whose convolution backward-weights corrupted the heap in channels_last (issue 17).
_FIT_ON_AVX2 = r"""
import json, sys
from pathlib import Path
from artseg import hardware
from artseg.config import config_from_dict, config_to_dict, merge_overrides
from artseg.io import read_image, read_image_manifest
from artseg.segmenter import make_segmenter
from tests.test_detectors import make_tiny_dataset, tiny_config

folder = Path(sys.argv[1])
manifest = read_image_manifest(make_tiny_dataset(folder, n_images=16, size=64))
settings = config_to_dict(tiny_config())
auto = {"classifier_train": {"precision": "auto", "epochs": 2}, "unet_train": {"precision": "auto", "epochs": 2},
        "cam": {"precision": "auto"}, "unet": {"batch_norm": True}}
facts = {"describe": hardware.describe()}
for mode in ("weak", "strong"):
    config = config_from_dict(merge_overrides({**settings, "mode": mode}, auto, source="test"), source="test")
    segmenter = make_segmenter(config).fit(manifest, progress=False)
    mask = segmenter.predict_mask(read_image(manifest["image"].iloc[0]))
    facts[mode] = {"mask_shape": list(mask.shape)}
print(json.dumps(facts))
"""


def test_avx2_only_path_trains_every_network_kind(tmp_path):
    # glibc's heap checks: corruption aborts the run instead of passing unnoticed
    env = {**os.environ, **AVX2_ONLY, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "MALLOC_CHECK_": "3",
           "MALLOC_PERTURB_": "165"}
    run = subprocess.run([sys.executable, "-c", _FIT_ON_AVX2, str(tmp_path)], env=env, cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    facts = json.loads(run.stdout.strip().splitlines()[-1])
    assert facts["describe"]["cpu_capability"] == "AVX2"
    assert facts["describe"]["precision"] == "fp32"
    assert facts["describe"]["layout"] == "contiguous"
    x86_onednn = torch.backends.mkldnn.is_available() and hardware.platform.machine().lower() in ("x86_64", "amd64")
    assert facts["describe"]["inference_layout"] == ("channels_last" if x86_onednn else "contiguous")
    assert facts["weak"]["mask_shape"] == [64, 64] and facts["strong"]["mask_shape"] == [64, 64]


def test_fp32_is_contiguous_off_the_avx512_path_and_bf16_channels_last(monkeypatch):
    assert hardware.memory_format_for("bf16") == torch.channels_last
    assert hardware.memory_format_for("fp32", "cuda") == torch.contiguous_format
    monkeypatch.setattr(hardware, "cpu_capability", lambda: "AVX512")
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    if torch.backends.mkldnn.is_available():
        assert hardware.memory_format_for("fp32") == torch.channels_last
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")  # oneDNN on its AVX2 kernels: the crash path
    assert hardware.memory_format_for("fp32") == torch.contiguous_format
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_AMX")
    if torch.backends.mkldnn.is_available():
        assert hardware.memory_format_for("fp32") == torch.channels_last
    monkeypatch.setattr(hardware, "cpu_capability", lambda: "AVX2")
    assert hardware.memory_format_for("fp32") == torch.contiguous_format
    monkeypatch.setattr(hardware, "cpu_capability", lambda: "DEFAULT")  # e.g. aarch64
    assert hardware.memory_format_for("fp32") == torch.contiguous_format


def test_inference_is_channels_last_on_every_x86_onednn_path(monkeypatch):
    """Forward passes take channels_last on the AVX2 path too; training there stays contiguous."""
    monkeypatch.setattr(hardware.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(hardware, "cpu_capability", lambda: "AVX2")
    assert hardware.memory_format_for("fp32") == torch.contiguous_format
    with_onednn = torch.channels_last if torch.backends.mkldnn.is_available() else torch.contiguous_format
    assert hardware.inference_memory_format("fp32") == with_onednn
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: False)
    assert hardware.inference_memory_format("fp32") == torch.contiguous_format
    monkeypatch.undo()
    monkeypatch.setattr(hardware.platform, "machine", lambda: "x86_64")
    assert hardware.inference_memory_format("fp32", "cuda") == torch.contiguous_format
    monkeypatch.setattr(hardware, "cpu_capability", lambda: "DEFAULT")
    assert hardware.inference_memory_format("fp32") == torch.contiguous_format
    monkeypatch.setattr(hardware.platform, "machine", lambda: "aarch64")
    monkeypatch.setattr(hardware, "cpu_capability", lambda: "AVX2")
    assert hardware.inference_memory_format("fp32") == torch.contiguous_format


def test_inference_layout_holds_the_weights_in_the_layout_and_gives_them_back_contiguous():
    from artseg.nets import build_network

    net = build_network({"name": "unet", "in_channels": 1, "out_channels": 1, "width": 8, "levels": 2,
                         "convs_per_block": 1, "batch_norm": True}, seed=0).eval()
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        reference = net(x)
        with hardware.inference_layout(net, torch.channels_last):
            weight = net.bottleneck[0].weight
            assert weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()
            inside = net(x.contiguous(memory_format=torch.channels_last))
    assert all(p.is_contiguous() for p in net.parameters())
    torch.testing.assert_close(inside, reference, rtol=1e-5, atol=1e-5)


_FORWARD_ON_AVX2 = r"""
import json, torch
from artseg import hardware
from artseg.nets import build_network
worst = 0.0
for spec in ({"name": "unet", "in_channels": 1, "out_channels": 1, "width": 8, "levels": 3, "convs_per_block": 2,
              "batch_norm": True},
             {"name": "resnet", "depth": 18, "in_channels": 1, "num_logits": 1, "base_width": 8, "dilate_last": False,
              "pool": "avg"}):
    net = build_network(spec, seed=0).eval()
    for batch, size in ((1, 64), (3, 96), (8, 64)):
        x = torch.rand(batch, 1, size, size)
        with torch.inference_mode():
            reference = net(x)
            with hardware.inference_layout(net, hardware.inference_memory_format("fp32")):
                out = net(x.contiguous(memory_format=hardware.inference_memory_format("fp32")))
        worst = max(worst, float((out - reference).abs().max()))
print(json.dumps({"layout": str(hardware.inference_memory_format("fp32")), "worst": worst,
                  "capability": hardware.cpu_capability()}))
"""


def test_avx2_path_forward_passes_in_its_inference_layout_match_contiguous_under_heap_checks():
    env = {**os.environ, **AVX2_ONLY, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "MALLOC_CHECK_": "3",
           "MALLOC_PERTURB_": "165"}
    run = subprocess.run([sys.executable, "-c", _FORWARD_ON_AVX2], env=env, cwd=REPO, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    facts = json.loads(run.stdout.strip().splitlines()[-1])
    assert facts["capability"] == "AVX2"
    assert facts["worst"] < 1e-4


def test_capped_capability_or_onednn_means_fp32(monkeypatch):
    monkeypatch.setattr(hardware, "cpu_capability", lambda: "AVX2")
    assert not hardware.cpu_has_fast_bf16()
    assert hardware.resolve_precision("auto") == "fp32"
    monkeypatch.setattr(hardware, "cpu_capability", lambda: "AVX512")
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert not hardware.cpu_has_fast_bf16()
    monkeypatch.setattr(hardware, "cpu_capability", lambda: "DEFAULT")  # e.g. aarch64
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")
    assert hardware.resolve_precision("auto") == "fp32"
    assert hardware.resolve_precision("bf16") == "bf16"
    with pytest.raises(ArtsegInputError, match="precision must be"):
        hardware.resolve_precision("fp16")


def test_info_prints_the_compute_path(capsys):
    assert main(["info", "--precision", "fp32"]) == 0
    lines = dict(line.split(None, 1) for line in capsys.readouterr().out.strip().splitlines())
    assert lines["torch"] == torch.__version__
    assert lines["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    expected_layout = "channels_last" if hardware.onednn_runs_avx512() else "contiguous"
    assert lines["precision"] == "fp32" and lines["layout"] == expected_layout
    expected_inference = "channels_last" if hardware.inference_memory_format("fp32") == torch.channels_last else "contiguous"
    assert lines["inference_layout"] == expected_inference
    assert int(lines["threads"]) == torch.get_num_threads()


_PREDICT_SHIPPED = r"""
import sys
import numpy as np
from analysis import defaults
from artseg.io import read_image, read_image_manifest
from artseg.segmenter import ArtifactSegmenter

manifest = read_image_manifest(sys.argv[1])
model = ArtifactSegmenter.load(defaults.SHIPPED_MODELS / "artseg_cho_m4r_fast_seed0")
rows = manifest[manifest["label"] == 1].head(2)
predictions = [model.predict(read_image(path)) for path in rows["image"]]
np.savez(sys.argv[2], probability=np.stack([p.probability for p in predictions]),
         mask=np.stack([p.mask for p in predictions]), p_artifact=[p.p_artifact for p in predictions])
"""


def test_shipped_model_gives_the_same_masks_on_the_avx2_only_path(tmp_path):
    """The embedded default's answer must not depend on the CPU: same shipped weights, fp32 on both paths."""
    from artseg.synth import generate_dataset

    generate_dataset("cho_m4r", tmp_path / "data", n_images=6, seed=3, size=256, plate=None, progress=False)
    results = {}
    for name, extra in (("native", {}), ("avx2", AVX2_ONLY)):
        env = {**os.environ, **extra, "PYTHONPATH": str(REPO)}
        out = tmp_path / f"{name}.npz"
        run = subprocess.run([sys.executable, "-c", _PREDICT_SHIPPED, str(tmp_path / "data" / "manifest.csv"), str(out)],
                             env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr[-3000:]
        results[name] = np.load(out)
    native, avx2 = results["native"], results["avx2"]
    assert np.abs(native["p_artifact"] - avx2["p_artifact"]).max() < 1e-4
    assert np.abs(native["probability"] - avx2["probability"]).max() < 1e-3
    assert (native["mask"] != avx2["mask"]).mean() < 1e-4

