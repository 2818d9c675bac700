import json
import subprocess
import sys

import pytest

from llmops_lab.evaluation import scoring
from llmops_lab.exceptions import ConfigError, LlmopsError
from llmops_lab.evaluation.scoring import (SCORERS, Scorer, ScoreResult, parse_scorer, parse_scorers, parse_verdict,
                                register_scorer, summarize_scores, to_mlflow_scorer)

META = {"latency_ms": 120.0, "cost_usd": 0.0004, "usage": {"total_tokens": 10}, "error": None}


def score(spec, output, row=None, meta=META, **kw):
    return parse_scorer(spec, **kw).score(output, row or {}, meta)


def one_line_config_error(spec, *fragments, **kw):
    with pytest.raises(ConfigError) as err:
        parse_scorer(spec, **kw)
    message = str(err.value)
    assert "\n" not in message and isinstance(err.value, LlmopsError)
    for fragment in fragments:
        assert fragment in message, message
    return message


# ---- built-ins ------------------------------------------------------------------------------------

def test_exact_is_stripped_and_case_insensitive():
    s = parse_scorer("exact:label")
    assert s.name == "exact_label" and s.needs == {"label"} and s.spec == "exact:label"
    assert s.score("  Positive\n", {"label": "positive"}, META) == ScoreResult(1.0, True, None)
    bad = s.score("negative", {"label": "positive"}, META)
    assert (bad.value, bad.passed) == (0.0, False) and "expected 'positive'" in bad.rationale


def test_exact_case_option():
    s = parse_scorer("exact:label:case")
    assert s.name == "exact_label" and s.needs == {"label"}
    assert s.score("Positive", {"label": "Positive"}, META).passed is True
    assert s.score("positive", {"label": "Positive"}, META).passed is False


def test_exact_non_string_cell():
    assert score("exact:n", " 42 ", {"n": 42}).passed is True


def test_contains():
    s = parse_scorer("contains:keyword")
    assert s.name == "contains_keyword" and s.needs == {"keyword"}
    assert s.score("The capital is PARIS.", {"keyword": "Paris"}, META).passed is True
    miss = s.score("The capital is Lyon.", {"keyword": "Paris"}, META)
    assert miss.passed is False and miss.value == 0.0 and "not in output" in miss.rationale


def test_regex():
    s = parse_scorer(r"regex:^\d{3}-\d{4}$")
    assert s.name == "regex" and s.needs == frozenset()
    assert s.score("555-1234", {}, META).passed is True
    assert s.score("call 555-1234", {}, META).passed is False
    assert score("regex:(?i)yes|no", "Yes.").passed is True
    assert score("regex:a:b", "xa:by").passed is True  # only the first ':' splits the spec


def test_regex_bad_pattern_is_config_error_naming_it():
    one_line_config_error("regex:([a-z", "([a-z", "fix the pattern")


def test_json_plain_and_fenced():
    s = parse_scorer("json")
    assert s.name == "json"
    assert s.score('{"a": 1}', {}, META).passed is True
    assert s.score('```json\n{"a": [1, 2]}\n```', {}, META).passed is True
    assert s.score("```\n[1, 2]\n```\n", {}, META).passed is True
    bad = s.score("Sure! {'a': 1}", {}, META)
    assert bad.passed is False and bad.rationale.startswith("not JSON")


def test_json_schema(tmp_path):
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps({"type": "object", "required": ["label"],
                                  "properties": {"label": {"enum": ["pos", "neg"]}}}))
    s = parse_scorer(f"json:{schema}")
    assert s.name == "json"
    assert s.score('{"label": "pos"}', {}, META).passed is True
    wrong = s.score('```json\n{"label": "meh"}\n```', {}, META)
    assert wrong.passed is False and "label" in wrong.rationale and wrong.rationale.startswith("schema")
    assert s.score('{"other": 1}', {}, META).passed is False
    assert s.score("not json", {}, META).rationale.startswith("not JSON")


def test_json_schema_errors(tmp_path):
    one_line_config_error(f"json:{tmp_path}/missing.json", "missing.json", "not found")
    broken = tmp_path / "broken.json"
    broken.write_text("{nope")
    one_line_config_error(f"json:{broken}", "broken.json", "not readable JSON")
    invalid = tmp_path / "invalid.json"
    invalid.write_text(json.dumps({"type": 12}))
    one_line_config_error(f"json:{invalid}", "invalid.json", "invalid")


