"""Each notebook runs alone, top to bottom, in quick mode, with an empty outputs folder.

A student opens notebooks out of order; a Colab session starts with nothing. Nothing a notebook does may
depend on what another one left behind.
"""
import pytest

from notebook_runner import NOTEBOOKS, notebook_id, run_notebook


@pytest.mark.parametrize("path", NOTEBOOKS, ids=notebook_id)
def test_notebook_runs_alone_in_an_empty_outputs_folder(path, tmp_path, monkeypatch):
    outputs = tmp_path / "outputs"
    run_notebook(path, outputs, monkeypatch)
    assert any(outputs.iterdir()), f"{path.name} wrote nothing to its outputs folder"
