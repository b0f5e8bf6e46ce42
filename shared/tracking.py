"""Weights & Biases: online when a key is found, offline otherwise, never a crash or a hang.

Introduced in Part-A/02. We never pass `mode=` to `wandb.init`: that would override the
WANDB_MODE environment variable that users and tests set.
"""
from __future__ import annotations

import base64
import io
import json
import netrc
import os
import threading
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

from .runtime import OUTPUT_DIR

PROJECT = os.environ.get("WANDB_PROJECT", "da6401-assignment2")
ENTITY = os.environ.get("WANDB_ENTITY") or None
# A key is checked against the server once, within this many seconds, before anything goes online: a dummy
# key or a machine without network then costs seconds and one printed line, not wandb.init's 30 s of retries
# and an AuthenticationError.
VERIFY_SECONDS = 5


def base_url() -> str:
    return os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai").rstrip("/")


def _find_key() -> str | None:
    if os.environ.get("WANDB_API_KEY"):
        return os.environ["WANDB_API_KEY"]
    try:  # Kaggle: Add-ons -> Secrets -> WANDB_API_KEY
        from kaggle_secrets import UserSecretsClient
        return UserSecretsClient().get_secret("WANDB_API_KEY")
    except Exception:
        pass
    try:  # Colab: the key icon in the sidebar -> WANDB_API_KEY
        from google.colab import userdata
        return userdata.get("WANDB_API_KEY")
    except Exception:
        pass
    return None


def _netrc_key() -> str | None:
    """The key an earlier `wandb login` left in ~/.netrc (or $NETRC), if any."""
    try:
        entry = netrc.netrc(os.environ.get("NETRC")).authenticators(urlparse(base_url()).hostname or "")
    except (OSError, netrc.NetrcParseError):
        return None
    return entry[2] if entry and entry[2] else None


def key_problem(key: str, timeout: float = VERIFY_SECONDS) -> str | None:
    """None when the W&B server accepts `key`; otherwise why not, in a few words. Never waits longer
    than `timeout` seconds in all (one request, no retries): urllib's timeout bounds each read, so a server
    that trickles its answer byte by byte would hold it far longer; the request runs in a thread that is
    left behind when the time is up."""
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
    except (OSError, ValueError) as err:  # URLError, timeouts, refused connections, a garbled answer
        reason = getattr(err, "reason", err)
        return f"{base_url()} is unreachable ({type(reason).__name__}: {reason})"
    return None if viewer else "the server does not know this key"


_VERIFIED = False  # True once setup_wandb has checked a key in this process


def setup_wandb(verbose: bool = True) -> str:
    """Choose the W&B mode once per process and return it: 'online', 'offline' or 'disabled'.

    Online only with a key the server accepts: an explicit WANDB_MODE=online is checked as well, because
    wandb.init with an unusable key retries for minutes and then raises."""
    global _VERIFIED
    os.environ.setdefault("WANDB_DIR", str(OUTPUT_DIR))
    os.environ.setdefault("WANDB_SILENT", "true")
    Path(os.environ["WANDB_DIR"]).mkdir(parents=True, exist_ok=True)
    chosen = os.environ.get("WANDB_MODE")
    if chosen and chosen != "online" or chosen == "online" and _VERIFIED:
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
    """`wandb.init` with this project's defaults. The mode comes from WANDB_MODE (set by
    `setup_wandb`), and the folder is passed explicitly: wandb reads WANDB_DIR only once per
    process, so a later change of it would otherwise be ignored."""
    import wandb

    setup_wandb()
    return wandb.init(project=PROJECT, entity=ENTITY, dir=os.environ["WANDB_DIR"], reinit="finish_previous",
                      **kwargs)


def figure_to_image(fig):
    """A matplotlib figure as a PIL image. wandb.Image of float arrays in [0, 1] saves black PNGs in 0.31."""
    from PIL import Image

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def log_figures(figures: dict, run_name: str, job_type: str = "figures", config: dict | None = None) -> str | None:
    """Log matplotlib figures to one W&B run (as uint8 PIL images); returns the run's path or None."""
    import wandb

    run = init_run(name=run_name, job_type=job_type, config=config or {})
    try:
        run.log({name: wandb.Image(figure_to_image(fig)) for name, fig in figures.items()})
        return run.path
    finally:
        run.finish()
