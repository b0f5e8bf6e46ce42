"""All six notebooks run in order in one outputs folder, each using what the previous ones left."""
import json

from notebook_runner import NOTEBOOKS, run_notebook, stream_text


def test_notebooks_run_in_order_and_hand_results_on(tmp_path, monkeypatch):
    outputs = tmp_path / "outputs"
    printed = {}
    for path in NOTEBOOKS:
        printed[path.name] = stream_text(run_notebook(path, outputs, monkeypatch))
    # The hand-offs were used, not silently replaced by fallbacks.
    runs = json.loads((outputs / "sweep_runs.json").read_text())["runs"]
    assert runs, "Part-A/02 left no sweep runs"
    assert (outputs / "partA_best.pt").exists() and (outputs / "partA_best.json").exists()
    assert "No best model from Part-A/03" not in printed["04_filters_and_guided_backprop.ipynb"]
    assert "NOTICE" not in printed["02_finetune_vs_scratch.ipynb"], "Part-B/02 did not use Part-A/03 and Part-B/01"
