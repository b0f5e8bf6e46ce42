"""Weights & Biases: online when a key is found, offline otherwise, never a crash or a hang.

Introduced in Part-A/02. We never pass `mode=` to `wandb.init`: that would override the
WANDB_MODE environment variable that users and tests set.
"""
from __future__ import annotations

import io
import netrc
import os
from pathlib import Path

from .runtime import OUTPUT_DIR

PROJECT = os.environ.get("WANDB_PROJECT", "da6401-assignment2")
ENTITY = os.environ.get("WANDB_ENTITY") or None


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


def _logged_in_before() -> bool:
    """An earlier `wandb login` leaves the key in ~/.netrc."""
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (OSError, netrc.NetrcParseError):
        return False


def setup_wandb(verbose: bool = True) -> str:
    """Choose the W&B mode once per process and return it: 'online', 'offline' or 'disabled'."""
    os.environ.setdefault("WANDB_DIR", str(OUTPUT_DIR))
    os.environ.setdefault("WANDB_SILENT", "true")
    Path(os.environ["WANDB_DIR"]).mkdir(parents=True, exist_ok=True)
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]  # the user's explicit choice wins
    key = _find_key()
    if key:
        os.environ["WANDB_API_KEY"] = key
        os.environ["WANDB_MODE"] = "online"
    elif _logged_in_before():
        os.environ["WANDB_MODE"] = "online"
    else:
        os.environ["WANDB_MODE"] = "offline"
        if verbose:
            print(f"W&B: no API key found, logging offline to {os.environ['WANDB_DIR']}/wandb "
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
