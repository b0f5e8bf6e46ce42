"""Sweeps: config building, offline runs through the `sweeps` engine, a runs table that keeps every run
of every sweep and ties it to its data, continuing a sweep, several agents, hyperband, failures, plots, the
sweep's best model. The controller's own tests (draws, which sweep runs, config refusals) are in
test_sweep_controller.py, the table's in test_runs_table.py; both use the helpers defined here."""
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from shared import data, runs_frame, runs_table, sweep, sweep_controller, sweep_plots, train as train_lib
from shared.model import CNN, CNNConfig
from shared.runtime import REPO_ROOT, UserError, run_mode
from shared.train import TrainConfig

TINY = dict(base_filters=8, organisation="same", kernel_size=3, activation="relu", augment=False,
            batch_norm=True, dropout=0.2, dense_neurons=32, lr=2e-3, batch_size=64, weight_decay=0.0,
            epochs=1, input_size=32)
SHORT_HYPERBAND = {"min_iter": 1, "eta": 2}  # checks after epochs 2, 3, 5: what 2-4 epoch demo runs need


@pytest.fixture(scope="module")
def root():
    return data.find_data()


def tiny_config(method="grid", early_terminate=False, **values):
    """A sweep config with one value per key, except the ones given as lists."""
    return sweep.sweep_config(method, early_terminate=early_terminate, **{**TINY, **values})


def planted_train(accuracy):
    """A stand-in for train.train whose val_acc per epoch is planted: accuracy(train_config, epoch).

    It honours fit's on_epoch contract (a True answer stops the run), so the sweep's record keeping,
    engine and hyperband are tested on known curves in a fraction of the time of real training.
    """
    def fake_train(cnn, root, tcfg, on_epoch=None, **kwargs):
        history, stopped_by = [], None
        for epoch in range(1, tcfg.epochs + 1):
            row = {"epoch": epoch, "train_loss": 1.0, "train_acc": 0.5, "val_loss": 1.0,
                   "val_acc": accuracy(tcfg, epoch), "lr": tcfg.lr, "epoch_seconds": 2.0, "images_per_second": 10.0}
            history.append(row)
            if on_epoch and on_epoch(row):
                stopped_by = "on_epoch"
                break
        best = max(history, key=lambda row: row["val_acc"])
        return train_lib.TrainResult(config={}, val_acc=best["val_acc"], best_epoch=best["epoch"],
                                     epoch_seconds=[r["epoch_seconds"] for r in history], cache_seconds=0.0,
                                     images_per_second=10.0, params=1, macs=1, split={}, skipped=[],
                                     history=history, stopped_by=stopped_by)
    return fake_train


def planted_record(sweep_id, val_accs, root=None, state="finished", name="planted", **overrides):
    """A runs-table record with a planted val_acc history, made on `root`'s data in this mode."""
    _, _, flat = sweep.configs_from_params(TINY)
    fingerprint = data.data_fingerprint(root) if root is not None else None
    history = [{"epoch": i + 1, "val_acc": acc, "epoch_seconds": 2.0} for i, acc in enumerate(val_accs)]
    record = {"config": flat, "val_acc": max(val_accs) if val_accs else None, "state": state, "error": None,
              "name": name, "created": "2026-01-01T00:00:00+00:00", "params": 1, "macs": 1,
              "epoch_seconds": [2.0] * len(val_accs), "best_epoch": 1, "images_per_second": None,
              "history": history, "skipped": [], "sweep_id": sweep_id, "data": fingerprint,
              "mode": run_mode(True), "input_size": 32, "epochs_asked": len(val_accs), "epochs_run": len(val_accs)}
    return {**record, **overrides}


def plant_sweep(path, root, config, records=(), sweep_id=None):
    """A local sweep in the table at `path`, as run_sweep registers one, with planted runs."""
    sweep_id = sweep_id or sweep_controller.new_local_id()
    runs_table.register_sweep({"sweep_id": sweep_id, "method": config["method"], "wandb_mode": "offline",
                               "config": config, "created": "2026-01-01T00:00:00+00:00",
                               "data": data.data_fingerprint(root), "mode": run_mode(True)}, path)
    for record in records:
        sweep.append_run({**record, "sweep_id": sweep_id}, path)
    return sweep_id


