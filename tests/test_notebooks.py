"""Example notebooks are part of the product: each runs with papermill, and its calls land in MLflow."""
import nbformat
import pytest

from conftest import REPO

pytestmark = pytest.mark.slow


def execute(name, tmp_path, monkeypatch):
    """Run notebooks/<name> into tmp_path with its own .llmops home; return (notebook, MlflowClient, home)."""
    from mlflow import MlflowClient

    from llmops_lab.config import reset_settings
    from llmops_lab.notebooks import execute_notebook

    home = tmp_path / "home"
    monkeypatch.setenv("LLMOPS_HOME", str(home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    try:
        out = execute_notebook(REPO / "notebooks" / name, tmp_path / "out.ipynb", reset_settings(REPO))
    finally:
        reset_settings(REPO)
    nb = nbformat.read(out, as_version=4)
    assert not [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    return nb, MlflowClient(f"sqlite:///{home / 'mlflow.db'}"), home


def test_quickstart_runs_on_embedded_model_and_logs_runs(tmp_path, monkeypatch):
    nb, client, home = execute("01_quickstart.ipynb", tmp_path, monkeypatch)
    text = "\n".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", ""))
                     for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "prompts:/summarize/1" in text and "local:smollm2-135m" in text

    exp = client.get_experiment_by_name("notebooks/01_quickstart")
    runs = client.search_runs([exp.experiment_id])
    assert {r.info.run_name for r in runs} == {"summarize", "title", "haiku"}
    assert all(r.info.status == "FINISHED" and r.data.metrics["total_tokens"] > 0 for r in runs)
    assert all(r.data.tags["mlflow.source.name"].endswith("01_quickstart.ipynb") for r in runs)
    assert not list((home / "spool").glob("*.jsonl"))  # everything delivered, spool emptied


def test_batch_eval_notebook_logs_two_batch_runs(tmp_path, monkeypatch):
    _, client, _ = execute("02_batch_eval.ipynb", tmp_path, monkeypatch)
    exp = client.get_experiment_by_name("notebooks/02_batch_eval")
    runs = client.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"])
    assert [r.data.tags["llmops.kind"] for r in runs] == ["batch", "batch"]
    first, second = runs
    assert first.data.metrics["rows"] == 8 and first.data.metrics["cache_hits"] == 0
    assert second.data.metrics["cache_hits"] == 8  # the re-run made no model call
    assert first.inputs.dataset_inputs[0].dataset.digest == second.inputs.dataset_inputs[0].dataset.digest
