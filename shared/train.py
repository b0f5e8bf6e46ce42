"""The training engine: `fit` trains any model on decoded sets; `train` turns a `CNNConfig` into a result.

Introduced in Part-A/02. Batches are index lookups into a uint8 tensor on the GPU, augmented there; training
uses bf16/fp16 autocast, channels_last, a fused optimiser and, on big enough runs, `torch.compile`.
"""
from __future__ import annotations

import copy
import dataclasses
import gc
import math
import os
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from . import data as data_lib
from .augment import prepare_batch
from .formulas import count_macs, count_params, torch_counts
from .model import CNN, CNNConfig, ConfigError, Settings
from .runtime import MAX_SEED, UserError, atomic_path, get_device


OPTIMIZERS = ("adamw", "sgd")
SCHEDULES = ("onecycle", "cosine")
COMPILE_ON, COMPILE_OFF = ("true", "1", "yes", "on"), ("false", "0", "no", "off")
COMPILE_SETTINGS = ("auto", *COMPILE_ON, *COMPILE_OFF)
# Upper bounds that catch typos (1e3 for 1e-3): both optimisers diverge long before lr = 10, and decoupled
# weight decay shrinks every weight by lr * weight_decay per step, so weight_decay > 1 erases what a step learned.
MAX_LR, MAX_WEIGHT_DECAY = 10.0, 1.0
COMPILE_MIN_MACS = 1e15  # ~1 min of eager bf16 training on an H100, where ~30 s of compile starts to pay off
# Kept free by the memory plan: the CUDA context (~0.4 GiB), cuDNN workspaces and the allocator's fragmentation.
GPU_MEMORY_RESERVE = int(1.5 * 2**30)


@dataclass
class TrainConfig(Settings):
    """Training hyperparameters. Defaults are for a real GPU run on iNaturalist-12K."""
    epochs: int = 15
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.05
    optimizer: str = "adamw"         # adamw | sgd
    schedule: str = "onecycle"       # onecycle | cosine (linear warm-up, then cosine)
    warmup_fraction: float = 0.2     # of all steps
    label_smoothing: float = 0.1
    augment: bool = True
    patience: int = 5                # early stopping on validation accuracy; 0 = off
    val_fraction: float = 0.2
    seed: int = 42
    compile: str = "auto"            # auto | true | false
    max_grad_norm: float = 0.0       # 0 = no clipping
    micro_batch: int = 0             # 0 = planned from the GPU's memory (`plan_micro_batch`); the whole batch on a CPU

    def __post_init__(self):
        """Refuse settings that would crash (batch_size=0 divides by zero) or silently mean nothing (NaN)."""
        checks = [
            ("epochs", self.epochs >= 1, ">= 1"), ("batch_size", self.batch_size >= 1, ">= 1"),
            ("lr", 0 < self.lr <= MAX_LR, f"> 0 and <= {MAX_LR:g}"),
            ("weight_decay", 0 <= self.weight_decay <= MAX_WEIGHT_DECAY, f">= 0 and <= {MAX_WEIGHT_DECAY:g}"),
            ("optimizer", self.optimizer in OPTIMIZERS, f"one of {OPTIMIZERS}"),
            ("schedule", self.schedule in SCHEDULES, f"one of {SCHEDULES}"),
            ("warmup_fraction", 0 <= self.warmup_fraction < 1, "in [0, 1)"),
            ("label_smoothing", 0 <= self.label_smoothing < 1, "in [0, 1)"),
            ("patience", self.patience >= 0, ">= 0 (0 = no early stopping)"),
            ("val_fraction", 0 < self.val_fraction < 1, "in (0, 1): the run needs validation images"),
            ("seed", 0 <= self.seed <= MAX_SEED, f"in 0..{MAX_SEED} (numpy's range)"),
            ("compile", str(self.compile).lower() in COMPILE_SETTINGS, f"one of {COMPILE_SETTINGS}"),
            ("max_grad_norm", self.max_grad_norm >= 0, ">= 0 (0 = no clipping)"),
            ("micro_batch", self.micro_batch >= 0, ">= 0 (0 = planned from the GPU's memory)"),
        ]
        for name, ok, wanted in checks:
            if not ok:
                raise ConfigError(f"{name} must be {wanted}, got {getattr(self, name)!r}")


class Diverged(RuntimeError):
    """The loss became NaN or infinite; the run is recorded as failed."""


