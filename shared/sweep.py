"""Hyperparameter sweeps (Question 2) and the sweep's best run (Questions 3 and 4).

Introduced in Part-A/02. One `sweep_config` dict drives both paths:
- online (a W&B key was found): `wandb.sweep` + `wandb.agent`; W&B's sweep controller hands out
  the configs and its hyperband stops weak runs, so more agents join with `agent_command(...)`;
- offline: the same dict goes through W&B's open-source sweep engine (the `sweeps` package), so
  bayes/random/grid and hyperband behave as on the server, and each run is logged in W&B offline
  mode (`wandb sync` uploads it later). Agents of one offline sweep claim their draws under the runs
  table's lock, so two of them never train the same config.

Every run goes to the runs table (shared/runs_table.py) the moment it ends, so nothing
is lost: `run_sweep(..., sweep_id=ID)` (or `agent_command(ID, n)`) continues a sweep, and `run_sweep`
without an id continues an unfinished sweep of the same config, data and mode (`sweep_id="new"` starts a
new one). The best finished run's weights are kept beside the table (`best_run_checkpoint`).
Readers (`load_runs`, `best_config`) use only the runs made on the data and in the mode in use.
"""
from __future__ import annotations

import functools
import json
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
from .runtime import REPO_ROOT, SWEEP_RUNS, UserError, check_distinct_paths, save_json
from .sweep_controller import check_sizes, draw_config, hyperband_stop_reason, resolve_sweep
from .train import Diverged, TrainConfig, load_checkpoint, release_memory, save_atomic, train

# Used when no sweep result is available (a notebook run on its own). A sound, mid-sized choice:
# doubling filters from 32, 3x3 kernels, BatchNorm, SiLU, augmentation on.
DEFAULT_CNN = CNNConfig(filters=make_filters(32, "doubling"), kernel_sizes=(3,) * 5, activation="silu",
                        dense_neurons=256, dropout=0.3, batch_norm=True, input_size=224)
DEFAULT_TRAIN = TrainConfig()

# Hyperband for 8-12 epoch runs: a run's best val_acc is compared with the other runs' at epochs
# 3 and 6 (0-based, so the checks come after epochs 4 and 7), and it stops unless it is in the top
# 1/eta. Short demo runs pass smaller values through `sweep_config(early_terminate=...)`.
HYPERBAND = {"type": "hyperband", "min_iter": 3, "eta": 2}

