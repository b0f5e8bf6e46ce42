"""The notebooks' setup cell: found in a clone, cloned on Colab/Kaggle (or one line why not), the W&B pins installed."""
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from shared import bootstrap, runtime

REPO = Path(__file__).resolve().parent.parent


def first_code_cell(path):
    return next(c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code").source


@pytest.mark.parametrize("path", bootstrap.notebooks(), ids=lambda p: p.name)
def test_every_setup_cell_is_the_synced_bootstrap(path):
    assert first_code_cell(path).startswith(bootstrap.SETUP_CELL), \
        f"{path.name}: setup cell out of sync; run `python -m shared.bootstrap --sync`"
    assert "DATA = None" not in first_code_cell(path), "the data path is set once (INAT_DATA or inat_settings.json)"


def run_setup_cell(cwd, **env):
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("COLAB_", "KAGGLE_", "INAT_REPO"))}
    environment.pop("PYTHONPATH", None)
    environment.update(env)
    return subprocess.run([sys.executable, "-c", bootstrap.SETUP_CELL], cwd=cwd, env=environment,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def committed_clone_url(tmp_path_factory):
    """A local clone URL of this repo's HEAD: what the setup cell clones on Colab (nothing uncommitted travels)."""
    if subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True).returncode:
        pytest.skip("not a git checkout")
    head = subprocess.run(["git", "ls-tree", "-r", "--name-only", "HEAD", "shared/bootstrap.py"], cwd=REPO,
                          capture_output=True, text=True).stdout
    if not head.strip():
        pytest.skip("shared/bootstrap.py is not committed yet")
    return REPO.as_uri()


@pytest.mark.parametrize("platform", ["COLAB_RELEASE_TAG", "KAGGLE_KERNEL_RUN_TYPE"])
def test_opened_alone_on_colab_or_kaggle_it_clones_and_continues(tmp_path, committed_clone_url, platform):
    clone = tmp_path / "clones"
    lonely = tmp_path / "opened-from-github"  # no repo above this folder
    lonely.mkdir()
    done = run_setup_cell(lonely, **{platform: "1", "INAT_REPO_URL": committed_clone_url,
                                     "INAT_CLONE_DIR": str(clone)})
    assert done.returncode == 0, done.stderr
    assert (clone / "da6401-a2" / "shared" / "bootstrap.py").exists()
    assert "Cloning" in done.stdout and "device" in done.stdout  # it went on to print the settings
    again = run_setup_cell(lonely, **{platform: "1", "INAT_REPO_URL": committed_clone_url,
                                      "INAT_CLONE_DIR": str(clone)})
    assert again.returncode == 0 and "Cloning" not in again.stdout  # a re-run reuses the clone


def test_opened_alone_locally_it_says_what_to_do(tmp_path):
    done = run_setup_cell(tmp_path)
    assert done.returncode != 0
    assert "shared/ not found" in done.stderr and "Traceback" not in done.stderr


def test_in_a_clone_it_finds_the_repo_without_cloning(tmp_path):
    done = run_setup_cell(REPO / "Part-A", COLAB_RELEASE_TAG="1", INAT_REPO_URL=str(tmp_path / "nowhere"))
    assert done.returncode == 0, done.stderr
    assert "Cloning" not in done.stdout


def test_hosted_without_a_repo_url_gives_the_line_to_paste(tmp_path):
    done = run_setup_cell(tmp_path, COLAB_RELEASE_TAG="1", INAT_REPO_URL="https://github.com/<owner>/<repo>.git",
                          INAT_CLONE_DIR=str(tmp_path / "c"))
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "%env INAT_REPO_URL=https://github.com/you/repo.git" in done.stderr.splitlines()


def one_line_refusal(done) -> str:
    """The setup cell's message when it stops: one line, no traceback (SystemExit prints it to stderr)."""
    assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


def test_a_clone_that_fails_is_one_line_with_gits_reason(tmp_path):
    done = run_setup_cell(tmp_path, COLAB_RELEASE_TAG="1", INAT_REPO_URL=(tmp_path / "no-such-repo").as_uri(),
                          INAT_CLONE_DIR=str(tmp_path / "c"))
    line = one_line_refusal(done)
    assert "git clone" in line and "failed" in line and "INAT_REPO_URL" in line and "no-such-repo" in line
    assert not (tmp_path / "c" / "da6401-a2").exists()


def test_no_git_is_one_line(tmp_path):
    done = run_setup_cell(tmp_path, KAGGLE_KERNEL_RUN_TYPE="Interactive", PATH=str(tmp_path),  # no git here
                          INAT_REPO_URL="https://github.com/you/repo.git", INAT_CLONE_DIR=str(tmp_path / "c"))
    assert "git is not installed" in one_line_refusal(done)


