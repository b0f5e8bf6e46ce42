"""Looking inside the best Part A model: test metrics, the prediction grid, filters and guided backprop.

Introduced in Part-A/03 (test-set figures, learning curves) and Part-A/04 (filters, feature maps, guided
backprop); Part-A/01 borrows `plot_layer_costs` and Part-B/01 `plot_preprocessing_comparison`.
Every plotting function returns a matplotlib figure and draws nothing else; the notebooks show,
save (`save_figures`) and log (`tracking.log_figures`) them.
"""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.patches import Rectangle

from . import data as data_lib
from . import decode
from .runtime import OUTPUT_DIR

# Okabe-Ito blue and vermillion: told apart with every common colour-vision deficiency; the grid
# adds a check or a cross as well, so colour is never the only cue.
CORRECT, WRONG, NEUTRAL = "#0072b2", "#d55e00", "#9e9e9e"
RIGHT_MARK, WRONG_MARK = "\u2713", "\u2717"  # check mark and ballot X; DejaVu Sans (matplotlib's default) has both


# --------------------------------------------------------------------------------------------
# Test-set metrics (Part-A/03)
# --------------------------------------------------------------------------------------------
def confusion_matrix(labels, predictions, num_classes: int) -> np.ndarray:
    """Counts [true, predicted]; row i sums to the number of test images of class i."""
    labels = torch.as_tensor(labels).cpu().long()
    predictions = torch.as_tensor(predictions).cpu().long()
    flat = torch.bincount(labels * num_classes + predictions, minlength=num_classes * num_classes)
    return flat.view(num_classes, num_classes).numpy()


def test_metrics(probs: torch.Tensor, labels: torch.Tensor, classes: list[str]) -> dict:
    """Accuracy, cross-entropy, per-class accuracy and the confusion matrix from ONE pass of predictions."""
    labels = labels.cpu().long()
    matrix = confusion_matrix(labels, probs.argmax(1), len(classes))
    per_class = {name: (float(matrix[i, i] / matrix[i].sum()) if matrix[i].sum() else None)
                 for i, name in enumerate(classes)}
    return {"test_acc": float(np.trace(matrix) / max(matrix.sum(), 1)),
            "test_loss": F.nll_loss(probs.float().clamp_min(1e-12).log(), labels).item(),
            "per_class_acc": per_class, "confusion": matrix}


def plot_per_class_accuracy(per_class_acc: dict, overall: float, title: str = "Per-class test accuracy"):
    """One bar per class, the overall accuracy as a dashed line. A value label goes above its bar, or
    inside the bar's top when above would sit on the overall line."""
    names, values = list(per_class_acc), [v if v is not None else 0.0 for v in per_class_acc.values()]
    fig, ax = plt.subplots(figsize=(max(6, 0.75 * len(names)), 3.9))
    colours = ["#0072b2" if v >= overall else "#e69f00" for v in values]
    bars = ax.bar(names, values, color=colours)
    ax.axhline(overall, color="black", linestyle="--", linewidth=1, label=f"overall {overall:.1%}", zorder=1)
    label_height = 0.065  # in accuracy units, for fontsize 8 on this axis
    for bar, value, fill in zip(bars, values, colours):
        y, va, colour = value + 0.01, "bottom", "black"
        if value <= overall <= value + label_height:  # above the bar would sit on the line
            inside = "white" if fill == "#0072b2" else "black"  # legible on the dark blue and the light orange
            y, va, colour = ((value - 0.01, "top", inside) if value > label_height + 0.01 else
                             (overall + 0.01, "bottom", "black"))  # a bar too short to hold it: above the line
        ax.text(bar.get_x() + bar.get_width() / 2, y, f"{value:.0%}", ha="center", va=va, fontsize=8,
                color=colour, zorder=3)
    ax.set_ylim(0, 1.12)
    ax.set(xlabel="true class", ylabel="test accuracy (share of the class right)")
    ax.set_title(f"{title} (orange: below the overall accuracy)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    ax.tick_params(axis="x", rotation=35)
    for label in ax.get_xticklabels():
        label.set_horizontalalignment("right")
    fig.tight_layout()
    return fig


def plot_confusion_matrix(matrix: np.ndarray, classes: list[str], title: str = "Confusion matrix (test set)"):
    """Counts written in the cells, colour = row-normalised share, so rare classes read as clearly as common ones."""
    import seaborn as sns

    rows = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, rows, out=np.zeros(matrix.shape, dtype=float), where=rows > 0)
    size = max(6, 0.75 * len(classes))
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    sns.heatmap(share, annot=matrix, fmt="d", cmap="Blues", vmin=0, vmax=1, square=True, ax=ax,
                xticklabels=classes, yticklabels=classes, linewidths=0.5, linecolor="white",
                cbar_kws={"label": "share of the true class (row-normalised)"})
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(f"{title}: {matrix.sum()} images, counts in cells")
    ax.tick_params(axis="x", rotation=35)
    for label in ax.get_xticklabels():
        label.set_horizontalalignment("right")
    ax.tick_params(axis="y", rotation=0)
    fig.tight_layout()
    return fig


