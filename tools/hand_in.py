"""`make hand-in`: put what `make run` produced where a grader on GitHub sees it: a committed `hand-in/` folder.

Introduced for the hand-in (README, "What you hand in", step 2). The source notebooks stay output-free; the
executed copies (outputs/Part-A, outputs/Part-B), the figures (outputs/*.png) and outputs/report.html are copied
into hand-in/, and each row of the README's question table gets a link to its executed copy. Standard library
only, like tools/publish.py. It commits nothing: it prints what to commit.

    python -m tools.hand_in [--outputs DIR]     # or: make hand-in
"""
from __future__ import annotations

import argparse
import re
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FOLDER = "hand-in"
# A question-table link to a source notebook, with the executed copy's link that this tool adds after it.
ROW_LINK = re.compile(r"\[(Part-[AB]/\d\d)\]\((Part-[AB]/[^)]+\.ipynb)\)(?: · \[executed\]\([^)]*\))?")


def hand_in(outputs: Path, root: Path = ROOT) -> list[Path]:
    """Copy the executed notebooks, figures and report from `outputs` into root/hand-in; returns what was copied."""
    notebooks = sorted([*outputs.glob("Part-A/*.ipynb"), *outputs.glob("Part-B/*.ipynb")])
    if not notebooks:
        raise SystemExit(f"error: no executed notebook in {outputs}/Part-A or Part-B: run `make run` first "
                         f"(or give --outputs the folder it wrote)")
    target = root / FOLDER
    copies = {path: target / path.relative_to(outputs) for path in notebooks}
    copies |= {path: target / "figures" / path.name for path in sorted(outputs.glob("*.png"))}
    if (outputs / "report.html").is_file():
        copies[outputs / "report.html"] = target / "report.html"
    for source, copy in copies.items():
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, copy)
    readme = root / "README.md"
    readme.write_text(ROW_LINK.sub(lambda m: _row_link(m, root), readme.read_text(encoding="utf-8")), encoding="utf-8")
    return sorted(copies.values())


def _row_link(match: re.Match, root: Path) -> str:
    """A source link, followed by its executed copy's link where hand-in/ holds one."""
    executed = f"{FOLDER}/{match[2]}"
    return match[0].split(" · ")[0] + (f" · [executed]({executed})" if (root / executed).is_file() else "")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.hand_in", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--outputs", type=Path, default=ROOT / "outputs", help="what make run wrote (default outputs/)")
    copied = hand_in(parser.parse_args(argv).outputs)
    print(f"copied {len(copied)} file(s) into {FOLDER}/ and linked the executed notebooks from README.md")
    print(f"now commit and push them: git add {FOLDER} README.md && git commit -m 'Hand-in: executed notebooks "
          f"and report' && git push", file=sys.stdout)


if __name__ == "__main__":
    main()
