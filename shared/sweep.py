"""Hyperparameter sweeps (Question 2) and reading their results back (Questions 3 and 4).

Introduced in Part-A/02. One `sweep_config` dict drives both paths:
- online (a W&B key was found): `wandb.sweep` + `wandb.agent`; W&B's sweep controller hands out
  the configs and its hyperband stops weak runs, so more agents join with `agent_command(...)`;
- offline: the same dict goes through W&B's open-source sweep engine (the `sweeps` package), so
  bayes/random/grid and hyperband behave as on the server, and each run is logged in W&B offline
  mode (`wandb sync` uploads it later).

The runs table, `outputs/sweep_runs.json` (runtime.SWEEP_RUNS), keeps every run of every sweep:
`{"sweeps": {sweep_id: how it was made}, "runs": [record, ...]}`. A record is appended, under a file
lock and atomically, the moment its run ends, so Ctrl-C, a lost Colab session or a killed agent loses
only the run in progress, and `run_sweep(..., sweep_id=ID)` (or `agent_command(ID, n)`) continues the
sweep. A record: config (flat: every CNNConfig and TrainConfig field plus the sweep's own keys such as
`base_filters`), val_acc, state, error, name, created, params, macs, epoch_seconds, best_epoch,
images_per_second, history, skipped, sweep_id, data (`data.data_fingerprint`), mode
(`runtime.run_mode`), input_size, epochs_asked, epochs_run, and stop_reason for a stopped run.
`state` is "finished" (every epoch, or ended by its own patience), "stopped" (ended by the sweep's
hyperband) or "failed" (out of memory, diverged: `error` says which; the sweep goes on).
Readers (`load_runs`, `best_config`) use only the runs made on the data and in the mode in use.
"""
from __future__ import annotations

import contextlib
import datetime
import functools
import hashlib
import json
import os
import random
import secrets
import shlex
import subprocess
import time
import sys
from pathlib import Path

import numpy as np
import torch

from . import data as data_lib
from . import tracking
from .formulas import count_macs, count_params
from .model import CNNConfig, make_filters
from .runtime import REPO_ROOT, SWEEP_RUNS, UserError, run_mode, save_json
from .train import Diverged, TrainConfig, release_memory, train

try:  # one process at a time may change the runs table (POSIX: Linux, macOS, Colab, Kaggle)
    import fcntl
except ImportError:  # Windows: no lock; run one agent per table there
    fcntl = None

# Used when no sweep result is available (a notebook run on its own). A sound, mid-sized choice:
# doubling filters from 32, 3x3 kernels, BatchNorm, SiLU, augmentation on.
DEFAULT_CNN = CNNConfig(filters=make_filters(32, "doubling"), kernel_sizes=(3,) * 5, activation="silu",
                        dense_neurons=256, dropout=0.3, batch_norm=True, input_size=224)
DEFAULT_TRAIN = TrainConfig()

# Hyperband for 10-15 epoch runs: a run's best val_acc is compared with the other runs' at epochs
# 3, 6 and 12 (0-based, so the checks come after epochs 4, 7 and 13), and it stops unless it is in
# the top 1/eta. Short demo runs pass smaller values through `sweep_config(early_terminate=...)`.
HYPERBAND = {"type": "hyperband", "min_iter": 3, "eta": 2}

# The assignment's suggested space, plus what matters for accuracy (kernel size, dense neurons,
# learning rate, batch size, epochs, weight decay). Every key is either a CNNConfig/TrainConfig
# field or one that `configs_from_params` turns into fields (base_filters, organisation, kernel_size).
# `base_filters` is the narrowest width: with `make_filters` every organisation draws its widths
# from base .. 16 x base, so 32 -> 512 doubling, 512 -> 32 halving (the published winner) and 32 x 5
# are all in the space. Base 64 is left out on purpose: its halving starts with 1,024 channels at
# full resolution (about 65 GMAC per 224 px image), which does not fit a T4 at batch 128 and would
# take most of a sweep's time on its own.
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
        "epochs": {"values": [10, 15]},
        "input_size": {"value": 224},
    },
}


