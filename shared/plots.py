"""Figures several notebooks share: test-set metrics, learning curves, per-layer costs, the preprocessing
comparison, and saving. The figures that look inside the Part A model (Question 4) live in `viz.py`.

Every plotting function returns a matplotlib figure and draws nothing else; the notebooks show, save
(`save_figures`) and log (`tracking.log_figures`) them.
"""
from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.patches import Rectangle

from . import decode
from .runtime import OUTPUT_DIR


def test_metrics(probs: torch.Tensor, labels: torch.Tensor, classes: list[str]) -> dict:
    """Accuracy, cross-entropy, per-class accuracy and the confusion matrix [true, predicted] from ONE pass
    of predictions. Introduced in Part-A/03."""
    labels, count = labels.cpu().long(), len(classes)
    flat = torch.bincount(labels * count + probs.argmax(1).cpu(), minlength=count * count)
    matrix = flat.view(count, count).numpy()
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
    ax.set(ylim=(0, 1.12), xlabel="true class", ylabel="test accuracy (share of the class right)",
           title=f"{title} (orange: below the overall accuracy)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    plt.setp(ax.get_xticklabels(), rotation=35, ha="right")
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
    ax.set(xlabel="predicted class", ylabel="true class", title=f"{title}: {matrix.sum()} images, counts in cells")
    plt.setp(ax.get_xticklabels(), rotation=35, ha="right")
    ax.tick_params(axis="y", rotation=0)
    fig.tight_layout()
    return fig


def most_confused(matrix: np.ndarray, classes: list[str]) -> tuple[int, list[tuple[str, str]]]:
    """(count, [(true class, predicted class), ...]): every off-diagonal cell that holds the largest count,
    so a tie is reported as a tie, not as whichever cell argmax meets first. (0, []) when nothing is wrong."""
    wrong = np.array(matrix, copy=True)
    np.fill_diagonal(wrong, 0)
    count = int(wrong.max()) if wrong.size else 0
    if count == 0:
        return 0, []
    return count, [(classes[t], classes[p]) for t, p in zip(*np.nonzero(wrong == count))]


def confusion_sentence(matrix: np.ndarray, classes: list[str]) -> str:
    """One printed line on the most frequent confusion, naming every tied pair."""
    count, pairs = most_confused(matrix, classes)
    if not pairs:
        return "No confusion: every test image was classified correctly."
    if count == 1:  # a "most frequent" pair needs one that happened more than once
        return (f"No confusion repeats: each of the {len(pairs)} wrong (true, predicted) pair{'s' * (len(pairs) > 1)} "
                f"occurred once.")
    rows = np.asarray(matrix).sum(axis=1)
    named = [f"{true} taken for {predicted} ({count} of {rows[classes.index(true)]} images)"
             for true, predicted in pairs]
    if len(pairs) == 1:
        return f"Most frequent confusion: {named[0]}."
    return (f"Most frequent confusion: a tie of {len(pairs)} pairs at {count} images each: "
            + "; ".join(named) + ".")


def class_extremes_sentence(per_class_acc: dict) -> str:
    """One printed line on the easiest and hardest class, naming every class tied at the top or the bottom.
    Classes with no test image (None) are left out."""
    per_class = {name: acc for name, acc in per_class_acc.items() if acc is not None}
    if not per_class:
        return "No class has a test image: no easiest or hardest class."
    top, bottom = max(per_class.values()), min(per_class.values())
    easiest = [name for name, acc in per_class.items() if acc == top]
    hardest = [name for name, acc in per_class.items() if acc == bottom]
    if top == bottom:
        return f"Every class has the same test accuracy ({top:.0%}): no easiest or hardest class."
    return (f"Easiest class{'es' * (len(easiest) > 1)}: {', '.join(easiest)} ({top:.0%}); "
            f"hardest: {', '.join(hardest)} ({bottom:.0%}).")


def train_label(config: dict | None) -> str:
    """'train (augmented, dropout 0.3 on)' from the run's config: what its training batches really had."""
    config = config or {}
    parts = [{True: "augmented", False: "not augmented"}.get(config.get("augment"), "")]
    if isinstance(config.get("dropout"), (int, float)):
        parts.append(f"dropout {config['dropout']:g} on" if config["dropout"] else "no dropout")
    return "train" + (f" ({', '.join(p for p in parts if p)})" if any(parts) else "")


def plot_learning_curves(history: list[dict], title: str = "Learning curves", config: dict | None = None):
    """Train and validation loss (left) and accuracy (right) per epoch of `train.fit`'s history, the best epoch
    (highest validation accuracy) marked. Introduced in Part-A/03. Train numbers come from the batches as trained
    (augmented, with dropout: the legend says which), so they can sit below the clean training accuracy."""
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
                        label=train_label(config) if split == "train" else "validation")
        ax.axvline(best["epoch"], color="#555555", ls=":", lw=1.2, label=f"best epoch ({best['epoch']})")
        ax.set(xlabel="epoch", ylabel=label)
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
        if len(epochs) <= 20:  # one tick per epoch: a single epoch would get ticks at 0.96, 0.98, ...
            ax.set_xticks(epochs)
    if best.get("val_acc") is not None:
        acc_ax.plot([best["epoch"]], [best["val_acc"]], marker="*", ms=14, color="#d55e00", mec="black",
                    ls="none", label=f"best val acc {best['val_acc']:.1%}")
    loss_ax.legend(fontsize=8)
    acc_ax.legend(fontsize=8, loc="lower right")
    title = f"{title}: {len(rows)} epoch{'s' * (len(rows) != 1)}, best validation accuracy at epoch {best['epoch']}"
    # Wrapped to the figure's width, so a long run name stays in it (DejaVu Sans at 11 pt: under 0.6 em a character).
    fig.suptitle(textwrap.fill(title, int(fig.get_figwidth() * 72 / (0.6 * 11))), fontsize=11)
    fig.tight_layout()
    return fig


