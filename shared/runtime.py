"""Where we run and how: repo paths, the settings, the quick switch, Kaggle/Colab detection, device, seeds.

Introduced in Part-A/01. The settings (the INAT_* environment variables, or the same keys in one
`inat_settings.json`, see `SETTINGS`) are read and checked at import, so a bad one stops with one line before any
work. Notebooks print `describe()`: where outputs and caches go (on Colab with Drive mounted, Drive).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import secrets
import shutil
import socket
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parent.parent


def _flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0", "false", "False")


# Tests set INAT_QUICK=1 (tests/conftest.py); the notebook kernels inherit it.
QUICK = _flag("INAT_QUICK")


class UserError(Exception):
    """Bad input from the user: a one-line message saying what to do. The CLI prints it as `error: ...`
    and exits 1, with no traceback (tracebacks are for bugs)."""


def on_kaggle() -> bool:
    return bool(os.environ.get("KAGGLE_KERNEL_RUN_TYPE")) or KAGGLE_INPUT.is_dir()


def on_colab() -> bool:
    return "COLAB_RELEASE_TAG" in os.environ or "COLAB_GPU" in os.environ


COLAB_DRIVE = Path("/content/drive/MyDrive")
KAGGLE_INPUT = Path("/kaggle/input")
# The settings every notebook shares, each an environment variable; `inat_settings.json` can hold them too.
SETTINGS = {"data": "INAT_DATA",          # the dataset root (or a folder above it)
            "outputs": "INAT_OUTPUTS",    # results, figures, checkpoints, W&B offline runs
            "cache": "INAT_CACHE",        # the decoded uint8 image caches
            "data_dir": "INAT_DATA_DIR",  # where downloads and the demo set go
            "inputs": "INAT_INPUTS"}      # read-only earlier outputs (Kaggle: /kaggle/input), see `attached`
_JSON_TYPES = {dict: "an object", list: "a list", str: "a string", bool: "true/false", int: "a number",
               float: "a number", type(None): "null"}


def settings_file() -> Path | None:
    """The one settings file, if any: $INAT_SETTINGS, else <repo>/inat_settings.json (git-ignored), else, on
    Colab with Google Drive mounted, MyDrive/da6401-a2/inat_settings.json (it survives a lost session)."""
    if named := os.environ.get("INAT_SETTINGS"):  # named on purpose: a missing file is never silently ignored
        if not Path(named).is_file():
            raise UserError(f"INAT_SETTINGS={named} is {'a folder' if Path(named).is_dir() else 'not there'}; "
                            f"name a settings file, e.g. {REPO_ROOT / 'inat_settings.json'}, or unset it")
        return Path(named)
    candidates = [REPO_ROOT / "inat_settings.json", COLAB_DRIVE / "da6401-a2" / "inat_settings.json"]
    return next((c for c in candidates if c.is_file()), None)


def read_settings_file(path: Path) -> dict[str, str]:
    """{variable: path} from a settings file such as `{"data": "~/inaturalist_12K", "outputs": "results"}`.

    Every value is a path in quotes, or null for "not set"; a relative one is relative to the repo root wherever
    the reader runs (notebooks in Part-A/, the CLI at the root), while in an environment variable it keeps its
    usual meaning. Anything else is a UserError: a silently ignored setting sends results elsewhere.
    """
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise UserError(f"{path} is not readable JSON ({err})") from None
    if not isinstance(values, dict):
        raise UserError(f"{path} holds {_JSON_TYPES.get(type(values), 'a JSON value')}, not an object of settings: "
                        f'write e.g. {{"data": "/path/to/inaturalist_12K"}}; keys: {", ".join(SETTINGS)}')
    unknown = sorted(set(values) - set(SETTINGS))
    if unknown:
        raise UserError(f"{path}: unknown setting(s) {', '.join(unknown)}; valid: {', '.join(SETTINGS)}")
    paths = {}
    for key, value in values.items():
        if value is None:
            continue
        if not isinstance(value, str) or not value.strip():
            raise UserError(f'{path}: "{key}" must be a folder path in quotes (or null), got {json.dumps(value)}')
        folder = Path(value).expanduser()
        paths[SETTINGS[key]] = os.path.normpath(folder if folder.is_absolute() else REPO_ROOT / folder)
    return paths


def _apply_settings_file() -> None:
    """Fill INAT_* from the settings file (a variable already set wins; child processes inherit them). At import no
    caller could catch a UserError, so a bad file exits with its one line (SystemExit), never a traceback."""
    try:
        path = settings_file()
        paths = read_settings_file(path) if path is not None else {}
    except UserError as err:
        raise SystemExit(f"error: {err}") from None
    for variable, value in paths.items():
        os.environ.setdefault(variable, value)


def drive_home() -> Path | None:
    """MyDrive/da6401-a2 on Colab with Google Drive mounted (outputs survive a dropped session), else None."""
    return COLAB_DRIVE / "da6401-a2" if on_colab() and COLAB_DRIVE.is_dir() else None


def default_folder(key: str) -> Path:
    """Where the setting `key` ("outputs", "data_dir" or "cache") points when nothing sets it."""
    name = {"outputs": "outputs", "data_dir": "data", "cache": "cache"}[key]
    if (drive := drive_home()) is not None:
        return drive / name
    return DATA_DIR / name if key == "cache" else REPO_ROOT / name


def write_problem(folder: str | os.PathLike) -> str | None:
    """Why no file can be written in `folder` (made if missing), or None. A real probe: permission bits lie."""
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        return err.strerror or str(err)
    return None


def outputs_problem(folder: Path) -> str | None:
    """Why results cannot be written under `folder` ("is a file, ..."), or None. Creates nothing: where
    `folder` does not exist yet, it probes the nearest folder above it, where it would be made."""
    existing = next(p for p in [folder, *folder.parents] if p.exists())
    if not existing.is_dir():
        return "is a file, not a folder" if existing == folder else f"lies under {existing}, which is a file"
    if (problem := write_problem(existing)) is None:
        return None
    return f"cannot be written ({problem})" if existing == folder else f"cannot be made in {existing} ({problem})"


_apply_settings_file()
DATA_DIR = Path(os.environ.get("INAT_DATA_DIR") or default_folder("data_dir"))  # git-ignored
OUTPUT_DIR = Path(os.environ.get("INAT_OUTPUTS") or default_folder("outputs"))   # git-ignored
if (_problem := outputs_problem(OUTPUT_DIR)) is not None:  # at import: else a run would learn it at its end
    raise SystemExit(f"error: outputs {OUTPUT_DIR} {_problem}; set INAT_OUTPUTS (or \"outputs\" in "
                     f"inat_settings.json) to a folder you can write")


def cache_dir() -> Path:
    """Where decoded-image caches go: $INAT_CACHE (read at each call, so a test or a cell may change it)."""
    return Path(os.environ.get("INAT_CACHE") or default_folder("cache"))


def get_device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


MAX_SEED = 2**32 - 1  # numpy's limit, the narrowest of random's, numpy's and torch's


def seed_everything(seed: int = 42) -> None:
    """Seed Python, numpy and torch alike; a seed outside 0..MAX_SEED is a UserError, not numpy's ValueError."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed <= MAX_SEED:
        raise UserError(f"seed must be a whole number from 0 to {MAX_SEED}, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def banner(message: str) -> None:
    """A loud, boxed notice for things a reader must not miss (demo data, random weights)."""
    lines = message.strip().splitlines()
    width = max(len(line) for line in lines) + 4
    print("=" * width)
    for line in lines:
        print(f"= {line.ljust(width - 4)} =")
    print("=" * width)


ORPHAN_SECONDS = 3600  # a temporary file of atomic_path untouched this long was left by a killed write


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary file beside `path`; it replaces `path` only if the block finishes, so a reader never
    sees half a file. Named `.NAME.<pid>@<host>.<random>.tmp`, so a later write can remove a killed writer's."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_orphans(path.parent, f".{path.name}.", ".tmp")
    tmp = _new_temporary(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


HOST = hashlib.sha1(socket.gethostname().encode()).hexdigest()[:8]  # names stay short and plain


def _new_temporary(path: Path) -> Path:
    """Create an empty, unique temporary file beside `path`. Unlike mkstemp's 0600, os.open's mode is
    filtered by the umask, as for any new file: a result others may read stays readable to them."""
    while True:
        tmp = path.with_name(f".{path.name}.{os.getpid()}@{HOST}.{secrets.token_hex(4)}.tmp")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return tmp
        except FileExistsError:
            continue


def remove_orphans(folder: Path, prefix: str, suffix: str = "") -> None:
    """Remove the entries of `folder` named `prefix...suffix` whose writer is gone (see `is_orphan`): the
    temporary files of `atomic_path` and the work folders of `sources.download_dataset`."""
    try:
        candidates = [e for e in os.scandir(folder) if e.name.startswith(prefix) and e.name.endswith(suffix)]
    except OSError:
        return
    for entry in candidates:
        with contextlib.suppress(OSError):  # another writer may have removed it first
            if is_orphan(entry, prefix):
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    os.unlink(entry.path)


def is_orphan(entry: os.DirEntry, prefix: str) -> bool:
    """Whether an entry named `prefix<pid>@<host>.<random>.tmp` was left by a gone writer: its pid is dead on this
    host, or (another host's, or an older name without pid and host) it is older than ORPHAN_SECONDS."""
    writer = entry.name[len(prefix):-len(".tmp")].rpartition(".")[0]  # "<pid>@<host>"
    pid, _, host = writer.partition("@")
    dead = host == HOST and pid.isdigit() and not _pid_alive(int(pid))
    return dead or time.time() - entry.stat().st_mtime > ORPHAN_SECONDS


def _pid_alive(pid: int) -> bool:
    if os.name != "posix":  # os.kill(pid, 0) would not be a harmless probe there
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


# The project's JSON files, told apart by the keys they hold (first match wins): kind, what it is to a user, keys.
JSON_KINDS = [("notebook", "an executed notebook", {"nbformat", "cells"}),
              ("runs table", "a runs table", {"sweeps", "runs"}),
              ("sweep result", "a sweep's result (sweep --json)", {"sweep_id", "best_checkpoint", "runs"}),
              ("runs table", "a runs table (old format)", {"sweep_id", "runs"}),
              ("best model record", "Part-A/03's record of the best model", {"models", "reported"}),
              ("strategies record", "Part-B/01's strategies record", {"best", "rows"}),
              ("comparison record", "Part-B/02's comparison record", {"scratch", "tuned"}),
              ("report record", "the W&B report's record", {"url", "entity", "project"}),
              ("estimate result", "a sweep estimate (estimate --json)", {"estimate"}),
              ("bench result", "a bench result", {"machine", "configs"}),
              # Any other record of a notebook carries the data and mode it was made on; a CLI result does not.
              ("hand-off record", "a notebook's record (with its data and mode)", {"mode", "data"}),
              ("train result", "a train result (train --json)", {"config", "val_acc", "split"}),
              ("finetune result", "a fine-tuning result (finetune --json)", {"strategy", "trainable_params"})]
# Torch files: the keys that tell a decoded-image cache and the three kinds of weights apart.
TORCH_KINDS = [("image cache", "a decoded-image cache", {"images", "labels", "files"}),
               ("best model checkpoint", "Part-A/03's best model weights", {"state_dict", "result", "source"}),
               ("sweep checkpoint", "a sweep's best weights", {"state_dict", "sweep_id", "run_name"}),
               ("checkpoint", "a checkpoint (train --checkpoint)", {"state_dict"})]


def json_kind(obj) -> tuple[str, str]:
    """(kind, what it is) of a parsed JSON value, from its keys (see JSON_KINDS)."""
    keys = set(obj) if isinstance(obj, dict) else set()
    return next(((kind, words) for kind, words, needed in JSON_KINDS if needed <= keys),
                ("other", "JSON this project did not write"))


def file_kind(path: str | os.PathLike) -> tuple[str, str] | None:
    """(kind, what it is) of the file at `path`, read from its content, not its name; None where nothing is."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except FileNotFoundError:
        return None
    except OSError as err:
        return "other", f"a file that cannot be read ({err.strerror})"
    if head.startswith(b"\x89PNG"):
        return "figure", "a figure (PNG)"
    if head.lower().startswith(b"<!doctype html"):
        return ("report page", "the offline report") if b"<title>DA6401 Assignment 2" in head else \
            ("other", "an HTML page this project did not write")
    if head.startswith(b"PK\x03\x04"):  # torch.save's zip; mmap reads the keys, not the tensors
        try:
            keys = set(torch.load(path, map_location="cpu", weights_only=True, mmap=True))
        except Exception:  # noqa: BLE001 (any zip that torch cannot read is simply not ours)
            keys = set()
        return next(((kind, words) for kind, words, needed in TORCH_KINDS if needed <= keys),
                    ("other", "a zip file this project did not write"))
    try:
        return json_kind(json.loads(path.read_bytes()))
    except (UnicodeDecodeError, ValueError):
        return "other", "a file this project did not write"


def check_output_file(path: str | os.PathLike, name: str, kind: str, example: str = "result.json") -> None:
    """Refuse, before the work, an output file that could not or must not be written. `name` is how the user knows
    it ("--json"); `kind` is what the command writes (see JSON_KINDS, TORCH_KINDS): only that kind is replaced."""
    target = Path(path)
    if target.is_dir():
        raise UserError(f"{name} {path} is a folder; give a file name, e.g. {target / example}")
    if (problem := outputs_problem(target.parent)) is not None:
        raise UserError(f"{name} {path} cannot be written: {target.parent} {problem}; choose another place")
    found = file_kind(target)
    if found is not None and found[0] != kind:
        raise UserError(f"{name} {path} already holds {found[1]}, not {kind}: writing would replace it; "
                        f"give {name} a new path or move that file aside")


def check_distinct_paths(outputs: dict, inputs: dict | None = None) -> None:
    """Refuse, before any work, an output path that is another output or an input of the same command.
    `outputs` and `inputs` map a name the user knows (e.g. "--json", "the runs table") to a path or None."""
    seen: dict[Path, str] = {}
    for name, path in (inputs or {}).items():
        if path is not None:
            seen.setdefault(Path(path).expanduser().resolve(), name)
    for name, path in outputs.items():
        if path is None:
            continue
        resolved = Path(path).expanduser().resolve()
        if resolved in seen:
            raise UserError(f"{name} {path} is also {seen[resolved]}: writing it would replace that file. "
                            f"Give {name} a path of its own.")
        seen[resolved] = name


def save_json(obj, path: str | os.PathLike, **dump_kwargs) -> Path:
    """Write JSON atomically (see `atomic_path`)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=1, **dump_kwargs))
    return Path(path)