def test_a_folder_that_is_not_the_repo_at_the_clone_target_is_one_line(tmp_path):
    target = tmp_path / "c" / "da6401-a2"
    target.mkdir(parents=True)
    (target / "notes.txt").write_text("someone else's files")
    done = run_setup_cell(tmp_path, COLAB_RELEASE_TAG="1", INAT_REPO_URL="https://github.com/you/repo.git",
                          INAT_CLONE_DIR=str(tmp_path / "c"))
    line = one_line_refusal(done)
    assert str(target) in line and "not a clone" in line and "INAT_CLONE_DIR" in line
    assert (target / "notes.txt").read_text() == "someone else's files"


def test_pins_come_from_requirements_and_only_missing_ones_install(monkeypatch):
    pins = bootstrap.pinned_requirements()
    assert set(pins) == {"wandb", "sweeps", "wandb-workspaces", "simplejpeg"} and all(pins.values())
    assert bootstrap.missing_requirements(pins) == []  # this venv has them
    calls = []
    monkeypatch.setenv("COLAB_RELEASE_TAG", "1")
    pip = lambda cmd, **kwargs: calls.append(cmd) or subprocess.CompletedProcess(cmd, 0, "", "")  # noqa: E731
    installed = bootstrap.ensure_requirements({**pins, "no-such-package-xyz": "1.0"}, runner=pip)
    assert installed == ["no-such-package-xyz==1.0"]
    assert calls == [[sys.executable, "-m", "pip", "install", "--quiet", "no-such-package-xyz==1.0"]]
    monkeypatch.delenv("COLAB_RELEASE_TAG")
    with pytest.raises(SystemExit, match="pip install -r requirements.txt"):  # locally: say how, never install
        bootstrap.ensure_requirements({"no-such-package-xyz": "1.0"}, runner=pip)


# What pip 25 prints on Colab's image after installing wandb 0.31.0 (the red block of issue 19).
RESOLVER_NOTE = """ERROR: pip's dependency resolver does not currently take into account all the packages that are installed. \
This behaviour is the source of the following dependency conflicts.
google-adk 2.7.1 requires opentelemetry-api<=1.42.1,>=1.36.0, but you have opentelemetry-api 1.43.0 which is incompatible.
google-adk 2.7.1 requires opentelemetry-sdk<=1.42.1,>=1.36.0, but you have opentelemetry-sdk 1.43.0 which is incompatible.
"""


def test_pips_resolver_block_is_one_line_and_a_failed_install_is_one_line(monkeypatch, capsys):
    monkeypatch.setenv("COLAB_RELEASE_TAG", "1")
    noted = lambda cmd, **kwargs: subprocess.CompletedProcess(cmd, 0, "", RESOLVER_NOTE)  # noqa: E731
    bootstrap.ensure_requirements({"no-such-package-xyz": "1.0"}, runner=noted)
    out = capsys.readouterr().out
    assert "ERROR" not in out and out.count("\n") == 2  # "Installing ..." and the note
    assert "this image's own google-adk 2.7.1 asked for other versions" in out
    failed = lambda cmd, **kwargs: subprocess.CompletedProcess(cmd, 1, "", "x\nERROR: No matching distribution")  # noqa: E731
    with pytest.raises(SystemExit, match="^pip could not install no-such-package-xyz==1.0: ERROR: No matching"):
        bootstrap.ensure_requirements({"no-such-package-xyz": "1.0"}, runner=failed)


def test_describe_says_where_outputs_and_caches_go():
    text = runtime.describe()
    assert str(runtime.OUTPUT_DIR) in text and str(runtime.cache_dir()) in text


def test_a_user_error_in_a_notebook_is_one_line_and_the_cell_still_fails():
    """With no data attached on Colab, every notebook used to end in a 31-line DownloadError traceback."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell(f"import sys; sys.path.insert(0, {str(REPO)!r})\n"
                                  "from shared import bootstrap, sources\nbootstrap.one_line_errors()"),
        nbformat.v4.new_code_cell("raise sources.DownloadError('the download failed:\\n  no network')"),
        nbformat.v4.new_code_cell("1 / 0")])
    NotebookClient(nb, kernel_name="python3", timeout=120, allow_errors=True).execute()
    user, bug = (next(o for o in cell.outputs if o.output_type == "error") for cell in nb.cells[1:])
    assert user.traceback == ["error: the download failed: no network"] and user.ename == "DownloadError"
    assert len(bug.traceback) > 1 and bug.ename == "ZeroDivisionError"  # a bug keeps its traceback
