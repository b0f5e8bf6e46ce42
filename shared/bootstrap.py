"""The notebooks' first cell: find (or, on Colab and Kaggle, clone) the repo, then install what the platform lacks.

Introduced in every notebook's setup cell. A notebook cannot import `shared` before it has found the repo, so the
cell's text lives here, as `SETUP_CELL`, copied into the six notebooks by `python -m shared.bootstrap --sync`.
`REPO_URL` (written by `make publish`; `INAT_REPO_URL` overrides it) names where the repo is cloned from.
"""
from __future__ import annotations

import argparse
import importlib.metadata
import os
import re
import subprocess
import sys
from pathlib import Path

# Written by `make publish`; while it holds the placeholder, hosted notebooks ask for INAT_REPO_URL.
REPO_URL = "https://github.com/<owner>/<repo>.git"
REPO_ROOT = Path(__file__).resolve().parent.parent
# The packages that Colab and Kaggle images do not bring at the versions this repo is tested with.
PLATFORM_PINS = ("wandb", "sweeps", "wandb-workspaces", "simplejpeg")  # wandb-workspaces: the online report


def setup_cell(repo_url: str = REPO_URL) -> str:
    """The setup cell's text, cloning from `repo_url`."""
    return f'''# Setup: make `shared` importable. In a clone it is found above this notebook; opened on its own on
# Colab or Kaggle, the repo is cloned first. (This block is synced from shared/bootstrap.py.)
import os, sys, shutil, subprocess, pathlib
REPO_URL = os.environ.get("INAT_REPO_URL", "{repo_url}")
HOSTED = "COLAB_RELEASE_TAG" in os.environ or "KAGGLE_KERNEL_RUN_TYPE" in os.environ
ROOT = next((p for p in [pathlib.Path.cwd(), *pathlib.Path.cwd().parents] if (p / "shared" / "bootstrap.py").exists()), None)
if ROOT is None and HOSTED:
    ROOT = pathlib.Path(os.environ.get("INAT_CLONE_DIR") or ("/kaggle/working" if "KAGGLE_KERNEL_RUN_TYPE" in os.environ else "/content")) / "da6401-a2"
    if not (ROOT / "shared" / "bootstrap.py").exists():
        if "<" in REPO_URL:
            raise SystemExit("This repo's URL is not filled in yet: run this line in a new cell, with your repo's URL, then this cell again:\\n%env INAT_REPO_URL=https://github.com/you/repo.git")
        if ROOT.exists() and any(ROOT.iterdir()):
            raise SystemExit(f"{{ROOT}} exists but is not a clone of this repo: delete or rename it, or set INAT_CLONE_DIR to another folder.")
        if shutil.which("git") is None:
            raise SystemExit("git is not installed here, so the repo cannot be cloned: install git, or upload the repo and open the notebook inside it.")
        print(f"Cloning {{REPO_URL}} into {{ROOT}} ...")
        clone = subprocess.run(["git", "clone", "--quiet", "--depth", "1", REPO_URL, str(ROOT)], capture_output=True, text=True)
        if clone.returncode:
            raise SystemExit(f"git clone {{REPO_URL}} failed: {{' '.join(clone.stderr.split())}} (check INAT_REPO_URL, and that the repo is public)")
if ROOT is None:
    raise SystemExit("shared/ not found: run this notebook from inside a clone of the repo "
                     "(git clone <repo> && cd <repo> && make run), or set INAT_REPO_URL on Colab/Kaggle.")
sys.path.insert(0, str(ROOT))
from shared import bootstrap, runtime, data
bootstrap.one_line_errors()  # bad input (no data, a bad setting) shows as its one line, not a traceback
bootstrap.ensure_requirements()  # on Colab/Kaggle: installs the pins the platform lacks (W&B, simplejpeg)
runtime.seed_everything(42)
print(runtime.describe())
'''


SETUP_CELL = setup_cell()


def one_line_errors() -> None:
    """In a notebook, show a UserError (bad input) as one `error:` line instead of a traceback; tracebacks stay for
    bugs. The cell still fails, so Run all and `make run` stop there."""
    from .runtime import UserError
    try:
        shell = get_ipython()  # noqa: F821 (IPython's builtin in a kernel)
    except NameError:
        return

    def show(shell, etype, value, tb, tb_offset=None):
        shell._showtraceback(etype, value, line := [f"error: {' '.join(str(value).split())}"])  # the kernel's error
        return line
    shell.set_custom_exc((UserError,), show)


