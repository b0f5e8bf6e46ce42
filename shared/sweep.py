"""Hyperparameter sweeps (Question 2) and the sweep's best run (Questions 3 and 4). Introduced in Part-A/02.

One `sweep_config` dict drives both paths: online (a W&B key was found) `wandb.sweep` + `wandb.agent`, where W&B's
controller hands out configs and more agents join with `agent_command(...)`; offline, W&B's open-source engine
(sweep_controller.py) draws the same configs and hyperband stops, and each run is logged in W&B offline mode.
Every run goes to the runs table (runs_table.py) the moment it ends, so a sweep can be continued; the best
finished run's weights are kept beside the table.
"""
from __future__ import annotations

import copy
import functools
import itertools
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import torch

from . import data as data_lib
from . import runs_table, tracking
from .formulas import count_macs, count_params
from .model import CNNConfig, make_filters
from .runs_table import SUMMARY_KEYS, append_run, best_of, load_runs, plain_value, read_table, runs_of
from .runtime import REPO_ROOT, SWEEP_RUNS, UserError, check_distinct_paths, check_output_file, save_json
from .sweep_controller import check_sizes, draw_config, hyperband_stop_reason, resolve_sweep
from .train import Diverged, TrainConfig, load_checkpoint, release_memory, save_atomic, train

# Used when no sweep result is available (a notebook run on its own).
DEFAULT_CNN = CNNConfig(filters=make_filters(32, "doubling"), kernel_sizes=(3,) * 5, activation="silu",
                        dense_neurons=256, dropout=0.3, batch_norm=True, input_size=224)
DEFAULT_TRAIN = TrainConfig()

# The assignment's space plus what matters for accuracy; every key is a CNNConfig/TrainConfig field or one that
# `configs_from_params` turns into fields. Every organisation's widths run from base to 16 x base (512 -> 32
# halving, the published winner, is in; base 64 would start with 1,024 channels at full resolution). Sized for a
# T4 session (`estimate.sweep_pflop`); hyperband compares runs after epochs 4 and 7 (min_iter 3, 0-based).
SWEEP_CONFIG = {
    "method": "bayes",
    "metric": {"name": "val_acc", "goal": "maximize"},
    "early_terminate": {"type": "hyperband", "min_iter": 3, "eta": 2},
    "parameters": {
        "base_filters": {"values": [16, 32]},
        "organisation": {"values": ["same", "doubling", "halving"]},
        "kernel_size": {"values": [3, 5]},
        "activation": {"values": ["relu", "gelu", "silu", "mish"]},
        "augment": {"values": [True, False]},
        "batch_norm": {"values": [True, False]},
        "dropout": {"values": [0.2, 0.3]},
        "dense_neurons": {"values": [128, 256, 512]},
        "lr": {"distribution": "log_uniform_values", "min": 3e-4, "max": 3e-3},
        "batch_size": {"values": [64, 128]},
        "weight_decay": {"values": [0.0, 0.01, 0.05]},
        "epochs": {"values": [8, 12]},
        "input_size": {"value": 128},
    },
}


def sweep_config(method: str = "bayes", input_size: int | None = None, epochs: int | None = None,
                 early_terminate: dict | bool = True, **fixed_or_values) -> dict:
    """A copy of SWEEP_CONFIG with the method set; `input_size`/`epochs` fix those values (None keeps the space's).
    Any other keyword replaces a parameter's choices (`base_filters=[8, 16]`): a list -> values, a dict -> that
    spec, anything else -> one fixed value. `early_terminate`: True keeps the hyperband, False turns it off, a dict
    changes some of its values."""
    check_sizes(input_size, epochs)
    config = copy.deepcopy(SWEEP_CONFIG)
    config["method"] = method
    if early_terminate is False:
        config.pop("early_terminate")
    else:
        rule = config["early_terminate"]
        rule.update(early_terminate if isinstance(early_terminate, dict) else {})
        min_iter, eta = rule.get("min_iter", 1), rule.get("eta", 3)
        if not (isinstance(min_iter, int) and min_iter >= 1 and isinstance(eta, (int, float)) and eta > 1):
            raise UserError(f"early_terminate needs min_iter >= 1 (a whole number) and eta > 1, got {rule}")
    params = config["parameters"]
    if input_size is not None:
        params["input_size"] = {"value": int(input_size)}
    if epochs is not None:
        params["epochs"] = {"value": int(epochs)}
    for key, choice in fixed_or_values.items():
        if isinstance(choice, dict):  # a full spec, e.g. {"distribution": "log_uniform_values", ...}
            params[key] = dict(choice)
        else:
            params[key] = {"values": list(choice)} if isinstance(choice, (list, tuple)) else {"value": choice}
    if method == "grid":  # grid search enumerates values only: pin continuous ranges to their centre
        for key, spec in params.items():
            if "distribution" in spec:
                params[key] = {"value": float((spec["min"] * spec["max"]) ** 0.5)}
    return config


