"""One MLflow adapter: only llmops_lab/tracking/ talks to MLflow; tag names are spelled once; one client per URI."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "llmops_lab"
TRACKING = PACKAGE / "tracking"


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "labextension" not in p.parts)


def _imports(path: Path) -> list[str]:
    """Every module an import statement names, anywhere in the file (functions included)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
            names += [f"{node.module}.{alias.name}" for alias in node.names]
    return names


def _relative(path: Path) -> str:
    return path.relative_to(PACKAGE).as_posix()


def test_only_tracking_imports_mlflow():
    offenders = {}
    for path in _modules():
        if path.is_relative_to(TRACKING):
            continue
        found = [n for n in _imports(path) if n == "mlflow" or n.startswith("mlflow.")]
        if found:
            offenders[_relative(path)] = sorted(set(found))
    assert offenders == {}, f"MLflow is imported outside llmops_lab/tracking/: {offenders}"


def test_the_ast_check_sees_function_level_imports(tmp_path):
    sample = tmp_path / "m.py"
    sample.write_text("def f():\n    from mlflow.entities import Metric\n    import mlflow as m\n")
    assert {"mlflow.entities", "mlflow"} <= set(_imports(sample))


def test_tracking_never_imports_the_layers_above_it():
    """No circles through tracking: it reads and writes MLflow for analysis, jobs, server, compare, not the
    other way round (monitoring and tracking used to import each other)."""
    above = ("llmops_lab.analysis", "llmops_lab.evaluation", "llmops_lab.jobs", "llmops_lab.server",
             "llmops_lab.magics", "llmops_lab.cli", "llmops_lab.widgets")
    offenders = {_relative(p): sorted({n for n in _imports(p) if n.startswith(above)})
                 for p in TRACKING.rglob("*.py")}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_analysis_statistics_are_pure():
    """summary, drift and plots read no store: they take frames; only overview (stats) and the facade read."""
    for name in ("summary", "drift", "plots"):
        imported = _imports(PACKAGE / "analysis" / f"{name}.py")
        assert not [n for n in imported if n.startswith(("llmops_lab.tracking", "mlflow"))], name


def test_tag_names_are_spelled_only_in_tags_module():
    from llmops_lab.tracking import tags

    values = {v for k, v in vars(tags).items() if k.isupper() and isinstance(v, str)
              and v.startswith(("llmops.", "mlflow."))}
    assert {"llmops.kind", "llmops.record_id", "mlflow.parentRunId", "llmops.row"} <= values
    offenders = {}
    for path in _modules():
        if path == TRACKING / "tags.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                      if isinstance(n, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                      and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
        literals = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
                    and id(n) not in docstrings]
        found = sorted({v for v in literals if v in values})
        if found:
            offenders[_relative(path)] = found
    assert offenders == {}, f"tag names written as literals instead of tracking.tags constants: {offenders}"


