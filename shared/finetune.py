"""Fine-tuning ImageNet-pretrained torchvision models with four freezing strategies.

Introduced in Part-B/01. `build_model` replaces the 1000-way head and freezes per strategy; `fine_tune` trains a
Linear on features computed once (`head`) or runs `shared.train.fit` with discriminative learning rates (the others).
"""
from __future__ import annotations

import pickle
import socket
import time
import warnings
from contextlib import contextmanager, nullcontext
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from . import data as data_lib
from .augment import prepare_batch
from .decode import one_torch_thread
from .model import MAX_INPUT_SIZE, MIN_INPUT_SIZE, ConfigError
from .runtime import UserError, banner, get_device, run_mode
from .train import TrainConfig, amp_dtype, evaluate, fit, load_data, release_memory, require_images

STRATEGIES = ("head", "first_k", "last_k", "full")
# Defaults for a real GPU run. Pretrained features need small steps: the new head gets `lr`,
# every pretrained layer that trains gets lr * BACKBONE_LR_FACTOR (discriminative learning rates).
FINETUNE_TRAIN = TrainConfig(epochs=10, batch_size=64, lr=1e-3, weight_decay=0.05, schedule="cosine",
                             warmup_fraction=0.1, label_smoothing=0.1, augment=True, patience=3)
BACKBONE_LR_FACTOR = 0.1
DOWNLOAD_TIMEOUT = 20  # seconds per socket operation: a blocked network fails fast instead of hanging


class WeightsUnavailable(UserError, RuntimeError):
    """The pretrained checkpoint is neither in the hub cache nor downloadable. The message is one line."""

    def __init__(self, message: str, path: Path, url: str):
        super().__init__(message)
        self.path, self.url = path, url


# Weights and their preprocessing -------------------------------------------------------------------------------
def get_weights(name: str):
    """The DEFAULT (best ImageNet) weights enum of a torchvision classification model."""
    try:
        if name not in torchvision.models.list_models(module=torchvision.models):  # not raft_small (optical flow)
            raise KeyError(name)
        return torchvision.models.get_model_weights(name).DEFAULT
    except (ValueError, KeyError):
        raise ConfigError(f"{name!r} is not a torchvision classification model; see "
                          f"torchvision.models.list_models(torchvision.models)") from None


def weights_file(weights) -> Path:
    """Where torch hub keeps (or will keep) this checkpoint: $TORCH_HOME/hub/checkpoints/<file>."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name


@contextmanager
def _hub_errors(weights):
    """Turn torch hub's download/load failures of `weights` into one `WeightsUnavailable` line; never hang."""
    path = weights_file(weights)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT)  # torch.hub's urlopen has no timeout of its own
    try:
        yield
    except OSError as err:  # URLError, HTTPError, timeouts and DNS failures are all OSErrors
        if path.exists():
            raise WeightsUnavailable(f"{path} could not be read ({err}); delete it and download "
                                     f"{weights.url} again.", path, weights.url) from None
        raise WeightsUnavailable(
            f"{weights} not found at {path} and not downloadable ({getattr(err, 'reason', err)}). "
            f"Download {weights.url} into {path.parent}/ (or point TORCH_HOME elsewhere); on Kaggle "
            f"turn Internet on, or 'Add input' a dataset holding {path.name} and copy it there.",
            path, weights.url) from None
    except (RuntimeError, EOFError, pickle.UnpicklingError) as err:
        if not path.exists():
            raise
        raise WeightsUnavailable(f"{path} is damaged ({type(err).__name__}: {str(err).splitlines()[0]}); "
                                 f"delete it and download {weights.url} again.", path, weights.url) from None
    finally:
        socket.setdefaulttimeout(previous)


def ensure_weights(name: str) -> Path:
    """The DEFAULT checkpoint of `name` in the hub cache, downloaded if needed; else `WeightsUnavailable`."""
    weights = get_weights(name)
    with _hub_errors(weights):
        weights.get_state_dict(progress=True)  # torchvision's own path: cache, else download
    return weights_file(weights)


