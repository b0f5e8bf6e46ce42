"""The sweep runs table: every run of every sweep in one JSON file that several agents share.

Introduced in Part-A/02 (split out of shared/sweep.py, which runs the sweeps).
`outputs/sweep_runs.json` (runtime.SWEEP_RUNS) is `{"sweeps": {sweep_id: how it was made}, "runs": [record, ...]}`.
A record is appended, under a file lock and atomically, the moment its run ends, so Ctrl-C, a lost Colab
session or a killed agent loses only the run in progress. A record: config (flat: every CNNConfig and
TrainConfig field plus the sweep's own keys such as `base_filters`), val_acc, state, error, name, created,
params, macs, epoch_seconds, best_epoch, images_per_second, history, skipped, sweep_id, data
(`data.data_fingerprint`), mode (`runtime.run_mode`), input_size, epochs_asked, epochs_run, and stop_reason
for a stopped run. `state` is "finished" (every epoch, or ended by its own patience), "stopped" (ended by the
sweep's hyperband) or "failed" (out of memory, diverged: `error` says which).

A run being trained is a *claim* (`claim_next`): drawn and marked running in one step under the lock, so two
agents of one offline sweep never draw the same config. Readers (`load_runs`, `matching_runs`) use only the
runs made on the data and in the mode in use.
"""
from __future__ import annotations

import contextlib
import datetime
import json
import math
import os
import secrets
from pathlib import Path

from . import data as data_lib
from . import tracking
from .runtime import SWEEP_RUNS, UserError, atomic_path, check_output_file, json_kind, run_mode, save_json

try:  # one process at a time may change the runs table (POSIX: Linux, macOS, Colab, Kaggle)
    import fcntl
except ImportError:  # Windows: no lock; run one agent per table there
    fcntl = None

# Record keys that also go to a W&B run's summary, so `load_runs` can rebuild records from the API.
SUMMARY_KEYS = ("val_acc", "best_epoch", "state", "error", "sweep_id", "data", "mode", "input_size",
                "epochs_asked", "epochs_run", "stop_reason")
_FIX = "fix it by hand or move the file aside to start a new runs table"


def plain_value(value):
    """numpy scalars (what the sweeps package suggests) -> Python values that JSON and W&B accept."""
    return value.item() if hasattr(value, "item") else value


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def finite_val_acc(run: dict) -> bool:
    """Whether a run has a usable accuracy: a number that is not NaN or infinite (None, NaN and inf never count)."""
    value = run.get("val_acc")
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def is_result(run: dict) -> bool:
    """Whether a run can be a sweep's best: finished, with a finite val_acc (a stopped or failed run never is)."""
    return run.get("state") == "finished" and finite_val_acc(run)


def best_of(runs: list[dict]) -> dict | None:
    """The result (`is_result`) with the highest val_acc, the first of equals; None without one. The one rule
    behind the best model saved as a sweep runs (`append_run`), read back (`sweep.best_finished_run`) and reported."""
    results = [run for run in runs if is_result(run)]
    return max(results, key=lambda run: run["val_acc"]) if results else None


# --------------------------------------------------------------------------------------------
# Reading, with one-line refusals of what a hand edit can break
# --------------------------------------------------------------------------------------------
def check_table_path(path) -> None:
    """Refuse, before any work, a runs-table path that is a folder, lies under a file, or cannot be written."""
    check_output_file(path, "the runs table", "runs table", "sweep_runs.json")


def _refuse_folder(path: Path) -> None:
    if path.is_dir():
        raise UserError(f"the runs table {path} is a folder; give a file name, e.g. {path / 'sweep_runs.json'}")


def read_table(path) -> dict:
    """The runs table as {"sweeps": {...}, "runs": [...]}; a missing file is an empty table.

    A table from before sweeps were kept apart ({"runs", "sweep_id", ...}) is read as that one sweep; its
    runs carry no data fingerprint, so `matching_runs` will not use them. What cannot be read is never
    overwritten (it may hold results): it is a one-line UserError that names the file.
    """
    path = Path(path)
    _refuse_folder(path)
    if not path.exists():
        return {"sweeps": {}, "runs": []}
    try:
        table = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as err:
        raise UserError(f"{path} is not UTF-8 text (byte {err.start}); {_FIX}") from None
    except json.JSONDecodeError as err:
        raise UserError(f"{path} is not valid JSON ({err}); {_FIX}") from None
    kind, words = json_kind(table)
    if isinstance(table, dict) and kind != "runs table":  # never read as an empty table: the next write would replace what it holds
        raise UserError(f"{path} holds {words}, not a runs table; give the runs table's path, or {_FIX}")
    if isinstance(table, dict) and "sweeps" not in table:
        table = _from_legacy(table)
    _check_table(table, path)
    return table


