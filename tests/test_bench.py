"""The benchmark on a tiny ImageFolder, the synthetic photos, and the sweep time estimate (no speed
assertions beyond generous bounds: machines differ)."""
import json
import re
import time

import pytest
import torch
from PIL import Image

from shared import bench, data
from shared.__main__ import main
from shared.model import CNNConfig
from shared.runtime import UserError
from shared.sweep import sweep_config
from shared.train import TrainConfig


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


# --------------------------------------------------------------------------------------------
# The sweep time estimate
# --------------------------------------------------------------------------------------------
def demo_sweep(epochs: int) -> dict:
    return sweep_config("bayes", 32, epochs, base_filters=[8, 16], batch_size=[64, 128])


@pytest.fixture(scope="module")
def demo_estimate():
    start = time.perf_counter()
    estimate = bench.estimate_sweep(data.find_data(), demo_sweep(epochs=2), count=4, device="cpu")
    return estimate, time.perf_counter() - start


def test_sweep_estimate_is_positive_labelled_and_quick(demo_estimate):
    estimate, seconds = demo_estimate
    assert seconds < 60  # a few seconds on an idle 2-core CPU; the margin is for a shared one
    assert estimate["estimate"] is True and estimate["count"] == 4 and estimate["input_size"] == 32
    assert estimate["seconds_per_run"] > 0 and estimate["total_seconds"] == pytest.approx(4 * estimate["seconds_per_run"])
    assert estimate["train_folder_images"] == sum(data.check_dataset(data.find_data()).train_counts.values())
    points = estimate["speed"]["points"]
    assert len(points) == 2 and points[0]["macs"] < points[1]["macs"]  # the lightest and the heaviest config
    assert all(point["seconds_per_image"] > 0 for point in points)
    assert re.fullmatch(r"Estimated sweep time on CPU \(.+, \d+ cores\): ~[\d.]+ (s|min|h) for 4 runs "
                        r"\(estimate from a \d+ s warm-up; early stopping will shorten it\)", estimate["describe"])


def test_sweep_estimate_scales_linearly_with_count_epochs_and_images(demo_estimate):
    estimate, _ = demo_estimate
    speed = estimate["speed"]  # the same measured speed: no second warm-up, exact proportions
    root = data.find_data()
    same = bench.estimate_sweep(root, demo_sweep(epochs=2), count=4, device="cpu", speed=speed)
    assert same["total_seconds"] == pytest.approx(estimate["total_seconds"])
    more_runs = bench.estimate_sweep(root, demo_sweep(epochs=2), count=12, device="cpu", speed=speed)
    assert more_runs["total_seconds"] == pytest.approx(3 * estimate["total_seconds"])
    more_epochs = bench.estimate_sweep(root, demo_sweep(epochs=6), count=4, device="cpu", speed=speed)
    assert more_epochs["seconds_per_run"] == pytest.approx(3 * estimate["seconds_per_run"])
    # 1,280 images: 1,024 train (a whole number of 64- and 128-image batches, so none is dropped) + 256 val.
    fewer = bench.estimate_sweep(1280, demo_sweep(epochs=2), count=4, device="cpu", speed=speed)
    more_images = bench.estimate_sweep(12800, demo_sweep(epochs=2), count=4, device="cpu", speed=speed)
    assert more_images["seconds_per_run"] == pytest.approx(10 * fewer["seconds_per_run"])
    by_class = bench.estimate_sweep({"a": 1000, "b": 280}, demo_sweep(epochs=2), count=4, device="cpu", speed=speed)
    assert by_class["seconds_per_run"] == pytest.approx(fewer["seconds_per_run"])


def test_sweep_estimate_refuses_bad_input(demo_estimate):
    estimate, _ = demo_estimate
    with pytest.raises(UserError, match="count must be >= 1"):
        bench.estimate_sweep(1000, demo_sweep(epochs=2), count=0, device="cpu", speed=estimate["speed"])
    with pytest.raises(UserError, match="measured on cpu at 32 px"):
        bench.estimate_sweep(1000, sweep_config("bayes", 64, 2), count=3, device="cpu", speed=estimate["speed"])
    with pytest.raises(data.DataError):
        bench.estimate_sweep("no/such/dataset", demo_sweep(epochs=2), device="cpu", speed=estimate["speed"])


def test_speed_model_through_the_lightest_and_heaviest_points():
    model = bench._speed_model([{"macs": 1e6, "seconds_per_image": 0.002}, {"macs": 11e6, "seconds_per_image": 0.012}])
    assert model(1e6) == pytest.approx(0.002) and model(21e6) == pytest.approx(0.022)  # a + b * MACs
    noisy = bench._speed_model([{"macs": 1e6, "seconds_per_image": 0.005}, {"macs": 2e6, "seconds_per_image": 0.004}])
    assert noisy(1e6) == noisy(1e9) == pytest.approx(0.005)  # a heavier config measured faster: a constant


def test_warm_up_halves_a_batch_that_runs_out_of_memory(monkeypatch):
    tried = []

    def warm_up(cnn, tcfg, device, batch_size, steps):
        tried.append(batch_size)
        if batch_size > 32:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return 0.01, 1.0

    monkeypatch.setattr(bench, "_timed_warmup", warm_up)
    cnn = CNNConfig(filters=(8,) * 5, input_size=32)
    point = bench.measure_epoch_speed(cnn, TrainConfig(batch_size=128), "cuda")  # no GPU is touched
    assert tried == [128, 64, 32] and point["batch_size"] == 32 and point["out_of_memory_at"] == 128
    assert point["seconds_per_image"] == 0.01
