"""A corpus of bad inputs across the magics, the Python API and the CLI. Each one gives a clear, specific,
one-line error, no traceback, sends nothing to the model, and leaves stored data unchanged (a byte digest
of the project's files — spool, cache, MLflow store, artifacts, job definitions — before and after).

(REST is not covered: the server extension does not exist yet.)
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import llmops_lab
from conftest import REPO, active_project, make_project
from fake_openai import FakeOpenAI

BIN = Path(sys.executable).parent / "llmops-lab"
KEY = "sk-proj-Zq8Xw2Lv9Tn4Rb6Mc1Hd3Kf7"
SKIP_SUFFIXES = ("-shm", ".lock", "-journal")


def snapshot(root: Path) -> dict[str, str]:
    """sha256 of every stored file under the project (sqlite's transient -shm/-journal files and locks aside)."""
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.name.endswith(SKIP_SUFFIXES) and "__pycache__" not in path.parts:
            out[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="module")
def corpus_project(tmp_path_factory):
    """One seeded project for the module: a logged run, a cached batch, a job, and the bad input files."""
    import llmops_lab.tracking as tracking
    from IPython.core.interactiveshell import InteractiveShell

    root = make_project(tmp_path_factory.mktemp("badinputs"), {
        "notebooks/success.ipynb": REPO / "tests" / "notebooks" / "success.ipynb",
        "notebooks/corrupted.ipynb": '{"cells": [ {"cell_type": "code", "sou',
        "bin.csv": b"a,b\n\xff\xfe\x00\x01,\x89PNG\r\n",
        "broken.jsonl": '{"a": 1}\n{"a": \n',
        "ok.csv": "a\n1\n"}, store=True)
    with pytest.MonkeyPatch.context() as mp, active_project(root, mp, unset=("LLMOPS_HOME", "OPENAI_API_KEY")), \
            FakeOpenAI() as server:
        llmops_lab.get_settings().endpoints["fake"] = {"base_url": server.base_url}
        llmops_lab.configure(model="fake:m", max_retries=0)
        shell = InteractiveShell.instance()
        shell.run_line_magic("load_ext", "llmops_lab")
        assert llmops_lab.run("seed {{ x }}", {"x": 1}, name="seed").run_id
        llmops_lab.batch("row {{ a }}", pd.DataFrame({"a": [1, 2]}), name="seed-batch", progress=False)
        from llmops_lab import jobs

        jobs.promote("notebooks/success.ipynb", "seedjob", "0 2 * * *")
        assert tracking.flush(60) == 0
        shell.user_ns.update({
            "df": pd.DataFrame({"a": [1, 2]}), "empty": pd.DataFrame(), "num": 42,
            "dup": pd.DataFrame([[1, 2]], columns=["a", "a"]), "big": "a" * 1_000_001,
            "raw": b"\x89PNG\r\n\x1a\n", "bad": b"caf\xe9".decode("utf-8", "surrogateescape")})
        yield root, server, shell


@pytest.fixture
def clean(corpus_project, capsys):
    root, server, shell = corpus_project
    server.reset()
    capsys.readouterr()
    before = snapshot(root)
    yield root, server, shell
    llmops_lab.tracking.flush(10)
    assert server.request_count == 0, "a bad input reached the model"
    assert snapshot(root) == before, "a bad input changed stored data"


MAGICS = [
    # options
    ("%%llm --temprature 0\nhi", "unknown option --temprature"),
    (f"%%llm --api-key {KEY}\nhi", "looks like a secret"),
    ("%%llm --api-key abc\nhi", "unknown option --api-key"),
    ("%%llm --temperature hot\nhi", "temperature='hot' is not a valid float"),
    ("%%llm --temperature 9\nhi", "out of range"),
    ("%%llm --max-tokens 1.5\nhi", "max_tokens='1.5' is not a valid int"),
    ("%%llm --top-p 0\nhi", "top_p=0.0 is out of range"),
    ("%%llm --max-cost abc\nhi", "'abc' is not an amount of USD"),
    ("%%llm --format pdf\nhi", "--format 'pdf' is not one of"),
    ("%%llm --out 1bad\nhi", "--out '1bad' is not a Python variable name"),
    ("%%llm --name ../../etc/passwd\nhi", "prompt name '../../etc/passwd' is invalid"),
    ('%%llm --name "unclosed\nhi', "cannot parse options"),
    ("%%llm gpt-4o\nhi", "not provider:model"),
    ("%%llm nope:model\nhi", "unknown provider 'nope'"),
    ("%%llm openai:gpt-4o-mini\nhi", "OPENAI_API_KEY is not set"),
    (f"%%llm --system {KEY}\nhi", "looks like a secret"),
    ("%%llm --scorer exact:a\nhi", "go with --dataset"),
    # templates
    ("%%llm\n   ", "the prompt is empty"),
    ("%%llm\nHello {{ missing_var }}", "template variable missing_var not defined"),
    ("%%llm\n{{ x ", "template syntax error"),
    ("%%llm\n{{ ''.__class__.__mro__[1].__subclasses__() }}", "refused by the sandbox"),
    ("%%llm\n{{ lipsum.__globals__['os'].popen('id').read() }}", "refused by the sandbox"),
    ("%%llm\n{{ cycler.__init__.__globals__.os }}", "refused by the sandbox"),
    ("%%llm\n{{ self._TemplateReference__context }}", "refused by the sandbox"),
    ("%%llm\n{% include '/etc/passwd' %}", "no loader for this environment"),
    ("%%llm\n{% for i in range(10**9) %}x{% endfor %}", "Range too big"),
    ("%%llm\n{{ big }}", "over max_prompt_chars=1,000,000"),
    ("%%llm\n{{ raw }}", "template variable raw is binary data"),
    ("%%llm\n{{ bad }}", "is not valid text (undecodable byte"),
    # datasets
    ("%%llm --dataset df\n{{ text }}", "the template needs column 'text'"),
    ("%%llm --dataset empty\n{{ a }}", "the DataFrame has no rows"),
    ("%%llm --dataset num\n{{ a }}", "cannot use a int as data"),
    ("%%llm --dataset dup\n{{ a }}", "duplicate column names (a)"),
    ("%%llm --dataset nowhere.csv\n{{ a }}", "data file not found"),
    ("%%llm --dataset bin.csv\n{{ a }}", "is not valid UTF-8"),
    ("%%llm --dataset broken.jsonl\n{{ a }}", "line 2 is not valid JSON"),
    ("%%llm --dataset notes.txt\n{{ a }}", "unknown file type '.txt'"),
    ("%%llm --dataset dff\n{{ a }}", "no variable 'dff' in the notebook and no file of that name (did you mean df?)"),
    ("%%llm --dataset df --scorer nope:x\n{{ a }}", "unknown scorer 'nope'"),
    ("%%llm --dataset df --scorer exact:label\n{{ a }}", "needs column label"),
    ("%%llm --dataset df --concurrency many\n{{ a }}", "'many' is not a whole number"),
    ("%%llm --dataset df --concurrency 0\n{{ a }}", "concurrency=0: use a whole number from 1 to 256"),
    ("%%llm --dataset df --trace-sample -1\n{{ a }}", "trace_sample=-1"),
    # line commands
    ("%llm config temperature=abc", "temperature='abc' is not a valid float"),
    ("%llm config api_key=abc", "never settings"),
    (f"%llm config model={KEY}", "looks like a secret"),
    ("%llm config tracking_uri=http://alice:pw12345678@mlflow.internal", "looks like a secret"),
    ("%llm config max_retries=100", "max_retries=100 is out of range"),
    ("%llm config temperature", "is not key=value"),
    ("%llm config colour=red", "unknown setting 'colour'"),
    ("%llm runs abc", "'abc' is not a number of runs"),
    ("%llm frobnicate", "unknown command 'frobnicate'"),
    ("%llm trace", "needs a run id"),
    ("%llm trace 0123456789abcdef", "no run '0123456789abcdef'"),
    ("%llm redact-preview", "needs a text or a variable name"),
    ("%%llm redact-preview --x\nhi", "takes no options"),
]


@pytest.mark.parametrize("cell,message", MAGICS, ids=[c.split("\n")[0][:60] for c, _ in MAGICS])
def test_magic_bad_input(clean, capsys, cell, message):
    _root, _server, shell = clean
    result = shell.run_cell(cell)
    assert not result.success
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert "UsageError" in text and message in text, text
    assert "Traceback" not in text and KEY not in text
    error_lines = [line for line in text.splitlines() if line.startswith("UsageError")]
    assert len(error_lines) == 1


def _api_cases():
    df = pd.DataFrame({"a": [1]})
    return [
        (lambda: llmops_lab.run(123), "the template must be text (str), not int"),
        (lambda: llmops_lab.run(None), "the template must be text (str), not None"),
        (lambda: llmops_lab.run("hi {{ x }}", "x=1"), "variables must be a dict"),
        (lambda: llmops_lab.run("hi", model=5), "model must be text (str), not int"),
        (lambda: llmops_lab.run("hi", system=["a"]), "system must be text (str), not list"),
        (lambda: llmops_lab.run("hi", temprature=0), "did you mean 'temperature'"),
        (lambda: llmops_lab.run("hi", max_tokens=True), "max_tokens=True is not a valid int"),
        (lambda: llmops_lab.run("{{ x.__class__ }}", {"x": 1}), "refused by the sandbox"),
        (lambda: llmops_lab.run("{{ '{0.__class__}'.format(x) }}", {"x": 1}), "refused by the sandbox"),
        (lambda: llmops_lab.run("{{ x }}", {"x": b"\x00\xff"}), "binary data"),
        (lambda: llmops_lab.run("{{ x }}", {"x": "\udcff"}), "is not valid text"),
        (lambda: llmops_lab.run("{{ x }}", {"x": "y" * 1_000_001}), "over max_prompt_chars"),
        (lambda: llmops_lab.batch("{{ a }}", 42), "cannot use a int as data"),
        (lambda: llmops_lab.batch("{{ a }}", ["x"]), "row 0 of the list is a str, not a dict"),
        (lambda: llmops_lab.batch("{{ a }}", pd.DataFrame({("a", "x"): [1]})), "needs column 'a'"),
        (lambda: llmops_lab.batch("{{ a }}", df, concurrency=1.5), "concurrency=1.5"),
        (lambda: llmops_lab.batch("{{ a }}", df, scorers=[5]), "neither a spec string nor a function"),
        (lambda: llmops_lab.configure(model="gpt4"), "model 'gpt4' is not provider:model"),
        (lambda: llmops_lab.configure(timeout=-1), "timeout=-1.0 must be positive"),
        (lambda: llmops_lab.configure(api_key=KEY), "never settings"),
        (lambda: llmops_lab.configure(tracking_uri="https://bob:pw12345678@mlflow.internal"), "contains a password"),
        (lambda: llmops_lab.configure(max_prompt_chars=0), "max_prompt_chars=0 must be at least 1"),
        (lambda: llmops_lab.redact.preview(b"bytes"), "redact preview takes text, not bytes"),
        (lambda: llmops_lab.audit.audit_log(since="yesterday"), "--since 'yesterday' is not a time"),
        (lambda: llmops_lab.data.load_rows("notebooks/corrupted.ipynb"), "unknown file type '.ipynb'"),
    ]


API_IDS = ["run-int", "run-none", "vars-str", "model-int", "system-list", "param-typo", "param-bool", "jinja-class",
           "jinja-format", "bytes", "surrogate", "huge", "batch-int", "batch-list-str", "batch-multiindex",
           "batch-conc-float", "scorer-int", "cfg-model", "cfg-timeout", "cfg-api-key", "cfg-uri-password",
           "cfg-max-chars", "preview-bytes", "audit-since", "load-ipynb"]


@pytest.mark.parametrize("index", range(len(API_IDS)), ids=API_IDS)
def test_python_api_bad_input(clean, index):
    call, message = _api_cases()[index]
    settings_before = llmops_lab.get_settings().public_view()
    with pytest.raises(llmops_lab.LlmopsError) as info:
        call()
    text = str(info.value)
    assert message in text and "\n" not in text and KEY not in text and "hunter" not in text
    assert llmops_lab.get_settings().public_view() == settings_before  # a refused configure() changes nothing


CLI = [
    (["promote", "notebooks/success.ipynb", "--name", "x", "--schedule", "61 * * * *"], "not a valid cron expression"),
    (["promote", "notebooks/corrupted.ipynb", "--name", "y"], "corrupted.ipynb is not a valid notebook"),
    (["promote", "../../etc/passwd", "--name", "z"], "is outside the project"),
    (["promote", "notebooks/success.ipynb", "--name", "../evil"], "job name '../evil' is not valid"),
    (["jobs", "run", "nope"], "no job named 'nope'"),
    (["jobs", "history", "nope"], "no job named 'nope'"),
    (["demo", "--notebook", "notebooks/corrupted.ipynb"], "is not a readable notebook"),
    (["flush", "--timeout", "abc"], "invalid float value: 'abc'"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    (["audit", "--since", "yesterday"], "is not a time"),
    (["audit", "--since", "2025-01-02", "--until", "2025-01-01"], "must be before --until"),
    (["server", "start", "--port", "70000", "--dry-run"], "--port 70000 is not a TCP port"),
    (["server", "start", "--default-permission", "ALL", "--no-auth", "--dry-run"], "--default-permission 'ALL'"),
]


@pytest.mark.parametrize("args,message", CLI, ids=[" ".join(a)[:50] for a, _ in CLI])
def test_cli_bad_input(clean, args, message):
    root, _server, _shell = clean
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI",)}
    out = subprocess.run([str(BIN), *args], capture_output=True, text=True, cwd=root, timeout=120, env=env)
    assert out.returncode == 2, out
    assert "Traceback" not in out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert message in last and "error:" in last, out.stderr


def test_cli_corrupted_settings_and_job_files(tmp_path):
    """Damaged project files: a one-line error naming the file, and the file is left as it was."""
    (tmp_path / "llmops.toml").write_text("[[bad")
    out = subprocess.run([str(BIN), "audit"], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"llmops-lab: error: cannot read llmops-lab settings under {tmp_path}: "
                                                   "Expected ']]' at the end of an array declaration")
    (tmp_path / "llmops.toml").write_text("")
    (tmp_path / "llmops_jobs.toml").write_text("garbage [[[")
    out = subprocess.run([str(BIN), "jobs", "list"], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert out.returncode == 2 and "Traceback" not in out.stderr and "llmops_jobs.toml is not valid TOML" in out.stderr
    assert (tmp_path / "llmops_jobs.toml").read_text() == "garbage [[["
    (tmp_path / "llmops.toml").write_text('[redaction]\nstyle = "rot13"\n')
    out = subprocess.run([str(BIN), "audit"], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert out.returncode == 2 and "redaction style 'rot13' is not one of label, hash" in out.stderr


def test_corpus_size():
    assert len(MAGICS) + len(API_IDS) + len(CLI) + 3 >= 40
