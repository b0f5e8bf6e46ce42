"""Hyperparameter sweeps (Question 2) and reading their results back (Question 4).

Introduced in Part-A/02. One `sweep_config` dict drives both paths:
- online (a W&B key was found): `wandb.sweep` + `wandb.agent`; W&B's sweep controller hands out
  the configs, so more agents on other machines join with `python -m shared sweep --sweep-id ID`;
- offline: the same dict goes through W&B's open-source sweep engine (the `sweeps` package), so
  bayes/random/grid behave as on the server, and each run is logged in W&B offline mode
  (`wandb sync` uploads it later).

A sweep run's `config` is flat: every CNNConfig and TrainConfig field, plus the sweep's own keys
(e.g. `base_filters`, `organisation`), so `CNNConfig.from_dict(run["config"])` and
`TrainConfig.from_dict(run["config"])` rebuild it. A run that runs out of memory or diverges is
recorded as failed with its reason, its memory is freed, and the sweep goes on.
"""
from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from . import tracking
from .formulas import count_macs, count_params
from .model import CNNConfig, make_filters
from .runtime import SWEEP_RUNS, save_json
from .train import Diverged, TrainConfig, release_memory, train

# Used when no sweep result is available (a notebook run on its own). A sound, mid-sized choice:
# doubling filters from 32, 3x3 kernels, BatchNorm, SiLU, augmentation on.
DEFAULT_CNN = CNNConfig(filters=make_filters(32, "doubling"), kernel_sizes=(3,) * 5, activation="silu",
                        dense_neurons=256, dropout=0.3, batch_norm=True, input_size=224)
DEFAULT_TRAIN = TrainConfig()

# The assignment's suggested space, plus what matters for accuracy (kernel size, dense neurons,
# learning rate, batch size, epochs, weight decay). Every key is either a CNNConfig/TrainConfig
# field or one that `configs_from_params` turns into fields (base_filters, organisation, kernel_size).
SWEEP_CONFIG = {
    "method": "bayes",
    "metric": {"name": "val_acc", "goal": "maximize"},
    "parameters": {
        "base_filters": {"values": [32, 64]},
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
        "epochs": {"values": [10, 15]},
        "input_size": {"value": 224},
    },
}


def sweep_config(method: str = "bayes", input_size: int | None = None, epochs: int | None = None,
                 **fixed_or_values) -> dict:
    """A copy of SWEEP_CONFIG with the method set and some parameters narrowed.

    `input_size`/`epochs` fix those values; any other keyword replaces a parameter's choices,
    e.g. `sweep_config(base_filters=[8, 16])` for a CPU-sized demo (a list -> values, a dict -> that
    spec, anything else -> one fixed value).
    """
    config = json.loads(json.dumps(SWEEP_CONFIG))  # deep copy of plain data
    config["method"] = method
    params = config["parameters"]
    if input_size:
        params["input_size"] = {"value": int(input_size)}
    if epochs:
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


def _plain(value):
    """numpy scalars (what the sweeps package suggests) -> Python values that JSON and W&B accept."""
    return value.item() if hasattr(value, "item") else value


def configs_from_params(params: dict) -> tuple[CNNConfig, TrainConfig, dict]:
    """Sweep parameters -> (CNNConfig, TrainConfig, flat config with every field plus the sweep keys)."""
    params = {k: _plain(v) for k, v in params.items()}
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


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def train_one(params: dict, root, index: int = 0, wandb_run=None, progress: bool = False,
              verbose: bool = False) -> dict:
    """Train one sweep run and return its record; OOM and divergence become a failed record.

    `wandb_run`: an open W&B run to log to (the caller finishes it). Other errors are real bugs
    and propagate.
    """
    cnn, tcfg, flat = configs_from_params(params)
    record = {"config": flat, "val_acc": None, "state": "failed", "error": None,
              "name": getattr(wandb_run, "name", None) or run_name(index, cnn, params), "created": _now(),
              "params": count_params(cnn), "macs": count_macs(cnn), "epoch_seconds": [], "best_epoch": None,
              "images_per_second": None, "history": [], "skipped": []}
    if wandb_run is not None:
        wandb_run.config.update(flat, allow_val_change=True)
        wandb_run.summary.update({"params": record["params"], "macs": record["macs"]})

    def on_epoch(row):
        record["history"].append(row)
        record["epoch_seconds"].append(row["epoch_seconds"])
        if wandb_run is not None:
            wandb_run.log(row, step=row["epoch"])

    try:
        result = train(cnn, root, tcfg, on_epoch=on_epoch, progress=progress, verbose=verbose)
        record.update(val_acc=result.val_acc, state="finished", best_epoch=result.best_epoch,
                      images_per_second=result.images_per_second, epoch_seconds=result.epoch_seconds,
                      skipped=result.skipped)
        del result
    except torch.OutOfMemoryError as err:  # torch.cuda.OutOfMemoryError is the same class
        record["error"] = f"out of memory: {str(err).splitlines()[0][:300]}"
    except Diverged as err:
        record["error"] = f"diverged: {err}"
    # Outside the `except`: the traceback (and the tensors its frames hold) is gone by now.
    release_memory()
    if wandb_run is not None:
        # The best epoch's accuracy, not the last one's: that is what the sweep optimises.
        wandb_run.summary.update({"val_acc": record["val_acc"], "best_epoch": record["best_epoch"],
                                  "state": record["state"], "error": record["error"]})
    return record


