"""Weights & Biases: online when a key is found, offline otherwise, never a crash or a hang.

Introduced in Part-A/02. `wandb.init` never gets `mode=`: it would override the WANDB_MODE that users and tests set.
"""
from __future__ import annotations

import base64
import contextlib
import http.client
import io
import json
import netrc
import os
import re
import threading
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

from .runtime import OUTPUT_DIR, attached

PROJECT = os.environ.get("WANDB_PROJECT", "da6401-assignment2")
ENTITY = os.environ.get("WANDB_ENTITY") or None
# A key is checked against the server once, within this many seconds, before anything goes online: a dummy key
# or no network then costs seconds and one printed line, not wandb.init's 30 s of retries and an error.
VERIFY_SECONDS = 5
_VERIFIED = False  # True once setup_wandb has checked a key in this process


def base_url() -> str:
    return os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai").rstrip("/")


def _find_key() -> str | None:
    """WANDB_API_KEY from the environment, or Kaggle's or Colab's secrets."""
    if os.environ.get("WANDB_API_KEY"):
        return os.environ["WANDB_API_KEY"]
    with contextlib.suppress(Exception):  # Kaggle: Add-ons -> Secrets -> WANDB_API_KEY
        from kaggle_secrets import UserSecretsClient
        return UserSecretsClient().get_secret("WANDB_API_KEY")
    with contextlib.suppress(Exception):  # Colab: the key icon in the sidebar -> WANDB_API_KEY
        from google.colab import userdata
        return userdata.get("WANDB_API_KEY")
    return None


def _netrc_key() -> str | None:
    """The key an earlier `wandb login` left in ~/.netrc (or $NETRC), if any."""
    try:
        entry = netrc.netrc(os.environ.get("NETRC")).authenticators(urlparse(base_url()).hostname or "")
    except (OSError, netrc.NetrcParseError):
        return None
    return entry[2] if entry and entry[2] else None


def key_problem(key: str, timeout: float = VERIFY_SECONDS) -> str | None:
    """None when the W&B server accepts `key`; otherwise why not, in a few words. Never waits more than `timeout`
    seconds in all: urllib's timeout bounds each read (a trickling server would hold it far longer), so the one
    request runs in a thread that is left behind when the time is up."""
    answer = []
    asking = threading.Thread(target=lambda: answer.append(_ask(key, timeout)), daemon=True)
    asking.start()
    asking.join(timeout)
    return answer[0] if answer else f"{base_url()} did not answer within {timeout:g} s"


def _ask(key: str, timeout: float) -> str | None:
    request = urllib.request.Request(
        f"{base_url()}/graphql", data=json.dumps({"query": "query { viewer { id } }"}).encode(),
        headers={"Content-Type": "application/json",
                 "Authorization": "Basic " + base64.b64encode(f"api:{key}".encode()).decode()})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            viewer = (json.loads(response.read() or b"{}").get("data") or {}).get("viewer")
    except urllib.error.HTTPError as err:
        return f"the server rejected the key (HTTP {err.code})" if err.code in (401, 403) else f"HTTP {err.code}"
    except (OSError, ValueError, http.client.HTTPException) as err:  # URLError, timeouts, refusals, a cut answer
        reason = getattr(err, "reason", err)
        return f"{base_url()} is unreachable ({type(reason).__name__}: {reason})"
    return None if viewer else "the server does not know this key"


def setup_wandb(verbose: bool = True) -> str:
    """Choose the W&B mode once per process and return it: 'online', 'offline' or 'disabled'. Online only with a
    key the server accepts, even under WANDB_MODE=online: wandb.init with a bad key retries for minutes, then raises."""
    global _VERIFIED
    os.environ.setdefault("WANDB_DIR", str(OUTPUT_DIR))
    os.environ.setdefault("WANDB_SILENT", "true")
    Path(os.environ["WANDB_DIR"]).mkdir(parents=True, exist_ok=True)
    chosen = os.environ.get("WANDB_MODE")
    if chosen and (chosen != "online" or _VERIFIED):
        return chosen  # the user's explicit choice wins, and a checked choice stays made
    key = _find_key()
    if key:
        os.environ["WANDB_API_KEY"] = key
    key = key or _netrc_key()
    problem = key_problem(key) if key else "no API key found"
    os.environ["WANDB_MODE"] = "offline" if problem else "online"
    _VERIFIED = True
    if problem and verbose:
        print(f"W&B: {problem}; logging offline to {os.environ['WANDB_DIR']}/wandb "
              f"(upload later with `wandb sync`).")
    return os.environ["WANDB_MODE"]


