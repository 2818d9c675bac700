"""Reports: the HTML of each executed job notebook (nbconvert, input hidden, with a summary header), and
the job report ``templates/report.ipynb`` (papermill-parameterized) built from :func:`report_data`:
metrics over time, latest vs baseline, the worst rows of the latest batch, latency/cost trends.
"""
from __future__ import annotations

import io
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmops_lab.config import Settings, get_settings, load_settings
from llmops_lab.jobs.definition import Job, get_job
from llmops_lab.exceptions import JobError
from llmops_lab.jobs.store import Execution, store_for

TEMPLATE = "report.ipynb"


# -- HTML of a notebook -----------------------------------------------------------------------------

def _header(job: Job, execution: Execution) -> str:
    lines = [f"# Job {job.name}: {execution.status}", "", "| | |", "|---|---|",
             f"| started | {execution.started_at:%Y-%m-%d %H:%M:%S} UTC ({execution.trigger}) |",
             f"| duration | {execution.duration_s or 0:.1f} s, {execution.attempts} attempt(s) |",
             f"| notebook | `{job.notebook}` (digest `{(execution.notebook_digest or '')[:12]}`) |",
             f"| schedule | `{job.schedule or 'manual'}` ({job.timezone}) |"]
    if job.parameters:
        params = ", ".join(f"`{k}={v!r}`" for k, v in job.parameters.items()).replace("|", "\\|")
        lines.append(f"| parameters | {params} |")
    if execution.run_id:
        lines.append(f"| MLflow run | `{execution.run_id}` |")
    if execution.git_commit:
        lines.append(f"| git commit | `{execution.git_commit[:12]}` |")
    if execution.metrics:
        lines += ["", "**Metrics recorded by the notebook**", "", "| metric | value |", "|---|---|"]
        lines += [f"| {k} | {v:.4g} |" for k, v in execution.metrics.items()]
    if execution.gate is not None:
        mark = "passed" if execution.gate["passed"] else "**breached**"
        lines += ["", f"**Regression gate** {mark}: {execution.gate['reason']}"]
    if execution.error and execution.status != "regressed":
        lines += ["", f"**Error**: {execution.error}"]
    return "\n".join(lines)