def pick_per_class(labels: torch.Tensor, num_classes: int, per_class: int = 3, seed: int = 0) -> list[list[int]]:
    """`per_class` random (seeded) test indices of every class: an honest sample, not the best-looking one."""
    generator = torch.Generator().manual_seed(seed)
    labels = labels.cpu()
    rows = []
    for c in range(num_classes):
        index = torch.nonzero(labels == c).flatten()
        rows.append(index[torch.randperm(len(index), generator=generator)[:per_class]].tolist())
    return rows


def plot_prediction_grid(test: data_lib.ImageSet, probs: torch.Tensor, per_class: int = 3, seed: int = 0,
                         top_k: int = 3):
    """The 10x3 grid: one row per true class; each image framed and titled in blue with a check mark (right)
    or orange with a cross (wrong), with the predicted class and its confidence, and beside it a bar chart
    of the top-k probabilities (the true class's bar blue, a wrong winner's orange)."""
    classes, num_classes = test.classes, len(test.classes)
    rows = pick_per_class(test.labels, num_classes, per_class, seed)
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
            p = probs[i].float()
            top = p.topk(min(top_k, len(p)))
            predicted, true = int(top.indices[0]), int(test.labels[i])
            colour = CORRECT if predicted == true else WRONG
            ax_img.imshow(test.images[i].cpu().permute(1, 2, 0).numpy(), interpolation="nearest")
            ax_img.set_xticks([]), ax_img.set_yticks([])
            for spine in ax_img.spines.values():
                spine.set_edgecolor(colour), spine.set_linewidth(3)
            mark = RIGHT_MARK if predicted == true else WRONG_MARK
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
            ax_bar.set_yticks([])
            ax_bar.set_xlim(0, 1)
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


# --------------------------------------------------------------------------------------------
# First layer: filters and feature maps (Part-A/04)
# --------------------------------------------------------------------------------------------
def grid_shape(count: int) -> tuple[int, int]:
    """(rows, columns) for `count` small panels: 8x8 for 64, 4x8 for 32; else the squarest grid that holds them."""
    for rows in range(math.isqrt(count), 0, -1):
        if count % rows == 0 and count // rows <= 2.5 * rows:  # an exact, not too elongated grid
            return rows, count // rows
    columns = math.ceil(math.sqrt(count))
    return math.ceil(count / columns), columns


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


def axes_at(fig, left: float, bottom: float, width: float, height: float | None = None):
    """An axes placed in inches from the figure's bottom-left corner (square when `height` is None):
    layouts without the gaps that automatic spacing leaves around images."""
    fig_width, fig_height = fig.get_size_inches()
    height = width if height is None else height
    return fig.add_axes((left / fig_width, bottom / fig_height, width / fig_width, height / fig_height))