def configs_from_params(params: dict) -> tuple[CNNConfig, TrainConfig, dict]:
    """Sweep parameters -> (CNNConfig, TrainConfig, flat config with every field plus the sweep keys)."""
    params = {k: plain_value(v) for k, v in params.items()}
    cnn_fields = {k: v for k, v in params.items() if k in CNNConfig.__dataclass_fields__}
    if "base_filters" in params:
        cnn_fields["filters"] = make_filters(int(params["base_filters"]), params.get("organisation", "same"))
    if "kernel_size" in params:
        cnn_fields["kernel_sizes"] = (int(params["kernel_size"]),) * 5
    cnn = CNNConfig(**cnn_fields)
    tcfg = TrainConfig.from_dict(params)
    flat = {**cnn.to_dict(), **tcfg.to_dict(), **params}
    flat["filters"], flat["kernel_sizes"] = list(cnn.filters), list(cnn.kernel_sizes)
    return cnn, tcfg, flat


def run_name(index: int, cnn: CNNConfig, params: dict) -> str:
    """A readable run name: index, activation, filters, kernel size."""
    organisation = params.get("organisation", "")
    return (f"r{index:02d}-{cnn.activation}-{cnn.filters[0]}{organisation[:3]}"
            f"-k{cnn.kernel_sizes[0]}{'-bn' if cnn.batch_norm else ''}{'-aug' if params.get('augment') else ''}")


# One run
def _stopped_by_agent(err: BaseException) -> bool:
    """True when W&B's sweep controller stopped this run (its hyperband, or Stop in the UI): on the server's
    `stop`, a function-based `wandb.agent` raises a bare `Exception()` in the run's thread."""
    pyagent = sys.modules.get("wandb.agents.pyagent")
    return type(err) is Exception and not err.args and pyagent is not None and pyagent.is_running()


def out_of_memory(err: BaseException) -> bool:
    """An allocation failure on any device: CUDA's OutOfMemoryError, Python's MemoryError, or the RuntimeError
    of the CPU's or MPS's allocator."""
    return isinstance(err, (torch.cuda.OutOfMemoryError, MemoryError)) or isinstance(err, RuntimeError) and bool(
        re.search(r"out of memory|not enough memory|can't allocate memory", str(err), re.IGNORECASE))


