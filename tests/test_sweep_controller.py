"""The sweep controller (shared/sweep_controller.py): new sweeps draw new configs, a continued sweep gives the
engine its history, two agents of one sweep never draw the same config, hyperband's rule, configs refused in one
line before a sweep is registered, and which sweep runs when no id is given (an unfinished one goes on)."""
import json
import subprocess
import sys

import numpy as np
import pytest

from shared import data, runs_table, sweep, sweep_controller
from shared.runtime import REPO_ROOT, UserError
from test_sweep import SHORT_HYPERBAND, plant_sweep, planted_record, planted_train, tiny_config


@pytest.fixture(scope="module")
def root():
    return data.find_data()


# ------------------------------------------------------------------------------------------------
# Drawing configs
# ------------------------------------------------------------------------------------------------
def test_new_sweeps_draw_new_configs(root, tmp_path, monkeypatch):
    """The engine was re-seeded with 0 for every sweep, so every new bayes sweep began with the same config."""
    monkeypatch.setattr(sweep, "train", planted_train(lambda tcfg, epoch: 0.5))
    config = tiny_config("bayes", lr={"distribution": "log_uniform_values", "min": 1e-4, "max": 1e-2})
    lrs = [sweep.run_sweep(root, 1, config=config, path=tmp_path / "runs.json")["runs"][0]["config"]["lr"]
           for _ in range(2)]
    assert lrs[0] != lrs[1]
    state = np.random.get_state()[1].copy()
    sweep.run_sweep(root, 1, config=config, path=tmp_path / "runs.json")
    assert (np.random.get_state()[1] == state).all()  # the engine's seeding leaves the caller's generator alone


def test_a_local_sweep_continues_with_its_history(root, tmp_path, monkeypatch):
    """Issue 8: offline there was no way to continue a sweep; the engine must see the runs so far."""
    monkeypatch.setattr(sweep, "train", planted_train(lambda tcfg, epoch: min(0.9, 100 * tcfg.lr)))
    engine, seen = sweep_controller._engine(), []
    real_next_run = engine.next_run

    def spy(config, runs, *args, **kwargs):
        seen.append([(run.state, run.config["lr"]["value"], run.summary_metrics) for run in runs])
        return real_next_run(config, runs, *args, **kwargs)

    monkeypatch.setattr(engine, "next_run", spy)
    path = tmp_path / "runs.json"
    config = tiny_config("random", lr={"distribution": "log_uniform_values", "min": 1e-4, "max": 1e-2})
    first = sweep.run_sweep(root, 2, config=config, path=path)
    again = sweep.run_sweep(root, 1, sweep_id=first["sweep_id"], path=path)
    assert again["sweep_id"] == first["sweep_id"] and again["runs"][:2] == first["runs"]
    assert [len(history) for history in seen] == [0, 1, 2]
    lr_so_far = [run["config"]["lr"] for run in first["runs"]]
    assert [lr for _, lr, _ in seen[2]] == lr_so_far
    assert seen[2][0][2] == {"val_acc": first["runs"][0]["val_acc"]}  # bayes would see the results, too
    assert len({run["config"]["lr"] for run in again["runs"]}) == 3  # no repeated config
    assert sweep.agent_command(first["sweep_id"], 5).endswith(f"&& python -m shared sweep --sweep-id {first['sweep_id']} --count 5")


AGENT = """import sys, time
from pathlib import Path
sys.path.insert(0, "tests")
from shared import data, sweep
from test_sweep import planted_train
name, sweep_id, ready, table = sys.argv[1], sys.argv[2], Path(sys.argv[3]), sys.argv[4]
fake = planted_train(lambda tcfg, epoch: 0.5)

def train_when_both_have_drawn(*args, **kwargs):
    (ready / name).touch()
    deadline = time.time() + 120
    while len(list(ready.iterdir())) < 2 and time.time() < deadline:
        time.sleep(0.05)
    return fake(*args, **kwargs)

sweep.train = train_when_both_have_drawn
sweep.run_sweep(data.find_data(), 1, sweep_id=sweep_id, path=table)
"""


def test_two_offline_agents_of_one_sweep_draw_different_configs(root, tmp_path):
    """Issue 14: `--sweep-id SID` twice at once drew the same config (the engine was seeded from the sweep id and
    the run count, the same for both). Neither agent trains until both have drawn, so the draws really overlap."""
    path = tmp_path / "runs.json"
    sweep_id = plant_sweep(path, root, tiny_config("random", lr={"distribution": "log_uniform_values",
                                                                  "min": 1e-4, "max": 1e-2}))
    (tmp_path / "ready").mkdir()
    agents = [subprocess.Popen([sys.executable, "-c", AGENT, f"agent{n}", sweep_id, str(tmp_path / "ready"), str(path)],
                               cwd=REPO_ROOT, stdout=subprocess.DEVNULL) for n in range(2)]
    assert [agent.wait(timeout=600) for agent in agents] == [0, 0]
    runs = sweep.load_runs(sweep_id, path=path)
    assert len(runs) == 2
    assert runs[0]["config"]["lr"] != runs[1]["config"]["lr"] and runs[0]["name"] != runs[1]["name"]


