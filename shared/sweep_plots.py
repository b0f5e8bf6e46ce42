"""Question 2's sweep plots and Question 3's observations, from the runs table of `shared.runs_frame` alone.

Introduced in Part-A/02; 20,000 runs take seconds. Finished, stopped-early and failed runs are drawn apart and
never averaged together. matplotlib and sklearn load only when a plot is drawn.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from . import effects, evidence
from .runs_frame import (LOG_SCALE, MISSING, SWEEP_KEYS, constant_keys, format_value, group_labels,
                         is_continuous, natural_order, on_model_scale, runs_table, state_masks, varied_keys)

FEW_RUNS_FOR_IMPORTANCE = 20  # below this many finished runs a random forest's importances mostly reflect noise
IMPORTANCE_SAMPLE = 2_000  # runs each tree of the forest is fitted on (a bootstrap sample of at most this many)
# Colour-blind safe: finished runs carry the accuracy colour map; the others differ in line style and marker too.
STATE_STYLE = {
    "finished": dict(ls="-"),  # its colour is its accuracy
    "stopped": dict(label="stopped early (fewer epochs)", ls=":", marker="v", color="#7f7f7f"),
    "failed": dict(label="failed (no accuracy)", ls="--", marker="X", color="#d55e00"),
}
LABEL_BOX = dict(boxstyle="round,pad=0.15", fc="white", ec="#cccccc", lw=0.5)
LABEL_GAP = 0.42  # right of each axis, in axis spacings: no run line is drawn there, so its value labels sit clear


# Question 3: what the runs support, what they show, what the literature expects
def runs_summary(df: pd.DataFrame) -> str:
    """How many runs finished, stopped early or failed, and which of them the observations compare."""
    counts = {state: int(mask.sum()) for state, mask in state_masks(df).items()}
    return (f"{len(df)} runs: {counts['finished']} finished, {counts['stopped']} stopped early by the sweep, "
            f"{counts['failed']} failed. Observations compare the {counts['finished']} finished runs: a stopped run's "
            f"accuracy comes from fewer epochs, so averaging it in would mix the parameter's effect with the "
            f"budget's (they are counted per value instead).")


def _left_out_note(labels: pd.Series, masks: dict, label: str, duplicates: pd.Series) -> str:
    """'+2 stopped early, 1 failed, not averaged' for the runs of one value that are not compared."""
    mine = labels == label
    parts = [f"{int((mask & mine).sum())} {word}"
             for mask, word in ((masks["stopped"], "stopped early"), (masks["failed"], "failed"),
                                (duplicates, "identical duplicate"))
             if (mask & mine).any()]
    return f"+{', '.join(parts)}, not averaged" if parts else ""


def observations(runs_or_df, keys: list[str] | None = None, val_images: int | None = None,
                 permutations: int = effects.PERMUTATIONS) -> list[evidence.Finding]:
    """Question 3: does each swept parameter change validation accuracy, the others held fixed (`shared.effects`)?
    Only finished runs enter, each identical duplicate once; stopped-early and failed runs are counted per value.
    A claim needs a difference of at least `evidence.difference_floor(val_images)`. Claims come first, the largest
    first, then the refusals and a note on any duplicates."""
    df = runs_or_df if isinstance(runs_or_df, pd.DataFrame) else runs_table(runs_or_df)
    if not len(df):
        return [evidence.Finding("observations", False, "No observations: the table has no runs.",
                                 "nothing to compare")]
    masks = state_masks(df)
    # A finished run that repeats an earlier one's config AND accuracy exactly (two agents drew the same config:
    # training is deterministic) is one measurement, not two.
    config_and_accuracy = [k for k in SWEEP_KEYS if k in df] + ["val_acc"]
    duplicates = df.loc[masks["finished"], config_and_accuracy].astype(str).duplicated()
    duplicates = duplicates.reindex(df.index, fill_value=False)
    compared = masks["finished"] & ~duplicates
    finished = df[compared]
    keys = keys or varied_keys(finished)
    if not keys:
        why = (f"none of the {len(df)} runs finished" if not len(finished)
               else f"the {len(finished)} finished run(s) share one config, so no parameter varied")
        return [evidence.Finding("observations", False, f"No observations: {why}.", "nothing to compare")]
    labels = {k: group_labels(df[k], k, reference=finished[k]) for k in keys}
    terms, ends = {}, {}
    for k in keys:
        finished_labels = labels[k][compared].tolist()
        if is_continuous(finished[k]):
            terms[k] = effects.continuous_term(k, finished_labels, on_model_scale(finished[k], k))
            ends[k] = (format_value(float(finished[k].min()), k), format_value(float(finished[k].max()), k))
        else:
            terms[k] = effects.categorical_term(k, finished_labels)
    notes = {k: {label: _left_out_note(labels[k], masks, label, duplicates) for label in set(labels[k])} for k in keys}
    found = effects.joint_observations(finished["val_acc"].to_numpy(float), terms, notes, ends,
                                       evidence.difference_floor(val_images), permutations)
    findings = [found[k] for k in keys]
    claims = sorted((f for f in findings if f.supported), key=lambda f: -abs(f.difference))
    if duplicates.any():
        names = ", ".join(map(str, df.loc[duplicates, "name"].head(5))) + (", ..." if duplicates.sum() > 5 else "")
        findings.append(evidence.Finding("duplicate runs", False, f"{int(duplicates.sum())} finished run(s) ({names}) "
                                         f"repeat an earlier run's config and accuracy exactly (e.g. two agents drew "
                                         f"the same config): each is counted once, not as independent evidence.",
                                         "duplicates"))
    return claims + [f for f in findings if not f.supported]


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


def seen_in_runs(runs_or_df, findings: list[evidence.Finding] | None = None) -> list[str]:
    """Descriptions of what the plots show, marked "seen in these runs", never conclusions: the best and worst
    runs, each varied parameter's raw means per value, then the question's own examples as far as these runs
    go. `findings` (from `observations`) adds whether the evidence supports each."""
    df = runs_or_df if isinstance(runs_or_df, pd.DataFrame) else runs_table(runs_or_df)
    if not len(df):
        return []
    masks = state_masks(df)
    finished = df[masks["finished"]]
    lines = _extremes(df, masks)
    verdicts = {f.subject: " Evidence: " + ("supported (see below)." if f.supported else f"not supported ({f.reason}).")
                for f in findings or []}
    described, by_key = {}, {}
    for key in varied_keys(finished):
        labels = group_labels(finished[key], key)
        by_key[key] = [evidence.Group(label, finished.loc[labels == label, "val_acc"].tolist(),
                                      ", ".join(finished.loc[labels == label, "name"].astype(str))
                                      if (labels == label).sum() <= 3 else "")
                       for label in sorted(set(labels) - {MISSING}, key=natural_order)]
        described[key] = _seen(key, by_key[key], finished[key], finished["val_acc"])
        lines.append(f"{key}, seen in these runs: {described[key]}{verdicts.get(key, '')}")
    early = "More filters early (halving: widest layer first) or late (doubling: widest layer last)?"
    pair = [g for value in ("halving", "doubling") for g in by_key.get("organisation", []) if g.label == value]
    if len(pair) == 2:  # the question's own pair, before the parameter's whole description
        first, second = sorted(pair, key=lambda g: -g.mean)
        early += (f" {first.label} {first.mean:.1%} ({_count(first)}) vs {second.label} {second.mean:.1%} "
                  f"({_count(second)}): {first.label} higher by {evidence.pp(first.mean - second.mean)}.")
    bigger_early = ("Bigger filters early, smaller later? This sweep sets one kernel size for all five layers, so it "
                    "does not test that shape; kernel size in every layer:")
    for key, question in (("organisation", early), ("kernel_size", bigger_early)):
        if key in described:
            lines.append(f"{question} Seen in these runs: {described[key]}{verdicts.get(key, '')}")
        else:
            shared = ", ".join(sorted(map(str, finished[key].dropna().unique()))) if key in finished else ""
            lines.append(f"{question} These runs cannot say: " + (f"{key} was not varied among the finished runs "
                         f"({shared})." if shared else f"{key} is not in the finished runs' configs."))
    return lines


def _count(group: evidence.Group) -> str:
    return f"{group.n} run{'s' * (group.n > 1)}"


def _seen(key: str, groups: list[evidence.Group], column: pd.Series, accuracy: pd.Series) -> str:
    """'mean validation accuracy True 62.1% (4 runs), False 48.3% (3 runs: r01, r02, r05): True highest, ...'."""
    listed = ", ".join(f"{g.label} {g.mean:.1%} ({_count(g)}{': ' + g.note if g.note else ''})" for g in groups)
    if len(groups) < 2:
        return f"only one value has finished runs: {listed}; nothing to compare."
    top, bottom = max(groups, key=lambda g: g.mean), min(groups, key=lambda g: g.mean)
    gap, spread = top.mean - bottom.mean, evidence.pooled_std(groups)
    text = f"mean validation accuracy {listed}: {top.label} highest, {evidence.pp(gap)} above {bottom.label}"
    text += (f", {gap / spread:.1f}x the {100 * spread:.1f} pp spread within a value" if spread > 0 else
             ", with no spread within a value to compare it to")
    every = "every" if min(top.values) > max(bottom.values) else "not every"
    text += f"; {every} {top.label} run beat every {bottom.label} run"
    if pd.api.types.is_numeric_dtype(column) and column.nunique() > 1:  # as the importance panel's correlation
        values = on_model_scale(column, key)
        known = values.notna()
        r = np.corrcoef(values[known], accuracy[known])[0, 1] if accuracy[known].nunique() > 1 else math.nan
        if math.isfinite(r):
            text += f"; correlation with val_acc {r:+.2f}{' (log10 lr)' if key in LOG_SCALE else ''}"
    few = min(g.n for g in groups) < evidence.MIN_RUNS_PER_GROUP
    return text + "." + (" Few runs: a description of these runs only." if few else "")


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


# Question 2: the three plots
def plot_val_acc_over_time(df: pd.DataFrame, ax=None):
    """Validation accuracy of each run against its creation time, with the running best of finished runs:
    finished runs coloured by accuracy, stopped-early runs as grey triangles, failed runs as crosses below."""
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(8.5, 4.2))[1]
    masks = state_masks(df)
    finished, stopped, failed = (df[masks[state]] for state in ("finished", "stopped", "failed"))
    known = df.loc[masks["finished"] | masks["stopped"], "val_acc"]
    low, high = (known.min(), known.max()) if len(known) else (0.0, 1.0)
    margin = max(0.02, 0.08 * (high - low))
    floor = low - 2 * margin  # where failed runs sit: below every accuracy, inside the axes
    if len(finished):
        points = ax.scatter(finished["created"], finished["val_acc"], c=finished["val_acc"], cmap="viridis",
                            edgecolor="k", s=45, zorder=3, label=f"finished ({len(finished)})")
        ax.figure.colorbar(points, ax=ax, label="validation accuracy (finished runs)", pad=0.01)
        ax.step(finished["created"], finished["val_acc"].cummax(), where="post", color="#0072b2", lw=1.5,
                label="best finished so far")
    if len(stopped):
        style = STATE_STYLE["stopped"]
        ax.scatter(stopped["created"], stopped["val_acc"], marker=style["marker"], facecolor="none",
                   edgecolor=style["color"], s=45, zorder=3, label=f"{style['label']} ({len(stopped)})")
    if len(failed):
        style = STATE_STYLE["failed"]
        ax.scatter(failed["created"], [floor] * len(failed), marker=style["marker"], color=style["color"], s=55,
                   zorder=3, label=f"{style['label']} ({len(failed)}), drawn below")
        ax.axhline(floor + margin, color="#bbbbbb", lw=0.8)
    ax.set_ylim(floor - margin if len(failed) else low - margin, high + margin)
    created = df["created"].dropna()
    span = created.max() - created.min() if len(created) else pd.Timedelta(0)
    one_day = len(created) and created.min().date() == created.max().date()
    # One format for every tick, and the date in the axis label instead of an offset label that crowds it.
    ax.xaxis.set_major_locator(mdates.AutoDateLocator(minticks=3, maxticks=7))
    ax.xaxis.set_major_formatter(mdates.DateFormatter(("%H:%M:%S" if span < pd.Timedelta(minutes=10) else "%H:%M")
                                                      if one_day else "%m-%d %H:%M", tz="UTC"))
    ax.set(xlabel=f"run created (UTC{', ' + str(created.min().date()) if one_day else ''})",
           ylabel="validation accuracy", title=f"Validation accuracy vs. creation time: {len(df)} runs")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2, fontsize=8, frameon=False)  # hides no run
    ax.grid(alpha=0.3)
    return ax.figure


def _axis_values(column: pd.Series, key: str, seed: int = 0):
    """Map one column to [0, 1]; return (positions, tick positions, tick labels). Categorical and few-valued
    axes get a little seeded jitter, so that identical runs show as a band, not one line."""
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        values = on_model_scale(column, key)
        low, high = values.min(), values.max()
        span = (high - low) or 1.0
        positions = (values - low) / span
        distinct = sorted(values.dropna().unique())
        label = lambda v: format_value(10**v if key in LOG_SCALE else v, key)
        if is_continuous(column):  # three evenly spaced ticks
            ticks = list(np.linspace(0, 1, 3))
            return positions, ticks, [label(v) for v in low + np.array(ticks) * span]
        ticks, labels = [(v - low) / span for v in distinct], [label(v) for v in distinct]
    else:
        labels = sorted(column.astype(str).unique())
        step = 1 / max(1, len(labels) - 1)
        positions = column.astype(str).map({c: i for i, c in enumerate(labels)}) * step
        ticks = [i * step for i in range(len(labels))]
    jitter = min(0.03, (min(np.diff(ticks)) if len(ticks) > 1 else 1.0) / 5)
    positions = positions + np.random.default_rng(seed).uniform(-jitter, jitter, len(positions))
    return positions, ticks, labels


def plot_parallel_coordinates(df: pd.DataFrame):
    """One line per run across the varied hyperparameters, coloured by validation accuracy; constant ones are
    named under the title. Stopped-early runs are grey dotted lines; failed runs are dashed, ending on a 'failed'
    mark below the val_acc axis, which spans the colour bar's range. Value labels sit where no line is drawn."""
    import matplotlib.pyplot as plt
    from matplotlib import cm, colors
    from matplotlib.lines import Line2D

    keys, constants = varied_keys(df) + ["val_acc"], constant_keys(df)
    masks = state_masks(df)
    known = masks["finished"] | masks["stopped"]
    accuracy = df["val_acc"].where(known)
    norm = colors.Normalize(accuracy.min(), accuracy.max()) if known.any() else colors.Normalize(0, 1)
    columns = {k: _axis_values(accuracy if k == "val_acc" else df[k], k, seed=i) for i, k in enumerate(keys)}
    failed_position = -0.12  # below the accuracy axis: failed runs have no accuracy
    xs = np.arange(len(keys), dtype=float)
    fig, ax = plt.subplots(figsize=(max(9, 1.3 * xs[-1] + 3), 5.2))
    ys = np.column_stack([np.asarray(columns[k][0], dtype=float) for k in keys])
    ys[~known.to_numpy(), -1] = failed_position
    _draw_run_lines(ax, xs, ys, accuracy, masks, norm)
    for k, x in zip(keys, xs):  # each axis: a tick at each value, its label in the line-free gap right of it
        ax.axvline(x, color="k", lw=0.8, zorder=3)
        _, ticks, labels = columns[k]
        ax.plot([x] * len(ticks), ticks, "_", color="k", ms=8, mew=1.2, zorder=3)
        for t, label in zip(ticks, labels):
            ax.text(x + 0.03, t, label, ha="left", va="center", fontsize=8, color="#222222", zorder=5)
    if (~known).any():
        ax.text(xs[-1], failed_position, "failed", ha="center", va="center", fontsize=9, zorder=5,
                color=STATE_STYLE["failed"]["color"], bbox=LABEL_BOX)
    ax.set_xticks(xs, keys, rotation=30, ha="right")
    ax.set(yticks=[], xlim=(xs[0] - 0.2, xs[-1] + LABEL_GAP + 0.2),
           ylim=(failed_position - 0.06 if (~known).any() else -0.06, 1.06))
    ax.spines[["left", "right", "top"]].set_visible(False)
    fig.colorbar(cm.ScalarMappable(norm=norm, cmap="viridis"), ax=ax, pad=0.01,
                 label="validation accuracy (= the val_acc axis)")
    counts = {state: int(mask.sum()) for state, mask in masks.items()}
    # Grey, not a colour of the map: a finished run's colour is its val_acc, read on the colourbar.
    handles = [Line2D([], [], color="#555555", lw=1.8,
                      label=f"finished ({counts['finished']}; colour = val_acc, see colourbar)")]
    handles += [Line2D([], [], color=STATE_STYLE[state]["color"], ls=STATE_STYLE[state]["ls"], lw=1.3,
                       label=f"{STATE_STYLE[state]['label']} ({counts[state]})")
                for state in ("stopped", "failed") if counts[state]]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(0, -0.17), ncol=3, fontsize=8, frameon=False)
    constant_line = ("\nConstant in this sweep, not drawn: " + ", ".join(
        f"{k} = {format_value(df[k].dropna().iloc[0], k)}" for k in constants)) if constants else ""
    ax.set_title(f"Parallel coordinates: one line per run ({len(df)} runs; jittered within each value)"
                 + constant_line, fontsize=10)
    fig.tight_layout()
    return fig


