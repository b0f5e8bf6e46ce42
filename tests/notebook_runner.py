"""Runs notebooks top to bottom in a real Jupyter kernel, each in its own outputs folder when asked.

Used by test_notebooks_alone.py and test_notebooks_in_order.py (two files, so that pytest-xdist's
`--dist loadfile` runs them on different workers).
"""
from pathlib import Path

import nbformat
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted([*REPO.glob("Part-A/*.ipynb"), *REPO.glob("Part-B/*.ipynb")])


def notebook_id(path: Path) -> str:
    return str(path.relative_to(REPO))


def run_notebook(path: Path, outputs: Path, monkeypatch) -> nbformat.NotebookNode:
    """Execute `path` with INAT_OUTPUTS=`outputs` (the kernel inherits the environment); save the executed
    copy beside the outputs for a human to read, and raise CellExecutionError on the first failing cell."""
    monkeypatch.setenv("INAT_OUTPUTS", str(outputs))
    outputs.mkdir(parents=True, exist_ok=True)
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, kernel_name="python3", timeout=1800,
                            resources={"metadata": {"path": str(path.parent)}})
    try:
        client.execute()
    finally:
        nbformat.write(nb, outputs / f"executed-{path.name}")
    return nb


def stream_text(nb) -> str:
    """Everything the notebook printed (stdout and stderr), for assertions on its messages."""
    return "".join(output.get("text", "") for cell in nb.cells if cell.cell_type == "code"
                   for output in cell.get("outputs", []) if output.get("output_type") == "stream")
