"""The three sweep plots of Question 2 and the observations of Question 3, from the runs table alone.

Introduced in Part-A/02. `runs_table` turns the records of `shared.sweep.run_sweep` (or
`load_runs`) into a DataFrame; the plots, `parameter_importance` and `observations` read only that
table, so a grader sees the same figures and sentences offline as online.

Run states: "finished" runs ran their whole budget (or stopped on their own patience); "stopped"
runs were ended early by the sweep's early termination (hyperband; W&B may call them "killed"), so
their accuracy comes from fewer epochs; "failed" runs (out of memory, diverged, crashed) have none.
The plots draw the three apart.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from . import evidence

# The knobs a sweep varies, in the order the parallel-coordinates plot shows them.
SWEEP_KEYS = ["base_filters", "organisation", "kernel_size", "activation", "batch_norm", "augment", "dropout",
              "dense_neurons", "lr", "batch_size", "weight_decay", "epochs", "input_size"]
LOG_SCALE = {"lr"}
# Below this many finished runs a random forest's importances mostly reflect noise: the plot says so.
FEW_RUNS_FOR_IMPORTANCE = 20
# A numeric parameter with more distinct values than this (lr) is split at its median for comparisons.
MAX_GROUPS = 4
# Run states whose accuracy comes from fewer epochs than asked (W&B reports a stopped run as killed).
STOPPED_STATES = {"stopped", "killed"}
# How each run state is drawn. Colour-blind safe: finished runs carry the accuracy colour map;
# the others differ in line style and marker as well as colour.
STATE_STYLE = {
    "finished": dict(label="finished", ls="-", marker="o"),
    "stopped": dict(label="stopped early (fewer epochs)", ls=":", marker="v", color="#7f7f7f"),
    "failed": dict(label="failed (no accuracy)", ls="--", marker="X", color="#d55e00"),
}


def runs_table(runs: list[dict]) -> pd.DataFrame:
    """One row per run: the sweep keys, val_acc, state, error, params, macs, created (sorted by time),
    seconds, epochs_run, epochs_asked, sweep_id. Keys missing from older records become None."""
    rows = []
    for r in runs:
        config = r.get("config", {})
        row = {k: config.get(k) for k in SWEEP_KEYS if k in config}
        epoch_seconds = r.get("epoch_seconds") or []
        row.update(name=r.get("name"), val_acc=r.get("val_acc"), state=r.get("state", "finished"),
                   error=r.get("error"), params=r.get("params"), macs=r.get("macs"),
                   created=pd.to_datetime(r.get("created"), utc=True) if r.get("created") else pd.NaT,
                   seconds=sum(epoch_seconds),
                   # Older records (and the W&B API) lack epochs_run: count the epochs they logged.
                   epochs_run=r.get("epochs_run") or len(r.get("history") or epoch_seconds) or None,
                   epochs_asked=r.get("epochs_asked", config.get("epochs")), sweep_id=r.get("sweep_id"))
        rows.append(row)
    df = pd.DataFrame(rows, columns=None if rows else ["name", "val_acc", "state", "error", "created"])
    if len(df):
        df = df.sort_values("created", kind="stable").reset_index(drop=True)
        df["val_acc"] = pd.to_numeric(df["val_acc"], errors="coerce")
    return df


def varied_keys(df: pd.DataFrame) -> list[str]:
    """Sweep keys that take more than one value in this table (the others cannot explain anything)."""
    return [k for k in SWEEP_KEYS if k in df and df[k].astype(str).nunique() > 1]


def constant_keys(df: pd.DataFrame) -> list[str]:
    """Sweep keys that every run shares: shown (marked constant) so a reader knows they were not varied."""
    return [k for k in SWEEP_KEYS if k in df and df[k].notna().any() and df[k].astype(str).nunique() == 1]


def state_masks(df: pd.DataFrame) -> dict[str, pd.Series]:
    """Boolean masks of finished (with an accuracy), stopped-early and failed runs (any other state)."""
    finished = (df["state"] == "finished") & df["val_acc"].notna()
    stopped = df["state"].isin(STOPPED_STATES) & df["val_acc"].notna()
    return {"finished": finished, "stopped": stopped, "failed": ~(finished | stopped)}


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
    ax.set(xlabel="run created (UTC)", ylabel="validation accuracy",
           title=f"Validation accuracy vs. creation time: {len(df)} runs")
    # Below the axes: a legend inside would hide runs.
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2, fontsize=8, frameon=False)
    ax.grid(alpha=0.3)
    locator = mdates.AutoDateLocator()  # ticks and labels that fit the sweep's span: minutes or days
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    return ax.figure


def _format_value(value, key: str) -> str:
    """Numbers short (lr in scientific notation, val_acc in %), everything else (bools, names) as it is."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        return str(value)
    if key == "val_acc":
        return f"{value:.1%}"
    return f"{value:.1e}" if key in LOG_SCALE else f"{value:.3g}"


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
            return positions, ticks, [_format_value(10**v if key in LOG_SCALE else v, key)
                                      for v in low + np.array(ticks) * span], 0.0
        ticks = [(v - low) / span for v in distinct]
        labels = [_format_value(10**v if key in LOG_SCALE else v, key) for v in distinct]
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