def render_html(notebook: Path, html: Path, job: Job | None = None, execution: Execution | None = None) -> Path:
    """``notebook`` as HTML with code inputs hidden; a summary header first when job/execution are given."""
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(str(notebook), as_version=4)
    if job is not None and execution is not None:
        nb.cells.insert(0, nbformat.v4.new_markdown_cell(_header(job, execution)))
    exporter = HTMLExporter(exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(nb)
    html.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{html.name}.", suffix=".tmp", dir=str(html.parent))
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(body)
    os.chmod(tmp, 0o644)
    os.replace(tmp, html)
    return html


# -- data for the report template -------------------------------------------------------------------

@dataclass
class ReportData:
    job: Job
    executions: Any  # DataFrame, oldest first: id, started_at, status, duration_s, metrics..., batch stats
    metric_names: list[str]
    latest: Execution | None
    baseline: Execution | None
    comparison: Any  # DataFrame: metric, latest, baseline, change, gate
    worst_rows: Any  # DataFrame (may be empty)
    trends: Any  # DataFrame: started_at, duration_s, batch.latency_p50_ms, batch.latency_p95_ms, batch.cost_usd
    drift: Any = None  # DataFrame from monitoring.drift_report: prompt, metric, shifted, flag, description


def report_data(job: str, project_root: str | os.PathLike | None = None, limit: int = 50,
                worst: int = 5) -> ReportData:
    """Everything the report shows, as DataFrames (also handy in a notebook)."""
    import pandas as pd

    settings = load_settings(Path(project_root)) if project_root else get_settings()
    definition = get_job(settings.project_root, job)
    store = store_for(settings.home)
    history = [e for e in reversed(store.history(job, limit)) if e.status != "running"]
    names = sorted({k for e in history for k in e.metrics})
    rows = []
    for e in history:
        row = {"id": e.id, "started_at": pd.Timestamp(e.started_at), "status": e.status,
               "duration_s": e.duration_s, **{k: e.metrics.get(k) for k in names}}
        row.update({k: v for k, v in e.stats.items() if k.startswith("batch.") and isinstance(v, (int, float))})
        rows.append(row)
    frame = pd.DataFrame(rows, columns=None if rows else ["id", "started_at", "status", "duration_s"])
    latest = history[-1] if history else None
    baseline = None
    if latest is not None:
        baseline = store.latest(job, ("completed",), before=latest.id)
    comparison = _comparison(definition, latest, baseline)
    trend_cols = [c for c in ("started_at", "duration_s", "batch.latency_p50_ms", "batch.latency_p95_ms",
                              "batch.cost_usd", "batch.error_rate") if c in frame.columns]
    trends = frame[trend_cols] if len(frame) else frame
    worst_rows = pd.DataFrame()
    if latest is not None and latest.stats.get("batch_runs"):
        try:
            worst_rows = _worst_rows(settings, latest.stats["batch_runs"][-1], worst)
        except Exception as err:  # noqa: BLE001 - a report without this table beats no report
            worst_rows = pd.DataFrame({"note": [f"batch results unavailable: {type(err).__name__}: {err}"]})
    return ReportData(definition, frame, names, latest, baseline, comparison, worst_rows, trends,
                      _drift(settings, definition))


def _drift(settings: Settings, job: Job):
    """Per prompt version: the last day's calls of the job's notebook against the 30 days before."""
    import pandas as pd

    from llmops_lab.analysis.drift import drift_report
    from llmops_lab.tracking.reader import load_calls
    from llmops_lab.tracking import context

    try:
        experiment = context.experiment_name(settings, str(settings.project_root / job.notebook))
        report = drift_report(load_calls(since="30d", experiment=experiment), by="prompt")
    except Exception as err:  # noqa: BLE001 - a report without this table beats no report
        return pd.DataFrame({"note": [f"drift unavailable: {type(err).__name__}: {err}"]})
    return report[["prompt", "metric", "shifted", "flag", "description"]] if len(report) else report


def _comparison(job: Job, latest: Execution | None, baseline: Execution | None):
    import pandas as pd

    if latest is None:
        return pd.DataFrame(columns=["metric", "latest", "baseline", "change", "gate"])
    names = list(dict.fromkeys([*latest.metrics, *(baseline.metrics if baseline else {})]))
    rules = {g.metric: g.describe() for g in job.gates}
    rows = []
    for name in names:
        new = latest.metrics.get(name)
        old = baseline.metrics.get(name) if baseline else None
        change = new - old if new is not None and old is not None else None
        rows.append({"metric": name, "latest": new, "baseline": old, "change": change, "gate": rules.get(name, "")})
    return pd.DataFrame(rows)


def _worst_rows(settings: Settings, run_id: str, n: int):
    """The ``n`` lowest-scoring rows of a batch run's results table (errors first)."""
    import pandas as pd

    from llmops_lab.tracking.reader import results_table

    _, scores, table = results_table(settings.resolved_tracking_uri(), run_id)
    scores = [s for s in scores if s in table.columns]
    rank = pd.Series(0.0, index=table.index)
    if scores:
        rank = table[scores].apply(pd.to_numeric, errors="coerce").astype(float).mean(axis=1).fillna(-1.0)
    if "error" in table.columns:
        rank = rank.where(table["error"].isna(), -2.0)
    keep = [c for c in table.columns if c not in ("prompt_tokens", "completion_tokens", "cached", "retries",
                                                  "cost_usd") and not c.endswith("_rationale")]
    out = table.loc[rank.sort_values(kind="stable").index[:n], keep].copy()
    out = out.drop(columns=[c for c in ("error",) if c in out.columns and out[c].isna().all()])
    for column in out.columns:
        if out[column].dtype == object:
            out[column] = out[column].map(lambda v: v if not isinstance(v, str) or len(v) <= 120 else v[:117] + "...")
    out.insert(0, "batch_run", run_id[:8])
    return out.reset_index(drop=True)


# -- plots (Agg) ------------------------------------------------------------------------------------

def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_series(frame, columns: list[str], title: str):
    """One line per column against ``started_at``; None when there is nothing to draw."""
    columns = [c for c in columns if c in frame.columns and frame[c].notna().any()]
    if not len(frame) or not columns:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(len(columns), 1, figsize=(8, 2.2 * len(columns)), squeeze=False, sharex=True)
    for ax, column in zip(axes[:, 0], columns):
        ax.plot(frame["started_at"], frame[column], marker="o")
        failed = frame[frame["status"] != "completed"] if "status" in frame.columns else frame.iloc[0:0]
        if len(failed):
            ax.scatter(failed["started_at"], failed[column], color="red", zorder=3, label="failed or regressed")
            ax.legend(loc="best", fontsize=8)
        ax.set_ylabel(column, fontsize=8)
        ax.grid(alpha=0.3)
    axes[0, 0].set_title(title)
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def show(fig) -> None:
    """Display a figure as a PNG output (works with the Agg backend, in papermill runs too)."""
    from IPython.display import Image, Markdown, display

    if fig is None:
        display(Markdown("_nothing to plot yet_"))
        return
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    _pyplot().close(fig)
    display(Image(buffer.getvalue()))


def summary_markdown(data: ReportData) -> str:
    job, latest = data.job, data.latest
    lines = [f"# Job report: {job.name}", "",
             f"`{job.notebook}` · schedule `{job.schedule or 'manual'}` ({job.timezone}) · "
             f"{len(data.executions)} execution(s)"]
    if latest is not None:
        lines.append(f"\nLatest: execution {latest.id}, **{latest.status}**, "
                     f"{latest.started_at:%Y-%m-%d %H:%M} UTC, {latest.duration_s or 0:.1f} s")
        if latest.gate is not None:
            lines.append(f"\nGate: {latest.gate['reason']}")
        if latest.error:
            lines.append(f"\nError: {latest.error}")
    if data.baseline is not None:
        lines.append(f"\nBaseline: execution {data.baseline.id} ({data.baseline.started_at:%Y-%m-%d %H:%M} UTC)")
    return "\n".join(lines)


# -- render the template on demand ------------------------------------------------------------------

def template_path(job: Job, settings: Settings) -> Path:
    if job.report_template:
        path = settings.project_root / job.report_template
        if not path.is_file():
            raise JobError(f"report_template {job.report_template} of job {job.name} not found")
        return path
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "templates" / TEMPLATE, here.parents[1] / "templates" / TEMPLATE):
        if candidate.is_file():
            return candidate
    raise JobError("the report template templates/report.ipynb is not installed with llmops-lab: "
                   "set report_template for the job in llmops_jobs.toml")


def render_report(job: str, settings: Settings | None = None, output: Path | None = None,
                  limit: int = 50) -> Path:
    """Run the report template for ``job`` with papermill and convert it to HTML (input hidden).
    Returns the HTML path (default ``.llmops/jobs/NAME/report.html``, beside ``report.ipynb``)."""
    from llmops_lab.jobs.notebooks import execute_notebook

    settings = settings or get_settings()
    definition = get_job(settings.project_root, job)
    template = template_path(definition, settings)
    html = Path(output) if output else settings.home / "jobs" / job / "report.html"
    notebook = html.with_suffix(".ipynb")
    execute_notebook(template, notebook, settings, timeout=600,
                     parameters={"job": job, "project_root": str(settings.project_root), "limit": limit},
                     env={"MPLBACKEND": "Agg", "MLFLOW_TRACKING_URI": settings.resolved_tracking_uri()})
    return render_html(notebook, html)
