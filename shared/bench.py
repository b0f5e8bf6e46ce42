"""Benchmark: our engine against the typical pipeline, same ImageFolder, same CNN.

Introduced in Part-A/02 (the README's speed table). `python -m shared bench [--data DIR]`.

- engine: decode every JPEG once into a uint8 cache (timed: cache-build images/s), then `train.fit`:
  batches are index lookups, normalisation on the device, bf16/channels_last on a GPU.
- typical: torchvision `ImageFolder` + PIL + Resize/ToTensor/Normalize on every epoch, a
  `DataLoader` with one worker per CPU, fp32, a plain AdamW loop.

Both train and validate on the same class-balanced 80/20 split, without augmentation (the typical
pipeline has none), and report images/s over train + val of a steady-state epoch (the median of
the epochs after the first, which pays warm-up, worker start and compilation).

Also here: `estimate_sweep`, a sweep's wall time estimated before it starts (Part-A/02 prints it), and
`make_synthetic`, the photo-like JPEGs that this bench and `python -m shared.gpu_check` run on.
"""
from __future__ import annotations

import dataclasses
import functools
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import data as data_lib
from .formulas import count_macs
from .model import CNN, CNNConfig
from .runtime import DATA_DIR, UserError, atomic_path, describe, get_device
from .sweep import SWEEP_CONFIG, configs_from_params, plain_value
from .train import TrainConfig, fit, release_memory

# The published solution's two reference configs (see the README): cheap and compute-heavy.
CONFIGS = {
    "light": dict(filters=(32,) * 5, kernel_sizes=(3,) * 5, activation="relu", dense_neurons=256, batch_norm=True),
    "heavy": dict(filters=(512, 256, 128, 64, 32), kernel_sizes=(3,) * 5, activation="relu", dense_neurons=256,
                  batch_norm=True),
}