def test_numeric_exact_and_tolerance():
    s = parse_scorer("numeric:answer")
    assert s.name == "numeric_answer" and s.needs == {"answer"}
    assert s.score("The answer is 42.", {"answer": "42"}, META).passed is True
    assert s.score("It is 1,234.0 in total", {"answer": 1234}, META).passed is True
    assert s.score("-3 degrees", {"answer": -3.0}, META).passed is True
    off = s.score("42.01", {"answer": 42}, META)
    assert off.passed is False and "expected 42, got 42.01" == off.rationale
    assert score("numeric:answer:0.05", "about 3.14159", {"answer": 3.1}).passed is True
    assert score("numeric:answer:0.01", "about 3.14159", {"answer": 3.1}).passed is False
    none = s.score("no idea", {"answer": 1}, META)
    assert none.passed is False and none.rationale == "no number in output"


def test_numeric_bad_expected_is_row_error_not_crash():
    r = score("numeric:answer", "42", {"answer": "forty-two"})
    assert r.value is None and r.passed is None and r.rationale.startswith("error: ")
    assert "not a number" in r.rationale


def test_numeric_bad_tolerance():
    one_line_config_error("numeric:answer:abc", "'abc'", "numeric:COL[:tol]")
    one_line_config_error("numeric:answer:-1", ">= 0")


def test_latency_and_cost():
    assert parse_scorer("latency_under:500").name == "latency_under_500"
    assert parse_scorer("cost_under:0.001").name == "cost_under_0.001"
    assert score("latency_under:500", "x").passed is True
    assert score("latency_under:100", "x").passed is False
    assert score("cost_under:0.001", "x").passed is True
    assert score("cost_under:0.0001", "x").passed is False
    unknown = score("cost_under:0.001", "x", meta={**META, "cost_usd": None})
    assert unknown == ScoreResult(None, None, None)
    one_line_config_error("latency_under:fast", "'fast'", "latency_under:MS")
    one_line_config_error("cost_under:0", "positive", "cost_under:USD")


# ---- parse errors and the registry -----------------------------------------------------------------

def test_unknown_prefix_lists_known_ones():
    message = one_line_config_error("exactly:label", "'exactly'", "exact:COL[:case]", "contains:COL",
                                    "judge:", "numeric:COL[:tol]")
    assert "Python function" in message


@pytest.mark.parametrize("spec, form", [("exact", "exact:COL[:case]"), ("contains:", "contains:COL"),
                                        ("numeric: ", "numeric:COL[:tol]"), ("regex", "regex:PATTERN"),
                                        ("judge", 'judge:"rubric text"'), ("latency_under", "latency_under:MS")])
def test_missing_argument_says_expected_form(spec, form):
    one_line_config_error(spec, "needs an argument", form)


def test_other_bad_specs():
    one_line_config_error("", "empty scorer spec")
    one_line_config_error(42, "neither")
    one_line_config_error('judge:""', "rubric")
    one_line_config_error("judge:'ok?'", "provider:model", judge_model="no-provider")


def test_spec_prefix_is_case_and_space_tolerant():
    assert parse_scorer("  EXACT:label ").name == "exact_label"


def test_register_scorer_extension():
    @register_scorer("max_words", form="max_words:N")
    def max_words(arg):
        limit = int(arg)
        return Scorer(f"max_words_{limit}", lambda output, row, meta: len(output.split()) <= limit)

    @register_scorer("starts_with_col", form="starts_with_col:COL")
    def starts_with(arg, judge_model=None):  # a plain callable: named after the prefix
        starts_with.seen_model = judge_model
        return lambda output, row: output.startswith(str(row[arg]))

    try:
        s = parse_scorer("max_words:3")
        assert s.name == "max_words_3" and s.spec == "max_words:3"
        assert s.score("one two three", {}, META).passed is True
        assert s.score("one two three four", {}, META).passed is False
        t = parse_scorer("starts_with_col:prefix", judge_model="fake:j")
        assert t.name == "starts_with_col" and starts_with.seen_model == "fake:j"
        assert t.score("abc", {"prefix": "ab"}, META).passed is True
        assert "max_words:N" in one_line_config_error("nope:1")
        one_line_config_error("max_words", "max_words:N")
    finally:
        for prefix in ("max_words", "starts_with_col"):
            SCORERS.pop(prefix, None)
            scoring._FORMS.pop(prefix, None)
    with pytest.raises(ConfigError, match="invalid"):
        register_scorer("Bad Prefix")


def test_registry_is_a_plain_dict_of_factories():
    assert parse_scorer("exact:label").name == SCORERS["exact"]("label").name == "exact_label"
    SCORERS["shouty"] = lambda arg: (lambda output: output.isupper())  # set directly: argument optional
    try:
        assert parse_scorer("shouty").score("HEY", {}, META).passed is True
        assert "shouty[:ARG]" in one_line_config_error("nope")
    finally:
        SCORERS.pop("shouty")


