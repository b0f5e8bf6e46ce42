"""The hand-in report without the network: its content from an outputs folder, the W&B block tree (sections in
order, the panels, the run-set filters on the sweep id), the save path against a stub at the API boundary, and
the offline HTML copy. tests/test_report_browser.py opens a report from a real notebook run in Chromium."""
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from shared import report, report_content, report_html, runtime
from shared.runtime import UserError

wr, _ = report.reports_api()

SWEEP = "local-20260101-000000-abcd"
DATA = {"root": "/nowhere/demo_digits", "files": "d4dae3e08f6fe412", "demo": True}
HEADINGS = [("H1", "Part A"), *[("H2", f"Question {n}") for n in range(1, 6)],
            ("H1", "Part B"), *[("H2", f"Question {n}") for n in range(1, 5)], ("H1", "Self Declaration")]
GROUP = f"quick-{DATA['files']}"  # tracking.figures_group(mode, data) of the records make_outputs writes
LOGGED = {  # (W&B group, run, key) of each figure, as the notebooks call tracking.log_figures
    "partA_test_grid": (GROUP, "partA-best-model-test", "partA_test_grid"),
    "partA_02_parallel_coordinates": (GROUP, f"sweep-plots-{SWEEP}", "parallel_coordinates"),
    "partA_first_layer_filters": (GROUP, "partA-filters-guided-backprop", "partA_first_layer_filters"),
    "partB_strategies": (GROUP, "partB-strategies-resnet18", "partB_strategies"),
    "partB_vs_scratch": (GROUP, "partB-vs-scratch-resnet18", "vs_scratch"),
}


def history(accuracies):
    return [{"epoch": e, "train_loss": 2 - a, "train_acc": a + 0.05, "val_loss": 2.1 - a, "val_acc": a,
             "epoch_seconds": 1.0} for e, a in enumerate(accuracies, 1)]


