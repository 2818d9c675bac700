"""The public API as a user reads it: names that resolve, dir(), the same keywords across run/batch/compare, and
user errors from the Python API shown as one line in a notebook (a bug keeps its traceback)."""
import inspect
import re

import pandas as pd
import pytest

import llmops_lab
from llmops_lab.exceptions import ConfigError

SHARED = ("model", "name", "system", "max_cost", "force", "logprobs", "top_logprobs", "schema")
ROWS = ("scorers", "concurrency", "cache", "refresh", "variables", "judge_model", "progress", "trace_sample",
        "dataset_name")


def test_every_public_name_resolves_and_dir_lists_them():
    for name in llmops_lab.__all__:
        assert getattr(llmops_lab, name) is not None, name
    listed = dir(llmops_lab)
    assert set(llmops_lab.__all__) <= set(listed) and "__version__" in listed
    assert {"compare", "redact", "stats", "errors"} <= set(listed)  # lazy ones too
    assert llmops_lab.errors.ConfigError is ConfigError
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        llmops_lab.nope  # noqa: B018


def test_import_stays_light():
    import subprocess
    import sys

    code = "import sys, llmops_lab; print(sorted(m for m in ('scipy', 'pandas', 'mlflow', 'openai') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_run_batch_compare_share_keyword_names():
    from llmops_lab.evaluation.compare import compare

    params = {f: set(inspect.signature(f).parameters) for f in (llmops_lab.run, llmops_lab.batch, compare)}
    for keywords in params.values():
        assert set(SHARED) <= keywords
    assert set(ROWS) <= params[llmops_lab.batch] and set(ROWS) <= params[compare]


@pytest.mark.parametrize("call, message", [
    (lambda: llmops_lab.run("hi", scorers=["exact:a"]), "run() makes one call, with no rows: scorers= is a batch option"),
    (lambda: llmops_lab.run("hi", concurrency=4), "concurrency= is a batch option"),
    (lambda: llmops_lab.run("hi", models=["fake:a"]), "models= is a compare option"),
    (lambda: llmops_lab.batch("{{ a }}", [{"a": 1}], models=["fake:a"]), "batch() runs one prompt with one model"),
    (lambda: llmops_lab.batch("{{ a }}", [{"a": 1}], params={"temperature": [0, 1]}), "params= is compare's"),
    (lambda: llmops_lab.compare(["{{ a }}"], ["fake:a"], model="fake:b", data=[{"a": 1}]), "not both"),
    (lambda: llmops_lab.compare(["{{ a }}"], data=[{"a": 1}], temprature=0), "did you mean 'temperature'"),
])
def test_a_keyword_of_another_function_is_one_clear_line(project, call, message):
    with pytest.raises(ConfigError) as err:
        call()
    assert message in str(err.value) and "\n" not in str(err.value)


def test_compare_passes_the_shared_keywords_to_each_batch(monkeypatch, project):
    from llmops_lab.evaluation import batch as batch_mod

    seen = []

    def fake_batch(template, data, **kwargs):
        seen.append(kwargs)
        frame = pd.DataFrame({"a": [1], "output": ["x"], "error": [None]})
        frame.attrs["llmops"] = {"summary": {"scores": {}}}
        return frame

    monkeypatch.setattr(batch_mod, "batch", fake_batch)
    llmops_lab.configure(tracking=False)
    llmops_lab.compare(["{{ a }}", "again {{ a }}"], model="fake:m", data=[{"a": 1}], system="Be brief.",
                       max_cost=0.5, force=True, refresh=True, judge_model="fake:j", variables={"b": 2},
                       dataset_name="rows", progress=False, temperature=0)
    assert len(seen) == 2
    for kwargs in seen:
        assert kwargs["model"] == "fake:m" and kwargs["system"] == "Be brief." and kwargs["max_cost"] == 0.5
        assert kwargs["force"] and kwargs["refresh"] and kwargs["judge_model"] == "fake:j"
        assert kwargs["variables"] == {"b": 2} and kwargs["dataset_name"] == "rows" and kwargs["temperature"] == 0


def _shown(shell, capsys, code):
    result = shell.run_cell(code)
    captured = capsys.readouterr()
    return result, re.sub(r"\x1b\[[0-9;]*m", "", captured.out + captured.err)  # no terminal colours


@pytest.mark.parametrize("code, first", [
    ("import llmops_lab\nllmops_lab.run('hi', temprature=0)", "ConfigError: unknown parameter 'temprature'"),
    ("import llmops_lab\nllmops_lab.batch('{{ a }}', 42)", "ConfigError: cannot use a int as data"),
    ("import llmops_lab\nllmops_lab.compare(['{{ a }}'], data=[{'a': 1}], scorers=['exact:a'], temprature=1)",
     "ConfigError: unknown parameter 'temprature'"),
    ("import llmops_lab\nllmops_lab.run('hi {{ x }}', {})", "TemplateError:"),
])
def test_python_api_user_error_in_a_notebook_is_one_line(shell, capsys, code, first):
    result, text = _shown(shell, capsys, code)
    assert not result.success and isinstance(result.error_in_exec, llmops_lab.LlmopsError)
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(first), text
    assert "Traceback" not in text


def test_a_bug_keeps_its_traceback(shell, capsys, monkeypatch):
    from llmops_lab.core import call

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug inside llmops_lab")

    monkeypatch.setattr(call, "prepare", broken)
    result, text = _shown(shell, capsys, "import llmops_lab\nllmops_lab.run('hi')")
    assert isinstance(result.error_in_exec, ZeroDivisionError)
    assert "Traceback" in text and "in run" in text and len(text.splitlines()) > 3, text


def test_compare_magic_takes_the_shared_budget_and_system_options():
    from llmops_lab.magics.parsing import compare_parser

    args = compare_parser().parse_args(["p@1", "p@2", "--dataset", "df", "--system", "Be brief.", "--max-cost", "$0.5",
                                        "--force"])
    assert (args.system, args.max_cost, args.force) == ("Be brief.", 0.5, True)
