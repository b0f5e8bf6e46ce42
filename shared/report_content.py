"""The hand-in report's content: every answer recomputed from the files the notebooks leave in the outputs folder.

Introduced in Part-B/02. Each answer uses the functions the notebooks call, so the report says what the notebooks
say; a missing result becomes a line that names the notebook to run. `report.py` and `report_html.py` render it.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from . import evidence, formulas, runs_frame, runtime, sweep_plots
from .plots import class_extremes_sentence, confusion_sentence
from .runs_table import best_of, read_table, runs_of
from .runtime import UserError
from .tracking import figures_group

NOTEBOOKS = {"A1": "Part-A/01_model_and_formulas.ipynb", "A2": "Part-A/02_sweep.ipynb",
             "A3": "Part-A/03_best_model_test.ipynb", "A4": "Part-A/04_filters_and_guided_backprop.ipynb",
             "B1": "Part-B/01_finetune_strategies.ipynb", "B2": "Part-B/02_finetune_vs_scratch.ipynb"}
# The files the report reads from the outputs folder (the names the notebooks write them under).
SWEEP_RUNS = runtime.SWEEP_RUNS.name            # Part-A/02's runs table
BEST_RESULT = runtime.BEST_RESULT.name          # Part-A/03's record of the tested model
BEST_CHECKPOINT = runtime.BEST_CHECKPOINT.name  # Part-A/03's retrained model
STRATEGY_RESULTS = "partB_strategies.json"      # written by Part-B/01
VS_SCRATCH = "partB_vs_scratch.json"            # written by Part-B/02's last cell
INPUTS = [SWEEP_RUNS, BEST_RESULT, BEST_CHECKPOINT, STRATEGY_RESULTS, VS_SCRATCH]


# One item of a question's answer. `kind`: text | bullets | latex | figure | table | note | panels.
@dataclass
class Item:
    kind: str
    text: str = ""                    # text, latex source, note, a figure's caption, a table's title
    lines: list[str] = field(default_factory=list)          # bullets
    path: Path | None = None          # figure: the PNG
    media: tuple[str, str, str] | None = None  # figure: (W&B group, run name, logged key) of the same figure
    columns: list[str] = field(default_factory=list)        # table
    rows: list[list[str]] = field(default_factory=list)     # table
    panels: dict = field(default_factory=dict)              # panels: what the W&B report shows online


@dataclass
class Question:
    title: str            # "Question 1"
    source: str           # the notebook(s) it comes from
    items: list[Item]


@dataclass
class Part:
    title: str            # "Part A"
    questions: list[Question]


@dataclass
class Content:
    parts: list[Part]
    warnings: list[str]   # shown at the top: demo data, quick mode, mixed data
    missing: list[str]    # notebooks whose results are missing


def _read_json(path: Path, warnings: list[str]) -> dict | None:
    """The JSON object at `path`; None when it is missing or not one (unreadable: said in `warnings`)."""
    if not path.is_file():
        return None
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        warnings.append(f"{path} is not readable JSON ({err}); run the notebook that writes it again")
        return None
    return value if isinstance(value, dict) else None


def _figure(outputs: Path, name: str, caption: str, notebook: str, record: dict | None = None, run: str = "",
            key: str = "") -> Item:
    """Figure `name`.png (a note when it is missing); the W&B `run` that logged it under `key` (default: `name`) is
    in the group of `record`'s mode and data."""
    path = outputs / f"{name}.png"
    if path.is_file():
        group = figures_group(record.get("mode"), record.get("data")) if record else None
        return Item("figure", caption, path=path, media=(group, run, key or name) if group else None)
    return Item("note", f"Figure {name}.png is missing: run {NOTEBOOKS[notebook]}.")


def _run(notebook: str) -> str:
    return f"Run {NOTEBOOKS[notebook]} (and the notebooks before it) to fill this in."


SIZE = 224  # the question's input size, as in Part-A/01
LATEX_MACS = (r"C = 3k^2mS^2 + k^2m^2\sum_{i=1}^{4} S_i^2 + mS_5^2\,n + 10n"
              r",\quad S_i = \left\lfloor \frac{S}{2^i} \right\rfloor")
LATEX_PARAMS = r"P = (3k^2+1)m + 4(k^2m+1)m + (mS_5^2+1)\,n + 10(n+1)"