def weights_or_random(name: str, mode: str, allow_random: bool | None = None) -> bool:
    """Whether to build `name` pretrained (True) or randomly initialised (False, after a banner). Random weights
    only when `allow_random`; None allows them in demo and quick `mode`, never in full mode, where they would
    publish numbers that say nothing about transfer learning: `WeightsUnavailable` stops the run instead."""
    if allow_random is None:
        allow_random = mode != "full"
    try:
        ensure_weights(name)
        return True
    except WeightsUnavailable as err:
        if not allow_random:
            raise WeightsUnavailable(f"{err} To fine-tune random weights on purpose: allow_random=True "
                                     f"(CLI: --random-init).", err.path, err.url) from None
        banner(f"RANDOM INITIALISATION: no pretrained weights for {name} (no network, no cached file),\n"
               f"so the models below start from random weights: their numbers say nothing about\n"
               f"transfer learning. To use the real weights, put the checkpoint at\n"
               f"  {err.path}\n(download it from {err.url}) and run again.")
        return False


def preprocessing(name: str, input_size: int | None = None) -> dict:
    """The weights' own recipe: resize the shorter side to `resize_size`, centre-crop `crop_size`. `input_size`
    overrides the crop and scales the resize alike, so the crop keeps its share of the photo (not for ViT)."""
    transforms = get_weights(name).transforms()
    crop, resize = transforms.crop_size[0], transforms.resize_size[0]
    if input_size is not None and not MIN_INPUT_SIZE <= input_size <= MAX_INPUT_SIZE:  # 0 is not "the default"
        raise ConfigError(f"input_size must be >= {MIN_INPUT_SIZE} and <= {MAX_INPUT_SIZE}, got {input_size}")
    if input_size and input_size != crop:
        if name.startswith("vit_"):
            raise ConfigError(f"{name} needs exactly its {crop}px crop (its position embeddings are "
                             f"learned for {crop // 16}x{crop // 16} patches); drop --input-size")
        resize, crop = round(input_size * resize / crop), input_size
    return {"crop_size": crop, "resize_size": resize, "mean": tuple(transforms.mean), "std": tuple(transforms.std)}


# The head and the natural units of each architecture -----------------------------------------------------------
def head_slot(model: nn.Module) -> tuple[nn.Module, str]:
    """(parent, attribute) of the classification layer: `fc`, `classifier[-1]`, `heads.head` or `head`."""
    if isinstance(getattr(model, "fc", None), nn.Linear):                       # ResNet, RegNet, ...
        return model, "fc"
    classifier = getattr(model, "classifier", None)
    if isinstance(classifier, nn.Sequential) and isinstance(classifier[-1], nn.Linear):
        return classifier, str(len(classifier) - 1)                              # EfficientNet, ConvNeXt, ...
    if isinstance(classifier, nn.Linear):                                        # DenseNet
        return model, "classifier"
    heads = getattr(model, "heads", None)
    if heads is not None and isinstance(getattr(heads, "head", None), nn.Linear):
        return heads, "head"                                                     # ViT
    if isinstance(getattr(model, "head", None), nn.Linear):                      # Swin
        return model, "head"
    raise ConfigError(f"{type(model).__name__} has no Linear classification head to replace; supported: a Linear "
                      f"fc, classifier, classifier[-1], heads.head or head (ResNet, RegNet, EfficientNet, MobileNet, "
                      f"ConvNeXt, DenseNet, VGG, AlexNet, ViT, Swin, ...)")


def architecture(name: str) -> nn.Module:
    """`name` without weights, on the meta device (no memory, no time) unless it needs real tensors (RegNet)."""
    with warnings.catch_warnings():  # GoogLeNet's and Inception's notes about their future init
        warnings.simplefilter("ignore", FutureWarning)
        try:
            with torch.device("meta"):
                return torchvision.models.get_model(name)
        except (NotImplementedError, RuntimeError):
            return torchvision.models.get_model(name)


def check_supported(name: str, strategy: str, k: int | None = None) -> None:
    """Refuse, before any weights are loaded, a model whose head or units this code does not know
    (SqueezeNet's convolutional head; GoogLeNet's units for first_k/last_k), or a k out of range."""
    get_weights(name)  # refuses what is not a torchvision classification model
    model = architecture(name)
    try:
        head_slot(model)
        resolve_k(model, strategy, k)
    except ConfigError as err:
        raise ConfigError(f"{name} with {strategy}: {err}") from None