def sweep_config(method: str = "bayes", input_size: int | None = None, epochs: int | None = None,
                 early_terminate: dict | bool = True, **fixed_or_values) -> dict:
    """A copy of SWEEP_CONFIG with the method set and some parameters narrowed.

    `input_size`/`epochs` fix those values; any other keyword replaces a parameter's choices,
    e.g. `sweep_config(base_filters=[8, 16])` for a CPU-sized demo (a list -> values, a dict -> that
    spec, anything else -> one fixed value). `early_terminate`: True keeps HYPERBAND, False turns
    early termination off, a dict changes some of its values (`{"min_iter": 1}` for 3-epoch runs).
    """
    config = json.loads(json.dumps(SWEEP_CONFIG))  # deep copy of plain data
    config["method"] = method
    _set_early_terminate(config, early_terminate)
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


def _set_early_terminate(config: dict, early_terminate: dict | bool) -> None:
    """Apply `sweep_config`'s early_terminate choice, refusing values hyperband cannot use."""
    if early_terminate is False:
        config.pop("early_terminate")
        return
    if isinstance(early_terminate, dict):
        config["early_terminate"].update(early_terminate)
    rule = config["early_terminate"]
    if not (int(rule.get("min_iter", 1)) >= 1 and float(rule.get("eta", 3)) > 1):
        raise UserError(f"early_terminate needs min_iter >= 1 and eta > 1, got {rule}")


def plain_value(value):
    """numpy scalars (what the sweeps package suggests) -> Python values that JSON and W&B accept."""
    return value.item() if hasattr(value, "item") else value


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


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


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
              verbose: bool = False, should_stop=None, tags: dict | None = None) -> dict:
    """Train one sweep run and return its record; OOM and divergence become a failed record.

    `should_stop(history) -> reason or None` is asked after every epoch (the offline hyperband);
    a reason ends the run as "stopped". `tags` (sweep_id, data, mode) are copied into the record.
    `wandb_run`: an open W&B run to log to (the caller finishes it). Other errors are real bugs
    and propagate.
    """
    cnn, tcfg, flat = configs_from_params(params)
    record = {"config": flat, "val_acc": None, "state": "failed", "error": None,
              "name": getattr(wandb_run, "name", None) or run_name(index, cnn, params), "created": _now(),
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
                      skipped=result.skipped)
        del result
    except torch.OutOfMemoryError as err:  # torch.cuda.OutOfMemoryError is the same class
        record["error"] = f"out of memory: {str(err).splitlines()[0][:300]}"
    except Diverged as err:
        record["error"] = f"diverged: {err}"
    except Exception as err:
        if not _stopped_by_agent(err):
            raise
        record.update(state="stopped", stop_reason="stopped by the W&B sweep controller (hyperband)",
                      **_best_of(record["history"]))
    # Outside the `except`: the traceback (and the tensors its frames hold) is gone by now.
    release_memory()
    record["epochs_run"] = len(record["history"])
    record["wall_seconds"] = time.perf_counter() - started  # data loading and evaluation included
    if wandb_run is not None:
        # The best epoch's accuracy, not the last one's: that is what the sweep optimises.
        wandb_run.summary.update({key: record.get(key) for key in _SUMMARY_KEYS})
    return record


# Record keys that also go to the W&B run's summary, so `load_runs` can rebuild records from the API.
_SUMMARY_KEYS = ("val_acc", "best_epoch", "state", "error", "sweep_id", "data", "mode", "input_size",
                 "epochs_asked", "epochs_run", "stop_reason")


# --------------------------------------------------------------------------------------------
# The runs table: every run of every sweep, appended under a lock
# --------------------------------------------------------------------------------------------
def _read_table(path) -> dict:
    """The runs table as {"sweeps": {...}, "runs": [...]}; a missing file is an empty table.

    A table from before sweeps were kept apart ({"runs", "sweep_id", ...}) is read as that one sweep;
    its runs carry no data fingerprint, so `best_config` will not use them.
    """
    path = Path(path)
    if not path.exists():
        return {"sweeps": {}, "runs": []}
    try:
        table = json.loads(path.read_text())
    except json.JSONDecodeError as err:  # never overwrite what we cannot read: it may hold results
        raise UserError(f"{path} is not valid JSON ({err}); move it aside to start a new runs table") from None
    if "sweeps" not in table:
        old_id = table.get("sweep_id") or "unknown"
        table["sweeps"] = {old_id: {"sweep_id": old_id, "method": table.get("method"),
                                    "wandb_mode": table.get("mode"), "config": table.get("config")}}
        for run in table.get("runs", []):
            run.setdefault("sweep_id", old_id)
    table.setdefault("runs", [])
    return table


