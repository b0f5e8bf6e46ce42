"""The hand-in report as one self-contained HTML file (`outputs/report.html`), built with or without W&B.

Introduced in Part-B/02, beside `report.py`. Figures are base64 PNG data URIs, formulas drawn by matplotlib's
mathtext (their LaTeX source below), styles inline: nothing is fetched when it opens. All text is escaped.
"""
from __future__ import annotations

import base64
import html
import io
from pathlib import Path

from .report_content import Content, Item
from .runtime import atomic_path

TITLE = "DA6401 Assignment 2: convolutional networks on iNaturalist-12K"
DECLARATION = ("I, [your name], roll number [your roll number], swear on my honour that I have written the code "
               "and the report by myself and have not copied it from the internet or other students.")
STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; max-width: 980px; margin: 2em auto;
       padding: 0 1em; line-height: 1.5; color: #1d1d1f; }
h1 { border-bottom: 2px solid #ddd; padding-bottom: .2em; margin-top: 1.6em; }
h1.title { font-size: 1.6em; border: none; }
h2 { margin-top: 1.4em; }
.source { color: #666; font-size: .9em; margin-top: -.6em; }
.warning { background: #fff4e5; border-left: 5px solid #f08c00; padding: .6em 1em; margin: .6em 0; }
.note { background: #eef4ff; border-left: 5px solid #4263eb; padding: .5em 1em; }
figure { margin: 1em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #444; font-size: .92em; }
.latex img { max-width: 100%; }
.latex code { display: block; color: #555; font-size: .8em; white-space: pre-wrap; }
table { border-collapse: collapse; margin: .8em 0; font-size: .92em; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
li { margin: .3em 0; }
.declaration { border: 1px solid #999; padding: .8em 1em; }
"""


def figure_png(fig, dpi: int = 100) -> bytes:
    import matplotlib.pyplot as plt
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def latex_png(source: str) -> bytes:
    """A formula drawn with matplotlib's mathtext: no MathJax, no network."""
    import matplotlib.pyplot as plt
    fig = plt.figure(figsize=(0.01, 0.01))
    fig.text(0, 0, f"${source}$", fontsize=15)
    return figure_png(fig, dpi=110)


def _image(png: bytes, alt: str) -> str:
    return f'<img src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}" alt="{html.escape(alt)}">'


def render_item(item: Item) -> str:
    from .plots import plot_learning_curves
    text = html.escape(item.text)
    if item.kind == "text":
        return f"<p>{text}</p>"
    if item.kind == "note":
        return f'<p class="note">{text}</p>'
    if item.kind == "bullets":
        return "<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in item.lines) + "</ul>"
    if item.kind == "latex":
        return f'<div class="latex">{_image(latex_png(item.text), item.text)}<code>{text}</code></div>'
    if item.kind == "figure":
        return f"<figure>{_image(item.path.read_bytes(), item.text)}<figcaption>{text}</figcaption></figure>"
    if item.kind == "table":
        head = "".join(f"<th>{html.escape(c)}</th>" for c in item.columns)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in row) + "</tr>" for row in item.rows)
        return f"<table><caption>{text}</caption><tr>{head}</tr>{body}</table>"
    if item.kind == "panels" and item.panels.get("kind") == "best_run" and item.panels.get("history"):
        fig = plot_learning_curves(item.panels["history"], title=item.text, config=item.panels.get("config"))
        return f"<figure>{_image(figure_png(fig), item.text)}<figcaption>{text}</figcaption></figure>"
    return ""  # the sweep's live panels exist only in the W&B report; their PNG copies follow them


def anchor(*titles: str) -> str:
    """'part-a-question-2': a link target for a heading (report.html#part-b jumps to Part B)."""
    return "-".join(title.lower().replace(" ", "-") for title in titles)


def render(content: Content, wandb_url: str | None = None) -> str:
    parts = [f'<h1 class="title">{html.escape(TITLE)}</h1>']
    parts += [f'<p class="warning">{html.escape(w)}</p>' for w in content.warnings]
    if content.missing:
        parts.append(f'<p class="warning">Missing results: run {html.escape(", ".join(content.missing))}.</p>')
    if wandb_url:
        parts.append(f'<p>The same report on W&amp;B: {html.escape(wandb_url)}</p>')
    for part in content.parts:
        parts.append(f'<h1 id="{anchor(part.title)}">{html.escape(part.title)}</h1>')
        for question in part.questions:
            parts.append(f'<section><h2 id="{anchor(part.title, question.title)}">{html.escape(question.title)}</h2>'
                         f'<p class="source">From {html.escape(question.source)}</p>')
            parts += [render_item(item) for item in question.items]
            parts.append("</section>")
    parts.append(f'<h1 id="{anchor("Self Declaration")}">Self Declaration</h1>'
                 f'<p class="declaration">{html.escape(DECLARATION)}</p>')
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(TITLE)}</title><style>{STYLE}</style></head>\n<body>\n"
            + "\n".join(parts) + "\n</body></html>\n")


def write_html(content: Content, path: Path, wandb_url: str | None = None) -> None:
    """Write the report atomically: a reader never sees half a file."""
    page = render(content, wandb_url)
    with atomic_path(path) as tmp:
        Path(tmp).write_text(page, encoding="utf-8")