def get_head(model: nn.Module) -> nn.Linear:
    parent, attr = head_slot(model)
    return getattr(parent, attr)


def backbone_units(model: nn.Module) -> tuple[list, list[nn.Module]]:
    """(stem, units): what `first_k` / `last_k` count, e.g. ResNet's conv1+bn1, then layer1..4. A ConvNeXt or Swin
    unit is a stage with the downsampling in front of it."""
    if hasattr(model, "layer4") and hasattr(model, "conv1"):
        return [model.conv1, model.bn1], [model.layer1, model.layer2, model.layer3, model.layer4]
    if isinstance(model, torchvision.models.VisionTransformer):
        return [model.conv_proj, model.class_token, model.encoder.pos_embedding], list(model.encoder.layers)
    features = getattr(model, "features", None)
    if isinstance(model, (torchvision.models.ConvNeXt, torchvision.models.SwinTransformer)):
        rest = list(features)[1:]  # stage, down, stage, down, stage, ...
        return [features[0]], [rest[0]] + [nn.ModuleList(rest[i:i + 2]) for i in range(1, len(rest), 2)]
    if isinstance(features, nn.Sequential):
        # Only layers with weights count: with AlexNet's and VGG's ReLUs and pools, last_k(1) would train a max-pool.
        return [features[0]], [unit for unit in list(features)[1:] if any(True for _ in unit.parameters())]
    raise ConfigError(f"first_k/last_k do not know the units of {type(model).__name__}; use head or full, or one "
                      f"of ResNet, ResNeXt, Wide ResNet, ViT, ConvNeXt, Swin and the nets with a features sequence "
                      f"(EfficientNet, MobileNet, VGG, AlexNet, DenseNet)")


def resolve_k(model: nn.Module, strategy: str, k: int | None = None) -> int | None:
    """The k a strategy uses: for first_k/last_k `k`, or half the units when None; None for head and full.
    The one place the default lives, so a result records the k that was really used."""
    if strategy not in STRATEGIES:
        raise ConfigError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    if strategy not in ("first_k", "last_k"):
        return None
    units = len(backbone_units(model)[1])
    k = units // 2 if k is None else k
    if not 0 <= k <= units:
        raise ConfigError(f"k must be in 0..{units} for {type(model).__name__}, got {k}")
    return k


def apply_strategy(model: nn.Module, strategy: str, k: int | None = None) -> None:
    """Set `requires_grad` for a strategy. `last_k` = freeze the stem and the first n - k units."""
    k = resolve_k(model, strategy, k)
    model.requires_grad_(strategy != "head")
    get_head(model).requires_grad_(True)
    if k is not None:
        stem, units = backbone_units(model)
        frozen = k if strategy == "first_k" else len(units) - k
        # Layers after the last unit (ViT's final LayerNorm, ConvNeXt's head norm) stay trainable.
        for part in stem + units[:frozen]:
            part.requires_grad_(False)  # a module, or a parameter such as ViT's class token


def check_distinct(name: str, strategies: list[tuple[str, int | None]]) -> None:
    """Refuse, before any training, a list of (strategy, k) in which two entries train the same parameters of
    `name` (ResNet50's first_k 2 and last_k 2 both train layer3, layer4 and the head). No weights are loaded."""
    model, seen = architecture(name), {}
    for strategy, k in strategies:
        apply_strategy(model, strategy, k)
        trainable = frozenset(n for n, p in model.named_parameters() if p.requires_grad)
        label = strategy if k is None else f"{strategy} (k={k})"
        if trainable in seen:
            raise ConfigError(f"{name}: {seen[trainable]} and {label} train the same {len(trainable)} parameter "
                              f"tensors, so they are one strategy twice; choose strategies (or k) that differ")
        seen[trainable] = label


