"""make publish: the origin remote's address written into the setup cells, the README's links and each notebook's
own Colab link, all agreeing; run on a clone of this repo, never on the repo itself."""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import nbformat
import pytest

from shared import bootstrap
from tools import publish

REPO = Path(__file__).resolve().parent.parent
SETUP_URL = re.compile(r'REPO_URL = os\.environ\.get\("INAT_REPO_URL", "([^"]+)"\)')


def git(cwd, *args):
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()


def links_everywhere(root: Path) -> dict:
    """What a reader opens, read back independently of the tool: {place: (slug, branch, file)} per link."""
    found = {"bootstrap.REPO_URL": [re.search(r'^REPO_URL = "https://github\.com/(.+?)\.git"$',
                                              (root / "shared/bootstrap.py").read_text(), re.M)[1]]}
    for notebook in bootstrap.notebooks(root):
        nb = nbformat.read(notebook, as_version=4)
        setup = next(c for c in nb.cells if c.cell_type == "code").source
        found[f"{notebook.name} setup cell"] = [re.match(r"https://github\.com/(.+?)\.git$",
                                                         SETUP_URL.search(setup)[1])[1]]
        title = next(c for c in nb.cells if c.cell_type == "markdown").source
        found[f"{notebook.name} title cell"] = [(m["slug"], m["rest"]) for m in publish.LINK.finditer(title)]
    readme = (root / "README.md").read_text()
    found["README links"] = [(m["slug"], m["rest"]) for m in publish.LINK.finditer(readme)]
    return found


def assert_all_agree(root: Path, slug: str, branch: str):
    found = links_everywhere(root)
    assert found["bootstrap.REPO_URL"] == [slug]
    for notebook in bootstrap.notebooks(root):
        path = notebook.relative_to(root).as_posix()
        assert found[f"{notebook.name} setup cell"] == [slug]
        # One Colab and one Kaggle link, each opening this very notebook.
        assert found[f"{notebook.name} title cell"] == [(slug, f"{branch}/{path}")] * 2, notebook.name
    assert len(found["README links"]) >= 2 * len(bootstrap.notebooks(root))
    for link_slug, rest in found["README links"]:
        assert link_slug == slug and rest.startswith(f"{branch}/") and (root / rest[len(branch) + 1:]).is_file()


def test_this_repo_agrees_with_itself():
    """Before publishing: every place holds the same address (the placeholder), and each notebook links itself."""
    slug = re.search(r'^REPO_URL = "https://github\.com/(.+?)\.git"$',
                     (REPO / "shared/bootstrap.py").read_text(), re.M)[1]
    branch = {rest.split("/")[0] for _, rest in links_everywhere(REPO)["README links"]} or {"main"}
    assert len(branch) == 1, branch
    assert_all_agree(REPO, slug, branch.pop())


@pytest.fixture
def clone(tmp_path):
    """A git clone of this repo with the working tree's files on top (so uncommitted work is what is tested),
    and a README line that still carries an address published earlier."""
    if shutil.which("git") is None or subprocess.run(["git", "rev-parse"], cwd=REPO).returncode:
        pytest.skip("needs git and a git checkout")
    target = tmp_path / "repo"
    git(tmp_path, "clone", "--quiet", str(REPO), str(target))
    for name in git(REPO, "ls-files", "-co", "--exclude-standard").splitlines():
        if (REPO / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, target / name)
    with open(target / "README.md", "a") as readme:
        readme.write("\n[old](https://colab.research.google.com/github/someone/old-name/blob/main/Part-A/02_sweep.ipynb)\n")
    git(target, "remote", "remove", "origin")
    git(target, "checkout", "--quiet", "-B", "main")  # whatever branch this checkout is on (a worktree's, say)
    return target


