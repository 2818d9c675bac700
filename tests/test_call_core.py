"""One call core: batch rows and judge calls go through the same steps (render once, budget, cache off the
event loop, counted, typed records). Against the fake server, into a real MLflow store."""
import threading

import pandas as pd
import pytest

import llmops_lab
from conftest import mlflow_client
from llmops_lab.evaluation.batch import batch, batch_run_id

PRICE = {"input": 1000.0, "output": 2000.0}  # $ per 1M tokens


def grade(req):
    """The fake's answer: PASS for a judge prompt, an echo for a row."""
    if req["model"] == "judge":
        return "PASS\nIt is fine."
    user = [m for m in req["messages"] if m["role"] == "user"][-1]["content"]
    return f"echo: {user}"


def served_tokens(requests, model):
    """What the fake server served to ``model``: its usage is words in + words out (see fake_openai)."""
    return [r for r in requests if r["model"] == model]


def test_judge_calls_are_counted_cached_and_logged(fake, capsys):
    fake.responder = grade
    llmops_lab.get_settings().prices["fake:judge"] = PRICE
    df = pd.DataFrame({"text": [f"review {i}" for i in range(6)]})
    res = batch("Classify: {{ text }}", df, scorers=['judge:"Is it an echo?"'], judge_model="fake:judge",
                concurrency=4, progress=False, trace_sample=0)
    assert len(served_tokens(fake.requests, "judge")) == 6 and len(served_tokens(fake.requests, "test-model")) == 6
    assert res["judge"].tolist() == [1.0] * 6 and res["judge_rationale"].tolist() == ["It is fine."] * 6
    assert (res["judge_prompt_tokens"] > 0).all() and (res["judge_completion_tokens"] > 0).all()
    assert (res["judge_cost_usd"] > 0).all()
    # the row's own columns stay the row's own call
    assert (res["total_tokens"] == res["prompt_tokens"] + res["completion_tokens"]).all()
    summary = res.attrs["llmops"]["summary"]
    judge_tokens = int(res["judge_prompt_tokens"].sum() + res["judge_completion_tokens"].sum())
    assert summary["judge_total_tokens"] == judge_tokens and summary["judge_requests"] == 6
    assert summary["judge_cache_hits"] == 0 and summary["requests"] == 6
    assert summary["judge_cost_usd"] == pytest.approx(float(res["judge_cost_usd"].sum()))
    out = capsys.readouterr().out
    assert f"judge {judge_tokens:,} tokens ${summary['judge_cost_usd']:.4f}" in out

    run = mlflow_client().get_run(batch_run_id(res))
    metrics = run.data.metrics
    assert metrics["judge_total_tokens"] == judge_tokens and metrics["judge_requests"] == 6
    assert metrics["judge_prompt_tokens"] + metrics["judge_completion_tokens"] == judge_tokens
    assert metrics["judge_cost_usd"] == pytest.approx(summary["judge_cost_usd"])
    assert metrics["judge_cache_hits"] == 0
    assert metrics["total_tokens"] == summary["prompt_tokens"] + summary["completion_tokens"]  # rows only
    assert run.data.params["judge_model"] == "fake:judge"

    sent = fake.request_count
    again = batch("Classify: {{ text }}", df, scorers=['judge:"Is it an echo?"'], judge_model="fake:judge",
                  concurrency=4, progress=False, trace_sample=0)
    assert fake.request_count == sent  # rows and judge calls all from the cache
    summary = again.attrs["llmops"]["summary"]
    assert summary["judge_requests"] == 0 and summary["judge_cache_hits"] == 6 and summary["judge_cost_usd"] == 0
    assert again["judge"].tolist() == [1.0] * 6

    batch("Classify: {{ text }}", df, scorers=['judge:"Another rubric"'], judge_model="fake:judge",
          concurrency=4, progress=False, trace_sample=0)
    assert fake.request_count == sent + 6  # the judge's messages are in its key: a new rubric asks again