def make_synthetic(dest: str | os.PathLike = DATA_DIR / "bench_synthetic", classes: int = 10,
                   per_class: int = 40, size=(800, 600), quality: int = 82, seed: int = 0,
                   val_per_class: int = 0, workers: int | None = None) -> Path:
    """An ImageFolder of textured 800x600 JPEGs of about 100 KB, like real photos; built once.

    Smooth colour waves plus blotches plus fine noise: JPEG cannot compress them to nothing, so
    decoding costs what a real photo costs. `val_per_class` > 0 adds a val/ folder with the same
    classes (nature_12K's layout). Every file has its own seed, so `workers` processes share the
    work and an interrupted build continues where it stopped; DONE marks a finished set.
    """
    dest = Path(dest)
    done = dest / "DONE"
    width, height = size
    if done.exists():
        found = _synthetic_shape(dest)
        if found != (classes, per_class, val_per_class, tuple(size)):
            raise UserError(f"{dest} already holds another synthetic set (classes, train and val per class, "
                            f"size: {found}); delete it or choose another folder")
        return dest
    jobs = [(dest / split / f"class_{c}" / f"{i:04d}.jpg", (seed, split_index, c, i), c, size, quality)
            for split_index, (split, count) in enumerate((("train", per_class), ("val", val_per_class)))
            for c in range(classes) for i in range(count)]
    jobs = [job for job in jobs if not job[0].exists()]  # written atomically: an existing file is complete
    for folder in {job[0].parent for job in jobs}:
        folder.mkdir(parents=True, exist_ok=True)
    workers = min(workers or os.cpu_count() or 1, max(1, len(jobs) // 64))  # a pool pays only for many files
    if workers > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # forkserver: the workers start from a clean process, not a copy of one holding CUDA or thread pools.
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("forkserver")) as pool:
            list(pool.map(_write_synthetic_jpeg, jobs, chunksize=16))
    else:
        for job in jobs:
            _write_synthetic_jpeg(job)
    done.write_text(f"{classes} classes x {per_class} train + {val_per_class} val synthetic {width}x{height} "
                    f"JPEGs (quality {quality}, seed {seed})\n")
    return dest


def _synthetic_shape(dest: Path) -> tuple:
    """(classes, train per class, val per class, image size) of a finished synthetic set, read from its files:
    sets built before DONE carried these numbers are checked the same way."""
    from PIL import Image

    def per_class(split: str) -> int:
        counts = {len(list(folder.glob("*.jpg"))) for folder in (dest / split).glob("class_*")}
        return counts.pop() if len(counts) == 1 else -1  # -1: classes of different sizes, not ours

    train_classes = sorted((dest / "train").glob("class_*"))
    first = next(train_classes[0].glob("*.jpg"), None) if train_classes else None
    size = Image.open(first).size if first else None
    return len(train_classes), per_class("train"), per_class("val") if (dest / "val").exists() else 0, size


@functools.lru_cache(maxsize=2)
def _pixel_grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    return tuple(np.mgrid[0:height, 0:width].astype(np.float32))


def _write_synthetic_jpeg(job) -> None:
    """One photo-like JPEG of `make_synthetic`: its class sets the wave frequency, its seed the rest."""
    from PIL import Image

    path, file_seed, c, size, quality = job
    rng = np.random.default_rng(file_seed)
    width, height = size
    y, x = _pixel_grid(height, width)
    angle, frequency = rng.uniform(0, 2 * np.pi), 0.01 + 0.004 * c
    phase = frequency * (x * np.float32(np.cos(angle)) + y * np.float32(np.sin(angle)))
    waves = np.stack([np.sin(phase + np.float32(k)) for k in (0, 2, 4)], -1) * 60 + 128
    coarse = rng.normal(128, 40, (max(1, height // 8), max(1, width // 8), 3)).clip(0, 255).astype(np.uint8)
    blotches = np.asarray(Image.fromarray(coarse).resize(size, Image.BICUBIC), np.float32) - 128
    # float32 throughout: the noise is the costliest part, and thousands of files are made per check.
    pixels = waves + blotches + rng.standard_normal((height, width, 3), dtype=np.float32) * 6
    with atomic_path(path) as tmp:
        Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(tmp, format="JPEG", quality=quality)


def _steady(seconds: list[float]) -> float:
    return statistics.median(seconds[1:] if len(seconds) > 1 else seconds)


def bench_engine(root: Path, cfg: CNNConfig, batch_size: int, epochs: int, device, compile="auto") -> dict:
    """Cache build (fresh, in a temporary folder) and `fit` epochs of our engine."""
    with tempfile.TemporaryDirectory() as cache_dir:
        start = time.perf_counter()
        full = data_lib.load_folder(root / "train", cfg.input_size, cache_dir=cache_dir, progress=False)
        cache_seconds = time.perf_counter() - start
    train_idx, val_idx = data_lib.split_indices(full.labels)
    train_set, val_set = full.subset(train_idx), full.subset(val_idx)
    tcfg = TrainConfig(epochs=epochs, batch_size=batch_size, augment=False, patience=0, compile=compile)
    torch.manual_seed(0)
    out = fit(CNN(cfg), train_set, val_set, tcfg, device, progress=False, desc="engine")
    release_memory()
    steady = _steady(out["epoch_seconds"])
    return {"cache_seconds": cache_seconds, "cache_images_per_second": len(full) / cache_seconds,
            "epoch_seconds": out["epoch_seconds"], "steady_epoch_seconds": steady,
            "images_per_second": len(full) / steady, "val_acc": out["val_acc"]}


def bench_typical(root: Path, cfg: CNNConfig, batch_size: int, epochs: int, device, workers: int | None = None) -> dict:
    """The pipeline most solutions use: decode and resize every JPEG with PIL on every epoch, fp32."""
    from torch.utils.data import DataLoader, Subset
    from torchvision import datasets, transforms

    workers = os.cpu_count() if workers is None else workers
    transform = transforms.Compose([transforms.Resize((cfg.input_size, cfg.input_size)), transforms.ToTensor(),
                                    transforms.Normalize(data_lib.MEAN, data_lib.STD)])
    folder = datasets.ImageFolder(root / "train", transform=transform)
    train_idx, val_idx = data_lib.split_indices(torch.tensor(folder.targets))
    loader = lambda idx, shuffle: DataLoader(Subset(folder, idx.tolist()), batch_size=batch_size, shuffle=shuffle,
                                             num_workers=workers, pin_memory=device.type == "cuda")
    train_loader, val_loader = loader(train_idx, True), loader(val_idx, False)
    torch.manual_seed(0)
    model = CNN(cfg).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    seconds, correct = [], 0
    for _ in range(epochs):
        start = time.perf_counter()
        model.train()
        for x, y in train_loader:
            x, y = x.to(device), y.to(device)
            loss = loss_fn(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        correct = 0
        with torch.no_grad():
            for x, y in val_loader:
                correct += (model(x.to(device)).argmax(1).cpu() == y).sum().item()
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
    del model, optimizer
    release_memory()
    steady = _steady(seconds)
    return {"workers": workers, "epoch_seconds": seconds, "steady_epoch_seconds": steady,
            "images_per_second": len(folder) / steady, "val_acc": correct / len(val_idx)}


def _machine(device: torch.device) -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"device": str(device), "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
            "cpu": cpu, "cpu_count": os.cpu_count(), "torch": torch.__version__, "describe": describe()}


def run_bench(data=None, input_size: int = 64, batch_size: int = 64, epochs: int = 3,
              configs: tuple[str, ...] | None = None, device=None, compile="auto") -> dict:
    """Engine vs typical pipeline on `data` (an ImageFolder root with train/; default: synthetic 800x600 JPEGs).

    `configs`: names from CONFIGS; default both on a GPU, only "light" on a CPU (the heavy one is
    compute-bound there, so both pipelines are equally slow and it takes minutes).
    """
    device = torch.device(device or get_device())
    root = Path(data) if data else make_synthetic()
    configs = configs or (("light", "heavy") if device.type == "cuda" else ("light",))
    result = {"machine": _machine(device), "data": str(root), "input_size": input_size, "batch_size": batch_size,
              "epochs": epochs, "configs": {}}
    for name in configs:
        cfg = CNNConfig(**CONFIGS[name], input_size=input_size)
        engine = bench_engine(root, cfg, batch_size, epochs, device, compile)
        typical = bench_typical(root, cfg, batch_size, epochs, device)
        result["configs"][name] = {"engine": engine, "typical": typical,
                                   "speedup": engine["images_per_second"] / typical["images_per_second"]}
        print(f"{name}: engine {engine['images_per_second']:.0f} img/s, typical {typical['images_per_second']:.0f} "
              f"img/s, speedup x{result['configs'][name]['speedup']:.1f}; cache build "
              f"{engine['cache_images_per_second']:.0f} img/s", file=sys.stderr, flush=True)
    return result


# --------------------------------------------------------------------------------------------
# How long will a sweep take? (printed before the sweep starts, Part-A/02)
# --------------------------------------------------------------------------------------------
def sample_sweep_params(config: dict, samples: int = 256, seed: int = 0) -> list[dict]:
    """`samples` parameter dicts drawn uniformly from a sweep config's space, with W&B's own distributions.

    A seeded generator of our own: numpy's global one (which the sweep engine uses) is left alone.
    """
    import warnings

    with warnings.catch_warnings():  # sweeps 0.2.0 still uses pydantic-1 style config; harmless under 2
        warnings.simplefilter("ignore")
        from sweeps.params import HyperParameterSet

    space = HyperParameterSet.from_config(config["parameters"])
    rng = np.random.default_rng(seed)
    draw = lambda hp: hp.ppf(rng.uniform())  # noqa: E731
    return [{hp.name: plain_value(draw(hp)) for hp in space} for _ in range(samples)]


def _train_folder_images(root_or_counts) -> int:
    """Images in train/: from a dataset root (names only), a {class: count} dict or a plain count."""
    if isinstance(root_or_counts, dict):
        return sum(root_or_counts.values())
    if isinstance(root_or_counts, int):
        return root_or_counts
    return sum(data_lib.check_dataset(root_or_counts).train_counts.values())


def _epoch_images(train_folder_images: int, tcfg: TrainConfig) -> tuple[int, int]:
    """(train images seen, val images) of one `fit` epoch: 80/20 split, last partial batch dropped."""
    val = round(train_folder_images * tcfg.val_fraction)
    train = train_folder_images - val
    seen = train - train % tcfg.batch_size if train > tcfg.batch_size else train
    return seen, val


# A CPU measures configs up to this many forward MACs per image (about a second per image-step on two
# cores) and prices heavier ones by extrapolation: CPU time grows linearly with MACs.
CPU_MEASURE_MACS = 2e9
# A CPU warm-up step holds at most 16 images and about 1e9 forward MACs: a CPU's cost per image
# hardly depends on the batch, and the estimate must stay a few seconds long.
CPU_MAX_BATCH, CPU_STEP_MACS = 16, 1e9


def measure_epoch_speed(cnn: CNNConfig, tcfg: TrainConfig, device, steps: int = 3) -> dict:
    """Seconds per image of a steady `fit` epoch for this config, on random uint8 images.

    `fit` itself runs two epochs of `steps` batches plus a 20% validation share; the first pays
    allocation and cuDNN's algorithm search and is not counted. Pixel values do not change the
    work, so random pixels cost what photos cost. Always eager: compile time is not measured.
    A batch that runs out of GPU memory is halved and measured again (`out_of_memory_at` says so).
    """
    device = torch.device(device)
    batch_size = tcfg.batch_size
    if device.type == "cpu":
        batch_size = min(batch_size, CPU_MAX_BATCH, max(2, int(CPU_STEP_MACS // count_macs(cnn))))
    out_of_memory_at = seconds_per_image = None
    while seconds_per_image is None:
        try:
            seconds_per_image, wall = _timed_warmup(cnn, tcfg, device, batch_size, steps)
        except torch.OutOfMemoryError:
            if batch_size == 1:
                raise
            out_of_memory_at = out_of_memory_at or batch_size
            batch_size //= 2
        release_memory()  # outside the `except`: its traceback no longer holds the failed step's tensors
    return {"macs": count_macs(cnn), "batch_size": batch_size, "seconds_per_image": seconds_per_image,
            "wall_seconds": wall, "out_of_memory_at": out_of_memory_at}


def _timed_warmup(cnn: CNNConfig, tcfg: TrainConfig, device, batch_size: int, steps: int) -> tuple[float, float]:
    train_images, val_images = steps * batch_size, max(1, steps * batch_size // 4)
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (train_images + val_images, 3, cnn.input_size, cnn.input_size),
                           dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, cnn.num_classes, (len(images),), generator=generator)
    full = data_lib.ImageSet(images, labels, [f"class_{c}" for c in range(cnn.num_classes)])
    train_set, val_set = full.subset(range(train_images)), full.subset(range(train_images, len(full)))
    warmup = dataclasses.replace(tcfg, epochs=2, batch_size=batch_size, patience=0, compile="false")
    out = fit(CNN(cnn), train_set, val_set, warmup, device, progress=False, desc="warm-up")
    return out["epoch_seconds"][1] / len(full), sum(out["epoch_seconds"])


def _speed_model(points: list[dict]):
    """Seconds per image as a + b * MACs through the measured points (the lightest and heaviest configs).

    The intercept is what a config costs beyond its MACs (memory traffic, launches); one point, or a
    heavier config measured faster, gives a constant.
    """
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
    points = [measure_epoch_speed(cnn, tcfg, device) for cnn, tcfg in ([lightest] if lightest is heaviest
                                                                       else [lightest, heaviest])]
    return {"device": str(device), "input_size": lightest[0].input_size, "points": points,
            "warmup_seconds": time.perf_counter() - start}


def estimate_sweep(root_or_counts, config: dict | None = None, count: int = 30, device=None,
                   speed: dict | None = None, samples: int = 256) -> dict:
    """Estimated wall time of a sweep, before it starts: MACs x images x epochs over the sweep's space,
    priced by a short warm-up on this device. Introduced in Part-A/02.

    `root_or_counts`: the dataset root (only file names are read), a {class: count} dict of train/,
    or the number of train/ images. `config`: a sweep config (default `SWEEP_CONFIG`). The space is
    sampled (`samples` configs, seeded); each config costs epochs x (train + val images) x seconds
    per image, where seconds per image = a + b x MACs through the measured lightest and heaviest
    configs (`measure_sweep_speed`). `speed`: the `speed` of an earlier estimate on the same device
    and input size, to re-estimate without measuring again. The result is labelled an estimate:
    runs are assumed to go all their epochs, eager, and `excludes` lists what it leaves out.
    """
    if int(count) < 1:
        raise UserError(f"count must be >= 1 runs, got {count}")
    device = torch.device(device or get_device())
    folder_images = _train_folder_images(root_or_counts)
    runs = [configs_from_params(params)[:2] for params in sample_sweep_params(config or SWEEP_CONFIG, samples)]
    input_sizes = sorted({cnn.input_size for cnn, _ in runs})
    if len(input_sizes) != 1:
        raise UserError(f"the sweep varies input_size ({input_sizes}); estimate one size at a time")
    speed = speed or measure_sweep_speed(runs, device)
    if speed["device"] != str(device) or speed["input_size"] != input_sizes[0]:
        raise UserError(f"speed was measured on {speed['device']} at {speed['input_size']} px; this estimate "
                        f"is for {device} at {input_sizes[0]} px: leave speed=None to measure again")
    per_run = [estimate_run_seconds(cnn, tcfg, folder_images, speed) for cnn, tcfg in runs]
    machine = _machine(device)
    where = machine["gpu"] or f"CPU ({machine['cpu']}, {machine['cpu_count']} cores)"
    shorten = ("early stopping will shorten it" if any(tcfg.patience for _, tcfg in runs)
               else "every run goes all its epochs")
    total = float(np.mean(per_run)) * int(count)
    return {
        "estimate": True, "device": str(device), "device_name": where, "count": int(count),
        "train_folder_images": folder_images, "input_size": input_sizes[0], "configs_sampled": len(runs),
        "mean_epochs": float(np.mean([tcfg.epochs for _, tcfg in runs])),
        "mean_macs": float(np.mean([count_macs(cnn) for cnn, _ in runs])),
        "seconds_per_run": float(np.mean(per_run)),
        "seconds_per_run_p10_p90": [float(np.percentile(per_run, 10)), float(np.percentile(per_run, 90))],
        "total_seconds": total, "speed": speed,
        "excludes": ["early stopping", "torch.compile (heavy runs: faster epochs, one compile each)",
                     "runs that run out of memory (they end early)", "W&B start-up per run",
                     "the one-time decode of the images"],
        "describe": (f"Estimated sweep time on {where}: {format_duration(total)} for {int(count)} runs "
                     f"(estimate from a {speed['warmup_seconds']:.0f} s warm-up; {shorten})"),
    }