def train_one(params: dict, root, index: int = 0, wandb_run=None, progress: bool = False,
              should_stop=None, tags: dict | None = None, on_model=None) -> dict:
    """Train one sweep run and return its record; OOM and divergence make a failed record, other errors propagate.
    `should_stop(history) -> reason or None` (the offline hyperband) is asked after every epoch but the last, which
    stopping would not shorten; a reason ends the run as "stopped". `tags` go into the record; `on_model(model)`
    gets the best epoch's model of a run with a result."""
    cnn, tcfg, flat = configs_from_params(params)
    record = {"config": flat, "val_acc": None, "state": "failed", "error": None,
              "name": getattr(wandb_run, "name", None) or run_name(index, cnn, params), "created": runs_table.now(),
              "params": count_params(cnn), "macs": count_macs(cnn), "epoch_seconds": [], "best_epoch": None,
              "images_per_second": None, "history": [], "skipped": [], **(tags or {}),
              "input_size": cnn.input_size, "epochs_asked": tcfg.epochs, "epochs_run": 0}
    if wandb_run is not None:
        wandb_run.config.update(flat, allow_val_change=True)
        wandb_run.summary.update({"params": record["params"], "macs": record["macs"]})

    def on_epoch(row):
        record["history"].append(row)
        record["epoch_seconds"].append(row["epoch_seconds"])
        if wandb_run is not None:
            wandb_run.log(row, step=row["epoch"])
        reason = should_stop(record["history"]) if should_stop and row["epoch"] < tcfg.epochs else None
        if reason:
            record["stop_reason"] = reason
        return bool(reason)  # True ends the run after this epoch (train.fit's on_epoch contract)

    started = time.perf_counter()
    try:
        result = train(cnn, root, tcfg, on_epoch=on_epoch, progress=progress, verbose=False)
        record.update(val_acc=result.val_acc, best_epoch=result.best_epoch,
                      state="stopped" if result.stopped_by == "on_epoch" else "finished",
                      images_per_second=result.images_per_second, epoch_seconds=result.epoch_seconds,
                      skipped=result.skipped, micro_batch=result.micro_batch)
        if on_model:
            on_model(result.model)
        del result
    except Diverged as err:
        record["error"] = f"diverged: {err}"
    except Exception as err:
        if out_of_memory(err):
            record["error"] = f"out of memory: {(str(err).strip() or type(err).__name__).splitlines()[0][:300]}"
        elif _stopped_by_agent(err):  # a result: its best epoch so far
            best = max(record["history"], key=lambda row: row["val_acc"], default={})
            record.update(state="stopped", stop_reason="stopped by the W&B sweep controller (hyperband)",
                          val_acc=best.get("val_acc"), best_epoch=best.get("epoch"))
        else:
            raise
    release_memory()  # outside the `except`: the traceback, and the tensors its frames hold, are gone
    record["epochs_run"] = len(record["history"])
    record["wall_seconds"] = time.perf_counter() - started  # data loading and evaluation included
    if wandb_run is not None:  # the best epoch's accuracy, not the last one's: what the sweep optimises
        wandb_run.summary.update({key: record.get(key) for key in SUMMARY_KEYS})
    return record


def _offline_sweep(sweep: dict, root, count: int, path, progress: bool) -> None:
    """`count` more runs, each drawn and claimed under the table's lock (other agents may add runs meanwhile)."""
    sweep_id, config = sweep["sweep_id"], sweep["config"]
    for _ in range(count):
        with runs_table.claim_next(path, sweep_id, functools.partial(draw_config, config, sweep_id)) as claim:
            if claim is None:
                print(f"Grid exhausted: every config of sweep {sweep_id} has run or is running.")
                break
            should_stop = functools.partial(hyperband_stop_reason, config, claim["earlier"])
            _logged_run(claim["params"], root, claim["index"], sweep, path, progress, should_stop, group=sweep_id)


# The sweep's best model
def _checkpoint_name(sweep_id: str) -> str:
    """Where sweep `sweep_id` keeps its best run's weights, relative to the table's folder."""
    return f"sweep_checkpoints/{re.sub(r'[^A-Za-z0-9._-]', '_', sweep_id)}.pt"


def _save_best(record: dict, model, path) -> None:
    """Keep a sweep's new best run, with what lets a reader check whose it is."""
    if model is None:
        return
    save_atomic({"config": model.cfg.to_dict(), "train_config": TrainConfig.from_dict(record["config"]).to_dict(),
                 "val_acc": record["val_acc"], "best_epoch": record["best_epoch"], "state_dict": model.state_dict(),
                 "run_name": record["name"], "sweep_id": record["sweep_id"], "run_config": record["config"],
                 "data": record.get("data"), "mode": record.get("mode")},
                Path(path).parent / _checkpoint_name(record["sweep_id"]))