def pinned_requirements() -> dict[str, str]:
    """{name: version} of requirements.txt's `name==version` lines for PLATFORM_PINS."""
    pins = {}
    for line in (REPO_ROOT / "requirements.txt").read_text().splitlines():
        match = re.match(r"\s*([A-Za-z0-9_.-]+)\s*==\s*([^\s#;]+)", line)
        if match and match.group(1).lower() in PLATFORM_PINS:
            pins[match.group(1).lower()] = match.group(2)
    return pins


def missing_requirements(pins: dict[str, str]) -> list[str]:
    """The `name==version` specs whose installed version differs (or that are not installed)."""
    missing = []
    for name, version in pins.items():
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            installed = None
        if installed != version:
            missing.append(f"{name}=={version}")
    return missing


def ensure_requirements(pins: dict[str, str] | None = None, runner=subprocess.run) -> list[str]:
    """Install the platform pins (W&B, simplejpeg) into this kernel on Colab/Kaggle, and return them; locally say
    how. Torch is never touched: the platforms' own CUDA builds are the right ones."""
    missing = missing_requirements(pinned_requirements() if pins is None else pins)
    if not missing:
        return []
    if not ("COLAB_RELEASE_TAG" in os.environ or "KAGGLE_KERNEL_RUN_TYPE" in os.environ):  # not Colab or Kaggle
        raise SystemExit(f"missing {', '.join(missing)}: run `make test` or `make run` once (they create .venv), "
                         f"or `{sys.executable} -m pip install -r requirements.txt`.")
    print(f"Installing {', '.join(missing)} into this kernel ...")
    done = runner([sys.executable, "-m", "pip", "install", "--quiet", *missing], capture_output=True, text=True)
    if done.returncode:
        last = (done.stderr.strip().splitlines() or ["?"])[-1]
        raise SystemExit(f"pip could not install {', '.join(missing)}: {last}")
    # pip's red "dependency resolver" block (the image's own packages pin other versions), said in one line.
    if conflicts := sorted({" ".join(line.split()[:2]) for line in done.stderr.splitlines() if " requires " in line}):
        print(f"Note: pip says this image's own {', '.join(conflicts)} asked for other versions of what W&B needs; "
              f"these notebooks never import them, so nothing here is affected (`pip check` lists them).")
    importlib.invalidate_caches()
    return missing


def notebooks(root: Path = REPO_ROOT) -> list[Path]:
    """The six notebooks, in the order they run."""
    return sorted([*root.glob("Part-A/*.ipynb"), *root.glob("Part-B/*.ipynb")])


def with_setup_cell(source: str, cell: str = SETUP_CELL) -> str:
    """A first code cell's `source` with its bootstrap block replaced by `cell`; the code after the block stays.
    A source that already starts with `cell` is returned as it is."""
    if source.startswith(cell):
        return source
    marker = "print(runtime.describe())\n"
    rest = source.split(marker, 1)[1] if marker in source else source
    return cell + ("\n" + rest.lstrip("\n") if rest.strip() else "")


def sync(write: bool = True) -> list[Path]:
    """The notebooks whose first code cell does not start with SETUP_CELL; with `write`, its block replaced by it."""
    import nbformat
    stale = []
    for path in notebooks():
        nb = nbformat.read(path, as_version=4)
        cell = next(c for c in nb.cells if c.cell_type == "code")
        if not cell.source.startswith(SETUP_CELL):
            stale.append(path)
            if write:
                cell.source = with_setup_cell(cell.source)
                nbformat.write(nb, path)
    return stale


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m shared.bootstrap", description=__doc__)
    parser.add_argument("--sync", action="store_true", help="rewrite the notebooks' setup blocks from SETUP_CELL")
    args = parser.parse_args()
    if args.sync:
        for path in sync():
            print(f"synced {path.relative_to(REPO_ROOT)}")
    else:
        print("\n".join(f"out of sync: {p.relative_to(REPO_ROOT)}" for p in sync(write=False))
              or "all setup cells in sync")