def closed_forms(size: int) -> tuple[str, str, list[tuple[int, int, int, int, int]]]:
    """(MACs, parameters) at `size` px as LaTeX polynomials, and Part-A/01's examples evaluated by `formulas`,
    checked against the polynomials and PyTorch's counts of the model built on the meta device (no arithmetic)."""
    import torch
    from .model import CNN, CNNConfig
    s5 = size // 32
    conv1, convs = 3 * size ** 2, sum((size // 2 ** i) ** 2 for i in range(1, 5))

    def number(value):  # 150{,}528: a thousands comma that LaTeX does not space as punctuation
        return f"{value:,}".replace(",", "{,}")
    macs = rf"C_{{{size}}} = {number(conv1)}\,k^2m + {number(convs)}\,k^2m^2 + {s5 * s5}\,mn + 10n"
    params = rf"P_{{{size}}} = 4k^2m^2 + 3k^2m + 5m + {s5 * s5}\,mn + 11n + 10"
    examples = []
    for m, k, n in [(32, 3, 256), (64, 3, 512), (16, 5, 128), (32, 7, 64), (128, 3, 1024)]:
        p, c = formulas.params_uniform(m, k, n, size), formulas.macs_uniform(m, k, n, size)
        if (p, c) != (4 * k * k * m * m + 3 * k * k * m + 5 * m + s5 * s5 * m * n + 11 * n + 10,
                      conv1 * k * k * m + convs * k * k * m * m + s5 * s5 * m * n + 10 * n):
            raise AssertionError(f"closed form and shared.formulas disagree at m={m}, k={k}, n={n}")
        with torch.device("meta"):
            built = CNN(CNNConfig(filters=[m] * 5, kernel_sizes=[k] * 5, dense_neurons=n, batch_norm=False,
                                  input_size=size))
            if formulas.torch_counts(built, size) != (p, c):
                raise AssertionError(f"shared.formulas and PyTorch's counts disagree at m={m}, k={k}, n={n}")
        examples.append((m, k, n, p, c))
    return macs, params, examples


def question_a1(outputs: Path) -> list[Item]:
    macs, params, examples = closed_forms(SIZE)
    return [
        Item("text", "The network: five conv → activation → 2×2 max-pool blocks, one dense layer and a 10-neuron "
                     "output layer (shared/model.py). With m filters of size k×k in every layer, n dense neurons "
                     "and an S×S×3 input:"),
        Item("text", "Total computations: multiply-accumulates (MACs) of the conv and dense layers for one image "
                     "(FLOPs = 2 × MACs; bias, BatchNorm, activation and pooling not counted)."),
        Item("latex", LATEX_MACS), Item("latex", macs),
        Item("text", "Total parameters: weights and biases (BatchNorm adds 10m)."),
        Item("latex", LATEX_PARAMS), Item("latex", params),
        Item("table", f"Both formulas at S = {SIZE}, each value equal to PyTorch's own count for the built "
                      f"model (parameters by numel, MACs by FlopCounterMode), checked as this report was built",
             columns=["m", "k", "n", "parameters P", "MACs C", "GFLOPs"],
             rows=[[str(m), str(k), str(n), f"{p:,}", f"{c:,}", f"{2 * c / 1e9:.3f}"] for m, k, n, p, c in examples]),
        _figure(outputs, "partA_01_growth", "How P and C grow with m, k and n (log axes)", "A1"),
        _figure(outputs, "partA_01_per_layer", "The example network (m=32, k=3, n=256), layer by layer", "A1"),
    ]


def sweep_record(outputs: Path, best: dict | None = None) -> tuple[str | None, dict, list[dict]]:
    """(sweep id, its entry in the table, its runs): the sweep Part-A/03 took its best model from (`best`'s
    sweep_id; named in its source in older records), else the most recently created sweep that has runs."""
    table = read_table(outputs / SWEEP_RUNS)  # a missing file is an empty table
    sweeps = {sweep_id: sweep for sweep_id, sweep in table["sweeps"].items() if runs_of(table, sweep_id)}
    if not sweeps:
        return None, {}, []
    if best and "sweep_id" in best:  # Part-A/03 records the sweep its best run came from (None: no sweep run)
        if best["sweep_id"] is not None and best["sweep_id"] not in sweeps:  # never another sweep in its place
            raise UserError(f"{BEST_RESULT} names sweep {best['sweep_id']}, which {SWEEP_RUNS} does not hold (it holds "
                            f"{', '.join(sorted(sweeps))}): no other sweep is shown instead; run {NOTEBOOKS['A2']} and "
                            f"{NOTEBOOKS['A3']} again, or restore the table")
        named = [best["sweep_id"]] if best["sweep_id"] in sweeps else []
    else:  # a record from before it did names the sweep only in its source
        named = [sweep_id for sweep_id in sweeps if sweep_id in str((best or {}).get("source", ""))]
    chosen = named[0] if named else max(sweeps, key=lambda sweep_id: str(sweeps[sweep_id].get("created", "")))
    return chosen, sweeps[chosen], runs_of(table, chosen)


def describe_early_terminate(rule) -> str:
    """'hyperband, min_iter 1, eta 2' for the sweep config's early_terminate; 'none' without one."""
    if not isinstance(rule, dict):
        return "none"
    return ", ".join([str(rule.get("type", "?")), *(f"{key} {value}" for key, value in rule.items() if key != "type")])


def question_a2(outputs: Path, sweep_id: str | None, sweep: dict, runs: list[dict], table) -> list[Item]:
    """`table`: `runs_frame.runs_table(runs)`, built once for Questions 2 and 3."""
    from .sweep_controller import early_termination_summary
    config = sweep.get("config") or {}
    swept = (config.get("parameters") or {}).values()
    combinations = math.prod(len(spec["values"]) for spec in swept if "values" in spec)  # continuous ones not counted
    saving = early_termination_summary(runs)
    failed = [run for run in runs if run.get("state") == "failed"]
    items = [
        Item("text", f"Sweep {sweep_id} ({config.get('method', '?')}, W&B {sweep.get('wandb_mode', '?')}, "
                     f"{sweep.get('mode', '?')} mode): {sweep_plots.runs_summary(table)}"),
        Item("bullets", lines=[
            f"Bayesian search instead of a grid: {len(runs)} runs instead of the {combinations:,} discrete "
            f"combinations of the swept space (the learning rate is continuous on top).",
            f"Early termination ({describe_early_terminate(config.get('early_terminate'))}): {saving['stopped']} of "
            f"{saving['runs']} runs stopped early; {saving['epochs_run']} epochs run of {saving['epochs_asked']} asked "
            f"({saving['fraction_of_time_saved']:.0%} of the time saved, estimated from each stopped run's mean "
            f"epoch time).",
            f"Failures cost a run, not the sweep: {len(failed)} failed"
            + (": " + "; ".join(f"{r.get('name')}: {r.get('error')}" for r in failed) if failed else "."),
            "Tied choices: five filter counts come from two knobs (base_filters × organisation), five kernel "
            "sizes from one."]),
        Item("panels", "The sweep's runs in W&B", panels={"kind": "sweep", "sweep_id": sweep_id}),
    ]
    items += [_figure(outputs, f"partA_02_{name}", caption, "A2", sweep, f"sweep-plots-{sweep_id}", name)
              for name, caption in [("val_acc_vs_created", "Validation accuracy against created time"),
                                    ("parallel_coordinates", "Parallel coordinates (colour = validation accuracy)"),
                                    ("parameter_importance", "Parameter importance and correlation with val_acc")]]
    best = best_of(runs)
    if best:
        items.append(Item("panels", f"The best run, {best.get('name')}: training and validation curves",
                          panels={"kind": "best_run", "sweep_id": sweep_id, "run": best.get("name"),
                                  "history": best.get("history") or [], "config": best.get("config")}))
    return items


def question_a3(runs: list[dict], table) -> list[Item]:
    findings = sweep_plots.observations(table)
    return [
        Item("text", "Seen in these runs: what the plots show, described from the runs (directions and sizes in "
                     "these runs, not conclusions):"),
        Item("bullets", lines=sweep_plots.seen_in_runs(table, findings)),
        Item("text", "Supported by the evidence: each computed from the sweep's runs (a conclusion only where the "
                     "evidence clears the thresholds; otherwise the line says why not):"),
        Item("bullets", lines=[str(f) for f in findings]),
        Item("text", "Expectations from the literature, not measured here:"),
        Item("bullets", lines=list(sweep_plots.expectations(runs_frame.varied_keys(table))))]


A3_FIGURES = [("partA_learning_curves", "Learning curves of the best config's retraining (its own run)"),
              ("partA_per_class_accuracy", "Per-class test accuracy"),
              ("partA_confusion_matrix", "Confusion matrix on the test set"),
              ("partA_test_grid", "(b) 10 × 3 grid of test images with the best model's predictions")]
A4_FIGURES = [("partA_first_layer_filters", "(c) All first-layer filters of the best model"),
              ("partA_first_layer_feature_maps", "(c) The first layer's feature maps for a random test image"),
              ("partA_guided_backprop_column", "(d) Guided backprop on 10 CONV5 neurons, 10 × 1"),
              ("partA_guided_backprop_conv5", "(d) Guided backprop: each neuron's most exciting test image and map"),
              ("partA_top_images", "(d) The test images that excite each neuron most")]


def test_images(record: dict) -> int | None:
    """How many test images Part-A/03 evaluated: recorded, or counted in the data's val/ folder."""
    if record.get("test_images"):
        return int(record["test_images"])
    root = (record.get("data") or {}).get("root")
    if root and (Path(root) / "val").is_dir():
        from .data import scan_folder
        return len(scan_folder(Path(root) / "val")[1])
    return None


def question_a4(outputs: Path, record: dict) -> list[Item]:
    models = record.get("models") or {}
    tested = models.get(record.get("reported"))
    if not tested:  # a record from before it held one entry per model
        return [Item("note", f"{BEST_RESULT} has no entry per tested model: " + _run("A3"))]
    items = [Item("text", f"(a) The best model from the sweep ({record.get('source', '?')}): {tested['name']}, "
                          f"evaluated once on the test set (val/): TEST ACCURACY {tested['test_acc']:.2%}, "
                          f"cross-entropy {tested.get('test_loss', float('nan')):.4f}.")]
    items += [Item("text", f"Beside it, {other['name']}: validation accuracy {other['val_acc']:.2%}, test accuracy "
                           f"{other['test_acc']:.2%}.") for other in models.values() if other is not tested]
    images = test_images(record)
    if images:
        items.append(Item("text", str(evidence.test_vs_validation(tested["test_acc"], tested["val_acc"], images,
                                                                  val_images=record.get("val_images")))))
    else:
        items.append(Item("note", "The number of test images is not recorded and the data folder is gone: "
                                  "no interval for the test accuracy."))
    per_class = {name: acc for name, acc in (tested.get("per_class_acc") or {}).items() if acc is not None}
    lines = [str(evidence.overfitting(model.get("history") or [], model["name"])) for model in models.values()]
    if per_class:
        lines.append(f"{class_extremes_sentence(per_class)} Chance level with {len(per_class)} classes: "
                     f"{1 / len(per_class):.0%}.")
    items.append(Item("bullets", lines=lines))
    items += [_figure(outputs, name, caption, "A3", record, "partA-best-model-test") for name, caption in A3_FIGURES]
    items += filter_findings(outputs, record)
    optional = [_figure(outputs, name, caption, "A4", record, "partA-filters-guided-backprop")
                for name, caption in A4_FIGURES if (outputs / f"{name}.png").is_file()]  # in Part-A/03's W&B group
    return items + (optional or [Item("note", f"(c) and (d) are optional: {_run('A4')}")])


def filter_findings(outputs: Path, record: dict) -> list[Item]:
    """(c): whether the best model's first-layer kernels are smoother than shuffled copies of themselves. The
    model is Part-A/04's: the sweep's saved best model that Part-A/03 tested, else its retraining (partA_best.pt)."""
    from . import train, viz
    saved = Path(((record.get("models") or {}).get("sweep") or {}).get("checkpoint") or outputs / BEST_CHECKPOINT)
    checkpoint = saved if saved.is_file() else outputs / BEST_CHECKPOINT
    if not checkpoint.is_file():
        return []
    try:
        model, _ = train.load_checkpoint(checkpoint)
    except Exception as err:  # a damaged or foreign file is reported, never trusted
        return [Item("note", f"{checkpoint.name} is not readable ({type(err).__name__}); run {NOTEBOOKS['A3']}.")]
    found = viz.structure_evidence(model.blocks[0].conv.weight)
    verdict = ("smoother than every shuffle by the margin: learned spatial structure" if found["supported"] else
               "not smoother than its shuffles by the margin: no learned spatial structure is shown")
    return [Item("text", f"(c) First-layer kernels: neighbouring-weight correlation {found['score']:+.2f}, against at "
                         f"most {found['null_max']:+.2f} in {found['draws']} shuffles of the same weights (margin "
                         f"{found['margin']:.2f}): {verdict}.")]


def question_link(repo_url: str) -> list[Item]:
    if "<" in repo_url:
        return [Item("note", "The GitHub link is not filled in yet: push the repo to a public GitHub repository "
                             "and run `make publish`, then build this report again.")]
    return [Item("text", f"The code: {repo_url.removesuffix('.git')}")]


def question_b1(outputs: Path, strategies: dict, compared: dict | None = None) -> list[Item]:
    import torch
    import torchvision
    from . import finetune
    model_name = strategies["model"]
    recipe = finetune.preprocessing(model_name)
    with torch.device("meta"):  # only the head's shape is read: no weights are made, nor initialised
        head = finetune.get_head(torchvision.models.get_model(model_name))
    used = (compared or {}).get("preprocessing") or {}  # Part-B/02's, when its mode scaled the recipe down for a CPU
    scaled = ""
    if used and (used.get("resize_size"), used.get("crop_size")) != (recipe["resize_size"], recipe["crop_size"]):
        scaled = (f" This run ({compared.get('mode')} mode) scaled it down in the same ratio: resize "
                  f"{used['resize_size']} px, crop {used['crop_size']} px.")
    return [
        Item("text", f"Model: {model_name}, ImageNet weights {finetune.get_weights(model_name)}"
                     + ("." if strategies.get("pretrained") else
                        " (this run: RANDOM initialisation, no weights offline).")),
        Item("text", f"(a) Image size: the weights' own recipe, applied once when the image cache is built: resize "
                     f"the shorter side to {recipe['resize_size']} px keeping the aspect ratio, centre-crop "
                     f"{recipe['crop_size']} × {recipe['crop_size']} px, normalise with mean {recipe['mean']} and std "
                     f"{recipe['std']}." + scaled),
        _figure(outputs, "partB_preprocessing", "One photo: Part A's squash against Part B's resize and centre crop",
                "B1", strategies, f"partB-strategies-{model_name}"),
        Item("text", f"(b) 1,000 classes against 10: the last layer {head} "
                     f"({head.weight.numel() + head.bias.numel():,} parameters) is replaced by a new "
                     f"Linear({head.in_features}, 10) ({head.in_features * 10 + 10:,} parameters); the backbone's "
                     f"feature vector is kept."),
    ]


def question_b2(outputs: Path, strategies: dict) -> list[Item]:
    rows = {row["strategy"]: row for row in strategies.get("rows") or []}
    reference = "full" if "full" in rows else next(iter(rows))
    return [
        Item("table", f"{strategies['model']}: four strategies on the same data and budget "
                      f"(best by validation accuracy: {strategies['best']['strategy']})",
             columns=["strategy", "trainable parameters", "share", "s/epoch", "total s", "val acc"],
             rows=[[label, f"{r['trainable_params']:,}", f"{r['trainable_share']:.2%}", f"{r['epoch_seconds']:.1f}",
                    f"{r['train_seconds']:.1f}", f"{r['val_acc']:.2%}"] for label, r in rows.items()]),
        Item("bullets", lines=[str(f) for f in evidence.strategy_comparison(
            rows, reference, val_images=strategies.get("val_images"))]),
        _figure(outputs, "partB_strategies", "Trainable parameters, time per epoch and accuracy per strategy",
                "B1", strategies, f"partB-strategies-{strategies['model']}"),
    ]


def question_b3(outputs: Path, compared: dict) -> list[Item]:
    import numpy as np
    scratch, tuned = compared["scratch"], compared["tuned"]
    name = f"{compared['model']} {compared['strategy']}"
    run = f"partB-vs-scratch-{compared['model']}"
    lines = [str(f) for f in evidence.scratch_vs_finetuned(scratch, tuned, compared["test_images"])]
    per_class = {label: acc for label, acc in (compared.get("per_class_acc") or {}).items() if acc is not None}
    if per_class:  # the hardest and easiest class, and the most frequent confusion, from the saved test metrics
        lines.append("For the fine-tuned model: " + class_extremes_sentence(per_class))
    if compared.get("confusion") and compared.get("classes"):
        lines.append(confusion_sentence(np.array(compared["confusion"]), compared["classes"]))
    return [
        Item("text", f"Fine-tuned {name} (test accuracy {tuned['test_acc']:.2%}) against Part A's best scratch CNN, "
                     f"{scratch.get('name', 'unnamed')} (test accuracy {scratch['test_acc']:.2%}), on "
                     f"{compared['test_images']:,} test images:"),
        Item("bullets", lines=lines),
        _figure(outputs, "partB_vs_scratch", "Scratch CNN against the fine-tuned model", "B2",
                compared, run, "vs_scratch"),
        _figure(outputs, "partB_confusion", "The fine-tuned model's confusion matrix on the test set", "B2",
                compared, run, "confusion"),
    ]


def data_warnings(records: list[dict]) -> list[str]:
    """What the top of the report must say about the data and mode the results come from."""
    warnings = []
    modes = sorted({r["mode"] for r in records if r.get("mode")})
    if any((r.get("data") or {}).get("demo") for r in records):
        warnings.append("These results were computed on the embedded DEMO data (scikit-learn digits written as "
                        "JPEGs), not on iNaturalist-12K: they show how the analysis works, not iNaturalist results.")
    if modes and modes != ["full"]:
        warnings.append(f"Mode: {', '.join(modes)} (not the full runs the assignment asks for).")
    if len({(r.get("data") or {}).get("files") for r in records if r.get("data")}) > 1:
        warnings.append("The notebooks' results come from different datasets: run all six notebooks again on one.")
    return warnings


# What a hand-edited or damaged result raises while an answer is built from it: one line in the report instead.
READ_ERRORS = (UserError, KeyError, TypeError, ValueError, ZeroDivisionError, StopIteration, AttributeError, IndexError)


def unreadable(err: Exception, files: list[str]) -> str:
    """The one line that replaces an answer whose files could not be read."""
    if isinstance(err, UserError):
        return str(err)
    what = f"no field {err.args[0]!r}" if isinstance(err, KeyError) else \
        f"{type(err).__name__}: {(str(err).splitlines() or [''])[0]}"
    return (f"Could not read {' and '.join(files)} for this answer ({what}): correct the file, or run the notebook "
            f"that writes it again.")


def collect(outputs: Path) -> Content:
    """Every question's answer from the files under `outputs`; a file that cannot be read is a line, not a stop."""
    from .bootstrap import REPO_URL
    warnings = []
    names = (BEST_RESULT, STRATEGY_RESULTS, VS_SCRATCH)
    best, strategies, compared = (_read_json(outputs / name, warnings) for name in names)
    try:
        sweep_id, sweep, runs = sweep_record(outputs, best)
        table, sweep_error = (runs_frame.runs_table(runs) if runs else None), None
    except READ_ERRORS as err:
        sweep_id, sweep, runs, table, sweep_error = None, {}, [], None, err

    found = {"A2": runs or sweep_error, "A3": best, "B1": strategies, "B2": compared}

    def question(title, source, files, build, needs=None):
        """`build()`'s items, or one line: what could not be read, or the notebook it `needs` to run first."""
        try:
            if needs == "A2" and sweep_error:
                items = [Item("note", unreadable(sweep_error, files))]
            elif needs and not found[needs]:
                items = [Item("note", _run(needs))]
            else:
                items = build()
        except READ_ERRORS as err:
            items = [Item("note", unreadable(err, files))]
        return Question(title, source, items)

    a2, a4, b1, b2 = NOTEBOOKS["A2"], f"{NOTEBOOKS['A3']} and {NOTEBOOKS['A4']}", NOTEBOOKS["B1"], NOTEBOOKS["B2"]
    link = "shared/bootstrap.py (REPO_URL, written by make publish)"
    part_a = [
        question("Question 1", NOTEBOOKS["A1"], [], lambda: question_a1(outputs)),
        question("Question 2", a2, [SWEEP_RUNS], lambda: question_a2(outputs, sweep_id, sweep, runs, table), "A2"),
        question("Question 3", a2, [SWEEP_RUNS], lambda: question_a3(runs, table), "A2"),
        question("Question 4", a4, [BEST_RESULT], lambda: question_a4(outputs, best), "A3"),
        question("Question 5", link, [], lambda: question_link(REPO_URL))]
    part_b = [
        question("Question 1", b1, [STRATEGY_RESULTS, VS_SCRATCH], lambda: question_b1(outputs, strategies, compared),
                 "B1"),
        question("Question 2", b1, [STRATEGY_RESULTS], lambda: question_b2(outputs, strategies), "B1"),
        question("Question 3", b2, [VS_SCRATCH], lambda: question_b3(outputs, compared), "B2"),
        question("Question 4", link, [], lambda: question_link(REPO_URL))]
    parts = [Part("Part A", part_a), Part("Part B", part_b)]
    try:
        warnings = data_warnings([r for r in [sweep, best, strategies, compared, *runs[:1]] if r]) + warnings
    except READ_ERRORS as err:
        warnings.append(unreadable(err, ["the results' data and mode fields"]))
    return Content(parts, warnings, [NOTEBOOKS[key] for key, value in found.items() if not value])