LABEL_BOX = dict(boxstyle="round,pad=0.15", fc="white", ec="#cccccc", lw=0.5)  # opaque: readable over lines


def _label_axes(ax, df: pd.DataFrame, positions: dict[str, float], constants: list[str], columns: dict) -> None:
    """Draw each parameter's vertical axis: its values just above their jitter band, or for a constant
    parameter one grey 'name = value' label along a dotted axis."""
    for k, x in positions.items():
        if k in constants:
            ax.axvline(x, color="#aaaaaa", lw=0.8, ls=":")
            ax.text(x, 0.5, f"{k} = {_format_value(df[k].dropna().iloc[0], k)}", rotation=90, ha="center",
                    va="center", fontsize=9, color="#555555", bbox=LABEL_BOX, zorder=5)
            continue
        ax.axvline(x, color="k", lw=0.8, zorder=0)
        _, ticks, labels, jitter = columns[k]
        for t, label in zip(ticks, labels):
            ax.text(x, t + jitter + 0.012, label, ha="center", va="bottom", fontsize=9, bbox=LABEL_BOX, zorder=5)


def _state_handles(masks: dict) -> list:
    """Legend entries for the run states present, with their counts."""
    from matplotlib import cm
    from matplotlib.lines import Line2D

    counts = {state: int(mask.sum()) for state, mask in masks.items()}
    handles = [Line2D([], [], color=cm.viridis(0.7), lw=1.8, label=f"finished ({counts['finished']})")]
    for state in ("stopped", "failed"):
        if counts[state]:
            style = STATE_STYLE[state]
            handles.append(Line2D([], [], color=style["color"], ls=style["ls"], lw=1.3,
                                  label=f"{style['label']} ({counts[state]})"))
    return handles