@contextlib.contextmanager
def _locked(path):
    """Hold an exclusive lock on `path`'s companion .lock file: agents on one table queue here.

    fcntl.flock is released by the OS when a process dies, so a killed agent never leaves a stale lock.
    """
    lock_path = Path(path).with_name(Path(path).name + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as lock:
        if fcntl:
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl:
                fcntl.flock(lock, fcntl.LOCK_UN)


def _update_table(path, change) -> None:
    """Read, change and atomically rewrite the table while holding its lock (no run is ever dropped)."""
    with _locked(path):
        table = _read_table(path)
        change(table)
        save_json(table, path, default=plain_value)


def append_run(record: dict, path: str | os.PathLike = SWEEP_RUNS) -> None:
    """Add one finished, stopped or failed run to the table. Introduced in Part-A/02."""
    _update_table(path, lambda table: table["runs"].append(record))


def _register_sweep(sweep: dict, path) -> None:
    """Note how a sweep was made (config, data, mode) the first time one of its runs is due."""
    _update_table(path, lambda table: table["sweeps"].setdefault(sweep["sweep_id"], sweep))


def _runs_of(table: dict, sweep_id: str) -> list[dict]:
    return [run for run in table["runs"] if run.get("sweep_id") == sweep_id]


# --------------------------------------------------------------------------------------------
# Which runs to trust: the data and mode in use
# --------------------------------------------------------------------------------------------
def _describe_data(fingerprint: dict) -> str:
    return "demo digits" if fingerprint.get("demo") else fingerprint.get("root", "?")


def _why_not_usable(run: dict, fingerprint: dict, mode: str) -> str | None:
    """Why a run cannot stand for the data in use (None: it can)."""
    if not run.get("data"):
        return "with no data record (an older table)"
    if not data_lib.same_data(run["data"], fingerprint):
        return f"on other data ({_describe_data(run['data'])})"
    if run.get("mode") != mode:
        return f"in {run.get('mode')} mode"
    return None


def matching_runs(runs: list[dict], root) -> list[dict]:
    """The runs made on `root`'s data in the current mode; the others are counted in one printed line."""
    fingerprint, mode = data_lib.data_fingerprint(root), run_mode(data_lib.is_demo(root))
    kept, ignored = [], {}
    for run in runs:
        reason = _why_not_usable(run, fingerprint, mode)
        if reason is None:
            kept.append(run)
        else:
            ignored[reason] = ignored.get(reason, 0) + 1
    if ignored:
        parts = [f"{n} run{'s' * (n != 1)} made {reason}" for reason, n in ignored.items()]
        print(f"Ignored {'; '.join(parts)}: using the {len(kept)} made on {_describe_data(fingerprint)} "
              f"in {mode} mode.")
    return kept


# --------------------------------------------------------------------------------------------
# Offline: the `sweeps` engine, seeded per sweep, with the sweep's history and hyperband
# --------------------------------------------------------------------------------------------
def _engine():
    """W&B's open-source sweep engine (imported late: it is slow to import)."""
    import warnings

    with warnings.catch_warnings():  # sweeps 0.2.0 still uses pydantic-1 style config; harmless under 2
        warnings.simplefilter("ignore")
        import sweeps
    return sweeps


def _as_sweep_run(record: dict, config: dict, running: bool = False):
    """A runs-table record as the engine's SweepRun: its sweep parameters, state and val_acc history."""
    engine = _engine()
    metric = config["metric"]["name"]
    run = engine.SweepRun(name=record.get("name"))
    # Set after construction: under pydantic 2, SweepRun(summary_metrics=..., history=...) is silently dropped.
    values = record.get("config", {})
    run.config = {key: {"value": values[key]} for key in config["parameters"] if key in values}
    run.history = [{metric: row[metric]} for row in record.get("history", []) if metric in row]
    run.summary_metrics = {metric: record["val_acc"]} if record.get("val_acc") is not None else {}
    # A stopped run is a result (its best epoch so far), as on the server; a failed one is not.
    run.state = (engine.RunState.running if running else
                 engine.RunState.failed if record.get("state") == "failed" else engine.RunState.finished)
    return run


def hyperband_stop_reason(config: dict, earlier: list[dict], history: list[dict]) -> str | None:
    """Ask the `sweeps` engine's hyperband whether the run with this `history` should stop now.

    `earlier`: the sweep's other runs (records). Returns why it stops, or None (also when the sweep
    has no early_terminate). The same rule the W&B server applies online. Introduced in Part-A/02.
    """
    if not config.get("early_terminate"):
        return None
    engine = _engine()
    current = _as_sweep_run({"name": "current", "history": history}, config, running=True)
    earlier_runs = [_as_sweep_run(record, config) for record in earlier]
    if not any(run is current for run in engine.stop_runs(config, [*earlier_runs, current])):
        return None
    info = current.early_terminate_info or {}
    done = [(band, threshold) for band, threshold in zip(info.get("bands", []), info.get("thresholds", []))
            if band < len(history)]
    band, threshold = done[-1]
    sign = -1 if config["metric"]["goal"] == "maximize" else 1  # the engine negates a metric to maximise
    metric = config["metric"]["name"]
    best = max(row[metric] for row in history) if sign < 0 else min(row[metric] for row in history)
    return (f"hyperband: best {metric} {best:.4f} after {len(history)} epochs is outside the top "
            f"1/{config['early_terminate'].get('eta', 3)} of the sweep's runs at epoch {band + 1} "
            f"(threshold {sign * threshold:.4f})")


@contextlib.contextmanager
def _seeded(*keys):
    """Seed `random` and numpy (what the engine draws from) from `keys`; restore them afterwards.

    Seeding from the sweep id and its number of runs makes a sweep reproducible, a new sweep
    different from the last one, and a continued sweep draw new configs instead of repeating its first.
    """
    seed = int(hashlib.sha1("/".join(map(str, keys)).encode()).hexdigest()[:8], 16)
    python_state, numpy_state = random.getstate(), np.random.get_state()
    random.seed(seed)
    np.random.seed(seed)
    try:
        yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)