# Device settings and the memory plan (micro-batches when a drawn batch does not fit the GPU) ---------------
def amp_dtype(device: torch.device) -> torch.dtype | None:
    """bf16 on Ampere and newer, fp16 (with a GradScaler) on T4/P100/V100, none on CPU."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.get_device_capability(device) >= (8, 0) else torch.float16


def should_compile(setting: str | bool, device: torch.device, images_to_process: int, macs_per_image: int) -> bool:
    """Compile only where Triton works (CUDA capability >= 7.0) and the run's images x MACs reach COMPILE_MIN_MACS:
    a compile costs tens of seconds, which a light config (0.2 GMAC/image) never earns back in a sweep run."""
    setting = str(setting).lower()
    if setting in COMPILE_OFF or device.type != "cuda":
        return False
    if torch.cuda.get_device_capability(device) < (7, 0):
        return False  # P100: Triton does not support it
    return setting in COMPILE_ON or images_to_process * macs_per_image >= COMPILE_MIN_MACS


def activation_bytes(model: nn.Module, input_size: int) -> tuple[int, int]:
    """(bytes autograd saves for backward, the largest saved tensor) per training image under 16-bit autocast.
    Exact: a 16-bit copy runs one image on the meta device and every distinct storage saved for backward is summed."""
    meta = copy.deepcopy(model).to("meta", torch.bfloat16).train()
    saved = {}

    def pack(tensor):
        saved[tensor.untyped_storage()._cdata] = tensor.untyped_storage().nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        meta(torch.zeros(1, 3, input_size, input_size, device="meta", dtype=torch.bfloat16))  # RGB images
    return sum(saved.values()), max(saved.values())


def plan_micro_batch(model: nn.Module, input_size: int, batch_size: int, gpu_bytes: int,
                     cached_bytes: int = 0) -> tuple[int, int]:
    """(micro-batch, predicted peak bytes): the largest divisor of `batch_size` whose peak fits `gpu_bytes`, else 1.
    The peak: per image its saved tensors plus two of the largest (the gradients flowing back); the float batch and
    its augmented copy; fp32 weights, gradients, AdamW's moments, autocast's 16-bit weights; the cached images;
    GPU_MEMORY_RESERVE. One optimiser step per drawn batch either way (gradient accumulation); BatchNorm normalises
    each micro-batch by its own statistics, as every framework's gradient accumulation does."""
    saved, largest = activation_bytes(model, input_size)
    fixed = (2 * batch_size * 3 * input_size**2 * 4 + sum(p.numel() for p in model.parameters()) * (4 + 4 + 8 + 2)
             + cached_bytes + GPU_MEMORY_RESERVE)
    for micro in (d for d in range(batch_size, 0, -1) if batch_size % d == 0):
        peak = micro * (saved + 2 * largest) + fixed
        if peak <= gpu_bytes or micro == 1:
            return micro, peak


# Evaluation ------------------------------------------------------------------------------------------------
def _batch_logits(model: nn.Module, data: data_lib.ImageSet, batch_size: int, device, mean, std):
    """Yield (float32 logits, labels) per batch, both on `device` (default: the model's), in eval mode meanwhile."""
    device = torch.device(device or next(model.parameters()).device)
    dtype = amp_dtype(device)
    was_training = model.training
    model.eval()
    try:
        for images, labels in data_lib.iterate_batches(data, batch_size):
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                logits = model(prepare_batch(images, device, False, mean, std))
            yield logits.float(), labels.to(device, non_blocking=True)
    finally:
        model.train(was_training)


@torch.no_grad()
def predict(model: nn.Module, data: data_lib.ImageSet, batch_size: int = 256, device=None,
            mean=data_lib.MEAN, std=data_lib.STD) -> torch.Tensor:
    """Class probabilities [N, C] (on the CPU) for every image of a decoded set."""
    out = [logits.softmax(dim=1) for logits, _ in _batch_logits(model, data, batch_size, device, mean, std)]
    return torch.cat(out).cpu() if out else torch.empty(0, len(data.classes))


