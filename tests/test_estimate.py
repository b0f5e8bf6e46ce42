"""`shared/estimate.py`: the sweep time estimate Part-A/02 prints (no speed assertions beyond generous
bounds: machines differ)."""
import ast
import re
import time

import pytest
import torch

from shared import data, estimate as estimate_lib
from shared.model import CNNConfig
from shared.runtime import REPO_ROOT, UserError
from shared.sweep import sweep_config
from shared.train import TrainConfig


def demo_sweep(epochs: int) -> dict:
    return sweep_config("bayes", 32, epochs, base_filters=[8, 16], batch_size=[64, 128])


@pytest.fixture(scope="module")
def demo_estimate():
    start = time.perf_counter()
    estimate = estimate_lib.estimate_sweep(data.find_data(), demo_sweep(epochs=2), count=4, device="cpu")
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
    same = estimate_lib.estimate_sweep(root, demo_sweep(epochs=2), count=4, device="cpu", speed=speed)
    assert same["total_seconds"] == pytest.approx(estimate["total_seconds"])
    more_runs = estimate_lib.estimate_sweep(root, demo_sweep(epochs=2), count=12, device="cpu", speed=speed)
    assert more_runs["total_seconds"] == pytest.approx(3 * estimate["total_seconds"])
    more_epochs = estimate_lib.estimate_sweep(root, demo_sweep(epochs=6), count=4, device="cpu", speed=speed)
    assert more_epochs["seconds_per_run"] == pytest.approx(3 * estimate["seconds_per_run"])
    # 1,280 images: 1,024 train (a whole number of 64- and 128-image batches, so none is dropped) + 256 val.
    fewer = estimate_lib.estimate_sweep(1280, demo_sweep(epochs=2), count=4, device="cpu", speed=speed)
    more_images = estimate_lib.estimate_sweep(12800, demo_sweep(epochs=2), count=4, device="cpu", speed=speed)
    assert more_images["seconds_per_run"] == pytest.approx(10 * fewer["seconds_per_run"])
    by_class = estimate_lib.estimate_sweep({"a": 1000, "b": 280}, demo_sweep(epochs=2), count=4, device="cpu", speed=speed)
    assert by_class["seconds_per_run"] == pytest.approx(fewer["seconds_per_run"])


def test_sweep_estimate_refuses_bad_input(demo_estimate):
    estimate, _ = demo_estimate
    with pytest.raises(UserError, match="count must be >= 1"):
        estimate_lib.estimate_sweep(1000, demo_sweep(epochs=2), count=0, device="cpu", speed=estimate["speed"])
    with pytest.raises(UserError, match="measured on cpu at 32 px"):
        estimate_lib.estimate_sweep(1000, sweep_config("bayes", 64, 2), count=3, device="cpu", speed=estimate["speed"])
    with pytest.raises(data.DataError):
        estimate_lib.estimate_sweep("no/such/dataset", demo_sweep(epochs=2), device="cpu", speed=estimate["speed"])


def test_speed_model_through_the_lightest_and_heaviest_points():
    model = estimate_lib._speed_model([{"macs": 1e6, "seconds_per_image": 0.002}, {"macs": 11e6, "seconds_per_image": 0.012}])
    assert model(1e6) == pytest.approx(0.002) and model(21e6) == pytest.approx(0.022)  # a + b * MACs
    noisy = estimate_lib._speed_model([{"macs": 1e6, "seconds_per_image": 0.005}, {"macs": 2e6, "seconds_per_image": 0.004}])
    assert noisy(1e6) == noisy(1e9) == pytest.approx(0.005)  # a heavier config measured faster: a constant


def test_warm_up_halves_a_batch_that_runs_out_of_memory(monkeypatch):
    tried = []

    def warm_up(cnn, tcfg, device, batch_size, steps):
        tried.append(batch_size)
        if batch_size > 32:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return 0.01

    monkeypatch.setattr(estimate_lib, "_timed_warmup", warm_up)
    cnn = CNNConfig(filters=(8,) * 5, input_size=32)
    point = estimate_lib.measure_epoch_speed(cnn, TrainConfig(batch_size=128), "cuda")  # no GPU is touched
    assert tried == [128, 64, 32] and point["batch_size"] == 32 and point["out_of_memory_at"] == 128
    assert point["seconds_per_image"] == 0.01


def test_durations_are_written_at_the_precision_an_estimate_deserves():
    assert [estimate_lib.format_duration(s) for s in (45, 89, 12 * 60, 89 * 60, 2.3 * 3600)] == [
        "~45 s", "~89 s", "~12 min", "~89 min", "~2.3 h"]


def imported_modules(nodes) -> list[str]:
    return [alias.name if isinstance(node, ast.Import) else node.module or ""
            for node in nodes if isinstance(node, (ast.Import, ast.ImportFrom)) for alias in node.names]


def test_the_package_never_imports_the_tools_beside_it():
    """benchmarks/ uses shared/, never the reverse; only the CLI's `bench` command imports it, inside itself."""
    for path in sorted((REPO_ROOT / "shared").glob("*.py")):
        tree = ast.parse(path.read_text())
        anywhere = [name.split(".")[0] for name in imported_modules(ast.walk(tree))]
        at_import_time = [name.split(".")[0] for name in imported_modules(tree.body)]
        assert "benchmarks" not in at_import_time, path
        assert ("benchmarks" in anywhere) == (path.name == "__main__.py"), path


def test_memory_plan_fits_16_gib_and_includes_the_heaviest_config():
    """Issue 19: every entry's planned peak (weights, gradients, AdamW state, cached images, reserve included)
    is under 16 GiB; the widest first layer with the largest kernel is first and needs micro-batches."""
    from shared.sweep import SWEEP_CONFIG

    plan = estimate_lib.memory_plan(SWEEP_CONFIG, 16)
    assert all(entry["predicted_peak_bytes"] < 16 * 2**30 for entry in plan)
    heaviest = plan[0]
    assert heaviest["filters"][0] == 512 and heaviest["kernel_sizes"][0] == 5 and heaviest["batch_size"] == 128
    assert heaviest["micro_batch"] < heaviest["batch_size"]  # the whole batch would not fit
    big = estimate_lib.memory_plan(SWEEP_CONFIG, 1000)[0]
    assert big["micro_batch"] == big["batch_size"]  # on a large GPU nothing changes


def test_estimate_cli_writes_the_memory_plan(tmp_path):
    import json
    import subprocess
    import sys

    out = tmp_path / "plan.json"
    done = subprocess.run([sys.executable, "-m", "shared", "estimate", "--gpu-memory", "16", "--json", str(out)],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "PFLOP" in done.stderr and "2xT4" in done.stderr and "TFLOP/s sustained" in done.stderr
    plan = json.loads(out.read_text())["memory_plan"]
    assert set(plan[0]) == {"filters", "kernel_sizes", "batch_norm", "activation", "dense_neurons", "input_size",
                            "batch_size", "micro_batch", "predicted_peak_bytes"}