def _from_legacy(table: dict) -> dict:
    old_id = table.get("sweep_id") or "unknown"
    sweeps = {old_id: {"sweep_id": old_id, "method": table.get("method"), "wandb_mode": table.get("mode"),
                       "config": table.get("config")}}
    runs = table.get("runs", [])
    for run in runs if isinstance(runs, list) else []:
        if isinstance(run, dict):
            run.setdefault("sweep_id", old_id)
    return {"sweeps": sweeps, "runs": runs}


def _check_table(table, path) -> None:
    """Refuse a table whose shape the readers cannot use (checked on every read: about 20 ms for 20,000 runs)."""
    if not isinstance(table, dict):
        raise UserError(f"{path} holds a JSON {type(table).__name__}, not a runs table "
                        f'({{"sweeps": {{...}}, "runs": [...]}}); {_FIX}')
    table.setdefault("runs", [])
    for key, kind in (("sweeps", dict), ("runs", list)):
        if not isinstance(table[key], kind):
            raise UserError(f'{path}: "{key}" is a JSON {type(table[key]).__name__}, not a{"n" * (kind is dict)} '
                            f"{'object' if kind is dict else 'list'}; {_FIX}")
    bad_sweep = next((sid for sid, sweep in table["sweeps"].items() if not isinstance(sweep, dict)), None)
    if bad_sweep is not None:
        raise UserError(f"{path}: sweep {bad_sweep} is not a JSON object; {_FIX}")
    for number, run in enumerate(table["runs"]):
        problem = _run_problem(run)
        if problem:
            raise UserError(f"{path}: run {number} {problem}; {_FIX}")


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


# --------------------------------------------------------------------------------------------
# Writing: under the lock, atomically, one run per line
# --------------------------------------------------------------------------------------------
@contextlib.contextmanager
def locked(path):
    """Hold an exclusive lock on `path`'s companion .lock file: agents on one table queue here.

    fcntl.flock is released by the OS when a process dies, so a killed agent never leaves a stale lock.
    """
    lock_path = Path(path).with_name(Path(path).name + ".lock")
    try:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        lock = open(lock_path, "a")
    except OSError as err:  # a folder in the way, a path under a file, no permission
        raise UserError(f"the runs table {path} cannot be written ({err.strerror}); choose another place") from None
    with lock:
        if fcntl:
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl:
                fcntl.flock(lock, fcntl.LOCK_UN)


def _write_table(table: dict, path) -> None:
    """Write atomically, one run per line: json.dumps with `indent` is pure Python (about 5x slower on a
    20,000-run table), while one compact line per run uses the C encoder and still reads and diffs well."""
    runs = ",\n".join(json.dumps(run, default=plain_value) for run in table["runs"])
    sweeps = json.dumps(table["sweeps"], indent=1, default=plain_value)
    with atomic_path(path) as tmp:
        tmp.write_text(f'{{"sweeps": {sweeps},\n"runs": [\n{runs}\n]}}\n', encoding="utf-8")


def _change_table(path, change):
    """Read, change and atomically rewrite the table; the caller holds its lock (so no run is ever dropped)."""
    table = read_table(path)
    answer = change(table)
    _write_table(table, path)
    return answer


def _update_table(path, change):
    with locked(path):
        return _change_table(path, change)


def append_run(record: dict, path: str | os.PathLike = SWEEP_RUNS, on_best=None) -> bool:
    """Add one finished, stopped or failed run to the table. Introduced in Part-A/02.

    Returns whether it is its sweep's best finished run so far (a finite val_acc above every earlier one's);
    then `on_best()` is called while the lock is still held, so that two agents finishing at once cannot save
    their weights in the wrong order (the sweep keeps its best model this way).
    """
    def add(table):
        earlier = best_of(runs_of(table, record.get("sweep_id")))
        table["runs"].append(record)
        return is_result(record) and (earlier is None or record["val_acc"] > earlier["val_acc"])

    with locked(path):
        best = _change_table(path, add)
        if best and on_best:
            on_best()
    return best


def register_sweep(sweep: dict, path) -> None:
    """Note how a sweep was made (config, data, mode, count) the first time one of its runs is due."""
    _update_table(path, lambda table: table["sweeps"].setdefault(sweep["sweep_id"], sweep))


# --------------------------------------------------------------------------------------------
# Claims: the runs being trained now, so that agents of one offline sweep never draw the same config
# --------------------------------------------------------------------------------------------
def _claims_folder(path) -> Path:
    return Path(path).with_name(Path(path).name + ".claims")