def save_runs(payload: dict, path: str | os.PathLike = SWEEP_RUNS) -> Path:
    """Write the runs table atomically: Part-A/03 may read it while a sweep is still writing."""
    return save_json(payload, path, default=_plain)


def _logged_run(params: dict, root, index: int, payload: dict, path, progress: bool, group: str | None):
    """One run inside its own W&B run (offline or online); appends the record and saves the table."""
    import wandb

    # On a CPU, W&B's system-metrics sampler competes with training for the few cores.
    settings = wandb.Settings(x_disable_stats=not torch.cuda.is_available(), console="off")
    run = tracking.init_run(config=params, group=group, job_type="sweep", settings=settings)
    params = {**params, **dict(run.config)}  # under wandb.agent the config comes from the controller
    try:
        record = train_one(params, root, index, wandb_run=run, progress=progress)
    except BaseException:
        run.finish(exit_code=1)
        save_runs(payload, path)
        raise
    run.finish(exit_code=0 if record["state"] == "finished" else 1)
    payload["runs"].append(record)
    save_runs(payload, path)
    status = f"val_acc {record['val_acc']:.4f}" if record["state"] == "finished" else record["error"]
    print(f"[{index + 1}] {record['name']}: {status}")
    return record


def _offline_sweep(config: dict, root, count: int, payload: dict, path, progress: bool) -> None:
    """W&B's open-source sweep engine suggests each next config from the finished runs so far."""
    import warnings

    import numpy as np
    with warnings.catch_warnings():  # sweeps 0.2.0 still uses pydantic-1 style config; harmless under 2
        warnings.simplefilter("ignore")
        from sweeps import RunState, SweepRun, next_run

    np.random.seed(0)  # random/bayes draw from numpy's global generator: seeded, reproducible sweeps
    history: list = []
    for index in range(count):
        suggestion = next_run(config, history)
        if suggestion is None:  # grid exhausted
            print(f"Grid exhausted after {index} runs.")
            break
        params = {k: _plain(v["value"]) for k, v in suggestion.config.items()}
        record = _logged_run(params, root, index, payload, path, progress, group=payload["sweep_id"])
        done = SweepRun(config=suggestion.config, name=record["name"])
        # Set after construction: under pydantic 2, SweepRun(summary_metrics=...) is silently dropped.
        done.state = RunState.finished if record["state"] == "finished" else RunState.failed
        done.summary_metrics = {"val_acc": record["val_acc"]} if record["val_acc"] is not None else {}
        history.append(done)


def create_sweep(config: dict) -> str:
    """Register `config` with the W&B server (online mode) and return the sweep id."""
    import wandb

    return wandb.sweep(config, project=tracking.PROJECT, entity=tracking.ENTITY)


def agent_command(sweep_id: str, count: int, input_size: int | None = None, epochs: int | None = None) -> str:
    """The shell command with which one more agent (another machine or GPU) joins a sweep."""
    extra = (f" --input-size {input_size}" if input_size else "") + (f" --epochs {epochs}" if epochs else "")
    return f"python -m shared sweep --sweep-id {sweep_id} --count {count}{extra}"


