"""Question 3's observations: for every swept parameter, does its value change validation accuracy?

Introduced in Part-A/02. The pieces of `sweep_plots.observations` (defined there, beside the plots it
reads): each run's group per parameter, duplicates, what was left out of each group. `expectations` lists what the literature expects, separately from what was measured.
All of it takes 20,000 runs in seconds.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from . import effects, evidence
from .runs_frame import LOG_SCALE, MAX_GROUPS, SWEEP_KEYS, format_value, runs_table, state_masks, varied_keys


def group_labels(column: pd.Series, key: str, reference: pd.Series | None = None) -> pd.Series:
    """Each run's group for one parameter: its value as text or, for a continuous parameter (more than
    MAX_GROUPS distinct values in `reference`, e.g. lr), the half of the runs it falls in: split at
    the median of `reference` (default: the column itself)."""
    reference = column if reference is None else reference
    if not is_continuous(reference):
        return column.map(lambda v: format_value(v, key) if pd.notna(v) else effects.MISSING)
    median = float(reference.median())
    values = column.astype(float)
    return (values > median).map({False: f"<= {format_value(median, key)}", True: f"> {format_value(median, key)}"}
                                 ).where(values.notna(), effects.MISSING)


def runs_summary(df: pd.DataFrame) -> str:
    """How many runs finished, stopped early or failed, and which of them the observations compare."""
    counts = {state: int(mask.sum()) for state, mask in state_masks(df).items()}
    return (f"{len(df)} runs: {counts['finished']} finished, {counts['stopped']} stopped early by the sweep, "
            f"{counts['failed']} failed. Observations compare the {counts['finished']} finished runs: a stopped run's "
            f"accuracy comes from fewer epochs, so averaging it in would mix the parameter's effect with the "
            f"budget's (they are counted per value instead).")


def duplicate_runs(df: pd.DataFrame, finished: pd.Series) -> pd.Series:
    """Finished runs that repeat an earlier finished run's config AND accuracy exactly (e.g. two agents
    that drew the same config: training is deterministic). They are one measurement, not two."""
    keys = [k for k in SWEEP_KEYS if k in df] + ["val_acc"]
    repeated = df.loc[finished, keys].astype(str).duplicated()
    return repeated.reindex(df.index, fill_value=False)


def is_continuous(column: pd.Series) -> bool:
    """A number with more than MAX_GROUPS distinct values (lr): a line in the model, halves when printed."""
    return (pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)
            and column.nunique() > MAX_GROUPS)


def duplicates_note(df: pd.DataFrame, duplicates: pd.Series) -> list[evidence.Finding]:
    """A last finding naming the runs counted once, when there are any."""
    if not duplicates.any():
        return []
    names = ", ".join(map(str, df.loc[duplicates, "name"].head(5))) + (", ..." if duplicates.sum() > 5 else "")
    return [evidence.Finding("duplicate runs", False, f"{int(duplicates.sum())} finished run(s) ({names}) repeat an "
                             f"earlier run's config and accuracy exactly (e.g. two agents drew the same config): "
                             f"each is counted once, not as independent evidence.", "duplicates")]


def natural_order(label: str):
    """Numbers in numeric order (3 before 11), then text."""
    try:
        return (0, float(label.lstrip("<=> ")), label)
    except ValueError:
        return (1, 0.0, label)


def left_out_note(labels: pd.Series, masks: dict, label: str, duplicates: pd.Series) -> str:
    """'+2 stopped early, 1 failed, not averaged' for the runs of one value that are not compared."""
    mine = labels == label
    parts = [f"{int((mask & mine).sum())} {word}"
             for mask, word in ((masks["stopped"], "stopped early"), (masks["failed"], "failed"),
                                (duplicates, "identical duplicate"))
             if (mask & mine).any()]
    return f"+{', '.join(parts)}, not averaged" if parts else ""


# Expectations from the literature: a separate, labelled list, never mixed into the observations above.
EXPECTATIONS = {
    "batch_norm": ("BatchNorm lets a network train stably at higher learning rates and usually speeds up "
                   "convergence.", "Ioffe & Szegedy 2015, arXiv:1502.03167"),
    "augment": ("Augmentation fights overfitting: it tends to cost accuracy in very short runs and pay off "
                "in longer ones.", "Shorten & Khoshgoftaar 2019, J. Big Data 6:60"),
    "dropout": ("Dropout reduces overfitting of large dense layers; too much slows learning.",
                "Srivastava et al. 2014, JMLR 15"),
    "activation": ("Smooth activations (GELU, SiLU/Swish, Mish) often match or slightly beat ReLU; the "
                   "reported gains are small.", "Hendrycks & Gimpel 2016; Ramachandran et al. 2017; Misra 2019"),
    "lr": ("The learning rate is usually the most important single hyperparameter.",
           "Bengio 2012, arXiv:1206.5533"),
    "batch_size": ("A larger batch needs a proportionally larger learning rate to train as well.",
                   "Goyal et al. 2017, arXiv:1706.02677"),
    "weight_decay": ("With Adam, decoupled weight decay (AdamW) regularises as L2 does for SGD.",
                     "Loshchilov & Hutter 2019, arXiv:1711.05101"),
    "kernel_size": ("Stacks of 3x3 kernels cover the field of larger kernels with fewer parameters.",
                    "Simonyan & Zisserman 2015, arXiv:1409.1556"),
    "organisation": ("Doubling the filters each time the resolution halves keeps the cost per layer even "
                     "and puts capacity where features are abstract.", "Simonyan & Zisserman 2015, arXiv:1409.1556"),
    "base_filters": ("Wider layers (more filters) tend to raise accuracy until data or budget limit it.",
                     "Zagoruyko & Komodakis 2016, arXiv:1605.07146"),
}


def expectations(keys: list[str] | None = None) -> list[str]:
    """'Expected from the literature (not measured here)' lines for `keys` (default: all), with sources."""
    keys = [k for k in (keys or EXPECTATIONS) if k in EXPECTATIONS]
    return [f"Expected from the literature (not measured here) for {k}: {EXPECTATIONS[k][0]} ({EXPECTATIONS[k][1]})"
            for k in keys]


# What the plots show in these runs: descriptions, marked as such, never conclusions (those are `observations`).
def seen_in_runs(runs_or_df, findings: list[evidence.Finding] | None = None) -> list[str]:
    """Lines a student can hand in beside `observations`: the best and worst runs, then for each varied
    parameter the finished runs' raw means per value (direction, size in pp against the spread within a
    value, the runs behind it), then the question's own examples as far as these runs go. Each line says
    "seen in these runs"; `findings` (from `observations`) adds whether the evidence supports it."""
    df = runs_or_df if isinstance(runs_or_df, pd.DataFrame) else runs_table(runs_or_df)
    if not len(df):
        return []
    masks = state_masks(df)
    finished = df[masks["finished"]]
    lines = _extremes(df, masks)
    verdicts = {f.subject: "supported (see below)" if f.supported else f"not supported ({f.reason})"
                for f in findings or []}
    described, by_key = {}, {}
    for key in varied_keys(finished):
        labels = group_labels(finished[key], key)
        groups = [evidence.Group(label, finished.loc[labels == label, "val_acc"].tolist(),
                                 ", ".join(finished.loc[labels == label, "name"].astype(str)) if (labels == label).sum() <= 3
                                 else "") for label in sorted(set(labels) - {effects.MISSING}, key=natural_order)]
        described[key], by_key[key] = _seen(key, groups, finished[key], finished["val_acc"]), groups
        lines.append(f"{key}, seen in these runs: {described[key]}"
                     + (f" Evidence: {verdicts[key]}." if key in verdicts else ""))
    for key, question, values in (("organisation", "More filters early (halving: widest layer first) or late "
                                   "(doubling: widest layer last)?", ("halving", "doubling")),
                                  ("kernel_size", "Bigger filters early, smaller later? This sweep sets one kernel "
                                   "size for all five layers, so it does not test that shape; kernel size in every "
                                   "layer:", None)):
        pair = [g for value in values or () for g in by_key.get(key, []) if g.label == value and g.n]
        if len(pair) == 2:  # the question's own pair, before the parameter's whole description
            first, second = sorted(pair, key=lambda g: -g.mean)
            runs = lambda g: f"{g.n} run{'s' * (g.n > 1)}"
            question += (f" {first.label} {first.mean:.1%} ({runs(first)}) vs {second.label} {second.mean:.1%} "
                         f"({runs(second)}): {first.label} higher by {evidence.pp(first.mean - second.mean)}.")
        if key in described:
            lines.append(f"{question} Seen in these runs: {described[key]}"
                         + (f" Evidence: {verdicts[key]}." if key in verdicts else ""))
        else:
            shared = ", ".join(sorted(map(str, finished[key].dropna().unique()))) if key in finished else ""
            lines.append(f"{question} These runs cannot say: " + (f"{key} was not varied among the finished runs "
                         f"({shared})." if shared else f"{key} is not in the finished runs' configs."))
    return lines


def _seen(key: str, groups: list[evidence.Group], column: pd.Series, accuracy: pd.Series) -> str:
    """'True averaged 62.1% (4 runs), False 48.3% (3 runs: r01, r02, r05): True higher by +13.8 pp, ...'."""
    present = [g for g in groups if g.n]
    listed = ", ".join(f"{g.label} {g.mean:.1%} ({g.n} run{'s' * (g.n > 1)}{': ' + g.note if g.note else ''})"
                       for g in present)
    if len(present) < 2:
        return f"only one value has finished runs: {listed}; nothing to compare."
    top, bottom = max(present, key=lambda g: g.mean), min(present, key=lambda g: g.mean)
    gap, spread = top.mean - bottom.mean, evidence.pooled_std(present)
    text = f"mean validation accuracy {listed}: {top.label} highest, {evidence.pp(gap)} above {bottom.label}"
    text += (f", {gap / spread:.1f}x the {100 * spread:.1f} pp spread within a value" if spread > 0 else
             ", with no spread within a value to compare it to")
    text += ("; every " if min(top.values) > max(bottom.values) else "; not every ") + f"{top.label} run beat every {bottom.label} run"
    if pd.api.types.is_numeric_dtype(column) and column.nunique() > 1:  # as the importance panel's correlation column
        values = np.log10(column.astype(float)) if key in LOG_SCALE else column.astype(float)
        known = values.notna()
        r = np.corrcoef(values[known], accuracy[known])[0, 1] if accuracy[known].nunique() > 1 else math.nan
        if math.isfinite(r):
            text += f"; correlation with val_acc {r:+.2f}{' (log10 lr)' if key in LOG_SCALE else ''}"
    few = " Few runs: a description of these runs only." if min(g.n for g in present) < evidence.MIN_RUNS_PER_GROUP else ""
    return text + "." + few


def _extremes(df: pd.DataFrame, masks: dict) -> list[str]:
    """The best and worst finished runs, and the lowest accuracy of any run when a stopped run is below them."""
    finished, measured = df[masks["finished"]], df[masks["finished"] | masks["stopped"]]
    lines = []
    if len(finished):
        best, worst = finished.loc[finished["val_acc"].idxmax()], finished.loc[finished["val_acc"].idxmin()]
        lines.append(f"Best finished run: {best['name']}, {best['val_acc']:.2%}; worst finished run: {worst['name']}, "
                     f"{worst['val_acc']:.2%} ({len(finished)} finished).")
    if len(measured) and (not len(finished) or measured["val_acc"].min() < finished["val_acc"].min()):
        lowest = measured.loc[measured["val_acc"].idxmin()]
        epochs = (f" after {int(lowest['epochs_run'])} of {int(lowest['epochs_asked'])} epochs"
                  if pd.notna(lowest.get("epochs_run")) and pd.notna(lowest.get("epochs_asked")) else "")
        lines.append(f"Lowest accuracy of any run: {lowest['name']}, {lowest['val_acc']:.2%}, stopped early by the "
                     f"sweep{epochs} (fewer epochs, so not compared with finished runs).")
    if masks["failed"].any():
        lines.append(f"{int(masks['failed'].sum())} run(s) failed and have no accuracy.")
    return lines