def _draw_run_lines(ax, xs, ys: np.ndarray, accuracy: pd.Series, masks: dict, norm) -> None:
    """Each run as one segment per pair of neighbouring axes, leaving LABEL_GAP clear right of each axis;
    one collection per state (20,000 runs draw in seconds), the best finished runs drawn last, on top.
    Many runs get thinner, fainter lines so that density shows."""
    from matplotlib import cm
    from matplotlib.collections import LineCollection

    thin = len(ys) > 200
    for state, zorder in (("failed", 1), ("stopped", 1), ("finished", 2)):
        rows = np.flatnonzero(masks[state].to_numpy())
        if state == "finished":
            rows = rows[np.argsort(accuracy.to_numpy()[rows], kind="stable")]
        if not len(rows):
            continue
        starts = np.stack([np.broadcast_to(xs[:-1] + LABEL_GAP, ys[rows, :-1].shape), ys[rows, :-1]], -1)
        ends = np.stack([np.broadcast_to(xs[1:], ys[rows, 1:].shape), ys[rows, 1:]], -1)
        segments = np.stack([starts, ends], axis=2).reshape(-1, 2, 2)  # run by run, axis pair by axis pair
        style = STATE_STYLE[state]
        colour = (np.repeat(cm.viridis(norm(accuracy.to_numpy()[rows])), len(xs) - 1, axis=0)
                  if state == "finished" else style["color"])
        width = {"finished": 1.8, "stopped": 1.3, "failed": 1.0}[state] * (0.4 if thin else 1)
        ax.add_collection(LineCollection(segments, colors=colour, linestyles=style["ls"], linewidths=width,
                                         alpha=(0.3 if thin else 0.9), zorder=zorder, label=f"runs: {state}"))


