"""`llmops-lab init` and the demo's project set-up: files written once, never overwritten."""
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import nbformat
import pytest

from conftest import REPO

from llmops_lab.config import load_settings
from llmops_lab.exceptions import ConfigError
from llmops_lab.cli.scaffold import EVAL_NOTEBOOK, copy_quickstart, ensure_project, init_project


BIN = Path(sys.executable).parent / "llmops-lab"


def cli(*args, cwd):
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, cwd=cwd, timeout=120, env=os.environ)


def files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_init_in_empty_folder_creates_the_project(tmp_path):
    steps = init_project(tmp_path / "evals")
    assert [(s.path.relative_to(tmp_path / "evals").as_posix(), s.action) for s in steps] == [
        ("pyproject.toml", "created"), ("notebooks/eval.ipynb", "created"), (".gitignore", "created")]
    pyproject = tomllib.loads((tmp_path / "evals" / "pyproject.toml").read_text())
    assert pyproject["project"]["name"] == "evals" and pyproject["tool"]["llmops-lab"]["model"] == "local:smollm2-135m"
    assert load_settings(tmp_path / "evals", environ={}).project_root == tmp_path / "evals"  # settings parse
    assert (tmp_path / "evals" / ".gitignore").read_text() == ".llmops/\n"
    nb = nbformat.read(tmp_path / "evals" / EVAL_NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1 and 'model = "local:smollm2-135m"' in params[0].source
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert "%%llm" in code and "--dataset examples --scorer contains:label" in code
    assert 'llmops_lab.record("accuracy", accuracy)' in code


def test_init_twice_overwrites_nothing(tmp_path):
    init_project(tmp_path)
    (tmp_path / EVAL_NOTEBOOK).write_text("my own notebook")
    before = files(tmp_path)
    steps = init_project(tmp_path)
    assert [s.action for s in steps] == ["left", "left", "left"]
    assert files(tmp_path) == before


def test_init_appends_the_section_to_an_existing_pyproject(tmp_path):
    original = '[project]\nname = "app"\n\n[tool.ruff]\nline-length = 100'  # no final newline
    (tmp_path / "pyproject.toml").write_text(original)
    (tmp_path / ".gitignore").write_text("dist/")
    steps = {s.path.name: s for s in init_project(tmp_path)}
    assert steps["pyproject.toml"].action == "added" and steps[".gitignore"].action == "added"
    text = (tmp_path / "pyproject.toml").read_text()
    assert text.startswith(original + "\n\n[tool.llmops-lab]\n")
    table = tomllib.loads(text)
    assert table["tool"]["ruff"] == {"line-length": 100} and table["tool"]["llmops-lab"]["model"]
    assert (tmp_path / ".gitignore").read_text().splitlines()[0] == "dist/"
    assert ".llmops/" in (tmp_path / ".gitignore").read_text().splitlines()


@pytest.mark.parametrize("existing", ['[tool.llmops-lab]\nmodel = "openai:gpt-4o-mini"\n',
                                      '[tool.llmops-lab.endpoints.vllm]\nbase_url = "http://h/v1"\n'])
def test_init_leaves_a_pyproject_that_has_the_section(tmp_path, existing):
    (tmp_path / "pyproject.toml").write_text(existing)
    (tmp_path / ".gitignore").write_text("/.llmops\n")
    steps = {s.path.name: s.action for s in init_project(tmp_path)}
    assert steps == {"pyproject.toml": "left", "eval.ipynb": "created", ".gitignore": "left"}
    assert (tmp_path / "pyproject.toml").read_text() == existing
    assert (tmp_path / ".gitignore").read_text() == "/.llmops\n"


def test_init_with_a_broken_pyproject_writes_nothing(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[project\nname = ")
    with pytest.raises(ConfigError, match="cannot read .*pyproject.toml .*nothing was written"):
        init_project(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pyproject.toml"]


def test_init_command_prints_what_it_created_and_left(tmp_path):
    out = cli("init", "proj", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[:3] == [
        "created  pyproject.toml  (with [tool.llmops-lab] settings)",
        "created  notebooks/eval.ipynb  (an evaluation: parameters cell, a scored %%llm batch, a recorded metric)",
        "created  .gitignore  (ignores .llmops/)"]
    again = cli("init", cwd=tmp_path / "proj")
    assert again.returncode == 0 and [line.split()[0] for line in again.stdout.splitlines()[:3]] == ["left"] * 3
    (tmp_path / "afile").write_text("")
    bad = cli("init", "afile", cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [
        "llmops-lab: error: afile is a file, not a folder: give llmops-lab init a folder"]


def test_demo_setup_makes_a_project_and_never_overwrites_the_quickstart(tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    above = [f / m for f in folder.parents for m in ("pyproject.toml", ".git", "llmops.toml") if (f / m).exists()]
    if above:
        pytest.skip(f"the temp folder is inside a project ({above[0]}): use --basetemp elsewhere")
    marker = ensure_project(folder)
    assert marker == folder.resolve() / "llmops.toml" and tomllib.loads(marker.read_text()) == {}
    assert ensure_project(folder) is None and ensure_project(folder / "sub") is None  # already a project
    dest = folder / "notebooks" / "01_quickstart.ipynb"
    assert copy_quickstart(dest) and dest.read_bytes() == (REPO / "notebooks" / "01_quickstart.ipynb").read_bytes()
    dest.write_text("edited")
    assert not copy_quickstart(dest) and dest.read_text() == "edited"


@pytest.mark.slow
def test_scaffolded_eval_notebook_runs_and_records_accuracy(tmp_path, monkeypatch):
    """The notebook `init` writes runs as written on the embedded model, and as a job its accuracy is a metric."""
    from mlflow import MlflowClient

    from llmops_lab.config import reset_settings
    from llmops_lab.jobs.notebooks import execute_notebook

    init_project(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    metrics = tmp_path / "metrics.jsonl"
    try:
        out = execute_notebook(tmp_path / EVAL_NOTEBOOK, tmp_path / "out.ipynb", reset_settings(tmp_path),
                               env={"LLMOPS_JOB_METRICS": str(metrics)})
    finally:
        reset_settings(REPO)
    nb = nbformat.read(out, as_version=4)
    assert not [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    from llmops_lab.jobs.record import read_metrics

    assert {m["name"] for m in read_metrics(metrics)} == {"accuracy", "above_threshold"}
    client = MlflowClient(f"sqlite:///{tmp_path / '.llmops' / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("notebooks/eval").experiment_id])
    assert [r.data.tags["llmops.kind"] for r in runs] == ["batch"] and runs[0].data.metrics["rows"] == 6
