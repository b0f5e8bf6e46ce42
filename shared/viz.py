"""Looking inside the best Part A model (Question 4): the prediction grid (Part-A/03), first-layer filters
and feature maps, and guided backprop on CONV5 neurons with their receptive fields (Part-A/04).
Every plotting function returns a matplotlib figure and draws nothing else.
"""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.patches import Rectangle

from . import data as data_lib

# Okabe-Ito blue and vermillion: told apart with every common colour-vision deficiency. The prediction grid
# adds a check or a cross, so colour is never the only cue.
CORRECT, WRONG, NEUTRAL = "#0072b2", "#d55e00", "#9e9e9e"
RIGHT_MARK, WRONG_MARK = "\u2713", "\u2717"  # check mark and ballot X; DejaVu Sans (matplotlib's default) has both


def grid_shape(count: int) -> tuple[int, int]:
    """(rows, columns) for `count` small panels: 8x8 for 64, 4x8 for 32; else the squarest grid that holds them."""
    for rows in range(math.isqrt(count), 0, -1):
        if count % rows == 0 and count // rows <= 2.5 * rows:  # an exact, not too elongated grid
            return rows, count // rows
    columns = math.ceil(math.sqrt(count))
    return math.ceil(count / columns), columns


def axes_at(fig, left: float, bottom: float, width: float, height: float | None = None):
    """An axes placed in inches from the figure's bottom-left corner (square when `height` is None):
    layouts without the gaps that automatic spacing leaves around images."""
    fig_width, fig_height = fig.get_size_inches()
    height = width if height is None else height
    return fig.add_axes((left / fig_width, bottom / fig_height, width / fig_width, height / fig_height))


# The 10x3 prediction grid (Part-A/03, Question 4b)
def plot_prediction_grid(test: data_lib.ImageSet, probs: torch.Tensor, per_class: int = 3, seed: int = 0,
                         top_k: int = 3):
    """The 10x3 grid: one row per true class; each image framed and titled in blue with a check mark (right)
    or orange with a cross (wrong), with the predicted class and its confidence, and beside it a bar chart
    of the top-k probabilities (the true class's bar blue, a wrong winner's orange)."""
    classes, num_classes = test.classes, len(test.classes)
    generator, rows = torch.Generator().manual_seed(seed), []
    for c in range(num_classes):  # `per_class` random (seeded) images per class: honest, not the best-looking
        index = torch.nonzero(test.labels.cpu() == c).flatten()
        rows.append(index[torch.randperm(len(index), generator=generator)[:per_class]].tolist())
    fig = plt.figure(figsize=(per_class * 3.5 + 0.6, num_classes * 1.55 + 1.0))
    grid = fig.add_gridspec(num_classes, 2 * per_class, width_ratios=[1.0, 1.25] * per_class,
                            wspace=0.12, hspace=0.55, left=0.05, right=0.985, top=1 - 0.95 / fig.get_figheight(),
                            bottom=0.035)
    for c, indices in enumerate(rows):
        for j in range(per_class):
            ax_img, ax_bar = fig.add_subplot(grid[c, 2 * j]), fig.add_subplot(grid[c, 2 * j + 1])
            if j == 0:
                ax_img.set_ylabel(classes[c], fontsize=10, fontweight="bold", rotation=90, labelpad=4)
            if j >= len(indices):  # a class with fewer test images than cells
                ax_img.axis("off"), ax_bar.axis("off")
                continue
            i = indices[j]
            top = probs[i].float().topk(min(top_k, probs.shape[1]))
            predicted, true = int(top.indices[0]), int(test.labels[i])
            colour, mark = (CORRECT, RIGHT_MARK) if predicted == true else (WRONG, WRONG_MARK)
            ax_img.imshow(test.images[i].cpu().permute(1, 2, 0).numpy(), interpolation="nearest")
            ax_img.set(xticks=[], yticks=[])
            plt.setp(ax_img.spines.values(), edgecolor=colour, linewidth=3)
            ax_img.set_title(f"{mark} {classes[predicted]} {float(top.values[0]):.0%}", color=colour, fontsize=9,
                             fontweight="bold", pad=3)
            bar_colours = [CORRECT if k == true else (WRONG if n == 0 else NEUTRAL)
                           for n, k in enumerate(top.indices.tolist())]
            y = np.arange(len(top.values))[::-1]
            ax_bar.barh(y, top.values.numpy(), color=bar_colours, height=0.75)
            for yy, value, k in zip(y, top.values.tolist(), top.indices.tolist()):
                # Names inside long bars, after short ones: no labels spill onto the image beside.
                inside = value > 0.55
                ax_bar.text(value - 0.02 if inside else value + 0.02, yy, f"{classes[k]} {value:.0%}",
                            va="center", ha="right" if inside else "left", fontsize=8,
                            color="white" if inside else "black", clip_on=False)
            ax_bar.set(yticks=[], xlim=(0, 1))
            ax_bar.set_xticks([0, 0.5, 1], ["0", ".5", "1"], fontsize=7)
            ax_bar.tick_params(length=2, pad=1)
            if c == num_classes - 1:
                ax_bar.set_xlabel("probability", fontsize=8, labelpad=1)
            ax_bar.spines[["top", "right"]].set_visible(False)
    correct = sum(int(probs[i].argmax()) == int(test.labels[i]) for r in rows for i in r)
    shown = sum(len(r) for r in rows)
    fig.suptitle(f"Test images, one row per true class: {correct}/{shown} right. Title = predicted class and "
                 f"confidence ({RIGHT_MARK} blue: right, {WRONG_MARK} orange: wrong);\nbars = top-{top_k} "
                 f"probabilities (blue = the true class)", fontsize=11)
    return fig