# ------------------------------------------------------------------------------------------------
# The sweep space
# ------------------------------------------------------------------------------------------------
def test_sweep_config_covers_the_assignment_space():
    params = sweep.SWEEP_CONFIG["parameters"]
    assert sweep.SWEEP_CONFIG["method"] == "bayes"
    assert sweep.SWEEP_CONFIG["metric"] == {"name": "val_acc", "goal": "maximize"}
    assert sweep.SWEEP_CONFIG["early_terminate"] == {"type": "hyperband", "min_iter": 3, "eta": 2}
    assert set(params["organisation"]["values"]) == {"same", "doubling", "halving"}
    assert set(params["activation"]["values"]) == {"relu", "gelu", "silu", "mish"}
    assert set(params["augment"]["values"]) == set(params["batch_norm"]["values"]) == {True, False}
    assert set(params["dropout"]["values"]) == {0.2, 0.3}
    for key in ["base_filters", "kernel_size", "dense_neurons", "lr", "batch_size", "epochs", "weight_decay"]:
        assert key in params


def test_the_sweep_space_is_fair():
    """Issue 9: every organisation keeps >= 10 CONV5 channels (Question 4) and 512 -> 32 is in the space."""
    params = sweep.SWEEP_CONFIG["parameters"]
    spaces = [sweep.configs_from_params({**TINY, "base_filters": base, "organisation": organisation})[0].filters
              for base in params["base_filters"]["values"] for organisation in params["organisation"]["values"]]
    assert min(filters[-1] for filters in spaces) >= 10
    assert (512, 256, 128, 64, 32) in spaces and (32, 64, 128, 256, 512) in spaces


def test_sweep_config_narrows_without_touching_the_default():
    default = json.loads(json.dumps(sweep.SWEEP_CONFIG))
    config = sweep.sweep_config("random", input_size=48, epochs=2, base_filters=[8, 16], activation="relu")
    assert config["method"] == "random"
    assert config["parameters"]["input_size"] == {"value": 48}
    assert config["parameters"]["epochs"] == {"value": 2}
    assert config["parameters"]["base_filters"] == {"values": [8, 16]}
    assert config["parameters"]["activation"] == {"value": "relu"}
    assert sweep.SWEEP_CONFIG == default
    grid = sweep.sweep_config("grid")
    assert all("distribution" not in spec for spec in grid["parameters"].values())


def test_early_termination_can_be_shortened_or_switched_off():
    short = sweep.sweep_config("bayes", 32, 3, early_terminate=SHORT_HYPERBAND)
    assert short["early_terminate"] == {"type": "hyperband", "min_iter": 1, "eta": 2}
    assert "early_terminate" not in sweep.sweep_config(early_terminate=False)
    assert sweep.SWEEP_CONFIG["early_terminate"]["min_iter"] == 3  # the default is untouched
    with pytest.raises(UserError, match="eta"):
        sweep.sweep_config(early_terminate={"eta": 1})


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


# ------------------------------------------------------------------------------------------------
# Real offline sweeps: records, failures
# ------------------------------------------------------------------------------------------------
def test_offline_sweep_writes_the_runs_table(root, tmp_path):
    path = tmp_path / "runs.json"
    config = tiny_config("bayes", activation=["relu", "silu"])
    result = sweep.run_sweep(root, 2, config=config, path=path)
    assert result["mode"] == "offline" and result["method"] == "bayes" and result["sweep_id"].startswith("local-")
    assert len(result["runs"]) == 2
    for run in result["runs"]:
        assert run["state"] == "finished" and run["error"] is None
        assert 0 <= run["val_acc"] <= 1 and run["best_epoch"] == 1
        assert len(run["epoch_seconds"]) == 1 and run["params"] > 0 and run["macs"] > 0
        assert run["created"] and run["name"]
        assert run["config"]["activation"] in ("relu", "silu") and run["config"]["filters"] == [8] * 5
        assert run["sweep_id"] == result["sweep_id"] and run["mode"] == "quick"
        assert data.same_data(run["data"], data.data_fingerprint(root)) and run["data"]["demo"]
        assert (run["input_size"], run["epochs_asked"], run["epochs_run"]) == (32, 1, 1)
    saved = json.loads(path.read_text())
    assert saved["runs"] == json.loads(json.dumps(result["runs"]))
    assert saved["sweeps"][result["sweep_id"]]["config"] == config
    cnn, tcfg, source = sweep.best_config(root, path=path)
    best = max(result["runs"], key=lambda r: r["val_acc"])
    assert cnn.activation == best["config"]["activation"] and source.startswith("sweep run")


