"""Budgets refuse before any request; %llm last / %llm trace show a call in full."""
import pandas as pd
import pytest

import llmops_lab
from conftest import make_project
from llmops_lab.config import load_settings
from llmops_lab.evaluation.batch import batch
from llmops_lab.core.budget import estimate
from llmops_lab.exceptions import BudgetError
from llmops_lab.providers.base import ModelId

PRICE = {"input": 1000.0, "output": 2000.0}  # $ per 1M tokens: big enough to hit small budgets


def test_estimate_is_an_upper_bound_labelled_approximate(tmp_path):
    est = estimate(ModelId("fake", "m"), [[{"role": "user", "content": "x" * 400}]] * 3, {"max_tokens": 10},
                   load_settings(make_project(tmp_path)))
    assert (est.calls, est.input_tokens, est.output_tokens, est.exact_tokens) == (3, 3 * 104, 30, False)
    assert est.cost_usd is None and "≈" in est.describe()


@pytest.mark.slow
def test_local_model_tokens_are_counted_exactly(tmp_path):
    est = estimate(ModelId("local", "smollm2-135m"), [[{"role": "user", "content": "Hello world"}]], {},
                   load_settings(make_project(tmp_path)))
    assert est.exact_tokens and 2 <= est.input_tokens - 4 <= 4 and est.cost_usd == 0


def test_batch_over_budget_is_refused_before_any_request(fake, capsys):
    llmops_lab.get_settings().prices["fake:test-model"] = PRICE
    df = pd.DataFrame({"text": ["a long review " * 20] * 50})
    with pytest.raises(BudgetError, match=r"may cost up to \$8\.8000 .*over max_cost \$0\.0100") as err:
        batch("Classify: {{ text }}", df, max_cost=0.01, max_tokens=50, progress=False)
    assert "\n" not in str(err.value) and fake.request_count == 0
    res = batch("Classify: {{ text }}", df, max_cost=0.01, max_tokens=50, progress=False, force=True,
                trace_sample=0)
    assert len(res) == 50 and fake.request_count == 1  # identical rows share one request


def test_budget_from_settings_and_magic(shell, fake, capsys):
    llmops_lab.get_settings().prices["fake:test-model"] = PRICE
    llmops_lab.configure(max_cost=0.000001)
    res = shell.run_cell("%%llm --max-tokens 100\nhello")
    assert not res.success and "over max_cost" in capsys.readouterr().err and fake.request_count == 0
    assert shell.run_cell("%%llm --max-tokens 100 --force\nhello").success
    assert shell.run_cell("%%llm --max-tokens 100 --max-cost 1\nhello").success
    assert fake.request_count == 2


def test_unknown_price_with_a_budget_is_refused(fake):
    with pytest.raises(BudgetError, match="no price for fake:test-model"):
        llmops_lab.run("hi", max_cost=1.0)
    assert fake.request_count == 0


def test_day_budget_counts_logged_runs(fake):
    llmops_lab.get_settings().prices["fake:test-model"] = PRICE
    first = llmops_lab.run("hello there", max_tokens=5)
    assert first.run_id and first.cost_usd > 0
    llmops_lab.configure(max_cost_day=first.cost_usd * 1.5)
    from llmops_lab.core import budget

    budget._day.update(at=0.0, day="")  # forget the cache: read today's spend from MLflow
    with pytest.raises(BudgetError, match="today's spend"):
        llmops_lab.run("hello there", max_tokens=5)
    assert fake.request_count == 1


def test_last_shows_the_call_in_full(shell, fake, capsys):
    from llmops_lab.core.debug import last

    fake.fail_next("429", count=1, retry_after=0)
    assert shell.run_cell("%%llm --name dbg --no-stream --temperature 0 --system 'Be brief.' --out r\nhello {{ 1 + 1 }}").success
    report = last()
    text = str(report)
    assert "message [system]\nBe brief." in text and "hello 2" in text
    assert '"temperature": 0.0' in text and "retries: 1" in text
    assert "stages_ms: render" in text and "provider" in text and "spool" in text
    assert '"object": "chat.completion"' in text  # the raw response
    res = shell.run_cell("%llm last")
    assert res.success and res.result.title == "last call"


def test_trace_reads_a_run_back(shell, fake, capsys):
    assert shell.run_cell("%%llm --name traced --out r\nhello traced").success
    run_id = shell.user_ns["r"].run_id
    res = shell.run_cell(f"%llm trace {run_id}")
    assert res.success
    text = str(res.result)
    assert f"run_id: {run_id}" in text and "prompt: traced@1" in text and "echo: hello traced" in text
    assert "span traced" in text and "trace_id: tr-" in text
    bad = shell.run_cell("%llm trace nope")
    assert not bad.success and "no run 'nope'" in capsys.readouterr().err
