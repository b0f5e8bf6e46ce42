"""The sweep runs table: every run of every sweep in one JSON file that several agents share. Introduced in Part-A/02.

`outputs/sweep_runs.json` (runtime.SWEEP_RUNS) is `{"sweeps": {sweep_id: how it was made}, "runs": [record, ...]}`.
A record (`sweep.train_one` makes it) is appended under a file lock, atomically, the moment its run ends, so a
killed agent loses only the run in progress. Its state is "finished", "stopped" (the sweep's hyperband;
`stop_reason` says why) or "failed" (`error` says why). A run being trained is a *claim* (`claim_next`), so two
agents of one offline sweep never draw the same config. Readers use only the runs made on the data and in the mode
in use (`matching_runs`).
"""
from __future__ import annotations

import contextlib
import datetime
import json
import math
import os
import secrets
from collections import Counter
from pathlib import Path

from filelock import FileLock, Timeout

from . import data as data_lib
from . import tracking
from .runtime import SWEEP_RUNS, UserError, atomic_path, json_kind, run_mode, save_json

# Record keys that also go to a W&B run's summary, so `load_runs` can rebuild records from the API.
SUMMARY_KEYS = ("val_acc", "best_epoch", "state", "error", "sweep_id", "data", "mode", "input_size",
                "epochs_asked", "epochs_run", "stop_reason")
_FIX = "fix it by hand or move the file aside to start a new runs table"


