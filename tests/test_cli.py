"""`python -m shared ...`: bad input stops before any work with one line, `error: <message>`, exit status 1."""
import json
import math
import subprocess
import sys

import pytest

from shared import __main__ as cli, data, runtime, sweep as sweep_lib, train as train_lib
from shared.runtime import REPO_ROOT as REPO, UserError
from test_train import copy_demo_dataset, no_decoding  # noqa: F401  (a fixture)

TINY_TRAIN = ["--input-size", "32", "--epochs", "1", "--set", "filters=4,4,4,4,4", "--set", "dense_neurons=8",
              "--set", "batch_norm=false"]


def refused(argv, capsys) -> str:
    """Run the CLI in this process; assert it stopped with exit status 1 and one `error:` line; that line."""
    capsys.readouterr()  # what the test printed while setting up is not the CLI's
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    out, err = capsys.readouterr()
    assert info.value.code == 1, err[-2000:]
    assert out == "" and "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and err.rstrip().endswith(errors[0]), err[-2000:]
    return errors[0]


@pytest.fixture
def no_training(monkeypatch):
    """Reaching the training function fails the test: the refusal must come first."""
    def refuse(*args, **kwargs):
        raise AssertionError("training started before the bad input was refused")
    monkeypatch.setattr(train_lib, "train", refuse)


@pytest.mark.parametrize("flags, message", [
    (["--epochs", "0"], "epochs must be >= 1"),          # used to mean "the default, 15"
    (["--epochs", "-2"], "epochs must be >= 1"),
    (["--input-size", "0"], "input_size must be >= 32"),  # used to mean "the default, 224"
    (["--batch-size", "0"], "batch_size must be >= 1"),   # used to mean "the default, 128"
    (["--set", "batch_size=0"], "batch_size must be >= 1"),  # used to divide by zero
    (["--set", "lr=0"], "lr must be > 0"),
    (["--set", "patience=-1"], "patience must be >= 0"),
    (["--set", "dropout=1.5"], "dropout must be in [0, 1)"),
    (["--set", "val_fraction=0"], "val_fraction must be in (0, 1)"),
    (["--set", "val_fraction=1"], "val_fraction must be in (0, 1)"),
    (["--set", "nope=1"], "unknown --set key 'nope'"),
    (["--set", "batch_norm=maybe"], "--set batch_norm: expected true or false"),
    (["--set", "epochs"], "--set expects key=value"),
    (["--set", "lr=inf"], "lr must be > 0 and <= 10, got inf"),     # used to train on, NaN from the first step
    (["--set", "lr=nan"], "lr must be > 0 and <= 10, got nan"),
    (["--set", "lr=100"], "lr must be > 0 and <= 10, got 100.0"),
    (["--set", "weight_decay=inf"], "weight_decay must be >= 0 and <= 1, got inf"),
    (["--set", "weight_decay=5"], "weight_decay must be >= 0 and <= 1, got 5.0"),
    (["--set", "in_channels=1"], "in_channels must be 3"),          # used to crash in the first convolution
    (["--set", "seed=-1"], "seed must be in 0..4294967295"),
])
def test_bad_train_settings_are_refused_before_training(flags, message, capsys, no_training):
    assert message in refused(["train", *flags], capsys)


def test_a_bad_setting_is_one_line_from_a_real_process():
    """What a user sees: no traceback, exit status 1, nothing on stdout."""
    out = subprocess.run([sys.executable, "-m", "shared", "train", "--epochs", "0"], capture_output=True,
                         text=True, cwd=REPO, timeout=120)
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr.strip().splitlines() == ["error: epochs must be >= 1, got 0"]


def test_missing_data_folder_is_one_line(tmp_path, capsys, no_training):
    """The message was right but came under a full traceback."""
    assert str(tmp_path / "nowhere") in refused(["train", "--data", str(tmp_path / "nowhere")], capsys)


def test_one_class_folder_is_refused_before_decoding(tmp_path, capsys, no_decoding):
    root = copy_demo_dataset(tmp_path / "data", train_classes=1)
    assert "at least 2" in refused(["train", "--data", str(root), *TINY_TRAIN], capsys)


