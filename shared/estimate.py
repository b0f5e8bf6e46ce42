"""How long will a sweep take? Its wall time estimated before it starts, from a short warm-up.

Introduced in Part-A/02, which prints `estimate_sweep(...)["describe"]` before the sweep runs. Every config
of the space is priced by its forward MACs: seconds per image = a + b x MACs through the lightest and heaviest
configs, each timed by two short `train.fit` epochs on random pixels. `benchmarks/gpu_check.py` checks it on a GPU.
"""
from __future__ import annotations

import dataclasses
import itertools
import os
import platform
import time

import numpy as np
import torch

from . import data as data_lib
from .formulas import count_macs
from .model import CNN, CNNConfig
from .runs_table import plain_value
from .runtime import UserError, describe, get_device
from .sweep import SWEEP_CONFIG, configs_from_params
from .sweep_controller import _engine
from .train import TrainConfig, fit, plan_micro_batch, release_memory


def cpu_name() -> str:
    """The CPU's model name where the system gives one (Linux's /proc/cpuinfo), else what `platform` says."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            return next(line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def machine(device: torch.device) -> dict:
    """The device, the GPU's and the CPU's names, core count, torch version: what a timing was measured on."""
    return {"device": str(device), "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
            "cpu": cpu_name(), "cpu_count": os.cpu_count(), "torch": torch.__version__, "describe": describe()}


def sample_sweep_params(config: dict, samples: int = 256, seed: int = 0) -> list[dict]:
    """`samples` parameter dicts drawn uniformly from a sweep config's space, with W&B's own distributions, from
    a seeded generator of our own (numpy's global one, which the sweep engine uses, is left alone)."""
    _engine()  # imports sweeps with its warnings silenced; sweeps.params then imports quietly
    from sweeps.params import HyperParameterSet

    space = HyperParameterSet.from_config(config["parameters"])
    rng = np.random.default_rng(seed)
    return [{hp.name: plain_value(hp.ppf(rng.uniform())) for hp in space} for _ in range(samples)]


def _epoch_images(train_folder_images: int, tcfg: TrainConfig) -> tuple[int, int]:
    """(train images seen, val images) of one `fit` epoch: 80/20 split, last partial batch dropped."""
    val = round(train_folder_images * tcfg.val_fraction)
    train = train_folder_images - val
    seen = train - train % tcfg.batch_size if train > tcfg.batch_size else train
    return seen, val


# A CPU warms up configs of up to CPU_MEASURE_MACS forward MACs per image and extrapolates heavier ones (its time
# grows linearly with MACs), in steps of at most CPU_MAX_BATCH images and about CPU_STEP_MACS MACs: its cost per
# image hardly depends on the batch, and the estimate must stay a few seconds long.
CPU_MEASURE_MACS, CPU_MAX_BATCH, CPU_STEP_MACS = 2e9, 16, 1e9


def measure_epoch_speed(cnn: CNNConfig, tcfg: TrainConfig, device, steps: int = 3) -> dict:
    """Seconds per image of a steady `fit` epoch for this config, on random uint8 images (they cost what photos do):
    the second of two eager epochs of `steps` batches, as the first pays allocation and cuDNN's algorithm search.
    A batch that runs out of GPU memory is halved and measured again (`out_of_memory_at` says so)."""
    device = torch.device(device)
    batch_size = tcfg.batch_size
    if device.type == "cpu":
        batch_size = min(batch_size, CPU_MAX_BATCH, max(2, int(CPU_STEP_MACS // count_macs(cnn))))
    out_of_memory_at = seconds_per_image = None
    while seconds_per_image is None:
        try:
            seconds_per_image = _timed_warmup(cnn, tcfg, device, batch_size, steps)
        except torch.cuda.OutOfMemoryError:  # the same class as torch.OutOfMemoryError, under the name older torch has
            if batch_size == 1:
                raise
            out_of_memory_at = out_of_memory_at or batch_size
            batch_size //= 2
        release_memory()  # outside the `except`: its traceback no longer holds the failed step's tensors
    return {"macs": count_macs(cnn), "batch_size": batch_size, "seconds_per_image": seconds_per_image,
            "out_of_memory_at": out_of_memory_at}


def _timed_warmup(cnn: CNNConfig, tcfg: TrainConfig, device, batch_size: int, steps: int) -> float:
    train_images, val_images = steps * batch_size, max(1, steps * batch_size // 4)
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (train_images + val_images, 3, cnn.input_size, cnn.input_size),
                           dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, cnn.num_classes, (len(images),), generator=generator)
    full = data_lib.ImageSet(images, labels, [f"class_{c}" for c in range(cnn.num_classes)])
    train_set, val_set = full.subset(range(train_images)), full.subset(range(train_images, len(full)))
    warmup = dataclasses.replace(tcfg, epochs=2, batch_size=batch_size, patience=0, compile="false")
    out = fit(CNN(cnn), train_set, val_set, warmup, device, progress=False, desc="warm-up")
    return out["epoch_seconds"][1] / len(full)


def _speed_model(points: list[dict]):
    """Seconds per image as a + b * MACs through the lightest and heaviest measured points (a: what a config costs
    beyond its MACs, memory traffic and launches); one point, or a heavier one measured faster, gives a constant."""
    light, heavy = min(points, key=lambda p: p["macs"]), max(points, key=lambda p: p["macs"])
    slope = 0.0
    if heavy["macs"] > light["macs"]:
        slope = max(0.0, (heavy["seconds_per_image"] - light["seconds_per_image"]) / (heavy["macs"] - light["macs"]))
    intercept = max(0.0, light["seconds_per_image"] - slope * light["macs"])
    return lambda macs: intercept + slope * macs


def estimate_run_seconds(cnn: CNNConfig, tcfg: TrainConfig, train_folder_images: int, speed: dict) -> float:
    """Estimated seconds of one run going all its epochs, priced by a measured `speed` (see `estimate_sweep`)."""
    seconds_per_image = _speed_model(speed["points"])(count_macs(cnn))
    return tcfg.epochs * sum(_epoch_images(train_folder_images, tcfg)) * seconds_per_image


def format_duration(seconds: float) -> str:
    """'~45 s', '~12 min', '~2.3 h': the precision an estimate deserves."""
    if seconds < 90:
        return f"~{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"~{seconds / 60:.0f} min"
    return f"~{seconds / 3600:.1f} h"


def measure_sweep_speed(runs: list[tuple[CNNConfig, TrainConfig]], device) -> dict:
    """Warm-ups of the lightest and the heaviest of `runs` (on a CPU, the heaviest up to CPU_MEASURE_MACS)."""
    device = torch.device(device)
    start = time.perf_counter()
    macs = lambda run: count_macs(run[0])  # noqa: E731
    lightest = min(runs, key=macs)
    measurable = [run for run in runs if device.type == "cuda" or macs(run) <= CPU_MEASURE_MACS]
    heaviest = max(measurable or [lightest], key=macs)
    measured = [lightest] if lightest is heaviest else [lightest, heaviest]
    points = [measure_epoch_speed(cnn, tcfg, device) for cnn, tcfg in measured]
    return {"device": str(device), "input_size": lightest[0].input_size, "points": points,
            "warmup_seconds": time.perf_counter() - start}


def estimate_sweep(root_or_counts, config: dict | None = None, count: int = 30, device=None,
                   speed: dict | None = None) -> dict:
    """Estimated wall time of `count` runs of a sweep `config` (default SWEEP_CONFIG; 256 seeded samples of its space).

    `root_or_counts`: the dataset root (only file names are read), a {class: count} dict of train/, or the
    number of train/ images. `speed`: an earlier estimate's, on the same device and input size, to re-estimate
    without measuring. Runs are assumed to go all their epochs, eager; `excludes` lists what else is left out.
    """
    if int(count) < 1:
        raise UserError(f"count must be >= 1 runs, got {count}")
    device = torch.device(device or get_device())
    counts = root_or_counts
    if not isinstance(counts, (dict, int)):
        counts = data_lib.check_dataset(root_or_counts).train_counts
    folder_images = counts if isinstance(counts, int) else sum(counts.values())
    runs = [configs_from_params(params)[:2] for params in sample_sweep_params(config or SWEEP_CONFIG, 256)]
    input_sizes = sorted({cnn.input_size for cnn, _ in runs})
    if len(input_sizes) != 1:
        raise UserError(f"the sweep varies input_size ({input_sizes}); estimate one size at a time")
    speed = speed or measure_sweep_speed(runs, device)
    if speed["device"] != str(device) or speed["input_size"] != input_sizes[0]:
        raise UserError(f"speed was measured on {speed['device']} at {speed['input_size']} px; this estimate "
                        f"is for {device} at {input_sizes[0]} px: leave speed=None to measure again")
    per_run = [estimate_run_seconds(cnn, tcfg, folder_images, speed) for cnn, tcfg in runs]
    machine_info = machine(device)
    where = machine_info["gpu"] or f"CPU ({machine_info['cpu']}, {machine_info['cpu_count']} cores)"
    shorten = ("early stopping will shorten it" if any(tcfg.patience for _, tcfg in runs)
               else "every run goes all its epochs")
    total = float(np.mean(per_run)) * int(count)
    return {
        "estimate": True, "device": str(device), "count": int(count), "train_folder_images": folder_images,
        "input_size": input_sizes[0], "seconds_per_run": float(np.mean(per_run)),
        "seconds_per_run_p10_p90": [float(np.percentile(per_run, 10)), float(np.percentile(per_run, 90))],
        "total_seconds": total, "speed": speed,
        "excludes": ["early stopping", "torch.compile (heavy runs: faster epochs, one compile each)",
                     "runs that run out of memory (they end early)", "W&B start-up per run",
                     "the one-time decode of the images"],
        "describe": (f"Estimated sweep time on {where}: {format_duration(total)} for {int(count)} runs "
                     f"(estimate from a {speed['warmup_seconds']:.0f} s warm-up; {shorten})"),
    }


# --------------------------------------------------------------------------------------------
# Before any GPU: the sweep's compute and its memory plan on a 16 GB GPU
# --------------------------------------------------------------------------------------------
T4_SUSTAINED_TFLOPS = 15.0  # assumed for conv training at 128 px, not measured: see `t4_prediction`
NATURE_12K_TRAIN_IMAGES = 9999  # images in nature_12K's train/ folder: what the compute and memory plans assume


def run_flop(cnn: CNNConfig, tcfg: TrainConfig) -> int:
    """FLOP of one run on nature_12K going all its epochs: 2 FLOP per MAC (`count_macs`); a training image costs
    3 forwards (the forward and backward's two products: input and weight gradients), a validation image one."""
    train, val = _epoch_images(NATURE_12K_TRAIN_IMAGES, tcfg)
    return 2 * count_macs(cnn) * (3 * train + val) * tcfg.epochs


def sweep_pflop(config: dict, count: int = 30, seed: int = 0) -> float:
    """PFLOP of `count` runs drawn uniformly (seeded) from a sweep config, every epoch counted (no hyperband)."""
    return sum(run_flop(*configs_from_params(params)[:2]) for params in sample_sweep_params(config, count, seed)) / 1e15


def t4_prediction(pflop: float) -> str:
    """One line: the hours on one T4 and on Kaggle's 2xT4 (one agent each) at T4_SUSTAINED_TFLOPS, an assumption."""
    hours = pflop * 1e15 / (T4_SUSTAINED_TFLOPS * 1e12) / 3600
    return (f"{pflop:.0f} PFLOP with every epoch counted: ~{hours:.1f} h on one T4, ~{hours / 2:.1f} h on Kaggle's "
            f"2xT4, before hyperband's savings (assumed {T4_SUSTAINED_TFLOPS:g} TFLOP/s sustained per T4: about "
            f"23% of its 65 TFLOP/s fp16 peak in NVIDIA's datasheet; no T4 has measured this engine)")


def memory_plan(config: dict, gpu_gib: float = 16) -> list[dict]:
    """The 8 heaviest configs of a sweep's space, each with its micro-batch and predicted peak bytes on a GPU of
    `gpu_gib` GiB (`train.plan_micro_batch`; nature_12K's cached train/ images included). Every combination of the
    choices that change memory is priced at the largest dense layer and batch (memory only grows with them)."""
    params = config["parameters"]
    choices = lambda key: params[key].get("values", [params[key].get("value")])  # noqa: E731
    keys = ["base_filters", "organisation", "kernel_size", "batch_norm", "activation", "input_size"]
    largest = {key: max(choices(key)) for key in ("dense_neurons", "batch_size")}
    plans = []
    for values in itertools.product(*(choices(key) for key in keys)):
        cnn, tcfg, _ = configs_from_params({**dict(zip(keys, values)), **largest})
        with torch.device("meta"):
            model = CNN(cnn)
        cached = NATURE_12K_TRAIN_IMAGES * 3 * cnn.input_size**2
        micro, peak = plan_micro_batch(model, cnn.input_size, tcfg.batch_size, int(gpu_gib * 2**30), cached)
        plans.append({"filters": list(cnn.filters), "kernel_sizes": list(cnn.kernel_sizes),
                      "batch_norm": cnn.batch_norm, "activation": cnn.activation, "dense_neurons": cnn.dense_neurons,
                      "input_size": cnn.input_size, "batch_size": tcfg.batch_size, "micro_batch": micro,
                      "predicted_peak_bytes": peak})
    return sorted(plans, key=lambda plan: (plan["micro_batch"] / plan["batch_size"], -plan["predicted_peak_bytes"]))[:8]
