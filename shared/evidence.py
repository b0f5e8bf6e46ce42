"""Statements computed from the numbers, each naming its evidence, and refusals where the evidence is thin.

Introduced in Part-A/02; reused by Part-A/03, Part-B/01 and Part-B/02. A `Finding` is `.supported` only when
the evidence clears the thresholds below. Accuracies are fractions; differences print in "pp", ratios in "x".
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

# A claim that one value of a parameter beats another needs all three:
MIN_RUNS_PER_GROUP = 3  # one or two lucky runs must not decide a comparison
MIN_COHENS_D = 1.0      # the difference of means is larger than the pooled spread (standard deviation)
MAX_P_VALUE = 0.05      # a label-shuffling (permutation) test: chance alone rarely gives a difference this large
PERMUTATIONS = 10_000   # enough for p-values near 0.05 to be stable to about +-0.005
PERMUTATION_CHUNK = 2_000_000  # shuffled values held at once (16 MB)
# The smallest difference that matters: one validation image. When the image count is unknown, 0.1 pp
# (one image in 1,000; iNaturalist's validation split has about 2,000), the resolution of "+x.x pp".
DEFAULT_DIFFERENCE_FLOOR = 0.001
Z_95 = 1.96             # two-sided 95% normal quantile, for binomial intervals

# Learning curves: overfitting is claimed only from enough epochs and a clear signal.
MIN_EPOCHS_FOR_CURVES = 3
OVERFIT_GAP = 0.05      # train accuracy above validation accuracy by 5 pp or more at the last epoch
OVERFIT_LOSS_RISE = 0.05  # validation loss 5% or more above its minimum while the training loss still falls


@dataclass
class Group:
    """The accuracies of the runs that share one value of a parameter."""
    label: str
    values: list[float]
    note: str = ""  # what was left out of `values`, e.g. "+2 stopped early"

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return float(np.mean(self.values)) if self.values else math.nan

    @property
    def std(self) -> float:
        """Sample standard deviation (ddof=1); 0 for a single run."""
        return float(np.std(self.values, ddof=1)) if self.n > 1 else 0.0

    def describe(self) -> str:
        note = f", {self.note}" if self.note else ""
        if not self.values:
            return f"{self.label}: no finished runs{note}"
        if self.n == 1:  # one run has no spread
            return f"{self.label}: {self.mean:.1%} (n=1{note})"
        return f"{self.label}: {self.mean:.1%} ± {100 * self.std:.1f} pp (n={self.n}{note})"


@dataclass
class Finding:
    """One statement: `text` is what to print, `supported` whether it is a conclusion the evidence backs."""
    subject: str
    supported: bool
    text: str
    reason: str | None = None  # why not supported: too few runs | spreads overlap | could be chance | confounded | ...
    groups: list[Group] = field(default_factory=list)
    difference: float | None = None  # highest minus lowest mean (a fraction; x100 for pp)
    cohens_d: float | None = None
    p_value: float | None = None

    def __str__(self) -> str:
        return self.text


def pp(difference: float) -> str:
    """A difference of two accuracies (fractions) in signed percentage points: 0.0123 -> '+1.2 pp'."""
    return f"{100 * difference:+.1f} pp"


def ratio(value: float) -> str:
    """A ratio as 'x', readable at every scale: 1.49x, 12x, 0.35x, 0.0012x (1/830)."""
    if not math.isfinite(value):
        return "n/a"
    if value >= 10:
        return f"{value:,.0f}x"
    if value >= 0.1:
        return f"{value:.2f}x"
    if value <= 0:
        return f"{value:.2g}x"
    return f"{value:.2g}x (1/{1 / value:,.0f})"  # tiny ratios: the inverse is what a reader can picture


def binomial_interval(accuracy: float, images: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval of an accuracy measured on `images` independent images (95% by default)."""
    if images <= 0:
        return (0.0, 1.0)
    centre = (accuracy + z * z / (2 * images)) / (1 + z * z / images)
    half = z * math.sqrt(accuracy * (1 - accuracy) / images + z * z / (4 * images * images)) / (1 + z * z / images)
    return max(0.0, centre - half), min(1.0, centre + half)