def describe() -> str:
    device = get_device()
    gpu = f" ({torch.cuda.get_device_name(0)})" if device.type == "cuda" else ""
    where = "Kaggle" if on_kaggle() else "Colab" if on_colab() else "local"
    return (f"torch {torch.__version__} | device {device}{gpu} | {where} | "
            f"quick mode {'ON' if QUICK else 'off'} | CPU threads {torch.get_num_threads()}\n"
            f"outputs: {OUTPUT_DIR} | image cache: {cache_dir()} | settings: {settings_file() or 'environment only'}"
            + ("" if OUTPUT_DIR.is_relative_to(COLAB_DRIVE) or not on_colab() else
               "\nNOTE: outputs are inside this Colab session and vanish with it; mount Google Drive "
               "(or set INAT_OUTPUTS) to keep them."))


# Files that carry results from one notebook to the next (all under the git-ignored outputs/).
SWEEP_RUNS = OUTPUT_DIR / "sweep_runs.json"       # Part-A/02 -> Part-A/03
BEST_CHECKPOINT = OUTPUT_DIR / "partA_best.pt"     # Part-A/03 -> Part-A/04
BEST_RESULT = OUTPUT_DIR / "partA_best.json"       # Part-A/03 -> Part-B/02
# Where earlier sessions' outputs lie read-only: on Kaggle each notebook is its own session, and "Add Input" of
# an earlier notebook's output puts its /kaggle/working under /kaggle/input/<name>/.
INPUTS = Path(os.environ["INAT_INPUTS"]) if os.environ.get("INAT_INPUTS") else KAGGLE_INPUT if on_kaggle() else None


