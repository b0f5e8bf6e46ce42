"""The from-scratch CNN of Part A: five conv blocks, one dense layer, a class layer.

Introduced in Part-A/01. Every layer is spelled out so that `shared.formulas` can count it by hand, and
every block owns its activation module so that guided backprop (`shared.viz`) can hook one layer alone.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn

from .runtime import UserError

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "mish": nn.Mish,
               "leaky_relu": nn.LeakyReLU, "elu": nn.ELU}
ORGANISATIONS = ("same", "doubling", "halving")
MIN_INPUT_SIZE = 32  # five 2x2 max-pools: 32 px is the smallest size that leaves a 1x1 map
MAX_INPUT_SIZE = 1024  # above the photos' own ~800x600; it bounds the decoded cache (images x size^2 x 3 bytes)


class ConfigError(UserError, ValueError):
    """A setting out of range (CNNConfig, TrainConfig, a CLI flag): refused before any work starts."""


class Settings:
    """A flat dict out and in, for the settings dataclasses (CNNConfig, TrainConfig)."""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict):
        """Pick this class's fields out of a flat dict (e.g. a sweep run's config); ignore the rest."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def make_filters(base: int, organisation: str = "same") -> tuple[int, ...]:
    """Filter counts of the five blocks, drawn from base .. 16 * base; for base 32:

        same      32  32  32  32  32
        doubling  32  64 128 256 512
        halving  512 256 128  64  32   (the published winner)

    Doubling and halving hold almost the same conv weights, so the sweep compares *where* the width goes; CONV5
    keeps at least `base` channels (Question 4 needs 10). Halving's widest layers see the highest resolution.
    """
    if organisation not in ORGANISATIONS:
        raise ConfigError(f"organisation must be one of {ORGANISATIONS}, got {organisation!r}")
    if int(base) < 1:
        raise ConfigError(f"base must be >= 1 filter, got {base}")
    widths = tuple(int(base) * 2**block for block in range(5))  # the range all three draw from
    return {"same": (int(base),) * 5, "doubling": widths, "halving": widths[::-1]}[organisation]


def make_activation(name: str) -> nn.Module:
    """A fresh activation module, so no two layers share one (guided backprop hooks need that)."""
    try:
        return ACTIVATIONS[name.lower()]()
    except KeyError:
        raise ConfigError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}") from None


@dataclass
class CNNConfig(Settings):
    filters: tuple[int, ...] = (32, 64, 128, 256, 512)
    kernel_sizes: tuple[int, ...] = (3, 3, 3, 3, 3)
    activation: str = "silu"
    dense_activation: str | None = None  # None: the same as `activation`
    dense_neurons: int = 256
    dropout: float = 0.3
    batch_norm: bool = True
    input_size: int = 224
    in_channels: int = 3
    num_classes: int = 10

    def __post_init__(self):
        self.filters = tuple(int(f) for f in self.filters)
        self.kernel_sizes = tuple(int(k) for k in self.kernel_sizes)
        if len(self.filters) != 5 or len(self.kernel_sizes) != 5:
            raise ConfigError(f"need 5 filters and 5 kernel sizes, got {self.filters} and {self.kernel_sizes}")
        if min(self.filters) < 1 or min(self.kernel_sizes) < 1:
            raise ConfigError(f"filters and kernel sizes must be positive, got {self.filters} and {self.kernel_sizes}")
        if not MIN_INPUT_SIZE <= self.input_size <= MAX_INPUT_SIZE:
            raise ConfigError(f"input_size must be >= {MIN_INPUT_SIZE} (five 2x2 pools) and <= {MAX_INPUT_SIZE} "
                              f"(the photos are about 800x600), got {self.input_size}")
        for name in ("dense_neurons", "in_channels"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.num_classes < 2:
            raise ConfigError(f"num_classes must be >= 2 (a classifier needs two classes), got {self.num_classes}")
        if self.dense_activation is None:
            self.dense_activation = self.activation
        for name in (self.activation, self.dense_activation):
            make_activation(name)  # fail early on a typo
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")

    @property
    def feature_sizes(self) -> list[int]:
        """Spatial size entering each block, then after the last pool: [S, S//2, ..., S//32] (each pool floors)."""
        return [self.input_size // 2**i for i in range(len(self.filters) + 1)]


class ConvBlock(nn.Module):
    """conv ("same" padding) -> optional BatchNorm -> activation -> 2x2 max-pool."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, activation: str, batch_norm: bool):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel_size, padding="same")
        self.bn = nn.BatchNorm2d(c_out) if batch_norm else nn.Identity()
        self.act = make_activation(activation)
        self.pool = nn.MaxPool2d(2)

    def forward(self, x):
        return self.pool(self.act(self.bn(self.conv(x))))


class CNN(nn.Module):
    def __init__(self, cfg: CNNConfig):
        super().__init__()
        self.cfg = cfg
        channels = (cfg.in_channels, *cfg.filters)
        self.blocks = nn.Sequential(*(
            ConvBlock(channels[i], channels[i + 1], cfg.kernel_sizes[i], cfg.activation, cfg.batch_norm)
            for i in range(5)))
        last = cfg.feature_sizes[-1]
        self.flatten = nn.Flatten()
        self.dense = nn.Linear(cfg.filters[-1] * last * last, cfg.dense_neurons)
        self.dense_act = make_activation(cfg.dense_activation)
        self.dropout = nn.Dropout(cfg.dropout)
        self.out = nn.Linear(cfg.dense_neurons, cfg.num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.flatten(self.features(x))
        return self.out(self.dropout(self.dense_act(self.dense(x))))


def layer_summary(model: CNN) -> list[tuple[str, tuple, int]]:
    """(layer name, output shape, parameters) for every leaf layer, from one forward pass of a single image."""
    rows, hooks = [], []
    for name, module in model.named_modules():
        if len(list(module.children())) == 0:
            hooks.append(module.register_forward_hook(
                lambda m, i, o, name=name: rows.append(
                    (name, tuple(o.shape[1:]), sum(p.numel() for p in m.parameters())))))
    try:
        cfg, device = model.cfg, next(model.parameters()).device
        was_training = model.training
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, cfg.in_channels, cfg.input_size, cfg.input_size, device=device))
        model.train(was_training)
    finally:
        for h in hooks:
            h.remove()
    return rows
