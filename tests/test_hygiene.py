"""Repository hygiene: stripped notebooks, no absolute paths, no API keys, no exact torch pins."""
import re
import subprocess
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted([*REPO.glob("Part-A/*.ipynb"), *REPO.glob("Part-B/*.ipynb")])
SETUP_LINE = "# Setup: make `shared` importable"
# Absolute paths of one machine: /work, /home, /root or a Windows drive. Not /kaggle or /content,
# which are the documented mount points on Kaggle and Colab.
ABSOLUTE_PATH = re.compile(r"(?<![\w.~/-])/(?:work|home|root)(?:/|\b)|(?<![\w\\])[A-Z]:\\")
# W&B API keys. The patterns are assembled from pieces so that this file does not match itself.
KEY_PATTERNS = [
    re.compile(r"(?i)(?:wandb|key).{0,40}?\b[0-9a-f]{40}\b"),  # a 40-hex key after 'wandb' or 'key'
    re.compile(r"WANDB_API_KEY\s*[=:]\s*['\"]?[A-Za-z0-9_\-]{20,}"),  # WANDB_API_KEY= with a real value
    re.compile("wandb" + r"\.login\(\s*key\s*=\s*['\"]"),  # a key written into the login call
]


def tracked_files() -> list[Path]:
    try:
        listing = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [REPO / name for name in listing.decode().split("\0") if name and (REPO / name).is_file()]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: str(p.relative_to(REPO)))
def test_notebook_is_stripped_and_uses_python3(path):
    nb = nbformat.read(path, as_version=4)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    dirty = [i for i, cell in enumerate(code) if cell.outputs or cell.execution_count is not None]
    assert not dirty, f"{path.name}: code cells {dirty} carry outputs; commit notebooks stripped"
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"
    assert nb.cells[0].cell_type == "markdown", "a notebook opens with the assignment's question"
    assert code and code[0].source.startswith(SETUP_LINE), f"{path.name}: the first code cell is not the setup cell"


def test_every_committed_notebook_is_a_stripped_source_or_an_executed_hand_in_copy():
    """The stripped rule covers every committed notebook but the copies `make hand-in` puts in hand-in/, which
    keep their outputs on purpose: what a grader reads on GitHub (tools/hand_in.py)."""
    from tools.hand_in import FOLDER

    notebooks = [path.relative_to(REPO) for path in tracked_files() if path.suffix == ".ipynb"]
    stray = [str(p) for p in notebooks if REPO / p not in NOTEBOOKS and p.parts[0] != FOLDER]
    assert not stray, f"notebooks outside Part-A/, Part-B/ and {FOLDER}/: {stray}"


def test_notebooks_exist():
    assert NOTEBOOKS, "no notebooks under Part-A/ or Part-B/"


def test_no_absolute_paths_in_notebooks_or_shared():
    files = NOTEBOOKS + sorted((REPO / "shared").rglob("*.py"))
    hits = [f"{path.relative_to(REPO)}:{n}: {line.strip()}"
            for path in files
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
            if ABSOLUTE_PATH.search(line)]
    assert not hits, "absolute paths of one machine:\n" + "\n".join(hits)


def test_absolute_path_pattern():
    assert ABSOLUTE_PATH.search('open("/home/me/x.jpg")') and ABSOLUTE_PATH.search("cd /work/repo")
    assert ABSOLUTE_PATH.search("/root") and ABSOLUTE_PATH.search(r"C:\Users\me")
    assert not ABSOLUTE_PATH.search("root / 'val'") and not ABSOLUTE_PATH.search("data/root/x")
    assert not ABSOLUTE_PATH.search("/kaggle/input") and not ABSOLUTE_PATH.search("~/homework")
    assert not ABSOLUTE_PATH.search(r"differ from train/'s:\n")  # an escaped newline is not a drive


def test_no_api_keys_in_tracked_files():
    hits = []
    for path in tracked_files():
        text = path.read_text(encoding="utf-8", errors="ignore")
        hits += [f"{path.relative_to(REPO)}: {pattern.pattern}" for pattern in KEY_PATTERNS if pattern.search(text)]
    assert not hits, "possible W&B API keys committed:\n" + "\n".join(hits)


def test_key_patterns_catch_keys():
    fake = "0123456789abcdef" * 2 + "01234567"
    caught = [f'wandb login {fake}', f'api_key = "{fake}"', f"WANDB_API_KEY={fake}",
              "WANDB_API_KEY" + ": 'local-abcdefghijklmnopqrstuvwxyz'", "wandb" + '.login(key="anything")']
    harmless = ['os.environ["WANDB_API_KEY"]', "export WANDB_API_KEY=<your key>", "wandb" + ".login(key=key)",
                f"commit {fake}"]
    assert all(any(p.search(s) for p in KEY_PATTERNS) for s in caught)
    assert not any(p.search(s) for p in KEY_PATTERNS for s in harmless)


def test_torch_is_not_pinned_exactly():
    requirements = (REPO / "requirements.txt").read_text().splitlines()
    pins = [line for line in requirements
            if re.match(r"\s*torch(vision)?\s*==", line.split("#")[0])]
    assert not pins, f"Kaggle and Colab ship their own CUDA torch; an exact pin reinstalls GBs: {pins}"