def parameter_importance(df: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """W&B's parameter-importance panel, fitted on finished runs (their number in `table.attrs["runs"]`):
    random-forest importance (how much a parameter helps predict val_acc, any shape of effect) and the
    correlation with val_acc (its sign: whether larger values, or this category, go with higher accuracy).
    Features: numbers as they are (lr as log10), categories one-hot."""
    from sklearn.ensemble import RandomForestRegressor

    finished = df[state_masks(df)["finished"]]  # a NaN accuracy cannot be fitted: such runs are skipped
    parts = []
    for k in varied_keys(df):
        column = finished[k]
        if pd.api.types.is_bool_dtype(column) or column.dropna().isin([True, False]).all():
            parts.append(column.astype(float).rename(k))
        elif pd.api.types.is_numeric_dtype(column):
            parts.append(on_model_scale(column, k).rename(f"log10 {k}" if k in LOG_SCALE else k))
        else:
            parts.append(pd.get_dummies(column.astype(str), prefix=k, prefix_sep="=").astype(float))
    X = pd.concat(parts, axis=1) if parts else pd.DataFrame(index=finished.index)
    y = finished["val_acc"].astype(float)
    X = X.loc[:, X.nunique() > 1]
    if X.shape[1] == 0 or len(y) < 2:
        table = pd.DataFrame(columns=["importance", "correlation"])
    else:
        forest = RandomForestRegressor(n_estimators=300, random_state=seed,
                                       max_samples=min(len(y), IMPORTANCE_SAMPLE)).fit(X.values, y.values)
        correlation = [np.corrcoef(X[c], y)[0, 1] if y.nunique() > 1 else math.nan for c in X]
        table = (pd.DataFrame({"importance": forest.feature_importances_, "correlation": correlation}, index=X.columns)
                 .sort_values("importance", ascending=False))
    table.attrs["runs"] = len(y)
    return table


def plot_importance(table: pd.DataFrame, top: int = 15, runs: int | None = None):
    """Two aligned bar charts with their values written on: importance, and correlation with val_acc
    (blue positive, orange negative). The title says how many runs the forest was fitted on."""
    import matplotlib.pyplot as plt

    runs = runs if runs is not None else table.attrs.get("runs")
    shown = table.head(top).iloc[::-1]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 0.38 * len(shown) + 1.9), sharey=True)
    bars = left.barh(shown.index, shown["importance"], color="#0072b2")
    left.bar_label(bars, labels=[f"{v:.3f}" for v in shown["importance"]], fontsize=8, padding=2)
    left.set(xlabel="importance (random forest, sums to 1)", xlim=(0, max(0.05, shown["importance"].max() * 1.2)),
             title="Parameter importance for val_acc")
    correlation = shown["correlation"].fillna(0)
    bars = right.barh(shown.index, correlation, color=["#0072b2" if c > 0 else "#e69f00" for c in correlation])
    right.bar_label(bars, labels=[f"{c:+.2f}" for c in correlation], fontsize=8, padding=2)
    right.axvline(0, color="k", lw=0.8)
    right.set(xlabel="correlation with val_acc", xlim=(-1.2, 1.2), title="Correlation (blue +, orange -)")
    for ax in (left, right):
        ax.grid(axis="x", alpha=0.3)
    fitted = f"fitted on {runs} finished runs" if runs is not None else "fitted on the finished runs"
    caveat = (f": FEW RUNS (< {FEW_RUNS_FOR_IMPORTANCE}), the ranking is mostly noise"
              if runs is not None and runs < FEW_RUNS_FOR_IMPORTANCE else "")
    fig.suptitle(f"Parameter importance and correlation, {fitted}{caveat}", fontsize=11,
                 color="#b00000" if caveat else "black")
    fig.tight_layout()
    return fig


def mean_accuracy_by(df: pd.DataFrame, key: str) -> pd.DataFrame:
    """Mean/max validation accuracy and run count per value of one hyperparameter (finished runs)."""
    finished = df[state_masks(df)["finished"]]
    if key not in finished:
        return pd.DataFrame(columns=["mean_val_acc", "max_val_acc", "runs"])
    grouped = finished.groupby(finished[key].astype(str))["val_acc"]
    return grouped.agg(mean_val_acc="mean", max_val_acc="max", runs="size").sort_values("mean_val_acc", ascending=False)
