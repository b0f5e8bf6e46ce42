"""shared.viz: guided backprop against a hand-checked case and an independent implementation,
hooks left behind, the figures' structure, and who reads the test set."""
import copy

import matplotlib
import pytest
import torch
from PIL import Image
from torch import nn

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from shared import data, decode, sources, viz  # noqa: E402
from shared.model import CNN, CNNConfig  # noqa: E402


class _GuidedFunction(torch.autograd.Function):
    """Independent reference: forward = the activation, backward = (x > 0) * clamp(grad, min=0)."""

    @staticmethod
    def forward(ctx, x, activation):
        ctx.save_for_backward(x)
        return activation(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return (x > 0) * grad.clamp(min=0), None


class _Guided(nn.Module):
    def __init__(self, activation):
        super().__init__()
        self.activation = activation

    def forward(self, x):
        return _GuidedFunction.apply(x, self.activation)


def reference_guided_backprop(model, image, channel, block=5):
    model = copy.deepcopy(model).eval()
    for b in model.blocks:
        b.act = _Guided(b.act)
    x = image.clone().requires_grad_(True)
    h = activation_output(model, x, block)[0, channel]
    unit = h.flatten()[h.detach().flatten().argmax()]
    (grad,) = torch.autograd.grad(unit, x)
    return grad[0]


def activation_output(model, x, block):
    """Block `block`'s activation output, spelled out (no hooks)."""
    for b in model.blocks[:block - 1]:
        x = b(x)
    last = model.blocks[block - 1]
    return last.act(last.bn(last.conv(x)))


def small_model(activation="relu", seed=0):
    torch.manual_seed(seed)
    model = CNN(CNNConfig(filters=(4, 6, 8, 8, 8), kernel_sizes=(3, 3, 3, 3, 3), activation=activation,
                          dense_neurons=8, dropout=0.2, batch_norm=True, input_size=32))
    for m in model.modules():  # non-trivial BatchNorm statistics, so eval mode matters
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    return model.train()


def no_hooks(model):
    return all(not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks
               and not m._backward_pre_hooks for m in model.modules())


def test_guided_backprop_hand_checked():
    """1x1 kernels: block 1 copies R and G, block 2 computes R - G, the rest pass it on.
    Plain backprop gives +1 on R and -1 on G at the winning pixel; guided backprop clamps the
    negative gradient at block 1's ReLU, so only R's +1 survives."""
    model = CNN(CNNConfig(filters=(2, 1, 1, 1, 1), kernel_sizes=(1,) * 5, activation="relu",
                          batch_norm=False, dense_neurons=2, input_size=32))
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.blocks[0].conv.weight[0, 0] = 1  # channel 0 = R
        model.blocks[0].conv.weight[1, 1] = 1  # channel 1 = G
        model.blocks[1].conv.weight[0, :, 0, 0] = torch.tensor([1.0, -1.0])
        for b in model.blocks[2:]:
            b.conv.weight.fill_(1)
    torch.manual_seed(0)
    image = 0.5 + 0.01 * torch.rand(1, 3, 32, 32)
    image[0, 0, 5, 7] = 2.0  # R - G is largest here, so this pixel wins every max-pool up to the unit
    guided = viz.guided_backprop(model, image, channel=0)
    expected = torch.zeros(3, 32, 32)
    expected[0, 5, 7] = 1.0
    assert torch.equal(guided, expected)
    # Plain gradient of the same unit, for contrast: G gets -1.
    x = image.clone().requires_grad_(True)
    unit = model.features(x).flatten().max()  # block 5's map after its pool holds the same max
    (plain,) = torch.autograd.grad(unit, x)
    assert plain[0, 1, 5, 7] == -1.0 and guided[1, 5, 7] == 0.0


@pytest.mark.parametrize("activation", ["relu", "gelu", "silu", "mish"])
@pytest.mark.parametrize("block", [5, 3])
def test_guided_backprop_matches_independent_implementation(activation, block):
    model = small_model(activation)
    image = torch.randn(1, 3, 32, 32)
    for channel in (0, 3):
        ours = viz.guided_backprop(model, image, channel, block=block)
        assert ours.shape == (3, 32, 32)
        assert not ours.requires_grad
        torch.testing.assert_close(ours, reference_guided_backprop(model, image, channel, block))


def test_guided_backprop_leaves_model_unchanged():
    model = small_model()
    model.blocks[0].conv.weight.requires_grad_(False)  # a frozen parameter must stay frozen
    flags = [p.requires_grad for p in model.parameters()]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    image = torch.randn(1, 3, 32, 32)
    viz.guided_backprop(model, image, 1)
    assert model.training and no_hooks(model)
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    # A later plain backward gives the ordinary gradient, not a guided one.
    fresh = copy.deepcopy(model)
    for m in (model, fresh):
        m.eval()
    x1, x2 = image.clone().requires_grad_(True), image.clone().requires_grad_(True)
    (g1,) = torch.autograd.grad(model(x1).sum(), x1)
    (g2,) = torch.autograd.grad(fresh(x2).sum(), x2)
    assert torch.equal(g1, g2) and (g1 < 0).any()


def test_guided_backprop_removes_hooks_when_it_raises():
    model = small_model().eval()
    with pytest.raises(IndexError):
        viz.guided_backprop(model, torch.randn(1, 3, 32, 32), channel=999)
    assert no_hooks(model) and not model.training
    assert all(p.requires_grad for p in model.parameters())
    with pytest.raises(ValueError):
        viz.guided_backprop(model, torch.randn(3, 32, 32), channel=0)


def test_receptive_field():
    cfg = CNNConfig(filters=(4,) * 5, kernel_sizes=(3,) * 5, input_size=256)
    assert viz.receptive_field(cfg, 5)[:2] == (78, 16)
    assert viz.receptive_field(cfg, 1)[:2] == (3, 1)
    # The plain gradient of a block-5 unit is non-zero only inside its box.
    torch.manual_seed(0)
    model = CNN(CNNConfig(filters=(4,) * 5, kernel_sizes=(3, 5, 3, 3, 3), batch_norm=False,
                          activation="gelu", input_size=64)).eval()
    x = torch.randn(1, 3, 64, 64, requires_grad=True)
    maps = viz.block_output(model, data.denormalize(x.detach()), 5)
    h = activation_output(model, x, 5)
    row, col = 1, 2
    (g,) = torch.autograd.grad(h[0, 0, row, col], x)
    top, left, bottom, right = viz.receptive_field_box(model.cfg, row, col, 5)
    ys, xs = torch.nonzero(g.abs().sum(1)[0], as_tuple=True)
    assert maps.shape[-2:] == (4, 4)
    assert len(ys) and top <= ys.min() and ys.max() <= bottom and left <= xs.min() and xs.max() <= right


def test_choose_channels_prefers_distinct_images():
    values = torch.tensor([[5.0, 4.0, 1.0], [1.0, 1.0, 3.0]])
    assert viz.choose_channels(values, 2) == [(0, 0), (2, 1)]
    assert len(viz.choose_channels(values, 3)) == 3


@pytest.fixture(scope="module")
def demo_test_set():
    return data.load_test(sources.make_demo_dataset(), 32, verbose=False)


def test_prediction_grid_has_30_image_axes(demo_test_set):
    probs = torch.softmax(torch.randn(len(demo_test_set), 10), dim=1)
    fig = viz.plot_prediction_grid(demo_test_set, probs)
    assert sum(1 for ax in fig.axes if ax.images) == 30
    plt.close(fig)


def test_filter_and_feature_map_figures():
    model = small_model()
    fig = viz.plot_filters(model)
    assert sum(1 for ax in fig.axes if ax.images) == 4
    fig2 = viz.plot_feature_maps(model, torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8))
    assert sum(1 for ax in fig2.axes if ax.images) == 5
    plt.close("all")