def init_run(**kwargs):
    """`wandb.init` with this project's defaults, in the mode `setup_wandb` set. The folder is passed explicitly:
    wandb reads WANDB_DIR only once per process."""
    import wandb

    setup_wandb()
    return wandb.init(project=PROJECT, entity=ENTITY, dir=os.environ["WANDB_DIR"], reinit="finish_previous", **kwargs)


def figures_group(mode, fingerprint) -> str | None:
    """The W&B group of a notebook's figure run: its mode and data, so that the report's media panels show this
    hand-in's figures and not a demo run's of the same name. None when a hand-edited record lacks either."""
    files = fingerprint.get("files") if isinstance(fingerprint, dict) else None
    return f"{mode}-{files}" if isinstance(mode, str) and isinstance(files, str) else None


def log_figures(figures: dict, run_name: str, group: str, job_type: str = "figures",
                config: dict | None = None) -> str | None:
    """Log matplotlib figures to one W&B run, as uint8 PIL images (wandb.Image of float arrays in [0, 1] saves
    black PNGs in 0.31); returns the run's path or None."""
    import wandb
    from PIL import Image

    images = {}
    for name, fig in figures.items():
        png = io.BytesIO()
        fig.savefig(png, format="png", dpi=100, bbox_inches="tight")
        images[name] = wandb.Image(Image.open(png).convert("RGB"))
    run = init_run(name=run_name, group=group, job_type=job_type, config=config or {})
    try:
        run.log(images)
        return run.path
    finally:
        run.finish()


# --------------------------------------------------------------------------------------------
# Hand-off files (the runs table, the sweep's and Part-A/03's weights, the results files) across sessions
# --------------------------------------------------------------------------------------------
def artifact_name(name: str) -> str:
    """The W&B artifact that holds hand-off file `name` ("sweep_checkpoints/x.pt" -> "sweep_checkpoints-x.pt")."""
    return re.sub(r"[^A-Za-z0-9._-]", "-", name)


def log_handoff(mode: str, *paths) -> None:
    """With a W&B key, log each hand-off file (a path in the outputs folder) as an artifact of this project,
    aliased `mode` (full/demo/quick), so that a session without the file can fetch it (`handoff`)."""
    paths = [Path(p) for p in paths if p is not None and Path(p).is_file()]
    if not paths or setup_wandb(verbose=False) != "online":
        return
    import wandb

    run = init_run(name="handoff", job_type="handoff")
    try:
        for path in paths:
            name = path.relative_to(OUTPUT_DIR).as_posix()
            artifact = wandb.Artifact(artifact_name(name), type="handoff", metadata={"mode": mode})
            artifact.add_file(str(path), name=name)
            run.log_artifact(artifact, aliases=["latest", mode])
    finally:
        run.finish()


def _from_wandb(name: str, mode: str) -> Path | None:
    """Hand-off file `name` of `mode` downloaded from this project's artifacts (online only), or None."""
    if setup_wandb(verbose=False) != "online":
        return None
    import wandb

    address = f"{ENTITY + '/' if ENTITY else ''}{PROJECT}/{artifact_name(name)}:{mode}"
    try:
        folder = wandb.Api().artifact(address).download(root=str(OUTPUT_DIR / "from-wandb"))
    except Exception as err:  # none logged yet, no network: the caller falls back
        print(f"W&B: no artifact {address} ({type(err).__name__}); not using one.")
        return None
    path = Path(folder) / name
    return path if path.is_file() else None


def handoff(name: str, mode: str) -> Path:
    """Where an earlier notebook's file `name` (its path in the outputs folder, e.g. "sweep_runs.json") is: the
    outputs folder's own; else the newest copy in an attached input (`runtime.attached`); else, with a W&B key, the
    artifact `log_handoff` logged for this mode; else the (missing) local path. The reader checks data and mode."""
    local = OUTPUT_DIR / name
    if local.is_file():
        return local
    found, where = attached(name), "an attached input (read-only)"
    if found is None:
        found, where = _from_wandb(name, mode), f"the W&B artifact {artifact_name(name)}:{mode}"
    if found is None:
        return local
    print(f"Hand-off {name}: taken from {found}, {where}; new outputs go to {OUTPUT_DIR}.")
    return found