@torch.no_grad()
def evaluate(model: nn.Module, data: data_lib.ImageSet, batch_size: int = 256, device=None,
             mean=data_lib.MEAN, std=data_lib.STD) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of `model` on a decoded set; (nan, nan) for an empty set. Summed on the
    device from the logits (log-softmax is exact where log(softmax) underflows), with one sync at the end."""
    if len(data) == 0:
        return math.nan, math.nan
    loss_sum, correct = 0.0, 0  # tensors on the device after the first batch
    for logits, labels in _batch_logits(model, data, batch_size, device, mean, std):
        loss_sum += F.cross_entropy(logits, labels, reduction="sum")
        correct += (logits.argmax(1) == labels).sum()
    return loss_sum.item() / len(data), correct.item() / len(data)


# The loop --------------------------------------------------------------------------------------------------
def require_images(train_set: data_lib.ImageSet, val_set: data_lib.ImageSet, tcfg: TrainConfig) -> None:
    """Refuse an empty training or validation set before the first epoch: with no validation image no
    epoch is ever "best", so there would be no weights to hand back."""
    if len(train_set) == 0 or len(val_set) == 0:
        raise UserError(f"nothing to {'train on' if len(train_set) == 0 else 'validate on'}: "
                        f"{len(train_set)} training and {len(val_set)} validation images; "
                        f"add images or change val_fraction ({tcfg.val_fraction})")


def check_rgb(cfg: CNNConfig) -> None:
    """Images are decoded to RGB. Not a CNNConfig rule: the model and its formulas hold for any channels."""
    if cfg.in_channels != 3:
        raise ConfigError(f"in_channels must be 3 to train on the images (decoded as RGB), got {cfg.in_channels}")


def _make_optimizer(params, tcfg: TrainConfig, device: torch.device):
    fused = device.type == "cuda"
    if tcfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=tcfg.lr, weight_decay=tcfg.weight_decay, fused=fused)
    return torch.optim.SGD(params, lr=tcfg.lr, momentum=0.9, nesterov=True,  # sgd: TrainConfig admits no other
                           weight_decay=tcfg.weight_decay, fused=fused)


def _make_schedule(optimizer, tcfg: TrainConfig, total_steps: int):
    if tcfg.schedule == "onecycle":
        # OneCycleLR divides by (warm-up steps - 1) and by the steps after it: keep at least 2 warm-up
        # steps and 1 after them; a run of under 3 steps keeps a constant rate.
        if total_steps < 3:
            return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
        pct_start = min(max(tcfg.warmup_fraction, 2 / total_steps), 1 - 1 / total_steps)
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=[g["lr"] for g in optimizer.param_groups], total_steps=total_steps,
            pct_start=pct_start)
    warmup = max(1, int(tcfg.warmup_fraction * total_steps))  # cosine: TrainConfig admits no other

    def factor(step):
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total_steps - warmup))))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _optimizer_step(model: nn.Module, optimizer, scaler, max_grad_norm: float | None) -> None:
    """The step after the batch's backward passes; under fp16 the gradients are unscaled before clipping."""
    scaler.unscale_(optimizer)
    if max_grad_norm:
        nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    scaler.step(optimizer)
    scaler.update()


