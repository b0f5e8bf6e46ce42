"""The six notebooks' FULL-mode branches, in order, on a small nature_12K-shaped set.

The run a student does is full mode: the real layout and class names, photos of many sizes, 224 px, the full
SWEEP_CONFIG, ResNet50 with ImageNet weights loaded through torchvision's own path (planted in $TORCH_HOME, as
in test_finetune.py). One switch, INAT_SHRINK=1, replaces only the counts and epochs of each notebook's "full"
entry (runtime.mode_settings); everything else is what a real run executes. Its own file, so that
`--dist loadfile` gives it a worker of its own.
"""
import json

import numpy as np
import pytest
import torch
import torchvision
from notebook_runner import NOTEBOOKS, run_notebook, stream_text
from PIL import Image

from shared import finetune

CLASSES = ["Amphibia", "Animalia", "Arachnida", "Aves", "Fungi", "Insecta", "Mammalia", "Mollusca", "Plantae",
           "Reptilia"]
SIZES = [(800, 600), (500, 375), (375, 500), (640, 427)]  # landscape and portrait, as in nature_12K
PER_CLASS = {"train": 5, "val": 2}


def make_nature_12k(root):
    """JPEGs from a per-class colour gradient plus noise, so the classes are learnable and every file differs."""
    rng = np.random.default_rng(0)
    for split, count in PER_CLASS.items():
        for c, name in enumerate(CLASSES):
            (root / split / name).mkdir(parents=True)
            for i in range(count):
                w, h = SIZES[(c + i) % len(SIZES)]
                ramp = np.linspace(0, 1, w)[None, :, None] * np.array([c * 25, 255 - c * 25, 128])
                pixels = np.clip(ramp + rng.normal(0, 40, (h, w, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(root / split / name / f"{split}_{i}.jpg", quality=85)
    return root


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("full")
    data_root = make_nature_12k(base / "inaturalist_12K")
    outputs, printed = base / "outputs", {}
    with pytest.MonkeyPatch.context() as monkeypatch:
        for name, value in {"INAT_QUICK": "0", "INAT_SHRINK": "1", "INAT_DATA": str(data_root),
                            "INAT_CACHE": str(base / "cache"), "TORCH_HOME": str(base / "torch")}.items():
            monkeypatch.setenv(name, value)
        weights = finetune.weights_file(finetune.get_weights("resnet50"))  # where torchvision's hub looks
        weights.parent.mkdir(parents=True)
        torch.save(torchvision.models.resnet50().state_dict(), weights)
        for path in NOTEBOOKS:
            printed[path.name] = stream_text(run_notebook(path, outputs, monkeypatch))
    return outputs, printed


def test_every_notebook_runs_its_full_branch(full_run):
    outputs, printed = full_run
    for name, text in printed.items():
        assert "MODE = 'full'" in text or "mode full" in text, f"{name} did not run in full mode"
        assert "DEMO" not in text and "QUICK MODE" not in text, name
    runs = json.loads((outputs / "sweep_runs.json").read_text())["runs"]
    assert runs and {run["input_size"] for run in runs} == {128} and {run["mode"] for run in runs} == {"full"}
    strategies = json.loads((outputs / "partB_strategies.json").read_text())
    assert strategies["model"] == "resnet50" and strategies["mode"] == "full"
    assert "NOTICE" not in printed["02_finetune_vs_scratch.ipynb"], "Part-B/02 did not use Part-A/03 and Part-B/01"
    page = (outputs / "report.html").read_text()
    assert "Missing results" not in page and "not the full runs" not in page and "DEMO data" not in page


SETTINGS = {"full": dict(count=30, input_size=224, epochs=None), "demo": dict(count=8, input_size=32, epochs=3),
            "quick": dict(count=2, input_size=32, epochs=1)}


@pytest.fixture
def real_data_on_a_cpu(monkeypatch):
    from shared import runtime
    monkeypatch.setattr(runtime, "QUICK", False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for name in ("INAT_FORCE_FULL", "INAT_SHRINK"):
        monkeypatch.delenv(name, raising=False)
    return runtime


def test_real_data_on_a_cpu_runs_cpu_mode_with_the_demo_counts_and_says_so(real_data_on_a_cpu, capsys):
    runtime = real_data_on_a_cpu
    assert runtime.run_mode(demo=True) == "demo"
    assert runtime.run_mode(demo=False) == "cpu"
    assert runtime.mode_settings(SETTINGS, "cpu", shrunk=dict(count=2)) == SETTINGS["demo"]
    line, = capsys.readouterr().out.splitlines()
    assert "CPU MODE" in line and "INAT_FORCE_FULL=1" in line


def test_a_student_who_insists_or_a_gpu_gets_the_full_settings(real_data_on_a_cpu, monkeypatch):
    runtime = real_data_on_a_cpu
    monkeypatch.setenv("INAT_FORCE_FULL", "1")
    assert runtime.run_mode(demo=False) == "full"
    assert runtime.mode_settings(SETTINGS, "full", shrunk=dict(count=2)) == SETTINGS["full"]
    monkeypatch.delenv("INAT_FORCE_FULL")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert runtime.run_mode(demo=False) == "full"


def test_the_shrink_switch_changes_only_the_full_entrys_counts(real_data_on_a_cpu, monkeypatch):
    runtime = real_data_on_a_cpu
    monkeypatch.setenv("INAT_SHRINK", "1")
    assert runtime.run_mode(demo=False) == "full"
    assert runtime.mode_settings(SETTINGS, "full", shrunk=dict(count=2, epochs=1)) == dict(
        count=2, input_size=224, epochs=1)
    assert runtime.mode_settings(SETTINGS, "demo", shrunk=dict(count=2)) == SETTINGS["demo"]
