"""Sweeps: config building, offline runs through the `sweeps` engine, failure isolation, plots."""
import json

import numpy as np
import pytest
import torch

from shared import data, sweep, sweep_plots, train as train_lib
from shared.model import CNNConfig
from shared.train import TrainConfig

TINY = dict(base_filters=8, organisation="same", kernel_size=3, activation="relu", augment=False,
            batch_norm=True, dropout=0.2, dense_neurons=32, lr=2e-3, batch_size=64, weight_decay=0.0,
            epochs=1, input_size=32)


@pytest.fixture(scope="module")
def root():
    return data.find_data()


def tiny_config(method="grid", **values):
    """A sweep config with one value per key, except the ones given as lists."""
    return sweep.sweep_config(method, **{**TINY, **values})


def test_sweep_config_covers_the_assignment_space():
    params = sweep.SWEEP_CONFIG["parameters"]
    assert sweep.SWEEP_CONFIG["method"] == "bayes"
    assert sweep.SWEEP_CONFIG["metric"] == {"name": "val_acc", "goal": "maximize"}
    assert set(params["organisation"]["values"]) == {"same", "doubling", "halving"}
    assert set(params["activation"]["values"]) == {"relu", "gelu", "silu", "mish"}
    assert set(params["augment"]["values"]) == set(params["batch_norm"]["values"]) == {True, False}
    assert set(params["dropout"]["values"]) == {0.2, 0.3}
    for key in ["base_filters", "kernel_size", "dense_neurons", "lr", "batch_size", "epochs", "weight_decay"]:
        assert key in params


def test_sweep_config_narrows_without_touching_the_default():
    config = sweep.sweep_config("random", input_size=48, epochs=2, base_filters=[8, 16], activation="relu")
    assert config["method"] == "random"
    assert config["parameters"]["input_size"] == {"value": 48}
    assert config["parameters"]["epochs"] == {"value": 2}
    assert config["parameters"]["base_filters"] == {"values": [8, 16]}
    assert config["parameters"]["activation"] == {"value": "relu"}
    assert sweep.SWEEP_CONFIG["parameters"]["input_size"] == {"value": 224}
    grid = sweep.sweep_config("grid")
    assert all("distribution" not in spec for spec in grid["parameters"].values())


def test_flat_config_holds_every_field_and_plain_types():
    params = {**TINY, "base_filters": np.int64(16), "organisation": "doubling", "lr": np.float64(1e-3),
              "kernel_size": np.int64(5)}
    cnn, tcfg, flat = sweep.configs_from_params(params)
    assert cnn.filters == (16, 32, 64, 128, 256) and cnn.kernel_sizes == (5,) * 5
    assert tcfg.lr == 1e-3 and type(tcfg.lr) is float
    assert set(CNNConfig.__dataclass_fields__) | set(TrainConfig.__dataclass_fields__) <= set(flat)
    assert flat["organisation"] == "doubling" and flat["base_filters"] == 16
    json.dumps(flat)  # no numpy types left
    assert CNNConfig.from_dict(flat) == cnn and TrainConfig.from_dict(flat) == tcfg


def test_offline_sweep_writes_the_runs_table(root, tmp_path):
    path = tmp_path / "runs.json"
    config = tiny_config("bayes", activation=["relu", "silu"])
    result = sweep.run_sweep(root, 2, config=config, path=path)
    assert result["mode"] == "offline" and result["method"] == "bayes" and result["sweep_id"]
    assert len(result["runs"]) == 2
    for run in result["runs"]:
        assert run["state"] == "finished" and run["error"] is None
        assert 0 <= run["val_acc"] <= 1 and run["best_epoch"] == 1
        assert len(run["epoch_seconds"]) == 1 and run["params"] > 0 and run["macs"] > 0
        assert run["created"] and run["name"]
        assert run["config"]["activation"] in ("relu", "silu") and run["config"]["filters"] == [8] * 5
    saved = json.loads(path.read_text())
    assert saved["runs"] == json.loads(json.dumps(result["runs"]))
    cnn, tcfg, source = sweep.best_config(path=path)
    best = max(result["runs"], key=lambda r: r["val_acc"])
    assert cnn.activation == best["config"]["activation"] and source.startswith("sweep run")


def test_a_diverged_run_fails_alone(root, tmp_path):
    """A real divergence (lr 1e9 with weight decay: NaN weights) is recorded as failed; the next grid run trains normally."""
    result = sweep.run_sweep(root, 2, config=tiny_config("grid", lr=[1e9, 2e-3], weight_decay=0.05), path=tmp_path / "runs.json")
    first, second = result["runs"]
    assert first["state"] == "failed" and first["error"].startswith("diverged") and first["val_acc"] is None
    assert second["state"] == "finished" and second["val_acc"] > 0
    assert sweep_plots.runs_table(result["runs"])["state"].tolist() == ["failed", "finished"]