def test_parse_scorers_dedupes_names_and_passes_scorers_through():
    existing = parse_scorer("regex:a")
    scorers = parse_scorers(["regex:^a", "regex:b$", existing, "exact:label"])
    assert [s.name for s in scorers] == ["regex", "regex_2", "regex_3", "exact_label"]
    assert parse_scorer(existing) is existing
    assert parse_scorers(None) == [] and [s.name for s in parse_scorers("json")] == ["json"]


# ---- callables, exceptions, failed rows ------------------------------------------------------------

def test_callables_of_each_arity():
    def short(output):
        return len(output) < 10

    def matches(output, row):
        return {"score": 0.5, "passed": output == row["x"], "rationale": "half"}

    def fast(output, row, meta):
        return meta["latency_ms"] / 1000

    def variadic(*args):
        return len(args) == 3

    class Callable:
        def __call__(self, output, row):
            return 0.25

    assert parse_scorer(short).score("hi", {}, META) == ScoreResult(1.0, True, None)
    assert parse_scorer(matches).score("a", {"x": "a"}, META) == ScoreResult(0.5, True, "half")
    assert parse_scorer(fast).score("a", {}, META) == ScoreResult(0.12, None, None)
    assert parse_scorer(variadic).score("a", {}, META).passed is True
    assert parse_scorer(Callable()).score("a", {}, META).value == 0.25
    names = [s.name for s in parse_scorers([short, matches, fast, lambda o: 1])]
    assert names == ["short", "matches", "fast", "lambda"]
    one_line_config_error(lambda: True, "(output, row)")


def test_callable_needs_attribute():
    def uses_label(output, row):
        return output == row["label"]

    uses_label.needs = {"label"}
    assert parse_scorer(uses_label).needs == {"label"}
    assert Scorer.from_callable(uses_label, name="x", needs=["a", "b"]).needs == {"a", "b"}


def test_dict_results():
    assert parse_scorer(lambda o: {"value": 2}).score("", {}, META) == ScoreResult(2.0, None, None)
    assert parse_scorer(lambda o: {"passed": False, "rationale": "no"}).score("", {}, META) == \
        ScoreResult(0.0, False, "no")
    assert parse_scorer(lambda o: None).score("", {}, META) == ScoreResult(None, None, None)


def test_exception_in_scorer_becomes_error_result():
    def boom(output, row):
        raise RuntimeError("kaput")

    r = parse_scorer(boom).score("x", {}, META)
    assert r == ScoreResult(None, None, "error: RuntimeError: kaput") and r.is_error
    missing = score("exact:label", "x", {"other": 1})
    assert missing.value is None and "label" in missing.rationale and missing.is_error
    nan = score("contains:label", "x", {"label": float("nan")})
    assert nan.is_error and "no value" in nan.rationale
    weird = parse_scorer(lambda o: "yes").score("x", {}, META)
    assert weird.is_error and "return a bool" in weird.rationale
    keys = parse_scorer(lambda o: {"scor": 1}).score("x", {}, META)
    assert keys.is_error and "scor" in keys.rationale


def test_failed_row_is_not_scored():
    calls = []

    def spy(output, row, meta):
        calls.append(output)
        return True

    failed = {**META, "error": "ProviderError: 503 after 3 tries"}
    for spec in ["exact:label", "latency_under:500", spy]:
        assert parse_scorer(spec).score(None, {"label": "a"}, failed) == ScoreResult(None, None, None)
    assert calls == []


# ---- summaries ----------------------------------------------------------------------------------------

def test_summarize_scores():
    results = [ScoreResult(1.0, True), ScoreResult(0.0, False), ScoreResult(0.5, None),
               ScoreResult(None, None, "error: boom"), ScoreResult(None, None, None),
               ScoreResult(None, None, "unparseable judge answer")]
    assert summarize_scores(results) == {"mean": 0.5, "pass_rate": 0.5, "n_scored": 3, "n_errors": 1}
    assert summarize_scores([]) == {"mean": None, "pass_rate": None, "n_scored": 0, "n_errors": 0}
    assert summarize_scores(iter([ScoreResult(0.3, None)]))["pass_rate"] is None


# ---- judge ----------------------------------------------------------------------------------------------

def _judge_prompt(request):
    return "\n".join(m["content"] for m in request["messages"])


