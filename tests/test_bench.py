"""`benchmarks/bench.py` on a tiny ImageFolder, and its synthetic photos (no speed assertions: machines differ)."""
import json
import subprocess
import sys

import pytest
from PIL import Image

from benchmarks import bench
from shared import data
from shared.__main__ import main
from shared.runtime import REPO_ROOT, UserError


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    for c in range(2):
        folder = root / "train" / f"class_{c}"
        folder.mkdir(parents=True)
        for i in range(10):
            Image.new("RGB", (80, 60), (40 * i, 100 * c, 50)).save(folder / f"{i}.jpg")
    return root


def test_bench_json_shape(tiny_folder):
    result = bench.run_bench(tiny_folder, input_size=32, batch_size=4, epochs=2, configs=("light",), device="cpu")
    assert result["input_size"] == 32 and result["batch_size"] == 4 and result["epochs"] == 2
    assert result["machine"]["device"] == "cpu" and result["machine"]["cpu_count"] >= 1
    light = result["configs"]["light"]
    for pipeline in ("engine", "typical"):
        assert len(light[pipeline]["epoch_seconds"]) == 2
        assert light[pipeline]["steady_epoch_seconds"] > 0 and light[pipeline]["images_per_second"] > 0
    assert light["engine"]["cache_images_per_second"] > 0
    assert light["speedup"] == pytest.approx(light["engine"]["images_per_second"]
                                             / light["typical"]["images_per_second"])
    json.dumps(result)


def test_cli_writes_the_json(tiny_folder, tmp_path):
    out = tmp_path / "bench.json"
    main(["bench", "--data", str(tiny_folder), "--input-size", "32", "--batch-size", "4", "--epochs", "1",
          "--configs", "light", "--json", str(out)])
    assert set(json.loads(out.read_text())["configs"]) == {"light"}


def test_unknown_configs_and_bad_sizes_are_refused_before_any_work(tiny_folder, monkeypatch):
    """`--configs light,foo` used to run light for 25 s, then raise KeyError and lose the result."""
    def no_work(*args, **kwargs):
        raise AssertionError("the bench started before the bad input was refused")
    monkeypatch.setattr(bench, "bench_engine", no_work)
    monkeypatch.setattr(bench, "make_synthetic", no_work)
    with pytest.raises(UserError, match=r"unknown bench config\(s\) 'foo'; choose from light, heavy"):
        bench.run_bench(tiny_folder, configs=("light", "foo"), device="cpu")
    with pytest.raises(UserError, match="epochs must be >= 1"):
        bench.run_bench(None, epochs=0, device="cpu")
    with pytest.raises(UserError, match="input_size must be >= 32"):
        bench.run_bench(None, input_size=8, device="cpu")


def test_runnable_beside_the_package():
    """`python -m benchmarks.bench` is the CLI's bench command: the same options and refusals."""
    out = subprocess.run([sys.executable, "-m", "benchmarks.bench", "--configs", "light,foo"], capture_output=True,
                         text=True, cwd=REPO_ROOT, timeout=120)
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr.strip().splitlines() == ["error: unknown bench config(s) 'foo'; choose from light, heavy"]


def test_synthetic_dataset_is_photo_like(tmp_path):
    root = bench.make_synthetic(tmp_path / "synthetic", classes=2, per_class=1)
    files = sorted((root / "train").rglob("*.jpg"))
    assert len(files) == 2 and Image.open(files[0]).size == (800, 600)
    assert 50_000 < files[0].stat().st_size < 200_000  # about 100 KB, like a real photo
    assert bench.make_synthetic(tmp_path / "synthetic", classes=2, per_class=1) == root  # built once


def test_synthetic_set_in_nature_12k_layout_resumes_and_refuses_another(tmp_path):
    dest = tmp_path / "nature"
    root = bench.make_synthetic(dest, classes=2, per_class=3, size=(80, 60), val_per_class=1)
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*.jpg")) == [
        "train/class_0/0000.jpg", "train/class_0/0001.jpg", "train/class_0/0002.jpg",
        "train/class_1/0000.jpg", "train/class_1/0001.jpg", "train/class_1/0002.jpg",
        "val/class_0/0000.jpg", "val/class_1/0000.jpg"]
    assert data.check_dataset(root).train_counts == {"class_0": 3, "class_1": 3}
    # Interrupted after some files: DONE is missing, the rest is written, the written ones are kept.
    kept, lost = root / "train/class_0/0000.jpg", root / "val/class_1/0000.jpg"
    kept_bytes = kept.read_bytes()
    (root / "DONE").unlink(), lost.unlink()
    assert bench.make_synthetic(dest, classes=2, per_class=3, size=(80, 60), val_per_class=1) == root
    assert lost.exists() and kept.read_bytes() == kept_bytes and (root / "DONE").exists()
    with pytest.raises(UserError, match="already holds another synthetic set"):
        bench.make_synthetic(dest, classes=2, per_class=5, size=(80, 60))
    (root / "DONE").write_text("2 classes x 3 synthetic 80x60 JPEGs\n")  # as sets built before val/ existed
    assert bench.make_synthetic(dest, classes=2, per_class=3, size=(80, 60), val_per_class=1) == root


def test_synthetic_workers_write_the_same_files_as_one_process(tmp_path):
    """Every file has its own seed, so the worker pool of a 16-core GPU machine makes the same set."""
    serial = bench.make_synthetic(tmp_path / "serial", classes=2, per_class=70, size=(48, 32), workers=1)
    parallel = bench.make_synthetic(tmp_path / "parallel", classes=2, per_class=70, size=(48, 32), workers=2)
    files = sorted(p.relative_to(serial) for p in serial.rglob("*.jpg"))
    assert len(files) == 140 and files == sorted(p.relative_to(parallel) for p in parallel.rglob("*.jpg"))
    assert all((serial / f).read_bytes() == (parallel / f).read_bytes() for f in files)
    assert (serial / "train/class_0/0000.jpg").read_bytes() != (serial / "train/class_0/0001.jpg").read_bytes()