def fit(model: nn.Module, train_set: data_lib.ImageSet, val_set: data_lib.ImageSet, tcfg: TrainConfig,
        device=None, param_groups=None, mean=data_lib.MEAN, std=data_lib.STD, on_epoch=None,
        progress: bool = True, desc: str = "train", on_train=None) -> dict:
    """Train `model` in place with early stopping; it comes back with the best epoch's weights and no gradients.
    Returns `history` (one dict per epoch), `best_epoch`, `val_acc` (best), `epoch_seconds`, `images_per_second`,
    `best_state` (a copy), `micro_batch` and `stopped_by` (None, "patience", or "on_epoch" when `on_epoch(row)`
    was truthy). `on_train(model)` runs after every `model.train()` (fine-tuning's frozen BatchNorm)."""
    require_images(train_set, val_set, tcfg)
    device = torch.device(device or get_device())
    torch.manual_seed(tcfg.seed)
    train_dev, val_dev = data_lib.to_device(train_set, device), data_lib.to_device(val_set, device)
    model.to(device).to(memory_format=torch.channels_last)
    dtype = amp_dtype(device)
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)  # disabled: passes everything through
    optimizer = _make_optimizer(param_groups or [p for p in model.parameters() if p.requires_grad], tcfg, device)
    drop_last = len(train_set) > tcfg.batch_size  # constant shapes: no recompiles, no 1-image BN batch
    steps = len(train_set) // tcfg.batch_size if drop_last else 1
    schedule = _make_schedule(optimizer, tcfg, steps * tcfg.epochs)
    size = train_dev.images.shape[-1]
    micro = tcfg.micro_batch or tcfg.batch_size
    if device.type == "cuda" and not tcfg.micro_batch:
        micro, _ = plan_micro_batch(model, size, tcfg.batch_size, torch.cuda.get_device_properties(device).total_memory,
                                    train_dev.images.nbytes + val_dev.images.nbytes)
    step_model = model
    if device.type == "cuda" and should_compile(tcfg.compile, device, tcfg.epochs * len(train_dev),
                                                torch_counts(model, size)[1]):
        torch._dynamo.reset()  # a sweep compiles many shapes in one process: start each run clean
        step_model = torch.compile(model)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=tcfg.label_smoothing)
    generator = torch.Generator().manual_seed(tcfg.seed)
    history, best, stopped_by = [], {"val_acc": -1.0, "epoch": 0, "state": None}, None
    bar = tqdm(range(1, tcfg.epochs + 1), desc=desc, unit="epoch", disable=not progress, leave=progress)
    for epoch in bar:
        start = time.perf_counter()
        model.train()
        if on_train:
            on_train(model)
        loss_sum, correct, seen = 0.0, 0, 0  # the sums become tensors on the device: one sync per epoch
        for images, labels in data_lib.iterate_batches(train_dev, tcfg.batch_size, shuffle=True,
                                                       generator=generator, drop_last=drop_last):
            x = prepare_batch(images, device, tcfg.augment, mean, std)
            labels = labels.to(device, non_blocking=True)
            optimizer.zero_grad(set_to_none=True)
            for x_part, labels_part in zip(x.split(micro), labels.split(micro)):  # gradient accumulation
                with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                    logits = step_model(x_part)  # the batch's mean loss: each part's mean weighted by its share
                    loss = loss_fn(logits.float(), labels_part) * (len(labels_part) / len(labels))
                scaler.scale(loss).backward()
                loss_sum += loss.detach() * len(labels)
                correct += (logits.argmax(1) == labels_part).sum()
            _optimizer_step(model, optimizer, scaler, tcfg.max_grad_norm)
            schedule.step()
            seen += len(labels)
        train_loss = loss_sum.item() / seen
        if not math.isfinite(train_loss):
            raise Diverged(f"training loss became {train_loss} in epoch {epoch} (lr {tcfg.lr})")
        val_loss, val_acc = evaluate(model, val_dev, 2 * tcfg.batch_size, device, mean, std)
        seconds = time.perf_counter() - start
        row = {"epoch": epoch, "train_loss": train_loss, "train_acc": correct.item() / seen,
               "val_loss": val_loss, "val_acc": val_acc, "lr": optimizer.param_groups[-1]["lr"],
               "epoch_seconds": seconds, "images_per_second": (seen + len(val_set)) / seconds}
        history.append(row)
        if val_acc > best["val_acc"]:
            # A copy: state_dict() returns views that the next optimizer step would overwrite.
            best = {"val_acc": val_acc, "epoch": epoch,
                    "state": {k: v.detach().clone() for k, v in model.state_dict().items()}}
        bar.set_postfix(train_acc=f"{row['train_acc']:.3f}", val_acc=f"{val_acc:.3f}",
                        best=f"{best['val_acc']:.3f}", img_s=f"{row['images_per_second']:.0f}")
        if on_epoch and on_epoch(row):  # a truthy answer stops the run (a sweep's early termination)
            stopped_by = "on_epoch"
            break
        if tcfg.patience and epoch - best["epoch"] >= tcfg.patience:
            stopped_by = "patience"
            break
    bar.close()
    model.load_state_dict(best["state"])
    model.zero_grad(set_to_none=True)
    steady = [r["images_per_second"] for r in history[1:]] or [history[0]["images_per_second"]]
    return {"history": history, "best_epoch": best["epoch"], "val_acc": best["val_acc"],
            "epoch_seconds": [r["epoch_seconds"] for r in history],
            "images_per_second": sorted(steady)[len(steady) // 2],  # the median after the warm-up epoch
            "best_state": best["state"], "stopped_by": stopped_by, "micro_batch": micro}


def release_memory() -> None:
    """Free what a finished or failed run left on the GPU, so the next run starts clean."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def save_atomic(obj, path: str | os.PathLike) -> None:
    """torch.save to a temporary file, then rename: a crash never leaves half a checkpoint."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load_data(root, size: int, tcfg: TrainConfig, test: bool, resize_to: int | None = None, verbose: bool = True):
    """(train, val, test or None, seconds to load the split) of a dataset root. The test set is decoded before
    any training, so that one with no readable image (its accuracy would be NaN) is refused first."""
    start = time.perf_counter()
    train_set, val_set = data_lib.load_split(root, size, tcfg.val_fraction, tcfg.seed, resize_to=resize_to,
                                             verbose=verbose)
    cache_seconds = time.perf_counter() - start
    test_set = data_lib.load_test(root, size, resize_to=resize_to, verbose=verbose) if test else None
    if test and len(test_set) == 0:
        raise UserError(f"no readable test image in {root}/val ({len(test_set.skipped)} file(s) skipped); "
                        f"add images there or leave out --test")
    return train_set, val_set, test_set, cache_seconds


# One Part A run --------------------------------------------------------------------------------------------
@dataclass
class TrainResult:
    config: dict
    val_acc: float
    best_epoch: int
    epoch_seconds: list[float]
    cache_seconds: float
    images_per_second: float
    params: int
    macs: int
    split: dict
    skipped: list
    history: list = field(default_factory=list)
    stopped_by: str | None = None   # see `fit`
    micro_batch: int | None = None  # images per forward/backward pass (see `plan_micro_batch`)
    test_acc: float | None = None
    test_loss: float | None = None
    checkpoint: str | None = None
    model: nn.Module | None = field(default=None, repr=False)  # best weights, on the CPU

    def to_dict(self) -> dict:
        left_out = {"model"} | ({"test_acc", "test_loss"} if self.test_acc is None else set())
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in left_out}