def plain_value(value):
    """numpy scalars (what the sweeps package suggests) -> Python values that JSON and W&B accept."""
    return value.item() if hasattr(value, "item") else value


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def is_result(run: dict) -> bool:
    """Whether a run can be a sweep's best: finished, with a finite val_acc (None, NaN and inf never count)."""
    value = run.get("val_acc")
    return (run.get("state") == "finished" and isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def best_of(runs: list[dict]) -> dict | None:
    """The result (`is_result`) with the highest val_acc, the first of equals, or None: the one rule behind the
    best model a sweep saves (`append_run`), reads back (`sweep.best_config`, `sweep.best_saved_model`) and reports."""
    results = [run for run in runs if is_result(run)]
    return max(results, key=lambda run: run["val_acc"]) if results else None


# Reading, with one-line refusals of what a hand edit can break
def read_table(path) -> dict:
    """The runs table as {"sweeps": {...}, "runs": [...]}; a missing file is an empty table. An older one-sweep
    table is read as that sweep. What cannot be read is a one-line UserError, and never overwritten."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"the runs table {path} is a folder; give a file name, e.g. {path / 'sweep_runs.json'}")
    if not path.exists():
        return {"sweeps": {}, "runs": []}
    try:
        table = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as err:
        raise UserError(f"{path} is not UTF-8 text (byte {err.start}); {_FIX}") from None
    except json.JSONDecodeError as err:
        raise UserError(f"{path} is not valid JSON ({err}); {_FIX}") from None
    if not isinstance(table, dict):
        raise UserError(f"{path} holds a JSON {type(table).__name__}, not a runs table "
                        f'({{"sweeps": {{...}}, "runs": [...]}}); {_FIX}')
    kind, words = json_kind(table)
    if kind != "runs table":  # never read as empty: the next write would replace it
        raise UserError(f"{path} holds {words}, not a runs table; give the runs table's path, or {_FIX}")
    table = table if "sweeps" in table else _from_legacy(table)  # both kinds of runs table have "runs"
    for key, kind, words in (("sweeps", dict, "an object"), ("runs", list, "a list")):
        if not isinstance(table[key], kind):
            raise UserError(f'{path}: "{key}" is a JSON {type(table[key]).__name__}, not {words}; {_FIX}')
    for sweep_id, sweep in table["sweeps"].items():
        if not isinstance(sweep, dict):
            raise UserError(f"{path}: sweep {sweep_id} is not a JSON object; {_FIX}")
    for number, run in enumerate(table["runs"]):
        if problem := _run_problem(run):
            raise UserError(f"{path}: run {number} {problem}; {_FIX}")
    return table


def _from_legacy(table: dict) -> dict:
    """An older one-sweep table; its runs carry no data fingerprint, so `matching_runs` will not use them."""
    old_id = table.get("sweep_id") or "unknown"
    sweeps = {old_id: {"sweep_id": old_id, "method": table.get("method"), "wandb_mode": table.get("mode"),
                       "config": table.get("config")}}
    runs = table["runs"]
    for run in runs if isinstance(runs, list) else []:
        if isinstance(run, dict):
            run.setdefault("sweep_id", old_id)
    return {"sweeps": sweeps, "runs": runs}


def _run_problem(run) -> str | None:
    """What makes one record unusable to the readers (None: nothing)."""
    if not isinstance(run, dict):
        return "is not a JSON object"
    if not isinstance(run.get("config", {}), dict):
        return f"has config {json.dumps(run.get('config'))[:40]}, not an object"
    if not isinstance(run.get("history", []), list):
        return "has a history that is not a list"
    value = run.get("val_acc")
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
        return f"has val_acc {json.dumps(value)[:40]}, not a number"
    return None


def runs_of(table: dict, sweep_id: str) -> list[dict]:
    return [run for run in table["runs"] if run.get("sweep_id") == sweep_id]


# Writing: under the lock, atomically, one run per line
@contextlib.contextmanager
def locked(path):
    """Hold the lock of the table at `path` (its companion .lock file): agents on one table queue here.
    The OS releases a file lock when its process dies, so a killed agent never leaves a stale lock."""
    lock = FileLock(f"{path}.lock")
    try:
        Path(lock.lock_file).parent.mkdir(parents=True, exist_ok=True)
        lock.acquire()
    except OSError as err:  # a folder in the way, a path under a file, no permission
        raise UserError(f"the runs table {path} cannot be written ({err.strerror or err}); "
                        f"choose another place") from None
    try:
        yield
    finally:
        lock.release()


def _write_table(table: dict, path) -> None:
    """Write atomically, one compact line per run: json's fast C encoder (`indent=` is pure Python), still
    easy to read and diff."""
    runs = ",\n".join(json.dumps(run, default=plain_value) for run in table["runs"])
    sweeps = json.dumps(table["sweeps"], indent=1, default=plain_value)
    with atomic_path(path) as tmp:
        tmp.write_text(f'{{"sweeps": {sweeps},\n"runs": [\n{runs}\n]}}\n', encoding="utf-8")


def append_run(record: dict, path: str | os.PathLike = SWEEP_RUNS, on_best=None) -> bool:
    """Add one finished, stopped or failed run to the table; return whether it is its sweep's best result so far,
    and then call `on_best()` still under the lock, so two agents cannot save their best weights in the wrong
    order. Introduced in Part-A/02."""
    with locked(path):
        table = read_table(path)
        earlier = best_of(runs_of(table, record.get("sweep_id")))
        table["runs"].append(record)
        _write_table(table, path)
        best = is_result(record) and (earlier is None or record["val_acc"] > earlier["val_acc"])
        if best and on_best:
            on_best()
    return best


def register_sweep(sweep: dict, path) -> None:
    """Note how a sweep was made (config, data, mode, count) the first time one of its runs is due."""
    with locked(path):
        table = read_table(path)
        table["sweeps"].setdefault(sweep["sweep_id"], sweep)
        _write_table(table, path)


# Claims: the runs being trained now, so that agents of one offline sweep never draw the same config
def _live_claims(path) -> list[dict]:
    """The claims whose agent still holds the claim's lock (call it under the table's lock). A dead agent's
    claim is removed: the OS released its lock when the agent died."""
    live = []
    for file in sorted(Path(f"{path}.claims").glob("*.claim")):
        lock = FileLock(f"{file}.lock")
        try:
            lock.acquire(timeout=0)
        except Timeout:  # its agent trains that run now
            with contextlib.suppress(OSError, ValueError):
                live.append(json.loads(file.read_text()))
        else:
            lock.release()
            file.unlink(missing_ok=True)
            Path(lock.lock_file).unlink(missing_ok=True)
    return live


@contextlib.contextmanager
def claim_next(path, sweep_id: str, draw):
    """Draw a sweep's next run and mark it running, in one step under the table's lock; the claim ends with the block.
    `draw(earlier, running, index) -> params or None` gets the sweep's records, the params of the runs other
    agents train now, and this draw's number, never handed out twice (it seeds the draw and names the run).
    Yields {"index", "params", "earlier"}, or None when `draw` has nothing left (an exhausted grid)."""
    folder = Path(f"{path}.claims")
    with locked(path):
        folder.mkdir(exist_ok=True)
        earlier = runs_of(read_table(path), sweep_id)
        running = [claim["params"] for claim in _live_claims(path) if claim.get("sweep_id") == sweep_id]
        draws = {}  # how many configs each sweep has handed out: a dead agent's draw is not handed out again
        with contextlib.suppress(OSError, ValueError, AttributeError):
            draws = {key: n for key, n in json.loads((folder / "draws.json").read_text()).items()
                     if isinstance(n, int)}
        index = max(draws.get(sweep_id, 0), len(earlier) + len(running))
        params = draw(earlier, running, index)
        if params is not None:
            claim = folder / f"{secrets.token_hex(8)}.claim"
            lock = FileLock(f"{claim}.lock")
            lock.acquire()  # held while the run trains: it tells `_live_claims` that this agent is alive
            claim.write_text(json.dumps({"sweep_id": sweep_id, "index": index, "params": params, "claimed": now()},
                                        default=plain_value))
            save_json({**draws, sweep_id: index + 1}, folder / "draws.json")
    if params is None:
        yield None
        return
    try:
        yield {"index": index, "params": params, "earlier": earlier}
    finally:
        claim.unlink(missing_ok=True)
        lock.release()
        Path(lock.lock_file).unlink(missing_ok=True)


# Which runs to trust: the data and mode in use
def describe_data(fingerprint: dict) -> str:
    return "demo digits" if fingerprint.get("demo") else fingerprint.get("root", "?")


def _why_not_usable(run: dict, fingerprint: dict, mode: str) -> str | None:
    """Why a run cannot stand for the data in use (None: it can)."""
    if not run.get("data"):
        return "with no data record (an older table)"
    if not data_lib.same_data(run["data"], fingerprint):
        return f"on other data ({describe_data(run['data'])})"
    if run.get("mode") != mode:
        return f"in {run.get('mode')} mode"
    return None


def matching_runs(runs: list[dict], root) -> list[dict]:
    """The runs made on `root`'s data in the current mode; the others are counted in one printed line."""
    fingerprint, mode = data_lib.data_fingerprint(root), run_mode(data_lib.is_demo(root))
    reasons = [_why_not_usable(run, fingerprint, mode) for run in runs]
    kept = [run for run, reason in zip(runs, reasons) if reason is None]
    ignored = Counter(reason for reason in reasons if reason)
    if ignored:
        parts = [f"{n} run{'s' * (n != 1)} made {reason}" for reason, n in ignored.items()]
        print(f"Ignored {'; '.join(parts)}: using the {len(kept)} made on {describe_data(fingerprint)} "
              f"in {mode} mode.")
    return kept


