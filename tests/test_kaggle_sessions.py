"""Kaggle, emulated offline: each notebook is its own session with an empty outputs folder, and an earlier
session's output is attached read-only as an input (INAT_INPUTS stands for /kaggle/input)."""
import json
import shutil

from notebook_runner import REPO, run_notebook, stream_text


def attach(inputs, name, outputs):
    """What Kaggle's Add Input shows of an earlier session: its /kaggle/working, read-only."""
    target = inputs / name / "da6401-a2" / "outputs"
    shutil.copytree(outputs, target)
    for path in target.rglob("*"):
        path.chmod(0o555 if path.is_dir() else 0o444)
    return target


def files(folder):
    return {path: path.read_bytes() for path in folder.rglob("*") if path.is_file()}


def test_later_notebooks_in_their_own_sessions_use_the_first_sessions_sweep_model(tmp_path, monkeypatch):
    inputs = tmp_path / "input"
    monkeypatch.setenv("INAT_INPUTS", str(inputs))
    run_notebook(REPO / "Part-A/02_sweep.ipynb", tmp_path / "A", monkeypatch)
    swept = attach(inputs, "sweep", tmp_path / "A")
    table = json.loads((swept / "sweep_runs.json").read_text())
    best = max((r for r in table["runs"] if r["state"] == "finished"), key=lambda r: r["val_acc"])["name"]
    before = files(inputs)

    text = stream_text(run_notebook(REPO / "Part-A/03_best_model_test.ipynb", tmp_path / "B", monkeypatch))
    assert f"Hand-off sweep_runs.json: taken from {swept / 'sweep_runs.json'}" in text
    assert f"Reported for (a), and shown in the figures below: the sweep's best run {best}, as saved" in text
    record = json.loads((tmp_path / "B" / "partA_best.json").read_text())
    assert record["models"]["sweep"]["checkpoint"].startswith(str(swept / "sweep_checkpoints"))
    assert not (tmp_path / "B" / "sweep_runs.json").exists()  # read there, never copied or written here
    tested = attach(inputs, "best-model", tmp_path / "B")

    text = stream_text(run_notebook(REPO / "Part-A/04_filters_and_guided_backprop.ipynb", tmp_path / "C", monkeypatch))
    assert f"Hand-off sweep_runs.json: taken from {swept / 'sweep_runs.json'}" in text
    assert f"Using the sweep's best run {best} of" in text

    text = stream_text(run_notebook(REPO / "Part-B/02_finetune_vs_scratch.ipynb", tmp_path / "D", monkeypatch))
    assert f"Part A's best from {tested / 'partA_best.json'}" in text
    assert "training Part A's config here" not in text
    assert {p: b for p, b in files(inputs).items() if p in before} == before  # the inputs are never changed