def freeze_bn(model: nn.Module) -> nn.Module:
    """Put every BatchNorm whose parameters are all frozen in eval mode: its running stats must not drift.
    `fit` calls it through `on_train`, right after `model.train()`."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            if not any(p.requires_grad for p in module.parameters(recurse=False)):
                module.eval()
    return model


def param_counts(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameters."""
    params = list(model.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


def build_model(name: str, strategy: str, num_classes: int = 10, k: int | None = None,
                pretrained: bool = True) -> nn.Module:
    """A torchvision classifier with its DEFAULT ImageNet weights (random ones when not `pretrained`), a new
    `num_classes` head, frozen per strategy; `WeightsUnavailable` when the weights are not cached nor downloadable."""
    weights = get_weights(name) if pretrained else None
    with _hub_errors(weights) if pretrained else nullcontext():  # get_model -> ... -> load_state_dict_from_url
        model = torchvision.models.get_model(name, weights=weights)
    parent, attr = head_slot(model)
    setattr(parent, attr, nn.Linear(getattr(parent, attr).in_features, num_classes))
    apply_strategy(model, strategy, k)
    return freeze_bn(model)


def param_groups(model: nn.Module, lr: float, backbone_lr_factor: float = BACKBONE_LR_FACTOR) -> list[dict]:
    """The new head at `lr`, trainable pretrained layers at lr * backbone_lr_factor."""
    head = list(get_head(model).parameters())
    backbone = [p for p in model.parameters() if p.requires_grad and all(p is not h for h in head)]
    return ([{"params": backbone, "lr": lr * backbone_lr_factor}] if backbone else []) + [{"params": head, "lr": lr}]


# The head strategy: features once, then a Linear in seconds ----------------------------------------------------
@torch.no_grad()
def extract_features(model: nn.Module, images: data_lib.ImageSet, device, mean, std,
                     batch_size: int = 256) -> torch.Tensor:
    """Penultimate features [N, D] (float32, on `device`) of the frozen backbone: one pass, AMP, no grad."""
    parent, attr = head_slot(model)
    head = getattr(parent, attr)
    setattr(parent, attr, nn.Identity())  # the model now returns what the head would see
    # channels_last pays on GPUs; on a CPU it made this forward-only pass 3x slower.
    layout = torch.channels_last if device.type == "cuda" else torch.contiguous_format
    model.eval().to(device).to(memory_format=layout)
    dtype = amp_dtype(device)
    out = []
    try:
        for batch, _ in data_lib.iterate_batches(images, batch_size):
            x = prepare_batch(batch, device, False, mean, std).contiguous(memory_format=layout)
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                out.append(model(x).float())
    finally:
        setattr(parent, attr, head)
    return torch.cat(out)


def train_linear(head: nn.Linear, train_x, train_y, val_x, val_y, steps: int = 500, lr: float = 3e-3,
                 weight_decay: float = 0.01, label_smoothing: float = 0.1, eval_every: int = 10,
                 patience: int = 100) -> dict:
    """Full-batch AdamW on fixed features, early stopping on validation accuracy; best weights kept. On a CPU on one
    torch thread: for thousands of tiny ops the hand-offs between threads dominate."""
    optimizer = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=weight_decay)
    history, best = [], {"val_acc": -1.0, "step": 0, "state": None}
    with one_torch_thread() if train_x.device.type == "cpu" else nullcontext():
        for step in range(1, steps + 1):
            loss = F.cross_entropy(head(train_x), train_y, label_smoothing=label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if step % eval_every == 0 or step == steps:
                with torch.no_grad():
                    val_acc = (head(val_x).argmax(1) == val_y).float().mean().item()
                history.append({"step": step, "train_loss": loss.item(), "val_acc": val_acc})
                if val_acc > best["val_acc"]:
                    best = {"val_acc": val_acc, "step": step,
                            "state": {k: v.detach().clone() for k, v in head.state_dict().items()}}
                elif step - best["step"] >= patience:
                    break
    head.load_state_dict(best["state"])
    return {"history": history, "val_acc": best["val_acc"], "best_step": best["step"]}


# One fine-tuning run -------------------------------------------------------------------------------------------
def fine_tune(model: nn.Module, strategy: str, train_set: data_lib.ImageSet, val_set: data_lib.ImageSet,
              tcfg: TrainConfig | None = None, mean=data_lib.MEAN, std=data_lib.STD, device=None,
              progress: bool = True) -> dict:
    """Train a model from `build_model` in place; returns val_acc, epoch_seconds, history, param counts. `head`:
    features once, then `train_linear` on the model's own head (no augmentation: the features are fixed). The
    others: `fit` with discriminative learning rates and `freeze_bn` after every `model.train()`."""
    tcfg = tcfg or FINETUNE_TRAIN
    require_images(train_set, val_set, tcfg)
    device = torch.device(device or get_device())
    trainable, total = param_counts(model)
    start = time.perf_counter()
    if strategy == "head":
        train_dev, val_dev = data_lib.to_device(train_set, device), data_lib.to_device(val_set, device)
        train_x = extract_features(model, train_dev, device, mean, std, 2 * tcfg.batch_size)
        val_x = extract_features(model, val_dev, device, mean, std, 2 * tcfg.batch_size)
        feature_seconds = time.perf_counter() - start
        head = get_head(model).to(device)
        out = train_linear(head, train_x, train_dev.labels.to(device), val_x, val_dev.labels.to(device),
                           lr=3 * tcfg.lr, label_smoothing=tcfg.label_smoothing)
        seconds = time.perf_counter() - start
        out.update(epoch_seconds=[seconds], feature_seconds=feature_seconds, head_seconds=seconds - feature_seconds,
                   images_per_second=(len(train_set) + len(val_set)) / feature_seconds, best_epoch=1)
    else:
        out = fit(model, train_set, val_set, tcfg, device, param_groups=param_groups(model, tcfg.lr),
                  mean=mean, std=std, progress=progress, desc=strategy, on_train=freeze_bn)
        out.pop("best_state")
    model.zero_grad(set_to_none=True)  # the head path's last step leaves gradients on the head
    model.eval()
    return {"strategy": strategy, "trainable_params": trainable, "total_params": total,
            "val_acc": out["val_acc"], "epoch_seconds": out["epoch_seconds"],
            "train_seconds": time.perf_counter() - start, "images_per_second": out["images_per_second"],
            "best_epoch": out["best_epoch"], "history": out["history"],
            **{k: out[k] for k in ("feature_seconds", "head_seconds", "best_step") if k in out}}


def run_finetune(root, model_name: str, strategy: str, k: int | None = None, epochs: int | None = None,
                 input_size: int | None = None, test: bool = False, allow_random: bool | None = False,
                 tcfg: TrainConfig | None = None, device=None, progress: bool = True) -> dict:
    """Everything the CLI's `finetune` does: data at the weights' preprocessing, build, fine-tune, (test). Settings,
    the dataset (`root` goes through `data.find_data`, so None finds it) and the weights are checked in that order
    before any decoding. `allow_random` is `weights_or_random`'s (False: no weights, no run)."""
    tcfg = tcfg or FINETUNE_TRAIN
    if epochs is not None:
        tcfg = replace(tcfg, epochs=epochs)  # validated by TrainConfig: 0 is refused, not "the default"
    prep = preprocessing(model_name, input_size)
    check_supported(model_name, strategy, k)
    root = data_lib.find_data(root)  # after the settings: it may build the demo set or download
    info = data_lib.check_dataset(root)
    pretrained = weights_or_random(model_name, run_mode(data_lib.is_demo(root)), allow_random)
    torch.manual_seed(tcfg.seed)
    model = build_model(model_name, strategy, num_classes=info.num_classes, k=k, pretrained=pretrained)
    train_set, val_set, test_set, cache_seconds = load_data(root, prep["crop_size"], tcfg, test,
                                                            prep["resize_size"], progress)
    try:
        result = fine_tune(model, strategy, train_set, val_set, tcfg, prep["mean"], prep["std"], device, progress)
        result.update(model=model_name, weights=str(get_weights(model_name)) if pretrained else "random init",
                      k=resolve_k(model, strategy, k), classes=info.classes, input_size=prep["crop_size"],
                      resize_size=prep["resize_size"], cache_seconds=cache_seconds, config=tcfg.to_dict())
        if test:
            result["test_loss"], result["test_acc"] = evaluate(model, test_set, 2 * tcfg.batch_size, device,
                                                               prep["mean"], prep["std"])
        return result
    finally:
        del model
        release_memory()