# First layer: filters and feature maps (Part-A/04)
def plot_filters(model, title: str = "First-layer filters"):
    """Every first-layer kernel as an RGB patch, min-max scaled per filter (over its three channels)."""
    weights = model.blocks[0].conv.weight.detach().float().cpu()  # [F, 3, k, k]
    low = weights.amin(dim=(1, 2, 3), keepdim=True)
    high = weights.amax(dim=(1, 2, 3), keepdim=True)
    patches = ((weights - low) / (high - low).clamp_min(1e-12)).permute(0, 2, 3, 1).numpy()
    rows, columns = grid_shape(len(patches))
    fig, axes = plt.subplots(rows, columns, figsize=(max(5.5, columns * 0.9), rows * 0.95 + 0.6), squeeze=False)
    for n, ax in enumerate(axes.flat):
        ax.axis("off")
        if n < len(patches):
            ax.imshow(patches[n], interpolation="nearest")
            ax.set_title(str(n), fontsize=8, pad=1)
    k = weights.shape[-1]
    fig.suptitle(f"{title}: {len(patches)} filters of {k}x{k}x{weights.shape[1]} "
                 f"({rows}x{columns} grid, each min-max scaled)", fontsize=10)
    fig.tight_layout()
    return fig


@torch.no_grad()
def block_output(model, images: torch.Tensor, block: int = 1) -> torch.Tensor:
    """The activation output of conv block `block` (after the activation, before the pool) for a uint8 batch."""
    captured = {}
    handle = model.blocks[block - 1].pool.register_forward_pre_hook(
        lambda module, inputs: captured.__setitem__("act", inputs[0]))
    was_training = model.training
    try:
        model.eval()
        device = next(model.parameters()).device
        model.features(data_lib.normalize(images.to(device)))
    finally:
        handle.remove()
        model.train(was_training)
    return captured["act"].float()


