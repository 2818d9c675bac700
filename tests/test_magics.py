"""%%llm and %llm through a real IPython InteractiveShell."""
import pytest

from conftest import mlflow_client


def run_cell(shell, code):
    result = shell.run_cell(code)
    return result


def test_cell_renders_notebook_variables_and_stores_result(shell, fake, capsys):
    shell.user_ns["article"] = "the {cat} sat $HOME"
    res = run_cell(shell, "%%llm --name summarize --temperature 0 --max-tokens 64 --out summary --format text\n"
                          "Summarize in one sentence: {{ article }}")
    assert res.success, res.error_in_exec
    summary = shell.user_ns["summary"]
    assert shell.user_ns["_"] is summary
    assert summary.text == "echo: Summarize in one sentence: the {cat} sat $HOME"  # no IPython expansion
    assert fake.requests[-1]["max_tokens"] == 64 and fake.requests[-1]["temperature"] == 0
    out = capsys.readouterr().out
    assert summary.text in out and "fake:test-model" in out and "tokens" in out
    assert summary.run_id and summary.prompt_uri == "prompts:/summarize/1"
    run = mlflow_client().get_run(summary.run_id)
    assert run.data.tags["llmops.kind"] == "single"


def test_model_as_first_positional_argument(shell, fake):
    res = run_cell(shell, "%%llm fake:other-model --out r\nhi")
    assert res.success
    assert shell.user_ns["r"].model == "fake:other-model" and fake.requests[-1]["model"] == "other-model"


def test_json_format_parses_into_data(shell, fake):
    fake.responder = lambda req: '```json\n{"label": "positive", "score": 0.9}\n```'
    try:
        res = run_cell(shell, "%%llm --format json --out r\nClassify")
    finally:
        fake.responder = None
    assert res.success
    assert shell.user_ns["r"].data == {"label": "positive", "score": 0.9}


def test_code_format_puts_code_in_next_cell(shell, fake, monkeypatch):
    fake.responder = lambda req: "```python\nprint('hi')\n```"
    seen = []
    monkeypatch.setattr(shell, "set_next_input", lambda text, replace=False: seen.append(text))
    try:
        assert run_cell(shell, "%%llm --format code\nWrite code").success
    finally:
        fake.responder = None
    assert seen == ["print('hi')"]


@pytest.mark.parametrize("line,body,message", [
    ("%%llm", "Hello {{ missing_var }}", "missing_var not defined"),
    ("%%llm nope:model", "hi", "unknown provider 'nope'"),
    ("%%llm --temperature hot", "hi", "temperature='hot' is not a valid float"),
    ("%%llm --temperature 9", "hi", "out of range"),
    ("%%llm --max-tokens 0", "hi", "at least 1"),
    ("%%llm --format pdf", "hi", "--format 'pdf'"),
    ("%%llm --api-key sk-SECRET123", "hi", "looks like a secret"),  # a value after --api-key is one
    ("%%llm gpt-4o", "hi", "not provider:model"),
    ("%%llm --out 1bad", "hi", "not a Python variable name"),
    ("%%llm --name 'bad name'", "hi", "prompt name 'bad name' is invalid"),
    ("%%llm openai:gpt-4o-mini", "hi", "OPENAI_API_KEY is not set"),
    ("%%llm", "   ", "the prompt is empty"),
])
def test_user_errors_are_one_line_no_call_no_log(shell, fake, capsys, line, body, message):
    res = run_cell(shell, f"{line}\n{body}")
    assert not res.success
    err = capsys.readouterr()
    text = err.out + err.err
    assert "UsageError" in text and message in text
    assert "Traceback" not in text and "SECRET123" not in text
    assert fake.request_count == 0
    assert not (shell.user_ns.get("_") and getattr(shell.user_ns["_"], "record_id", None))
    spool = fake_spool_files()
    assert spool == []


def fake_spool_files():
    import llmops_lab

    folder = llmops_lab.get_settings().home / "spool"
    return sorted(p.name for p in folder.glob("*.jsonl")) if folder.exists() else []


