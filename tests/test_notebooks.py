"""Example notebooks are part of the product: each runs with papermill, in any order and twice in one project,
its calls land in MLflow, and the committed (executed) notebooks read well where there is no kernel."""
import json
import re
import shutil
from pathlib import Path

import nbformat
import pytest

from conftest import REPO

SHARED = ["01_quickstart.ipynb", "02_batch_eval.ipynb", "03_compare_prompts.ipynb", "04_nightly_eval.ipynb"]
NOTEBOOKS = [*SHARED, "05_prompt_design.ipynb", "06_probe_and_optimize.ipynb"]
FAST = {"03_compare_prompts.ipynb": {"max_tokens": 8}}  # the slowest example, kept short in tests
MACHINE_PATHS = re.compile(r"(/tmp/|/work/|/root/|/home/|[A-Z]:\\\\Users)")


def outputs_text(nb) -> str:
    """Everything a saved notebook shows: streams, every mime type of every output, error lines."""
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            parts.append(str(out.get("text", "")))
            parts += [v if isinstance(v, str) else json.dumps(v) for v in out.get("data", {}).values()]
            parts += [out.get("evalue", "")] + list(out.get("traceback", []))
    return "\n".join(parts)


def errors(nb):
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]


def make_project(tmp_path):
    """A clean project (llmops.toml marker) holding copies of the example notebooks."""
    root = tmp_path / "project"
    (root / "notebooks").mkdir(parents=True)
    (root / "llmops.toml").write_text("")
    for name in NOTEBOOKS:
        shutil.copy(REPO / "notebooks" / name, root / "notebooks" / name)
    return root