def plot_feature_maps(model, image: torch.Tensor, caption: str = "", cell: float = 1.0):
    """The first block's activation maps for one uint8 image [3, H, W], beside the image itself, each map's
    channel number in its corner. Laid out in inches (`cell` per map), the title centred over the figure."""
    maps = block_output(model, image[None], block=1)[0].cpu().numpy()
    rows, columns = grid_shape(len(maps))
    pad, gap, margin, title, caption_band = 0.05, 0.25, 0.1, 0.45, 0.3  # inches
    # The image's square, with its caption as tall as the grid of maps (no blank band); 2.5 inches at least.
    side = max(rows * cell, 2.5) - caption_band
    width = margin + side + gap + columns * cell + margin
    height = title + side + caption_band + margin
    fig = plt.figure(figsize=(width, height))
    ax = axes_at(fig, margin, margin, side)
    ax.imshow(image.cpu().permute(1, 2, 0).numpy(), interpolation="nearest")
    ax.set_title(caption or "input image", fontsize=9)
    ax.axis("off")
    for n in range(len(maps)):
        row, column = divmod(n, columns)
        ax = axes_at(fig, margin + side + gap + column * cell, margin + (rows - 1 - row) * cell, cell - pad)
        ax.imshow(maps[n], cmap="viridis", interpolation="nearest")
        ax.text(0.03, 0.97, str(n), transform=ax.transAxes, ha="left", va="top", fontsize=8,
                bbox=dict(boxstyle="square,pad=0.1", fc="white", ec="none", alpha=0.8))
        ax.axis("off")
    fig.suptitle(f"First-layer feature maps: {len(maps)} channels after the activation, "
                 f"{maps.shape[1]}x{maps.shape[2]} px each (own colour scale; number = channel)", fontsize=10,
                 y=1 - 0.08 / height, va="top")
    return fig


# Guided backpropagation (Springenberg et al. 2015), Part-A/04
def guided_backprop(model, image: torch.Tensor, channel: int, block: int = 5) -> torch.Tensor:
    """Guided-backprop gradient [3, H, W] of ONE unit w.r.t. the input image [1, 3, H, W] (normalised).

    The unit is the largest activation of `channel` in conv block `block`'s activation output (before the max-pool).
    At every activation on the way back the gradient becomes (forward input > 0) * clamp(gradient, min=0):
    Springenberg et al.'s rule for ReLU, applied as it is to GELU/SiLU/Mish/... too. The model comes back as it
    was: training flag, requires_grad, no hooks (even if this raises), no parameter gradients."""
    if image.dim() != 4 or image.shape[0] != 1:
        raise ValueError(f"image must be [1, 3, H, W], got {tuple(image.shape)}")
    if not 1 <= block <= len(model.blocks):
        raise ValueError(f"block must be in 1..{len(model.blocks)}, got {block}")
    positive, captured, handles = {}, {}, []

    def remember_positive_input(module, inputs, output):
        positive[module] = inputs[0].detach() > 0

    def guided_gradient(module, grad_input, grad_output):
        return (grad_output[0].clamp(min=0) * positive[module],)

    def capture_unit_map(module, inputs):
        # The pool's input is the activation's output *after* the backward hook's wrapper,
        # so a gradient started from it passes through the target activation's hook too.
        captured["act"] = inputs[0]

    was_training = model.training
    requires_grad = [p.requires_grad for p in model.parameters()]
    try:
        model.eval()  # BatchNorm uses its running statistics; dropout is not on the path anyway
        for p in model.parameters():
            p.requires_grad_(False)  # only the image's gradient is wanted
        for conv_block in model.blocks[:block]:
            handles.append(conv_block.act.register_forward_hook(remember_positive_input))
            handles.append(conv_block.act.register_full_backward_hook(guided_gradient))
        handles.append(model.blocks[block - 1].pool.register_forward_pre_hook(capture_unit_map))
        x = image.detach().float().clone().requires_grad_(True)
        model.features(x)
        unit_map = captured["act"][0, channel]
        unit = unit_map.flatten()[unit_map.detach().flatten().argmax()]
        (gradient,) = torch.autograd.grad(unit, x)
    finally:
        for handle in handles:
            handle.remove()
        for p, flag in zip(model.parameters(), requires_grad):
            p.requires_grad_(flag)
        model.train(was_training)
    return gradient[0].detach().cpu()