def test_val_classes_that_differ_are_refused_before_decoding(tmp_path, capsys, no_decoding):
    root = copy_demo_dataset(tmp_path / "data", train_classes=3)
    (root / "val" / "class_02").rename(root / "val" / "class_xx")
    assert "class_xx" in refused(["train", "--data", str(root), *TINY_TRAIN], capsys)


def test_output_paths_are_checked_before_training(tmp_path, capsys, no_training):
    """A --json naming a folder, or a place no file can be made, used to fail after training: result lost."""
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    assert "is a folder" in refused(["train", "--json", str(tmp_path)], capsys)
    assert "cannot be written" in refused(["train", "--json", str(blocker / "result.json")], capsys)
    assert "is a folder" in refused(["train", "--checkpoint", str(tmp_path)], capsys)
    assert "cannot be written" in refused(["train", "--checkpoint", str(blocker / "best.pt")], capsys)
    assert "cannot be written" in refused(["finetune", "--model", "resnet18", "--strategy", "head",
                                           "--json", str(blocker / "r.json")], capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]  # no probe file left behind


def test_json_result_is_written_whole(tmp_path, capsys):
    path = tmp_path / "new" / "result.json"
    cli.main(["train", *TINY_TRAIN, "--json", str(path)])
    out, err = capsys.readouterr()
    assert out == "" and f"wrote {path}" in err
    result = json.loads(path.read_text())
    assert result["config"]["epochs"] == 1 and result["config"]["num_classes"] == 10
    assert [p.name for p in path.parent.iterdir()] == ["result.json"]  # written atomically: no temporary file


@pytest.mark.parametrize("flags, message", [
    (["--model", "resnet_9000", "--strategy", "head"], "not a torchvision classification model"),
    (["--model", "resnet18", "--strategy", "head", "--epochs", "0"], "epochs must be >= 1"),
    (["--model", "resnet18", "--strategy", "head", "--input-size", "0"], "input_size must be >= 32"),
    (["--model", "resnet18", "--strategy", "full", "--k", "2"], "--k is used by first_k and last_k only"),
    (["--model", "resnet18", "--strategy", "last_k", "--k", "9", "--random-init"], "k must be in 0..4"),
    (["--model", "vit_b_16", "--strategy", "head", "--input-size", "64"], "needs exactly its 224px crop"),
    # Each used to load the weights and end in a traceback: refused by name, with what is supported.
    (["--model", "squeezenet1_0", "--strategy", "head", "--random-init"], "no Linear classification head"),
    (["--model", "raft_small", "--strategy", "head", "--random-init"], "not a torchvision classification model"),
    (["--model", "googlenet", "--strategy", "last_k", "--random-init"], "first_k/last_k do not know the units"),
])
def test_bad_finetune_settings_are_refused_before_decoding(flags, message, capsys, no_decoding):
    assert message in refused(["finetune", *flags], capsys)


