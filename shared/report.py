"""The hand-in report: the W&B report (online, with a key) and its offline copy `outputs/report.html`.

Introduced in Part-B/02 (its last cell) and `python -m shared report`. With a W&B key the same sections are built
with W&B's reports API: the sweep's own panels, the logged figures as media panels, the text as computed. It is
saved as a draft whose address `outputs/report_wandb.json` keeps, so a rebuild updates the same report.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

from . import runtime, tracking
from .report_content import INPUTS, Content, Item, collect
from .report_html import DECLARATION, TITLE, write_html
from .runtime import UserError

RECORD = "report_wandb.json"  # the W&B report's address, so a rebuild updates it
SWEEP_PARAMETERS = ["base_filters", "organisation", "kernel_size", "activation", "batch_norm", "augment", "dropout",
                    "dense_neurons", "lr", "batch_size", "weight_decay"]


def reports_api():
    """(wandb_workspaces.reports.v2, wandb_workspaces.expr), without the pydantic deprecation warnings of its import."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import wandb_workspaces.reports.v2 as wr
        from wandb_workspaces import expr
    return wr, expr


def sweep_filter(sweep_id: str, run_name: str | None = None):
    """A W&B server sweep's runs carry its id as `Sweep`; an offline sweep's runs are grouped by its local id."""
    _, expr = reports_api()
    in_sweep = expr.Metric("Group" if sweep_id.startswith("local-") else "Sweep") == sweep_id
    return expr.And(in_sweep, expr.Metric("Name") == run_name) if run_name else expr.And(in_sweep)


def panel_grid(item: Item, entity: str, project: str):
    """The live W&B panels of a `panels` item: the three sweep plots of Question 2, or the best run's curves."""
    wr, _ = reports_api()
    spec = item.panels
    if spec["kind"] == "sweep":
        name, run = f"sweep {spec['sweep_id']}", None
        metrics = [*(wr.Config(key) for key in SWEEP_PARAMETERS), wr.SummaryMetric("val_acc")]
        columns = [wr.ParallelCoordinatesPlotColumn(metric=metric) for metric in metrics]
        panels = [wr.ScatterPlot(title="val_acc vs created", x=wr.Metric("CreatedTimestamp"),
                                 y=wr.SummaryMetric("val_acc")),
                  wr.ParallelCoordinatesPlot(title="parallel coordinates", columns=columns),
                  wr.ParameterImportancePlot(with_respect_to="val_acc")]
    else:
        name, run = f"best run {spec['run']}", spec["run"]
        panels = [wr.LinePlot(title="accuracy", x="Step", y=["train_acc", "val_acc"]),
                  wr.LinePlot(title="loss", x="Step", y=["train_loss", "val_loss"])]
    runset = wr.Runset(entity=entity, project=project, name=name, filters=sweep_filter(spec["sweep_id"], run))
    return wr.PanelGrid(runsets=[runset], panels=panels)


def item_blocks(item: Item, entity: str, project: str) -> list:
    wr, expr = reports_api()
    if item.kind == "text":
        return [wr.P(item.text)]
    if item.kind == "note":
        return [wr.BlockQuote(item.text)]
    if item.kind == "bullets":
        return [wr.UnorderedList(items=list(item.lines))]
    if item.kind == "latex":
        return [wr.LatexBlock(text=item.text)]
    if item.kind == "table":
        rows = [item.columns, ["---"] * len(item.columns), *item.rows]
        return [wr.MarkdownBlock(text=f"**{item.text}**\n\n" + "\n".join("| " + " | ".join(r) + " |" for r in rows))]
    if item.kind == "figure" and not item.media:
        return [wr.P(f"{item.text}: see report.html")]
    if item.kind == "figure":  # a media panel on the run that logged it, found by its group and name
        group, run_name, key = item.media
        runset = wr.Runset(entity=entity, project=project, name=run_name,
                           filters=expr.And(expr.Metric("Group") == group, expr.Metric("Name") == run_name))
        media = wr.MediaBrowser(title=item.text, media_keys=[key], num_columns=1)
        return [wr.PanelGrid(runsets=[runset], panels=[media])]
    if item.kind == "panels":
        return [wr.P(item.text), panel_grid(item, entity, project)]
    raise ValueError(f"unknown report item {item.kind!r}")


