"""Exact parameter and computation counts for the Part A CNN (Question 1). Introduced in Part-A/01.

* Parameters: every learnable number, i.e. ``sum(p.numel() for p in model.parameters())``. Conv and dense
  biases are counted; BatchNorm's affine weight and bias (2 per channel) are counted when ``batch_norm`` is
  on; BN's running mean/var are buffers, not parameters.
* Computations: multiply-accumulates (MACs) of the conv and dense layers, the work that dominates. One MAC is
  one multiply plus one add, so FLOPs = 2 x MACs. Bias additions, BatchNorm, activations and max-pooling are
  NOT counted (they are O(activations), not O(activations x fan-in)): exactly what
  ``torch.utils.flop_counter.FlopCounterMode`` counts, divided by 2. "Same" padding means a conv computes at
  its full input resolution, padded zeros included.
* Spatial sizes: block i sees ``S_i = floor(S / 2**i)`` (i = 0..4) because each 2x2 max-pool floors odd
  sizes; the dense layer sees ``S_5 = floor(S / 32)``.
"""
from __future__ import annotations

import math

from .model import CNNConfig


def count_params(cfg: CNNConfig) -> int:
    c, s5 = [cfg.in_channels, *cfg.filters], cfg.feature_sizes[-1]
    total = 0
    for i, k in enumerate(cfg.kernel_sizes):
        total += k * k * c[i] * c[i + 1] + c[i + 1]  # conv weights + bias
        if cfg.batch_norm:
            total += 2 * c[i + 1]  # BN gamma + beta
    total += c[5] * s5 * s5 * cfg.dense_neurons + cfg.dense_neurons
    total += cfg.dense_neurons * cfg.num_classes + cfg.num_classes
    return total


def count_macs(cfg: CNNConfig) -> int:
    c, sizes = [cfg.in_channels, *cfg.filters], cfg.feature_sizes
    total = 0
    for i, k in enumerate(cfg.kernel_sizes):
        total += k * k * c[i] * c[i + 1] * sizes[i] * sizes[i]  # one k*k*c_in dot product per output pixel
    total += c[5] * sizes[5] * sizes[5] * cfg.dense_neurons
    total += cfg.dense_neurons * cfg.num_classes
    return total


def params_uniform(m: int, k: int, n: int, size: int, batch_norm: bool = False) -> int:
    """The assignment's case: m filters of k x k in every layer, n dense neurons, 3 input channels, 10 classes.

    P = (3k^2 m + m) + 4(k^2 m^2 + m) + (m S_5^2 n + n) + (10 n + 10),  S_5 = floor(S / 2^5)
    (+ 10 m for BatchNorm's gamma and beta in 5 layers).
    """
    s5 = size // 2**5
    total = (3 * k * k * m + m) + 4 * (k * k * m * m + m) + (m * s5 * s5 * n + n) + (10 * n + 10)
    return total + (10 * m if batch_norm else 0)


def macs_uniform(m: int, k: int, n: int, size: int) -> int:
    """MACs for the assignment's case.

    C = 3k^2 m S^2 + sum_{i=1..4} k^2 m^2 (floor(S / 2^i))^2 + m S_5^2 n + 10 n
    """
    s5 = size // 2**5
    conv = 3 * k * k * m * size * size + sum(k * k * m * m * (size // 2**i) ** 2 for i in range(1, 5))
    return conv + m * s5 * s5 * n + 10 * n


def log_slope(count, point: dict, name: str, low: float, high: float, size: int) -> float:
    """How fast `count` (params_uniform or macs_uniform) grows in `name` between `low` and `high`, the other
    values as in `point`: the slope of log(count) against log(name). 2 means quadratic there, 1 linear, 0 flat.
    Introduced in Part-A/01, which measures it around the example (far from it another term takes over)."""
    at = lambda value: count(**{**point, name: value}, size=size)  # noqa: E731
    return math.log(at(high) / at(low)) / math.log(high / low)


# Upper ends of the slope bands and their words; a slope is a local exponent, so the bands sit around 0, 1, 2.
_GROWTH_WORDS = ((0.15, "hardly at all"), (0.75, "slower than linearly"), (1.25, "about linearly"),
                 (1.75, "between linearly and quadratically"), (2.25, "about quadratically"))


def growth_words(slope: float) -> str:
    """Words for a log-log slope, so printed prose follows the measured number."""
    if not math.isfinite(slope):
        raise ValueError(f"growth_words needs a finite slope, got {slope}")
    return next((words for upper, words in _GROWTH_WORDS if slope < upper), "faster than quadratically")


def torch_counts(model, input_size: int, in_channels: int = 3) -> tuple[int, int]:
    """(parameters, MACs) measured by torch itself, the ground truth the formulas are checked against."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    params = sum(p.numel() for p in model.parameters())
    was_training = model.training
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, in_channels, input_size, input_size, device=next(model.parameters()).device))
    model.train(was_training)
    return params, counter.get_total_flops() // 2