def _offline_sweep(sweep: dict, root, count: int, path, progress: bool) -> None:
    """`count` more runs: the engine sees every run of this sweep so far (re-read: other agents add some)."""
    config = sweep["config"]
    for _ in range(count):
        earlier = _runs_of(_read_table(path), sweep["sweep_id"])
        with _seeded(sweep["sweep_id"], len(earlier)):
            suggestion = _engine().next_run(config, [_as_sweep_run(r, config) for r in earlier])
        if suggestion is None:  # grid exhausted
            print(f"Grid exhausted after {len(earlier)} runs.")
            break
        params = {k: plain_value(v["value"]) for k, v in suggestion.config.items()}
        should_stop = functools.partial(hyperband_stop_reason, config, earlier)  # asked after every epoch
        _logged_run(params, root, len(earlier), sweep, path, progress, should_stop, group=sweep["sweep_id"])


# --------------------------------------------------------------------------------------------
# Running a sweep
# --------------------------------------------------------------------------------------------
def _logged_run(params: dict, root, index: int, sweep: dict, path, progress: bool, should_stop=None,
                group: str | None = None) -> dict:
    """One run inside its own W&B run (offline or online); its record is appended to the table at once."""
    import wandb

    # On a CPU, W&B's system-metrics sampler competes with training for the few cores.
    settings = wandb.Settings(x_disable_stats=not torch.cuda.is_available(), console="off")
    run = tracking.init_run(config=params, group=group, job_type="sweep", settings=settings)
    params = {**params, **dict(run.config)}  # under wandb.agent the config comes from the controller
    tags = {"sweep_id": sweep["sweep_id"], "data": sweep["data"], "mode": sweep["mode"]}
    try:
        record = train_one(params, root, index, wandb_run=run, progress=progress, should_stop=should_stop,
                           tags=tags)
    except BaseException:
        run.finish(exit_code=1)
        raise
    run.finish(exit_code=1 if record["state"] == "failed" else 0)
    append_run(record, path)
    status = (record["error"] if record["state"] == "failed" else f"val_acc {record['val_acc']:.4f}"
              + (f", stopped after epoch {record['epochs_run']} ({record['stop_reason']})"
                 if record["state"] == "stopped" else ""))
    print(f"[{index + 1}] {record['name']}: {status}")
    return record


def create_sweep(config: dict) -> str:
    """Register `config` with the W&B server (online mode) and return the sweep id."""
    import wandb

    return wandb.sweep(config, project=tracking.PROJECT, entity=tracking.ENTITY)