def test_out_of_memory_is_recorded_and_memory_released(root, tmp_path, monkeypatch):
    real_train, calls, released = sweep.train, [], []

    def train_or_oom(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            big = torch.empty(1000)  # a tensor the failed run's frames hold until they are gone
            raise torch.OutOfMemoryError(f"CUDA out of memory. Tried to allocate {big.numel()} bytes")
        return real_train(*args, **kwargs)

    monkeypatch.setattr(sweep, "train", train_or_oom)
    monkeypatch.setattr(sweep, "release_memory", lambda: (released.append(1), train_lib.release_memory()))
    result = sweep.run_sweep(root, 2, config=tiny_config("grid", batch_size=[64, 32]), path=tmp_path / "r.json")
    first, second = result["runs"]
    assert first["state"] == "failed" and "out of memory" in first["error"]
    assert second["state"] == "finished" and second["val_acc"] > 0
    assert len(released) == 2


def test_other_errors_propagate_but_keep_finished_runs(root, tmp_path, monkeypatch):
    path = tmp_path / "runs.json"

    def broken(*args, **kwargs):
        raise KeyError("a real bug")

    monkeypatch.setattr(sweep, "train", broken)
    with pytest.raises(KeyError):
        sweep.run_sweep(root, 1, config=tiny_config(), path=path)
    assert json.loads(path.read_text())["runs"] == []


def fake_runs():
    runs = []
    for i, (activation, bn, acc) in enumerate([("relu", True, 0.5), ("gelu", False, 0.3), ("silu", True, 0.7),
                                               ("relu", False, None), ("mish", True, 0.6)]):
        _, _, flat = sweep.configs_from_params({**TINY, "activation": activation, "batch_norm": bn,
                                                "lr": 10 ** -(2 + i / 2), "organisation": ["same", "doubling"][i % 2]})
        runs.append({"config": flat, "val_acc": acc, "state": "finished" if acc else "failed",
                     "error": None if acc else "diverged: nan", "name": f"r{i}",
                     "created": f"2026-01-01T00:0{i}:00+00:00", "params": 1000 * (i + 1), "macs": 1, "epoch_seconds": [1.0]})
    return runs


def test_plots_and_importance_from_the_runs_table():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = sweep_plots.runs_table(fake_runs())
    assert len(table) == 5 and table["state"].tolist().count("failed") == 1
    assert set(sweep_plots.varied_keys(table)) == {"activation", "batch_norm", "lr", "organisation"}
    for fig in (sweep_plots.plot_val_acc_over_time(table), sweep_plots.plot_parallel_coordinates(table)):
        assert fig.axes
    labels = {t.get_text() for t in sweep_plots.plot_parallel_coordinates(table).axes[0].texts}
    assert {"relu", "gelu", "silu", "mish", "same", "doubling", "True", "False"} <= labels
    importance = sweep_plots.parameter_importance(table)
    assert list(importance.columns) == ["importance", "correlation"]
    assert abs(importance["importance"].sum() - 1) < 1e-6
    assert "activation=silu" in importance.index and "log10 lr" in importance.index
    assert sweep_plots.plot_importance(importance).axes
    by = sweep_plots.mean_accuracy_by(table, "batch_norm")
    assert by.loc["True", "runs"] == 3 and by.index[0] == "True"
    plt.close("all")


def test_one_agent_per_gpu_each_with_its_own_device_and_table(tmp_path, monkeypatch):
    """Without GPUs here: check the subprocess commands and the merge of their runs tables."""
    launched = []

    class FakeAgent:
        def __init__(self, command, env, cwd):
            launched.append((command, env["CUDA_VISIBLE_DEVICES"]))
            out = command[command.index("--json") + 1]
            gpu = env["CUDA_VISIBLE_DEVICES"]
            run = {**fake_runs()[0], "name": f"gpu{gpu}", "created": f"2026-01-01T00:00:0{gpu}+00:00"}
            with open(out, "w") as f:
                json.dump({"runs": [run]}, f)

        def wait(self):
            return 0

    monkeypatch.setattr(sweep.subprocess, "Popen", FakeAgent)
    path = tmp_path / "runs.json"
    result = sweep.run_agents_on_gpus("/data", "abc123", count=5, gpus=2, input_size=64, path=path)
    assert [gpu for _, gpu in launched] == ["0", "1"]
    counts = [command[command.index("--count") + 1] for command, _ in launched]
    assert counts == ["3", "2"]
    assert all(["--sweep-id", "abc123"] == c[c.index("--sweep-id"):c.index("--sweep-id") + 2] for c, _ in launched)
    assert [r["name"] for r in result["runs"]] == ["gpu0", "gpu1"]
    assert json.loads(path.read_text())["sweep_id"] == "abc123"
    assert sweep.agent_command("abc123", 4, 64) == "python -m shared sweep --sweep-id abc123 --count 4 --input-size 64"
