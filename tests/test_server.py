"""The sidebar's REST API (llmops_lab.server) against a real jupyter-server and a real sqlite MLflow store.

One store is populated per module (real ``llmops_lab.run``/``batch`` calls through the fake OpenAI server,
with the notebook context set), and each test gets a fresh Jupyter server whose root is that project.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from urllib.parse import quote

import pytest
import tornado.httpclient
import tornado.web

pytest_plugins = ["pytest_jupyter.jupyter_server"]

NOTEBOOK = "notebooks/01_demo.ipynb"
N_SINGLE = 7


def _notebook(path: Path) -> None:
    import nbformat

    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    nb.cells = [nbformat.v4.new_code_cell('greeting = "hello"\nrepeat = 2\nthreshold: float = 0.5',
                                          metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell('import llmops_lab\nmessage = " ".join([greeting] * repeat)\n'
                                          'llmops_lab.record("words", len(message.split()))')]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))


@pytest.fixture(scope="module")
def populated(tmp_path_factory, fake_server):
    """A project with notebooks/01_demo.ipynb and its experiment: 7 single runs (two prompt versions, one
    failure) and one scored batch run; also a second notebook with no runs."""
    import pandas as pd

    import llmops_lab
    import llmops_lab.config as config
    import llmops_lab.tracking as tracking
    from conftest import REPO, make_project

    root = make_project(tmp_path_factory.mktemp("project"), store=True)
    _notebook(root / NOTEBOOK)
    _notebook(root / "notebooks/02_empty.ipynb")
    old_cwd = os.getcwd()
    os.chdir(root)
    tracking.shutdown(5)
    # an earlier test's writer may have exported its store (mlflow.set_tracking_uri sets the variable):
    # these runs must go to this project's store, the one the server reads
    saved_uri = os.environ.pop("MLFLOW_TRACKING_URI", None)
    config.reset_settings(root)
    fake_server.reset()
    fake_server.latency_ms, fake_server.responder, fake_server.fault_rate, fake_server.api_key = 0, None, 0.0, None
    llmops_lab.get_settings().endpoints["fake"] = {"base_url": fake_server.base_url}
    llmops_lab.configure(model="fake:test-model", max_retries=0)
    os.environ["LLMOPS_NOTEBOOK"] = str(root / NOTEBOOK)
    try:
        ids = []
        for i in range(N_SINGLE):
            template = "Summarize: {{ text }}" if i < 4 else "Summarize briefly: {{ text }}"
            ids.append(llmops_lab.run(template, {"text": f"the quick brown fox number {i}"}, name="summarize",
                                      temperature=0).run_id)
            time.sleep(0.005)  # distinct start times: the order is checkable
        fake_server.fail_next("500", 1)
        with pytest.raises(llmops_lab.ProviderError):
            llmops_lab.run("Summarize: {{ text }}", {"text": "this one fails"}, name="summarize")
        frame = pd.DataFrame({"text": ["a", "b", "c"], "label": ["echo: Classify: a", "x", "echo: Classify: c"]})
        results = llmops_lab.batch("Classify: {{ text }}", frame, name="classify", scorers=["exact:label"],
                                   progress=False)
        batch_id = llmops_lab.batch_run_id(results)
        assert tracking.flush(30) == 0
        if batch_id is None:  # the results' attrs lost their record id: find the run in the store instead
            from llmops_lab.server.stores import client_for

            client = client_for(f"sqlite:///{root.resolve() / '.llmops' / 'mlflow.db'}")
            exp = client.get_experiment_by_name("notebooks/01_demo")
            (found,) = client.search_runs([exp.experiment_id], "tags.`llmops.kind` = 'batch'")
            batch_id = found.info.run_id
    finally:
        os.environ.pop("LLMOPS_NOTEBOOK", None)
    yield {"root": root, "single": ids, "batch": batch_id}
    tracking.shutdown(10)
    os.chdir(old_cwd)
    if saved_uri is not None:
        os.environ["MLFLOW_TRACKING_URI"] = saved_uri
    config.reset_settings(REPO)


@pytest.fixture(autouse=True)
def _no_exported_tracking_uri(monkeypatch):
    # the kernel-side writer calls mlflow.set_tracking_uri(), which exports MLFLOW_TRACKING_URI into this
    # (test) process; a real Jupyter server never has it unless the user set it
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


@pytest.fixture
def jp_server_config():
    return {"ServerApp": {"jpserver_extensions": {"llmops_lab": True}}}


@pytest.fixture
def jp_root_dir(populated):
    return populated["root"]


async def get(jp_fetch, path: str, **params):
    response = await jp_fetch("llmops-lab", "api", *path.split("/"), params=params or None)
    return json.loads(response.body)


async def fails(jp_fetch, path: str, status: int, method: str = "GET", body=None, params=None, **kw):
    with pytest.raises(tornado.httpclient.HTTPClientError) as err:
        await jp_fetch("llmops-lab", "api", *path.split("/"), method=method, body=body, params=params,
                       allow_nonstandard_methods=True, **kw)
    assert err.value.code == status, err.value.response.body if err.value.response else err.value
    message = json.loads(err.value.response.body)["message"]
    assert message and "\n" not in message and "Traceback" not in message
    return message


# -- store and experiment ---------------------------------------------------------------------------

async def test_context_matches_the_notebook_kernel(jp_fetch, populated):
    ctx = await get(jp_fetch, "context", notebook=NOTEBOOK)
    assert ctx["experiment"] == "notebooks/01_demo" and ctx["experiment_id"]
    assert ctx["project_root"] == str(populated["root"].resolve())
    assert ctx["tracking_uri"] == f"sqlite:///{populated['root'].resolve() / '.llmops' / 'mlflow.db'}"
    assert ctx["mlflow_ui"] == {"running": False, "url": None, "ready": False}
    other = await get(jp_fetch, "context", notebook="notebooks/02_empty.ipynb")
    assert other["experiment"] == "notebooks/02_empty" and other["experiment_id"] is None
    root = await get(jp_fetch, "context")
    assert root["experiment"] == "llmops-lab"


async def test_password_in_tracking_uri_is_masked(jp_fetch, populated, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://ada:s3cr3t-pw@127.0.0.1:9/")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    # the store is unreachable: 503 with a one-line message, and the password never leaves the server
    message = await fails(jp_fetch, "context", 503, params={"notebook": NOTEBOOK})
    assert "is unreachable" in message and "s3cr3t" not in message and "127.0.0.1:9" in message
    message = await fails(jp_fetch, "runs", 503)
    assert "s3cr3t" not in message


def test_mask_uri():
    from llmops_lab.server.stores import mask_uri

    assert mask_uri("https://ada:pw@host:5000/x") == "https://ada:***@host:5000/x"
    assert mask_uri("sqlite:////tmp/a.db") == "sqlite:////tmp/a.db"


# -- runs -------------------------------------------------------------------------------------------

async def test_runs_rows_and_default_order(jp_fetch, populated):
    page = await get(jp_fetch, "runs", notebook=NOTEBOOK)
    rows = page["runs"]
    assert page["experiment"] == "notebooks/01_demo" and page["next_page_token"] is None
    assert len(rows) == N_SINGLE + 2  # singles, the failed call, the batch
    starts = [r["start_time"] for r in rows]
    assert starts == sorted(starts, reverse=True)
    single = next(r for r in rows if r["run_id"] == populated["single"][-1])
    assert single["kind"] == "single" and single["status"] == "FINISHED" and single["model"] == "fake:test-model"
    assert single["prompt"] == "summarize@2" and single["latency_ms"] >= 0 and single["total_tokens"] > 0
    assert single["notebook"].endswith(NOTEBOOK) and single["error"] is None and single["score"] is None
    failed = next(r for r in rows if r["status"] == "FAILED")
    assert failed["error"] and "\n" not in failed["error"]
    batch = next(r for r in rows if r["run_id"] == populated["batch"])
    assert batch["kind"] == "batch" and batch["score"]["name"] == "exact_label"
    assert batch["score"]["value"] == pytest.approx(2 / 3)


async def test_runs_pages_are_disjoint_and_cover_everything(jp_fetch, populated):
    everything = (await get(jp_fetch, "runs", notebook=NOTEBOOK, max_results="500"))["runs"]
    for order in ("start_time DESC", "start_time ASC", "latency_ms DESC", "total_tokens ASC"):
        seen, token = [], None
        while True:
            params = {"notebook": NOTEBOOK, "max_results": "2", "order_by": order}
            if token:
                params["page_token"] = token
            page = await get(jp_fetch, "runs", **params)
            assert len(page["runs"]) <= 2
            seen += page["runs"]
            token = page["next_page_token"]
            if not token:
                break
        ids = [r["run_id"] for r in seen]
        assert len(ids) == len(set(ids)) == len(everything), order
        key, direction = order.split()
        values = [r[key] for r in seen if r[key] is not None]
        assert values == sorted(values, reverse=direction == "DESC"), order
    asc = (await get(jp_fetch, "runs", notebook=NOTEBOOK, order_by="start_time ASC"))["runs"]
    assert [r["run_id"] for r in asc] == [r["run_id"] for r in everything][::-1]


def test_metric_order_gives_sqlite_planner_statistics(populated):
    """Without statistics SQLite joins latest_metrics by scanning it once per run (14 s at 10k runs)."""
    import sqlite3

    from llmops_lab.config import load_settings
    from llmops_lab.server import runs, stores

    db = populated["root"] / ".llmops" / "mlflow.db"
    with sqlite3.connect(db) as conn:
        conn.execute("DROP TABLE IF EXISTS sqlite_stat1")
    stores._analyzed.clear()
    settings = load_settings(start=populated["root"] / "notebooks", environ={})
    store = stores.Store(settings, settings.resolved_tracking_uri(), "notebooks/01_demo")
    runs.list_runs(store, order_by=runs.parse_order_by("start_time DESC"))
    with sqlite3.connect(db) as conn:  # the default order needs none: nothing written
        assert not conn.execute("SELECT name FROM sqlite_master WHERE name = 'sqlite_stat1'").fetchall()
    page = runs.list_runs(store, order_by=runs.parse_order_by("latency_ms DESC"))
    assert [r["latency_ms"] for r in page["runs"] if r["latency_ms"] is not None] == \
        sorted((r["latency_ms"] for r in page["runs"] if r["latency_ms"] is not None), reverse=True)
    with sqlite3.connect(db) as conn:
        tables = {row[0] for row in conn.execute("SELECT tbl FROM sqlite_stat1")}
    assert {"runs", "latest_metrics"} <= tables


@pytest.mark.parametrize("params, words", [
    ({"max_results": "0"}, "max_results"), ({"max_results": "501"}, "max_results"),
    ({"max_results": "ten"}, "max_results"), ({"order_by": "name"}, "order_by"),
    ({"order_by": "latency_ms SIDEWAYS"}, "order_by"), ({"order_by": "start_time; DROP TABLE runs"}, "order_by"),
    ({"page_token": "not a token!"}, "page_token"), ({"page_token": "bm90anNvbg=="}, ""),
])
async def test_runs_bad_queries(jp_fetch, populated, params, words):
    message = await fails(jp_fetch, "runs", 400, params={"notebook": NOTEBOOK, **params})
    assert words in message


async def test_runs_of_a_notebook_without_store_or_experiment(jp_fetch, populated, tmp_path):
    page = await get(jp_fetch, "runs", notebook="notebooks/02_empty.ipynb")
    assert page == {"experiment": "notebooks/02_empty", "experiment_id": None, "runs": [], "next_page_token": None}
    # a sub-project with no store yet: nothing is created by reading
    sub = populated["root"] / "sub"
    _notebook(sub / "n.ipynb")
    (sub / "llmops.toml").write_text("")
    try:
        page = await get(jp_fetch, "runs", notebook="sub/n.ipynb")
        assert page["runs"] == [] and not (sub / ".llmops").exists()
        await fails(jp_fetch, "prompts/summarize", 404, params={"notebook": "sub/n.ipynb"})
    finally:
        shutil.rmtree(sub)


async def test_run_detail(jp_fetch, populated):
    run_id = populated["single"][0]
    detail = await get(jp_fetch, f"runs/{run_id}")
    assert detail["run_id"] == run_id and detail["prompt"] == "summarize@1"
    assert detail["prompt_text"] == "Summarize: the quick brown fox number 0"
    assert detail["output_text"] == "echo: Summarize: the quick brown fox number 0"
    assert detail["params"]["model"] == "test-model" and detail["metrics"]["total_tokens"] > 0
    assert detail["tags"]["llmops.kind"] == "single" and "mlflow.source.name" in detail["tags"]
    assert all(k.startswith(("llmops.", "mlflow.source.")) for k in detail["tags"])
    (span,) = detail["spans"]
    assert span["name"] == "summarize" and span["span_type"] == "CHAT_MODEL" and span["status"] == "OK"
    assert span["end_ms"] >= span["start_ms"] and span["attributes"]["model"] == "fake:test-model"
    batch = await get(jp_fetch, f"runs/{populated['batch']}")
    assert batch["prompt_text"] == "Classify: {{ text }}" and batch["output_text"] is None
    assert len(batch["spans"]) == 3 and batch["metrics"]["score.exact_label"] == pytest.approx(2 / 3)
    assert detail["results"] is None
    # a batch has no single output: its first result rows instead (inputs, output, scores)
    results = batch["results"]
    assert results["columns"] == ["text", "label", "output", "exact_label"]
    assert results["score_columns"] == ["exact_label"] and results["total"] == 3 and results["truncated"] is False
    assert [r[:3] for r in results["rows"]] == [["a", "echo: Classify: a", "echo: Classify: a"],
                                                ["b", "x", "echo: Classify: b"],
                                                ["c", "echo: Classify: c", "echo: Classify: c"]]
    assert [float(r[3]) for r in results["rows"]] == [1.0, 0.0, 1.0]
    assert batch["rows"] == 3 and batch["variants"] is None and batch["job"] is None


def test_batch_rows_are_capped_and_cut(tmp_path):
    import csv
    from types import SimpleNamespace

    from llmops_lab.server import runs

    with open(tmp_path / "results.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["question", "output", "latency_ms", "error", "judge", "judge_rationale"])
        for i in range(50):
            writer.writerow([f"q{i}\nline two", "x" * 2000, 12, "" if i != 3 else "timeout", i % 2, "why"])
    run = SimpleNamespace(info=SimpleNamespace(artifact_uri=str(tmp_path), run_id="0" * 32),
                          data=SimpleNamespace(metrics={"score.judge": 0.5, "rows": 50.0}))
    got = runs.batch_rows(None, run)
    assert got["columns"] == ["question", "output", "judge", "error"]  # a row failed: its error is shown
    assert len(got["rows"]) == runs.MAX_ROWS and got["truncated"] is True and got["total"] == 50
    assert got["rows"][0][0] == "q0\nline two" and len(got["rows"][0][1]) == runs.MAX_CELL
    assert got["rows"][3][3] == "timeout"
    (tmp_path / "results.csv").unlink()
    assert runs.batch_rows(None, run) is None


async def test_run_detail_errors(jp_fetch, populated):
    assert "32 hexadecimal" in await fails(jp_fetch, "runs/not-a-run-id", 400)
    assert "32 hexadecimal" in await fails(jp_fetch, "runs/" + "A" * 32, 400)
    assert "not found" in await fails(jp_fetch, "runs/" + "0" * 32, 404)


async def test_compare(jp_fetch, populated):
    a, b = populated["single"][0], populated["single"][5]
    answer = await get(jp_fetch, "compare", run_ids=f"{a},{b},{populated['batch']}")
    assert answer["baseline"] == a and [r["run_id"] for r in answer["runs"]] == [a, b, populated["batch"]]
    assert answer["diffs"][b] == [["=", "echo:"], ["-", "Summarize:"], ["+", "Summarize briefly:"],
                                  ["=", "the quick brown fox number"], ["-", "0"], ["+", "5"]]
    assert "latency_ms" in answer["metrics"] and "score.exact_label" in answer["metrics"]
    for bad in ("", a, f"{a},{a}", ",".join([a] * 7), f"{a},nothex"):
        await fails(jp_fetch, "compare", 400, params={"run_ids": bad})
    await fails(jp_fetch, "compare", 404, params={"run_ids": f"{a},{'f' * 32}"})


# -- prompts ----------------------------------------------------------------------------------------

async def test_prompts_list_detail_diff_alias(jp_fetch, populated):
    listed = {p["name"]: p for p in (await get(jp_fetch, "prompts"))["prompts"]}
    assert set(listed) >= {"summarize", "classify"}
    assert listed["summarize"]["versions"] == [1, 2] and listed["summarize"]["latest"] == 2
    assert listed["summarize"]["updated_ms"] > 0
    only = (await get(jp_fetch, "prompts", filter="name = 'classify'"))["prompts"]
    assert [p["name"] for p in only] == ["classify"]

    detail = await get(jp_fetch, "prompts/summarize")
    assert [v["version"] for v in detail["versions"]] == [1, 2]
    assert detail["versions"][0]["template"] == "Summarize: {{ text }}" and detail["versions"][0]["created_ms"]

    diff = await get(jp_fetch, "prompts/summarize/diff", a="1", b="2")
    assert "-Summarize: {{ text }}" in diff["diff"] and "+Summarize briefly: {{ text }}" in diff["diff"]

    response = await jp_fetch("llmops-lab", "api", "prompts", "summarize", "alias", method="PUT",
                              body=json.dumps({"alias": "production", "version": 1, "reason": "shorter wins"}))
    assert json.loads(response.body) == {"version": 1, "aliases": ["production"]}
    from llmops_lab.server import stores

    tags = stores.client_for(f"sqlite:///{populated['root']}/.llmops/mlflow.db").get_prompt_version("summarize", 1).tags
    assert tags["llmops.promoted_alias"] == "production" and tags["llmops.promoted_reason"] == "shorter wins"
    assert tags["llmops.promoted_from"] == "jupyterlab sidebar" and tags["llmops.promoted_by"]  # the Jupyter user
    listed = {p["name"]: p for p in (await get(jp_fetch, "prompts"))["prompts"]}
    assert listed["summarize"]["aliases"] == {"production": 1}
    diff = await get(jp_fetch, "prompts/summarize/diff", a="production", b="2")
    assert diff["a"] == "production" and "+Summarize briefly" in diff["diff"]


async def test_prompt_errors(jp_fetch, populated):
    assert "not found" in await fails(jp_fetch, "prompts/nope", 404)
    await fails(jp_fetch, "prompts/nope/diff", 404, params={"a": "1", "b": "2"})
    await fails(jp_fetch, "prompts/summarize/diff", 404, params={"a": "1", "b": "9"})
    await fails(jp_fetch, "prompts/summarize/diff", 404, params={"a": "1", "b": "staging"})
    await fails(jp_fetch, "prompts/summarize/diff", 400, params={"a": "1"})
    await fails(jp_fetch, "prompts/bad%20name!", 400)
    for body, status in ((json.dumps({"alias": "latest", "version": 1}), 400),
                         (json.dumps({"alias": "prod", "version": "1"}), 400),
                         (json.dumps({"alias": "prod", "version": 9}), 404),
                         ("not json", 400), ("[1]", 400)):
        await fails(jp_fetch, "prompts/summarize/alias", status, method="PUT", body=body)
    await fails(jp_fetch, "prompts/nope/alias", 404, method="PUT", body=json.dumps({"alias": "p", "version": 1}))
    await fails(jp_fetch, "prompts", 400, params={"filter": "name LIKE"})


# -- jobs -------------------------------------------------------------------------------------------

async def test_jobs_preview_promote_list_run(jp_fetch, populated):
    from llmops_lab.jobs.store import store_for
    from llmops_lab.server import processes

    preview = await get(jp_fetch, "jobs/preview", notebook=NOTEBOOK, schedule="0 2 * * *")
    assert preview["parameters"] == {"greeting": {"value": "hello", "type": "str"},
                                     "repeat": {"value": 2, "type": "int"},
                                     "threshold": {"value": 0.5, "type": "float"}}
    assert preview["schedule_text"] == "at 02:00, every day" and len(preview["next_runs"]) == 3
    assert preview["next_runs"][0].endswith("02:00:00+00:00") and preview["parameters_cell"] is True
    assert "not a valid cron" in await fails(jp_fetch, "jobs/preview", 400,
                                             params={"notebook": NOTEBOOK, "schedule": "61 * * *"})
    await fails(jp_fetch, "jobs/preview", 400)  # notebook is required

    assert (await get(jp_fetch, "jobs"))["jobs"] == []
    assert not (populated["root"] / ".llmops" / "jobs.db").exists()  # reading the panel creates no database
    response = await jp_fetch("llmops-lab", "api", "jobs", method="POST",
                              body=json.dumps({"notebook": NOTEBOOK, "name": "nightly", "schedule": "0 2 * * *",
                                               "parameters": {"repeat": 3}}))
    assert response.code == 201
    job = json.loads(response.body)
    assert job["name"] == "nightly" and job["notebook"] == NOTEBOOK and job["schedule_text"] == "at 02:00, every day"
    assert job["last_status"] is None and job["next_run"]
    await fails(jp_fetch, "jobs", 409, method="POST", body=json.dumps({"notebook": NOTEBOOK, "name": "nightly"}))
    assert "repeat" in await fails(jp_fetch, "jobs", 400, method="POST",
                                   body=json.dumps({"notebook": NOTEBOOK, "name": "x", "parameters": {"repaet": 1}}))
    await fails(jp_fetch, "jobs", 400, method="POST", body=json.dumps({"notebook": NOTEBOOK, "name": "bad name"}))
    await fails(jp_fetch, "jobs", 403, method="POST", body=json.dumps({"notebook": "../x.ipynb", "name": "x"}))
    assert "NUL" in await fails(jp_fetch, "jobs", 400, method="POST",
                                body=json.dumps({"notebook": "notebooks/\x0001_demo.ipynb", "name": "x"}))

    await fails(jp_fetch, "jobs/nope/run", 404, method="POST", body="")
    response = await jp_fetch("llmops-lab", "api", "jobs", "nightly", "run", method="POST", body="")
    assert response.code == 202 and json.loads(response.body)["started"] is True
    key = f"job:{populated['root'].resolve()}:nightly"
    proc = processes.running(key)
    assert proc is not None
    await fails(jp_fetch, "jobs/nightly/run", 409, method="POST", body="")
    try:
        assert proc.wait(180) == 0, (populated["root"] / ".llmops/logs/job-nightly.log").read_text()[-2000:]
    finally:
        processes.stop(key)
    history = store_for(populated["root"] / ".llmops").history("nightly", 1)
    assert history[0].status == "completed" and history[0].metrics == {"words": 3.0}
    (row,) = (await get(jp_fetch, "jobs"))["jobs"]
    assert row["last_status"] == "completed" and row["score"] == ["words", 3.0] and row["last_metrics"]

    # the last execution's files: the executed notebook (hidden .llmops/: JupyterLab cannot open it unless
    # ContentsManager.allow_hidden), its HTML report and the history
    last = row["last_execution"]
    assert last["id"] == history[0].id and last["status"] == "completed" and last["report"] is True
    assert last["output_path"].startswith(".llmops/jobs/nightly/") and last["output_path"].endswith(".ipynb")
    assert last["output_openable"] is False and last["has_output"] is True and last["metrics"] == {"words": 3.0}
    (listed,) = (await get(jp_fetch, "jobs/nightly/history"))["executions"]
    assert listed == last
    assert (await get(jp_fetch, "jobs/nightly/history", limit="1"))["name"] == "nightly"
    await fails(jp_fetch, "jobs/nightly/history", 400, params={"limit": "0"})
    await fails(jp_fetch, "jobs/nope/history", 404)

    report = await jp_fetch("llmops-lab", "api", "jobs", "nightly", "executions", str(last["id"]), "report")
    assert report.headers["Content-Type"].startswith("text/html")
    assert report.headers["Content-Security-Policy"].startswith("sandbox;")
    assert "default-src 'none'" in report.headers["Content-Security-Policy"]
    assert b"Job nightly: completed" in report.body
    executed = await jp_fetch("llmops-lab", "api", "jobs", "nightly", "executions", str(last["id"]), "notebook")
    assert "attachment" in executed.headers["Content-Disposition"]
    assert json.loads(executed.body)["nbformat"] == 4
    await fails(jp_fetch, f"jobs/nightly/executions/{last['id'] + 99}/report", 404)
    await fails(jp_fetch, "jobs/nightly/executions/x1/report", 400)
    await fails(jp_fetch, f"jobs/nope/executions/{last['id']}/report", 404)
    # a history row pointing elsewhere (a tampered jobs.db) never serves that file
    import sqlite3

    with sqlite3.connect(populated["root"] / ".llmops" / "jobs.db") as db:
        db.execute("UPDATE executions SET report_path = ? WHERE id = ?",
                   (str(populated["root"] / "llmops.toml"), last["id"]))
    try:
        assert "outside" in await fails(jp_fetch, f"jobs/nightly/executions/{last['id']}/report", 403)
    finally:
        with sqlite3.connect(populated["root"] / ".llmops" / "jobs.db") as db:
            db.execute("UPDATE executions SET report_path = ? WHERE id = ?", (history[0].report_path, last["id"]))


async def test_executed_notebook_opens_in_jupyterlab_when_hidden_files_are_shown(jp_fetch, populated,
                                                                                 jp_serverapp):
    jobs = (await get(jp_fetch, "jobs"))["jobs"]
    if not jobs or not jobs[0]["last_execution"]:
        pytest.skip("needs the job run by test_jobs_preview_promote_list_run")
    jp_serverapp.contents_manager.allow_hidden = True
    try:
        (row,) = (await get(jp_fetch, "jobs"))["jobs"]
        assert row["last_execution"]["output_openable"] is True
        model = await jp_fetch("api", "contents", *row["last_execution"]["output_path"].split("/"))
        assert json.loads(model.body)["type"] == "notebook"
    finally:
        jp_serverapp.contents_manager.allow_hidden = False


def test_warm_up_imports_mlflow_and_builds_the_root_client(populated, monkeypatch):
    from llmops_lab.server import stores
    from llmops_lab.tracking import clients  # the one client per URI, shared with the kernel side

    uri = f"sqlite:///{populated['root'].resolve() / '.llmops' / 'mlflow.db'}"
    monkeypatch.setattr(clients, "_clients", {})
    stores.start_warm_up(populated["root"]).join(60)
    assert uri in clients._clients
    stores.warm_up(populated["root"] / "missing")  # never raises


# -- MLflow UI ---------------------------------------------------------------------------------------

async def test_mlflow_ui_starts_once_per_store(jp_fetch, populated):
    from llmops_lab.server import mlflow_ui, processes

    try:
        first = json.loads((await jp_fetch("llmops-lab", "api", "mlflow-ui", method="POST",
                                           body=json.dumps({"notebook": NOTEBOOK}))).body)
        assert first["running"] is True and first["url"].startswith("http://127.0.0.1:")
        second = json.loads((await jp_fetch("llmops-lab", "api", "mlflow-ui", method="POST", body="")).body)
        assert second["url"] == first["url"]
        ctx = await get(jp_fetch, "context", notebook=NOTEBOOK)
        assert ctx["mlflow_ui"]["running"] is True and ctx["mlflow_ui"]["url"] == first["url"]
    finally:
        processes.stop_all("mlflow-ui:")
    assert (await get(jp_fetch, "context"))["mlflow_ui"]["running"] is False
    assert mlflow_ui._urls  # the URL was remembered per store


# -- confinement and limits ----------------------------------------------------------------------------

@pytest.mark.parametrize("notebook, status", [
    ("../outside.ipynb", 403), ("notebooks/../../outside.ipynb", 403), ("notebooks/../llmops.toml", 403),
    ("/etc/passwd", 400), ("C:/x.ipynb", 400), ("notebooks/missing.ipynb", 404),
    ("a\x00b.ipynb", 404),  # tornado turns control characters of query arguments into spaces
    ("llmops.toml", 400), ("link_out/x.ipynb", 403), ("link_nb.ipynb", 403),
])
async def test_paths_are_confined(jp_fetch, populated, tmp_path, notebook, status):
    outside = tmp_path / "outside"
    _notebook(outside / "x.ipynb")
    root = populated["root"]
    links = [root / "link_out", root / "link_nb.ipynb"]
    links[0].symlink_to(outside, target_is_directory=True)
    links[1].symlink_to(outside / "x.ipynb")
    try:
        await fails(jp_fetch, "context", status, params={"notebook": notebook})
        await fails(jp_fetch, "runs", status, params={"notebook": notebook})
    finally:
        for link in links:
            link.unlink()


async def test_encoded_dot_dot_in_the_url(jp_fetch, jp_base_url, jp_http_port, jp_auth_header, populated):
    client = tornado.httpclient.AsyncHTTPClient()
    url = f"http://localhost:{jp_http_port}{jp_base_url}llmops-lab/api/context?notebook=%2e%2e%2fx.ipynb"
    with pytest.raises(tornado.httpclient.HTTPClientError) as err:
        await client.fetch(url, headers=jp_auth_header)
    assert err.value.code == 403


async def test_oversized_body_is_413(jp_fetch, populated):
    body = json.dumps({"alias": "production", "version": 1, "pad": "x" * (65 * 1024)})
    assert "64 KB" in await fails(jp_fetch, "prompts/summarize/alias", 413, method="PUT", body=body)
    await fails(jp_fetch, "jobs", 413, method="POST", body=body)


# -- authentication ------------------------------------------------------------------------------------

def _routes():
    from llmops_lab.server.routes import ROUTES

    verbs = ("get", "post", "put", "patch", "delete", "head", "options")
    for path, handler in ROUTES:
        for verb in verbs:
            if verb in vars(handler) or any(verb in vars(base) for base in handler.__mro__[1:]
                                            if base.__module__.startswith("llmops_lab")):
                yield path, handler, verb


def test_every_verb_is_wrapped_by_authenticated():
    """Every verb our handlers define is tornado.web.authenticated (its wrapper keeps the original in
    __wrapped__); a new handler or verb without it fails here."""
    found = list(_routes())
    assert len(found) >= 14
    for path, handler, verb in found:
        method = getattr(handler, verb)
        assert getattr(method, "__wrapped__", None) is not None, f"{handler.__name__}.{verb} ({path})"
        assert method.__code__ is tornado.web.authenticated(lambda self: None).__code__, \
            f"{handler.__name__}.{verb} ({path}) is not @tornado.web.authenticated"


async def test_every_route_refuses_anonymous_requests(jp_fetch, jp_base_url, jp_http_port, populated):
    """Live: each route x verb without a token (and without cookies) is 403, and nothing ran."""
    client = tornado.httpclient.AsyncHTTPClient()
    samples = {"(?P<run_id>[^/]+)": "0" * 32, "(?P<name>[^/]+)": "summarize", "(?P<execution>[^/]+)": "1",
               "(?P<conversation_id>[^/]+)": "0" * 32,
               "(?P<what>report|notebook)": "report"}
    checked = 0
    for path, _, verb in _routes():
        concrete = path
        for pattern, sample in samples.items():
            concrete = concrete.replace(pattern, sample)
        assert "(" not in concrete, concrete
        url = f"http://localhost:{jp_http_port}{jp_base_url}llmops-lab/api/{concrete}"
        body = b"{}" if verb in ("post", "put", "patch") else None
        for headers in ({}, {"Authorization": "token wrong"}):
            with pytest.raises(tornado.httpclient.HTTPClientError) as err:
                await client.fetch(url, method=verb.upper(), body=body, headers=headers,
                                   allow_nonstandard_methods=True, follow_redirects=False)
            assert err.value.code == 403, f"{verb.upper()} {concrete} with {headers}: {err.value.code}"
            checked += 1
    assert checked >= 28
    # nothing ran: no UI started, no alias moved
    assert (await get(jp_fetch, "context"))["mlflow_ui"]["running"] is False
    assert "p" not in {p["name"]: p for p in (await get(jp_fetch, "prompts"))["prompts"]}["summarize"]["aliases"]


async def test_options_sets_no_cors_headers(jp_fetch, populated):
    with pytest.raises(tornado.httpclient.HTTPClientError) as err:
        await jp_fetch("llmops-lab", "api", "runs", method="OPTIONS",
                       headers={"Origin": "https://evil.example"})
    assert err.value.code == 405
    assert "Access-Control-Allow-Origin" not in err.value.response.headers


async def test_cookie_auth_write_without_xsrf_is_refused(jp_fetch, jp_base_url, jp_http_port, jp_serverapp,
                                                         populated):
    """A browser session (cookie, no token) can read, but a PUT without the _xsrf token is refused."""
    client = tornado.httpclient.AsyncHTTPClient()
    base = f"http://localhost:{jp_http_port}{jp_base_url}"
    login = await client.fetch(f"{base}login?token={jp_serverapp.identity_provider.token}", follow_redirects=False,
                               raise_error=False)
    cookies = "; ".join(c.split(";", 1)[0] for c in login.headers.get_list("Set-Cookie"))
    assert "username-" in cookies, login.code
    ok = await client.fetch(f"{base}llmops-lab/api/prompts", headers={"Cookie": cookies})
    assert ok.code == 200
    refused = await client.fetch(f"{base}llmops-lab/api/prompts/summarize/alias", method="PUT",
                                 body=json.dumps({"alias": "p", "version": 1}), headers={"Cookie": cookies},
                                 raise_error=False)
    assert refused.code == 403


@pytest.mark.slow
def test_children_stop_with_the_jupyter_server(tmp_path):
    """A real `jupyter server` process: the MLflow UI the panel started does not outlive it (SIGTERM)."""
    import signal
    import socket
    import subprocess
    import sys
    import urllib.request

    from conftest import REPO

    (tmp_path / "llmops.toml").write_text("")
    (tmp_path / ".llmops").mkdir()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "LLMOPS_HOME")}
    server = subprocess.Popen([sys.executable, "-m", "jupyter", "server", "--no-browser", f"--port={port}",
                               "--ServerApp.token=t0ken", "--allow-root", f"--ServerApp.root_dir={tmp_path}"],
                              cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/llmops-lab/api"
    headers = {"Authorization": "token t0ken", "Content-Type": "application/json"}
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(urllib.request.Request(f"{base}/context", headers=headers), timeout=2)
                break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None, "jupyter server did not start"
                time.sleep(0.3)
        answer = json.loads(urllib.request.urlopen(urllib.request.Request(
            f"{base}/mlflow-ui", data=b"{}", headers=headers, method="POST"), timeout=30).read())
        ui_port = answer["url"].rsplit(":", 1)[1]

        def ui_processes() -> list[str]:
            out = subprocess.run(["ps", "-eww", "-o", "args"], capture_output=True, text=True).stdout
            return [line for line in out.splitlines() if "ui --port " + ui_port in line or f"--port {ui_port}" in line]

        assert ui_processes(), "the MLflow UI child did not start"
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
    deadline = time.monotonic() + 15
    while ui_processes() and time.monotonic() < deadline:
        time.sleep(0.3)
    assert not ui_processes(), "the MLflow UI outlived the Jupyter server"
