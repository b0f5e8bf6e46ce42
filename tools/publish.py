"""`make publish`: write the repo's public GitHub address everywhere a reader opens the repo from.

Introduced for the hand-in (README, "What you hand in", step 1). It reads the `origin` remote, in https
(`https://github.com/OWNER/REPO(.git)`) or SSH (`git@github.com:OWNER/REPO.git`, `ssh://git@github.com/OWNER/REPO.git`)
form, and writes the https address into:
- `REPO_URL` in shared/bootstrap.py, and the six notebooks' setup cells (`bootstrap.setup_cell` with that
  address, as `python -m shared.bootstrap --sync` would write them): what a notebook opened alone on Colab or
  Kaggle clones;
- README.md and docs/*.md: every Open-in-Colab and Open-in-Kaggle link, whatever owner, repo and branch it
  held (the placeholder `<owner>/<repo>` or an earlier published address), and the `git clone` address;
- each notebook's first markdown cell: one line of links that open that notebook on Colab and on Kaggle.

Links name the current branch (`main` when HEAD is detached). Everything is checked before anything is
written, and a second run changes nothing. It commits nothing: it prints what to commit and push.

    python -m tools.publish        # or: make publish
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

from shared import bootstrap  # standard library only, as this file: make publish needs no virtual environment

ROOT = Path(__file__).resolve().parent.parent
PLACEHOLDER = "<owner>/<repo>"  # what the repo holds until it is published
# A GitHub remote in one of the three forms git prints; group 1 is "OWNER/REPO" (lazy, so ".git" stays out).
_NAME = r"[A-Za-z0-9_.-]+"
# Scheme and host are case-insensitive (HTTPS://GitHub.com/... is the same remote).
REMOTE_FORMS = [re.compile(rf"^https://(?:[^@/\s]+@)?github\.com/({_NAME}/{_NAME}?)(?:\.git)?/?$", re.IGNORECASE),
                re.compile(rf"^git@github\.com:({_NAME}/{_NAME}?)(?:\.git)?/?$", re.IGNORECASE),
                re.compile(rf"^ssh://git@github\.com(?::\d+)?/({_NAME}/{_NAME}?)(?:\.git)?/?$", re.IGNORECASE)]
# An Open-in-Colab or Open-in-Kaggle link: the site, then OWNER/REPO, then BRANCH/PATH after /blob/.
LINK = re.compile(r"(?P<site>https://colab\.research\.google\.com/github/|"
                  r"https://kaggle\.com/kernels/welcome\?src=https://github\.com/)"
                  r"(?P<slug>[^/\s]+/[^/\s]+)/blob/(?P<rest>[^\s)\]\"'>]+)")
COLAB, KAGGLE = "https://colab.research.google.com/github/", "https://kaggle.com/kernels/welcome?src=https://github.com/"
REPO_URL_LINE = re.compile(r'^REPO_URL = "([^"\n]*)"$', re.MULTILINE)


class PublishError(Exception):
    """Something `make publish` cannot do: printed as one `error:` line, exit status 1, nothing written."""


def github_slug(remote: str) -> str:
    """"OWNER/REPO" of a GitHub remote URL in https or SSH form; a PublishError for any other URL."""
    for form in REMOTE_FORMS:
        if match := form.match(remote.strip()):
            return match.group(1)
    shown = re.sub(r"//[^@/\s]+@", "//", remote.strip())  # never echo a token written into the URL
    raise PublishError(f"origin is {shown!r}, not a GitHub repo: make publish needs "
                       f"https://github.com/OWNER/REPO.git or git@github.com:OWNER/REPO.git")


def _git(root: Path, *args: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
    except FileNotFoundError:
        raise PublishError("git is not installed: make publish reads the repo's origin remote with git") from None


def origin_slug(root: Path) -> str:
    done = _git(root, "remote", "get-url", "origin")
    if done.returncode:
        raise PublishError("this repo has no 'origin' remote: create the repo on GitHub, then "
                           "`git remote add origin https://github.com/OWNER/REPO.git`, push, and run make publish again")
    return github_slug(done.stdout)


def current_branch(root: Path) -> str:
    """The branch as it goes into a link: URL-encoded (a branch may hold ')' or '#'), its '/' kept."""
    done = _git(root, "symbolic-ref", "--quiet", "--short", "HEAD")
    return quote(done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else "main", safe="/")


def notebook_link_line(slug: str, branch: str, path: str) -> str:
    """The line in a notebook's first markdown cell that opens that notebook, `path`, on Colab and Kaggle."""
    tail = f"{slug}/blob/{branch}/{path}"
    return f"[Open in Colab]({COLAB}{tail}) · [Open in Kaggle]({KAGGLE}{tail})"