def _execute_in_project(name: str, tmp_path: Path, monkeypatch) -> tuple[Path, "nbformat.NotebookNode"]:
    """Example notebook ``name`` executed in a fresh project of its own (papermill): (project root, output)."""
    from llmops_lab.config import reset_settings
    from llmops_lab.jobs.notebooks import execute_notebook

    root = make_project(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("LLMOPS_HOME", raising=False)
    monkeypatch.chdir(root)
    try:
        out = execute_notebook(root / "notebooks" / f"{name}.ipynb", tmp_path / "out.ipynb", reset_settings(root))
    finally:
        reset_settings(REPO)
    return root, nbformat.read(out, as_version=4)


@pytest.mark.slow
def test_prompt_design_notebook_streams_chats_and_validates(tmp_path, monkeypatch):
    """05 on the embedded model: a streamed call logs ttft_ms; the two --chat turns share their conversation
    (turns 1 and 2); the --schema call logs schema.json; the schema batch logs
    schema_valid_rate; a streamed answer is saved as one output, not a line per piece."""
    from mlflow import MlflowClient

    root, nb = _execute_in_project("05_prompt_design", tmp_path, monkeypatch)
    assert not errors(nb)
    streamed = next(c for c in nb.cells if c.cell_type == "code" and "stream=True" in c.source)
    assert [o.output_type for o in streamed.outputs] == ["stream"] and "first token after" in streamed.outputs[0].text
    uri = f"sqlite:///{root / '.llmops' / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    exp = client.get_experiment_by_name("notebooks/05_prompt_design")
    runs = client.search_runs([exp.experiment_id])
    assert all(r.info.status == "FINISHED" for r in runs)
    pitch = next(r for r in runs if r.info.run_name == "pitch")
    assert 0 < pitch.data.metrics["ttft_ms"] <= pitch.data.metrics["latency_ms"]
    trip = [r for r in runs if r.data.tags.get("llmops.conversation_name") == "trip"]
    assert sorted(r.data.tags["llmops.turn"] for r in trip) == ["1", "2"]
    assert len({r.data.tags["llmops.conversation"] for r in trip}) == 1
    schema_runs = [r for r in runs if r.data.params.get("schema") == "Person"]
    assert any(r.data.tags["llmops.kind"] == "single" for r in schema_runs)
    single = next(r for r in schema_runs if r.data.tags["llmops.kind"] == "single")
    assert "schema.json" in [a.path for a in client.list_artifacts(single.info.run_id)]
    batch = next(r for r in runs if r.info.run_name == "extract-person")
    assert batch.data.metrics["schema_valid_rate"] >= 2 / 3


@pytest.mark.slow
def test_probe_and_optimize_notebook_logs_its_parent_runs(tmp_path, monkeypatch):
    """06 on the embedded model: the probe is a run kind=probe with the original and the swapped batch as
    children; the search is a run kind=optimize whose children are its batches, with the split recorded; the
    re-run of the search asks the model nothing (every row of its batches cached); nothing was promoted."""
    from mlflow import MlflowClient

    root, nb = _execute_in_project("06_probe_and_optimize", tmp_path, monkeypatch)
    assert not errors(nb)
    uri = f"sqlite:///{root / '.llmops' / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    exp = client.get_experiment_by_name("notebooks/06_probe_and_optimize")
    runs = client.search_runs([exp.experiment_id], max_results=500)
    assert all(r.info.status == "FINISHED" for r in runs)

    def children(parent):
        return [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]

    probe = [r for r in runs if r.data.tags["llmops.kind"] == "probe"]
    assert len(probe) == 1 and "probe.gender.contains_label.flip_rate" in probe[0].data.metrics
    assert sorted(r.data.tags["llmops.compare.variant"] for r in children(probe[0])) == ["gender", "original"]
    searches = sorted((r for r in runs if r.data.tags["llmops.kind"] == "optimize"), key=lambda r: r.info.start_time)
    assert len(searches) == 2
    for search in searches:
        kids = children(search)
        labels = {r.data.tags["llmops.compare.variant"] for r in kids}
        assert {"c0 original", "proposer r1"} <= labels and len(kids) >= 3  # the few-shot candidate at least
        assert search.data.params["split.label"] == "label" and search.data.metrics["optimize.significant"] == 0
        assert "split.json" in [a.path for a in client.list_artifacts(search.info.run_id)]
    rerun = children(searches[1])
    assert all(r.data.metrics["requests"] == 0 and r.data.metrics["cache_hits"] == r.data.metrics["rows"]
               for r in rerun)
    versions = client.search_prompt_versions("review-sentiment", max_results=100)
    assert versions and not any(client.get_prompt_version("review-sentiment", v.version).aliases for v in versions)


@pytest.mark.slow
def test_examples_run_in_any_order_twice_in_one_project(tmp_path, monkeypatch):
    """01-04 share one project (one registry, one store, one cache): forwards, then backwards, all pass (05 has a
    test of its own)."""
    from mlflow import MlflowClient

    from llmops_lab.config import reset_settings
    from llmops_lab.jobs.notebooks import execute_notebook

    root = make_project(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("LLMOPS_HOME", raising=False)
    monkeypatch.chdir(root)
    executed = {}
    try:
        settings = reset_settings(root)
        for n, order in enumerate((SHARED, SHARED[::-1])):
            for name in order:
                out = execute_notebook(root / "notebooks" / name, tmp_path / "out" / f"{n}-{name}", settings,
                                       parameters=FAST.get(name))
                nb = nbformat.read(out, as_version=4)
                assert not errors(nb), (n, name, errors(nb))
                executed[(n, name)] = nb
    finally:
        reset_settings(REPO)

    uri = f"sqlite:///{root / '.llmops' / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    # 01 owns `summarize`: its one version is 01's template, whatever ran before or after it
    assert [int(v.version) for v in client.search_prompt_versions("summarize")] == [1]
    assert "{{ article }}" in client.get_prompt_version("summarize", 1).template
    for n in (0, 1):
        assert "prompts:/summarize/1" in outputs_text(executed[(n, "01_quickstart.ipynb")])
    # 03 compares its own two versions both times and promoted the second
    prod = client.get_prompt_version_by_alias("news-summary", "production")
    assert prod.template.startswith("Write a headline")
    exp = client.get_experiment_by_name("notebooks/01_quickstart")
    runs = client.search_runs([exp.experiment_id])
    assert sorted(r.info.run_name for r in runs) == sorted(["summarize", "title", "haiku"] * 2)
    assert all(r.info.status == "FINISHED" and r.data.metrics["total_tokens"] > 0 for r in runs)
    assert all(r.data.tags["mlflow.source.name"].endswith("01_quickstart.ipynb") for r in runs)
    exp = client.get_experiment_by_name("notebooks/02_batch_eval")
    batches = client.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"])
    assert [r.data.tags["llmops.kind"] for r in batches] == ["batch"] * 4
    assert batches[0].data.metrics["rows"] == 8 and batches[0].data.metrics["cache_hits"] == 0
    assert all(r.data.metrics["cache_hits"] == 8 for r in batches[1:])  # re-runs made no model call
    assert len({r.inputs.dataset_inputs[0].dataset.digest for r in batches}) == 1
    assert not list((root / ".llmops" / "spool").glob("*.jsonl"))  # everything delivered, spool emptied
    # 03: one compare run per pass, each variant's batch run its child
    exp = client.get_experiment_by_name("notebooks/03_compare_prompts")
    runs = client.search_runs([exp.experiment_id])
    parents = {r.info.run_id for r in runs if r.data.tags["llmops.kind"] == "compare"}
    children = [r for r in runs if r.data.tags["llmops.kind"] == "batch"]
    assert len(parents) == 2 and len(children) == 4
    assert all(r.data.tags.get("mlflow.parentRunId") in parents for r in children)
    # the executed 03, converted to HTML as nbviewer/GitHub show a saved notebook, has the grid as a table
    grid = [o for c in executed[(1, "03_compare_prompts.ipynb")].cells if c.cell_type == "code" for o in c.outputs
            if "application/vnd.jupyter.widget-view+json" in o.get("data", {}) and "llmops-cmp" in
            o["data"].get("text/html", "")]
    assert len(grid) == 1 and "CompareGrid(children" not in grid[0]["data"]["text/plain"]
    html = _to_html(executed[(1, "03_compare_prompts.ipynb")])
    assert _grid_table(html)


def _to_html(nb) -> str:
    """nbconvert's HTML: the widget view where its state was saved, else the output's text/html. The committed
    notebooks are saved without widget state (a dead kernel's, and a second copy of the grid), as here."""
    from nbconvert import HTMLExporter

    nb = nbformat.from_dict(json.loads(json.dumps(nb)))
    nb.metadata.pop("widgets", None)
    body, _ = HTMLExporter().from_notebook_node(nb)
    return body


def _grid_table(html: str) -> bool:
    """The grid rendered as markup (a table under the llmops-cmp class), not text in a script."""
    start = html.find("<div class='llmops-cmp'>")
    if start < 0:
        start = html.find('<div class="llmops-cmp">')
    return start >= 0 and "<table" in html[start:start + 4000] and "W/T/L vs baseline" in html[start:]


@pytest.mark.slow
def test_user_error_from_the_python_api_is_one_line_in_a_saved_notebook(tmp_path, monkeypatch):
    """A ConfigError/TemplateError raised by llmops_lab.run in a cell: the saved output is its one line."""
    from nbclient import NotebookClient

    (tmp_path / "llmops.toml").write_text("")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import llmops_lab"),
                nbformat.v4.new_code_cell('llmops_lab.run("Summarize {{ missing_variable }}", {})'),
                nbformat.v4.new_code_cell('llmops_lab.run("hi", model="nosuchprovider:x")')]
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    NotebookClient(nb, timeout=300, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    found = errors(nb)
    assert [o.ename for o in found] == ["TemplateError", "ConfigError"], found
    for out in found:
        assert len(out.traceback) == 1, out.traceback
        line = re.sub(r"\x1b\[[0-9;]*m", "", out.traceback[0])
        assert line.startswith(f"{out.ename}: ") and "Traceback" not in line and "File " not in line
    assert "missing_variable" in found[0].traceback[0]


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_notebooks_are_executed_with_clean_outputs(name):
    """The committed notebooks are the executed examples: no build machine's paths, no footer stuck at
    "logging…", no progress bar frozen at 0 %, no errors, every code cell run."""
    nb = nbformat.read(REPO / "notebooks" / name, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.get("execution_count") for c in code), "re-execute it (see tests/test_notebooks.py)"
    raw = (REPO / "notebooks" / name).read_text(encoding="utf-8")  # outputs and metadata (papermill's paths)
    assert not MACHINE_PATHS.findall(raw), MACHINE_PATHS.findall(raw)
    text = outputs_text(nb)
    assert "logging…" not in text
    assert not re.search(r"\b0%\|", text), "a progress bar saved in its first state"
    assert not errors(nb)
    widget_only = [o for c in code for o in c.outputs if "application/vnd.jupyter.widget-view+json" in
                   o.get("data", {}) and "text/html" not in o.get("data", {})]
    assert not widget_only, "a widget output with no static fallback: invisible without a kernel"


def test_committed_compare_notebook_shows_the_grid_as_html():
    nb = nbformat.read(REPO / "notebooks" / "03_compare_prompts.ipynb", as_version=4)
    assert "widgets" not in nb.metadata  # saved without widget state (refresh_committed): viewers use the HTML
    from nbconvert import HTMLExporter

    html, _ = HTMLExporter().from_notebook_node(nb)
    assert _grid_table(html) and "CompareGrid(children" not in html
    assert "Write a headline for this news" in html  # the header says which prompt is which


def refresh_committed(names=NOTEBOOKS) -> None:
    """Re-execute the examples with papermill in a clean temporary project and write them back as committed:
    ``.venv/bin/python tests/test_notebooks.py refresh [NAME ...]``. Saved clean: papermill's paths made relative,
    no widget state, and a widget output that carries its own HTML keeps only that (the widget view of a dead
    kernel would show "model not found" in JupyterLab; a re-run shows the live widget again)."""
    import os
    import tempfile
    from pathlib import Path

    from llmops_lab.config import reset_settings
    from llmops_lab.jobs.notebooks import execute_notebook

    for var in ("MLFLOW_TRACKING_URI", "LLMOPS_HOME", "LLMOPS_NOTEBOOK", "LLMOPS_MODEL", "LLMOPS_EXPERIMENT"):
        os.environ.pop(var, None)
    with tempfile.TemporaryDirectory(prefix="llmops-examples-") as tmp:
        root = make_project(Path(tmp))
        os.chdir(root)
        settings = reset_settings(root)
        for name in names:
            out = execute_notebook(root / "notebooks" / name, root / "executed" / name, settings)
            nb = nbformat.read(out, as_version=4)
            papermill = nb.metadata.get("papermill", {})
            papermill["input_path"] = papermill["output_path"] = f"notebooks/{name}"
            papermill.pop("environment_variables", None)
            nb.metadata.pop("widgets", None)
            for cell in nb.cells:
                for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
                    data = output.get("data", {})
                    if "text/html" in data:
                        data.pop("application/vnd.jupyter.widget-view+json", None)
            nbformat.write(nb, REPO / "notebooks" / name)
            print(f"{name}: executed in {papermill.get('duration', 0):.0f} s", flush=True)


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] != ["refresh"]:
        sys.exit("usage: python tests/test_notebooks.py refresh [NAME.ipynb ...]")
    refresh_committed(sys.argv[2:] or NOTEBOOKS)