def test_a_failing_judge_call_marks_that_score_and_the_batch_goes_on(fake):
    fake.responder = grade
    llmops_lab.configure(max_retries=0)
    df = pd.DataFrame({"text": [f"row {i}" for i in range(5)]})
    batch("Say {{ text }}", df, concurrency=1, progress=False, trace_sample=0)  # rows cached: only judges are sent
    fake.fail_next("500", count=1)
    res = batch("Say {{ text }}", df, scorers=["judge:ok?"], judge_model="fake:judge", concurrency=1,
                progress=False, trace_sample=0)
    assert res["error"].isna().all()
    failed = res["judge_rationale"].str.startswith("error: ")
    assert failed.sum() == 1 and "500" in res.loc[failed, "judge_rationale"].iloc[0]
    assert res.loc[failed, "judge"].isna().all() and res.loc[~failed, "judge"].tolist() == [1.0] * 4
    assert res.attrs["llmops"]["summary"]["scores"]["judge"] == 1.0


def test_failed_rows_are_not_judged(fake):
    fake.responder = grade
    llmops_lab.configure(max_retries=0)
    fake.fail_next("500", count=1)
    res = batch("Say {{ text }}", pd.DataFrame({"text": ["a", "b", "c"]}), scorers=["judge:ok?"],
                judge_model="fake:judge", concurrency=1, progress=False, trace_sample=0)
    assert res["error"].notna().sum() == 1
    assert len(served_tokens(fake.requests, "judge")) == 2
    assert res.loc[res["error"].notna(), "judge_prompt_tokens"].tolist() == [0]


def test_budget_estimate_includes_the_judge_calls(fake, capsys):
    settings = llmops_lab.get_settings()
    settings.prices["fake:test-model"] = PRICE
    settings.prices["fake:judge"] = PRICE
    df = pd.DataFrame({"text": [f"review {i}" for i in range(4)]})
    fake.responder = grade
    batch("Classify: {{ text }}", df, max_cost=10.0, max_tokens=20, progress=False, trace_sample=0)
    alone = capsys.readouterr().out
    batch("Classify: {{ text }}", df, max_cost=10.0, max_tokens=20, progress=False, trace_sample=0,
          scorers=["judge:ok?"], judge_model="fake:judge")
    judged = capsys.readouterr().out
    assert "budget check: 4 call(s)" in alone and "budget check: 8 call(s)" in judged

    del settings.prices["fake:judge"]  # a judge without a price: the budget cannot be checked
    with pytest.raises(llmops_lab.BudgetError, match="no price for fake:judge"):
        batch("Classify: {{ text }}", df, max_cost=10.0, progress=False, scorers=["judge:ok?"],
              judge_model="fake:judge")


def test_a_scorer_needs_a_model_by_its_judge_attribute_not_its_name(fake):
    from llmops_lab.evaluation.scoring import Judge, Scorer

    fake.responder = grade
    called = []
    named = Scorer("judge_like", lambda out, row, meta: called.append(out) or True)  # a plain scorer
    graded = Scorer("graded", lambda out, row, meta: 1 / 0, judge=Judge("Is it fine?", "fake:judge"))
    res = batch("Say {{ text }}", pd.DataFrame({"text": ["a", "b"]}), scorers=[named, graded], progress=False,
                trace_sample=0)
    assert len(called) == 2 and res["judge_like"].tolist() == [1.0, 1.0]
    assert res["graded"].tolist() == [1.0, 1.0]  # through the runner, not fn
    assert len(served_tokens(fake.requests, "judge")) == 2


