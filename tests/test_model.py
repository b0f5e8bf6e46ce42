"""The Part A CNN: every activation and organisation, odd input sizes, one activation module per layer."""
import pytest
import torch
from torch import nn

from shared.model import ACTIVATIONS, CNN, CNNConfig, layer_summary, make_filters
from shared.runtime import UserError


def small(**overrides) -> CNNConfig:
    settings = dict(filters=make_filters(4, "same"), kernel_sizes=(3, 3, 3, 3, 3), dense_neurons=16, input_size=32)
    return CNNConfig(**{**settings, **overrides})


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
@pytest.mark.parametrize("batch_norm", [False, True])
def test_every_activation_builds_and_runs(activation, batch_norm):
    model = CNN(small(activation=activation, batch_norm=batch_norm))
    assert isinstance(model.blocks[0].act, ACTIVATIONS[activation])
    assert isinstance(model.dense_act, ACTIVATIONS[activation])
    assert isinstance(model.blocks[0].bn, nn.BatchNorm2d if batch_norm else nn.Identity)
    out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10) and torch.isfinite(out).all()


def test_unknown_activation_is_rejected():
    with pytest.raises(ValueError, match="unknown activation"):
        small(activation="swishy")


def test_organisations():
    assert make_filters(32, "same") == (32, 32, 32, 32, 32)
    assert make_filters(16, "doubling") == (16, 32, 64, 128, 256)
    with pytest.raises(UserError, match="organisation"):  # a typo in a sweep config: one line, no traceback
        make_filters(32, "tripling")
    with pytest.raises(UserError, match="base"):
        make_filters(0, "same")
    for organisation in ("same", "doubling", "halving"):
        cfg = small(filters=make_filters(8, organisation))
        model = CNN(cfg)
        assert [b.conv.out_channels for b in model.blocks] == list(cfg.filters)
        assert model(torch.randn(1, 3, 32, 32)).shape == (1, 10)


@pytest.mark.parametrize("base", [10, 16, 32, 64])
def test_the_organisations_span_one_range_of_widths(base):
    """Issue 9: halving used to shrink from `base` (32 -> 2). Now all three draw from base .. 16 * base."""
    same, doubling, halving = (make_filters(base, o) for o in ("same", "doubling", "halving"))
    assert halving == doubling[::-1] and doubling == tuple(base * 2**i for i in range(5))
    assert set(same) | set(halving) <= set(range(base, 16 * base + 1))
    assert min(same[-1], doubling[-1], halving[-1]) >= base >= 10  # Question 4 shows 10 CONV5 neurons


def test_the_published_winner_is_in_the_space():
    assert make_filters(32, "halving") == (512, 256, 128, 64, 32)
    assert make_filters(32, "doubling") == (32, 64, 128, 256, 512)


@pytest.mark.parametrize("size", [32, 33, 65, 97, 224, 250])
def test_odd_input_sizes(size):
    model = CNN(small(input_size=size, kernel_sizes=(5, 4, 3, 2, 1)))
    assert model.dense.in_features == 4 * (size // 32) ** 2
    assert model(torch.randn(2, 3, size, size)).shape == (2, 10)


@pytest.mark.parametrize("size", [1, 16, 31])
def test_inputs_below_32_pixels_are_rejected(size):
    with pytest.raises(ValueError, match="32"):
        small(input_size=size)


def test_bad_shapes_are_rejected():
    with pytest.raises(ValueError):
        small(filters=(4, 4, 4, 4))
    with pytest.raises(ValueError):
        small(kernel_sizes=(3, 3, 0, 3, 3))
    with pytest.raises(ValueError):
        small(dropout=1.0)


def test_every_layer_owns_its_activation():
    # Guided backprop hooks one layer at a time: a shared module would hook them all.
    model = CNN(small(activation="relu"))
    acts = [block.act for block in model.blocks] + [model.dense_act]
    assert len({id(a) for a in acts}) == 6
    assert all(isinstance(a, nn.ReLU) for a in acts)


def test_dense_activation_defaults_to_activation_and_can_differ():
    assert small(activation="gelu").dense_activation == "gelu"
    model = CNN(small(activation="gelu", dense_activation="relu"))
    assert isinstance(model.blocks[4].act, nn.GELU) and isinstance(model.dense_act, nn.ReLU)


def test_config_round_trips_through_a_dict():
    cfg = small(activation="mish", dense_neurons=33, batch_norm=False)
    assert CNNConfig.from_dict({**cfg.to_dict(), "unknown_key": 1}) == cfg


def test_output_shape_and_layer_names():
    model = CNN(small(num_classes=10))
    for block in model.blocks:
        assert {"conv", "bn", "act", "pool"} <= dict(block.named_children()).keys()
    assert model.out.out_features == 10
    assert model(torch.randn(3, 3, 32, 32)).shape == (3, 10)


def test_layer_summary_shapes_and_parameters():
    model = CNN(small(input_size=65, batch_norm=True))
    rows = layer_summary(model)
    shapes = {name: shape for name, shape, _ in rows}
    assert shapes["blocks.0.conv"] == (4, 65, 65)
    assert shapes["blocks.0.pool"] == (4, 32, 32)
    assert shapes["blocks.4.pool"] == (4, 2, 2)
    assert shapes["out"] == (10,)
    assert sum(p for _, _, p in rows) == sum(p.numel() for p in model.parameters())
    assert model.training  # the summary leaves the mode as it was
