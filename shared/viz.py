"""Looking inside the best Part A model: test metrics, the prediction grid, filters and guided backprop.

Introduced in Part-A/03 (test-set figures) and Part-A/04 (filters, feature maps, guided backprop).
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
from .runtime import OUTPUT_DIR

CORRECT, WRONG, NEUTRAL = "#1a9850", "#d73027", "#9e9e9e"


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
    names, values = list(per_class_acc), [v if v is not None else 0.0 for v in per_class_acc.values()]
    fig, ax = plt.subplots(figsize=(max(6, 0.75 * len(names)), 3.8))
    colours = ["#4575b4" if v >= overall else "#f46d43" for v in values]
    bars = ax.bar(names, values, color=colours)
    ax.bar_label(bars, labels=[f"{v:.0%}" for v in values], fontsize=8, padding=2)
    ax.axhline(overall, color="black", linestyle="--", linewidth=1, label=f"overall {overall:.1%}")
    ax.set_ylim(0, 1.12)
    ax.set_ylabel("accuracy")
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
    """The 10x3 grid: one row per true class; each image framed and titled in green (right) or red (wrong)
    with the predicted class and its confidence, and beside it a bar chart of the top-k probabilities."""
    classes, num_classes = test.classes, len(test.classes)
    rows = pick_per_class(test.labels, num_classes, per_class, seed)
    fig = plt.figure(figsize=(per_class * 3.5 + 0.6, num_classes * 1.55 + 1.0))
    grid = fig.add_gridspec(num_classes, 2 * per_class, width_ratios=[1.0, 1.25] * per_class,
                            wspace=0.12, hspace=0.55, left=0.05, right=0.985, top=1 - 0.95 / fig.get_figheight(),
                            bottom=0.02)
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
            ax_img.set_title(f"{classes[predicted]} {float(top.values[0]):.0%}", color=colour, fontsize=9,
                             fontweight="bold", pad=3)
            bar_colours = [CORRECT if k == true else (WRONG if n == 0 else NEUTRAL)
                           for n, k in enumerate(top.indices.tolist())]
            y = np.arange(len(top.values))[::-1]
            ax_bar.barh(y, top.values.numpy(), color=bar_colours, height=0.75)
            for yy, value, k in zip(y, top.values.tolist(), top.indices.tolist()):
                # Names inside long bars, after short ones: no labels spill onto the image beside.
                inside = value > 0.55
                ax_bar.text(value - 0.02 if inside else value + 0.02, yy, f"{classes[k]} {value:.0%}",
                            va="center", ha="right" if inside else "left", fontsize=7,
                            color="white" if inside else "black", clip_on=False)
            ax_bar.set_yticks([])
            ax_bar.set_xlim(0, 1)
            ax_bar.set_xticks([0, 0.5, 1], ["0", ".5", "1"], fontsize=6)
            ax_bar.tick_params(length=2, pad=1)
            ax_bar.spines[["top", "right"]].set_visible(False)
    correct = sum(int(probs[i].argmax()) == int(test.labels[i]) for r in rows for i in r)
    shown = sum(len(r) for r in rows)
    fig.suptitle(f"Test images, one row per true class: {correct}/{shown} right. Title = predicted class and "
                 f"confidence (green right, red wrong);\nbars = top-{top_k} probabilities "
                 f"(green = the true class)", fontsize=11)
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
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 0.9, rows * 0.9 + 0.6), squeeze=False)
    for n, ax in enumerate(axes.flat):
        ax.axis("off")
        if n < len(patches):
            ax.imshow(patches[n], interpolation="nearest")
            ax.set_title(str(n), fontsize=6, pad=1)
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


def plot_feature_maps(model, image: torch.Tensor, caption: str = ""):
    """The first block's activation maps for one uint8 image [3, H, W], beside the image itself."""
    maps = block_output(model, image[None], block=1)[0].cpu().numpy()
    rows, columns = grid_shape(len(maps))
    fig = plt.figure(figsize=(columns * 1.0 + 3.2, max(3.2, rows * 1.0 + 0.6)))
    left, right = fig.subfigures(1, 2, width_ratios=[3.2, columns * 1.0])
    ax = left.subplots()
    ax.imshow(image.cpu().permute(1, 2, 0).numpy(), interpolation="nearest")
    ax.set_title(caption or "input", fontsize=9)
    ax.axis("off")
    axes = np.atleast_1d(right.subplots(rows, columns, squeeze=False)).flat
    for n, ax in enumerate(axes):
        ax.axis("off")
        if n < len(maps):
            ax.imshow(maps[n], cmap="viridis", interpolation="nearest")
            ax.set_title(str(n), fontsize=6, pad=1)
    right.suptitle(f"First-layer feature maps: {len(maps)} channels after the activation, "
                   f"{maps.shape[1]}x{maps.shape[2]} px (each on its own colour scale)", fontsize=10)
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
                         titles: list[str], block: int = 5):
    """One row per neuron: the test image that excites it most with the unit's receptive field boxed,
    the guided-backprop map, and the map's magnitude over the image inside the receptive field."""
    height = 2.45 * len(gradients) + 0.6
    fig, axes = plt.subplots(len(gradients), 3, figsize=(8.2, height), squeeze=False)
    for row, (image, gradient, box, title) in enumerate(zip(images, gradients, boxes, titles)):
        top, left, bottom, right = box
        picture = image.cpu().permute(1, 2, 0).numpy()
        magnitude = gradient.abs().amax(dim=0).numpy()
        magnitude = magnitude / max(float(np.quantile(magnitude, 0.995)), 1e-12)
        whole = (top, left) == (0, 0) and (bottom, right) == (picture.shape[0] - 1, picture.shape[1] - 1)
        axes[row, 0].imshow(picture, interpolation="nearest")
        axes[row, 0].add_patch(Rectangle((left - 0.5, top - 0.5), right - left + 1, bottom - top + 1,
                                         fill=False, edgecolor="yellow", linewidth=2.5))
        axes[row, 0].set_title(title, fontsize=8)
        axes[row, 1].imshow(gradient_to_image(gradient), interpolation="nearest")
        axes[row, 1].set_title("guided backprop" + (" (all zero)" if not gradient.any() else ""), fontsize=8)
        crop = (slice(top, bottom + 1), slice(left, right + 1))
        axes[row, 2].imshow(picture[crop].mean(axis=2), cmap="gray", interpolation="nearest")
        axes[row, 2].imshow(np.clip(magnitude[crop], 0, 1), cmap="inferno", alpha=0.65, interpolation="nearest")
        axes[row, 2].set_title("|map| on the image, " + ("whole image = receptive field" if whole else
                               f"receptive field {bottom - top + 1}x{right - left + 1} px"), fontsize=8)
        for ax in axes[row]:
            ax.set_xticks([]), ax.set_yticks([])
    fig.suptitle(f"Guided backprop for {len(gradients)} CONV{block} neurons "
                 f"(yellow box: the unit's receptive field)", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.45 / height))
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