def make_outputs(folder, run_name="r00-relu", demo=True, mode="quick"):
    """An outputs folder as the six notebooks leave it, with small made-up numbers."""
    data = {**DATA, "demo": demo}
    tags = {"sweep_id": SWEEP, "data": data, "mode": mode}
    runs = [{"config": {"activation": act, "batch_norm": bn, "lr": lr}, "val_acc": acc, "state": "finished",
             "name": f"{run_name}{i}", "created": f"2026-01-01T00:0{i}:00+00:00", "history": history([acc - .1, acc]),
             "epoch_seconds": [1.0, 1.0], "epochs_asked": 2, "epochs_run": 2, "params": 1000, **tags}
            for i, (act, bn, lr, acc) in enumerate([("relu", True, 1e-3, .4), ("gelu", False, 2e-3, .3),
                                                    ("relu", False, 3e-3, .35), ("gelu", True, 4e-3, .38)])]
    config = {"method": "bayes", "early_terminate": {"type": "hyperband", "min_iter": 1, "eta": 2},
              "parameters": {"activation": {"values": ["relu", "gelu"]}, "batch_norm": {"values": [True, False]},
                             "lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1e-2}}}
    sweeps = {SWEEP: {"sweep_id": SWEEP, "method": "bayes", "wandb_mode": "offline", "config": config,
                      "created": "2026-01-01T00:00:00+00:00", **tags}}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sweep_runs.json").write_text(json.dumps({"sweeps": sweeps, "runs": runs}))
    per_class = {f"digit_{i}": i / 10 for i in range(10)}
    own = {"per_class_acc": per_class, "params": 4366, "epoch_seconds": [1.0, 1.0], "best_epoch": 2}
    runtime.save_json({"test_images": 200, "val_images": 300, "source": f"sweep run {run_name}0 of {SWEEP}",
                       "sweep_id": SWEEP, "mode": mode, "data": data, "reported": "sweep",
                       "models": {"sweep": {**own, "name": f"the sweep's best run {run_name}0, as saved",
                                            "val_acc": .4, "test_acc": .42, "test_loss": 1.5,
                                            "history": history([.3, .4]),
                                            "checkpoint": str(folder / "sweep_checkpoints" / f"{SWEEP}.pt")},
                                  "retrained": {**own, "name": "its config retrained (3 epochs)", "val_acc": .41,
                                                "test_acc": .39, "test_loss": 1.6, "history": history([.2, .3, .41]),
                                                "checkpoint": str(folder / "partA_best.pt")}}},
                      folder / "partA_best.json")
    rows = [{"strategy": label, "trainable_params": p, "total_params": 11_181_642, "trainable_share": p / 11_181_642,
             "epoch_seconds": s, "train_seconds": 2 * s, "val_acc": acc, "images_per_second": 10.0}
            for label, p, s, acc in [("head", 5130, 6.0, .7), ("last_k (k=1)", 8_398_858, 8.0, .5),
                                     ("full", 11_181_642, 20.0, .4)]]
    runtime.save_json({"mode": mode, "model": "resnet18", "pretrained": False, "data": data, "val_images": 300,
                       "best": {"strategy": "head", "k": None}, "rows": rows}, folder / "partB_strategies.json")
    runtime.save_json({"model": "resnet18", "strategy": "head", "k": None, "pretrained": False, "mode": mode,
                       "preprocessing": {"resize_size": 37, "crop_size": 32},
                       "data": data, "test_images": 200, "classes": list(per_class), "per_class_acc": per_class,
                       "confusion": (np.eye(10, dtype=int) * 15 + 1).tolist(),
                       "scratch": {"name": f"the sweep's best run {run_name}0, as saved", "test_acc": .42,
                                   "val_acc": .4, "params": 4366, "seconds_to_best": 20.0,
                                   "history": history([.3, .4])},
                       "tuned": {"test_acc": .65, "val_acc": .7, "trainable_params": 5130, "total_params": 11_181_642,
                                 "seconds_to_best": 8.0, "history": []}}, folder / "partB_vs_scratch.json")
    for name in ["partA_01_growth", "partA_01_per_layer", "partA_02_val_acc_vs_created",
                 "partA_02_parallel_coordinates", "partA_02_parameter_importance", "partA_learning_curves",
                 "partA_per_class_accuracy", "partA_confusion_matrix", "partA_test_grid", "partA_first_layer_filters",
                 "partB_preprocessing", "partB_strategies", "partB_vs_scratch", "partB_confusion"]:
        Image.new("RGB", (40, 30), (30, 120, 200)).save(folder / f"{name}.png")
    return folder


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    return make_outputs(tmp_path_factory.mktemp("report") / "outputs")


@pytest.fixture(scope="module")
def blocks(outputs):
    return report.wandb_blocks(report_content.collect(outputs), "me", "da6401")


def block_text(block) -> str:
    return " ".join(str(getattr(block, name, "")) for name in ("text", "items"))


def grids(blocks):
    return [b for b in blocks if isinstance(b, wr.PanelGrid)]


def test_the_wandb_report_has_the_assignments_sections_in_order(blocks):
    headings = [(type(b).__name__, b.text) for b in blocks if isinstance(b, (wr.H1, wr.H2))]
    assert headings == HEADINGS


def test_question_2_has_the_three_sweep_plots_and_the_best_runs_curves_on_the_sweep(blocks):
    panels = {type(p).__name__: (p, grid) for grid in grids(blocks) for p in grid.panels}
    scatter, grid = panels["ScatterPlot"]
    assert (scatter.x, scatter.y) == (wr.Metric("CreatedTimestamp"), wr.SummaryMetric("val_acc"))
    assert grid.runsets[0].filters == f"Metric(\"Group\") == '{SWEEP}'"  # an offline sweep's runs: grouped by its id
    assert panels["ParameterImportancePlot"][0].with_respect_to == "val_acc"
    columns = [c.metric for c in panels["ParallelCoordinatesPlot"][0].columns]
    assert wr.Config("activation") in columns and columns[-1] == wr.SummaryMetric("val_acc")
    curves = [p for grid in grids(blocks) for p in grid.panels if isinstance(p, wr.LinePlot)]
    assert sorted(tuple(p.y) for p in curves) == [("train_acc", "val_acc"), ("train_loss", "val_loss")]
    best = [grid for grid in grids(blocks) if any(isinstance(p, wr.LinePlot) for p in grid.panels)][0]
    assert SWEEP in best.runsets[0].filters and "'r00-relu0'" in best.runsets[0].filters  # the best val_acc, 0.40


def test_a_wandb_server_sweep_is_filtered_on_its_sweep_id():
    runset = wr.Runset(entity="me", project="p", filters=report.sweep_filter("ab12cd34"))
    assert runset.filters == "Metric(\"Sweep\") == 'ab12cd34'"


def test_figures_are_media_panels_of_the_runs_that_logged_them(blocks):
    media = {(grid.runsets[0].filters, grid.panels[0].media_keys[0]) for grid in grids(blocks)
             if isinstance(grid.panels[0], wr.MediaBrowser)}
    for group, run_name, key in LOGGED.values():  # by group and name: a demo run of the same name is left out
        assert (f"Metric(\"Group\") == '{group}' and Metric(\"Name\") == '{run_name}'", key) in media, (run_name, key)


def test_the_text_is_computed_and_has_no_placeholder_but_the_declaration(blocks):
    text = " ".join(block_text(b) for b in blocks)
    assert "LatexBlock" in {type(b).__name__ for b in blocks}
    assert "TEST ACCURACY 42.00%" in text and "95% interval" in text and "from 200 test images" in text
    assert "the sweep's best run r00-relu0, as saved" in text and "test accuracy 39.00%" in text  # and the retrained
    assert "resize the shorter side to 256 px" in text and "scaled it down in the same ratio: resize 37 px" in text
    assert "+23.0 pp" in text  # Part B: 65% fine-tuned vs 42% scratch, from evidence.scratch_vs_finetuned
    assert "DEMO data" in block_text(blocks[0])  # said at the top
    declaration = block_text(blocks[-1])
    assert "[your name]" in declaration and "[your roll number]" in declaration
    rest = text.replace(declaration, "")
    for placeholder in ["[your", "TODO", "TBD", "lorem", "XXX", "<owner>", "nan%", "inf pp"]:
        assert placeholder not in rest, placeholder


def test_the_github_link_or_how_to_get_it(outputs, monkeypatch):
    import shared.bootstrap

    placeholder = report_content.collect(outputs).parts[0].questions[4].items[0]
    assert "make publish" in placeholder.text
    monkeypatch.setattr(shared.bootstrap, "REPO_URL", "https://github.com/me/da6401-a2.git")
    content = report_content.collect(outputs)
    assert [q.items[0].text for q in (content.parts[0].questions[4], content.parts[1].questions[3])] == \
        ["The code: https://github.com/me/da6401-a2"] * 2


class SavedReports:
    """The W&B API boundary: `Report.save` and `Report.from_url` against a dict instead of the server."""

    def __init__(self, monkeypatch):
        self.saved, self.drafts = {}, []
        outer = self

        def save(self, draft=False, clone=False):
            self.id = self.id or f"id{len(outer.saved)}"
            outer.saved[self.id] = self
            outer.drafts.append(draft)
            return self

        def from_url(cls, url, as_model=False):
            return outer.saved[url.rsplit("--", 1)[1]]

        monkeypatch.setattr(wr.Report, "save", save)
        monkeypatch.setattr(wr.Report, "from_url", classmethod(from_url))
        monkeypatch.setattr(wr.Report, "url", property(lambda self: f"https://wandb.ai/{self.entity}/{self.project}"
                                                                    f"/reports/x--{self.id}"))
        monkeypatch.setattr(report, "_default_entity", lambda: "me")


def test_saved_as_a_draft_then_updated_not_duplicated(tmp_path, monkeypatch, capsys):
    outputs = make_outputs(tmp_path / "outputs")
    stub = SavedReports(monkeypatch)
    monkeypatch.setattr(report.tracking, "setup_wandb", lambda verbose=True: "online")
    first = report.run_report(outputs)
    assert first["url"] == "https://wandb.ai/me/da6401-assignment2/reports/x--id0"
    assert "created (draft): " + first["url"] in capsys.readouterr().out
    assert json.loads((outputs / report.RECORD).read_text())["url"] == first["url"]
    (outputs / "wandb" / "offline-run-1").mkdir(parents=True)
    (outputs / "wandb" / "offline-run-2").mkdir()
    (outputs / "wandb" / "offline-run-2" / "run-2.wandb.synced").touch()
    second = report.run_report(outputs)
    assert second["url"] == first["url"] and len(stub.saved) == 1 and stub.drafts == [True, True]
    out = capsys.readouterr().out
    assert "updated (draft)" in out and "1 offline W&B run(s) are not uploaded yet" in out
    assert first["url"] in (outputs / "report.html").read_text()
    headings = [b.text for b in stub.saved["id0"].blocks if isinstance(b, (wr.H1, wr.H2))]
    assert headings == [text for _, text in HEADINGS]


def test_a_report_that_cannot_be_loaded_is_made_again_and_said(tmp_path, monkeypatch, capsys):
    outputs = make_outputs(tmp_path / "outputs")
    SavedReports(monkeypatch)
    (outputs / report.RECORD).write_text(json.dumps({"url": "https://wandb.ai/me/p/reports/x--gone"}))
    monkeypatch.setattr(report.tracking, "setup_wandb", lambda verbose=True: "online")
    assert report.run_report(outputs)["url"].endswith("--id0")
    out = capsys.readouterr().out
    assert "could not be loaded" in out and "created (draft)" in out


@pytest.mark.parametrize("damage", ["{not json", "[1, 2]", "\udcff"])
def test_a_damaged_report_record_is_kept_and_the_html_still_written(damage, tmp_path, monkeypatch, capsys):
    """A damaged report_wandb.json used to crash the report before report.html was written."""
    outputs = make_outputs(tmp_path / "outputs")
    stub = SavedReports(monkeypatch)
    (outputs / report.RECORD).write_text(damage, errors="surrogateescape")
    before = (outputs / report.RECORD).read_bytes()
    monkeypatch.setattr(report.tracking, "setup_wandb", lambda verbose=True: "online")
    result = report.run_report(outputs)
    assert result["url"] is None and not stub.saved and (outputs / report.RECORD).read_bytes() == before
    assert f"{outputs / report.RECORD} could not be read" in (outputs / "report.html").read_text()
    assert "could not be read" in capsys.readouterr().out


def test_online_without_a_usable_key_is_one_line_before_any_work(tmp_path, monkeypatch):
    monkeypatch.setattr(report.tracking, "setup_wandb", lambda verbose=True: "offline")
    with pytest.raises(UserError, match="no W&B key"):
        report.run_report(make_outputs(tmp_path / "outputs"), online=True)
    assert not (tmp_path / "outputs" / "report.html").exists()


def test_offline_html_has_every_section_figure_and_formula_inline(outputs, tmp_path):
    result = report.run_report(outputs, html=tmp_path / "report.html", online=False)
    page = Path(result["html"]).read_text()
    headings = re.findall(r"<h[12][^>]*>([^<]+)</h[12]>", page)
    assert [h for h in headings if h != report_html.TITLE] == [text for _, text in HEADINGS]
    assert result["url"] is None and result["missing"] == []
    assert page.count('src="data:image/png;base64,') >= 14 + 4 + 1  # figures, formulas, best run's curves
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", page) and "<script" not in page


def test_a_missing_notebook_result_names_the_notebook_and_the_rest_still_builds(tmp_path):
    outputs = make_outputs(tmp_path / "outputs")
    (outputs / "partB_strategies.json").unlink()
    (outputs / "partA_test_grid.png").unlink()
    result = report.run_report(outputs, online=False)
    page = Path(result["html"]).read_text()
    assert result["missing"] == ["Part-B/01_finetune_strategies.ipynb"]
    assert "Run Part-B/01_finetune_strategies.ipynb (and the notebooks before it)" in page
    assert "partA_test_grid.png is missing: run Part-A/03_best_model_test.ipynb" in page


def test_an_empty_outputs_folder_gives_every_section_and_what_to_run(tmp_path):
    (tmp_path / "empty").mkdir()
    result = report.run_report(tmp_path / "empty", online=False)
    assert len(result["missing"]) == 4
    page = Path(result["html"]).read_text()
    for notebook in ["Part-A/02_sweep.ipynb", "Part-A/03_best_model_test.ipynb", "Part-B/02_finetune_vs_scratch.ipynb"]:
        assert f"Run {notebook}" in page
    assert "Self Declaration" in page and "P_{224}" in page  # the formulas need no run


def test_full_runs_on_real_data_carry_no_demo_warning(tmp_path):
    content = report_content.collect(make_outputs(tmp_path / "outputs", demo=False, mode="full"))
    assert content.warnings == []


def test_text_from_the_runs_is_escaped(tmp_path):
    outputs = make_outputs(tmp_path / "outputs", run_name="<img src=x onerror=alert(1)>")
    page = Path(report.run_report(outputs, online=False)["html"]).read_text()
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page


def test_outputs_that_are_not_a_folder_or_an_html_over_an_input_are_refused(tmp_path):
    with pytest.raises(UserError, match="not a folder"):
        report.run_report(tmp_path / "nothing", online=False)
    outputs = make_outputs(tmp_path / "outputs")
    with pytest.raises(UserError):
        report.run_report(outputs, html=outputs / "partA_best.json", online=False)


@pytest.mark.parametrize("size", [224, 256, 97])
def test_closed_forms_agree_with_shared_formulas(size):
    macs, params, examples = report_content.closed_forms(size)
    assert f"P_{{{size}}}" in params and f"{(size // 32) ** 2}\\,mn" in params
    assert "{,}" in macs and len(examples) == 5


def test_a_server_failure_while_saving_is_one_line_and_the_html_is_still_written(tmp_path, monkeypatch, capsys):
    outputs = make_outputs(tmp_path / "outputs")
    SavedReports(monkeypatch)

    def refuse(self, draft=False, clone=False):
        raise ConnectionError("api.wandb.ai: connection reset\nmore detail")

    monkeypatch.setattr(wr.Report, "save", refuse)
    monkeypatch.setattr(report.tracking, "setup_wandb", lambda verbose=True: "online")
    result = report.run_report(outputs)
    assert result["url"] is None and Path(result["html"]).is_file()
    assert "W&B report not saved (ConnectionError: api.wandb.ai: connection reset)." in capsys.readouterr().out
    assert not (outputs / report.RECORD).exists()


def test_the_sweep_panels_serialise_to_the_run_attributes_wandb_plots(blocks):
    """Panels (not run sets, which need the API) serialise offline: created time is the run's createdAt."""
    models = {type(p).__name__: p._to_model().config for grid in grids(blocks) for p in grid.panels}
    assert (models["ScatterPlot"].x_axis, models["ScatterPlot"].y_axis) == ("run:createdAt", "summary:val_acc")
    assert models["ParameterImportancePlot"].target_key == "val_acc"
    assert "config:activation.value" in [c.accessor for c in models["ParallelCoordinatesPlot"].columns]
    assert models["LinePlot"].x_axis == "_step"


def test_the_formula_table_is_checked_against_pytorch_as_it_is_built(monkeypatch):
    monkeypatch.setattr(report_content.formulas, "torch_counts", lambda model, size: (0, 0))
    with pytest.raises(AssertionError, match="PyTorch's counts disagree"):
        report_content.closed_forms(224)


def test_question_2_shows_the_sweep_the_tested_model_came_from(tmp_path):
    """A later sweep in the same table (say, a second try) does not replace the one Part-A/03 tested."""
    outputs = make_outputs(tmp_path / "outputs")
    table = json.loads((outputs / "sweep_runs.json").read_text())
    later = "local-20270101-000000-ffff"
    table["sweeps"][later] = {**table["sweeps"][SWEEP], "sweep_id": later, "created": "2027-01-01T00:00:00+00:00"}
    table["runs"].append({**table["runs"][0], "sweep_id": later, "name": "later-run"})
    (outputs / "sweep_runs.json").write_text(json.dumps(table))
    assert report_content.sweep_record(outputs)[0] == later
    best = json.loads((outputs / "partA_best.json").read_text())
    assert report_content.sweep_record(outputs, best)[0] == SWEEP
    assert f"Sweep {SWEEP}" in report_content.collect(outputs).parts[0].questions[1].items[0].text


def test_the_tested_sweep_is_matched_by_its_exact_id(tmp_path):
    """local-1 is not local-12: the record's sweep_id is matched exactly; an older record (no sweep_id) by its source."""
    outputs = make_outputs(tmp_path / "outputs")
    table = json.loads((outputs / "sweep_runs.json").read_text())
    longer = SWEEP + "2"  # SWEEP is a prefix of it, and it is created later
    table["sweeps"][longer] = {**table["sweeps"][SWEEP], "sweep_id": longer, "created": "2027-01-01T00:00:00+00:00"}
    table["runs"].append({**table["runs"][0], "sweep_id": longer, "name": "longer-run"})
    (outputs / "sweep_runs.json").write_text(json.dumps(table))
    best = json.loads((outputs / "partA_best.json").read_text())
    assert report_content.sweep_record(outputs, best)[0] == SWEEP
    assert report_content.sweep_record(outputs, {**best, "sweep_id": None})[0] == longer  # no sweep run: the latest
    older = {key: value for key, value in best.items() if key != "sweep_id"}
    assert report_content.sweep_record(outputs, older)[0] == SWEEP


def test_every_number_of_question_4_and_part_b_names_its_model(tmp_path):
    """Issue 21: partA_best.json put the sweep model's accuracy beside the retrained copy's history and timing,
    and Part B compared fine-tuning with the retrained copy's 18.1 s as if it were the tested model's."""
    outputs = make_outputs(tmp_path / "outputs")
    part_a, part_b = report_content.collect(outputs).parts
    q4 = "\n".join([item.text for item in part_a.questions[3].items] + part_a.questions[3].items[3].lines)
    assert "the sweep's best run r00-relu0, as saved, evaluated once on the test set (val/): TEST ACCURACY 42.00%" in q4
    assert "Beside it, its config retrained (3 epochs): validation accuracy 41.00%, test accuracy 39.00%." in q4
    assert "overfitting of the sweep's best run r00-relu0, as saved: it has only 2 epoch(s)" in q4  # its own curve
    assert "its config retrained (3 epochs) shows no sign of overfitting: after 3 epochs" in q4
    b3 = part_b.questions[2]
    text = "\n".join([b3.items[0].text] + b3.items[1].lines)
    assert "scratch CNN, the sweep's best run r00-relu0, as saved (test accuracy 42.00%)" in text
    assert "0.40x the 20.0 s of the scratch CNN (the sweep's best run r00-relu0, as saved)" in text
    assert "the fine-tuned model: it has no per-epoch train and validation curves" in text  # head: no epochs


def test_a_record_that_mixes_two_models_is_not_reported_as_one(tmp_path):
    outputs = make_outputs(tmp_path / "outputs")
    runtime.save_json({"val_acc": .97, "test_acc": .97, "history": history([.9, .99]), "mode": "quick",
                       "retrained": {"val_acc": .99, "test_acc": .99}}, outputs / "partA_best.json")
    q4 = report_content.collect(outputs).parts[0].questions[3]
    assert [item.kind for item in q4.items] == ["note"] and "no entry per tested model" in q4.items[0].text


@pytest.mark.parametrize("edit, expected", [
    (lambda o: _edit_model(o / "partA_best.json", test_acc="0.42"), "Could not read partA_best.json"),
    (lambda o: _edit_model(o / "partA_best.json", drop="test_acc"), "no field 'test_acc'"),
    (lambda o: _edit(o / "partB_strategies.json", rows=[]), "Could not read partB_strategies.json"),
    (lambda o: _edit(o / "partB_vs_scratch.json", scratch={"test_acc": .42, "params": 0, "seconds_to_best": 1.0}),
     "Could not read partB_vs_scratch.json"),
    (lambda o: _edit_runs(o, created="yesterday"), "created 'yesterday' is not a time"),
    (lambda o: _edit(o / "partA_best.json", sweep_id="local-gone"), "names sweep local-gone, which sweep_runs.json "
                                                                     "does not hold"),
    (lambda o: (o / "partB_strategies.json").write_text("{broken"), "partB_strategies.json is not readable JSON")])
def test_a_hand_edited_result_is_one_line_and_the_html_is_written(tmp_path, edit, expected):
    """Issue 21: each of these gave a traceback and no report.html; the missing sweep was replaced by the latest."""
    outputs = make_outputs(tmp_path / "outputs")
    edit(outputs)
    page = Path(report.run_report(outputs, online=False)["html"]).read_text()
    assert expected in page.replace("&#x27;", "'")
    assert "Self Declaration" in page


def _edit(path, drop=None, **values):
    record = json.loads(path.read_text())
    record.pop(drop, None)
    path.write_text(json.dumps({**record, **values}))


def _edit_model(path, drop=None, **values):
    """Edit the tested model's own entry of Part-A/03's record."""
    record = json.loads(path.read_text())
    model = record["models"][record["reported"]]
    model.pop(drop, None)
    model.update(values)
    path.write_text(json.dumps(record))


def _edit_runs(outputs, **values):
    table = json.loads((outputs / "sweep_runs.json").read_text())
    table["runs"][1].update(values)
    (outputs / "sweep_runs.json").write_text(json.dumps(table))


def test_question_3_in_the_report_has_what_was_seen_apart_from_what_is_supported(outputs):
    items = report_content.collect(outputs).parts[0].questions[2].items
    texts = [item.text for item in items]
    assert texts[0].startswith("Seen in these runs") and texts[2].startswith("Supported by the evidence")
    assert any(line.startswith("batch_norm, seen in these runs: ") for line in items[1].lines)