def best_run_checkpoint(sweep_id: str, path: str | os.PathLike = SWEEP_RUNS) -> Path | None:
    """The checkpoint of sweep `sweep_id`'s best finished run (written under the table's lock each time a run
    beats the earlier ones), or None when none was saved. Introduced in Part-A/02."""
    checkpoint = Path(path).parent / _checkpoint_name(sweep_id)
    return checkpoint if checkpoint.is_file() else None


# Running a sweep
def _logged_run(params: dict, root, index: int, sweep: dict, path, progress: bool, should_stop=None,
                group: str | None = None) -> dict:
    """One run in its own W&B run (offline or online): its record goes to the table at once, and its weights
    are kept when it is the sweep's best finished run so far."""
    import wandb

    # On a CPU, W&B's system-metrics sampler competes with training for the few cores.
    settings = wandb.Settings(x_disable_stats=not torch.cuda.is_available(), console="off")
    # Offline the drawn params name the run (the runs table's name, which the report's filters look for).
    name = run_name(index, configs_from_params(params)[0], params) if params else None
    run = tracking.init_run(config=params, name=name, group=group, job_type="sweep", settings=settings)
    # Under wandb.agent the config comes from the controller. Offline the drawn values win: W&B turns 10.0
    # into 10, which the grid engine would not recognise as the value it handed out (and would draw again).
    params = {**dict(run.config), **params}
    if name is None:  # under wandb.agent: named once the controller's config is known
        run.name = run_name(index, configs_from_params(params)[0], params)
    tags = {"sweep_id": sweep["sweep_id"], "data": sweep["data"], "mode": sweep["mode"]}
    trained = {}
    try:
        record = train_one(params, root, index, wandb_run=run, progress=progress, should_stop=should_stop,
                           tags=tags, on_model=lambda model: trained.update(model=model))
    except BaseException:
        run.finish(exit_code=1)
        raise
    run.finish(exit_code=1 if record["state"] == "failed" else 0)
    best = append_run(record, path, on_best=lambda: _save_best(record, trained.get("model"), path))
    status = record["error"] if record["state"] == "failed" else f"val_acc {record['val_acc']:.4f}"
    if record["state"] == "stopped":
        status += f", stopped after epoch {record['epochs_run']} ({record['stop_reason']})"
    if best:  # only a finished run can be the best
        status += ", the sweep's best so far (weights kept)"
    micro, batch = record.get("micro_batch"), record["config"]["batch_size"]
    if micro and micro < batch:  # only a run with a result has a micro_batch
        status += f"; memory plan: {batch // micro} micro-batches of {micro} per step"
    print(f"[{index + 1}] {record['name']}: {status}")
    return record


def agent_command(sweep_id: str, count: int, input_size: int | None = None, epochs: int | None = None,
                  data=None, path: str | os.PathLike | None = None) -> str:
    """The shell command that continues sweep `sweep_id` with `count` more runs (online: one more agent), from
    the repo root, so it also works pasted into a Colab or Kaggle `!` cell."""
    extra = f" --input-size {input_size}" if input_size is not None else ""
    extra += f" --epochs {epochs}" if epochs is not None else ""
    extra += f" --data {shlex.quote(str(Path(data).resolve()))}" if data else ""
    extra += f" --runs {shlex.quote(str(Path(path).resolve()))}" if path and Path(path) != SWEEP_RUNS else ""
    return f"cd {shlex.quote(str(REPO_ROOT))} && python -m shared sweep --sweep-id {sweep_id} --count {count}{extra}"


def _check_request(count: int, input_size, epochs, path, json_path) -> None:
    """Everything known up front, refused in one line before any work."""
    if count < 0:
        raise UserError(f"count must be >= 0, got {count}")
    check_sizes(input_size, epochs)
    check_output_file(path, "the runs table", "runs table", "sweep_runs.json")
    check_distinct_paths({"--json": json_path}, {"the runs table (--runs)": path})


