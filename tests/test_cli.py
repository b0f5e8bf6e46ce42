"""`python -m shared ...`: bad input stops before any work with one line, `error: <message>`, exit status 1."""
import json
import subprocess
import sys

import pytest

from shared import __main__ as cli, data, train as train_lib
from shared.runtime import REPO_ROOT as REPO
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
])
def test_bad_finetune_settings_are_refused_before_decoding(flags, message, capsys, no_decoding):
    assert message in refused(["finetune", *flags], capsys)
