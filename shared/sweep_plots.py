"""The three sweep plots of Question 2, from the runs table alone.

Introduced in Part-A/02. The plots, `parameter_importance` and `mean_accuracy_by` read only the runs
table of `shared.runs_frame`, so a grader sees the same figures offline as online; they take 20,000 runs
in seconds. Finished, stopped-early and failed runs are drawn apart. `observations` reads the
same table for Question 3: it keeps the finished runs (each identical duplicate once; stopped-early and
failed runs counted per value, never averaged with finished ones), refuses perfectly aligned parameters
(each naming the other) and hands the rest to the joint model of `shared.effects`; its pieces are in
`shared.observations`.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from . import effects, evidence
from .observations import (duplicate_runs, duplicates_note, group_labels, is_continuous, left_out_note,
                           natural_order)
from .runs_frame import LOG_SCALE, MAX_GROUPS, constant_keys, format_value, runs_table, state_masks, varied_keys

# Below this many finished runs a random forest's importances mostly reflect noise: the plot says so.
FEW_RUNS_FOR_IMPORTANCE = 20
IMPORTANCE_SAMPLE = 2_000  # runs each tree of the forest is fitted on (a bootstrap sample of at most this many)
# How each run state is drawn. Colour-blind safe: finished runs carry the accuracy colour map;
# the others differ in line style and marker as well as colour.
STATE_STYLE = {
    "finished": dict(label="finished", ls="-", marker="o"),
    "stopped": dict(label="stopped early (fewer epochs)", ls=":", marker="v", color="#7f7f7f"),
    "failed": dict(label="failed (no accuracy)", ls="--", marker="X", color="#d55e00"),
}


def plot_val_acc_over_time(df: pd.DataFrame, ax=None):
    """Validation accuracy of each run against its creation time, with the running best of finished runs.

    Finished runs are coloured by accuracy (with a colourbar); stopped-early runs are grey triangles at the
    accuracy they reached in fewer epochs; failed runs are crosses on a strip below the axis.
    """
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt
    from matplotlib import colors

    ax = ax or plt.subplots(figsize=(8.5, 4.2))[1]
    masks = state_masks(df)
    finished, stopped, failed = (df[masks[state]] for state in ("finished", "stopped", "failed"))
    known = df.loc[masks["finished"] | masks["stopped"], "val_acc"]
    low, high = (known.min(), known.max()) if len(known) else (0.0, 1.0)
    margin = max(0.02, 0.08 * (high - low))
    floor = low - 2 * margin  # where failed runs sit: below every accuracy, inside the axes
    norm = colors.Normalize(finished["val_acc"].min(), finished["val_acc"].max()) if len(finished) else None
    if len(finished):
        points = ax.scatter(finished["created"], finished["val_acc"], c=finished["val_acc"], cmap="viridis",
                            norm=norm, edgecolor="k", s=45, zorder=3, label=f"finished ({len(finished)})")
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
    # One format for every tick (matplotlib's concise one mixed seconds, '30', with minutes, '17:08'), and the
    # date in the axis label instead of an offset label that crowds it.
    ax.xaxis.set_major_locator(mdates.AutoDateLocator(minticks=3, maxticks=7))
    ax.xaxis.set_major_formatter(mdates.DateFormatter(("%H:%M:%S" if span < pd.Timedelta(minutes=10) else "%H:%M")
                                                      if one_day else "%m-%d %H:%M", tz="UTC"))
    ax.set(xlabel=f"run created (UTC{', ' + str(created.min().date()) if one_day else ''})",
           ylabel="validation accuracy", title=f"Validation accuracy vs. creation time: {len(df)} runs")
    # Below the axes: a legend inside would hide runs.
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2, fontsize=8, frameon=False)
    ax.grid(alpha=0.3)
    return ax.figure


def _axis_values(column: pd.Series, key: str, seed: int = 0):
    """Map one column to [0, 1]; return (positions, tick positions, tick labels, jitter).

    Categorical axes, and numeric ones with few distinct values, get a little seeded vertical jitter
    so that identical runs show as a band of lines instead of one line.
    """
    numeric = pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)
    if numeric:
        values = column.astype(float)
        values = np.log10(values) if key in LOG_SCALE else values
        low, high = values.min(), values.max()
        span = (high - low) or 1.0
        positions = (values - low) / span
        distinct = sorted(values.dropna().unique())
        if len(distinct) > MAX_GROUPS:  # continuous: three evenly spaced ticks
            ticks = list(np.linspace(0, 1, 3))
            return positions, ticks, [format_value(10**v if key in LOG_SCALE else v, key)
                                      for v in low + np.array(ticks) * span], 0.0
        ticks = [(v - low) / span for v in distinct]
        labels = [format_value(10**v if key in LOG_SCALE else v, key) for v in distinct]
    else:
        labels = sorted(column.astype(str).unique())
        index = {c: i for i, c in enumerate(labels)}
        step = 1 / max(1, len(labels) - 1)
        positions = column.astype(str).map(index) * step
        ticks = [i * step for i in range(len(labels))]
    gap = min(np.diff(ticks)) if len(ticks) > 1 else 1.0
    jitter = min(0.03, gap / 5)
    positions = positions + np.random.default_rng(seed).uniform(-jitter, jitter, len(positions))
    return positions, ticks, labels, jitter


LABEL_BOX = dict(boxstyle="round,pad=0.15", fc="white", ec="#cccccc", lw=0.5)
LABEL_GAP = 0.42  # right of each axis, in axis spacings: no run line is drawn there, so its value labels sit clear


def _label_axes(ax, positions: dict[str, float], columns: dict) -> None:
    """Each parameter's vertical axis: a tick at each value and its label in the line-free gap right of it."""
    for k, x in positions.items():
        ax.axvline(x, color="k", lw=0.8, zorder=3)
        _, ticks, labels, _ = columns[k]
        ax.plot([x] * len(ticks), ticks, "_", color="k", ms=8, mew=1.2, zorder=3)
        for t, label in zip(ticks, labels):
            ax.text(x + 0.03, t, label, ha="left", va="center", fontsize=8, color="#222222", zorder=5)