def test_only_load_test_reads_the_test_set(tmp_path, monkeypatch):
    root = tmp_path / "nature"
    for split, count in (("train", 5), ("val", 2)):
        for name in ("a", "b"):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                Image.new("RGB", (40, 30), (i * 40, 90, 200)).save(folder / f"{i}.jpg")
    opened = []
    real_read = decode._read_file  # the one place an image file is read
    monkeypatch.setattr(decode, "_read_file", lambda path: opened.append(path) or real_read(path))
    data.load_split(root, 32, verbose=False, cache_dir=tmp_path / "cache")
    assert opened and not any("val" in p.relative_to(root).parts[0] for p in opened)
    opened.clear()
    test = data.load_test(root, 32, verbose=False, cache_dir=tmp_path / "cache")
    assert len(test) == 4 and opened and all(p.relative_to(root).parts[0] == "val" for p in opened)


def test_guided_backprop_figure():
    model = small_model().eval()
    images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    values, rows, cols = viz.strongest_units(model, images)
    assert values.shape == rows.shape == (2, 8) and int(rows.max()) < 2  # 32 px -> a 2x2 CONV5 map
    chosen = viz.choose_channels(values, 2)
    gradients = [viz.guided_backprop(model, data.normalize(images[i:i + 1]), c) for c, i in chosen]
    boxes = [viz.receptive_field_box(model.cfg, int(rows[i, c]), int(cols[i, c])) for c, i in chosen]
    fig = viz.plot_guided_backprop(images[[i for _, i in chosen]], gradients, boxes, ["a", "b"])
    assert sum(1 for ax in fig.axes if ax.images) == 6
    plt.close(fig)


