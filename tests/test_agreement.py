"""Judges checked against people on the fake server: a judge that passes exactly the outputs marked GOODX,
against ten human ratings with a known confusion table, so accuracy and kappa are computed by hand; the
judge's calls are cached; ratings stored as MLflow feedback are read back; calibrate() registers a version."""
import math

import pandas as pd
import pytest

from llmops_lab.evaluation import compare as cm
from llmops_lab.evaluation.scoring import agreement, cohen_kappa
from llmops_lab.evaluation.scoring.agreement import human_label
from llmops_lab.exceptions import ConfigError

RUBRIC = 'judge:"Is it helpful?"'


def _judge(req):
    graded = req["messages"][-1]["content"].split("Output to grade:")[-1]
    return "PASS - fine." if "GOODX" in graded else "FAIL - not fine."


# outputs 0-5 are GOODX (the judge passes them), 6-9 BADX; people pass 0-4 and 6, fail 5 and 7-9
HUMAN = [True, True, True, True, True, False, True, False, False, False]
RATINGS = [{"question": f"q{i}", "output": f"{'GOODX' if i < 6 else 'BADX'} answer {i}", "human": h}
           for i, h in enumerate(HUMAN)]


def test_kappa_and_labels_by_hand():
    # p_o = 3/4; p_e = (2/4)(1/4) + (2/4)(3/4) = 1/2; kappa = (3/4 - 1/2) / (1/2) = 1/2
    assert cohen_kappa(["p", "p", "f", "f"], ["p", "f", "f", "f"]) == pytest.approx(0.5)
    assert cohen_kappa(["p", "f"], ["p", "f"]) == 1.0 and math.isnan(cohen_kappa(["p"], ["p"]))
    assert [human_label(v) for v in (False, "Pass", 4, 2, 3, "maybe")] == ["fail", "pass", "pass", "fail", None, None]


def test_agreement_against_hand_computed_values(fake):
    fake.responder = _judge
    a = agreement(RUBRIC, RATINGS)
    # human x judge: pass/pass 5, pass/fail 1 (row 6), fail/pass 1 (row 5), fail/fail 3
    assert a.confusion.loc["pass", "pass"] == 5 and a.confusion.loc["pass", "fail"] == 1
    assert a.confusion.loc["fail", "pass"] == 1 and a.confusion.loc["fail", "fail"] == 3
    # p_o = 8/10; p_e = 0.6 * 0.6 + 0.4 * 0.4 = 0.52; kappa = 0.28 / 0.48
    assert a.accuracy == pytest.approx(0.8) and a.kappa == pytest.approx(0.28 / 0.48)
    assert sorted(a.disagreements()["question"]) == ["q5", "q6"]
    assert a.metrics() == {"judge.accuracy": pytest.approx(0.8), "judge.kappa": pytest.approx(0.28 / 0.48)}
    from llmops_lab.tracking.clients import kernel_client

    run = kernel_client().get_run(a.run_id)  # a run of its own, beside the judge version's tags
    assert run.data.tags["llmops.kind"] == "agreement" and run.data.metrics["rated"] == 10
    assert run.data.metrics["accuracy"] == pytest.approx(0.8) and run.data.metrics["kappa"] == pytest.approx(0.28 / 0.48)
    assert "agreement.json" in [f.path for f in kernel_client().list_artifacts(a.run_id)]
    asked = fake.request_count
    with pytest.raises(ConfigError, match="nothing to calibrate"):
        agreement(RUBRIC, [r for i, r in enumerate(RATINGS) if i not in (5, 6)]).calibrate()
    again = agreement(RUBRIC, pd.DataFrame(RATINGS))
    assert fake.request_count == asked and again.kappa == a.kappa  # the judge's answers came from the cache
    grid = a.comparison()
    assert grid.n_rows == 10 and grid.results[0]["judge"].tolist()[5:7] == [1.0, 0.0]
    assert "GOODX answer 5" in grid.widget().static_html()  # the rated rows in the comparison grid