def run_publish(root: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the clone's own tools/ and shared/
    return subprocess.run([sys.executable, "-m", "tools.publish"], cwd=root, env=env, capture_output=True,
                          text=True, timeout=300)


def snapshot(root: Path) -> dict:
    return {name: (root / name).read_bytes() for name in git(root, "ls-files", "-co", "--exclude-standard").splitlines()
            if (root / name).is_file()}


@pytest.mark.parametrize("remote, branch", [("https://github.com/ada-l/cnn-a2.git", None),
                                            ("git@github.com:ada-l/cnn-a2.git", "feature/publish"),
                                            ("HTTPS://GitHub.com/ada-l/cnn-a2.git", "fix)x#1")])
def test_publish_writes_one_address_everywhere_and_twice_changes_nothing(clone, remote, branch):
    git(clone, "remote", "add", "origin", remote)
    if branch:
        git(clone, "checkout", "--quiet", "-b", branch)
    done = run_publish(clone)
    assert done.returncode == 0, done.stderr
    assert "published as https://github.com/ada-l/cnn-a2" in done.stdout and "README.md" in done.stdout
    assert_all_agree(clone, "ada-l/cnn-a2", quote(branch, safe="/") if branch else "main")  # fix%29x%231
    assert "<owner>" not in (clone / "README.md").read_text()
    assert "someone/old-name" not in (clone / "README.md").read_text()
    before = snapshot(clone)
    again = run_publish(clone)
    assert again.returncode == 0 and again.stdout.startswith("nothing to change"), again.stdout + again.stderr
    assert snapshot(clone) == before


def test_a_published_repo_moved_to_another_owner_is_republished(clone):
    git(clone, "remote", "add", "origin", "https://github.com/ada-l/cnn-a2")
    assert run_publish(clone).returncode == 0
    git(clone, "remote", "set-url", "origin", "ssh://git@github.com/grace-h/cnn-a2.git")
    assert run_publish(clone).returncode == 0
    assert_all_agree(clone, "grace-h/cnn-a2", "main")
    assert "ada-l" not in (clone / "README.md").read_text()


@pytest.mark.parametrize("remote, message", [(None, "no 'origin' remote"),
                                             ("https://gitlab.com/ada/cnn-a2.git", "not a GitHub repo"),
                                             ("https://ada:s3cret@gitlab.com/ada/x.git", "not a GitHub repo")])
def test_no_remote_or_another_host_is_one_line_and_writes_nothing(clone, remote, message):
    if remote:
        git(clone, "remote", "add", "origin", remote)
    before = snapshot(clone)
    done = run_publish(clone)
    assert done.returncode == 1 and done.stdout == "" and "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: ") and message in done.stderr
    assert "s3cret" not in done.stderr
    assert snapshot(clone) == before


def test_a_readme_link_to_a_missing_notebook_is_refused_before_anything_is_written(clone):
    git(clone, "remote", "add", "origin", "https://github.com/ada-l/cnn-a2.git")
    with open(clone / "README.md", "a") as readme:
        readme.write("[gone](https://colab.research.google.com/github/<owner>/<repo>/blob/main/Part-A/09_gone.ipynb)\n")
    before = snapshot(clone)
    done = run_publish(clone)
    assert done.returncode == 1 and "Part-A/09_gone.ipynb" in done.stderr and "Traceback" not in done.stderr
    assert snapshot(clone) == before


@pytest.mark.parametrize("remote", ["https://github.com/o/r.git", "https://github.com/o/r", "https://github.com/o/r/",
                                    "git@github.com:o/r.git", "ssh://git@github.com/o/r.git",
                                    "ssh://git@github.com:22/o/r", "https://token@github.com/o/r.git",
                                    "HTTPS://GitHub.com/o/r.git", "git@GITHUB.COM:o/r.git"])
def test_every_github_remote_form_gives_owner_and_repo(remote):
    assert publish.github_slug(remote + "\n") == "o/r"


def test_dotted_and_dashed_names_survive():
    assert publish.github_slug("git@github.com:my-org/cnn.v2.git") == "my-org/cnn.v2"


def test_make_publish_runs_the_tool():
    if shutil.which("make") is None:
        pytest.skip("no make here")
    plan = subprocess.run(["make", "-n", "publish"], cwd=REPO, capture_output=True, text=True).stdout
    assert "-m tools.publish" in plan and ".venv" not in plan  # text only: no virtual environment, no torch


def test_the_tool_needs_only_the_standard_library():
    """make publish runs on the system python3: importing it must not reach torch, numpy or nbformat."""
    code = "import sys, tools.publish; print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'numpy', 'nbformat'}))"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
