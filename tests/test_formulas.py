"""The Question 1 formulas are exact: they equal torch's own parameter and MAC counts for any config."""
import random

import pytest

from shared.formulas import (count_macs, count_params, growth_words, log_slope, macs_uniform, params_uniform,
                             torch_counts)
from shared.model import CNN, CNNConfig


def random_config(rng: random.Random) -> CNNConfig:
    return CNNConfig(filters=[rng.randint(1, 24) for _ in range(5)],
                     kernel_sizes=[rng.randint(1, 7) for _ in range(5)],  # even kernels too: "same" pads unevenly
                     activation=rng.choice(["relu", "gelu", "silu", "mish"]),
                     dense_neurons=rng.randint(1, 64), dropout=0.0, batch_norm=rng.random() < 0.5,
                     input_size=rng.randint(32, 130), in_channels=rng.choice([1, 3]),
                     num_classes=rng.choice([2, 10, 17]))


@pytest.mark.parametrize("seed", range(12))
def test_general_formulas_match_torch(seed):
    cfg = random_config(random.Random(seed))
    params, macs = torch_counts(CNN(cfg), cfg.input_size, cfg.in_channels)
    assert count_params(cfg) == params, cfg
    assert count_macs(cfg) == macs, cfg


@pytest.mark.parametrize("size", [32, 33, 63, 64, 65, 97, 100, 224, 250])
def test_pooling_floors_at_odd_sizes(size):
    cfg = CNNConfig(filters=[4] * 5, kernel_sizes=[3] * 5, dense_neurons=8, input_size=size, batch_norm=False)
    assert cfg.feature_sizes == [size // 2**i for i in range(6)]
    assert (count_params(cfg), count_macs(cfg)) == torch_counts(CNN(cfg), size)


@pytest.mark.parametrize("m, k, n, size", [(32, 3, 256, 224), (16, 5, 64, 97), (8, 2, 32, 33),
                                           (4, 7, 10, 250), (1, 1, 1, 32), (12, 4, 100, 65)])
@pytest.mark.parametrize("batch_norm", [False, True])
def test_uniform_formulas_equal_general_ones(m, k, n, size, batch_norm):
    cfg = CNNConfig(filters=[m] * 5, kernel_sizes=[k] * 5, dense_neurons=n, input_size=size,
                    batch_norm=batch_norm)
    assert params_uniform(m, k, n, size, batch_norm=batch_norm) == count_params(cfg)
    assert macs_uniform(m, k, n, size) == count_macs(cfg)


def test_uniform_formulas_match_torch_at_224():
    m, k, n = 32, 3, 256
    cfg = CNNConfig(filters=[m] * 5, kernel_sizes=[k] * 5, dense_neurons=n, input_size=224, batch_norm=False)
    assert (params_uniform(m, k, n, 224), macs_uniform(m, k, n, 224)) == torch_counts(CNN(cfg), 224)


def test_uniform_formula_by_hand():
    # m=1, k=1, n=1, S=32: convs 3+1 and 4*(1+1) params; dense 1*1*1+1; out 10+10.
    assert params_uniform(1, 1, 1, 32) == 4 + 8 + 2 + 20
    # MACs: 3*32^2 + (16^2 + 8^2 + 4^2 + 2^2) + 1 + 10, with S_i = floor(S/2^i), not S/(2i).
    assert macs_uniform(1, 1, 1, 32) == 3 * 1024 + 256 + 64 + 16 + 4 + 1 + 10


def test_log_slope_is_local_and_its_words_follow_the_number():
    """Around (32, 3, 256) at 224 px the dense layer's 49mn dominates the parameters, so they hardly grow in k;
    at the far end (k 9 -> 11) the 4k^2m^2 term has taken over and the slope is about 1, the old cell's k^1.01."""
    point = dict(m=32, k=3, n=256)
    near = log_slope(params_uniform, point, "k", 2, 4, 224)
    far = log_slope(params_uniform, point, "k", 9, 11, 224)
    assert 0.1 < near < 0.25 and 0.9 < far < 1.2
    assert log_slope(macs_uniform, point, "k", 2, 4, 224) == pytest.approx(2.0, abs=0.02)
    assert log_slope(macs_uniform, point, "n", 128, 512, 224) < 0.01
    assert growth_words(near) == "slower than linearly" and growth_words(0.0) == "hardly at all"
    assert growth_words(1.0) == "about linearly" and growth_words(1.5) == "between linearly and quadratically"
    assert growth_words(2.0) == "about quadratically" and growth_words(3.0) == "faster than quadratically"
    with pytest.raises(ValueError):
        growth_words(float("nan"))
