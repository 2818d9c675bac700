"""Secrets never stored: a seeded run with fake keys, emails and cards in prompts, system messages, data and
answers (the fake server echoes them back), then a byte scan of everything llmops-lab and MLflow wrote —
``.llmops/`` (spool, cache, sqlite store and its WAL, artifacts, staging), job output notebooks and reports,
and the logs. The API key itself must appear nowhere."""
from __future__ import annotations

import json
import logging
import secrets
from pathlib import Path

import pandas as pd
import pytest

import llmops_lab
from conftest import mlflow_client
from fake_openai import FakeOpenAI
from llmops_lab import tracking

# Fresh values per run, so a hit can only come from this test's own writes.
API_KEY = f"sk-proj-{secrets.token_urlsafe(24)}"  # the credential (environment only)
IN_PROMPT = {
    "openai_key": f"sk-proj-{secrets.token_hex(16)}",
    "anthropic_key": f"sk-ant-api03-{secrets.token_hex(14)}",
    "aws_key": "AKIA" + secrets.token_hex(8).upper(),
    "github": "ghp_" + secrets.token_hex(18),
    "password_url": f"postgresql://app:{secrets.token_hex(6)}Pw@db.internal/app",
    "email": f"ada.{secrets.token_hex(3)}@example.com",
    "card": "4111 1111 1111 1111",
    "phone": "+44 20 7946 0958",
}
ECHOED = {"github_in_answer": "ghp_" + secrets.token_hex(18), "email_in_answer": f"eve.{secrets.token_hex(3)}@example.org"}
SYSTEM_SECRET = f"sk-proj-{secrets.token_hex(16)}"
ERROR_SECRET = f"sk-proj-{secrets.token_hex(16)}"


def _needles() -> dict[str, bytes]:
    values = {**IN_PROMPT, **ECHOED, "system": SYSTEM_SECRET, "error": ERROR_SECRET, "api_key": API_KEY}
    needles = {name: v.encode() for name, v in values.items()}
    needles["password_url"] = IN_PROMPT["password_url"].split(":")[2].split("@")[0].encode()  # the password
    needles["card"] = b"4111 1111 1111 1111"
    return needles


def scan(*roots: Path, extra: dict[str, str] | None = None) -> list[tuple[str, str]]:
    """(secret name, where) for every secret found in the files under ``roots`` and in ``extra`` texts."""
    hits = []
    needles = _needles()
    for root in roots:
        for path in sorted(p for p in Path(root).rglob("*") if p.is_file()):
            data = path.read_bytes()
            for name, needle in needles.items():
                if needle in data:
                    hits.append((name, str(path)))
    for where, text in (extra or {}).items():
        for name, needle in needles.items():
            if needle.decode() in text:
                hits.append((name, where))
    return hits


def responder(req):
    text = req["messages"][-1]["content"]
    if "FAIL" in text:
        raise RuntimeError(f"upstream refused token {ERROR_SECRET}")  # a provider error that echoes a secret
    return f"echo: {text} | also {ECHOED['github_in_answer']} and {ECHOED['email_in_answer']}"


@pytest.fixture
def secure(project, monkeypatch):
    """A fake provider that requires API_KEY, configured as endpoint ``secure`` (key from the environment)."""
    monkeypatch.setenv("SECURE_API_KEY", API_KEY)
    with FakeOpenAI(api_key=API_KEY, responder=responder) as server:
        llmops_lab.get_settings().endpoints["secure"] = {"base_url": server.base_url, "api_key_env": "SECURE_API_KEY"}
        llmops_lab.configure(model="secure:m", max_retries=0)
        yield server


def seeded_run(shell, server) -> list:
    """Single calls (API and magic), a failed call, and a cached batch — all carrying secrets."""
    prompt = " ".join(f"{k}={{{{ {k} }}}}" for k in IN_PROMPT)
    results = [llmops_lab.run(f"Check: {prompt}", IN_PROMPT, name="seeded", system=f"internal {SYSTEM_SECRET}")]
    shell.user_ns.update(IN_PROMPT)
    assert shell.run_cell(f"%%llm --name seeded-cell --out r\nAgain: {prompt}").success
    results.append(shell.user_ns["r"])
    with pytest.raises(llmops_lab.ProviderError):
        llmops_lab.run("FAIL {{ email }}", IN_PROMPT, name="seeded-fail")
    df = pd.DataFrame([{**IN_PROMPT, "label": "x"}, {**IN_PROMPT, "email": "zed@example.net", "label": "y"}])
    batch = llmops_lab.batch(f"Row: {prompt}", df, name="seeded-batch", scorers=["contains:label"], progress=False)
    assert batch["error"].isna().all()
    assert "ghp_" in results[0].text and IN_PROMPT["email"] in server.requests[0]["messages"][-1]["content"]
    return results