def _state_handles(masks: dict) -> list:
    """Legend entries for the run states present, with their counts."""
    from matplotlib.lines import Line2D

    counts = {state: int(mask.sum()) for state, mask in masks.items()}
    # Grey, not a colour of the map: a finished run's colour is its val_acc, read on the colourbar.
    handles = [Line2D([], [], color="#555555", lw=1.8,
                      label=f"finished ({counts['finished']}; colour = val_acc, see colourbar)")]
    for state in ("stopped", "failed"):
        if counts[state]:
            style = STATE_STYLE[state]
            handles.append(Line2D([], [], color=style["color"], ls=style["ls"], lw=1.3,
                                  label=f"{style['label']} ({counts[state]})"))
    return handles


def plot_parallel_coordinates(df: pd.DataFrame, keys: list[str] | None = None):
    """One line per run across the varied hyperparameters, coloured by validation accuracy.

    Constant parameters get no axis: one line under the title names them with their value. Stopped-early
    runs are grey dotted lines at the accuracy they reached; failed runs are dashed and end on a 'failed'
    mark below the accuracy axis. Value labels sit in a gap right of each axis where no line is drawn. The
    val_acc axis and the colour bar span the same range (the finished and stopped runs' accuracies).
    """
    import matplotlib.pyplot as plt
    from matplotlib import cm, colors

    keys = (keys or varied_keys(df)) + ["val_acc"]
    constants = [k for k in constant_keys(df) if k not in keys]
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
    _label_axes(ax, dict(zip(keys, xs)), columns)
    if (~known).any():
        ax.text(xs[-1], failed_position, "failed", ha="center", va="center", fontsize=9, zorder=5,
                color=STATE_STYLE["failed"]["color"], bbox=LABEL_BOX)
    ax.set_xticks(xs, keys, rotation=30, ha="right")
    ax.set_yticks([])
    ax.set_xlim(xs[0] - 0.2, xs[-1] + LABEL_GAP + 0.2)
    ax.set_ylim(failed_position - 0.06 if (~known).any() else -0.06, 1.06)
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    fig.colorbar(cm.ScalarMappable(norm=norm, cmap="viridis"), ax=ax, pad=0.01,
                 label="validation accuracy (= the val_acc axis)")
    ax.legend(handles=_state_handles(masks), loc="upper left", bbox_to_anchor=(0, -0.17), ncol=3, fontsize=8,
              frameon=False)
    constant_line = ("\nConstant in this sweep, not drawn: " + ", ".join(
        f"{k} = {format_value(df[k].dropna().iloc[0], k)}" for k in constants)) if constants else ""
    ax.set_title(f"Parallel coordinates: one line per run ({len(df)} runs; jittered within each value)"
                 + constant_line, fontsize=10)
    fig.tight_layout()
    return fig


def _draw_run_lines(ax, xs, ys: np.ndarray, accuracy: pd.Series, masks: dict, norm) -> None:
    """Each run as one segment per pair of neighbouring axes, leaving LABEL_GAP clear right of each axis;
    one collection per state (20,000 runs draw in seconds); within finished runs the best are drawn last,
    on top. Many runs get thinner, fainter lines so that density shows."""
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


def feature_matrix(df: pd.DataFrame, keys: list[str] | None = None) -> pd.DataFrame:
    """Numeric features per finished run: numbers as they are (lr as log10), categories one-hot."""
    keys = keys or varied_keys(df)
    finished = df[state_masks(df)["finished"]]  # a NaN accuracy cannot be fitted: such runs are skipped
    parts = []
    for k in keys:
        column = finished[k]
        if pd.api.types.is_bool_dtype(column) or column.dropna().isin([True, False]).all():
            parts.append(column.astype(float).rename(k))
        elif pd.api.types.is_numeric_dtype(column):
            parts.append((np.log10(column.astype(float)) if k in LOG_SCALE else column.astype(float))
                         .rename(f"log10 {k}" if k in LOG_SCALE else k))
        else:
            parts.append(pd.get_dummies(column.astype(str), prefix=k, prefix_sep="=").astype(float))
    return pd.concat(parts, axis=1) if parts else pd.DataFrame(index=finished.index)


