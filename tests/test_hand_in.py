"""make hand-in: the executed notebooks, figures and report copied into a committed folder, linked from the README."""
import shutil
import subprocess
import sys

import pytest

from tools import hand_in

from test_publish import REPO


@pytest.fixture
def repo(tmp_path):
    root = tmp_path / "repo"
    root.mkdir()
    shutil.copy(REPO / "README.md", root / "README.md")
    return root


def test_nothing_executed_yet_is_one_line_and_nothing_is_written(repo, tmp_path):
    before = (repo / "README.md").read_text()
    done = subprocess.run([sys.executable, "-c", f"from tools import hand_in; from pathlib import Path; "
                           f"hand_in.hand_in(Path({str(tmp_path / 'empty')!r}), Path({str(repo)!r}))"],
                          cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 1 and done.stderr.strip().count("\n") == 0 and "run `make run` first" in done.stderr
    assert not (repo / "hand-in").exists() and (repo / "README.md").read_text() == before


def test_executed_copies_figures_and_report_are_copied_and_linked_once(repo, tmp_path):
    outputs = tmp_path / "outputs"
    (outputs / "Part-A").mkdir(parents=True)
    (outputs / "Part-A" / "02_sweep.ipynb").write_text('{"cells": [], "nbformat": 4}')
    (outputs / "partA_02_importance.png").write_bytes(b"\x89PNG fake")
    (outputs / "report.html").write_text("<!DOCTYPE html>")
    copied = hand_in.hand_in(outputs, repo)
    assert {p.relative_to(repo).as_posix() for p in copied} == {
        "hand-in/Part-A/02_sweep.ipynb", "hand-in/figures/partA_02_importance.png", "hand-in/report.html"}
    readme = (repo / "README.md").read_text()
    # Question 2's and 3's rows link the executed Part-A/02; rows whose notebook was not executed link nothing.
    assert readme.count("[Part-A/02](Part-A/02_sweep.ipynb) · [executed](hand-in/Part-A/02_sweep.ipynb)") == 2
    assert readme.count("· [executed]") == 2
    hand_in.hand_in(outputs, repo)
    assert (repo / "README.md").read_text() == readme  # a second run changes nothing


def test_make_hand_in_runs_the_tool_without_the_virtual_environment():
    if shutil.which("make") is None:
        pytest.skip("no make here")
    plan = subprocess.run(["make", "-n", "hand-in"], cwd=REPO, capture_output=True, text=True).stdout
    assert "-m tools.hand_in" in plan and ".venv" not in plan