@torch.no_grad()
def strongest_units(model, images: torch.Tensor, block: int = 5, batch_size: int = 128):
    """For every uint8 image and every channel of block `block`'s activation output: the largest
    activation and its (row, col). Returns (values [N, C], rows [N, C], cols [N, C]) on the CPU."""
    values, positions = [], []
    for start in range(0, len(images), batch_size):
        maps = block_output(model, images[start:start + batch_size], block)  # [B, C, h, w]
        best, where = maps.flatten(2).max(dim=2)
        values.append(best.cpu())
        positions.append(where.cpu())
    where, width = torch.cat(positions), maps.shape[3]
    return torch.cat(values), where // width, where % width


def choose_channels(values: torch.Tensor, count: int = 10) -> list[tuple[int, int]]:
    """(channel, image index) pairs: the channels most active on the test set (mean over images of each
    image's largest activation), preferring channels whose most exciting image is not already shown."""
    order = values.mean(dim=0).argsort(descending=True).tolist()
    best_image = values.argmax(dim=0).tolist()
    fresh, repeats, used = [], [], set()  # repeats fill in when there are fewer distinct images than `count`
    for channel in order:
        if best_image[channel] in used:
            repeats.append(channel)
        else:
            fresh.append(channel)
            used.add(best_image[channel])
    return [(channel, best_image[channel]) for channel in (fresh + repeats)[:count]]