def attached(name: str) -> Path | None:
    """The newest file `name` (a hand-off's path inside an outputs folder, e.g. "sweep_runs.json") under INPUTS,
    or None. Only found here: its reader checks that it belongs to this data and mode."""
    copies = [p for p in INPUTS.rglob(name) if p.is_file()] if INPUTS is not None and INPUTS.is_dir() else []
    return max(copies, key=lambda p: p.stat().st_mtime, default=None)


def run_mode(demo: bool) -> str:
    """'quick' under INAT_QUICK=1 (tests), 'demo' on the embedded demo data; on the real data 'full' on a CUDA
    GPU (or under INAT_FORCE_FULL=1 or INAT_SHRINK=1), else 'cpu': a multi-day sweep never starts by default."""
    if QUICK or demo:
        return "quick" if QUICK else "demo"
    if torch.cuda.is_available() or _flag("INAT_FORCE_FULL") or _flag("INAT_SHRINK"):
        return "full"
    return "cpu"


def mode_settings(settings: dict, mode: str, shrunk: dict) -> dict:
    """A notebook's settings for `mode`: 'cpu' takes the demo entry; under INAT_SHRINK=1 (the full-mode tests)
    the full entry has only its counts and epochs replaced by `shrunk`, so the rest of it is what runs."""
    if mode == "full" and _flag("INAT_SHRINK"):
        return {**settings["full"], **shrunk}
    if mode == "cpu":
        print("CPU MODE: no CUDA GPU, so the real data with the demo entry's counts, sized for a CPU (the full "
              "run would take days here; INAT_FORCE_FULL=1 runs it anyway).")
        return settings["demo"]
    return settings[mode]