def train(cfg: CNNConfig, root, tcfg: TrainConfig | None = None, test: bool = False, device=None,
          checkpoint: str | os.PathLike | None = None, on_epoch=None, progress: bool = True,
          verbose: bool = True) -> TrainResult:
    """Train one Part A config on the 80/20 split of root/train; evaluate on root/val only if `test`. The dataset
    is checked first (names only), so a bad folder fails before any decoding; `cfg.num_classes` becomes the data's."""
    tcfg = tcfg or TrainConfig()
    check_rgb(cfg)
    info = data_lib.check_dataset(root)
    cfg = dataclasses.replace(cfg, num_classes=info.num_classes)
    train_set, val_set, test_set, cache_seconds = load_data(root, cfg.input_size, tcfg, test, verbose=verbose)
    torch.manual_seed(tcfg.seed)
    model = CNN(cfg)
    try:
        out = fit(model, train_set, val_set, tcfg, device, on_epoch=on_epoch, progress=progress,
                  desc=f"{cfg.activation} {'-'.join(map(str, cfg.filters))}")
        result = TrainResult(
            config={**cfg.to_dict(), **tcfg.to_dict()}, val_acc=out["val_acc"], best_epoch=out["best_epoch"],
            epoch_seconds=out["epoch_seconds"], cache_seconds=cache_seconds,
            images_per_second=out["images_per_second"], params=count_params(cfg), macs=count_macs(cfg),
            split={"train": train_set.class_counts(), "val": val_set.class_counts()},
            skipped=[list(s) for s in train_set.skipped], history=out["history"],
            stopped_by=out["stopped_by"], micro_batch=out["micro_batch"])
        if checkpoint:
            save_atomic({"config": cfg.to_dict(), "train_config": tcfg.to_dict(), "val_acc": out["val_acc"],
                         "best_epoch": out["best_epoch"], "state_dict": out["best_state"]}, checkpoint)
            result.checkpoint = str(checkpoint)
        if test:
            result.test_loss, result.test_acc = evaluate(model, test_set, 2 * tcfg.batch_size, device)
            result.skipped += [list(s) for s in test_set.skipped]
        result.model = model.to("cpu").to(memory_format=torch.contiguous_format)
        return result
    finally:
        del model
        release_memory()


def load_checkpoint(path: str | os.PathLike) -> tuple[CNN, dict]:
    """Rebuild a CNN from a checkpoint written by `train(..., checkpoint=...)`."""
    saved = torch.load(path, map_location="cpu", weights_only=True)
    model = CNN(CNNConfig.from_dict(saved["config"]))
    model.load_state_dict(saved["state_dict"])
    return model.eval(), saved
