"""shared.plots: the test metrics, the most frequent confusion (ties included), and figures that read at
a glance: labels off the lines, titles inside the figure, log bars that start at 1."""
import matplotlib
import numpy as np
import pytest
import torch
from PIL import Image

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from shared import data, plots, sources, viz  # noqa: E402


@pytest.fixture(scope="module")
def demo_test_set():
    return data.load_test(sources.make_demo_dataset(), 32, verbose=False)


def test_confusion_matrix_sums_to_test_size(demo_test_set):
    probs = torch.softmax(torch.randn(len(demo_test_set), 10, generator=torch.Generator().manual_seed(0)), dim=1)
    metrics = plots.test_metrics(probs, demo_test_set.labels, demo_test_set.classes)
    assert metrics["confusion"].sum() == len(demo_test_set)
    assert metrics["confusion"].sum(1).tolist() == list(demo_test_set.class_counts().values())
    assert 0 <= metrics["test_acc"] <= 1 and metrics["test_loss"] > 0
    fig = plots.plot_confusion_matrix(metrics["confusion"], demo_test_set.classes)
    annotations = [int(t.get_text()) for t in fig.axes[0].texts]
    assert sum(annotations) == len(demo_test_set)
    plt.close(fig)



def test_per_class_labels_do_not_sit_on_the_overall_line():
    """90% just under a 91.5% overall line: a label above its bar would be crossed by the line."""
    fig = plots.plot_per_class_accuracy({"a": 0.9, "b": 1.0, "c": 0.85, "d": 0.05}, overall=0.915)
    ax = fig.axes[0]
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    line_y = ax.transData.transform((0, 0.915))[1]
    labels = [t for t in ax.texts if t.get_text().endswith("%")]
    assert len(labels) == 4
    for text in labels:
        box = text.get_window_extent(renderer)
        assert not box.y0 <= line_y <= box.y1, f"{text.get_text()} sits on the overall line"
    assert ax.get_xlabel() and ax.get_ylabel()
    plt.close(fig)



def test_learning_curves():
    history = [dict(epoch=e, train_loss=2.0 / e, val_loss=1.5 / e + 0.1 * e, train_acc=0.3 + 0.1 * e,
                    val_acc=[0.4, 0.6, 0.55][e - 1]) for e in (1, 2, 3)]
    fig = plots.plot_learning_curves(history, title="run")
    loss_ax, acc_ax = fig.axes
    assert loss_ax.get_xlabel() == acc_ax.get_xlabel() == "epoch" and loss_ax.get_ylabel() and acc_ax.get_ylabel()
    assert len(loss_ax.get_lines()) == 3
    assert "best epoch (2)" in [t.get_text() for t in loss_ax.get_legend().get_texts()]
    assert "best validation accuracy at epoch 2" in fig._suptitle.get_text()
    plt.close(fig)
    with pytest.raises(ValueError, match="per-epoch"):
        plots.plot_learning_curves([{"step": 10, "val_acc": 0.5}])


def test_preprocessing_comparison(tmp_path):
    path = tmp_path / "wide.jpg"
    Image.new("RGB", (120, 60), (30, 160, 90)).save(path)
    fig = plots.plot_preprocessing_comparison(path, size=32, resize_to=40)
    original, squashed, cropped = (ax.images[0].get_array() for ax in fig.axes)
    assert original.shape[:2] == (60, 120) and squashed.shape[:2] == cropped.shape[:2] == (32, 32)
    box = max(fig.axes[0].patches, key=lambda p: p.get_linewidth())
    assert box.get_width() == pytest.approx(32 * 60 / 40)  # the crop region in the original's pixels
    assert all(ax.get_xlabel() and ax.get_ylabel() for ax in fig.axes)
    plt.close(fig)


def test_layer_costs_have_axis_labels():
    fig = plots.plot_layer_costs(["conv1", "dense", "output"], [100, 10_000, 110], [10**6, 10_000, 100])
    assert all(ax.get_xlabel() and ax.get_ylabel() for ax in fig.axes)
    assert [t.get_text() for t in fig.axes[1].texts] == ["99.0%", "1.0%", "0.010%"]
    plt.close(fig)