def plot_parallel_coordinates(df: pd.DataFrame, keys: list[str] | None = None):
    """One line per run across the hyperparameters, coloured by validation accuracy.

    Constant parameters get a grey axis of their own on the left, marked constant (lines skip them).
    Stopped-early runs are grey dotted lines at the accuracy they reached; failed runs are dashed and
    end on a 'failed' mark below the accuracy axis. Value labels sit just above their value, on an
    opaque box drawn over the lines.
    """
    import matplotlib.pyplot as plt
    from matplotlib import cm, colors

    keys = (keys or varied_keys(df)) + ["val_acc"]
    constants = [k for k in constant_keys(df) if k not in keys]
    masks = state_masks(df)
    known = masks["finished"] | masks["stopped"]
    accuracy = df["val_acc"].where(known)
    finished_acc = accuracy[masks["finished"]]
    norm = colors.Normalize(finished_acc.min(), finished_acc.max()) if len(finished_acc) else colors.Normalize(0, 1)
    columns = {k: _axis_values(accuracy if k == "val_acc" else df[k], k, seed=i) for i, k in enumerate(keys)}
    failed_position = -0.12  # below the accuracy axis: failed runs have no accuracy
    axis_names = constants + keys
    # Constant axes carry no lines, so they stand closer together, left of the varied ones.
    xs = np.concatenate([0.6 * np.arange(len(constants)), 0.6 * len(constants) + 0.4 + np.arange(len(keys))])
    varied_x = xs[len(constants):]
    fig, ax = plt.subplots(figsize=(max(9, 1.25 * xs[-1] + 3), 5.2))
    for i in np.argsort(accuracy.fillna(-1).values):  # best runs drawn last, on top
        ys = [columns[k][0].iloc[i] for k in keys]
        if masks["finished"].iloc[i]:
            ax.plot(varied_x, ys, color=cm.viridis(norm(accuracy.iloc[i])), lw=1.8, alpha=0.9, zorder=2)
        elif masks["stopped"].iloc[i]:
            style = STATE_STYLE["stopped"]
            ax.plot(varied_x, ys, color=style["color"], ls=style["ls"], lw=1.3, alpha=0.9, zorder=1)
        else:
            ys[-1] = failed_position
            style = STATE_STYLE["failed"]
            ax.plot(varied_x, ys, color=style["color"], ls=style["ls"], lw=1.0, alpha=0.7, zorder=1)
    _label_axes(ax, df, dict(zip(axis_names, xs)), constants, columns)
    if (~known).any():
        ax.text(xs[-1], failed_position, "failed", ha="center", va="center", fontsize=9, zorder=5,
                color=STATE_STYLE["failed"]["color"], bbox=LABEL_BOX)
    ax.set_xticks(varied_x, keys, rotation=30, ha="right")
    if constants:
        ax.text(xs[len(constants) - 1] / 2, 1.06, "constant in\nthis sweep", ha="center", va="center", fontsize=9,
                color="#555555")
    ax.set_yticks([])
    ax.set_xlim(xs[0] - 0.4, xs[-1] + 0.4)
    ax.set_ylim(failed_position - 0.06 if (~known).any() else -0.06, 1.1)
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    fig.colorbar(cm.ScalarMappable(norm=norm, cmap="viridis"), ax=ax, label="validation accuracy (finished runs)",
                 pad=0.01)
    ax.legend(handles=_state_handles(masks), loc="upper left", bbox_to_anchor=(0, -0.17), ncol=3, fontsize=8,
              frameon=False)
    ax.set_title(f"Parallel coordinates: one line per run ({len(df)} runs; jittered within each value)")
    fig.tight_layout()
    return fig


def feature_matrix(df: pd.DataFrame, keys: list[str] | None = None) -> pd.DataFrame:
    """Numeric features per finished run: numbers as they are (lr as log10), categories one-hot."""
    keys = keys or varied_keys(df)
    finished = df[df["state"] == "finished"]
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
        forest = RandomForestRegressor(n_estimators=300, random_state=seed).fit(X.values, y.values)
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
    finished = df[df["state"] == "finished"]
    if key not in finished:
        return pd.DataFrame(columns=["mean_val_acc", "max_val_acc", "runs"])
    grouped = finished.groupby(finished[key].astype(str))["val_acc"]
    return (pd.DataFrame({"mean_val_acc": grouped.mean(), "max_val_acc": grouped.max(), "runs": grouped.size()})
            .sort_values("mean_val_acc", ascending=False))


# --------------------------------------------------------------------------------------------
# Question 3: observations computed from the runs (see shared.evidence for the thresholds)
# --------------------------------------------------------------------------------------------
def group_labels(column: pd.Series, key: str, reference: pd.Series | None = None) -> pd.Series:
    """Each run's group for one parameter: its value as text or, for a continuous parameter (more than
    MAX_GROUPS distinct values in `reference`, e.g. lr), the half of the runs it falls in: split at
    the median of `reference` (default: the column itself)."""
    reference = column if reference is None else reference
    numeric = pd.api.types.is_numeric_dtype(reference) and not pd.api.types.is_bool_dtype(reference)
    if not numeric or reference.nunique() <= MAX_GROUPS:
        return column.map(lambda v: _format_value(v, key) if pd.notna(v) else "missing")
    median = float(reference.median())
    high = column.astype(float) > median
    return high.map({False: f"<= {_format_value(median, key)}", True: f"> {_format_value(median, key)}"})


def runs_summary(df: pd.DataFrame) -> str:
    """How many runs finished, stopped early or failed, and which of them the observations compare."""
    counts = {state: int(mask.sum()) for state, mask in state_masks(df).items()}
    return (f"{len(df)} runs: {counts['finished']} finished, {counts['stopped']} stopped early by the sweep, "
            f"{counts['failed']} failed. Observations compare the {counts['finished']} finished runs: a stopped run's "
            f"accuracy comes from fewer epochs, so averaging it in would mix the parameter's effect with the "
            f"budget's (they are counted per value instead).")