# ------------------------------------------------------------------ figures that read at a glance
def test_grid_shape():
    assert viz.grid_shape(64) == (8, 8) and viz.grid_shape(32) == (4, 8) and viz.grid_shape(10) == (2, 5)
    assert viz.grid_shape(7) == (3, 3)


def test_prediction_grid_marks_are_colour_blind_safe(demo_test_set):
    from matplotlib import font_manager, ft2font

    font = ft2font.FT2Font(font_manager.findfont("DejaVu Sans"))
    assert font.get_char_index(ord(viz.RIGHT_MARK)) and font.get_char_index(ord(viz.WRONG_MARK))
    probs = torch.softmax(torch.randn(len(demo_test_set), 10), dim=1)
    fig = viz.plot_prediction_grid(demo_test_set, probs)
    titles = [ax.title for ax in fig.axes if ax.images]
    marks = {t.get_text()[0] for t in titles}
    assert marks <= {viz.RIGHT_MARK, viz.WRONG_MARK} and viz.WRONG_MARK in marks  # random probabilities: some wrong
    colours = {matplotlib.colors.to_hex(t.get_color()) for t in titles}
    assert colours <= {viz.CORRECT, viz.WRONG} and viz.CORRECT == "#0072b2" and viz.WRONG == "#d55e00"
    plt.close(fig)


def test_feature_maps_layout_has_no_gap_and_a_centred_title():
    fig = viz.plot_feature_maps(CNN(CNNConfig(filters=(16, 4, 4, 4, 4), input_size=32)).eval(),
                                torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8), "caption")
    image_ax, *map_axes = [ax for ax in fig.axes if ax.images]
    assert len(map_axes) == 16
    maps_top = max(ax.get_position().y1 for ax in map_axes)
    maps_bottom = min(ax.get_position().y0 for ax in map_axes)
    caption_band = 0.3 / fig.get_figheight()
    assert image_ax.get_position().y0 == pytest.approx(maps_bottom, abs=1e-3)
    assert image_ax.get_position().y1 + caption_band == pytest.approx(maps_top, abs=0.02)
    assert fig._suptitle is not None and fig._suptitle.get_position()[0] == 0.5  # centred on the whole figure
    plt.close(fig)


def _guided_inputs(count, size=32):
    images = torch.randint(0, 256, (count, 3, size, size), dtype=torch.uint8)
    gradients = [torch.randn(3, size, size) for _ in range(count)]
    boxes = [(0, 0, size - 1, size - 1) if n % 2 else (4, 6, 20, 22) for n in range(count)]
    return images, gradients, boxes, [f"CONV5 channel {n} | image #{n}" for n in range(count)]