def permuted_rows(values: np.ndarray, permutations: int, seed: int = 0):
    """`permutations` seeded shuffles of `values`, one per row, in arrays of at most PERMUTATION_CHUNK values."""
    rng = np.random.default_rng(seed)
    chunk = max(1, min(permutations, PERMUTATION_CHUNK // len(values)))
    for start in range(0, permutations, chunk):
        yield rng.permuted(np.tile(values, (min(chunk, permutations - start), 1)), axis=1)


def permutation_p_value(groups: list[Group], permutations: int = PERMUTATIONS, seed: int = 0) -> float:
    """How often shuffling the runs between the groups gives a spread of group means (max - min) at least
    as large as the observed one."""
    values = np.concatenate([np.asarray(g.values, dtype=float) for g in groups])
    labels = np.repeat(np.arange(len(groups)), [g.n for g in groups])
    sizes = np.array([g.n for g in groups], dtype=float)

    def spread_of_means(label_rows):
        rows = len(label_rows)  # one bincount for all rows: row r's group k lands in bin r * groups + k
        bins = (np.arange(rows)[:, None] * len(groups) + label_rows).ravel()
        means = np.bincount(bins, np.tile(values, rows), rows * len(groups)).reshape(rows, -1) / sizes
        return means.max(-1) - means.min(-1)

    observed = spread_of_means(labels[None])[0]
    at_least = sum(int((spread_of_means(shuffled) >= observed - 1e-12).sum())
                   for shuffled in permuted_rows(labels, permutations, seed))
    return (at_least + 1) / (permutations + 1)


def difference_floor(images: int | None) -> float:
    """The smallest accuracy difference a claim may rest on: one image of `images`, else the default."""
    return 1 / images if images else DEFAULT_DIFFERENCE_FLOOR


def pooled_std(groups: list[Group]) -> float:
    """The within-group standard deviation, pooled over the groups (weights n - 1)."""
    degrees = sum(g.n - 1 for g in groups)
    return math.sqrt(sum((g.n - 1) * g.std ** 2 for g in groups) / degrees) if degrees > 0 else math.nan


def describe_groups(compared: list[Group], left_out: list[Group] | None = None, why: str = "") -> str:
    """'a: 60.1% ± 1.2 pp (n=4); b: ... . Left out (fewer than 3 finished runs): c: 90.0% (n=1).'"""
    text = "; ".join(g.describe() for g in compared) + "."
    if left_out:
        text += (f" Left out (fewer than {MIN_RUNS_PER_GROUP} finished runs{why}): "
                 + "; ".join(g.describe() for g in left_out) + ".")
    return text


def too_few_runs(subject: str, groups: list[Group]) -> Finding:
    counts = ", ".join(f"{g.label} n={g.n}" for g in groups)
    return Finding(subject, False, f"The runs do not support a conclusion about {subject}: too few runs ({counts}; "
                   f"a comparison needs >= {MIN_RUNS_PER_GROUP} finished runs for at least two values).",
                   "too few runs", groups)


def compare(groups: dict[str, list[float]], subject: str, notes: dict[str, str] | None = None,
            images: int | None = None) -> Finding:
    """Does `subject` change accuracy? `groups` maps each value to its runs' accuracies; values with at least
    MIN_RUNS_PER_GROUP runs are compared, highest mean against lowest. A claim needs Cohen's d >= MIN_COHENS_D,
    permutation p <= MAX_P_VALUE and a difference >= `difference_floor(images)`. Non-finite accuracies are
    left out and counted; `notes` adds remarks. (Question 3 uses the joint model of `shared.effects`.)"""
    notes = notes or {}
    all_groups = []
    for label, values in groups.items():
        values = [float(v) for v in values]
        finite = [v for v in values if math.isfinite(v)]
        dropped = f"+{len(values) - len(finite)} not finite, left out" if len(finite) < len(values) else ""
        all_groups.append(Group(str(label), finite, ", ".join(filter(None, (notes.get(label, ""), dropped)))))
    enough = sorted((g for g in all_groups if g.n >= MIN_RUNS_PER_GROUP), key=lambda g: g.mean, reverse=True)
    if len(enough) < 2:
        return too_few_runs(subject, all_groups)
    top, bottom = enough[0], enough[-1]
    difference, spread = top.mean - bottom.mean, pooled_std(enough)
    d = difference / spread if spread > 0 else math.nan
    p, floor = permutation_p_value(enough), difference_floor(images)
    measured = f"d = {d:.2f}, permutation p = {p:.3f}"
    listed = describe_groups(enough, [g for g in all_groups if g.n < MIN_RUNS_PER_GROUP])
    if not math.isfinite(d):
        reason, why = "no spread", ("the runs of each value have no spread, so noise cannot be measured (identical "
                                    "runs are one measurement, not several)")
    elif d < MIN_COHENS_D:
        reason, why = "spreads overlap", (f"spreads overlap. The best and worst values differ by {pp(difference)}, "
                                          f"less than {MIN_COHENS_D:g}x the pooled spread of {100 * spread:.1f} pp "
                                          f"({measured})")
    elif p > MAX_P_VALUE:
        reason, why = "could be chance", (f"{top.label} leads {bottom.label} by {pp(difference)}, but a difference "
                                          f"this large arises by chance too often ({measured} > {MAX_P_VALUE})")
    elif difference < floor:
        unknown = "" if images else " in 1,000; the image count is unknown"
        reason, why = "below the floor", (f"the best and worst values differ by {pp(difference)}, less than the "
                                          f"{pp(floor)} a difference must reach to matter (one validation "
                                          f"image{unknown})")
    else:
        reason = None
    text = (f"The runs do not support a conclusion about {subject}: {why}" if reason else
            f"{subject}: {top.label} beats {bottom.label} by {pp(difference)} of validation accuracy ({measured})")
    return Finding(subject, reason is None, f"{text}. {listed}", reason, all_groups, difference, d, p)


def aligned(first: list, second: list) -> bool:
    """True when two varied columns pair their values one to one across the runs (e.g. every augment=True
    run has batch_norm=False and vice versa): their effects cannot be told apart."""
    pairs = set(zip(map(str, first), map(str, second)))
    a_values, b_values = {a for a, _ in pairs}, {b for _, b in pairs}
    return len(a_values) > 1 and len(pairs) == len(a_values) == len(b_values)


def confounded_pairs(columns: dict[str, list]) -> list[tuple[str, str]]:
    """Every pair of columns (same runs, same order) whose values are perfectly aligned."""
    names = list(columns)
    return [(a, b) for i, a in enumerate(names) for b in names[i + 1:] if aligned(columns[a], columns[b])]


def accuracy_gap(first: float, second: float, first_images: int, second_images: int) -> tuple[float, float]:
    """(first - second, the 95% noise bound on that difference) for accuracies on independent image sets
    (for two models on the *same* images the bound is conservative: their errors are correlated)."""
    variance = first * (1 - first) / max(first_images, 1) + second * (1 - second) / max(second_images, 1)
    return first - second, Z_95 * math.sqrt(variance)


def unusable_accuracies(**accuracies: float | None) -> str:
    """'test accuracy is missing (not a number); ...' for each accuracy that cannot enter a statement; '' if none."""
    def problem(value):
        if value is None or math.isnan(value):
            return "is missing (not a number)"
        return "is infinite" if math.isinf(value) else ("is outside 0-100%" if not 0 <= value <= 1 else "")
    return "; ".join(f"{name.replace('_', ' ')} {problem(v)}" for name, v in accuracies.items() if problem(v))


def test_vs_validation(test_acc: float, val_acc: float, test_images: int, val_images: int | None = None) -> Finding:
    """Part-A/03: which number to report, and what the validation-test gap means. Validation accuracy chose
    the epoch and the config, so it is biased upwards; the test set, used once, is the unbiased estimate."""
    missing = unusable_accuracies(test_accuracy=test_acc, validation_accuracy=val_acc)
    if missing or test_images <= 0:
        return Finding("test vs validation", False, "No comparison of test and validation accuracy: "
                       + (missing or "no test images were evaluated") + ".", "not finite")
    low, high = binomial_interval(test_acc, test_images)
    half = (high - low) / 2
    report = (f"Report the TEST accuracy, {test_acc:.2%} (95% interval {low:.1%} to {high:.1%}, ±{100 * half:.1f} pp "
              f"from {test_images:,} test images): validation accuracy ({val_acc:.2%}) chose the epoch and the "
              f"config, so it can be optimistic; the test set was used once.")
    gap, noise = accuracy_gap(val_acc, test_acc, val_images or test_images, test_images)
    assumed = "" if val_images else " (assuming a validation set of the same size)"
    if abs(gap) <= noise:
        return Finding("test vs validation", False,
                       f"{report} The validation-test gap, {pp(gap)}, is within the ±{100 * noise:.1f} pp that two "
                       f"image samples of these sizes differ by chance{assumed}: no sign that selection on validation "
                       f"inflated it.", "within noise", difference=gap)
    direction = "above" if gap > 0 else "below"
    meaning = ("selecting the epoch and the config on validation accuracy inflated it (or the test images differ "
               "from the training folder's)" if gap > 0 else
               "the test images were easier than the validation images, or the retrained model got lucky")
    return Finding("test vs validation", True,
                   f"{report} Validation accuracy lies {100 * abs(gap):.1f} pp {direction} test, beyond the "
                   f"±{100 * noise:.1f} pp chance difference{assumed}: {meaning}.", difference=gap)


def _accuracy_ranking(subject: str, name: str, accuracy: float, best_name: str, best_accuracy: float,
                      images: int | None, split: str) -> Finding:
    """`name` against the best one on the same `images`: a ranking only when the gap is beyond chance."""
    gap = accuracy - best_accuracy
    if not images:
        return Finding(subject, False, f"{name}: {split} accuracy {accuracy:.2%} vs {best_name}'s {best_accuracy:.2%} "
                       f"({pp(gap)}); the number of {split} images is unknown, so no ranking.", "no image count",
                       difference=gap)
    gap, noise = accuracy_gap(accuracy, best_accuracy, images, images)
    beyond = abs(gap) > noise
    verdict = (f"beyond the ±{100 * noise:.1f} pp chance difference on {images:,} {split} images" if beyond else
               f"within the ±{100 * noise:.1f} pp chance difference on {images:,} {split} images: no ranking")
    return Finding(subject, beyond, f"{name}: {split} accuracy {accuracy:.2%} vs {best_name}'s {best_accuracy:.2%}, "
                   f"{pp(gap)}, {verdict}.", None if beyond else "within noise", difference=gap)


def strategy_comparison(rows: dict[str, dict], reference: str = "full", val_images: int | None = None) -> list[Finding]:
    """Part-B/01: every fine-tuning strategy's cost against `reference`, and its accuracy against the best. `rows`
    maps a strategy to val_acc, epoch_seconds (head: its whole run), train_seconds, trainable_params, total_params."""
    base = rows[reference]
    findings = []
    for label, row in rows.items():
        if label == reference:
            continue
        unit = "its whole run (features once, then the head)" if label.startswith("head") else "its epoch time"
        share = row["trainable_params"] / row["total_params"]
        epoch, train, params = (ratio(row[k] / base[k]) for k in ("epoch_seconds", "train_seconds", "trainable_params"))
        findings.append(Finding(f"{label} cost", True,
                                f"{label}: {unit} is {epoch} {reference}'s epoch time ({row['epoch_seconds']:.1f} s vs "
                                f"{base['epoch_seconds']:.1f} s); total training time {train} {reference}'s; trains "
                                f"{share:.2%} of the weights ({row['trainable_params']:,} parameters, {params} "
                                f"{reference}'s)."))
    best = max(rows, key=lambda label: rows[label]["val_acc"])
    findings += [_accuracy_ranking(f"{label} accuracy", label, row["val_acc"], best, rows[best]["val_acc"],
                                   val_images, "validation")
                 for label, row in rows.items() if label != best]
    return findings


def overfitting(history: list[dict], name: str = "the model") -> Finding:
    """Overfitting: at the last epoch train accuracy exceeds validation accuracy by >= OVERFIT_GAP AND the validation
    loss has risen >= OVERFIT_LOSS_RISE above its minimum while the training loss kept falling. (Train accuracy
    is measured with augmentation and dropout on, so it understates the fit.)"""
    needed = ("train_acc", "val_acc", "train_loss", "val_loss")
    rows = [row for row in history or [] if "epoch" in row and all(row.get(k) is not None for k in needed)]
    if len(rows) < MIN_EPOCHS_FOR_CURVES:  # none at all: the head strategy's Linear steps, a run's summary only
        have = f"only {len(rows)} epoch(s) of" if rows else "no per-epoch"
        return Finding(f"{name} overfitting", False,
                       f"The curves do not support a conclusion about overfitting of {name}: it has {have} train "
                       f"and validation curves (a conclusion needs >= {MIN_EPOCHS_FOR_CURVES} epochs).",
                       "too few epochs")
    last = rows[-1]
    lowest = min(range(len(rows)), key=lambda i: rows[i]["val_loss"])
    gap = last["train_acc"] - last["val_acc"]
    rise = last["val_loss"] / rows[lowest]["val_loss"] - 1 if rows[lowest]["val_loss"] > 0 else 0.0
    train_still_falls = last["train_loss"] < rows[lowest]["train_loss"]
    if lowest == len(rows) - 1:
        loss_facts = "validation loss lowest in the last epoch"
    else:
        loss_facts = (f"validation loss lowest at epoch {rows[lowest]['epoch']}, last epoch {100 * rise:+.0f}% above "
                      f"it; training loss {'still falling' if train_still_falls else 'not falling'} since then")
    facts = (f"after {len(rows)} epochs train accuracy {last['train_acc']:.1%} vs validation {last['val_acc']:.1%} "
             f"({pp(gap)}); {loss_facts}")
    if gap >= OVERFIT_GAP and rise >= OVERFIT_LOSS_RISE and train_still_falls:
        return Finding(f"{name} overfitting", True, f"{name} overfits: {facts}.")
    if gap < OVERFIT_GAP and rise < OVERFIT_LOSS_RISE:
        return Finding(f"{name} overfitting", True, f"{name} shows no sign of overfitting: {facts}.")
    return Finding(f"{name} overfitting", False, f"The curves of {name} give mixed signals about overfitting "
                   f"(thresholds: gap >= {pp(OVERFIT_GAP)}, loss rise >= {OVERFIT_LOSS_RISE:.0%}): {facts}.",
                   "mixed signals")


def scratch_vs_finetuned(scratch: dict, tuned: dict, test_images: int) -> list[Finding]:
    """Part-B/02: test-accuracy gap, trainable parameters, time to best, overfitting. `scratch`: name, test_acc,
    params, seconds_to_best, history (from Part-A/03). `tuned`: the same, with trainable and total params."""
    scratch_name = f"the scratch CNN ({scratch['name']})" if scratch.get("name") else "the scratch CNN"
    tuned_name = "the fine-tuned model"
    trainable, total = tuned["trainable_params"], tuned["total_params"]
    findings = [_accuracy_ranking("accuracy", tuned_name, tuned["test_acc"], scratch_name, scratch["test_acc"],
                                  test_images, "test"),
                Finding("trainable parameters", True,
                        f"{tuned_name} trains {trainable:,} parameters, {ratio(trainable / scratch['params'])} "
                        f"{scratch_name}'s {scratch['params']:,}, out of {total:,} in total ({trainable / total:.2%} "
                        f"trainable).")]
    if scratch.get("seconds_to_best") and tuned.get("seconds_to_best") is not None:
        tuned_seconds, scratch_seconds = tuned["seconds_to_best"], scratch["seconds_to_best"]
        findings.append(Finding("time to best", True,
                                f"{tuned_name} reached its best validation accuracy in {tuned_seconds:.1f} s, "
                                f"{ratio(tuned_seconds / scratch_seconds)} the {scratch_seconds:.1f} s of "
                                f"{scratch_name} (one run each; the sweep that found the scratch config is not "
                                f"counted)."))
    else:
        findings.append(Finding("time to best", False,
                                f"No time comparison: {scratch_name} has no per-epoch times recorded.", "no timing"))
    findings += [overfitting(scratch.get("history"), scratch_name), overfitting(tuned.get("history"), tuned_name)]
    return findings