def test_judge_pass_through_the_fake_server(fake):
    fake.responder = lambda req: "PASS\nIt answers the question."
    try:
        s = parse_scorer('judge:"Does the answer name a {{city}}?"', judge_model="fake:judge")
        assert s.name == "judge" and s.needs == frozenset()
        r = s.score("Paris is the capital of France.", {"question": "Capital of France?"}, META)
    finally:
        fake.responder = None
    assert r == ScoreResult(1.0, True, "It answers the question.")
    request = fake.requests[-1]
    prompt = _judge_prompt(request)
    assert "Does the answer name a {{city}}?" in prompt  # rubric braces stay plain text
    assert "Paris is the capital of France." in prompt and "- question: Capital of France?" in prompt
    assert "PASS or FAIL" in prompt
    assert request["model"] == "judge" and request["temperature"] == 0


def test_judge_fail_and_unparseable(fake):
    answers = iter(["**fail** - it never mentions a city.", "I am not sure what you mean. " * 20])
    fake.responder = lambda req: next(answers)
    try:
        s = parse_scorer("judge:Names a city", judge_model="fake:judge")
        fail = s.score("No idea.", {}, META)
        unsure = s.score("No idea.", {}, META)
    finally:
        fake.responder = None
    assert fail == ScoreResult(0.0, False, "it never mentions a city.")
    assert unsure.value is None and unsure.passed is None and not unsure.is_error
    assert unsure.rationale.startswith("I am not sure") and len(unsure.rationale) <= 201


def test_judge_defaults_to_configured_model_and_writes_no_record(fake):
    import llmops_lab

    fake.responder = lambda req: "Pass."
    try:
        r = score("judge:ok?", "out", {"q": 1})
    finally:
        fake.responder = None
    assert r.passed is True and r.rationale is None
    assert fake.requests[-1]["model"] == "test-model"
    home = llmops_lab.get_settings().home  # a fresh project: nothing spooled, nothing logged
    assert not (home.exists() and any(home.rglob("spool-*")))


def test_judge_provider_failure_is_error_result(fake):
    import llmops_lab

    llmops_lab.configure(max_retries=0)
    fake.fail_next("500", count=1)
    r = score("judge:ok?", "out", judge_model="fake:judge")
    assert r.is_error and "500" in r.rationale


@pytest.mark.parametrize("answer, expected", [
    ("PASS", (1.0, True, None)),
    ("Verdict: FAIL. Too long.", (0.0, False, "Too long.")),
    ("passed\nclear and correct", (1.0, True, "clear and correct")),
    ("The passage is fine", (None, None, "The passage is fine")),
    ("", (None, None, "(empty answer)")),
])
def test_parse_verdict(answer, expected):
    r = parse_verdict(answer)
    assert (r.value, r.passed, r.rationale) == expected


# ---- MLflow adapter ------------------------------------------------------------------------------------

def test_to_mlflow_scorer_matches_our_value():
    from mlflow.entities import Feedback
    from mlflow.genai.scorers import Scorer as MlflowScorer

    exact = to_mlflow_scorer("exact:answer")
    assert isinstance(exact, MlflowScorer) and exact.name == "exact_answer"
    feedback = exact.run(inputs={"question": "2+2?"}, outputs=" 4 ", expectations={"answer": "4"})
    assert isinstance(feedback, Feedback) and feedback.value is True and feedback.name == "exact_answer"
    ours = parse_scorer("exact:answer").score(" 4 ", {"question": "2+2?", "answer": "4"}, META)
    assert feedback.value == ours.value
    wrong = exact.run(inputs={}, outputs="5", expectations={"answer": "4"})
    assert wrong.value is False and "expected '4'" in wrong.rationale

    def partial(output, row):
        return {"score": 0.75, "rationale": f"q={row['inputs']}"}

    graded = to_mlflow_scorer(partial)
    fb = graded.run(inputs="plain question", outputs={"a": 1})
    assert fb.value == 0.75 == parse_scorer(partial).score("{}", {"inputs": "plain question"}, META).value
    assert fb.rationale == "q=plain question"

    json_fb = to_mlflow_scorer("json").run(outputs={"a": 1})  # non-string outputs become JSON
    assert json_fb.value is True

    broken = to_mlflow_scorer(lambda o: 1 / 0).run(outputs="x")
    assert broken.error is not None and "ZeroDivisionError" in broken.error.error_message


# ---- module hygiene -----------------------------------------------------------------------------------

def test_import_is_light():
    code = ("import sys, llmops_lab.evaluation.scoring; "
            "print([m for m in ('mlflow', 'pandas', 'openai', 'jsonschema') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
