"""Example notebooks are part of the product: each runs with papermill, and its calls land in MLflow."""
import os

import nbformat
import pytest

from conftest import REPO

pytestmark = pytest.mark.slow


def test_quickstart_runs_on_embedded_model_and_logs_runs(tmp_path, monkeypatch):
    from mlflow import MlflowClient

    from llmops_lab.config import reset_settings
    from llmops_lab.notebooks import execute_notebook

    home = tmp_path / "home"
    monkeypatch.setenv("LLMOPS_HOME", str(home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    settings = reset_settings(REPO)
    out = execute_notebook(REPO / "notebooks" / "01_quickstart.ipynb", tmp_path / "out.ipynb", settings)

    nb = nbformat.read(out, as_version=4)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    text = "\n".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", ""))
                     for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "prompts:/summarize/1" in text and "local:smollm2-135m" in text

    uri = f"sqlite:///{home / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("notebooks/01_quickstart")
    assert exp is not None
    runs = client.search_runs([exp.experiment_id])
    assert {r.info.run_name for r in runs} == {"summarize", "title", "haiku"}
    assert all(r.info.status == "FINISHED" and r.data.metrics["total_tokens"] > 0 for r in runs)
    assert all(r.data.tags["mlflow.source.name"].endswith("01_quickstart.ipynb") for r in runs)
    assert not list((home / "spool").glob("*.jsonl"))  # everything delivered, spool emptied
    reset_settings(REPO)


def test_batch_eval_notebook_logs_two_batch_runs(tmp_path, monkeypatch):
    from mlflow import MlflowClient

    from llmops_lab.config import reset_settings
    from llmops_lab.notebooks import execute_notebook

    home = tmp_path / "home"
    monkeypatch.setenv("LLMOPS_HOME", str(home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    settings = reset_settings(REPO)
    out = execute_notebook(REPO / "notebooks" / "02_batch_eval.ipynb", tmp_path / "out.ipynb", settings)
    nb = nbformat.read(out, as_version=4)
    assert not [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]

    client = MlflowClient(f"sqlite:///{home / 'mlflow.db'}")
    exp = client.get_experiment_by_name("notebooks/02_batch_eval")
    runs = client.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"])
    assert [r.data.tags["llmops.kind"] for r in runs] == ["batch", "batch"]
    first, second = runs
    assert first.data.metrics["rows"] == 8 and first.data.metrics["cache_hits"] == 0
    assert second.data.metrics["cache_hits"] == 8  # the re-run made no model call
    assert first.inputs.dataset_inputs[0].dataset.digest == second.inputs.dataset_inputs[0].dataset.digest
    reset_settings(REPO)