def new_local_id() -> str:
    """An offline sweep's id: `local-` + time + a random suffix (two sweeps in one second differ)."""
    return f"local-{datetime.datetime.now():%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def agent_command(sweep_id: str, count: int, input_size: int | None = None, epochs: int | None = None,
                  data=None, path: str | os.PathLike | None = None) -> str:
    """The shell command that continues sweep `sweep_id` with `count` more runs.

    Online it joins as one more agent (another machine or GPU); offline it continues a local sweep
    after an interruption. Notebooks print it so a student can pick up after a disconnect.
    """
    extra = (f" --input-size {input_size}" if input_size else "") + (f" --epochs {epochs}" if epochs else "")
    extra += f" --data {shlex.quote(str(data))}" if data else ""
    extra += f" --runs {shlex.quote(str(path))}" if path and Path(path) != SWEEP_RUNS else ""
    return f"python -m shared sweep --sweep-id {sweep_id} --count {count}{extra}"


def _check_same_settings(sweep: dict, config: dict | None, input_size, epochs) -> None:
    """Continuing a sweep: its stored config wins, and asking for other settings is an error, not a mix."""
    stored = sweep.get("config") or {}
    params = stored.get("parameters", {})
    for flag, value in (("input_size", input_size), ("epochs", epochs)):
        if value and stored and params.get(flag) != {"value": int(value)}:
            raise UserError(f"sweep {sweep['sweep_id']} has {flag} {params.get(flag)}, not {value}: leave it out "
                            f"to continue the sweep, or leave out the sweep id to start a new one")
    if config is not None and stored and json.loads(json.dumps(config, default=plain_value)) != stored:
        raise UserError(f"sweep {sweep['sweep_id']} was made with another sweep config: leave out config to "
                        f"continue it, or leave out the sweep id to start a new sweep")


def _continued_sweep(sweep_id: str, path, online: bool, wandb_mode: str, fingerprint: dict, mode: str) -> dict:
    """The stored description of sweep `sweep_id`, checked against the data and mode in use."""
    sweep = _read_table(path)["sweeps"].get(sweep_id)
    if not sweep_id.startswith("local-"):  # a W&B server sweep: the controller holds its config
        if not online:
            raise UserError(f"sweep {sweep_id} lives on the W&B server, but W&B is {wandb_mode} here: set "
                            f"WANDB_API_KEY (or run `wandb login`) to join it, or leave out the sweep id")
        sweep = sweep or {"sweep_id": sweep_id, "method": "server", "wandb_mode": wandb_mode, "config": None,
                          "created": _now(), "data": fingerprint, "mode": mode}
    elif sweep is None:
        known = sorted(s for s in _read_table(path)["sweeps"] if s.startswith("local-"))
        raise UserError(f"no local sweep {sweep_id} in {path}; local sweeps there: {', '.join(known) or 'none'}")
    if sweep.get("data") and not data_lib.same_data(sweep["data"], fingerprint):
        raise UserError(f"sweep {sweep_id} was made on other data ({_describe_data(sweep['data'])}); continue it "
                        f"on that data, or leave out the sweep id to start a new sweep here")
    if sweep.get("mode") and sweep["mode"] != mode:
        raise UserError(f"sweep {sweep_id} was made in {sweep['mode']} mode, this is {mode} mode; "
                        f"leave out the sweep id to start a new sweep")
    return sweep


def _payload(sweep: dict, path) -> dict:
    """What run_sweep returns: the sweep's description and all its runs so far (earlier sessions included).

    `mode` is the W&B mode (online/offline), as before; each run's `mode` is the run mode (full/demo/quick).
    """
    runs = _runs_of(_read_table(path), sweep["sweep_id"]) if sweep.get("sweep_id") else []
    return {"sweep_id": sweep.get("sweep_id"), "method": sweep.get("method"), "mode": sweep.get("wandb_mode"),
            "run_mode": sweep.get("mode"), "config": sweep.get("config"), "data": sweep.get("data"), "runs": runs}