def plot_preprocessing_comparison(image_path, size: int, resize_to: int, scratch_size: int | None = None,
                                  title: str | None = None):
    """One photo three ways (Part-B Q1(a)): the original with the centre crop's region drawn on it, Part A's squash
    to `scratch_size` (default `size`) square, and Part B's resize of the shorter side to `resize_to`, then the
    centre `size` x `size` crop, both by `decode.resize_uint8` as the caches are: exactly what each model sees.
    Introduced in Part-B/01."""
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
    Introduced in Part-A/01."""
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.2))
    colours = ["#0072b2" if name.startswith("conv") else "#e69f00" for name in names]
    for ax, values, what in ((axes[0], parameters, "parameters"), (axes[1], macs, "MACs (multiply-accumulates)")):
        bars = ax.bar(names, values, color=colours)
        shares = [v / sum(values) for v in values]
        ax.bar_label(bars, labels=[f"{s:.1%}" if s >= 0.001 else f"{s:.3%}" for s in shares], fontsize=8, padding=2)
        ax.set_yscale("log")
        # Bars start at 1, so each bar's height is its count; above the tallest, room for the labels.
        ax.set_ylim(bottom=1, top=max(values) * 4)
        ax.set(xlabel="layer (conv layers: output size)", ylabel=f"{what}, log scale",
               title=f"{what.split(' ')[0]} per layer: total {sum(values):,}")
        ax.grid(axis="y", alpha=0.3)
    if subtitle:
        fig.suptitle(subtitle, fontsize=11)
    fig.tight_layout()
    return fig


def save_figures(figures: dict, folder: str | Path | None = None, dpi: int = 110) -> list[Path]:
    """Write each figure as <folder>/<name>.png (default: runtime.OUTPUT_DIR) and return the paths."""
    folder = Path(folder or OUTPUT_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{name}.png" for name in figures]
    for path, fig in zip(paths, figures.values()):
        fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return paths
