"""Benchmark: our engine against the typical pipeline, same ImageFolder, same CNN.

Introduced in Part-A/02 (the README's speed table). `python -m shared bench [--data DIR]`.

- engine: decode every JPEG once into a uint8 cache (timed: cache-build images/s), then `train.fit`:
  batches are index lookups, normalisation on the device, bf16/channels_last on a GPU.
- typical: torchvision `ImageFolder` + PIL + Resize/ToTensor/Normalize on every epoch, a
  `DataLoader` with one worker per CPU, fp32, a plain AdamW loop.

Both train and validate on the same class-balanced 80/20 split, without augmentation (the typical
pipeline has none), and report images/s over train + val of a steady-state epoch (the median of
the epochs after the first, which pays warm-up, worker start and compilation).
"""
from __future__ import annotations

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
from .model import CNN, CNNConfig
from .runtime import DATA_DIR, describe, get_device
from .train import TrainConfig, fit, release_memory

# The published solution's two reference configs (see the README): cheap and compute-heavy.
CONFIGS = {
    "light": dict(filters=(32,) * 5, kernel_sizes=(3,) * 5, activation="relu", dense_neurons=256, batch_norm=True),
    "heavy": dict(filters=(512, 256, 128, 64, 32), kernel_sizes=(3,) * 5, activation="relu", dense_neurons=256,
                  batch_norm=True),
}


def make_synthetic(dest: str | os.PathLike = DATA_DIR / "bench_synthetic", classes: int = 10,
                   per_class: int = 40, size=(800, 600), quality: int = 82, seed: int = 0) -> Path:
    """An ImageFolder of textured 800x600 JPEGs of about 100 KB, like real photos; built once.

    Smooth colour waves plus blotches plus fine noise: JPEG cannot compress them to nothing, so
    decoding costs what a real photo costs.
    """
    from PIL import Image

    dest = Path(dest)
    done = dest / "DONE"
    if done.exists():
        return dest
    rng = np.random.default_rng(seed)
    width, height = size
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    for c in range(classes):
        folder = dest / "train" / f"class_{c}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            angle, frequency = rng.uniform(0, 2 * np.pi), 0.01 + 0.004 * c
            phase = frequency * (x * np.cos(angle) + y * np.sin(angle))
            waves = np.stack([np.sin(phase + k) for k in (0, 2, 4)], -1) * 60 + 128
            coarse = rng.normal(128, 40, (height // 8, width // 8, 3)).clip(0, 255).astype(np.uint8)
            blotches = np.asarray(Image.fromarray(coarse).resize(size, Image.BICUBIC), np.float32) - 128
            pixels = waves + blotches + rng.normal(0, 6, (height, width, 3))
            Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(folder / f"{i:03d}.jpg", quality=quality)
    done.write_text(f"{classes} classes x {per_class} synthetic {width}x{height} JPEGs\n")
    return dest


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