def test_traced_rows_keep_the_notebook_variables(fake):
    import mlflow

    res = batch("{{ greeting }}, {{ text }}", pd.DataFrame({"text": ["one", "two", "three"]}),
                variables={"greeting": "Bonjour", "unused": "x"}, progress=False, trace_sample=2)
    run = mlflow_client().get_run(batch_run_id(res))
    traces = mlflow.search_traces(locations=[run.info.experiment_id], run_id=run.info.run_id, return_type="list")
    assert len(traces) == 2
    for trace in traces:
        inputs = trace.data.spans[0].inputs
        assert inputs["messages"] is not None and inputs["messages"][-1]["content"].startswith("Bonjour, ")
        assert inputs["variables"]["greeting"] == "Bonjour" and "unused" not in inputs["variables"]


def test_each_row_is_rendered_once(fake, monkeypatch):
    from llmops_lab.core.call import CallPlan  # (re-exported from core.plan)

    rendered = []
    real = CallPlan.messages

    def counting(self, variables):
        rendered.append(dict(variables))
        return real(self, variables)

    monkeypatch.setattr(CallPlan, "messages", counting)
    batch("Say {{ text }}", pd.DataFrame({"text": [f"r{i}" for i in range(7)]}), progress=False, trace_sample=3)
    assert len(rendered) == 7  # the fail-early render of row 0 is reused; traces reuse the renders


def test_no_cache_call_runs_in_the_event_loop(fake, monkeypatch):
    from llmops_lab.core.cache import ResponseCache

    threads = []
    for name in ("get", "get_many", "put", "put_many"):
        real = getattr(ResponseCache, name)

        def spy(self, *args, _real=real, _name=name):
            threads.append((_name, threading.current_thread().name))
            return _real(self, *args)

        monkeypatch.setattr(ResponseCache, name, spy)
    df = pd.DataFrame({"text": [f"r{i}" for i in range(30)] + ["r0"] * 5})
    fake.latency_ms = 5
    first = batch("Say {{ text }}", df, concurrency=4, progress=False, trace_sample=0)
    assert fake.request_count == 30 and first["output"].iloc[-1] == "echo: Say r0"  # duplicates asked once
    again = batch("Say {{ text }}", df, concurrency=4, progress=False, trace_sample=0)
    assert fake.request_count == 30 and again["cached"].all()  # duplicates in one lookup batch: all hits
    assert threads and not [t for t in threads if t[1] == "llmops-batch"], threads
    used = {name for name, _ in threads}
    assert {"get_many", "put_many"} <= used and "put" not in used
    assert len([n for n, _ in threads if n == "get_many"]) == 2  # one batched lookup per 256 rows per run


def test_single_record_keeps_the_format_the_sink_reads(fake):
    from llmops_lab.core import debug

    llmops_lab.run("Hi {{ who }}", {"who": "there"}, name="hello")
    record = debug._last["record"]
    assert {"id", "v", "kind", "experiment", "notebook", "cell_id", "user", "project_root", "prompt", "model",
            "provider", "model_name", "endpoint_host", "params", "messages", "variables", "start_ns", "end_ns",
            "output", "finish_reason", "usage", "latency_ms", "cost_usd", "retries", "error"} <= set(record)
    assert record["v"] == 1 and record["kind"] == "single" and record["variables"] == {"who": "there"}
    assert record["prompt"]["name"] == "hello" and record["output"] == "echo: Hi there"


def test_day_spend_read_back_from_mlflow_includes_the_judge_calls(fake):
    from llmops_lab.core import budget

    fake.responder = grade
    settings = llmops_lab.get_settings()
    settings.prices["fake:test-model"] = PRICE
    settings.prices["fake:judge"] = PRICE
    res = batch("Classify: {{ text }}", pd.DataFrame({"text": ["a", "b", "c"]}), scorers=["judge:ok?"],
                judge_model="fake:judge", progress=False, trace_sample=0)
    assert batch_run_id(res)
    summary = res.attrs["llmops"]["summary"]
    assert summary["judge_cost_usd"] > 0
    budget._day["at"] = 0.0  # read from MLflow now
    assert budget.spent_today(settings) == pytest.approx(summary["cost_usd"] + summary["judge_cost_usd"])
