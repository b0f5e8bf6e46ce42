"""Hyperparameter sweeps (Question 2) and reading their results back (Question 4).

Introduced in Part-A/02. A sweep run's `config` is flat: every CNNConfig and TrainConfig field,
plus the sweep's own keys (e.g. `base_filters`, `organisation`), so
`CNNConfig.from_dict(run["config"])` and `TrainConfig.from_dict(run["config"])` rebuild it.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from .model import CNNConfig, make_filters
from .runtime import SWEEP_RUNS
from .train import TrainConfig

# Used when no sweep result is available (a notebook run on its own). A sound, mid-sized choice:
# doubling filters from 32, 3x3 kernels, BatchNorm, SiLU, augmentation on.
DEFAULT_CNN = CNNConfig(filters=make_filters(32, "doubling"), kernel_sizes=(3,) * 5, activation="silu",
                        dense_neurons=256, dropout=0.3, batch_norm=True, input_size=224)
DEFAULT_TRAIN = TrainConfig()


def load_runs(sweep_id: str | None = None, path: str | os.PathLike = SWEEP_RUNS) -> list[dict]:
    """Runs of a sweep: from the W&B API when `sweep_id` is given and reachable, else the local runs table."""
    if sweep_id:
        try:
            import wandb

            from .tracking import ENTITY, PROJECT
            sweep = wandb.Api().sweep(sweep_id if sweep_id.count("/") == 2 else
                                      f"{ENTITY or wandb.Api().default_entity}/{PROJECT}/{sweep_id}")
            return [{"config": dict(run.config), "val_acc": run.summary.get("val_acc"), "state": run.state,
                     "name": run.name} for run in sweep.runs]
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