# ------------------------------------------------------------------------------------------------
# Which sweep runs: continued by id, an unfinished one, or a new one
# ------------------------------------------------------------------------------------------------
def lost_in_second_run():
    """A planted train whose session is lost (KeyboardInterrupt) in its second run."""
    fake, calls = planted_train(lambda tcfg, epoch: 0.5), []

    def train(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return fake(*args, **kwargs)
    return train


def test_continuing_refuses_what_would_mix_results(root, tmp_path):
    path = tmp_path / "runs.json"
    sweep_id = plant_sweep(path, root, tiny_config())
    before = path.read_bytes()
    with pytest.raises(UserError, match="no local sweep local-nope"):
        sweep.run_sweep(root, 1, sweep_id="local-nope", path=path)
    with pytest.raises(UserError, match="W&B server"):
        sweep.run_sweep(root, 1, sweep_id="abc123", path=path)  # W&B is offline in the tests
    with pytest.raises(UserError, match="epochs"):
        sweep.run_sweep(root, 1, sweep_id=sweep_id, epochs=7, path=path)
    with pytest.raises(UserError, match="another sweep config"):
        sweep.run_sweep(root, 1, sweep_id=sweep_id, config=tiny_config(lr=1e-2), path=path)
    other = plant_sweep(path, root, tiny_config())
    table = json.loads(path.read_text())
    table["sweeps"][other]["data"] = {"root": "/elsewhere", "files": "0123456789abcdef", "demo": False}
    path.write_text(json.dumps(table))
    with pytest.raises(UserError, match="other data"):
        sweep.run_sweep(root, 1, sweep_id=other, path=path)
    assert json.loads(path.read_text())["runs"] == json.loads(before)["runs"] == []


def test_an_unfinished_sweep_is_continued_unless_a_new_one_is_asked(root, tmp_path, monkeypatch, capsys):
    """Issue 13 section 5: SWEEP_ID = None after a lost session started a second sweep beside the unfinished one."""
    path = tmp_path / "runs.json"
    monkeypatch.setattr(sweep, "train", lost_in_second_run())
    config = tiny_config("random", lr={"distribution": "log_uniform_values", "min": 1e-4, "max": 1e-2})
    with pytest.raises(KeyboardInterrupt):
        sweep.run_sweep(root, 3, config=config, path=path)
    first_id = json.loads(path.read_text())["runs"][0]["sweep_id"]
    capsys.readouterr()
    again = sweep.run_sweep(root, 3, config=config, path=path)
    said = [line for line in capsys.readouterr().out.splitlines() if "the unfinished sweep" in line]
    assert again["sweep_id"] == first_id and len(again["runs"]) == 3
    assert len(said) == 1 and first_id in said[0] and "1 of its 3 runs" in said[0] and "2 more" in said[0]
    assert len({run["config"]["lr"] for run in again["runs"]}) == 3
    assert sweep.run_sweep(root, 1, config=config, path=path)["sweep_id"] != first_id  # finished: a new one
    monkeypatch.setattr(sweep, "train", lost_in_second_run())
    with pytest.raises(KeyboardInterrupt):
        sweep.run_sweep(root, 2, config=config, path=path)
    unfinished = json.loads(path.read_text())["runs"][-1]["sweep_id"]
    assert sweep.run_sweep(root, 1, config=config, path=path, sweep_id="new")["sweep_id"] != unfinished
    assert sweep.run_sweep(root, 1, config=tiny_config(), path=path)["sweep_id"] != unfinished  # another config
    assert sweep.run_sweep(root, 1, config=config, path=path)["sweep_id"] == unfinished


def test_continuing_adds_at_most_count_runs_and_online_never_continues_a_local_sweep(root, tmp_path, monkeypatch,
                                                                                    capsys):
    """`--count 2` on a 1-of-5 unfinished sweep used to run 4; online it went on with the offline sweep."""
    path = tmp_path / "runs.json"
    monkeypatch.setattr(sweep, "train", lost_in_second_run())
    config = tiny_config("random", lr={"distribution": "log_uniform_values", "min": 1e-4, "max": 1e-2})
    with pytest.raises(KeyboardInterrupt):
        sweep.run_sweep(root, 5, config=config, path=path)
    first = json.loads(path.read_text())["runs"][0]["sweep_id"]
    again = sweep.run_sweep(root, 2, config=config, path=path)
    assert again["sweep_id"] == first and len(again["runs"]) == 3  # 1 + the 2 asked, not 1 + 4
    sweep_record = json.loads(path.read_text())["sweeps"][first]
    fingerprint = data.data_fingerprint(root)
    assert runs_table.unfinished_sweep(path, sweep_record["config"], fingerprint, sweep_record["mode"], online=False)
    assert runs_table.unfinished_sweep(path, sweep_record["config"], fingerprint, sweep_record["mode"],
                                       online=True) is None


# ------------------------------------------------------------------------------------------------
# Configs refused in one line before any work
# ------------------------------------------------------------------------------------------------
BAD_NEW_CONFIGS = {
    "input size 16": lambda: {**tiny_config(), "parameters": {**tiny_config()["parameters"], "input_size": {"value": 16}}},
    "a dropout no run accepts": lambda: tiny_config(dropout=[0.2, 1.5]),
    "hyperband eta 1": lambda: {**tiny_config(), "early_terminate": {"type": "hyperband", "min_iter": 1, "eta": 1}},
    "hyperband with no band": lambda: {**tiny_config(), "early_terminate": {"type": "hyperband", "max_iter": 1, "s": 2}},
    "an unknown method": lambda: {**tiny_config(), "method": "custom"},
}


@pytest.mark.parametrize("bad", BAD_NEW_CONFIGS, ids=list(BAD_NEW_CONFIGS))
def test_an_impossible_config_is_refused_before_the_sweep_is_registered(root, tmp_path, bad):
    """Issue 14: an impossible input size was registered in the table first and failed in its first run."""
    path = tmp_path / "runs.json"
    with pytest.raises(UserError) as caught:
        sweep.run_sweep(root, 1, config=BAD_NEW_CONFIGS[bad](), path=path)
    assert "the sweep config" in str(caught.value) and "\n" not in str(caught.value)
    assert not path.exists()


STORED_PROBLEMS = {
    "an unknown method": lambda config: config.update(method="hillclimb"),
    "config null": lambda config: config.clear(),
    "hyperband min_iter 0": lambda config: config["early_terminate"].update(min_iter=0),
    "hyperband eta as text": lambda config: config["early_terminate"].update(eta="two"),
}


@pytest.mark.parametrize("problem", STORED_PROBLEMS, ids=list(STORED_PROBLEMS))
def test_a_stored_config_the_engine_cannot_use_is_one_line(root, tmp_path, problem):
    """Issue 14: continuing a sweep whose stored config was edited by hand raised inside the engine."""
    path = tmp_path / "runs.json"
    sweep_id = plant_sweep(path, root, tiny_config(early_terminate=SHORT_HYPERBAND))
    table = json.loads(path.read_text())
    STORED_PROBLEMS[problem](table["sweeps"][sweep_id]["config"])
    if not table["sweeps"][sweep_id]["config"]:
        table["sweeps"][sweep_id]["config"] = None
    path.write_text(json.dumps(table))
    with pytest.raises(UserError) as caught:
        sweep.run_sweep(root, 1, sweep_id=sweep_id, path=path)
    message = str(caught.value)
    assert f"sweep {sweep_id} in {path}" in message and "\n" not in message
    assert json.loads(path.read_text())["runs"] == []


# ------------------------------------------------------------------------------------------------
# Hyperband
# ------------------------------------------------------------------------------------------------
def hyperband_config(**early_terminate):
    return sweep.sweep_config("bayes", early_terminate=early_terminate or SHORT_HYPERBAND)


def test_hyperband_stops_a_planted_weak_run_and_spares_a_strong_one():
    config = hyperband_config()  # min_iter 1, eta 2: bands at epochs 2, 3, 5 (1-based)
    earlier = [planted_record("s", [0.5, 0.8, 0.9, 0.95], name=f"good{i}") for i in range(3)]
    rows = lambda accs: [{"epoch": i + 1, "val_acc": acc} for i, acc in enumerate(accs)]  # noqa: E731
    weak = sweep.hyperband_stop_reason(config, earlier, rows([0.1, 0.12]))
    assert weak.startswith("hyperband: best val_acc 0.1200 after 2 epochs") and "epoch 2" in weak
    assert sweep.hyperband_stop_reason(config, earlier, rows([0.5, 0.85])) is None  # top half: goes on
    assert sweep.hyperband_stop_reason(config, earlier, rows([0.1])) is None  # before the first band
    assert sweep.hyperband_stop_reason(config, [], rows([0.1, 0.12])) is None  # nothing to compare with
    assert sweep.hyperband_stop_reason(sweep.sweep_config(early_terminate=False), earlier, rows([0.1, 0.1])) is None
    # The real runs' rule: min_iter 3 waits for four epochs before its first comparison.
    default = sweep.sweep_config("bayes")
    slow_start = [{"epoch": i + 1, "val_acc": 0.1} for i in range(4)]
    assert sweep.hyperband_stop_reason(default, earlier, slow_start[:3]) is None
    assert sweep.hyperband_stop_reason(default, earlier, slow_start) is not None