def test_a_diverged_run_fails_alone(root, tmp_path):
    """A real divergence (SGD at lr 10 with weight decay 1, no BatchNorm: a NaN loss) is recorded as failed; the
    next grid run trains normally. (W&B's config turns 10.0 into 10, which the grid engine did not recognise as
    the value it had handed out, so it drew lr 10 again.)"""
    config = tiny_config("grid", lr=[10.0, 2e-3], weight_decay=1.0, optimizer="sgd", batch_norm=False)
    result = sweep.run_sweep(root, 2, config=config, path=tmp_path / "runs.json")
    first, second = result["runs"]
    assert first["state"] == "failed" and first["error"].startswith("diverged") and first["val_acc"] is None
    assert second["state"] == "finished" and second["val_acc"] > 0
    assert runs_frame.runs_table(result["runs"])["state"].tolist() == ["failed", "finished"]


@pytest.mark.parametrize("failure", [
    lambda big: torch.OutOfMemoryError(f"CUDA out of memory. Tried to allocate {big.numel()} bytes"),
    # The CPU's allocator raises a plain RuntimeError, which used to end the whole sweep (issue 19).
    lambda big: RuntimeError("[enforce fail at alloc_cpu.cpp:121] data. DefaultCPUAllocator: not enough memory: "
                             f"you tried to allocate {big.numel()} bytes."),
    lambda big: MemoryError()])