def _live_claims(path) -> list[dict]:
    """The claims whose agent still holds its claim file's lock; a killed agent's claim is removed here.

    Call it under the table's lock. Without fcntl (Windows) no claim can be checked and none is kept: run
    one agent per table there.
    """
    live = []
    for file in sorted(_claims_folder(path).glob("*.claim")):
        with contextlib.suppress(OSError, ValueError), open(file) as handle:
            if fcntl:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:  # its agent holds the lock: that run is being trained now
                    live.append(json.loads(handle.read()))
                    continue
            file.unlink(missing_ok=True)  # its agent is gone: the OS released the lock when it died
    return live


def _hold_claim(path, claim: dict):
    """Write a claim file and keep it locked (the open handle) for as long as the run trains."""
    handle = open(_claims_folder(path) / f"{secrets.token_hex(8)}.claim", "w")
    if fcntl:
        fcntl.flock(handle, fcntl.LOCK_EX)
    handle.write(json.dumps(claim, default=plain_value))
    handle.flush()
    return handle


def _draws(path) -> dict:
    """How many configs each sweep has handed out (a hint: the runs and live claims bound it from below)."""
    with contextlib.suppress(OSError, ValueError):
        draws = json.loads((_claims_folder(path) / "draws.json").read_text())
        if isinstance(draws, dict):
            return {key: value for key, value in draws.items() if isinstance(value, int)}
    return {}


@contextlib.contextmanager
def claim_next(path, sweep_id: str, draw):
    """Draw a sweep's next run and mark it running, in one step under the table's lock; yield the claim.

    `draw(earlier, running, index) -> params or None`: `earlier` holds the sweep's records, `running` the
    params of the runs other agents train now, `index` this draw's number in the sweep, never handed out
    twice (it seeds the draw and names the run). Yields {"index", "params", "earlier"}, or None when `draw`
    has nothing left (an exhausted grid). The claim ends with the block; the record is appended inside it.
    """
    with locked(path):
        _claims_folder(path).mkdir(exist_ok=True)
        earlier = runs_of(read_table(path), sweep_id)
        running = [claim["params"] for claim in _live_claims(path) if claim.get("sweep_id") == sweep_id]
        draws = _draws(path)
        index = max(draws.get(sweep_id, 0), len(earlier) + len(running))
        params = draw(earlier, running, index)
        if params is not None:
            handle = _hold_claim(path, {"sweep_id": sweep_id, "index": index, "params": params, "claimed": now()})
            save_json({**draws, sweep_id: index + 1}, _claims_folder(path) / "draws.json")
    if params is None:
        yield None
        return
    try:
        yield {"index": index, "params": params, "earlier": earlier}
    finally:
        Path(handle.name).unlink(missing_ok=True)
        handle.close()


# --------------------------------------------------------------------------------------------
# Which runs to trust: the data and mode in use
# --------------------------------------------------------------------------------------------
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
    kept, ignored = [], {}
    for run in runs:
        reason = _why_not_usable(run, fingerprint, mode)
        if reason is None:
            kept.append(run)
        else:
            ignored[reason] = ignored.get(reason, 0) + 1
    if ignored:
        parts = [f"{n} run{'s' * (n != 1)} made {reason}" for reason, n in ignored.items()]
        print(f"Ignored {'; '.join(parts)}: using the {len(kept)} made on {describe_data(fingerprint)} "
              f"in {mode} mode.")
    return kept


def unfinished_sweep(path, config: dict, fingerprint: dict, mode: str, online: bool) -> tuple[dict, int] | None:
    """The latest sweep with this config, data and mode that has fewer runs (done or running) than its count.

    Returns (its description, runs done or running), or None. Online only W&B server sweeps count, offline
    only local ones: an online session never goes on with an offline sweep, whose runs W&B's controller does
    not know. Sweeps registered before counts were kept never count as unfinished.
    """
    table = read_table(path)
    with locked(path):
        claims = _live_claims(path)
    done: dict[str, int] = {}
    for run in [*table["runs"], *claims]:
        done[run.get("sweep_id")] = done.get(run.get("sweep_id"), 0) + 1
    candidates = [sweep for sweep in table["sweeps"].values()
                  if sweep.get("config") == config and sweep.get("mode") == mode
                  and data_lib.same_data(sweep.get("data"), fingerprint)
                  and isinstance(sweep.get("count"), int) and done.get(sweep.get("sweep_id"), 0) < sweep["count"]
                  and online != str(sweep.get("sweep_id")).startswith("local-")]
    if not candidates:
        return None
    latest = max(candidates, key=lambda sweep: str(sweep.get("created", "")))
    return latest, done.get(latest["sweep_id"], 0)


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
        summary = {key: run.summary.get(key) for key in (*SUMMARY_KEYS, "params", "macs")}
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
        table = read_table(path)
        runs = runs_of(table, sweep_id) if sweep_id else table["runs"]
    return matching_runs(runs, root) if root is not None else runs