def relink(text: str, slug: str, branch: str, root: Path, where: str) -> str:
    """`text` with every Colab/Kaggle link pointing at `slug` on `branch`; the file each opens stays the same.

    The branch may hold '/', so the file is found as the part of BRANCH/PATH that names a file of the repo.
    A link to a file the repo does not have is a PublishError: a reader would open nothing.
    """
    def rewrite(match: re.Match) -> str:
        rest = match["rest"]
        splits = [i for i, char in enumerate(rest) if char == "/"]
        path = next((rest[i + 1:] for i in splits if (root / rest[i + 1:]).is_file()), None)
        if path is None:
            raise PublishError(f"{where} links {match.group(0)}, a file this repo does not have; fix the link first")
        return f"{match['site']}{slug}/blob/{branch}/{path}"
    return LINK.sub(rewrite, text)


def readme_text(text: str, slug: str, branch: str, old_slugs: set[str], root: Path, where: str) -> str:
    """README or docs text with its links and its `git clone` address (earlier `old_slugs`) on `slug`."""
    text = relink(text, slug, branch, root, where)
    for old in old_slugs - {slug}:
        text = re.sub(rf"https://github\.com/{re.escape(old)}(?=\.git\b|[/\s)\]\"'>]|$)", f"https://github.com/{slug}",
                      text, flags=re.MULTILINE)
    return text


def notebook_cell(source: str, slug: str, branch: str, path: str) -> str:
    """A first markdown cell with its link line on `slug`: replaced where it is, else added below the title."""
    line = notebook_link_line(slug, branch, path)
    lines = source.split("\n")
    at = next((i for i, text in enumerate(lines) if LINK.search(text)), None)
    if at is not None:
        lines[at] = line
    else:
        lines[1:1] = ["", line]
    return "\n".join(lines)


def planned_changes(root: Path, slug: str, branch: str) -> dict[Path, str]:
    """{file: new text} for the files whose text changes; computed whole before anything is written."""
    setup_source = root / "shared" / "bootstrap.py"
    source = setup_source.read_text(encoding="utf-8")
    found = REPO_URL_LINE.findall(source)
    if len(found) != 1:
        raise PublishError(f"{setup_source} should hold one line REPO_URL = \"...\"; found {len(found)}")
    published = REMOTE_FORMS[0].match(found[0])  # an address published earlier; None for the placeholder
    old_slugs = {PLACEHOLDER, *([published.group(1)] if published else [])}
    url = f"https://github.com/{slug}.git"
    changes = {setup_source: REPO_URL_LINE.sub(f'REPO_URL = "{url}"', source)}
    for page in [root / "README.md", *sorted((root / "docs").glob("*.md"))]:
        if page.is_file():
            where = str(page.relative_to(root))
            changes[page] = readme_text(page.read_text(encoding="utf-8"), slug, branch, old_slugs, root, where)
    for notebook in bootstrap.notebooks(root):
        nb = json.loads(notebook.read_text(encoding="utf-8"))  # nbformat's layout, without nbformat
        cells = {kind: next((c for c in nb["cells"] if c["cell_type"] == kind), None) for kind in ("markdown", "code")}
        if None in cells.values():
            raise PublishError(f"{notebook} needs a markdown cell for its Open-in-Colab link and a code cell for "
                               f"its setup block")
        text = {kind: "".join(cell["source"]) for kind, cell in cells.items()}
        text["markdown"] = notebook_cell(text["markdown"], slug, branch, notebook.relative_to(root).as_posix())
        text["code"] = bootstrap.with_setup_cell(text["code"], bootstrap.setup_cell(url))
        for kind, cell in cells.items():
            cell["source"] = text[kind].splitlines(keepends=True)
        changes[notebook] = json.dumps(nb, sort_keys=True, indent=1, ensure_ascii=False) + "\n"
    return {path: text for path, text in changes.items() if text != path.read_text(encoding="utf-8")}


def publish(root: Path, slug: str, branch: str) -> list[Path]:
    """Write `slug`'s address into the repo at `root` (see the module docstring); returns the files changed."""
    changes = planned_changes(root, slug, branch)
    for path, text in changes.items():
        path.write_text(text, encoding="utf-8")
    return sorted(changes)


def main(root: Path = ROOT) -> None:
    try:
        slug, branch = origin_slug(root), current_branch(root)
        changed = publish(root, slug, branch)
    except PublishError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    if not changed:
        print(f"nothing to change: already published as https://github.com/{slug} (branch {branch})")
        return
    names = [str(path.relative_to(root)) for path in changed]
    print(f"published as https://github.com/{slug} (branch {branch}); changed {', '.join(names)}")
    print(f"now commit and push them: git commit -m 'Publish as {slug}' -- {' '.join(names)} && git push")


if __name__ == "__main__":
    main()