def test_out_of_memory_is_recorded_and_memory_released(failure, root, tmp_path, monkeypatch):
    real_train, calls, released = sweep.train, [], []

    def train_or_oom(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            big = torch.empty(1000)  # a tensor the failed run's frames hold until they are gone
            raise failure(big)
        return real_train(*args, **kwargs)

    monkeypatch.setattr(sweep, "train", train_or_oom)
    monkeypatch.setattr(sweep, "release_memory", lambda: (released.append(1), train_lib.release_memory()))
    result = sweep.run_sweep(root, 2, config=tiny_config("grid", batch_size=[64, 32]), path=tmp_path / "r.json")
    first, second = result["runs"]
    assert first["state"] == "failed" and "out of memory" in first["error"]
    assert second["state"] == "finished" and second["val_acc"] > 0
    assert len(released) == 2


def test_other_errors_propagate_but_keep_finished_runs(root, tmp_path, monkeypatch):
    """A bug in run 2 stops the sweep, but run 1, finished before it, is already in the table."""
    path = tmp_path / "runs.json"
    fake, calls = planted_train(lambda tcfg, epoch: 0.5), []

    def bug_in_second_run(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyError("a real bug")
        return fake(*args, **kwargs)

    monkeypatch.setattr(sweep, "train", bug_in_second_run)
    with pytest.raises(KeyError):
        sweep.run_sweep(root, 3, config=tiny_config("grid", lr=[1e-3, 2e-3, 3e-3]), path=path)
    runs = json.loads(path.read_text())["runs"]
    assert [run["config"]["lr"] for run in runs] == [1e-3] and runs[0]["state"] == "finished"


# ------------------------------------------------------------------------------------------------
# Nothing lost, nothing stale
# ------------------------------------------------------------------------------------------------
def test_every_sweep_is_kept_and_count_zero_changes_nothing(root, tmp_path, monkeypatch):
    """Issue 8: a second sweep used to overwrite the first one's table, and --count 0 wrote "runs": []."""
    monkeypatch.setattr(sweep, "train", planted_train(lambda tcfg, epoch: 0.5))
    path = tmp_path / "runs.json"
    first = sweep.run_sweep(root, 1, config=tiny_config(), path=path)
    second = sweep.run_sweep(root, 1, config=tiny_config(), path=path)
    assert first["sweep_id"] != second["sweep_id"]
    table = json.loads(path.read_text())
    assert [run["sweep_id"] for run in table["runs"]] == [first["sweep_id"], second["sweep_id"]]
    assert len(second["runs"]) == 1  # a sweep's result holds its own runs only
    before = path.read_bytes()
    assert sweep.run_sweep(root, 0, path=path)["runs"] == []
    assert sweep.run_sweep(root, 0, sweep_id=first["sweep_id"], path=path)["runs"] == first["runs"]
    assert path.read_bytes() == before


def test_continue_a_local_sweep_from_the_command_line(root, tmp_path):
    """The printed `cd <repo> && python -m shared sweep --sweep-id local-... --count N` continues offline, pasted
    into a shell in another folder (a Colab/Kaggle `!` cell runs in /content or /kaggle/working); --json holds
    every run so far."""
    path = tmp_path / "runs.json"
    first = sweep.run_sweep(root, 1, config=tiny_config("grid", activation=["relu", "silu"]), path=path)
    command = sweep.agent_command(first["sweep_id"], 1, data=root, path=path)
    elsewhere = tmp_path / "working"
    elsewhere.mkdir()
    env = {**os.environ, "INAT_OUTPUTS": str(tmp_path), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env.pop("PYTHONPATH", None)
    subprocess.run(f"{command} --json {tmp_path / 'out.json'}", shell=True, check=True, cwd=elsewhere, env=env,
                   capture_output=True, text=True)
    out = json.loads((tmp_path / "out.json").read_text())
    assert out["sweep_id"] == first["sweep_id"] and len(out["runs"]) == 2
    assert [run["config"]["activation"] for run in out["runs"]] == ["relu", "silu"]  # the grid went on
    assert out["runs"] == json.loads(path.read_text())["runs"]


def test_best_config_uses_only_runs_on_the_data_in_use(root, tmp_path, capsys):
    """Issue 8: the demo sweep's digits winner would have been retrained on the real data."""
    path = tmp_path / "runs.json"
    elsewhere = {"root": "/kaggle/input/inaturalist_12K", "files": "0123456789abcdef", "demo": False}
    records = [planted_record("local-a", [0.6], root, name="here-good"),
               planted_record("local-a", [0.4], root, name="here-worse"),
               planted_record("local-a", [0.99], root, name="other-data", data=elsewhere),
               planted_record("local-b", [0.98], root, name="demo-mode", mode="demo"),
               planted_record("local-b", [0.97], root, name="stopped", state="stopped"),
               {**planted_record("local-old", [0.95], name="legacy"), "data": None}]
    for record in records:
        sweep.append_run(record, path)
    capsys.readouterr()
    cnn, tcfg, source = sweep.best_config(root, path=path)
    assert "here-good" in source
    line = capsys.readouterr().out.strip()
    assert line.count("\n") == 0 and "1 run made on other data" in line and "in demo mode" in line
    assert "with no data record" in line
    assert [r["name"] for r in sweep.load_runs(path=path, root=root)] == ["here-good", "here-worse", "stopped"]
    assert [r["name"] for r in sweep.load_runs("local-b", path=path, root=root)] == ["stopped"]
    assert len(sweep.load_runs(path=path)) == 6  # no root: every run, unfiltered
    assert sweep.best_config(root, sweep_id="local-b", path=path)[2] == "default"  # no finished run on this data
    with pytest.raises(UserError, match="not a data folder"):
        sweep.best_config("abc123", path=path)  # the old positional call best_config(SWEEP_ID)


# ------------------------------------------------------------------------------------------------
# Several agents on one table
# ------------------------------------------------------------------------------------------------
def test_one_agent_per_gpu_each_with_its_own_device_and_table(root, tmp_path, monkeypatch):
    """Without GPUs here: the subprocess commands, and a merge that reads only this sweep's runs.

    A stale 0.99 run of an earlier sweep in the same table must not become this sweep's best, and the
    agent killed after its first run keeps that run.
    """
    path = tmp_path / "runs.json"
    sweep.append_run(planted_record("abc000", [0.99], root, name="stale"), path)
    launched = []

    class FakeAgent:
        def __init__(self, command, env, cwd, stdout):
            gpu = env["CUDA_VISIBLE_DEVICES"]
            launched.append((command, gpu))
            table = command[command.index("--runs") + 1]
            sweep_id = command[command.index("--sweep-id") + 1]
            sweep.append_run(planted_record(sweep_id, [0.5 + int(gpu) / 10], root, name=f"gpu{gpu}"), table)
            self.returncode = -9 if gpu == "1" else 0  # the agent on GPU 1 was killed after one run

        def wait(self):
            return self.returncode

    monkeypatch.setattr(sweep.subprocess, "Popen", FakeAgent)
    result = sweep.run_agents_on_gpus(root, "abc123", count=5, gpus=2, input_size=64, path=path)
    assert [gpu for _, gpu in launched] == ["0", "1"]
    counts = [command[command.index("--count") + 1] for command, _ in launched]
    assert counts == ["3", "2"]
    assert all(["--sweep-id", "abc123"] == c[c.index("--sweep-id"):c.index("--sweep-id") + 2] for c, _ in launched)
    assert [r["name"] for r in result["runs"]] == ["gpu0", "gpu1"] and result["sweep_id"] == "abc123"
    assert "gpu1" in sweep.best_config(root, sweep_id="abc123", path=path)[2]
    assert len(json.loads(path.read_text())["runs"]) == 3  # the stale run is kept, only not mixed in
    assert sweep.agent_command("abc123", 4, 64) == (f"cd {REPO_ROOT} && python -m shared sweep --sweep-id abc123 "
                                                    "--count 4 --input-size 64")


def test_two_offline_agents_share_one_local_sweep_without_a_key(root, tmp_path):
    """Issue 19: with two GPUs and no W&B key, Part-A/02 starts one agent per GPU on the local sweep. Two real
    agent processes here (CUDA_VISIBLE_DEVICES means nothing on a CPU) claim different draws of one sweep."""
    path = tmp_path / "runs.json"
    config = tiny_config("grid", activation=["relu", "silu"])
    result = sweep.run_agents_on_gpus(root, None, count=2, gpus=2, config=config, path=path)
    assert result["sweep_id"].startswith("local-") and len(result["runs"]) == 2
    assert sorted(run["config"]["activation"] for run in result["runs"]) == ["relu", "silu"]


# ------------------------------------------------------------------------------------------------
# Early termination
# ------------------------------------------------------------------------------------------------
def test_offline_hyperband_stops_a_real_run_and_records_it(root, tmp_path):
    """A real run that learns nothing (lr 1e-7) in a sweep of good planted runs is stopped after epoch 2."""
    path = tmp_path / "runs.json"
    config = tiny_config("random", early_terminate=SHORT_HYPERBAND, lr=1e-7, epochs=4)
    good = [planted_record("", [0.6, 0.9, 0.95, 0.97], root, name=f"good{i}") for i in range(2)]
    sweep_id = plant_sweep(path, root, config, good)
    result = sweep.run_sweep(root, 1, sweep_id=sweep_id, path=path)
    weak = result["runs"][-1]
    assert weak["state"] == "stopped" and weak["stop_reason"].startswith("hyperband")
    assert (weak["epochs_asked"], weak["epochs_run"]) == (4, 2) and len(weak["history"]) == 2
    assert weak["val_acc"] == max(row["val_acc"] for row in weak["history"]) < 0.6
    summary = sweep_controller.early_termination_summary(result["runs"])
    assert summary["stopped"] == 1 and summary["epochs_saved"] == 2 and summary["epochs_asked"] == 12
    mean_epoch = sum(weak["epoch_seconds"]) / 2
    assert summary["seconds_saved"] == pytest.approx(2 * mean_epoch)


def test_offline_sweep_stops_weak_runs_as_it_goes(root, tmp_path, monkeypatch):
    """Planted curves through the whole path: the weak config is stopped, the strong ones finish."""
    monkeypatch.setattr(sweep, "train", planted_train(lambda tcfg, epoch: min(0.95, 100 * tcfg.lr * epoch)))
    config = tiny_config("grid", early_terminate=SHORT_HYPERBAND, lr=[3e-3, 2e-3, 1e-4], epochs=4)
    runs = sweep.run_sweep(root, 3, config=config, path=tmp_path / "runs.json")["runs"]
    assert [(run["config"]["lr"], run["state"], run["epochs_run"]) for run in runs] == [
        (3e-3, "finished", 4), (2e-3, "finished", 4), (1e-4, "stopped", 2)]


def test_early_termination_summary_counts_epochs_and_seconds():
    runs = [planted_record("s", [0.5, 0.6, 0.7, 0.8]),
            planted_record("s", [0.2, 0.25], state="stopped", epochs_asked=4, epoch_seconds=[3.0, 5.0]),
            planted_record("s", [0.3], state="stopped", epochs_asked=10),
            planted_record("s", [0.5, 0.5], epochs_asked=4)]  # ended by its own patience: not hyperband's saving
    summary = sweep_controller.early_termination_summary(runs)
    assert summary == {"runs": 4, "stopped": 2, "epochs_asked": 22, "epochs_run": 9, "epochs_saved": 11,
                       "seconds_spent": 8.0 + 8.0 + 2.0 + 4.0, "seconds_saved": 2 * 4.0 + 9 * 2.0,
                       "fraction_of_time_saved": pytest.approx(26 / 48)}


def test_a_run_the_wandb_agent_stops_is_recorded_as_stopped(root, monkeypatch):
    """Online, W&B's agent stops a run by raising a bare Exception in the run's thread (pyagent._terminate_thread)."""
    from wandb.agents import pyagent

    monkeypatch.setattr(pyagent, "_INSTANCES", 1)  # as inside wandb.agent
    first_epoch, records = threading.Event(), []
    params = {**TINY, "epochs": 30}
    real_train = sweep.train

    def train_and_signal(*args, on_epoch, **kwargs):
        return real_train(*args, on_epoch=lambda row: on_epoch(row) or first_epoch.set(), **kwargs)

    monkeypatch.setattr(sweep, "train", train_and_signal)
    worker = threading.Thread(target=lambda: records.append(sweep.train_one(params, root)))
    worker.start()
    first_epoch.wait(timeout=120)
    pyagent._terminate_thread(worker)  # what the agent does on the server's "stop" command
    worker.join(timeout=120)
    record, = records
    assert record["state"] == "stopped" and "W&B sweep controller" in record["stop_reason"]
    assert 1 <= record["epochs_run"] < 30 and record["val_acc"] == max(r["val_acc"] for r in record["history"])
    monkeypatch.setattr(pyagent, "_INSTANCES", 0)  # outside an agent a bare Exception is a bug: it propagates

    def bare_exception(*args, **kwargs):
        raise Exception()

    monkeypatch.setattr(sweep, "train", bare_exception)
    with pytest.raises(Exception):
        sweep.train_one(TINY, root)


# ------------------------------------------------------------------------------------------------
# Plots
# ------------------------------------------------------------------------------------------------
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

    table = runs_frame.runs_table(fake_runs())
    assert len(table) == 5 and table["state"].tolist().count("failed") == 1
    assert set(runs_frame.varied_keys(table)) == {"activation", "batch_norm", "lr", "organisation"}
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


def test_a_stop_at_the_last_epoch_is_a_finished_run(root, monkeypatch):
    """Hyperband answering 'stop' after the final epoch saves nothing: the run is finished, not stopped."""
    monkeypatch.setattr(sweep, "train", planted_train(lambda tcfg, epoch: 0.1))
    always = lambda history: "hyperband: planted"  # noqa: E731
    last = sweep.train_one({**TINY, "epochs": 3}, root, should_stop=lambda h: always(h) if len(h) >= 3 else None)
    assert (last["state"], last["epochs_run"]) == ("finished", 3) and "stop_reason" not in last
    early = sweep.train_one({**TINY, "epochs": 3}, root, should_stop=always)
    assert (early["state"], early["epochs_run"]) == ("stopped", 1) and early["wall_seconds"] >= 0


# ------------------------------------------------------------------------------------------------
# Issue 14: NaN never best, refusals before any work, the sweep's best model
# ------------------------------------------------------------------------------------------------
def test_best_config_never_picks_a_nan_or_infinite_run(root, tmp_path):
    path = tmp_path / "runs.json"
    for name, accuracy in [("nan", float("nan")), ("inf", float("inf")), ("real", 0.5), ("minus-inf", -float("inf"))]:
        sweep.append_run(planted_record("local-a", [0.1], root, name=name, val_acc=accuracy), path)
    assert "real" in sweep.best_config(root, path=path)[2]


def test_zero_epochs_or_input_size_are_refused_as_train_refuses_them(root, tmp_path):
    """Issue 14: 0 was taken as "not given", so `sweep --epochs 0 --input-size 0` ran the full-size default sweep."""
    with pytest.raises(UserError, match=r"^epochs must be >= 1, got 0$"):
        sweep.sweep_config(epochs=0)
    with pytest.raises(UserError, match=r"^input_size must be >= 32 \(five 2x2 pools\) and <= 1024 \(the photos are about 800x600\), got 0$"):
        sweep.sweep_config(input_size=0)
    path = tmp_path / "runs.json"
    for settings in (dict(epochs=0), dict(input_size=0), dict(epochs=-3)):
        with pytest.raises(UserError, match="must be >= "):
            sweep.run_sweep(root, 1, path=path, **settings)
    sweep_id = plant_sweep(path, root, tiny_config())
    with pytest.raises(UserError, match="epochs must be >= 1"):  # continuing: refused, not ignored
        sweep.run_sweep(root, 1, sweep_id=sweep_id, epochs=0, path=path)
    assert sweep.sweep_config(epochs=None)["parameters"]["epochs"] == sweep.SWEEP_CONFIG["parameters"]["epochs"]
    assert "--epochs 0" in sweep.agent_command("local-x", 1, epochs=0)  # given is given, even when wrong


def test_the_json_result_may_not_replace_the_runs_table(root, tmp_path, monkeypatch):
    """Issue 14: `sweep --json` pointed at the runs table replaced every sweep's runs with one sweep's payload."""
    monkeypatch.setattr(sweep, "train", planted_train(lambda tcfg, epoch: 0.5))
    path = tmp_path / "runs.json"
    sweep.run_sweep(root, 1, config=tiny_config(), path=path)
    before = path.read_bytes()
    with pytest.raises(UserError, match="--json .* is also the runs table"):
        sweep.run_sweep(root, 1, config=tiny_config(), path=path, json_path=tmp_path / "." / "runs.json")
    assert path.read_bytes() == before
    result = sweep.run_sweep(root, 1, config=tiny_config(), path=path, json_path=tmp_path / "out.json")
    assert json.loads((tmp_path / "out.json").read_text()) == json.loads(json.dumps(result))


def planted_model_train(accuracy):
    """planted_train whose result carries a real model with every weight set to the run's lr (to tell them apart)."""
    fake = planted_train(accuracy)

    def fake_train(cnn, root, tcfg, **kwargs):
        result = fake(cnn, root, tcfg, **kwargs)
        result.model = CNN(cnn)
        for parameter in result.model.parameters():
            parameter.data.fill_(tcfg.lr)
        return result
    return fake_train


def test_the_sweep_keeps_its_best_model(root, tmp_path, monkeypatch):
    """Issue 14 (Part-A/03, Question 4): the best model *from the sweep*; saved when a run beats the sweep's
    earlier finished runs, never replaced by a worse run, a NaN run or another sweep's run."""
    path = tmp_path / "runs.json"
    scores = {1e-3: 0.6, 3e-3: 0.8, 2e-3: 0.7, 4e-3: float("nan")}
    monkeypatch.setattr(sweep, "train", planted_model_train(lambda tcfg, epoch: scores[tcfg.lr]))
    config = tiny_config("grid", lr=[1e-3, 3e-3])
    first = sweep.run_sweep(root, 1, config=config, path=path)
    sweep_id = first["sweep_id"]
    assert sweep.best_run_checkpoint(sweep_id, path) == tmp_path / "sweep_checkpoints" / f"{sweep_id}.pt"
    result = sweep.run_sweep(root, 1, sweep_id=sweep_id, path=path)
    checkpoint = sweep.best_run_checkpoint(sweep_id, path)
    model, saved = train_lib.load_checkpoint(checkpoint)
    best = max(result["runs"], key=lambda run: run["val_acc"])
    assert best["config"]["lr"] == 3e-3 and result["best_checkpoint"] == str(checkpoint)
    assert all((parameter == 3e-3).all() for parameter in model.parameters())
    assert (saved["run_name"], saved["sweep_id"], saved["val_acc"], saved["mode"]) == (
        best["name"], sweep_id, 0.8, run_mode(True))
    assert saved["run_config"] == best["config"] and data.same_data(saved["data"], data.data_fingerprint(root))
    worse = sweep.run_sweep(root, 2, config=tiny_config("grid", lr=[2e-3, 4e-3]), path=path, sweep_id="new")
    assert [run["val_acc"] == run["val_acc"] for run in worse["runs"]] == [True, False]  # 0.7, then NaN
    assert sweep.best_run_checkpoint(worse["sweep_id"], path) != checkpoint  # its own file
    assert train_lib.load_checkpoint(checkpoint)[1]["run_name"] == best["name"]  # untouched by the other sweep
    _, other = train_lib.load_checkpoint(sweep.best_run_checkpoint(worse["sweep_id"], path))
    assert other["val_acc"] == 0.7  # the NaN run came later and was not saved over it
    assert sweep.best_run_checkpoint("local-never-ran", path) is None


def test_best_saved_model_is_the_best_runs_own_weights_or_none_with_a_reason(root, tmp_path, monkeypatch):
    """Part-A/03 tests, and Part-A/04 looks inside, the model that `best_saved_model` returns: the best finished
    run's saved weights, checked to be that run's; otherwise None and one line saying why."""
    path = tmp_path / "runs.json"
    scores = {1e-3: 0.6, 3e-3: 0.8}
    monkeypatch.setattr(sweep, "train", planted_model_train(lambda tcfg, epoch: scores[tcfg.lr]))
    model, run, checkpoint, found = sweep.best_saved_model(root, path=path)
    assert (model, run, checkpoint) == (None, None, None) and "No finished sweep run" in found
    assert sweep.config_of_run(run, path) == (sweep.DEFAULT_CNN, sweep.DEFAULT_TRAIN, "default")
    result = sweep.run_sweep(root, 2, config=tiny_config("grid", lr=[1e-3, 3e-3]), path=path)
    model, run, checkpoint, found = sweep.best_saved_model(root, path=path)
    assert run["val_acc"] == 0.8 and checkpoint == sweep.best_run_checkpoint(result["sweep_id"], path)
    assert all((parameter == 3e-3).all() for parameter in model.parameters()) and str(checkpoint) in found
    assert sweep.config_of_run(run, path) == sweep.best_config(root, path=path)  # Part-A/03 reads the runs once
    good = checkpoint.read_bytes()
    saved = torch.load(checkpoint, weights_only=True)
    torch.save({**saved, "run_name": "someone-else"}, checkpoint)  # a file that holds another run
    model, run, checkpoint, found = sweep.best_saved_model(root, path=path)
    assert model is None and checkpoint is None and "not the best run" in found and run["val_acc"] == 0.8
    checkpoint = sweep.best_run_checkpoint(result["sweep_id"], path)
    checkpoint.write_bytes(b"damaged")
    model, _, _, found = sweep.best_saved_model(root, path=path)
    assert model is None and found.startswith("Could not read")
    # No weights beside the table: an earlier session's, where `tracking.handoff` finds them (here the outputs
    # folder's), are used. They were looked for in sweep_checkpoints/sweep_checkpoints/, so never found.
    checkpoint.unlink()
    elsewhere = tmp_path / "outputs" / "sweep_checkpoints" / checkpoint.name
    elsewhere.parent.mkdir(parents=True)
    elsewhere.write_bytes(good)
    monkeypatch.setattr(sweep.tracking, "OUTPUT_DIR", tmp_path / "outputs")
    model, run, checkpoint, found = sweep.best_saved_model(root, path=path)
    assert checkpoint == elsewhere and run["val_acc"] == 0.8 and model is not None


@pytest.mark.parametrize("message", ["DefaultCPUAllocator: can't allocate memory: you tried to allocate 9 bytes",
                                     "[enforce fail at alloc_cpu.cpp:117] not enough memory: you tried to allocate 9"])
def test_cpu_allocation_failure_is_a_failed_run(root, tmp_path, monkeypatch, message):
    """The CPU's allocator raises a plain RuntimeError, not torch.OutOfMemoryError: a failed run all the same,
    and the sweep goes on; any other RuntimeError is still a bug that propagates."""
    real_train, calls = sweep.train, []

    def train_or_fail(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError(message)
        return real_train(*args, **kwargs)

    monkeypatch.setattr(sweep, "train", train_or_fail)
    result = sweep.run_sweep(root, 2, config=tiny_config("grid", batch_size=[64, 32]), path=tmp_path / "r.json")
    first, second = result["runs"]
    assert first["state"] == "failed" and first["error"].startswith("out of memory: ")
    assert second["state"] == "finished" and second["val_acc"] > 0
    monkeypatch.setattr(sweep, "train", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("a real bug")))
    with pytest.raises(RuntimeError, match="a real bug"):
        sweep.train_one(TINY, root)


def test_full_sweep_every_config_fits_and_costs_at_most_80_pflop():
    """Issue 19: 30 runs drawn from SWEEP_CONFIG, every epoch counted, at most 80 PFLOP by count_macs (seeded
    draws; the old 224 px, 10-15 epoch space costs 291 at this seed)."""
    from shared import estimate

    assert estimate.sweep_pflop(sweep.SWEEP_CONFIG, 30, seed=0) <= 80
    wide = sweep.sweep_config("bayes", 224, 15)
    assert estimate.sweep_pflop(wide, 30, seed=0) > 80  # the bound can fail: the old design breaks it

def test_offline_runs_carry_their_runs_table_name_and_sweep_id(root, tmp_path, monkeypatch):
    """After `wandb sync`, the report finds a run by its sweep (group) and its runs-table name: both must be in
    the offline run's own file (wandb 0.31 ships no reader for it; its run record holds them as plain strings)."""
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    result = sweep.run_sweep(root, 2, config=tiny_config("grid", activation=["relu", "silu"]), path=tmp_path / "r.json")
    logged = [file.read_bytes() for file in tmp_path.rglob("offline-run-*/*.wandb")]
    assert len(logged) == 2
    for run in result["runs"]:
        assert sum(run["name"].encode() in data and result["sweep_id"].encode() in data for data in logged) == 1
