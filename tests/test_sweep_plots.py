"""shared.sweep_plots: observations from planted runs tables (what they claim AND what they refuse to
claim), and figures that show every run, its state and the constant settings."""
import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from shared import sweep_plots  # noqa: E402

BASE = dict(base_filters=32, organisation="same", kernel_size=3, activation="silu", batch_norm=True, augment=True,
            dropout=0.2, dense_neurons=256, lr=1e-3, batch_size=64, weight_decay=0.0, epochs=10, input_size=224)


def record(index, val_acc, state="finished", **config):
    """A runs record as shared.sweep writes it (without the newer keys, which must be optional)."""
    return {"config": {**BASE, **config}, "val_acc": val_acc, "state": state, "error": None, "name": f"r{index:02d}",
            "created": f"2024-03-01T10:{index:02d}:00+00:00", "params": 1_000_000 + index, "macs": 10**9,
            "epoch_seconds": [1.0] * (3 if state == "stopped" else 10)}


def planted_runs():
    """16 finished runs in a full factorial of batch_norm x dropout x augment x organisation.

    batch_norm adds 10 pp; dropout and organisation do nothing; weight_decay always moves with augment
    (a confounded pair); kernel_size 5 has only two runs; lr is continuous and does nothing.
    Plus one stopped-early run (a terrible accuracy after 3 epochs) and one failed run.
    """
    noise = np.random.default_rng(0).normal(0, 0.01, 16)
    runs = []
    for i in range(16):
        batch_norm, dropout = bool(i % 2), [0.2, 0.3][(i // 2) % 2]
        augment, organisation = bool((i // 4) % 2), ["same", "doubling"][(i // 8) % 2]
        runs.append(record(i, 0.50 + 0.10 * batch_norm + noise[i], batch_norm=batch_norm, dropout=dropout,
                           augment=augment, weight_decay=0.05 if augment else 0.0, organisation=organisation,
                           kernel_size=5 if i in (5, 10) else 3, lr=float(10 ** (-3.5 + i / 15))))
    runs.append(record(16, 0.05, "stopped", batch_norm=True))
    failed = record(17, None, "failed", batch_norm=False)
    failed["error"] = "out of memory"
    return runs + [failed]


@pytest.fixture(scope="module")
def findings():
    return {f.subject: f for f in sweep_plots.observations(planted_runs())}


def test_the_parameter_that_matters_is_claimed(findings):
    claim = findings["batch_norm"]
    assert claim.supported
    assert claim.text.startswith("batch_norm: True beats False by +10.")
    # The stopped run (5% after 3 epochs) is counted, not averaged; the failed run too.
    true_group = next(g for g in claim.groups if g.label == "True")
    assert true_group.n == 8 and true_group.mean > 0.55
    assert "+1 stopped early, not averaged" in claim.text and "+1 failed, not averaged" in claim.text


def test_parameters_that_do_not_matter_are_not_claimed(findings):
    for key in ("dropout", "organisation", "lr"):
        assert not findings[key].supported, findings[key].text
        assert findings[key].text.startswith(f"The runs do not support a conclusion about {key}")
        assert " beats " not in findings[key].text
    assert "> " in findings["lr"].groups[0].label or "<= " in findings["lr"].groups[0].label  # split at the median


def test_too_few_runs_refuse(findings):
    refusal = findings["kernel_size"]
    assert not refusal.supported and refusal.reason == "too few runs"
    assert "5 n=2" in refusal.text


def test_a_confounded_pair_is_refused_and_both_are_named(findings):
    for key, other in (("augment", "weight_decay"), ("weight_decay", "augment")):
        refusal = findings[key]
        assert not refusal.supported and refusal.reason == "confounded"
        assert f"about {key} alone: it cannot be separated from {other}" in refusal.text


def test_a_claim_whose_runs_differ_in_another_parameter_is_refused():
    """activation looks decisive, but every gelu run also has batch_norm=True and every relu run False."""
    runs = [record(i, 0.6 + 0.005 * (i % 3), activation="gelu", batch_norm=True, dropout=[0.2, 0.3][i % 2])
            for i in range(5)]
    runs += [record(10 + i, 0.5 + 0.005 * (i % 3), activation="relu", batch_norm=False, dropout=[0.2, 0.3][i % 2])
             for i in range(4)]
    runs += [record(20 + i, 0.6 + 0.005 * i, activation="relu", batch_norm=True, dropout=0.2) for i in range(2)]
    by_subject = {f.subject: f for f in sweep_plots.observations(runs)}
    refusal = by_subject["activation"]
    assert not refusal.supported and refusal.reason == "confounded"
    assert "also differ in batch_norm" in refusal.text and "gelu: batch_norm=True in 5 of 5" in refusal.text


def test_claims_come_first_and_summary_counts_states(findings):
    ordered = sweep_plots.observations(planted_runs())
    assert ordered[0].subject == "batch_norm" and not any(f.supported for f in ordered[1:])
    summary = sweep_plots.runs_summary(sweep_plots.runs_table(planted_runs()))
    assert summary.startswith("18 runs: 16 finished, 1 stopped early by the sweep, 1 failed")


def test_expectations_are_separate_and_sourced(findings):
    lines = sweep_plots.expectations(["batch_norm", "augment", "unknown"])
    assert len(lines) == 2 and all(line.startswith("Expected from the literature (not measured here) for ") for line in lines)
    assert "Ioffe & Szegedy 2015" in lines[0]
    observed = " ".join(f.text for f in findings.values())
    assert not any(statement in observed for statement, _ in sweep_plots.EXPECTATIONS.values())


def test_runs_table_is_tolerant_of_new_and_missing_keys():
    old, new = record(0, 0.5), record(1, 0.6)
    new.update(epochs_run=7, epochs_asked=10, sweep_id="abc", history=[{"epoch": 1}] * 7)
    table = sweep_plots.runs_table([old, new])
    assert table["epochs_run"].tolist() == [10, 7] and table["sweep_id"].isna().tolist() == [True, False]


# ------------------------------------------------------------------ figures
@pytest.fixture(scope="module")
def table():
    return sweep_plots.runs_table(planted_runs())


def test_accuracy_over_time_has_a_colourbar_and_draws_states_apart(table):
    fig = sweep_plots.plot_val_acc_over_time(table)
    assert len(fig.axes) == 2 and "validation accuracy" in fig.axes[1].get_ylabel()  # the colourbar
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert any(label.startswith("finished (16)") for label in labels)
    assert any(label.startswith("stopped early") and "(1)" in label for label in labels)
    assert any(label.startswith("failed") and "(1)" in label for label in labels)
    plt.close(fig)


def test_parallel_coordinates_jitter_constants_and_states(table):
    fig = sweep_plots.plot_parallel_coordinates(table)
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.texts]
    assert "input_size = 224" in texts and "epochs = 10" in texts  # constant axes are shown, marked
    lines = ax.get_lines()
    run_lines = [line for line in lines if len(line.get_xdata()) > 2]
    assert len(run_lines) == len(table)
    # Eight finished runs share batch_norm=True: jitter spreads them instead of drawing one line.
    keys = sweep_plots.varied_keys(table) + ["val_acc"]
    column = keys.index("batch_norm")
    positions = {round(float(line.get_ydata()[column]), 6) for line in run_lines}
    assert len(positions) == len(run_lines)
    styles = sorted(line.get_linestyle() for line in run_lines)
    assert styles.count(":") == 1 and styles.count("--") == 1  # the stopped and the failed run
    plt.close(fig)


def test_importance_notes_its_run_count_and_labels_bars(table):
    importance = sweep_plots.parameter_importance(table)
    assert importance.attrs["runs"] == 16
    fig = sweep_plots.plot_importance(importance)
    title = fig._suptitle.get_text()
    assert "fitted on 16 finished runs" in title and "FEW RUNS" in title
    correlation_labels = [t.get_text() for t in fig.axes[1].texts]
    assert len(correlation_labels) == len(importance) and all(label[0] in "+-" for label in correlation_labels)
    plt.close(fig)
    many = sweep_plots.runs_table(planted_runs() + [record(30 + i, 0.5 + 0.01 * i, dropout=0.3) for i in range(6)])
    fig = sweep_plots.plot_importance(sweep_plots.parameter_importance(many))
    assert "FEW RUNS" not in fig._suptitle.get_text()
    plt.close(fig)



def test_killed_runs_count_as_stopped_and_an_empty_table_says_nothing():
    runs = planted_runs()
    runs[-2]["state"] = "killed"  # how W&B reports a run its sweep stopped early
    masks = sweep_plots.state_masks(sweep_plots.runs_table(runs))
    assert int(masks["stopped"].sum()) == 1 and int(masks["failed"].sum()) == 1
    assert sweep_plots.observations([]) == []
    assert sweep_plots.runs_summary(sweep_plots.runs_table([])).startswith("0 runs")