def plot_feature_maps(model, image: torch.Tensor, caption: str = "", cell: float = 1.0):
    """The first block's activation maps for one uint8 image [3, H, W], beside the image itself.

    Laid out in inches: the image is a square as tall as the grid of maps (`cell` inches per map), so the
    figure has no blank band, and the title is centred over the whole figure. Each map's channel number
    sits in its corner.
    """
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
                 f"{maps.shape[1]}x{maps.shape[2]} px each (own colour scale; number = channel)", fontsize=10, y=1 - 0.08 / height, va="top")
    return fig


# --------------------------------------------------------------------------------------------
# Guided backpropagation (Springenberg et al. 2015), Part-A/04
# --------------------------------------------------------------------------------------------
def guided_backprop(model, image: torch.Tensor, channel: int, block: int = 5) -> torch.Tensor:
    """Guided-backprop gradient [3, H, W] of ONE unit w.r.t. the input image [1, 3, H, W] (normalised).

    The unit is the largest activation of `channel` in conv block `block`'s activation output
    (after the activation, before the max-pool). At every activation on the way back the
    gradient becomes (forward input > 0) * clamp(gradient, min=0). For ReLU that is Springenberg
    et al.'s rule; for GELU/SiLU/Mish/... we apply the same rule at those activations.

    Forward hooks remember where each activation's input was positive; full backward hooks
    replace the activation's own input-gradient. The model comes back as it was: training flag,
    requires_grad, no hooks (even if this raises) and no parameter gradients.
    """
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
    values, rows, cols = [], [], []
    for start in range(0, len(images), batch_size):
        maps = block_output(model, images[start:start + batch_size], block)  # [B, C, h, w]
        flat = maps.flatten(2)
        best, where = flat.max(dim=2)
        values.append(best.cpu()), rows.append((where // maps.shape[3]).cpu()), cols.append((where % maps.shape[3]).cpu())
    return torch.cat(values), torch.cat(rows), torch.cat(cols)


def choose_channels(values: torch.Tensor, count: int = 10) -> list[tuple[int, int]]:
    """(channel, image index) pairs: the channels most active on the test set (mean over images of each
    image's largest activation), preferring channels whose most exciting image is not already shown."""
    order = values.mean(dim=0).argsort(descending=True).tolist()
    best_image = values.argmax(dim=0).tolist()
    chosen, used = [], set()
    for channel in order:
        if best_image[channel] not in used:
            chosen.append((channel, best_image[channel]))
            used.add(best_image[channel])
        if len(chosen) == count:
            return chosen
    for channel in order:  # fewer distinct images than `count`: allow repeats
        if len(chosen) == count:
            break
        if all(channel != c for c, _ in chosen):
            chosen.append((channel, best_image[channel]))
    return chosen


def receptive_field(cfg, block: int = 5) -> tuple[int, int, float]:
    """(size, jump, centre of unit 0) in input pixels for block `block`'s activation output.

    Each k x k 'same' conv grows the field by (k - 1) * jump; each 2x2 pool by one jump and doubles
    the jump. PyTorch's 'same' pads (k - 1) // 2 on the top/left, which shifts even kernels by half a pixel.
    """
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
    last = cfg.input_size - 1

    def span(index):
        middle = centre + index * jump
        return max(0, math.floor(middle - half)), min(last, math.ceil(middle + half))

    (top, bottom), (left, right) = span(row), span(col)
    return top, left, bottom, right


def gradient_to_image(gradient: torch.Tensor) -> np.ndarray:
    """[3, H, W] gradient -> [H, W, 3] floats in [0, 1] around mid-grey; the 99.5th percentile of |g| reaches the ends."""
    g = gradient.float().permute(1, 2, 0).numpy()
    scale = np.quantile(np.abs(g), 0.995)
    if scale <= 0:
        return np.full(g.shape, 0.5)
    return np.clip(0.5 + g / (2 * scale), 0, 1)


def plot_guided_backprop(images: torch.Tensor, gradients: list[torch.Tensor], boxes: list[tuple],
                         titles: list[str], block: int = 5, columns: int = 2, panel: float = 1.9):
    """Per neuron three panels: the test image that excites it most, the guided-backprop map, and the
    map's magnitude over the image inside the unit's receptive field. Neurons run in `columns` columns;
    the three panel headers are written once per column, and each neuron gets one title line.

    The receptive-field box is drawn only where the field is smaller than the image; when it covers
    the whole image, the title says so instead of drawing an invisible box along the border.
    """
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
            ax.set_xticks([]), ax.set_yticks([])
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


# --------------------------------------------------------------------------------------------
# Learning curves (Part-A/03, Part-B/02), preprocessing (Part-B/01), per-layer costs (Part-A/01)
# --------------------------------------------------------------------------------------------
def plot_learning_curves(history: list[dict], title: str = "Learning curves"):
    """Train and validation loss (left) and accuracy (right) per epoch from a run's `history` (the
    per-epoch dicts of `train.fit`), the best epoch (highest validation accuracy) marked.

    Introduced in Part-A/03. Train numbers are measured on augmented batches with dropout on, so they
    sit below what the same weights score on clean training images.
    """
    rows = [row for row in history or [] if "epoch" in row]
    if not rows:
        raise ValueError("plot_learning_curves needs per-epoch rows with an 'epoch' key (head-only "
                         "fine-tuning records steps, not epochs)")
    epochs = [row["epoch"] for row in rows]
    best = max(rows, key=lambda row: row.get("val_acc", -1.0))
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(11, 3.9))
    for ax, metric, label in ((loss_ax, "loss", "cross-entropy loss"), (acc_ax, "acc", "accuracy")):
        for split, colour, marker in (("train", "#0072b2", "o"), ("val", "#d55e00", "s")):
            key = f"{split}_{metric}"
            if all(row.get(key) is not None for row in rows):
                ax.plot(epochs, [row[key] for row in rows], marker=marker, color=colour, ms=4,
                        label="train (augmented, dropout on)" if split == "train" else "validation")
        ax.axvline(best["epoch"], color="#555555", ls=":", lw=1.2, label=f"best epoch ({best['epoch']})")
        ax.set(xlabel="epoch", ylabel=label)
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    if best.get("val_acc") is not None:
        acc_ax.plot([best["epoch"]], [best["val_acc"]], marker="*", ms=14, color="#d55e00", mec="black",
                    ls="none", label=f"best val acc {best['val_acc']:.1%}")
    loss_ax.legend(fontsize=8)
    acc_ax.legend(fontsize=8, loc="lower right")
    fig.suptitle(f"{title}: {len(rows)} epochs, best validation accuracy at epoch {best['epoch']}", fontsize=11)
    fig.tight_layout()
    return fig


def plot_preprocessing_comparison(image_path, size: int, resize_to: int, scratch_size: int | None = None,
                                  title: str | None = None):
    """One photo three ways (Part-B Q1(a)): the original with the centre crop's region drawn on it, Part A's
    squash to `scratch_size` (default `size`) square, and Part B's resize of the shorter side to
    `resize_to` followed by the centre `size` x `size` crop. Both use `decode.resize_uint8`, the function
    the caches are built with, so the panels show exactly what each model sees.

    Introduced in Part-B/01.
    """
    # The whole photo at full resolution (the cache decoders may decode JPEGs at a reduced scale).
    original = decode.read_rgb(image_path)
    height, width = original.shape[1:]
    squashed = decode.resize_uint8(original, scratch_size or size)
    cropped = decode.resize_uint8(original, size, resize_to)
    # The crop in the original's pixels: the shorter side is scaled to resize_to, then `size` is kept.
    crop_side = size * min(height, width) / resize_to
    crop_left, crop_top = (width - crop_side) / 2, (height - crop_side) / 2
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.0), gridspec_kw={"width_ratios": [max(1.0, width / height), 1, 1]})
    panels = [(original, f"original, {width}x{height} px\n(dashed: the region Part B keeps)"),
              (squashed, f"Part A: squashed to {squashed.shape[2]}x{squashed.shape[1]}\n(whole photo, aspect "
                         f"{width / height:.2f} -> 1.00)"),
              (cropped, f"Part B: shorter side to {resize_to}, centre crop\n{cropped.shape[2]}x{cropped.shape[1]} "
                        f"(keeps {crop_side ** 2 / (width * height):.0%} of the photo)")]
    for ax, (picture, caption) in zip(axes, panels):
        ax.imshow(picture.permute(1, 2, 0).numpy(), interpolation="nearest")
        ax.set_title(caption, fontsize=10)
        ax.set(xlabel="x (px)", ylabel="y (px)")
        ax.tick_params(labelsize=8)
    for colour, line in (("black", 3.5), ("yellow", 1.8)):
        axes[0].add_patch(Rectangle((crop_left - 0.5, crop_top - 0.5), crop_side, crop_side, fill=False,
                                    edgecolor=colour, linewidth=line, linestyle="--" if colour == "yellow" else "-"))
    fig.suptitle(title or f"{Path(image_path).parent.name}/{Path(image_path).name}: what each model sees",
                 fontsize=11)
    fig.tight_layout()
    return fig