def _payload(sweep_id: str | None, path, unknown: dict | None = None) -> dict:
    """What run_sweep returns: the sweep's description (`unknown` if the table has none) and all its runs so far.
    `mode` is the W&B mode (online/offline); `run_mode`, like each run's `mode`, is full/demo/quick."""
    table = read_table(path)
    sweep = table["sweeps"].get(sweep_id, unknown or {})
    checkpoint = best_run_checkpoint(sweep_id, path) if sweep_id else None
    return {"sweep_id": sweep_id, "method": sweep.get("method"), "mode": sweep.get("wandb_mode"),
            "run_mode": sweep.get("mode"), "config": sweep.get("config"), "data": sweep.get("data"),
            "best_checkpoint": str(checkpoint) if checkpoint else None,
            "runs": runs_of(table, sweep_id) if sweep_id else []}


def run_sweep(root, count: int, method: str | None = None, input_size: int | None = None,
              epochs: int | None = None, sweep_id: str | None = None, config: dict | None = None,
              path: str | os.PathLike = SWEEP_RUNS, progress: bool = False, json_path=None) -> dict:
    """Run `count` more runs of a sweep on `root`; return the sweep and all its runs (earlier ones too).
    `sweep_id`: continue that sweep with its stored config (settings that disagree are an error). None: continue
    an unfinished sweep of the same config, data and mode, else start one. "new": always start a new sweep.
    `config` defaults to `sweep_config(method or "bayes", input_size, epochs)`. Every run is appended to the table
    at `path` as it ends; `json_path` also gets the result. `count=0` runs and registers nothing."""
    _check_request(count, input_size, epochs, path, json_path)
    new, sweep_id = sweep_id == "new", (None if sweep_id == "new" else sweep_id)
    if count == 0:
        payload = _payload(sweep_id, path)
    else:
        if not sweep_id:  # continuing, the stored config wins; `config` is only compared with it
            config = config or sweep_config(method or "bayes", input_size, epochs)
        sweep, count = resolve_sweep(root, count, method, input_size, epochs, sweep_id, config, path, new)
        sweep_id = sweep["sweep_id"]
        print(f"Sweep {sweep_id}: {count} more run(s). If this stops, continue it with\n"
              f"  {agent_command(sweep_id, count, data=root, path=path)}\n"
              f"or in Python: sweep.run_sweep(root, {count}, sweep_id={sweep_id!r})")
        if sweep_id.startswith("local-"):
            _offline_sweep(sweep, root, count, path, progress)
        else:
            import wandb

            counter = itertools.count(len(runs_of(read_table(path), sweep_id)))
            wandb.agent(sweep_id, project=tracking.PROJECT, entity=tracking.ENTITY, count=count,
                        function=lambda: _logged_run({}, root, next(counter), sweep, path, progress))
        payload = _payload(sweep_id, path)
        if Path(path).resolve() == SWEEP_RUNS.resolve():  # with a W&B key: a later session can fetch them
            tracking.log_handoff(sweep["mode"], path, payload["best_checkpoint"])
    if json_path:
        save_json(payload, json_path, default=str)
    return payload


def run_agents_on_gpus(root, sweep_id: str | None, count: int, gpus: int, input_size: int | None = None,
                       epochs: int | None = None, path: str | os.PathLike = SWEEP_RUNS,
                       config: dict | None = None) -> dict:
    """One agent per GPU (e.g. Kaggle's 2xT4), each a subprocess with its own CUDA_VISIBLE_DEVICES, all on the
    table at `path` (no two train the same config; a killed agent keeps its finished runs). `sweep_id` None or
    "new": as in `run_sweep`. The result holds this sweep's runs only."""
    _check_request(count, input_size, epochs, path, None)
    if sweep_id in (None, "new") and count:
        config = config or sweep_config("bayes", input_size, epochs)
        sweep, count = resolve_sweep(root, count, None, input_size, epochs, None, config, path, sweep_id == "new")
        sweep_id, input_size, epochs = sweep["sweep_id"], None, None  # the stored config holds them now
    agents = []
    for gpu in range(gpus):
        runs = count // gpus + (gpu < count % gpus)
        if runs == 0:
            continue
        command = [sys.executable, "-m", "shared", "sweep", "--data", str(root), "--sweep-id", sweep_id,
                   "--count", str(runs), "--runs", str(path)]
        command += ["--input-size", str(input_size)] if input_size is not None else []
        command += ["--epochs", str(epochs)] if epochs is not None else []
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": str(gpu)}
        # stdout is the agent's JSON result, which the table already holds; progress goes to stderr.
        agents.append((gpu, subprocess.Popen(command, env=env, cwd=REPO_ROOT, stdout=subprocess.DEVNULL)))
    for gpu, agent in agents:
        if agent.wait() != 0:
            print(f"The agent on GPU {gpu} exited with status {agent.returncode}; the runs it finished are "
                  f"kept in {path}. Continue with: {agent_command(sweep_id, count, data=root, path=path)}")
    return _payload(sweep_id, path, unknown={"method": "server", "wandb_mode": "online"})