def receptive_field(cfg, block: int = 5) -> tuple[int, int, float]:
    """(size, jump, centre of unit 0) in input pixels for block `block`'s activation output. Each k x k 'same'
    conv grows the field by (k - 1) * jump; each 2x2 pool by one jump and doubles the jump. PyTorch's 'same'
    pads (k - 1) // 2 on the top/left, which shifts even kernels by half a pixel."""
    size, jump, centre = 1, 1, 0.0
    for i in range(block):
        k = cfg.kernel_sizes[i]
        size += (k - 1) * jump
        centre += ((k - 1) / 2 - (k - 1) // 2) * jump
        if i < block - 1:  # the pools of the blocks before
            size += jump
            centre += 0.5 * jump
            jump *= 2
    return size, jump, centre


def receptive_field_box(cfg, row: int, col: int, block: int = 5) -> tuple[int, int, int, int]:
    """(top, left, bottom, right), inclusive pixel indices clipped to the image, of one unit's receptive field."""
    size, jump, centre = receptive_field(cfg, block)
    half = (size - 1) / 2

    def span(index):
        middle = centre + index * jump
        return max(0, math.floor(middle - half)), min(cfg.input_size - 1, math.ceil(middle + half))

    (top, bottom), (left, right) = span(row), span(col)
    return top, left, bottom, right


def gradient_to_image(gradient: torch.Tensor) -> np.ndarray:
    """[3, H, W] gradient -> [H, W, 3] floats in [0, 1] around mid-grey; |g|'s 99.5th percentile reaches the ends."""
    g = gradient.float().permute(1, 2, 0).numpy()
    scale = np.quantile(np.abs(g), 0.995)
    if scale <= 0:
        return np.full(g.shape, 0.5)
    return np.clip(0.5 + g / (2 * scale), 0, 1)


def plot_guided_backprop(images: torch.Tensor, gradients: list[torch.Tensor], boxes: list[tuple],
                         titles: list[str], block: int = 5, columns: int = 2, panel: float = 1.9):
    """Per neuron three panels: the test image that excites it most (the unit's receptive field boxed, unless it
    covers the whole image), the guided-backprop map, and the map's magnitude over the image inside the receptive
    field. Neurons run in `columns` columns, the panel headers once per column."""
    count = len(gradients)
    columns = max(1, min(columns, count))
    rows = math.ceil(count / columns)
    gap, group_gap, margin, title_band, header, top = 0.08, 0.45, 0.15, 0.42, 0.5, 0.45  # inches
    group_width = 3 * panel + 2 * gap
    width = 2 * margin + columns * group_width + (columns - 1) * group_gap
    height = top + header + rows * (panel + title_band) + margin
    fig = plt.figure(figsize=(width, height))
    whole_images = 0
    for n, (image, gradient, box, title) in enumerate(zip(images, gradients, boxes, titles)):
        group, row = n % columns, n // columns
        left = margin + group * (group_width + group_gap)
        bottom = margin + (rows - 1 - row) * (panel + title_band)
        axes = [axes_at(fig, left + i * (panel + gap), bottom, panel) for i in range(3)]
        top_, left_, bottom_, right_ = box
        picture = image.cpu().permute(1, 2, 0).numpy()
        # A box that leaves out less than 5% of the width and height would only retrace the border.
        whole = (bottom_ - top_ + 1 >= 0.95 * picture.shape[0]) and (right_ - left_ + 1 >= 0.95 * picture.shape[1])
        whole_images += whole
        axes[0].imshow(picture, interpolation="nearest")
        if not whole:  # a black edge under the yellow one: visible on light and dark images alike
            for colour, line in (("black", 4.0), ("yellow", 2.0)):
                axes[0].add_patch(Rectangle((left_ - 0.5, top_ - 0.5), right_ - left_ + 1, bottom_ - top_ + 1,
                                            fill=False, edgecolor=colour, linewidth=line))
        axes[1].imshow(gradient_to_image(gradient), interpolation="nearest")
        if not gradient.any():
            axes[1].text(0.5, 0.5, "all zero", transform=axes[1].transAxes, ha="center", va="center", fontsize=10)
        magnitude = gradient.abs().amax(dim=0).numpy()
        magnitude = magnitude / max(float(np.quantile(magnitude, 0.995)), 1e-12)
        crop = (slice(top_, bottom_ + 1), slice(left_, right_ + 1))
        axes[2].imshow(picture[crop].mean(axis=2), cmap="gray", interpolation="nearest")
        axes[2].imshow(np.clip(magnitude[crop], 0, 1), cmap="inferno", alpha=0.65, interpolation="nearest")
        for ax in axes:
            ax.set(xticks=[], yticks=[])
        field = f" | field {bottom_ - top_ + 1}x{right_ - left_ + 1} px"
        fig.text(left / width, (bottom + panel + 0.08) / height, title + field, fontsize=10, ha="left", va="bottom")
    for group in range(columns):  # the panel headers, once per column of neurons
        left = margin + group * (group_width + group_gap)
        for i, header_text in enumerate(("test image" + ("\n(box: receptive field)" if whole_images < count else ""),
                                         "guided-backprop\nmap", "|map| over the\nreceptive field")):
            fig.text((left + i * (panel + gap) + panel / 2) / width, (height - top) / height, header_text,
                     fontsize=10, fontweight="bold", ha="center", va="top")
    note = ("each unit's receptive field covers the whole image, so no box is drawn" if whole_images == count else
            "yellow box: the unit's receptive field" + (" (not drawn where it covers the whole image)"
                                                         if whole_images else ""))
    fig.suptitle(f"Guided backprop for {count} CONV{block} neurons ({note})", fontsize=12,
                 y=1 - 0.15 / height, va="top")
    return fig


def filter_structure(weights: torch.Tensor) -> float:
    """How spatially smooth conv kernels are: the mean correlation of horizontally and vertically neighbouring
    weights of one filter and input channel; about 0 for i.i.d. noise (a fresh initialisation), clearly positive
    for blob- and edge-like kernels. Introduced in Part-A/04."""
    w = weights.detach().float().cpu()
    w = w - w.mean(dim=(2, 3), keepdim=True)
    pairs = [(w[..., :, :-1], w[..., :, 1:]), (w[..., :-1, :], w[..., 1:, :])]
    numerator = sum((a * b).sum() for a, b in pairs)
    denominator = sum(torch.sqrt((a * a).sum() * (b * b).sum()) for a, b in pairs)
    return float(numerator / denominator) if denominator > 0 else 0.0


# Margin the trained score must clear above the largest shuffled score before structure is claimed: about
# what separates i.i.d. noise (0) from mildly smooth kernels, so barely beating chance is not read as edges.
STRUCTURE_MARGIN = 0.1


def structure_evidence(weights: torch.Tensor, draws: int = 200, margin: float = STRUCTURE_MARGIN,
                       seed: int = 0) -> dict:
    """The kernels' `filter_structure` against its null: `draws` copies with each kernel's k x k positions
    shuffled (the same values without their arrangement). Structure is `supported` only when the score beats
    the largest shuffled score by `margin`. Introduced in Part-A/04."""
    w = weights.detach().float().cpu()
    flat = w.flatten(2)  # [F, C, k*k]
    # numpy's PCG64, not torch's generator: weights torch initialised from the same seed would otherwise
    # come out sorted by the very numbers that shuffle them.
    generator = np.random.default_rng(seed)
    scores = []
    for _ in range(draws):
        order = torch.from_numpy(generator.random(tuple(flat.shape)).argsort(axis=2))
        scores.append(filter_structure(flat.gather(2, order).view_as(w)))
    null = torch.tensor(scores)
    score = filter_structure(weights)
    return {"score": score, "null_max": float(null.max()), "null_mean": float(null.mean()), "draws": draws,
            "margin": margin, "supported": weights.shape[-1] >= 2 and score >= float(null.max()) + margin}


def plot_guided_backprop_column(gradients: list[torch.Tensor], titles: list[str], panel: float = 1.5):
    """The question's 10 x 1 grid: one guided-backprop map per neuron, all in one column, each labelled
    on its left. `plot_guided_backprop` shows the same maps beside their images and receptive fields."""
    label_width, gap, margin, top = 2.6, 0.12, 0.1, 0.55  # inches
    height = top + len(gradients) * (panel + gap) + margin
    width = margin + label_width + panel + margin
    fig = plt.figure(figsize=(width, height))
    for n, (gradient, title) in enumerate(zip(gradients, titles)):
        bottom = margin + (len(gradients) - 1 - n) * (panel + gap)
        ax = axes_at(fig, margin + label_width, bottom, panel)
        ax.imshow(gradient_to_image(gradient), interpolation="nearest")
        ax.set(xticks=[], yticks=[])
        fig.text((margin + label_width - 0.1) / width, (bottom + panel / 2) / height, title.replace(" | ", "\n"),
                 ha="right", va="center", fontsize=9)
    fig.suptitle(f"Guided backprop, {len(gradients)} x 1:\none CONV5 neuron per row", fontsize=11,
                 y=1 - 0.05 / height, va="top")
    return fig


def plot_top_images(images: torch.Tensor, indices: list[list[int]], labels: torch.Tensor, classes: list[str],
                    row_titles: list[str], panel: float = 0.95):
    """Per neuron (one row) the test images that excite it most, strongest first, each captioned with its
    true class: one image per neuron cannot show what a neuron prefers, a row of them can."""
    rows, columns = len(indices), max(len(row) for row in indices)
    label_width, caption, margin, top = 2.3, 0.22, 0.1, 0.5  # inches
    width = margin + label_width + columns * panel + margin
    height = top + rows * (panel + caption) + margin
    fig = plt.figure(figsize=(width, height))
    for r, (row, title) in enumerate(zip(indices, row_titles)):
        bottom = margin + (rows - 1 - r) * (panel + caption)
        fig.text((margin + label_width - 0.1) / width, (bottom + panel / 2) / height, title.replace(" | ", "\n"),
                 ha="right", va="center", fontsize=9)
        for c, i in enumerate(row):
            ax = axes_at(fig, margin + label_width + c * panel, bottom, panel - 0.06)
            ax.imshow(images[i].cpu().permute(1, 2, 0).numpy(), interpolation="nearest")
            ax.set(xticks=[], yticks=[])
            ax.set_title(classes[int(labels[i])], fontsize=7, pad=1)
    fig.suptitle(f"The {columns} test images that excite each neuron most (strongest first; caption = true class)",
                 fontsize=11, y=1 - 0.08 / height, va="top")
    return fig