def run_sweep(root, count: int, method: str = "bayes", input_size: int | None = None,
              epochs: int | None = None, sweep_id: str | None = None, config: dict | None = None,
              path: str | os.PathLike = SWEEP_RUNS, progress: bool = False) -> dict:
    """Run `count` sweep runs on `root` and return (and save to `path`) the runs table.

    Online: creates a W&B sweep (or joins `sweep_id`) and runs a `wandb.agent` here. Offline: the
    `sweeps` package chooses the configs. `config` defaults to `sweep_config(method, input_size, epochs)`.
    """
    import wandb

    mode = tracking.setup_wandb()
    config = config or sweep_config(method, input_size, epochs)
    online = mode == "online"
    if sweep_id and not online:
        print(f"W&B is {mode}: cannot join sweep {sweep_id}; running a local sweep instead.")
        sweep_id = None
    if online and not sweep_id:
        sweep_id = create_sweep(config)
    local_id = sweep_id or f"local-{datetime.datetime.now():%Y%m%d-%H%M%S}"
    payload = {"runs": [], "sweep_id": local_id, "method": config["method"], "mode": mode, "config": config}
    if online:
        print(f"W&B sweep {sweep_id}. More agents join with:\n  {agent_command(sweep_id, count, input_size, epochs)}")
        counter = iter(range(10**6))
        wandb.agent(sweep_id, project=tracking.PROJECT, entity=tracking.ENTITY, count=count,
                    function=lambda: _logged_run({}, root, next(counter), payload, path, progress, None))
    else:
        _offline_sweep(config, root, count, payload, path, progress)
    save_runs(payload, path)
    return payload


def run_agents_on_gpus(root, sweep_id: str, count: int, gpus: int, input_size: int | None = None,
                       epochs: int | None = None, path: str | os.PathLike = SWEEP_RUNS) -> dict:
    """One agent per GPU (e.g. Kaggle's 2xT4), each a subprocess with its own CUDA_VISIBLE_DEVICES.

    Each agent writes its own runs table (its own INAT_OUTPUTS); they are merged into `path`.
    One agent per *large* GPU is enough: a run already fills an H100/H200 (see the README).
    """
    base = Path(path).parent
    per_gpu = [count // gpus + (i < count % gpus) for i in range(gpus)]
    processes = []
    for gpu, n in enumerate(per_gpu):
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": str(gpu), "INAT_OUTPUTS": str(base / f"agent-gpu{gpu}")}
        command = [sys.executable, "-m", "shared", "sweep", "--data", str(root), "--sweep-id", sweep_id,
                   "--count", str(n), "--json", str(base / f"agent-gpu{gpu}.json")]
        command += ["--input-size", str(input_size)] if input_size else []
        command += ["--epochs", str(epochs)] if epochs else []
        processes.append(subprocess.Popen(command, env=env, cwd=Path(__file__).resolve().parent.parent))
    for process in processes:
        process.wait()
    runs = []
    for gpu in range(gpus):
        part = base / f"agent-gpu{gpu}.json"
        if part.exists():
            runs += json.loads(part.read_text())["runs"]
    payload = {"runs": sorted(runs, key=lambda r: r["created"]), "sweep_id": sweep_id, "method": "server",
               "mode": "online"}
    save_runs(payload, path)
    return payload


def load_runs(sweep_id: str | None = None, path: str | os.PathLike = SWEEP_RUNS) -> list[dict]:
    """Runs of a sweep: from the W&B API when `sweep_id` is given and reachable, else the local runs table."""
    if sweep_id:
        try:
            import wandb

            from .tracking import ENTITY, PROJECT
            sweep = wandb.Api().sweep(sweep_id if sweep_id.count("/") == 2 else
                                      f"{ENTITY or wandb.Api().default_entity}/{PROJECT}/{sweep_id}")
            return [{"config": dict(run.config), "val_acc": run.summary.get("val_acc"), "state": run.state,
                     "name": run.name, "created": run.created_at, "params": run.summary.get("params"),
                     "macs": run.summary.get("macs"), "error": run.summary.get("error")}
                    for run in sweep.runs]
        except Exception as err:  # no network, no key, unknown id: say so and use the local table
            print(f"W&B API unavailable for sweep {sweep_id} ({type(err).__name__}: {err}); using {path}")
    path = Path(path)
    if not path.exists():
        return []
    return json.loads(path.read_text()).get("runs", [])


def best_config(sweep_id: str | None = None, path: str | os.PathLike = SWEEP_RUNS,
                ) -> tuple[CNNConfig, TrainConfig, str]:
    """(CNNConfig, TrainConfig, where it came from) of the sweep's best finished run, else the default."""
    runs = [r for r in load_runs(sweep_id, path)
            if r.get("val_acc") is not None and r.get("state", "finished") == "finished"]
    if not runs:
        print(f"No finished sweep runs found ({path}); using the documented default config "
              f"(shared.sweep.DEFAULT_CNN / DEFAULT_TRAIN).")
        return DEFAULT_CNN, DEFAULT_TRAIN, "default"
    best = max(runs, key=lambda r: r["val_acc"])
    source = f"sweep run {best.get('name', '?')} (val_acc {best['val_acc']:.4f})"
    return CNNConfig.from_dict(best["config"]), TrainConfig.from_dict(best["config"]), source