# --------------------------------------------------------------------------------------------
# Output paths: no output replaces another output or an input of the same command (issue 14)
# --------------------------------------------------------------------------------------------
@pytest.fixture
def no_sweep(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the sweep started before the bad input was refused")
    monkeypatch.setattr(sweep_lib, "run_sweep", refuse)


def test_json_over_the_checkpoint_is_refused_before_training(tmp_path, capsys, no_training):
    """The JSON used to replace the checkpoint it names."""
    same = tmp_path / "best.pt"
    line = refused(["train", "--checkpoint", str(same), "--json", str(same)], capsys)
    assert "--json" in line and "is also --checkpoint" in line and not same.exists()


def test_sweep_json_over_the_runs_table_is_refused_and_the_table_kept(tmp_path, capsys, no_sweep):
    """One sweep's payload used to replace the runs table: every other sweep's runs lost, exit status 0."""
    table = tmp_path / "runs.json"
    table.write_text('{"sweeps": {}, "runs": ["every earlier run"]}')
    assert "is also --runs" in refused(["sweep", "--count", "1", "--runs", str(table), "--json", str(table)], capsys)
    assert "is also --runs" in refused(["sweep", "--count", "0", "--json", str(runtime.SWEEP_RUNS)], capsys)
    assert "every earlier run" in table.read_text()


@pytest.mark.parametrize("command", [["train"], ["finetune", "--model", "resnet18", "--strategy", "head"],
                                     ["bench"], ["sweep", "--count", "1"]])
def test_outputs_over_the_data_or_the_cache_are_refused(command, tmp_path, capsys, monkeypatch, no_training,
                                                         no_sweep, no_decoding):
    cache, data_root = tmp_path / "cache", tmp_path / "data"
    monkeypatch.setenv("INAT_CACHE", str(cache))  # not made yet: refused because it is the cache, not a folder
    assert "is also the image cache" in refused([*command, "--json", str(cache)], capsys)
    assert "is also --data" in refused([*command, "--data", str(data_root), "--json", str(data_root)], capsys)
    assert not cache.exists() and not data_root.exists()


def test_runs_table_that_is_a_folder_or_under_a_file_is_one_line(tmp_path, capsys, no_sweep):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    assert "is a folder" in refused(["sweep", "--count", "1", "--runs", str(tmp_path)], capsys)
    line = refused(["sweep", "--count", "1", "--runs", str(blocker / "runs.json")], capsys)
    assert f"{blocker} is a file, not a folder" in line


@pytest.mark.parametrize("command, message", [
    (["sweep", "--count", "1", "--epochs", "0", "--input-size", "0"], "epochs must be >= 1, got 0"),
    (["sweep", "--count", "1", "--input-size", "0"], "input_size must be >= 32"),  # used to mean "the default"
    (["sweep", "--count", "-1"], "count must be >= 0, got -1"),
    (["bench", "--epochs", "0"], "epochs must be >= 1, got 0"),
    (["bench", "--batch-size", "0"], "batch_size must be >= 1, got 0"),
    (["bench", "--configs", "light,foo"], "unknown bench config(s) 'foo'"),
])
def test_zero_and_unknown_values_are_refused_in_every_command(command, message, capsys, no_sweep):
    assert message in refused(command, capsys)


def test_a_test_set_with_no_readable_image_is_refused_before_training(tmp_path, capsys, monkeypatch):
    """`train --test` used to exit 0 with test_acc NaN."""
    root = copy_demo_dataset(tmp_path / "data", train_classes=2)
    for image in (root / "val").rglob("*.jpg"):
        image.write_bytes(b"not a jpeg")

    def refuse(*args, **kwargs):
        raise AssertionError("training started before the unreadable test set was refused")
    monkeypatch.setattr(train_lib, "fit", refuse)
    line = refused(["train", "--data", str(root), "--test", *TINY_TRAIN], capsys)
    assert f"no readable test image in {root}/val (4 file(s) skipped)" in line


def test_a_result_with_nan_never_exits_0():
    assert cli.require_finite({"val_acc": 0.5, "test_acc": 0.25, "name": "x"})["test_acc"] == 0.25
    for bad in (math.nan, math.inf):
        with pytest.raises(UserError, match="no result is written"):
            cli.require_finite({"val_acc": 0.5, "test_acc": bad})


def test_report_html_over_an_input_is_refused(tmp_path, capsys):
    (tmp_path / "sweep_runs.json").write_text("{}")
    line = refused(["report", "--outputs", str(tmp_path), "--html", str(tmp_path / "sweep_runs.json")], capsys)
    assert "is also the report's input sweep_runs.json" in line
    assert "is not a folder" in refused(["report", "--outputs", str(tmp_path / "nowhere")], capsys)
    assert (tmp_path / "sweep_runs.json").read_text() == "{}"


def test_report_prints_what_run_report_returns(tmp_path, capsys, monkeypatch):
    report = pytest.importorskip("shared.report")
    calls = []
    monkeypatch.setattr(report, "run_report", lambda **kwargs: calls.append(kwargs) or {"html": str(kwargs["html"])})
    cli.main(["report", "--outputs", str(tmp_path), "--offline"])
    cli.main(["report", "--outputs", str(tmp_path), "--html", str(tmp_path / "r.html")])
    assert calls == [{"outputs": tmp_path, "html": tmp_path / "report.html", "online": False},
                     {"outputs": tmp_path, "html": tmp_path / "r.html", "online": None}]  # None: online with a key
    first, second = capsys.readouterr().out.split("}\n{")
    assert json.loads(first + "}") == {"html": str(tmp_path / "report.html")}


def test_sweep_continues_by_default_and_new_starts_one(capsys, monkeypatch):
    """An unfinished sweep of the same config, data and mode is continued unless --new asks for a new one."""
    asked = []
    monkeypatch.setattr(sweep_lib, "run_sweep", lambda root, **kwargs: asked.append(kwargs["sweep_id"]) or {})
    cli.main(["sweep", "--count", "1"])
    cli.main(["sweep", "--count", "1", "--new"])
    assert asked == [None, "new"]
    assert "give one of them" in refused(["sweep", "--count", "1", "--new", "--sweep-id", "local-x"], capsys)


def test_estimate_prints_the_full_sweeps_time_on_real_shaped_data(tmp_path, capsys):
    root = copy_demo_dataset(tmp_path / "inat", train_classes=10)  # no demo marker: read as real data
    capsys.readouterr()  # what the setup printed is not the CLI's
    cli.main(["estimate", "--data", str(root), "--count", "2", "--input-size", "32"])
    out, err = capsys.readouterr()
    result = json.loads(out)
    assert result["estimate"] and result["count"] == 2 and result["input_size"] == 32
    assert result["train_folder_images"] == 100 and result["total_seconds"] > 0
    assert "Estimated sweep time on" in err
    assert "count must be >= 1" in refused(["estimate", "--data", str(root), "--count", "0"], capsys)


def test_estimate_on_the_demo_data_says_the_notebook_prints_its_own(capsys):
    cli.main(["estimate"])
    out, err = capsys.readouterr()
    assert json.loads(out) == {"estimate": False, "data": str(data.find_data()), "demo": True}
    assert "Part-A/02 runs its small demo sweep" in err


# --------------------------------------------------------------------------------------------
# A file another command wrote is never replaced (issue 21): the kind is read from the file itself
# --------------------------------------------------------------------------------------------
@pytest.fixture
def project_files(tmp_path):
    """Real files of each kind the project writes, under names that do not give their kind away."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import nbformat
    import torch

    files = {"table": tmp_path / "sweep_runs.json", "record": tmp_path / "partA_best.json",
             "sweep_weights": tmp_path / "sweep_checkpoints" / "local-1.pt", "figure": tmp_path / "growth.png",
             "notebook": tmp_path / "executed.ipynb", "train_result": tmp_path / "train.json"}
    files["table"].write_text('{"sweeps": {"local-1": {}}, "runs": [{"name": "r01", "sweep_id": "local-1"}]}')
    files["record"].write_text(json.dumps({"source": "sweep", "mode": "demo", "data": {}, "reported": "sweep",
                                           "models": {"sweep": {"config": {}, "val_acc": 0.5, "split": {}}}}))
    files["sweep_weights"].parent.mkdir()
    torch.save({"config": {}, "state_dict": {}, "run_name": "r01", "sweep_id": "local-1"}, files["sweep_weights"])
    fig = plt.figure()
    fig.savefig(files["figure"])
    plt.close(fig)
    nbformat.write(nbformat.v4.new_notebook(), files["notebook"])
    files["train_result"].write_text(json.dumps({"config": {}, "val_acc": 0.5, "split": {}}))
    return files


@pytest.mark.parametrize("argv, victim, holds", [
    (["train", "--json", "{table}"], "table", "holds a runs table, not train result"),
    (["sweep", "--count", "1", "--runs", "{record}"], "record", "holds Part-A/03's record of the best model"),
    (["sweep", "--count", "0", "--sweep-id", "local-1", "--json", "{record}"], "record", "not sweep result"),
    (["train", "--checkpoint", "{sweep_weights}"], "sweep_weights", "holds a sweep's best weights, not checkpoint"),
    (["report", "--offline", "--html", "{figure}"], "figure", "holds a figure (PNG), not report page"),
    (["report", "--offline", "--html", "{notebook}"], "notebook", "holds an executed notebook"),
    (["finetune", "--model", "resnet18", "--strategy", "head", "--json", "{train_result}"], "train_result",
     "holds a train result (train --json), not finetune result"),
])
def test_an_output_over_another_commands_file_is_refused_and_the_file_kept(argv, victim, holds, project_files,
                                                                           tmp_path, capsys, no_training, no_sweep):
    before = project_files[victim].read_bytes()
    argv = [arg.format(**{k: str(v) for k, v in project_files.items()}) for arg in argv]
    if argv[0] == "report":
        argv += ["--outputs", str(tmp_path)]
    line = refused(argv, capsys)
    assert holds in line and "writing would replace it" in line
    assert project_files[victim].read_bytes() == before


def test_a_command_may_replace_its_own_earlier_result(project_files):
    runtime.check_output_file(project_files["train_result"], "--json", "train result")
    runtime.check_output_file(project_files["table"], "the runs table", "runs table")
    with pytest.raises(UserError, match="holds JSON this project did not write"):
        (project_files["train_result"].parent / "notes.json").write_text('{"mine": 1}')
        runtime.check_output_file(project_files["train_result"].parent / "notes.json", "--json", "train result")


def test_a_json_that_is_not_a_runs_table_is_refused_never_read_as_empty(project_files):
    from shared import runs_table
    with pytest.raises(UserError, match="holds Part-A/03's record of the best model, not a runs table"):
        runs_table.read_table(project_files["record"])
    with pytest.raises(UserError, match="not a runs table"):
        (project_files["record"].parent / "empty.json").write_text("{}")
        runs_table.read_table(project_files["record"].parent / "empty.json")


@pytest.mark.parametrize("command", [["train"], ["sweep", "--count", "1"], ["estimate"]])
def test_an_absurd_input_size_is_one_line(command, capsys, no_training, no_sweep):
    """--input-size 100000 used to try to allocate 600 GB of image cache."""
    assert "input_size must be >= 32 (five 2x2 pools) and <= 1024" in refused([*command, "--input-size", "100000"],
                                                                               capsys)
    assert "input_size must be >= 32 and <= 1024" in refused(
        ["finetune", "--model", "resnet18", "--strategy", "head", "--input-size", "100000"], capsys)


def test_estimate_count_0_is_refused_before_the_demo_set_is_built(capsys, monkeypatch):
    monkeypatch.setattr(data, "find_data", lambda *a, **k: (_ for _ in ()).throw(AssertionError("data built")))
    assert "count must be >= 1, got 0" in refused(["estimate", "--count", "0"], capsys)


def test_a_rerun_replaces_its_own_earlier_result_as_the_commands_write_it(tmp_path, capsys):
    """The rule's other half, on the files the commands really write: their own kind is recognised."""
    json_path, checkpoint, html = tmp_path / "result.json", tmp_path / "best.pt", tmp_path / "report.html"
    for _ in range(2):
        cli.main(["train", *TINY_TRAIN, "--json", str(json_path), "--checkpoint", str(checkpoint)])
        cli.main(["report", "--offline", "--outputs", str(tmp_path), "--html", str(html)])
    assert [runtime.file_kind(p)[0] for p in (json_path, checkpoint, html)] == ["train result", "checkpoint",
                                                                                "report page"]


@pytest.mark.parametrize("victim, text, holds", [
    # Part-A/03's record without the keys that name it today (a later format): its data and mode still do.
    ("partA_best.json", json.dumps({"config": {}, "val_acc": 0.5, "split": {}, "history": [], "mode": "quick",
                                    "data": {"root": "demo"}, "source": "the sweep's best run"}), "a notebook's record"),
    ("page.html", "<!DOCTYPE html>\n<html><head><title>my notes</title></head></html>", "an HTML page this project"),
])
def test_a_file_of_another_kind_is_refused_even_when_it_looks_like_ours(victim, text, holds, tmp_path, capsys,
                                                                         no_training):
    path = tmp_path / victim
    path.write_text(text)
    flag = "--html" if victim.endswith(".html") else "--json"
    command = ["report", "--offline", "--outputs", str(tmp_path)] if flag == "--html" else ["train"]
    assert holds in refused([*command, flag, str(path)], capsys)
    assert path.read_text() == text