def test_learning_curves_title_stays_inside_the_figure():
    """A long run name (as Part-A/03 passes) used to run the suptitle off the right edge."""
    history = [dict(epoch=e, train_loss=1.0, val_loss=1.0, train_acc=0.5, val_acc=0.5 + 0.1 * e) for e in (1, 2)]
    title = "Best model: sweep run 17-f32-doubling-k3-silu-bn-aug-d0.2 of local-20261129-204500 (val_acc 0.9687)"
    fig = plots.plot_learning_curves(history, title=title)
    fig.canvas.draw()
    box = fig._suptitle.get_window_extent(fig.canvas.get_renderer())
    width, height = fig.canvas.get_width_height()
    assert 0 <= box.x0 and box.x1 <= width and 0 <= box.y0 and box.y1 <= height
    assert "17-f32-doubling" in fig._suptitle.get_text().replace("\n", " ")
    plt.close(fig)


def test_layer_cost_bars_start_at_one():
    fig = plots.plot_layer_costs(["conv1", "dense", "output"], [700, 10_000, 2_570], [10**6, 10_000, 2_560])
    assert all(ax.get_ylim()[0] == 1 for ax in fig.axes)
    plt.close(fig)


def test_most_confused_reports_every_tied_pair():
    classes = ["a", "b", "c"]
    matrix = np.array([[5, 2, 0], [0, 6, 2], [1, 0, 4]])
    assert plots.most_confused(matrix, classes) == (2, [("a", "b"), ("b", "c")])
    sentence = plots.confusion_sentence(matrix, classes)
    assert "a tie of 2 pairs at 2 images each" in sentence
    assert "a taken for b (2 of 7 images)" in sentence and "b taken for c (2 of 8 images)" in sentence
    single = np.array([[5, 3, 0], [0, 6, 2], [1, 0, 4]])
    assert plots.most_confused(single, classes) == (3, [("a", "b")])
    assert plots.confusion_sentence(single, classes) == "Most frequent confusion: a taken for b (3 of 8 images)."
    once = np.array([[5, 1, 0], [0, 6, 1], [1, 0, 4]])
    assert plots.most_confused(once, classes)[0] == 1
    assert plots.confusion_sentence(once, classes) == ("No confusion repeats: each of the 3 wrong (true, predicted) "
                                                       "pairs occurred once.")
    assert plots.most_confused(np.diag([3, 4, 5]), classes) == (0, [])
    assert "every test image was classified correctly" in plots.confusion_sentence(np.diag([3, 4, 5]), classes)


def test_plots_stands_alone_and_its_names_live_there_only():
    """plots never imports viz, and viz no longer re-exports plots' names (issue 22): each has one home."""
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(plots))
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) for alias in node.names}
    assert "viz" not in imported and "shared.viz" not in imported
    for name in ("save_figures", "test_metrics", "plot_learning_curves", "plot_confusion_matrix",
                 "plot_per_class_accuracy", "plot_layer_costs", "plot_preprocessing_comparison", "most_confused"):
        assert hasattr(plots, name) and not hasattr(viz, name)


def test_class_extremes_sentence_names_ties_and_skips_classes_without_images():
    from shared.plots import class_extremes_sentence

    line = class_extremes_sentence({"a": 0.9, "b": 0.9, "c": 0.5, "d": None})
    assert line == "Easiest classes: a, b (90%); hardest: c (50%)."
    assert "no easiest or hardest" in class_extremes_sentence({"a": 0.5, "b": 0.5})
    assert "no easiest or hardest" in class_extremes_sentence({"a": None})


def test_the_learning_curves_legend_says_what_the_run_had():
    """Issue 21: the legend said 'train (augmented, dropout on)' for a run with augment=False."""
    history = [{"epoch": e, "train_loss": 1.0, "val_loss": 1.1, "train_acc": .5, "val_acc": .4} for e in (1, 2)]
    for config, label in (({"augment": False, "dropout": 0.3}, "train (not augmented, dropout 0.3 on)"),
                          ({"augment": True, "dropout": 0.0}, "train (augmented, no dropout)"), (None, "train")):
        fig = plots.plot_learning_curves(history, config=config)
        assert label in [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
        plt.close(fig)