def observations(runs_or_df, keys: list[str] | None = None) -> list[evidence.Finding]:
    """Question 3's observations: for every swept parameter, does its value change validation accuracy?

    Only finished runs are compared (stopped-early and failed runs are counted per value, not
    averaged). Each parameter gets one `evidence.Finding`: a claim when `evidence.compare` finds the
    difference large and unlikely to be chance, otherwise the reason there is none (too few runs,
    spreads overlap, could be chance). Two parameters whose values are perfectly aligned across the
    finished runs (e.g. every augment=True run has batch_norm=False) cannot be separated: both are
    refused and each names the other. Claims come first, the largest difference first.
    """
    df = runs_or_df if isinstance(runs_or_df, pd.DataFrame) else runs_table(runs_or_df)
    masks = state_masks(df)
    finished = df[masks["finished"]]
    keys = keys or varied_keys(finished)
    labels = {k: group_labels(df[k], k, reference=finished[k]) for k in keys}
    finished_labels = {k: labels[k][masks["finished"]].tolist() for k in keys}
    partners = {k: [] for k in keys}
    for a, b in evidence.confounded_pairs(finished_labels):
        partners[a].append(b), partners[b].append(a)
    findings = []
    for key in keys:
        values = {label: finished.loc[labels[key][masks["finished"]] == label, "val_acc"].tolist()
                  for label in sorted(set(finished_labels[key]), key=_natural_order)}
        notes = {label: _left_out_note(labels[key], masks, label) for label in values}
        finding = evidence.compare(values, key, notes)
        if partners[key]:
            other = partners[key][0]
            finding.supported, finding.reason = False, "confounded"
            alignment = evidence.describe_alignment(key, finished_labels[key], other, finished_labels[other])
            finding.text = (f"The runs do not support a conclusion about {key} alone: it cannot be separated from "
                            f"{other} ({alignment} in the finished runs), so any difference belongs to either. "
                            + "; ".join(g.describe() for g in finding.groups) + ".")
        elif finding.supported:
            _refuse_if_confounded(finding, key, labels, masks, keys)
        findings.append(finding)
    claims = sorted((f for f in findings if f.supported), key=lambda f: -abs(f.difference))
    return claims + [f for f in findings if not f.supported]


def _refuse_if_confounded(finding: evidence.Finding, key: str, labels: dict, masks: dict, keys: list[str]) -> None:
    """A claim 'top beats bottom' stands only if those runs do not also differ in another parameter:
    refuse it when another parameter is associated with top/bottom at V >= evidence.MAX_ASSOCIATION."""
    ranked = sorted((g for g in finding.groups if g.n >= evidence.MIN_RUNS_PER_GROUP), key=lambda g: -g.mean)
    compared = masks["finished"] & labels[key].isin([ranked[0].label, ranked[-1].label])
    own = labels[key][compared].tolist()
    others = {k: labels[k][compared].tolist() for k in keys if k != key}
    found = evidence.confounders(own, others)
    if not found:
        return
    (other, strength), more = found[0], found[1:]
    also = "".join(f", {name} (V = {v:.2f})" for name, v in more)
    finding.supported, finding.reason = False, "confounded"
    finding.text = (f"The runs do not support a conclusion about {key} alone: {ranked[0].label} leads "
                    f"{ranked[-1].label} by {evidence.pp(finding.difference)} (d = {finding.cohens_d:.2f}, permutation "
                    f"p = {finding.p_value:.3f}), but those runs also differ in {other} "
                    f"({evidence.describe_mix(own, other, others[other])}; association V = {strength:.2f} >= "
                    f"{evidence.MAX_ASSOCIATION}){also}. " + "; ".join(g.describe() for g in finding.groups) + ".")


def _natural_order(label: str):
    """Numbers in numeric order (3 before 11), then text."""
    try:
        return (0, float(label.lstrip("<=> ")), label)
    except ValueError:
        return (1, 0.0, label)


def _left_out_note(labels: pd.Series, masks: dict, label: str) -> str:
    """'+2 stopped early, 1 failed, not averaged' for the runs of one value that are not compared."""
    parts = [f"{int((masks[state] & (labels == label)).sum())} {word}"
             for state, word in (("stopped", "stopped early"), ("failed", "failed"))
             if (masks[state] & (labels == label)).any()]
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