def test_guided_backprop_figure_is_legible():
    fig = viz.plot_guided_backprop(*_guided_inputs(10))
    width, height = fig.get_size_inches()
    assert 0.7 <= height / width <= 1.4  # two columns of neurons, not one tall strip
    texts = list(fig.texts) + [ax.title for ax in fig.axes] + [t for ax in fig.axes for t in ax.texts]
    written = [t for t in texts if t.get_text()]
    assert min(t.get_fontsize() for t in written) >= 9
    headers = [t.get_text() for t in fig.texts]
    assert headers.count("guided-backprop\nmap") == 2  # once per column of neurons, not once per row
    image_axes = [ax for n, ax in enumerate(a for a in fig.axes if a.images) if n % 3 == 0]
    # Neuron n is whole-image when n is odd: no box there, a box (black under yellow) otherwise.
    assert [len(ax.patches) for ax in image_axes] == [2, 0] * 5
    plt.close(fig)
    all_whole = _guided_inputs(2)
    fig = viz.plot_guided_backprop(all_whole[0], all_whole[1], [(0, 0, 31, 31)] * 2, all_whole[3])
    assert "covers the whole image, so no box is drawn" in fig._suptitle.get_text()
    plt.close(fig)


def test_filter_structure_tells_smooth_kernels_from_noise():
    torch.manual_seed(0)
    noise = torch.nn.Conv2d(3, 64, 5).weight
    ramp = torch.linspace(-1, 1, 5)
    edges = (ramp[None, :] * torch.ones(5, 1)).expand(64, 3, 5, 5) * torch.randn(64, 3, 1, 1)  # oriented edges
    assert abs(viz.filter_structure(noise)) < 0.1
    assert viz.filter_structure(edges) > 0.4
    assert viz.filter_structure(torch.zeros(4, 3, 3, 3)) == 0.0


def test_structure_is_claimed_only_beyond_shuffled_noise_by_a_margin():
    torch.manual_seed(0)  # the seed torch initialises with: the shuffles must not reuse its stream
    noise = torch.nn.Conv2d(3, 64, 5).weight
    ramp = torch.linspace(-1, 1, 5)
    edges = (ramp[None, :] * torch.ones(5, 1)).expand(64, 3, 5, 5) * torch.randn(64, 3, 1, 1)
    fresh = viz.structure_evidence(noise)
    assert not fresh["supported"] and fresh["null_max"] < 0.1 and fresh["draws"] == 200
    assert viz.structure_evidence(edges)["supported"]
    # Just above every shuffle, but not by the margin: no claim (the old rule, > fresh + 0.2, had no null at all).
    barely = noise + 0.025 * edges
    evidence = viz.structure_evidence(barely)
    assert evidence["score"] > evidence["null_max"] and not evidence["supported"]
    assert not viz.structure_evidence(torch.randn(8, 3, 1, 1))["supported"]  # 1x1 kernels: no neighbours


def test_guided_backprop_column_is_ten_by_one():
    images, gradients, _, titles = _guided_inputs(10)
    fig = viz.plot_guided_backprop_column(gradients, titles)
    panels = [ax for ax in fig.axes if ax.images]
    assert len(panels) == 10
    assert len({round(ax.get_position().x0, 6) for ax in panels}) == 1  # one column
    tops = [ax.get_position().y0 for ax in panels]
    assert tops == sorted(tops, reverse=True)  # neuron 1 at the top
    fig.canvas.draw()
    box = fig._suptitle.get_window_extent(fig.canvas.get_renderer())
    assert 0 <= box.x0 and box.x1 <= fig.canvas.get_width_height()[0]
    plt.close(fig)


def test_top_images_show_k_images_per_neuron():
    images = torch.randint(0, 256, (12, 3, 32, 32), dtype=torch.uint8)
    labels = torch.arange(12) % 3
    fig = viz.plot_top_images(images, [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]], labels, ["a", "b", "c"],
                              ["neuron 0", "neuron 1", "neuron 2"])
    panels = [ax for ax in fig.axes if ax.images]
    assert len(panels) == 12 and [ax.get_title() for ax in panels[:4]] == ["a", "b", "c", "a"]
    plt.close(fig)