def test_a_json_judge_reads_its_constrained_answer(fake):
    fake.responder = lambda req: ('```json\n{"verdict": "PASS", "reason": "ok"}\n```'
                                  if "GOODX" in req["messages"][-1]["content"].split("Output to grade:")[-1]
                                  else '{"verdict": "FAIL"}')
    a = agreement('judge_json:"Is it helpful?"', RATINGS)
    assert a.accuracy == pytest.approx(0.8) and a.judge.params["max_tokens"] == 64
    # The verdict is asked for natively: its JSON schema, labels as an enum, rides in response_format.
    sent = fake.requests[-1]["response_format"]
    assert sent["type"] == "json_schema" and \
        sent["json_schema"]["schema"]["properties"]["verdict"]["enum"] == ["PASS", "FAIL"]


def test_unparsed_verdicts_count_against_the_judge(fake):
    fake.responder = lambda req: "I cannot decide."
    a = agreement(RUBRIC, RATINGS[:4])
    assert set(a.table["judge"]) == {"none"} and a.accuracy == 0.0


def test_ratings_errors_are_one_line(fake):
    with pytest.raises(ConfigError, match="output and human"):
        agreement(RUBRIC, [{"output": "x"}])
    with pytest.raises(ConfigError, match="no usable"):
        agreement(RUBRIC, [{"output": "x", "human": 3}])
    with pytest.raises(ConfigError, match="not a judge"):
        agreement("exact:label", RATINGS)


def test_ratings_stored_as_feedback_and_calibrate(fake):
    from llmops_lab.tracking import registry

    fake.responder = lambda req: ("GOODX " if "good" in req["messages"][-1]["content"] else "BADX ") + "reply"
    data = pd.DataFrame({"text": ["good one", "good two", "bad one", "bad two"]})
    cmp = cm.compare(["Reply: {{ text }}"], data=data, scorers=["contains:text"], progress=False)
    for row, thumbs in enumerate([True, False, False, False]):  # people fail row 1, which the judge passes
        cmp.rate(row, 0, thumbs=thumbs)
    cmp.ratings = {}  # read back from MLflow, as after a kernel restart
    fake.responder = _judge
    a = agreement(RUBRIC, cmp)
    assert a.n == 4 and a.accuracy == pytest.approx(0.75) and a.disagreements()["row"].tolist() == [1]
    # p_o = 3/4; human pass 1/4, judge pass 2/4; p_e = 1/4 * 2/4 + 3/4 * 2/4 = 1/2; kappa = 1/2
    assert a.kappa == pytest.approx(0.5)

    new = a.calibrate("helpful-judge")
    versions = registry.versions_with_aliases(registry._client(), "helpful-judge")
    assert len(versions) == 2 and versions[0].tags["llmops.judge.kappa"] == "0.5000"
    assert "GOODX reply" in versions[1].template and "graded by a person: FAIL" in versions[1].template
    assert new.template == versions[1].template
    from llmops_lab.config import get_settings

    rendered = new.plan(get_settings()).messages(new.variables("an {{ answer }}", {}))[-1]["content"]
    assert "GOODX reply" in rendered and "an {{ answer }}" in rendered


def test_a_calibrated_judge_scores_a_batch(fake):
    from llmops_lab.evaluation.batch import batch

    fake.responder = _judge
    a = agreement(RUBRIC, RATINGS)
    new = a.calibrate("batch-judge")
    fake.responder = lambda req: ("PASS" if "graded by a person" in req["messages"][-1]["content"] else
                                  "GOODX reply")  # the judge prompt holds the examples; the row's call does not
    out = batch("{{ q }}", [{"q": "x"}, {"q": "y"}], scorers=[new.as_scorer("calibrated")], progress=False)
    assert out["calibrated"].tolist() == [1.0, 1.0] and out["judge_prompt_tokens"].sum() > 0