def test_light_imports_stay_light():
    code = ("import sys, llmops_lab; from llmops_lab.analysis import monitoring; "
            "from llmops_lab.tracking import reader, writer, tags; import llmops_lab.server.runs; "
            "print([m for m in ('mlflow', 'pandas') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "[]", out.stderr


def test_monitoring_facade_keeps_the_documented_names():
    import llmops_lab
    from llmops_lab.analysis import drift, overview, plots, summary
    from llmops_lab.tracking import reader

    mon = llmops_lab.monitoring
    assert mon.load_calls is reader.load_calls and mon.load_runs is reader.load_runs
    assert mon.recent_runs is reader.recent_runs and llmops_lab.tracking.recent_runs  # forwards, no circle
    assert mon.summarize is summary.summarize and mon.plot_stats is plots.plot_stats
    assert mon.detect_drift is drift.detect_drift and mon.drift_report is drift.drift_report
    assert mon.stats is overview.stats and llmops_lab.stats is overview.stats
    assert mon.parse_since("12h").total_seconds() == 43200


# -- the reader ------------------------------------------------------------------------------------------

class _Page(list):
    def __init__(self, items, token=None):
        super().__init__(items)
        self.token = token


def test_paged_follows_tokens_and_stops_at_the_limit():
    from llmops_lab.tracking import reader

    pages = {None: _Page([1, 2], "a"), "a": _Page([3, 4], b"b"), b"b": _Page([5])}
    asked = []

    def fetch(token, n):
        asked.append((token, n))
        return pages[token]

    assert reader.paged(fetch) == [1, 2, 3, 4, 5]
    assert reader.paged(fetch, limit=3, page_size=2) == [1, 2, 3, 4] and asked[-1] == ("a", 1)
    assert reader.page_token(_Page([], b"xyz")) == "xyz" and reader.page_token(_Page([], "")) is None


def _run(kind="batch", status="FINISHED", stage="active", **metrics):
    tags = {"llmops.kind": kind, "llmops.model": "fake:m", "llmops.prompt": "p@1", "llmops.error": " boom\nmore "}
    return SimpleNamespace(
        info=SimpleNamespace(run_id="r" * 32, run_name="p", status=status, start_time=1, end_time=2,
                             experiment_id="1", lifecycle_stage=stage, artifact_uri="/nowhere"),
        data=SimpleNamespace(tags=tags, metrics=metrics, params={"model": "m"}))


def test_run_row_is_the_panels_schema():
    from llmops_lab.tracking import reader

    row = reader.run_row(_run(rows=3.0, latency_ms=float("nan"), **{"score.ok": 0.5}))
    assert row["kind"] == "batch" and row["rows"] == 3 and row["latency_ms"] is None
    assert row["score"] == {"name": "ok", "value": 0.5} and row["error"] == "boom"


def test_get_run_none_when_missing_or_deleted():
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, RESOURCE_DOES_NOT_EXIST

    from llmops_lab.tracking import reader

    class Client:
        def __init__(self, result):
            self.result = result

        def get_run(self, run_id):
            if isinstance(self.result, Exception):
                raise self.result
            return self.result

    missing = MlflowException("no", error_code=RESOURCE_DOES_NOT_EXIST)
    bad = MlflowException("bad id", error_code=INVALID_PARAMETER_VALUE)
    assert reader.get_run(Client(missing), "x") is None
    assert reader.get_run(Client(_run(stage="deleted")), "x") is None
    assert reader.get_run(Client(_run(stage="deleted")), "x", deleted=True) is not None
    with pytest.raises(MlflowException):
        reader.get_run(Client(bad), "x")
    assert reader.get_run(Client(bad), "x", any_error=True) is None


def test_span_dicts_keep_both_status_forms():
    from llmops_lab.tracking import traces

    span = SimpleNamespace(trace_id="t", name="s", span_type="CHAT_MODEL", start_time_ns=2_000_000,
                           end_time_ns=5_000_000, status=SimpleNamespace(status_code="OK"), attributes=None)
    trace = SimpleNamespace(data=SimpleNamespace(spans=[span, span]))
    spans = traces.span_dicts([trace], max_spans=1)
    assert spans == [{"trace_id": "t", "name": "s", "span_type": "CHAT_MODEL", "start_ns": 2_000_000,
                      "end_ns": 5_000_000, "status": "OK", "status_code": "OK", "attributes": {}}]


# -- one client per URI, shared by the kernel side and the server --------------------------------------------

def test_one_client_per_uri_for_kernel_and_server(tmp_path, monkeypatch):
    from llmops_lab.config import load_settings
    from llmops_lab.server import stores
    from llmops_lab.tracking import clients, reader

    monkeypatch.setattr(clients, "_clients", {})
    db = tmp_path / "mlflow.db"
    uri = f"sqlite:///{db}"
    store = stores.Store(load_settings(start=tmp_path), uri, "nb")
    assert store.client() is None and not db.exists()  # reading never creates a store
    assert stores.experiment_id(store, None) is None
    first = clients.client_for(uri)  # creates/migrates it (a writer's first write does the same)
    assert db.is_file()
    assert clients.client_for(uri) is first and store.client() is first and stores.client_for(uri) is first
    assert reader.experiment_id(first, "nb") is None  # and reading does not create an experiment


def test_writer_creates_an_experiment_once_beside_the_store(tmp_path, monkeypatch):
    from llmops_lab.config import load_settings
    from llmops_lab.tracking import clients, writer

    monkeypatch.setattr(clients, "_clients", {})
    (tmp_path / "pyproject.toml").write_text("")
    settings = load_settings(start=tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = clients.client_for(uri)
    cache: dict = {}
    exp_id = writer.experiment_id(client, uri, "notebooks/a b", settings, cache)
    assert writer.experiment_id(client, uri, "notebooks/a b", settings) == exp_id  # found, not created twice
    assert cache == {(uri, "notebooks/a b"): exp_id}
    location = client.get_experiment(exp_id).artifact_location
    assert location.endswith("/artifacts/notebooks_a_b") and str(settings.home) in location


# -- the compare parent travels through the spool as its own record kind -------------------------------------

def test_compare_record_waits_for_its_batches_and_is_written_once(tmp_path, monkeypatch):
    import numpy as np
    import pandas as pd

    from llmops_lab.config import load_settings
    from llmops_lab.tracking import clients, writer
    from llmops_lab.tracking import tags as T
    from llmops_lab.trust.redaction import redact_record

    monkeypatch.setattr(clients, "_clients", {})
    (tmp_path / "pyproject.toml").write_text("")
    monkeypatch.setenv("LLMOPS_HOME", str(tmp_path / ".llmops"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    settings = load_settings(start=tmp_path)
    uri = settings.resolved_tracking_uri()
    table = pd.DataFrame({"variant": ["a", "b"], "score_mean": [np.float64(0.5), np.nan], "n": [np.int64(3), 4]})
    record = redact_record(writer.compare_record(
        record_id="c" * 32, experiment="nb", notebook="nb.ipynb", user="ada", name="compare p", started_ms=1000,
        baseline="a", children=[("b1" * 16, None, "a"), (None, None, "b")], metrics={"v0.score.ok": 0.5},
        params={"variants": "2", "rows": "3", "primary_scorer": "ok"}, table=table), settings)
    assert record["summary"]["children"][0]["record_id"] == "b1" * 16  # ids are not content: kept as they are
    import json

    assert json.loads(json.dumps(record)) == record  # plain JSON: the replay writes the same thing

    client = clients.kernel_client(uri)
    exp_id = writer.experiment_id(client, uri, "nb", settings)
    with pytest.raises(RuntimeError, match="not written yet"):  # its batch is still in the spool
        writer.write_compare(record, settings)
    assert client.search_runs([exp_id]) == []  # nothing half-written
    child = client.create_run(exp_id, tags={T.RECORD_ID: "b1" * 16, T.KIND: T.BATCH}).info.run_id
    parent = writer.write_compare(record, settings)
    assert writer.write_compare(record, settings, replay=True) == parent  # never twice
    assert len(client.search_runs([exp_id], filter_string=T.tag_filter(T.KIND, T.COMPARE))) == 1
    got = client.get_run(parent)
    assert got.data.tags[T.RECORD_ID] == "c" * 32 and got.data.params["baseline"] == "a"
    assert got.data.metrics == {"v0.score.ok": 0.5} and got.info.status == "FINISHED"
    assert client.get_run(child).data.tags[T.PARENT_RUN_ID] == parent
    assert client.get_run(child).data.tags[T.COMPARE_VARIANT] == "a"
