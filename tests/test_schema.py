"""Structured output (issue #18 item 3): ``%%llm --schema``, ``run(schema=)``, ``batch(schema=)``, ``field:`` scorers.

Through a real IPython shell, the fake OpenAI server (which records each request) and a real sqlite store.
"""
import json

import pydantic
import pytest

import llmops_lab
from conftest import mlflow_client


class Person(pydantic.BaseModel):
    name: str
    age: int


PERSON_DICT = {"title": "Person", "type": "object", "required": ["name", "age"],
               "properties": {"name": {"type": "string"}, "age": {"type": "integer"}}}


def answers(*texts):
    """A responder that gives these answers in turn (the last one again after that)."""
    queue = list(texts)
    return lambda req: queue.pop(0) if len(queue) > 1 else queue[0]


def artifact_text(run_id, name):
    import mlflow

    path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=name,
                                               tracking_uri=llmops_lab.get_settings().resolved_tracking_uri())
    with open(path, encoding="utf-8") as f:
        return f.read()


def test_cell_sends_schema_as_response_format_and_data_is_a_model_instance(shell, fake):
    shell.user_ns["Person"] = Person
    fake.responder = answers('{"name": "Ada", "age": 36}')
    res = shell.run_cell("%%llm --schema Person --out p --name person\nInvent a person.")
    assert res.success, res.error_in_exec
    sent = fake.requests[-1]["response_format"]
    assert sent["type"] == "json_schema"
    assert sent["json_schema"]["name"] == "Person"
    assert sent["json_schema"]["schema"] == Person.model_json_schema()
    assert "stream" not in fake.requests[-1]  # a schema answer is judged whole: never streamed
    p = shell.user_ns["p"]
    assert isinstance(p.data, Person) and p.data == Person(name="Ada", age=36)
    assert p.schema_retries == 0 and fake.request_count == 1
    run = mlflow_client().get_run(p.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["schema"] == "Person" and "response_format" not in run.data.params
    assert json.loads(artifact_text(p.run_id, "schema.json")) == Person.model_json_schema()
    version = mlflow_client().get_prompt_version("person", 1)
    assert version.model_config["extra_params"]["response_format"]["json_schema"]["schema"] == \
        Person.model_json_schema()


def test_invalid_answer_is_retried_once_with_the_error_shown(shell, fake):
    shell.user_ns["Person"] = Person
    fake.responder = answers('{"name": "Ada", "age": "old"}', '{"name": "Ada", "age": 36}')
    res = shell.run_cell("%%llm --schema Person --out p\nInvent a person.")
    assert res.success, res.error_in_exec
    assert fake.request_count == 2
    retry = fake.requests[-1]["messages"]
    assert retry[-2] == {"role": "assistant", "content": '{"name": "Ada", "age": "old"}'}
    assert retry[-1]["role"] == "user" and "field 'age'" in retry[-1]["content"]
    assert fake.requests[-1]["response_format"] == fake.requests[0]["response_format"]
    p = shell.user_ns["p"]
    assert p.data == Person(name="Ada", age=36) and p.schema_retries == 1
    assert p.usage["completion_tokens"] == 4 + 4  # both answers are paid for, so both are counted
    assert "schema Person (retried once)" in p.footer()
    metrics = mlflow_client().get_run(p.run_id).data.metrics
    assert metrics["schema_retries"] == 1 and metrics["total_tokens"] == p.usage["total_tokens"]
    rejected = json.loads(artifact_text(p.run_id, "schema_rejected.json"))
    assert rejected["output"] == '{"name": "Ada", "age": "old"}' and "field 'age'" in rejected["error"]
    # both exchanges are in the run's trace: the rejected answer with its error, then the retry as sent
    client = mlflow_client()
    run = client.get_run(p.run_id)
    (trace,) = client.search_traces(locations=[run.info.experiment_id], run_id=p.run_id)
    root, first, second = trace.data.spans
    assert root.parent_id is None and first.parent_id == second.parent_id == root.span_id
    assert (first.name, first.status.status_code, second.name, second.status.status_code) == \
        ("attempt 1", "ERROR", "attempt 2 (schema retry)", "OK")
    assert first.inputs["messages"] == fake.requests[0]["messages"]
    assert first.outputs["content"] == '{"name": "Ada", "age": "old"}'
    assert "field 'age'" in first.attributes["llmops.schema_error"]
    assert second.inputs["messages"] == retry and second.outputs["content"] == '{"name": "Ada", "age": 36}'
    assert first.start_time_ns <= first.end_time_ns <= second.start_time_ns <= second.end_time_ns


def test_budget_bounds_a_schema_call_as_two_requests(fake):
    llmops_lab.get_settings().prices["fake:test-model"] = {"input": 1000.0, "output": 2000.0}  # $ per 1M tokens
    fake.responder = answers('{"name": "Ada", "age": 36}')
    llmops_lab.run("hi", max_tokens=100, max_cost=0.5)  # one request: about $0.21
    with pytest.raises(llmops_lab.BudgetError, match="over max_cost"):
        llmops_lab.run("hi", max_tokens=100, max_cost=0.5, schema=Person)  # with its retry: about $0.71
    assert fake.request_count == 1


def test_answer_still_invalid_after_retry_is_one_line_and_a_failed_run(shell, fake, capsys):
    shell.user_ns["Person"] = Person
    shell.user_ns.pop("p", None)  # the shell is shared between tests
    fake.responder = answers('{"name": "Ada"}')
    res = shell.run_cell("%%llm --schema Person --out p\nInvent a person.")
    assert not res.success
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert "Traceback" not in text
    error_lines = [line for line in text.splitlines() if "UsageError" in line]
    assert len(error_lines) == 1 and "field 'age'" in error_lines[0] and "Person" in error_lines[0]
    assert fake.request_count == 2 and "p" not in shell.user_ns
    failed = shell.user_ns["_"]
    assert failed.data is None and failed.text == '{"name": "Ada"}'
    assert llmops_lab.flush() == 0
    run = mlflow_client().get_run(failed.run_id)
    assert run.info.status == "FAILED" and "field 'age'" in run.data.tags["llmops.error"]
    assert artifact_text(failed.run_id, "output.md") == '{"name": "Ada"}'
    (trace,) = mlflow_client().search_traces(locations=[run.info.experiment_id], run_id=failed.run_id)
    assert [(s.name, s.status.status_code) for s in trace.data.spans[1:]] == [
        ("attempt 1", "ERROR"), ("attempt 2 (schema retry)", "ERROR")]
    assert "field 'age'" in trace.data.spans[2].attributes["llmops.schema_error"]


def test_python_api_raises_schema_error_with_raw_text(fake):
    fake.responder = answers("not json at all")
    with pytest.raises(llmops_lab.SchemaError) as caught:
        llmops_lab.run("Invent a person.", schema=Person)
    err = caught.value
    assert err.raw == "not json at all" and "not JSON" in str(err) and "\n" not in str(err)
    assert err._render_traceback_() == [f"SchemaError: {err}"]


def test_run_with_a_schema_does_not_stream(fake):
    with pytest.raises(llmops_lab.ConfigError, match="does not stream"):
        llmops_lab.run("Invent a person.", schema=Person, stream=True)
    assert fake.request_count == 0


def test_loaded_prompt_keeps_its_schema(fake):
    fake.responder = answers('{"name": "Ada", "age": 36}')
    llmops_lab.run("Invent a person.", schema=PERSON_DICT, name="inventor")
    assert llmops_lab.flush() == 0
    loaded = llmops_lab.load_prompt("inventor@1")
    assert loaded.schema == PERSON_DICT and "response_format" not in loaded.params
    assert loaded().data == {"name": "Ada", "age": 36}
    assert fake.requests[-1]["response_format"]["json_schema"]["schema"] == PERSON_DICT


def test_dict_schema_gives_a_dict(fake):
    fake.responder = answers('```json\n{"name": "Ada", "age": 36}\n```')
    r = llmops_lab.run("Invent a person.", schema=PERSON_DICT)
    assert r.data == {"name": "Ada", "age": 36}
    assert fake.requests[-1]["response_format"]["json_schema"] == {"name": "Person", "schema": PERSON_DICT}


def test_dict_schema_names_the_missing_field(fake):
    fake.responder = answers('{"name": "Ada"}')
    with pytest.raises(llmops_lab.SchemaError, match=r"schema Person: field 'age': 'age' is a required property"):
        llmops_lab.run("Invent a person.", schema=PERSON_DICT)


def test_path_schema_in_a_cell(shell, fake, project):
    (project / "person.schema.json").write_text(json.dumps(PERSON_DICT))
    fake.responder = answers('{"name": "Ada", "age": 36}')
    res = shell.run_cell(f"%%llm --schema {project / 'person.schema.json'} --out p\nInvent a person.")
    assert res.success, res.error_in_exec
    assert shell.user_ns["p"].data == {"name": "Ada", "age": 36}


@pytest.mark.parametrize("line,message", [
    ("--schema Nobody", "no variable 'Nobody'"),
    ("--schema Person --stream", "--schema (the answer is validated whole)"),
    ("--schema bad", "not a valid JSON schema"),
])
def test_schema_user_errors_are_one_line_before_any_call(shell, fake, capsys, line, message):
    shell.user_ns["Person"] = Person
    shell.user_ns["bad"] = {"type": "no-such-type"}
    res = shell.run_cell(f"%%llm {line}\nInvent a person.")
    assert not res.success
    text = "".join(capsys.readouterr())
    assert "UsageError" in text and message in text and "Traceback" not in text
    assert fake.request_count == 0


def test_batch_with_schema_adds_schema_valid_and_field_scores(fake):
    import pandas as pd

    def responder(req):
        name = req["messages"][-1]["content"].split()[-1]
        return {"Ada": '{"name": "Ada", "age": 36}', "Bob": '{"name": "Bob", "age": 41}',
                "Cy": '{"name": "Cy", "age": "n/a"}'}[name]

    fake.responder = responder
    df = pd.DataFrame({"who": ["Ada", "Bob", "Cy"], "age": [36, 40, 20], "name": ["Ada", "Bob", "Cy"]})
    results = llmops_lab.batch("Describe {{ who }}", df, schema=Person, scorers=["field:age", "field:name"],
                               progress=False)
    assert fake.requests[-1]["response_format"]["json_schema"]["name"] == "Person"
    assert list(results["schema_valid"]) == [True, True, False]
    assert results["schema_data"][0] == {"name": "Ada", "age": 36} and results["schema_data"][2] is None
    assert "field 'age'" in results["schema_error"][2]
    assert list(results["field_age"]) == [1.0, 0.0, 0.0]
    assert list(results["field_name"]) == [1.0, 1.0, 0.0]
    summary = results.attrs["llmops"]["summary"]
    assert summary["schema_valid_rate"] == pytest.approx(2 / 3)
    assert fake.request_count == 3  # no retry in a batch: the rate measures the prompt
    run_id = llmops_lab.batch_run_id(results) if hasattr(llmops_lab, "batch_run_id") else None
    if run_id is None:
        from llmops_lab.evaluation.batch import batch_run_id

        run_id = batch_run_id(results)
    metrics = mlflow_client().get_run(run_id).data.metrics
    assert metrics["schema_valid_rate"] == pytest.approx(2 / 3)
    assert json.loads(artifact_text(run_id, "schema.json")) == Person.model_json_schema()


def test_field_scorer_without_schema_reads_json_and_compares_numbers_with_tolerance():
    from llmops_lab.evaluation.scoring import parse_scorers

    scorer, = parse_scorers(["field:age=expected:0.5"])
    assert scorer.name == "field_age" and scorer.needs == frozenset({"expected"})
    assert scorer.score('{"age": 36.4}', {"expected": 36}, {}).passed is True
    assert scorer.score('{"age": 37}', {"expected": 36}, {}).passed is False
    assert scorer.score('{"name": "x"}', {"expected": 36}, {}).rationale == "no field 'age' in the answer"


@pytest.mark.parametrize("spec,message", [
    ("field:", r"needs an argument: write field:NAME\[=COL\]\[:tol\]"),
    ("field:age:lots", "field tolerance 'lots' is not a number"),
    ("field:age=:1", "scorer needs a column name"),
])
def test_field_scorer_spec_errors_are_one_line(spec, message):
    from llmops_lab.evaluation.scoring import parse_scorers

    with pytest.raises(llmops_lab.ConfigError, match=message):
        parse_scorers([spec])


def test_embedded_model_request_asks_for_a_grammar_from_the_schema():
    from llmops_lab.core.schema import resolve
    from llmops_lab.providers.local import _generation_kwargs

    kwargs = _generation_kwargs({"temperature": 0, "response_format": resolve(Person).response_format()})
    assert kwargs["response_format"] == {"type": "json_object", "schema": Person.model_json_schema()}
    assert "response_format" not in _generation_kwargs({"temperature": 0})


@pytest.mark.slow
def test_embedded_model_gives_a_valid_person_at_temperature_zero(shell, project):
    shell.user_ns["Person"] = Person
    res = shell.run_cell("%%llm local:smollm2-135m --schema Person --temperature 0 --max-tokens 64 --out p\n"
                         "Invent a person with a name and an age.")
    assert res.success, res.error_in_exec
    p = shell.user_ns["p"]
    assert isinstance(p.data, Person), p.text
    assert p.schema_retries == 0  # the grammar built from the schema makes the first answer valid


def test_cell_batch_with_schema_and_the_schema_is_part_of_the_cache_key(shell, fake):
    import pandas as pd

    shell.user_ns["Person"] = Person
    shell.user_ns["people"] = pd.DataFrame({"who": ["Ada"], "age": [36]})
    fake.responder = answers('{"name": "Ada", "age": 36}')
    res = shell.run_cell("%%llm --dataset people --schema Person --scorer field:age --out r\nDescribe {{ who }}")
    assert res.success, res.error_in_exec
    r = shell.user_ns["r"]
    assert list(r["schema_valid"]) == [True] and list(r["field_age"]) == [1.0]
    assert fake.requests[-1]["response_format"]["json_schema"]["name"] == "Person"
    res = shell.run_cell("%%llm --dataset people --out r\nDescribe {{ who }}")  # same prompt, no schema
    assert res.success, res.error_in_exec
    assert fake.request_count == 2 and "response_format" not in fake.requests[-1]
    assert "schema_valid" not in shell.user_ns["r"].columns


def test_the_stored_schema_is_redacted(fake):
    key = "sk-proj-Q3xT9vLm2PzR8kWn4YbH7cJd"
    schema = {**PERSON_DICT, "description": f"never print {key}"}
    fake.responder = answers('{"name": "Ada", "age": 36}')
    r = llmops_lab.run("Invent a person.", schema=schema, name="redacted-schema")
    assert fake.requests[-1]["response_format"]["json_schema"]["schema"] == schema  # sent as given (scope log)
    stored = artifact_text(r.run_id, "schema.json")
    assert key not in stored and "never print" in stored
    config = mlflow_client().get_prompt_version("redacted-schema", 1).model_config
    assert key not in json.dumps(config)


def test_compare_sends_the_schema_to_every_variant_and_promote_keeps_it(fake):
    import pandas as pd

    fake.responder = answers('{"name": "Ada", "age": 36}')
    df = pd.DataFrame({"who": ["Ada", "Bob"], "age": [36, 41]})
    cmp = llmops_lab.compare(["Describe {{ who }}", "Describe {{ who }} briefly"], ["fake:test-model"], data=df,
                             schema=Person, scorers=["field:age"], name="describe", progress=False)
    assert fake.request_count == 4
    assert all(r["response_format"]["json_schema"]["name"] == "Person" for r in fake.requests)
    assert all(list(res["schema_valid"]) == [True, True] for res in cmp.results)
    assert "schema_valid" not in cmp.inputs().columns  # bookkeeping columns stay out of the inputs view
    version = cmp.promote(1, alias="production")
    assert version.model_config["extra_params"]["response_format"]["json_schema"]["schema"] == \
        Person.model_json_schema()
    loaded = llmops_lab.load_prompt("describe@production")
    assert loaded.schema == Person.model_json_schema() and "response_format" not in loaded.params


def test_compare_magic_takes_schema(shell, fake):
    import pandas as pd

    shell.user_ns["Person"] = Person
    shell.user_ns["people"] = pd.DataFrame({"who": ["Ada"], "age": [36]})
    fake.responder = answers('{"name": "Ada", "age": 36}')
    res = shell.run_cell("cmp = %llm compare 'Describe {{ who }}' 'Who is {{ who }}?' --dataset people "
                         "--schema Person --scorer field:age")
    assert res.success, res.error_in_exec
    cmp = shell.user_ns["cmp"]
    assert cmp.schema.name == "Person" and fake.request_count == 2
    assert all(list(r["field_age"]) == [1.0] for r in cmp.results)


def test_one_prompt_version_per_schema_whatever_the_temperature(fake):
    fake.responder = answers('{"name": "Ada", "age": 36}')
    for temperature in (0, 0.5):
        llmops_lab.run("Invent a person.", schema=Person, name="versions", temperature=temperature)
    llmops_lab.run("Invent a person.", schema=PERSON_DICT, name="versions")
    assert llmops_lab.flush() == 0
    versions = mlflow_client().search_prompt_versions("versions")
    assert sorted(int(v.version) for v in versions) == [1, 2]  # Person, then the dict schema
