"""The sweep controller: which sweep runs, which config comes next, and when a run stops. Introduced in Part-A/02.

Online the W&B server does this job; offline W&B's open-source engine (the `sweeps` package) does it here, fed
with runs-table records: it draws the next config, decides hyperband's stops, and holds W&B's config schema.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import random
import secrets

import numpy as np

from . import data as data_lib
from . import runs_table, tracking
from .model import CNNConfig, ConfigError
from .runs_table import plain_value, read_table, register_sweep
from .runtime import UserError, run_mode
from .train import TrainConfig

METHODS = ("bayes", "random", "grid")  # what the engine runs (the W&B schema also names "custom")


def check_sizes(input_size=None, epochs=None) -> None:
    """Refuse an input size or epoch count that `train` would refuse, with its message; None is "not given"."""
    for key, value in (("input_size", input_size), ("epochs", epochs)):
        if value is not None and (problem := _field_problem(key, value)):
            raise ConfigError(problem)


def _config_problem(config) -> str | None:
    """What makes a sweep config unusable by the engine or by a run (None: nothing)."""
    if not isinstance(config, dict) or not isinstance(config.get("parameters"), dict):
        return f"the config is {json.dumps(config, default=str)[:60]}, not a sweep config with parameters"
    if config.get("method") not in METHODS:
        return f"method {config.get('method')!r} is not one of {', '.join(METHODS)}"
    engine = _engine()
    try:
        engine.SweepConfig(config)  # W&B's own schema: distributions, metric, early_terminate
        if config.get("early_terminate"):
            engine.stop_runs(config, [])  # hyperband's bands: a max_iter/s the schema allows can leave none
    except Exception as err:  # jsonschema's ValidationError or the engine's ValueError: the config's fault
        where = ".".join(map(str, getattr(err, "absolute_path", [])))
        return f"{where + ': ' if where else ''}{str(getattr(err, 'message', err)).splitlines()[0][:200].rstrip('.')}"
    for key, spec in config["parameters"].items():  # every value a run would be refused for, refused now
        spec = spec if isinstance(spec, dict) else {}
        for value in [*spec.get("values", []), *(spec[k] for k in ("value", "min", "max") if k in spec)]:
            if problem := _field_problem(key, value):
                return problem
    return None


def _field_problem(key: str, value) -> str | None:
    """Why `train` would refuse this one CNNConfig/TrainConfig field's value (None: it would not, or not a field)."""
    owner = next((cls for cls in (CNNConfig, TrainConfig) if key in cls.__dataclass_fields__), None)
    try:
        if owner is not None:
            owner(**{key: value})
    except ConfigError as err:
        return str(err)
    except TypeError:  # a comparison with a string, say
        return f"{key} {value!r} has the wrong type ({type(owner.__dataclass_fields__[key].default).__name__} expected)"
    return None


# The engine: drawing configs and hyperband
def _engine():
    """W&B's open-source sweep engine, imported late (it is slow) and without its pydantic-1 warnings."""
    import warnings

    with warnings.catch_warnings():
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
    """Why the engine's hyperband (the W&B server's rule) stops the run with this `history` now, or None;
    `earlier` holds the sweep's other records. Introduced in Part-A/02."""
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


def draw_config(config: dict, sweep_id: str, earlier: list[dict], running: list[dict], index: int) -> dict | None:
    """The engine's next config, given the sweep's runs so far and the ones other agents are training now.
    `random` and numpy (what the engine draws from) are seeded from the sweep id and the draw's number (never
    handed out twice), so a sweep is reproducible and a second agent draws a new config; then they are restored."""
    runs = [*(_as_sweep_run(record, config) for record in earlier),
            *(_as_sweep_run({"config": params}, config, running=True) for params in running)]
    seed = int(hashlib.sha1(f"{sweep_id}/{index}".encode()).hexdigest()[:8], 16)
    python_state, numpy_state = random.getstate(), np.random.get_state()
    random.seed(seed)
    np.random.seed(seed)
    try:
        suggestion = _engine().next_run(config, runs)
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)
    return None if suggestion is None else {k: plain_value(v["value"]) for k, v in suggestion.config.items()}


