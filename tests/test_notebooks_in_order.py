"""All six notebooks run in order in one outputs folder, each using what the previous ones left, and the run ends
with a complete report.html that opens in headless Chromium (the checks live in test_report_browser.py).

One module-scoped run feeds the three tests, so `make test` runs the six notebooks in order once.
"""
import json

import pytest
from notebook_runner import NOTEBOOKS, run_notebook, stream_text
from test_report_browser import check_complete, check_in_browser, needs_browser


@pytest.fixture(scope="module")
def in_order_run(tmp_path_factory):
    outputs = tmp_path_factory.mktemp("in-order") / "outputs"
    printed = {}
    with pytest.MonkeyPatch.context() as monkeypatch:
        for path in NOTEBOOKS:
            printed[path.name] = stream_text(run_notebook(path, outputs, monkeypatch))
    return outputs, printed


def test_notebooks_run_in_order_and_hand_results_on(in_order_run):
    outputs, printed = in_order_run
    # The hand-offs were used, not silently replaced by fallbacks.
    runs = json.loads((outputs / "sweep_runs.json").read_text())["runs"]
    assert runs, "Part-A/02 left no sweep runs"
    assert (outputs / "partA_best.pt").exists() and (outputs / "partA_best.json").exists()
    assert "No best model from Part-A/03" not in printed["04_filters_and_guided_backprop.ipynb"]
    assert "NOTICE" not in printed["02_finetune_vs_scratch.ipynb"], "Part-B/02 did not use Part-A/03 and Part-B/01"


def test_the_run_ends_with_a_complete_report(in_order_run):
    check_complete(*in_order_run)


@needs_browser
def test_the_report_opens_in_headless_chromium_offline(in_order_run, tmp_path):
    check_in_browser(in_order_run[0], tmp_path)
