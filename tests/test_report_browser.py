"""report.html in a real headless Chromium (Debian's `chromium`, installed by .ci/run): every section heading is
there, every image decodes, nothing is fetched from the network, and a screenshot is made.

Without Chromium these tests skip and say why; `make test` never installs it. `check_complete` and
`check_in_browser` are also applied to the report that a real quick-mode run of the six notebooks in order ends
with (test_notebooks_in_order.py: Part-B/02's last cell writes it), so the notebooks run in order only once.
"""
import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest


BROWSER = next((shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome")
                if shutil.which(name)), None)
needs_browser = pytest.mark.skipif(BROWSER is None, reason="no Chromium on this machine: `apt-get install -y "
                                   "chromium` (.ci/run does) to open report.html in a real browser")
HEADINGS = ["Part A", *[f"Question {n}" for n in range(1, 6)], "Part B", *[f"Question {n}" for n in range(1, 5)],
            "Self Declaration"]
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
         # Any host name resolves to nothing: a request to the network fails, so an external image would not decode.
         "--host-resolver-rules=MAP * ~NOTFOUND"]
# Appended to a copy of the page: after load, writes what the browser saw into the DOM for --dump-dom.
PROBE = """<script>
window.addEventListener("load", () => {
  const images = [...document.images].map(img => ({alt: img.alt, width: img.naturalWidth, done: img.complete}));
  const fetched = performance.getEntriesByType("resource").map(entry => entry.name).filter(n => !n.startsWith("data:"));
  const headings = [...document.querySelectorAll("h1, h2")].map(h => h.textContent);
  const out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify({images, fetched, headings});
  document.body.appendChild(out);
});
</script>"""


def chromium(*arguments: str, profile: Path, timeout: int = 120) -> str:
    result = subprocess.run([BROWSER, *FLAGS, f"--user-data-dir={profile}", *arguments], capture_output=True,
                            text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def check_complete(outputs: Path, printed: dict) -> None:
    """The report that a quick run of the six notebooks ends with has every answer and figure."""
    page = (outputs / "report.html").read_text()
    assert "Offline report:" in printed["02_finetune_vs_scratch.ipynb"]
    assert "Missing results" not in page and "is missing: run" not in page, "a notebook's result did not arrive"
    assert "DEMO data" in page and "Mode: quick" in page
    text = html.unescape(re.sub(r"<[^>]+>", " ", re.sub(r"<img[^>]+>", "", page)))
    for needle in ["TEST ACCURACY", "95% interval", "P_{224}", "C_{224}", "Bayesian search instead of a grid",
                   "Expectations from the literature", "Linear(", "resnet18", "the fine-tuned model"]:
        assert needle in text, needle
    assert "nan" not in re.findall(r"\b[a-z]+\b", text) and "inf pp" not in text
    images = re.findall(r'<img src="data:image/png;base64,', page)
    assert len(images) >= 20, len(images)  # 3 + 3 + 1 curves + 7 (Q4) + 1 + 1 + 2 figures, plus the formulas


def check_in_browser(outputs: Path, scratch: Path) -> Path:
    """Open the report in headless Chromium; returns the screenshot's path."""
    page = (outputs / "report.html").read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", page), "the page links something external"
    probe_page = scratch / "probe.html"
    probe_page.write_text(page.replace("</body>", PROBE + "</body>"))
    dom = chromium("--virtual-time-budget=10000", "--dump-dom", probe_page.as_uri(), profile=scratch / "profile")
    seen = json.loads(html.unescape(re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S).group(1)))
    assert [h for h in seen["headings"] if h in HEADINGS] == HEADINGS, seen["headings"]
    assert seen["images"] and all(image["width"] > 0 for image in seen["images"]), \
        [image["alt"] for image in seen["images"] if not image["width"]]
    assert seen["fetched"] == []
    screenshot = outputs / "report-screenshot.png"
    chromium("--window-size=1280,2400", f"--screenshot={screenshot}", (outputs / "report.html").as_uri(),
             profile=scratch / "profile")
    assert screenshot.stat().st_size > 20_000
    if os.environ.get("REPORT_SCREENSHOTS"):  # a folder to keep the screenshots in, to look at them
        shutil.copy(screenshot, Path(os.environ["REPORT_SCREENSHOTS"]) / screenshot.name)
    return screenshot


@needs_browser
def test_a_report_with_every_item_kind_opens_offline_in_seconds(tmp_path):
    """The same browser checks on a small made-up outputs folder (no notebook run): every kind of item renders."""
    from test_report import make_outputs

    from shared.report import run_report

    outputs = make_outputs(tmp_path / "outputs")
    run_report(outputs, online=False)
    assert check_in_browser(outputs, tmp_path).is_file()