# Which sweep: continued by id, an unfinished one, or a new one
def new_local_id() -> str:
    """An offline sweep's id: `local-` + time + a random suffix (two sweeps in one second differ)."""
    return f"local-{datetime.datetime.now():%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def _continued_sweep(sweep_id: str, path, wandb_mode: str, fingerprint: dict, mode: str, method,
                     config: dict | None, input_size, epochs) -> dict:
    """The stored description of sweep `sweep_id`, checked against the data and mode in use. Its stored config
    wins: asking for other settings is an error, not a mix."""
    sweeps = read_table(path)["sweeps"]
    sweep = sweeps.get(sweep_id)
    if not sweep_id.startswith("local-"):  # a W&B server sweep: the controller holds its config
        if wandb_mode != "online":
            raise UserError(f"sweep {sweep_id} lives on the W&B server, but W&B is {wandb_mode} here: set "
                            f"WANDB_API_KEY (or run `wandb login`) to join it, or leave out the sweep id")
        sweep = sweep or {"sweep_id": sweep_id, "method": "server", "wandb_mode": wandb_mode, "config": None,
                          "created": runs_table.now(), "data": fingerprint, "mode": mode}
    elif sweep is None:
        known = sorted(s for s in sweeps if s.startswith("local-"))
        raise UserError(f"no local sweep {sweep_id} in {path}; local sweeps there: {', '.join(known) or 'none'}")
    elif problem := _config_problem(sweep.get("config")):
        raise UserError(f"sweep {sweep_id} in {path}: {problem}; fix its config there, or leave out the sweep id "
                        f"to start a new sweep")
    if sweep.get("data") and not data_lib.same_data(sweep["data"], fingerprint):
        raise UserError(f"sweep {sweep_id} was made on other data ({runs_table.describe_data(sweep['data'])}); "
                        f"continue it on that data, or leave out the sweep id to start a new sweep here")
    if sweep.get("mode") and sweep["mode"] != mode:
        raise UserError(f"sweep {sweep_id} was made in {sweep['mode']} mode, this is {mode} mode; "
                        f"leave out the sweep id to start a new sweep")
    stored = sweep.get("config") or {}
    params = stored.get("parameters", {})
    for flag, value in (("input_size", input_size), ("epochs", epochs)):
        if value is not None and stored and params.get(flag) != {"value": int(value)}:
            raise UserError(f"sweep {sweep_id} has {flag} {params.get(flag)}, not {value}: leave it out "
                            f"to continue the sweep, or leave out the sweep id to start a new one")
    if config is not None and stored and _plain(config) != stored:
        raise UserError(f"sweep {sweep_id} was made with another sweep config: leave out config to "
                        f"continue it, or leave out the sweep id to start a new sweep")
    if method and sweep.get("method") not in (method, "server"):
        raise UserError(f"sweep {sweep_id} uses method {sweep.get('method')}, not {method}")
    return sweep


def _plain(config: dict) -> dict:
    """A config as the table stores it (plain JSON values): what stored configs are compared with."""
    return json.loads(json.dumps(config, default=plain_value))


def resolve_sweep(root, count: int, method, input_size, epochs, sweep_id, config: dict, path, new: bool):
    """(the sweep to run, how many runs), registered in the table: sweep `sweep_id` continued with its stored
    config; else an unfinished sweep of `config` on this data and mode (and W&B mode) gets `count` more runs,
    never past its own count (a rerun after a lost session finishes it); else, or when `new`, a new sweep:
    created on the W&B server online, a local id offline."""
    data_lib.check_dataset(root)  # a bad dataset is a one-line error now, not after the first run's decode
    wandb_mode = tracking.setup_wandb()
    online = wandb_mode == "online"
    fingerprint, mode = data_lib.data_fingerprint(root), run_mode(data_lib.is_demo(root))
    if sweep_id:
        sweep = _continued_sweep(sweep_id, path, wandb_mode, fingerprint, mode, method, config, input_size, epochs)
    else:
        config = _plain(config)
        if problem := _config_problem(config):
            raise UserError(f"the sweep config: {problem}; fix it before starting the sweep")
        found = None if new else runs_table.unfinished_sweep(path, config, fingerprint, mode, online)
        if found:
            sweep, done = found
            count = min(count, sweep["count"] - done)
            print(f"Continuing the unfinished sweep {sweep['sweep_id']} (same config, data and mode; {done} of "
                  f"its {sweep['count']} runs done or running): {count} more. sweep_id=\"new\" starts a new "
                  f"sweep instead; continuing it by its id adds runs past its count.")
        else:
            if online:
                import wandb

                sweep_id = wandb.sweep(config, project=tracking.PROJECT, entity=tracking.ENTITY)
            sweep = {"sweep_id": sweep_id or new_local_id(), "method": config["method"], "wandb_mode": wandb_mode,
                     "config": config, "created": runs_table.now(), "data": fingerprint, "mode": mode,
                     "count": count}
    register_sweep(sweep, path)
    return sweep, count


def early_termination_summary(runs: list[dict]) -> dict:
    """What hyperband saved (Question 2): epochs run vs asked, runs stopped, seconds spent and saved (a stopped
    run's epochs not run, at its mean epoch time; its own patience's are not counted). Introduced in Part-A/02."""
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
