"""Benchmark: our engine against the typical pipeline, same ImageFolder, same CNN.

A tool beside the package, for docs/speed.md's tables (no notebook needs it):
`python -m benchmarks.bench [--data DIR]`, also `python -m shared bench` and `make bench`.

- engine: decode every JPEG once into a uint8 cache (timed: cache-build images/s), then `train.fit`:
  batches are index lookups, normalisation on the device, bf16/channels_last on a GPU.
- typical: torchvision `ImageFolder` + PIL + Resize/ToTensor/Normalize on every epoch, a
  `DataLoader` with one worker per CPU, fp32, a plain AdamW loop.

Both train and validate on the same class-balanced 80/20 split, without augmentation (the typical
pipeline has none), and report images/s over train + val of a steady-state epoch (the median of
the epochs after the first, which pays warm-up, worker start and compilation).

Also here: `make_synthetic`, the photo-like JPEGs that this bench and `python -m benchmarks.gpu_check`
run on. The sweep time estimate Part-A/02 prints lives in the package: `shared/estimate.py`.
"""
from __future__ import annotations

import functools
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from shared import data as data_lib
from shared.estimate import machine
from shared.model import CNN, CNNConfig
from shared.runtime import DATA_DIR, UserError, atomic_path, get_device
from shared.train import TrainConfig, fit, release_memory

# The published solution's two reference configs (see docs/speed.md): cheap and compute-heavy.
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


def run_bench(data=None, input_size: int = 64, batch_size: int = 64, epochs: int = 3,
              configs: tuple[str, ...] | None = None, device=None, compile="auto") -> dict:
    """Engine vs typical pipeline on `data` (an ImageFolder root with train/; default: synthetic 800x600 JPEGs).

    `configs`: names from CONFIGS; default both on a GPU, only "light" on a CPU (the heavy one is
    compute-bound there, so both pipelines are equally slow and it takes minutes).
    """
    unknown = [name for name in configs or () if name not in CONFIGS]
    if unknown:  # before any work: an unknown name used to end a finished light run in a KeyError
        raise UserError(f"unknown bench config(s) {', '.join(map(repr, unknown))}; choose from {', '.join(CONFIGS)}")
    TrainConfig(epochs=epochs, batch_size=batch_size)  # their own refusals, before the synthetic set is built
    CNNConfig(input_size=input_size)
    device = torch.device(device or get_device())
    root = Path(data) if data else make_synthetic()
    configs = configs or (("light", "heavy") if device.type == "cuda" else ("light",))
    result = {"machine": machine(device), "data": str(root), "input_size": input_size, "batch_size": batch_size,
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


def main(argv: list[str] | None = None) -> None:
    """`python -m benchmarks.bench ...`: the CLI's `bench` command, one parser for both."""
    from shared.__main__ import main as cli

    cli(["bench", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    main()