def unfinished_sweep(path, config: dict, fingerprint: dict, mode: str, online: bool) -> tuple[dict, int] | None:
    """(the latest sweep of this config, data and mode with fewer runs done or running than its count, how
    many it has), or None. Online only W&B server sweeps count, offline only local ones."""
    with locked(path):
        table, claims = read_table(path), _live_claims(path)
    done = Counter(run.get("sweep_id") for run in [*table["runs"], *claims])
    candidates = [sweep for sweep in table["sweeps"].values()
                  if sweep.get("config") == config and sweep.get("mode") == mode
                  and data_lib.same_data(sweep.get("data"), fingerprint)
                  and isinstance(sweep.get("count"), int) and done[sweep.get("sweep_id")] < sweep["count"]
                  and online != str(sweep.get("sweep_id")).startswith("local-")]
    if not candidates:
        return None
    latest = max(candidates, key=lambda sweep: str(sweep.get("created", "")))
    return latest, done[latest["sweep_id"]]


# Reading results back
def _runs_from_api(sweep_id: str) -> list[dict]:
    """A server sweep's runs from the W&B API (runs of every agent and machine), as table records."""
    import wandb

    api = wandb.Api()
    sweep = api.sweep(sweep_id if sweep_id.count("/") == 2 else
                      f"{tracking.ENTITY or api.default_entity}/{tracking.PROJECT}/{sweep_id}")
    records = []
    for run in sweep.runs:
        summary = {key: run.summary.get(key) for key in (*SUMMARY_KEYS, "params", "macs")}
        summary["data"] = dict(summary["data"]) if summary["data"] else None
        records.append({**summary, "config": dict(run.config), "state": summary["state"] or run.state,
                        "name": run.name, "created": run.created_at, "sweep_id": summary["sweep_id"] or sweep_id})
    return records


def load_runs(sweep_id: str | None = None, path: str | os.PathLike = SWEEP_RUNS, root=None) -> list[dict]:
    """Runs from the table at `path`, or for a W&B server sweep from the W&B API when it is reachable: only
    sweep `sweep_id`'s (None: every sweep's), only those made on `root`'s data in the current mode (None: all).
    Introduced in Part-A/02."""
    runs = None
    if sweep_id and not sweep_id.startswith("local-") and tracking.setup_wandb(verbose=False) == "online":
        try:
            runs = _runs_from_api(sweep_id)
        except Exception as err:  # no network, unknown id: say so and use the local table
            print(f"W&B API unavailable for sweep {sweep_id} ({type(err).__name__}: {err}); using {path}")
    if not runs:
        table = read_table(path)
        runs = runs_of(table, sweep_id) if sweep_id else table["runs"]
    return matching_runs(runs, root) if root is not None else runs