def run_sweep(root, count: int, method: str | None = None, input_size: int | None = None,
              epochs: int | None = None, sweep_id: str | None = None, config: dict | None = None,
              path: str | os.PathLike = SWEEP_RUNS, progress: bool = False) -> dict:
    """Run `count` more runs of a sweep on `root`; return the sweep and all its runs (earlier ones too).

    A new sweep: online `wandb.sweep` creates it on the server, offline it gets a `local-...` id.
    `sweep_id`: continue that sweep (offline as well as online) with its stored config; settings
    that disagree with it are an error. Every run is appended to the runs table at `path` as it ends.
    `config` defaults to `sweep_config(method or "bayes", input_size, epochs)`. `count=0` changes nothing.
    """
    if count < 0:
        raise UserError(f"count must be >= 0, got {count}")
    if count == 0:  # nothing to run: create nothing, write nothing
        return _payload(_read_table(path)["sweeps"].get(sweep_id, {"sweep_id": sweep_id}), path)
    import wandb

    data_lib.check_dataset(root)  # a bad dataset is a one-line error now, not after the first run's decode
    wandb_mode = tracking.setup_wandb()
    online = wandb_mode == "online"
    fingerprint, mode = data_lib.data_fingerprint(root), run_mode(data_lib.is_demo(root))
    if sweep_id:
        sweep = _continued_sweep(sweep_id, path, online, wandb_mode, fingerprint, mode)
        _check_same_settings(sweep, config, input_size, epochs)
        if method and sweep.get("method") not in (method, "server"):
            raise UserError(f"sweep {sweep_id} uses method {sweep.get('method')}, not {method}")
    else:
        config = config or sweep_config(method or "bayes", input_size, epochs)
        sweep = {"sweep_id": create_sweep(config) if online else new_local_id(), "method": config["method"],
                 "wandb_mode": wandb_mode, "config": json.loads(json.dumps(config, default=plain_value)),
                 "created": _now(), "data": fingerprint, "mode": mode}
    _register_sweep(sweep, path)
    sweep_id = sweep["sweep_id"]
    print(f"Sweep {sweep_id}: {count} more run(s). If this stops, continue it with\n"
          f"  {agent_command(sweep_id, count, data=root, path=path)}\n"
          f"or in Python: sweep.run_sweep(root, {count}, sweep_id={sweep_id!r})")
    if sweep_id.startswith("local-"):
        _offline_sweep(sweep, root, count, path, progress)
    else:
        first = len(_runs_of(_read_table(path), sweep_id))
        counter = iter(range(first, first + 10**6))
        wandb.agent(sweep_id, project=tracking.PROJECT, entity=tracking.ENTITY, count=count,
                    function=lambda: _logged_run({}, root, next(counter), sweep, path, progress))
    return _payload(sweep, path)