# Reading results back
def best_config(root=None, sweep_id: str | None = None, path: str | os.PathLike = SWEEP_RUNS,
                ) -> tuple[CNNConfig, TrainConfig, str]:
    """(CNNConfig, TrainConfig, where it came from) of the best result (`runs_table.best_of`) made on `root`'s
    data in this mode, else the documented default. `root=None` finds the data as the notebooks do (`data.find_data`).
    Introduced in Part-A/03."""
    if root is not None and not Path(root).is_dir():
        raise UserError(f"best_config: {root!r} is not a data folder; call best_config(root, sweep_id=...)")
    root = data_lib.find_data() if root is None else root
    return config_of_run(best_of(load_runs(sweep_id, path, root=root)), path)


def config_of_run(run: dict | None, path: str | os.PathLike = SWEEP_RUNS) -> tuple[CNNConfig, TrainConfig, str]:
    """(CNNConfig, TrainConfig, where it came from) of a sweep run; None (no usable run in the table at `path`):
    the documented default, with one printed line."""
    if run is None:
        print(f"No finished sweep runs on this data ({path}); using the documented default config "
              f"(shared.sweep.DEFAULT_CNN / DEFAULT_TRAIN).")
        return DEFAULT_CNN, DEFAULT_TRAIN, "default"
    source = f"sweep run {run.get('name', '?')} of {run.get('sweep_id')} (val_acc {run['val_acc']:.4f})"
    return CNNConfig.from_dict(run["config"]), TrainConfig.from_dict(run["config"]), source


def best_saved_model(root, sweep_id: str | None = None, path: str | os.PathLike = SWEEP_RUNS):
    """(model, run, checkpoint, one line on what was found): `best_config`'s run's model as its sweep saved it
    (Question 4 asks for the best model *from the sweep*); model and checkpoint are None when no weights were
    saved, the file cannot be read, or it holds another run. Introduced in Part-A/03."""
    best = best_of(load_runs(sweep_id, path, root=root))
    if best is None:
        return None, None, None, "No finished sweep run on this data and in this mode, so no saved sweep model."
    checkpoint = best_run_checkpoint(best["sweep_id"], path)
    if checkpoint is None:  # an earlier session's copy: an attached input's, or W&B's (`tracking.handoff`)
        checkpoint = tracking.handoff(_checkpoint_name(best["sweep_id"]), best["mode"])
    if not checkpoint.is_file():
        return None, best, None, f"The sweep's best run {best.get('name')} saved no weights."
    try:
        model, saved = load_checkpoint(checkpoint)
    except Exception as err:  # a damaged file is reported, never trusted
        return None, best, None, f"Could not read {checkpoint} ({type(err).__name__}: {err})."
    if (saved.get("run_name") != best.get("name")
            or CNNConfig.from_dict(saved["config"]) != CNNConfig.from_dict(best["config"])):
        return None, best, None, (f"{checkpoint} holds run {saved.get('run_name')}, not the best run "
                                  f"{best.get('name')}: not using it.")
    return model, best, checkpoint, f"The sweep's best run {best.get('name')} saved its weights: {checkpoint}"