def wandb_blocks(content: Content, entity: str, project: str) -> list:
    """The W&B report's blocks, in the assignment's order; built without the network."""
    wr, _ = reports_api()
    blocks = [wr.CalloutBlock(text=warning) for warning in content.warnings]
    if content.missing:
        blocks.append(wr.CalloutBlock(text=f"Missing results: run {', '.join(content.missing)}."))
    for part in content.parts:
        blocks.append(wr.H1(part.title))
        for question in part.questions:
            blocks += [wr.H2(question.title), wr.P(f"From {question.source}")]
            for item in question.items:
                blocks += item_blocks(item, entity, project)
    return blocks + [wr.H1("Self Declaration"), wr.P(DECLARATION)]


def build_wandb_report(content: Content, entity: str, project: str, previous: str | None = None):
    """The report object: the one at `previous` (its URL) with new blocks, or a new one."""
    wr, _ = reports_api()
    report = None
    if previous:
        try:
            report = wr.Report.from_url(previous)
        except Exception as err:  # deleted, or another account's: a new one is made, and the caller says so
            print(f"W&B report {previous} could not be loaded ({type(err).__name__}); making a new one.")
    if report is None:
        report = wr.Report(entity=entity, project=project, title=TITLE,
                           description="Every answer computed by the notebooks from the runs.")
    report.blocks = wandb_blocks(content, report.entity, report.project)
    return report


def save_online(content: Content, outputs: Path) -> str | None:
    """Save the W&B report as a draft, remember its URL, print it; returns the URL (None: not saved, said why)."""
    try:
        reports_api()
    except ImportError:
        print("W&B report skipped: wandb-workspaces is not installed (pip install -r requirements.txt).")
        return None
    record_path = outputs / RECORD
    try:
        previous = json.loads(record_path.read_text()).get("url") if record_path.is_file() else None
    except (OSError, UnicodeDecodeError, ValueError, AttributeError) as err:  # AttributeError: not an object
        content.warnings.append(f"W&B report not saved: {record_path} could not be read ({type(err).__name__}), "
                                f"and saving would lose the address it holds; fix or move it, then build again")
        return None
    try:
        entity = tracking.ENTITY or _default_entity()
        report = build_wandb_report(content, entity, tracking.PROJECT, previous)
        report.save(draft=True)
    except Exception as err:  # the server's side: network, permissions, quota; report.html is written anyway
        reason = (str(err).strip().splitlines() or [""])[0]
        print(f"W&B report not saved ({type(err).__name__}: {reason}).")
        return None
    url = report.url
    # Offline runs that `wandb sync` has not uploaded (it leaves a `.synced` mark): the panels cannot show them.
    waiting = [run for run in (outputs / "wandb").glob("offline-run-*") if not any(run.glob("*.wandb.synced"))]
    if waiting:
        print(f"{len(waiting)} offline W&B run(s) are not uploaded yet, so the report's panels miss them: "
              f"wandb sync {outputs / 'wandb'}/offline-run-*")
    runtime.save_json({"url": url, "id": report.id, "entity": report.entity, "project": report.project}, record_path)
    print(f"W&B report {'updated' if url == previous else 'created'} (draft): {url}")
    return url


def _default_entity() -> str:
    import wandb
    return wandb.Api(timeout=tracking.VERIFY_SECONDS).default_entity


def run_report(outputs: Path | None = None, html: Path | None = None, online: bool | None = None) -> dict:
    """Build the report from `outputs` (default: the outputs folder): always `html` (default OUTPUTS/report.html);
    online too when `online` is True, or None and a W&B key is accepted. Returns what it built and found."""
    outputs = Path(outputs or runtime.OUTPUT_DIR)
    if not outputs.is_dir():
        raise UserError(f"report: {outputs} is not a folder of results; run the notebooks first (make run)")
    html = Path(html or outputs / "report.html")
    inputs = {name: outputs / name for name in INPUTS}
    runtime.check_distinct_paths({"html": html, "W&B record": outputs / RECORD}, inputs)
    wandb_mode = tracking.setup_wandb() if online is not False else "offline"
    if online and wandb_mode != "online":
        raise UserError("report --online: no W&B key the server accepts (set WANDB_API_KEY or run `wandb login`)")
    content = collect(outputs)
    url = save_online(content, outputs) if wandb_mode == "online" else None
    write_html(content, html, url)
    if wandb_mode != "online":
        print(f"W&B report: not built (W&B is {wandb_mode}); the offline copy below has the same sections.")
    print(f"Offline report: {html}")
    for line in content.warnings + [f"missing: run {nb}" for nb in content.missing]:
        print(f"  {line}")
    return {"html": str(html), "url": url, "warnings": content.warnings, "missing": content.missing,
            "sections": [(part.title, [q.title for q in part.questions]) for part in content.parts]}