def run_agents_on_gpus(root, sweep_id: str, count: int, gpus: int, input_size: int | None = None,
                       epochs: int | None = None, path: str | os.PathLike = SWEEP_RUNS) -> dict:
    """One agent per GPU (e.g. Kaggle's 2xT4), each a subprocess with its own CUDA_VISIBLE_DEVICES.

    Every agent appends its runs to the one table at `path` as they finish (under its lock), so a
    killed agent keeps its finished runs; the result holds this sweep's runs only, never a stale
    file's. One agent per *large* GPU is enough: a run already fills an H100/H200 (see the README).
    """
    per_gpu = [count // gpus + (i < count % gpus) for i in range(gpus)]
    agents = []
    for gpu, n in enumerate(per_gpu):
        if n == 0:
            continue
        command = [sys.executable, "-m", "shared", "sweep", "--data", str(root), "--sweep-id", sweep_id,
                   "--count", str(n), "--runs", str(path)]
        command += ["--input-size", str(input_size)] if input_size else []
        command += ["--epochs", str(epochs)] if epochs else []
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": str(gpu)}
        # stdout is the agent's JSON result, which the table already holds; progress goes to stderr.
        agents.append((gpu, subprocess.Popen(command, env=env, cwd=REPO_ROOT, stdout=subprocess.DEVNULL)))
    for gpu, agent in agents:
        if agent.wait() != 0:
            print(f"The agent on GPU {gpu} exited with status {agent.returncode}; the runs it finished are "
                  f"kept in {path}. Continue with: {agent_command(sweep_id, count, data=root, path=path)}")
    table = _read_table(path)
    return _payload(table["sweeps"].get(sweep_id, {"sweep_id": sweep_id, "method": "server",
                                                    "wandb_mode": "online"}), path)


# --------------------------------------------------------------------------------------------
# Reading results back
# --------------------------------------------------------------------------------------------
def _runs_from_api(sweep_id: str) -> list[dict]:
    """A server sweep's runs from the W&B API (runs of every agent and machine), as table records."""
    import wandb

    api = wandb.Api()
    sweep = api.sweep(sweep_id if sweep_id.count("/") == 2 else
                      f"{tracking.ENTITY or api.default_entity}/{tracking.PROJECT}/{sweep_id}")
    records = []
    for run in sweep.runs:
        summary = {key: run.summary.get(key) for key in (*_SUMMARY_KEYS, "params", "macs")}
        summary["data"] = dict(summary["data"]) if summary["data"] else None
        records.append({**summary, "config": dict(run.config), "state": summary["state"] or run.state,
                        "name": run.name, "created": run.created_at, "sweep_id": summary["sweep_id"] or sweep_id})
    return records


def load_runs(sweep_id: str | None = None, path: str | os.PathLike = SWEEP_RUNS, root=None) -> list[dict]:
    """Runs from the table at `path` (or, for a W&B server sweep, the W&B API when it is reachable).

    `sweep_id`: only that sweep's runs (None: every sweep's). `root`: only the runs made on that
    data in the current mode; the others are counted in one printed line. Introduced in Part-A/02.
    """
    runs = None
    if sweep_id and not sweep_id.startswith("local-") and tracking.setup_wandb(verbose=False) == "online":
        try:
            runs = _runs_from_api(sweep_id)
        except Exception as err:  # no network, unknown id: say so and use the local table
            print(f"W&B API unavailable for sweep {sweep_id} ({type(err).__name__}: {err}); using {path}")
    if not runs:
        table = _read_table(path)
        runs = _runs_of(table, sweep_id) if sweep_id else table["runs"]
    return matching_runs(runs, root) if root is not None else runs


def best_config(root=None, sweep_id: str | None = None, path: str | os.PathLike = SWEEP_RUNS,
                ) -> tuple[CNNConfig, TrainConfig, str]:
    """(CNNConfig, TrainConfig, where it came from) of the best finished run made on `root`'s data.

    Runs on other data or in another mode (the demo sweep's digits winner, a test's quick run) are
    ignored, with one printed line. `root=None` finds the data as the notebooks do (`data.find_data`).
    Without a usable run: the documented default. Introduced in Part-A/03.
    """
    if root is not None and not Path(root).is_dir():
        raise UserError(f"best_config: {root!r} is not a data folder; call best_config(root, sweep_id=...)")
    root = data_lib.find_data() if root is None else root
    runs = [r for r in load_runs(sweep_id, path, root=root)
            if r.get("val_acc") is not None and r.get("state") == "finished"]
    if not runs:
        print(f"No finished sweep runs on this data ({path}); using the documented default config "
              f"(shared.sweep.DEFAULT_CNN / DEFAULT_TRAIN).")
        return DEFAULT_CNN, DEFAULT_TRAIN, "default"
    best = max(runs, key=lambda r: r["val_acc"])
    source = f"sweep run {best.get('name', '?')} of {best.get('sweep_id')} (val_acc {best['val_acc']:.4f})"
    return CNNConfig.from_dict(best["config"]), TrainConfig.from_dict(best["config"]), source


def early_termination_summary(runs: list[dict]) -> dict:
    """What hyperband saved (Question 2): epochs run vs asked, runs stopped, seconds spent and saved.

    `seconds_saved` is an estimate: for each stopped run, its epochs not run x its mean epoch time.
    Epochs a run skipped through its own patience are not counted as saved by the sweep.
    Introduced in Part-A/02.
    """
    counted = [r for r in runs if r.get("epochs_asked")]
    stopped = [r for r in counted if r.get("state") == "stopped"]
    spent = sum(sum(r.get("epoch_seconds") or []) for r in counted)
    saved = sum((r["epochs_asked"] - r["epochs_run"]) * float(np.mean(r["epoch_seconds"]))
                for r in stopped if r.get("epoch_seconds"))
    return {"runs": len(counted), "stopped": len(stopped),
            "epochs_asked": sum(r["epochs_asked"] for r in counted),
            "epochs_run": sum(r.get("epochs_run", 0) for r in counted),
            "epochs_saved": sum(r["epochs_asked"] - r["epochs_run"] for r in stopped),
            "seconds_spent": spent, "seconds_saved": saved,
            "fraction_of_time_saved": saved / (spent + saved) if spent + saved else 0.0}