def test_line_commands(shell, fake, capsys):
    assert run_cell(shell, "%llm help").success
    assert "%%llm [PROVIDER:MODEL]" in capsys.readouterr().out

    assert run_cell(shell, "%llm config temperature=0.2 max_tokens=30").success
    out = capsys.readouterr().out
    assert "temperature = 0.2" in out and "max_tokens = 30" in out
    assert not run_cell(shell, "%llm config temperature").success
    assert "not key=value" in capsys.readouterr().err

    assert run_cell(shell, "%llm experiment my-exp").success
    assert "my-exp" in capsys.readouterr().out

    res = run_cell(shell, "models = %llm models")
    assert res.success
    models = shell.user_ns["models"]
    assert {"local:smollm2-135m", "openai:<model>", "fake:<model>"} <= set(models["model"])

    assert run_cell(shell, "%%llm --name a\nfirst").success
    assert run_cell(shell, "%%llm --name b\nsecond").success
    assert run_cell(shell, "%llm flush").success
    assert "all records written" in capsys.readouterr().out
    assert run_cell(shell, "runs = %llm runs").success
    runs = shell.user_ns["runs"]
    assert list(runs["prompt"]) == ["b@1", "a@1"] and set(runs["model"]) == {"test-model"}

    assert not run_cell(shell, "%llm frobnicate").success
    assert "unknown command 'frobnicate'" in capsys.readouterr().err


def test_footer_updates_with_run_id(shell, fake):
    from IPython.display import DisplayHandle

    updates = []
    original = DisplayHandle.update
    DisplayHandle.update = lambda self, obj, **kw: updates.append(repr(obj))
    try:
        assert run_cell(shell, "%%llm --out r\nhello").success
        run_id = shell.user_ns["r"].run_id
    finally:
        DisplayHandle.update = original
    assert run_id and any(f"run {run_id[:8]}" in u for u in updates)


def test_stats_magic(shell, fake, capsys):
    assert shell.run_cell("%%llm --name s1\nhello").success
    res = shell.run_cell("%llm stats --by prompt")
    assert res.success, res.error_in_exec
    table = res.result.reset_index()
    assert table.set_index("prompt").loc["s1@1", "calls"] == 1
    bad = shell.run_cell("%llm stats --by colour")
    assert not bad.success and "colour" in capsys.readouterr().err


def test_python_api_user_error_is_one_line_in_ipython(shell, fake, capsys):
    res = shell.run_cell('import llmops_lab\nllmops_lab.run("Hello {{ missing_var }}", {})')
    assert not res.success and type(res.error_in_exec).__name__ == "TemplateError"
    err = capsys.readouterr()
    text = err.out + err.err
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines == [f"TemplateError: {res.error_in_exec}"] and "Traceback" not in text
    assert fake.request_count == 0


def test_config_shows_no_machine_paths(shell, fake, capsys, project):
    assert run_cell(shell, "%llm config").success
    out = capsys.readouterr().out
    assert "project_root = <project>" in out and str(project) not in out
    assert "tracking_uri = sqlite:///<project>/.llmops/mlflow.db" in out


def test_last_says_when_the_last_call_was_a_batch(shell, fake, capsys):
    import pandas as pd

    from llmops_lab.core import debug

    shell.user_ns["df"] = pd.DataFrame({"t": ["a", "b"]})
    assert run_cell(shell, "%%llm --name single --out r\nhello").success
    assert run_cell(shell, "%%llm --name rows --dataset df --out res\nsay {{ t }}").success
    report = debug.last()
    assert "was a batch (rows, 2 rows)" in report.note and "hello" in str(report)
    assert "white-space:pre-wrap;word-break:normal" in report._repr_html_()  # wraps at words, not mid-word
    debug._last.clear()
    only = debug.last()
    assert only.title == "last call: a batch" and "single calls" in str(only)


def test_papermill_run_saves_a_final_footer(shell, fake, monkeypatch):
    """Under papermill (LLMOPS_NOTEBOOK set) the footer is displayed once the run is logged: the saved
    notebook never keeps "logging…" (a later display update would not reach the file)."""
    import IPython.display

    from llmops_lab.magics import Footer

    shown = []
    original = IPython.display.display
    monkeypatch.setattr(IPython.display, "display", lambda obj, **kw: shown.append(obj) or original(obj, **kw))
    monkeypatch.setenv("LLMOPS_NOTEBOOK", "/nb/saved.ipynb")
    assert run_cell(shell, "%%llm --name unattended --out r\nhello").success
    footers = [o.text for o in shown if isinstance(o, Footer)]
    assert len(footers) == 1 and f"run {shell.user_ns['r'].run_id[:8]}" in footers[0], footers
