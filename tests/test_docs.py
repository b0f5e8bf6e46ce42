"""The README and docs/ pages: every relative link resolves, and the README opens every notebook on Colab and Kaggle.

The Colab/Kaggle links carry `<owner>/<repo>` until `make publish` writes the origin's address into them
(tools/publish.py); either way each notebook has exactly one link of each kind.
"""
import re
from pathlib import Path

import pytest

from shared import bootstrap

REPO = Path(__file__).resolve().parent.parent
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces as hyphens."""
    return {re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
            for line in page.read_text().splitlines() if line.startswith("#")}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves(page):
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
        if re.match(r"[a-z]+:", target):
            continue
        file, _, anchor = target.partition("#")
        dest = (page.parent / file).resolve() if file else page
        if not dest.exists() or (anchor and anchor not in anchors(dest)):
            broken.append(target)
    assert not broken, f"{page.name}: {broken}"


def test_readme_opens_every_notebook_on_colab_and_kaggle():
    readme = (REPO / "README.md").read_text()
    slug = re.escape(bootstrap.REPO_URL.removesuffix(".git").split("github.com/")[-1])
    for notebook in bootstrap.notebooks():
        path = re.escape(notebook.relative_to(REPO).as_posix())
        for prefix in (r"https://colab\.research\.google\.com/github/",
                       r"https://kaggle\.com/kernels/welcome\?src=https://github\.com/"):
            links = re.findall(prefix + slug + r"/blob/[^/)\s]+/" + path + r"\)", readme)
            assert len(links) == 1, (prefix, notebook.name, links)