# The assignment's suggested space, plus what matters for accuracy (kernel size, dense neurons,
# learning rate, batch size, epochs, weight decay). Every key is either a CNNConfig/TrainConfig
# field or one that `configs_from_params` turns into fields (base_filters, organisation, kernel_size).
# `base_filters` is the narrowest width: with `make_filters` every organisation draws its widths
# from base .. 16 x base, so 32 -> 512 doubling, 512 -> 32 halving (the published winner) and 32 x 5
# are all in the space. Base 64 is left out on purpose: its halving starts with 1,024 channels at
# full resolution and would take most of a sweep's time on its own.
# Sized for a T4 session (issue 19): 30 runs drawn from this space cost 35 PFLOP on average, every epoch
# counted (`estimate.sweep_pflop`, 100 seeded draws of 30; 95% under 62, the bound 80), where 224 px and 10-15 epochs cost
# about 3.8x that. So the sweep runs at 128 px (a third of 224 px's MACs) and 8-12 epochs: hyperband (checks
# after epochs 4 and 7) has stopped all but the best quarter of runs by then. Every config fits a 16 GB GPU
# at its drawn batch size through micro-batches where needed (`train.plan_micro_batch`).
SWEEP_CONFIG = {
    "method": "bayes",
    "metric": {"name": "val_acc", "goal": "maximize"},
    "early_terminate": HYPERBAND,
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
    """A copy of SWEEP_CONFIG with the method set and some parameters narrowed.

    `input_size`/`epochs` fix those values (None: keep the space's; 0 or less is refused as `train`
    refuses it); any other keyword replaces a parameter's choices, e.g. `sweep_config(base_filters=[8, 16])`
    for a CPU-sized demo (a list -> values, a dict -> that spec, anything else -> one fixed value).
    `early_terminate`: True keeps HYPERBAND, False turns early termination off, a dict changes some of
    its values (`{"min_iter": 1}` for 3-epoch runs).
    """
    check_sizes(input_size, epochs)
    config = json.loads(json.dumps(SWEEP_CONFIG))  # deep copy of plain data
    config["method"] = method
    _set_early_terminate(config, early_terminate)
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


def _set_early_terminate(config: dict, early_terminate: dict | bool) -> None:
    """Apply `sweep_config`'s early_terminate choice, refusing values hyperband cannot use."""
    if early_terminate is False:
        config.pop("early_terminate")
        return
    if isinstance(early_terminate, dict):
        config["early_terminate"].update(early_terminate)
    rule = config["early_terminate"]
    min_iter, eta = rule.get("min_iter", 1), rule.get("eta", 3)
    if not (isinstance(min_iter, int) and min_iter >= 1 and isinstance(eta, (int, float)) and eta > 1):
        raise UserError(f"early_terminate needs min_iter >= 1 (a whole number) and eta > 1, got {rule}")


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



# --------------------------------------------------------------------------------------------
# One run
# --------------------------------------------------------------------------------------------
def _stopped_by_agent(err: BaseException) -> bool:
    """True when W&B's sweep controller stopped this run (its hyperband, or Stop in the UI).

    A function-based `wandb.agent` runs each run in a thread; on the server's `stop` command it raises
    a bare `Exception()` in that thread (`wandb.agents.pyagent._terminate_thread`). The run's own
    stop check is switched off under the agent, so this is the only signal the run gets.
    """
    pyagent = sys.modules.get("wandb.agents.pyagent")
    return type(err) is Exception and not err.args and pyagent is not None and pyagent.is_running()


def _best_of(history: list[dict]) -> dict:
    """val_acc and best_epoch of a run that ended without a result: its best logged epoch."""
    if not history:
        return {"val_acc": None, "best_epoch": None}
    best = max(history, key=lambda row: row["val_acc"])
    return {"val_acc": best["val_acc"], "best_epoch": best["epoch"]}


def train_one(params: dict, root, index: int = 0, wandb_run=None, progress: bool = False,
              verbose: bool = False, should_stop=None, tags: dict | None = None, on_model=None) -> dict:
    """Train one sweep run and return its record; OOM and divergence become a failed record.

    `should_stop(history) -> reason or None` is asked after every epoch (the offline hyperband);
    a reason ends the run as "stopped". `tags` (sweep_id, data, mode) are copied into the record.
    `wandb_run`: an open W&B run to log to (the caller finishes it). `on_model(model)` receives the
    best epoch's model (on the CPU) of a run that ended with a result. Other errors are real bugs
    and propagate.
    """
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
        if row["epoch"] >= tcfg.epochs:  # the last epoch: the run ends anyway, so stopping it would save nothing
            return False
        reason = should_stop(record["history"]) if should_stop else None
        if reason:
            record["stop_reason"] = reason
        return bool(reason)  # True ends the run after this epoch (train.fit's on_epoch contract)

    started = time.perf_counter()
    try:
        result = train(cnn, root, tcfg, on_epoch=on_epoch, progress=progress, verbose=verbose)
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
        elif _stopped_by_agent(err):
            record.update(state="stopped", stop_reason="stopped by the W&B sweep controller (hyperband)",
                          **_best_of(record["history"]))
        else:
            raise
    # Outside the `except`: the traceback (and the tensors its frames hold) is gone by now.
    release_memory()
    record["epochs_run"] = len(record["history"])
    record["wall_seconds"] = time.perf_counter() - started  # data loading and evaluation included
    if wandb_run is not None:
        # The best epoch's accuracy, not the last one's: that is what the sweep optimises.
        wandb_run.summary.update({key: record.get(key) for key in SUMMARY_KEYS})
    return record


def out_of_memory(err: BaseException) -> bool:
    """An allocation failure on any device: CUDA's OutOfMemoryError, or the plain RuntimeError of the CPU's
    allocator ("DefaultCPUAllocator: not enough memory") or MPS's, or Python's MemoryError."""
    return isinstance(err, (torch.cuda.OutOfMemoryError, MemoryError)) or isinstance(err, RuntimeError) and bool(
        re.search(r"out of memory|not enough memory|can't allocate memory", str(err), re.IGNORECASE))


def _offline_sweep(sweep: dict, root, count: int, path, progress: bool) -> None:
    """`count` more runs, each drawn and claimed under the table's lock (other agents may add runs meanwhile)."""
    sweep_id, config = sweep["sweep_id"], sweep["config"]
    for _ in range(count):
        with runs_table.claim_next(path, sweep_id, functools.partial(draw_config, config, sweep_id)) as claim:
            if claim is None:  # grid exhausted
                print(f"Grid exhausted: every config of sweep {sweep_id} has run or is running.")
                break
            should_stop = functools.partial(hyperband_stop_reason, config, claim["earlier"])  # asked after every epoch
            _logged_run(claim["params"], root, claim["index"], sweep, path, progress, should_stop, group=sweep_id)


# --------------------------------------------------------------------------------------------
# The sweep's best model
# --------------------------------------------------------------------------------------------
def sweep_checkpoint_path(sweep_id: str, path: str | os.PathLike = SWEEP_RUNS) -> Path:
    """Where sweep `sweep_id` keeps its best run's weights: sweep_checkpoints/<sweep_id>.pt beside the table."""
    return Path(path).parent / "sweep_checkpoints" / f"{re.sub(r'[^A-Za-z0-9._-]', '_', sweep_id)}.pt"


def _save_best(record: dict, model, path) -> None:
    """Keep a sweep's new best run: `train.load_checkpoint` reads it; the rest lets a reader check whose it is."""
    if model is None:
        return
    save_atomic({"config": model.cfg.to_dict(), "train_config": TrainConfig.from_dict(record["config"]).to_dict(),
                 "val_acc": record["val_acc"], "best_epoch": record["best_epoch"], "state_dict": model.state_dict(),
                 "run_name": record["name"], "sweep_id": record["sweep_id"], "run_config": record["config"],
                 "data": record.get("data"), "mode": record.get("mode")},
                sweep_checkpoint_path(record["sweep_id"], path))


def best_run_checkpoint(sweep_id: str, path: str | os.PathLike = SWEEP_RUNS) -> Path | None:
    """The checkpoint of sweep `sweep_id`'s best finished run (finite val_acc), or None when none was saved.

    Written, under the table's lock, each time a run beats the sweep's earlier finished runs; never by a worse
    run or another sweep. Load it with `train.load_checkpoint`; its `run_name`, `run_config`, `sweep_id`,
    `data` and `mode` say which run it holds. Introduced in Part-A/02, used in Part-A/03.
    """
    checkpoint = sweep_checkpoint_path(sweep_id, path)
    return checkpoint if checkpoint.is_file() else None


# --------------------------------------------------------------------------------------------
# Running a sweep
# --------------------------------------------------------------------------------------------
def _logged_run(params: dict, root, index: int, sweep: dict, path, progress: bool, should_stop=None,
                group: str | None = None) -> dict:
    """One run inside its own W&B run (offline or online); its record is appended to the table at once,
    and its weights are kept when it is the sweep's best finished run so far."""
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
    status = (record["error"] if record["state"] == "failed" else f"val_acc {record['val_acc']:.4f}"
              + (f", stopped after epoch {record['epochs_run']} ({record['stop_reason']})"
                 if record["state"] == "stopped" else "") + (", the sweep's best so far (weights kept)" * best)
              + (f"; memory plan: {record['config']['batch_size'] // record['micro_batch']} micro-batches of "
                 f"{record['micro_batch']} per step" if (record.get("micro_batch") or 0) < record["config"]["batch_size"]
                 and record.get("micro_batch") else ""))
    print(f"[{index + 1}] {record['name']}: {status}")
    return record


def agent_command(sweep_id: str, count: int, input_size: int | None = None, epochs: int | None = None,
                  data=None, path: str | os.PathLike | None = None) -> str:
    """The shell command that continues sweep `sweep_id` with `count` more runs.

    Online it joins as one more agent (another machine or GPU); offline it continues a local sweep
    after an interruption. Notebooks print it so a student can pick up after a disconnect.
    """
    extra = (f" --input-size {input_size}" if input_size is not None else "")
    extra += (f" --epochs {epochs}" if epochs is not None else "")
    extra += f" --data {shlex.quote(str(Path(data).resolve()))}" if data else ""
    extra += f" --runs {shlex.quote(str(Path(path).resolve()))}" if path and Path(path) != SWEEP_RUNS else ""
    # From the repo root, so that it also works pasted into a Colab/Kaggle `!` cell (whose folder is elsewhere).
    return f"cd {shlex.quote(str(REPO_ROOT))} && python -m shared sweep --sweep-id {sweep_id} --count {count}{extra}"


def _check_request(count: int, input_size, epochs, path, json_path) -> None:
    """Everything known up front, refused in one line before any work."""
    if count < 0:
        raise UserError(f"count must be >= 0, got {count}")
    check_sizes(input_size, epochs)
    runs_table.check_table_path(path)
    check_distinct_paths({"--json": json_path}, {"the runs table (--runs)": path})


def _payload(sweep: dict, path) -> dict:
    """What run_sweep returns: the sweep's description and all its runs so far (earlier sessions included).

    `mode` is the W&B mode (online/offline), as before; each run's `mode` is the run mode (full/demo/quick).
    """
    sweep_id = sweep.get("sweep_id")
    checkpoint = best_run_checkpoint(sweep_id, path) if sweep_id else None
    return {"sweep_id": sweep_id, "method": sweep.get("method"), "mode": sweep.get("wandb_mode"),
            "run_mode": sweep.get("mode"), "config": sweep.get("config"), "data": sweep.get("data"),
            "best_checkpoint": str(checkpoint) if checkpoint else None,
            "runs": runs_of(read_table(path), sweep_id) if sweep_id else []}


def run_sweep(root, count: int, method: str | None = None, input_size: int | None = None,
              epochs: int | None = None, sweep_id: str | None = None, config: dict | None = None,
              path: str | os.PathLike = SWEEP_RUNS, progress: bool = False, json_path=None) -> dict:
    """Run `count` more runs of a sweep on `root`; return the sweep and all its runs (earlier ones too).

    `sweep_id`: continue that sweep (offline as well as online) with its stored config; settings that
    disagree with it are an error. None: continue an unfinished sweep of the same config, data and mode
    (one printed line says so), else start one: online `wandb.sweep` creates it, offline it gets a
    `local-...` id. "new": always start a new sweep. Every run is appended to the runs table at `path` as
    it ends; `json_path` also gets the result. `config` defaults to
    `sweep_config(method or "bayes", input_size, epochs)`. `count=0` runs and registers nothing.
    """
    _check_request(count, input_size, epochs, path, json_path)
    new, sweep_id = sweep_id == "new", (None if sweep_id == "new" else sweep_id)
    if count == 0:
        payload = _payload(read_table(path)["sweeps"].get(sweep_id, {"sweep_id": sweep_id}), path)
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

            first = len(runs_of(read_table(path), sweep_id))
            counter = iter(range(first, first + 10**6))
            wandb.agent(sweep_id, project=tracking.PROJECT, entity=tracking.ENTITY, count=count,
                        function=lambda: _logged_run({}, root, next(counter), sweep, path, progress))
        payload = _payload(sweep, path)
        if Path(path).resolve() == SWEEP_RUNS.resolve():  # with a W&B key: a later session without them fetches them
            tracking.log_handoff(sweep["mode"], path, payload["best_checkpoint"])
    if json_path:
        save_json(payload, json_path, default=str)
    return payload


def run_agents_on_gpus(root, sweep_id: str | None, count: int, gpus: int, input_size: int | None = None,
                       epochs: int | None = None, path: str | os.PathLike = SWEEP_RUNS,
                       config: dict | None = None) -> dict:
    """One agent per GPU (e.g. Kaggle's 2xT4), each a subprocess with its own CUDA_VISIBLE_DEVICES.

    Every agent appends its runs to the one table at `path` as they finish (under its lock), and agents
    of one local sweep claim their draws there, so no two train the same config; a killed agent keeps
    its finished runs; the result holds this sweep's runs only, never a stale file's. `sweep_id` None or
    "new": as in `run_sweep` (an unfinished sweep of `config` goes on, or a new one starts). One agent per
    *large* GPU is enough: a run already fills an H100/H200 (see the README).
    """
    _check_request(count, input_size, epochs, path, None)
    if sweep_id in (None, "new") and count:
        config = config or sweep_config("bayes", input_size, epochs)
        sweep, count = resolve_sweep(root, count, None, input_size, epochs, None, config, path, sweep_id == "new")
        sweep_id, input_size, epochs = sweep["sweep_id"], None, None  # the stored config holds them now
    per_gpu = [count // gpus + (i < count % gpus) for i in range(gpus)]
    agents = []
    for gpu, n in enumerate(per_gpu):
        if n == 0:
            continue
        command = [sys.executable, "-m", "shared", "sweep", "--data", str(root), "--sweep-id", sweep_id,
                   "--count", str(n), "--runs", str(path)]
        command += ["--input-size", str(input_size)] if input_size is not None else []
        command += ["--epochs", str(epochs)] if epochs is not None else []
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": str(gpu)}
        # stdout is the agent's JSON result, which the table already holds; progress goes to stderr.
        agents.append((gpu, subprocess.Popen(command, env=env, cwd=REPO_ROOT, stdout=subprocess.DEVNULL)))
    for gpu, agent in agents:
        if agent.wait() != 0:
            print(f"The agent on GPU {gpu} exited with status {agent.returncode}; the runs it finished are "
                  f"kept in {path}. Continue with: {agent_command(sweep_id, count, data=root, path=path)}")
    return _payload(read_table(path)["sweeps"].get(sweep_id, {"sweep_id": sweep_id, "method": "server",
                                                              "wandb_mode": "online"}), path)


# --------------------------------------------------------------------------------------------
# Reading results back
# --------------------------------------------------------------------------------------------
def best_finished_run(root, sweep_id: str | None = None, path: str | os.PathLike = SWEEP_RUNS) -> dict | None:
    """The finished run with the highest finite val_acc among those made on `root`'s data in this mode, or None.

    The one choice behind `best_config` and `best_saved_model`; runs on other data or in another mode are ignored,
    with one printed line (`load_runs`).
    """
    return best_of(load_runs(sweep_id, path, root=root))


def best_config(root=None, sweep_id: str | None = None, path: str | os.PathLike = SWEEP_RUNS,
                ) -> tuple[CNNConfig, TrainConfig, str]:
    """(CNNConfig, TrainConfig, where it came from) of the best finished run made on `root`'s data.

    A NaN or infinite val_acc never counts.
    Runs on other data or in another mode (the demo sweep's digits winner, a test's quick run) are
    ignored, with one printed line. `root=None` finds the data as the notebooks do (`data.find_data`).
    Without a usable run: the documented default. Introduced in Part-A/03.
    """
    if root is not None and not Path(root).is_dir():
        raise UserError(f"best_config: {root!r} is not a data folder; call best_config(root, sweep_id=...)")
    root = data_lib.find_data() if root is None else root
    return config_of_run(best_finished_run(root, sweep_id, path), path)


def config_of_run(run: dict | None, path: str | os.PathLike = SWEEP_RUNS) -> tuple[CNNConfig, TrainConfig, str]:
    """(CNNConfig, TrainConfig, where it came from) of a sweep run, e.g. `best_finished_run`'s or the run
    `best_saved_model` returns; None (no usable run in the table at `path`): the documented default, with one
    printed line."""
    if run is None:
        print(f"No finished sweep runs on this data ({path}); using the documented default config "
              f"(shared.sweep.DEFAULT_CNN / DEFAULT_TRAIN).")
        return DEFAULT_CNN, DEFAULT_TRAIN, "default"
    source = f"sweep run {run.get('name', '?')} of {run.get('sweep_id')} (val_acc {run['val_acc']:.4f})"
    return CNNConfig.from_dict(run["config"]), TrainConfig.from_dict(run["config"]), source


def best_saved_model(root, sweep_id: str | None = None, path: str | os.PathLike = SWEEP_RUNS):
    """(model, run, checkpoint, one line on what was found): the sweep's own best model, as its best run saved it.

    Question 4 asks for the best model *from the sweep*. The run is `best_finished_run`'s; the model and checkpoint
    are None when that run's sweep saved no weights, the file cannot be read, or it holds another run (the line
    says which). Introduced in Part-A/03, which tests it; Part-A/04 looks inside the same model.
    """
    best = best_finished_run(root, sweep_id, path)
    if best is None:
        return None, None, None, "No finished sweep run on this data and in this mode, so no saved sweep model."
    checkpoint = best_run_checkpoint(best["sweep_id"], path) or best_run_checkpoint(best["sweep_id"], tracking.handoff(
        sweep_checkpoint_path(best["sweep_id"], SWEEP_RUNS).relative_to(SWEEP_RUNS.parent).as_posix(), best["mode"]))
    if checkpoint is None:
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