def plot_layer_costs(names: list[str], parameters: list[int], macs: list[int], subtitle: str = ""):
    """Parameters and multiply-accumulates per layer, on log axes, each bar labelled with its share.

    Introduced in Part-A/01 (the per-layer split of the example network).
    """
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.2))
    colours = ["#0072b2" if name.startswith("conv") else "#e69f00" for name in names]
    for ax, values, what in ((axes[0], parameters, "parameters"), (axes[1], macs, "MACs (multiply-accumulates)")):
        bars = ax.bar(names, values, color=colours)
        shares = [v / sum(values) for v in values]
        ax.bar_label(bars, labels=[f"{s:.1%}" if s >= 0.001 else f"{s:.3%}" for s in shares], fontsize=8, padding=2)
        ax.set_yscale("log")
        ax.set_ylim(top=max(values) * 4)  # room for the labels above the tallest bar
        ax.set(xlabel="layer (conv layers: output size)", ylabel=f"{what}, log scale",
               title=f"{what.split(' ')[0]} per layer: total {sum(values):,}")
        ax.grid(axis="y", alpha=0.3)
    if subtitle:
        fig.suptitle(subtitle, fontsize=11)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------
# Saving
# --------------------------------------------------------------------------------------------
def save_figures(figures: dict, folder: str | Path | None = None, dpi: int = 110) -> list[Path]:
    """Write each figure as <folder>/<name>.png (default: runtime.OUTPUT_DIR) and return the paths."""
    folder = Path(folder or OUTPUT_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, fig in figures.items():
        path = folder / f"{name}.png"
        fig.savefig(path, dpi=dpi, bbox_inches="tight")
        paths.append(path)
    return paths


def filter_structure(weights: torch.Tensor) -> float:
    """How spatially smooth conv kernels are: the mean correlation between horizontally and vertically
    neighbouring weights of the same filter and input channel. About 0 for i.i.d. noise (a fresh
    initialisation); clearly positive for blob- and edge-like kernels. Introduced in Part-A/04.
    """
    w = weights.detach().float().cpu()
    w = w - w.mean(dim=(2, 3), keepdim=True)
    pairs = [(w[..., :, :-1], w[..., :, 1:]), (w[..., :-1, :], w[..., 1:, :])]
    numerator = sum((a * b).sum() for a, b in pairs)
    denominator = sum(torch.sqrt((a * a).sum() * (b * b).sum()) for a, b in pairs)
    return float(numerator / denominator) if denominator > 0 else 0.0