def test_no_secret_stored_anywhere_after_a_seeded_run(secure, shell, project, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    llmops_lab.configure(tracking_uri="sqlite:////proc/llmops-down/mlflow.db")  # store down: records wait
    results = seeded_run(shell, secure)
    assert [r.run_id for r in results] == [None, None]  # waits for the writer: queued, not logged
    assert {r.tracking_status for r in results} == {"queued"}
    home = project / ".llmops"
    assert list((home / "spool").glob("*.jsonl")) and (home / "cache.db").exists()
    pending_hits = scan(home)
    assert pending_hits == [], f"secrets in the spool/cache while MLflow was down: {pending_hits}"

    llmops_lab.configure(tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    assert tracking.flush(60) == 0
    client = mlflow_client()
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    assert len(runs) == 4 and {r.data.tags["llmops.redaction"] for r in runs} == {"ok"}
    assert sorted(r.info.status for r in runs) == ["FAILED", "FINISHED", "FINISHED", "FINISHED"]
    # What is stored is masked, not missing: the run of the first call shows the labels.
    first = client.get_run(results[0].run_id)
    assert "openai_key" in first.data.tags["llmops.redaction.counts"]
    prompt_txt = Path(client.download_artifacts(results[0].run_id, "prompt.txt", str(project))).read_text()
    assert "[OPENAI_KEY]" in prompt_txt and "[EMAIL]" in prompt_txt and "[CREDIT_CARD]" in prompt_txt
    assert "[PASSWORD]" in prompt_txt and "internal [OPENAI_KEY]" in prompt_txt
    import mlflow

    trace = mlflow.search_traces(locations=[first.info.experiment_id], run_id=first.info.run_id, return_type="list")[0]
    assert "[GITHUB_TOKEN]" in json.dumps(trace.data.spans[0].outputs)
    assert mlflow.genai.load_prompt("prompts:/seeded/1").template.startswith("Check: openai_key={{ openai_key }}")

    out = capfd.readouterr()
    logs = "\n".join(f"{r.name}: {r.getMessage()}" for r in caplog.records)
    hits = scan(home, extra={"stdout": out.out, "stderr": out.err, "logs": logs})
    assert hits == [], f"secrets found: {hits}"


def test_api_key_typed_into_the_notebook_is_refused(shell, fake, capsys):
    for cell in [f"%%llm --api-key {API_KEY}\nhi", f"%llm config api_key={API_KEY}",
                 f"%llm config openai_api_key={API_KEY}", f"%%llm --system {API_KEY}\nhi"]:
        assert not shell.run_cell(cell).success
        err = capsys.readouterr()
        assert API_KEY not in err.out + err.err and "Traceback" not in err.err
    with pytest.raises(llmops_lab.ConfigError, match="never settings"):
        llmops_lab.configure(api_key=API_KEY)
    with pytest.raises(llmops_lab.ConfigError, match="contains a password") as info:
        llmops_lab.configure(tracking_uri="http://alice:hunter2hunter2@mlflow.internal:5000")
    assert "hunter2hunter2" not in str(info.value)
    assert fake.request_count == 0


def test_config_view_never_shows_a_password(tmp_path, monkeypatch, capsys):
    from conftest import make_project
    from llmops_lab.config import load_settings

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://alice:s3cretPassw0rd@mlflow.internal:5000")
    settings = load_settings(make_project(tmp_path))
    assert "s3cretPassw0rd" not in json.dumps(settings.public_view(), default=str)


def test_job_output_notebook_and_report_hold_no_key(secure, project):
    """A promoted notebook run by papermill: its output notebook, report, history and run hold no API key."""
    import nbformat

    from llmops_lab import jobs

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("who = 'ada'", metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("%load_ext llmops_lab"),
                nbformat.v4.new_code_cell("import os\nprint('key set:', bool(os.environ.get('SECURE_API_KEY')))"),
                nbformat.v4.new_code_cell("%%llm secure:m --name job-call --format text\nHello {{ who }}")]
    (project / "notebooks").mkdir()
    nbformat.write(nb, project / "notebooks" / "keyed.ipynb")
    (project / "llmops.toml").write_text(f'[endpoints.secure]\nbase_url = "{secure.base_url}"\n'
                                         'api_key_env = "SECURE_API_KEY"\n')
    jobs.promote("notebooks/keyed.ipynb", "keyed")
    ex = jobs.run_job("keyed")
    assert ex.status == "completed", ex.error
    text = Path(ex.output_path).read_text()
    assert "key set: True" in text and "echo: Hello ada" in text
    assert tracking.flush(30) == 0
    assert scan(project) == []