def parameter_importance(df: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """W&B's parameter-importance panel: random-forest importance and correlation with val_acc.

    Importance says how much a parameter helps predict val_acc (any shape of effect); the sign of
    the correlation says whether larger values (or this category) go with higher accuracy. Fitted on
    finished runs only; their number is in `table.attrs["runs"]`.
    """
    from sklearn.ensemble import RandomForestRegressor

    X = feature_matrix(df)
    y = df.loc[X.index, "val_acc"].astype(float)
    X = X.loc[:, X.nunique() > 1]
    if X.shape[1] == 0 or len(y) < 2:
        table = pd.DataFrame(columns=["importance", "correlation"])
    else:
        # Each tree sees at most IMPORTANCE_SAMPLE runs: the same importances within noise, in seconds at 20,000 runs.
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
    return (pd.DataFrame({"mean_val_acc": grouped.mean(), "max_val_acc": grouped.max(), "runs": grouped.size()})
            .sort_values("mean_val_acc", ascending=False))


def observations(runs_or_df, keys: list[str] | None = None, val_images: int | None = None,
                 permutations: int = effects.PERMUTATIONS) -> list[evidence.Finding]:
    """Question 3's observations: for every swept parameter, does its value change validation accuracy?

    All swept parameters are analysed in one model (`shared.effects`: a linear model, forward selection
    with Freedman-Lane permutation tests, claims by Benjamini-Hochberg), so each effect is measured with the
    others' effects removed. Only finished runs enter (stopped-early and failed runs are counted per
    value, not averaged), each identical duplicate once. Two parameters whose values are perfectly
    aligned across those runs cannot be separated: both are refused and each names the other. A claim
    also needs a difference of at least `evidence.difference_floor(val_images)`. Claims come first,
    the largest difference first; a last finding says when duplicates were counted once.
    """
    df = runs_or_df if isinstance(runs_or_df, pd.DataFrame) else runs_table(runs_or_df)
    masks = state_masks(df) if len(df) else {}
    duplicates = duplicate_runs(df, masks["finished"]) if len(df) else pd.Series(dtype=bool)
    compared = masks["finished"] & ~duplicates if len(df) else duplicates
    finished = df[compared]
    keys = keys or varied_keys(finished)
    if not keys:
        why = ("the table has no runs" if not len(df) else f"none of the {len(df)} runs finished" if not len(finished)
               else f"the {len(finished)} finished run(s) share one config, so no parameter varied")
        return [evidence.Finding("observations", False, f"No observations: {why}.", "nothing to compare")]
    labels = {k: group_labels(df[k], k, reference=finished[k]) for k in keys}
    finished_labels = {k: labels[k][compared].tolist() for k in keys}
    partners = {k: [] for k in keys}
    for a, b in evidence.confounded_pairs(finished_labels):
        partners[a].append(b), partners[b].append(a)
    terms, ends = {}, {}
    for k in keys:
        if is_continuous(finished[k]):
            values = finished[k].astype(float)
            terms[k] = effects.continuous_term(k, finished_labels[k], np.log10(values) if k in LOG_SCALE else values)
            ends[k] = (format_value(values.min(), k), format_value(values.max(), k))
        else:
            terms[k] = effects.categorical_term(k, finished_labels[k])
    notes = {k: {label: left_out_note(labels[k], masks, label, duplicates) for label in set(labels[k])} for k in keys}
    # With too few runs per value, "too few runs" is the reason to give, whatever else is aligned.
    aligned = {k for k in keys if partners[k] and terms[k].testable}
    accuracy = finished["val_acc"].to_numpy(float)
    found = effects.joint_observations(accuracy, terms, aligned, notes, ends, evidence.difference_floor(val_images),
                                       natural_order, permutations)
    for key in aligned:
        other = next((k for k in partners[key] if k in aligned), partners[key][0])
        groups = effects.raw_groups(terms[key], accuracy, notes[key], natural_order)
        alignment = evidence.describe_alignment(key, finished_labels[key], other, finished_labels[other])
        found[key] = evidence.Finding(key, False, f"The runs do not support a conclusion about {key} alone: it cannot "
                                      f"be separated from {other} ({alignment} in the finished runs), so any difference "
                                      f"belongs to either. " + "; ".join(g.describe() for g in groups) + ".",
                                      "confounded", groups)
    findings = [found[k] for k in keys]
    claims = sorted((f for f in findings if f.supported), key=lambda f: -abs(f.difference))
    return claims + [f for f in findings if not f.supported] + duplicates_note(df, duplicates)
