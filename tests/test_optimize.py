"""Honest prompt optimisation on the fake echo server, where every score is known by hand: the echo model answers
``echo: <prompt>``, so a template scores 1 on ``exact:expected`` (expected = ``echo: <text>``) exactly when it is
``{{ text }}`` alone. Useless proposals are not significant and promote nothing; a real gain on enough test rows is;
the split is stratified and recorded; a re-run asks nothing; every candidate is a tagged registry version."""
import re

import pandas as pd
import pytest

from llmops_lab.evaluation import optimize as opt
from llmops_lab.evaluation import proposer as P
from llmops_lab.evaluation.datasets import split
from llmops_lab.exceptions import ConfigError


def rows(n, label=None):
    out = [{"text": f"item {i}", "expected": f"echo: item {i}"} for i in range(n)]
    if label:
        for i, r in enumerate(out):
            r["label"] = label[i]
    return out


def attempt(req):
    return int(re.search(r"attempt (\d+)", str(req["messages"])).group(1))


def useless(req):
    """The proposer (model ``proposer``) writes wordy variants, and drops the variable on attempt 2; the task
    model echoes."""
    if req["model"] != "proposer":
        return "echo: " + req["messages"][-1]["content"]
    n = attempt(req)
    return "Answer briefly." if n == 2 else f"```\nAttempt {n}, answer: {{{{ text }}}}\n```"


def children_of(run_id):
    from llmops_lab.tracking.clients import kernel_client

    client = kernel_client()
    exp = client.get_run(run_id).info.experiment_id
    found = client.search_runs([exp], filter_string=f"tags.`mlflow.parentRunId` = '{run_id}'", max_results=100)
    return {r.data.tags["llmops.compare.variant"]: r for r in found}


# ---- pure parts ------------------------------------------------------------------------------------------

def test_split_is_seeded_and_stratified():
    frame = pd.DataFrame({"y": ["a"] * 16 + ["b"] * 8})
    s = split(frame, label="y", seed=3)
    assert s.value_counts().to_dict() == {"train": 12, "validation": 6, "test": 6}
    assert pd.crosstab(s, frame["y"]).to_dict() == {"a": {"test": 4, "train": 8, "validation": 4},
                                                    "b": {"test": 2, "train": 4, "validation": 2}}
    assert s.equals(split(frame, label="y", seed=3)) and not s.equals(split(frame, label="y", seed=4))
    with pytest.raises(ConfigError, match="too few to split"):
        split(frame.head(2))
    with pytest.raises(ConfigError, match="label column 'nope'"):
        split(frame, label="nope")


def test_candidate_checks_name_their_reason():
    cols = ["text", "expected"]
    assert P.check_candidate("Say {{ text }}", ["text"], cols, []) == "ok"
    assert P.check_candidate("Say it.", ["text"], cols, []) == "rejected: drops {{ text }}"
    assert P.check_candidate("{{ text }} {{ other }}", ["text"], cols, []).startswith("rejected: uses {{ other }}")
    assert P.check_candidate("Say {{ text", ["text"], cols, []).startswith("rejected: not a template")
    assert P.check_candidate("{{ text }}", ["text"], cols, ["{{ text }}"]) == "rejected: duplicate"
    assert P.check_candidate("  ", ["text"], cols, []) == "rejected: empty"
    assert P.read_proposal("<template>\nSay {{ text }}\n</template>") == "Say {{ text }}"


def test_few_shot_candidate_keeps_examples_literal_and_one_per_label_first():
    train = [{"text": "a {{ x }}", "expected": "A", "label": "p"}, {"text": "b", "expected": "B", "label": "p"},
             {"text": "c", "expected": "C", "label": "n"}]
    text = P.few_shot_candidate("Say {{ text }}", train, ["text"], "expected", 2, seed=0, label="label")
    from llmops_lab.core.templates import PromptTemplate

    assert PromptTemplate(text).variables == {"text"} and "text: c\nAnswer: C" in text  # the one "n" row is in
    assert PromptTemplate(text).render({"text": "q"}).endswith("Say q") and "{{ x }}" in text


# ---- searches on the fake server ------------------------------------------------------------------------

def test_useless_proposals_are_not_significant_and_logged(fake):
    fake.responder = useless
    o = opt.optimize("{{ text }}", rows(24), scorers=["exact:expected"], proposer="fake:proposer", candidates=3,
                     rounds=2, name="opt-useless", progress=False)
    c = o.candidates
    assert c["id"].tolist() == list(range(len(c))) and c["status"].iat[0] == "ok"
    assert c.loc[1:, "round"].tolist() == [1] * 4 + [2] * 4  # 3 proposals + 1 few-shot per round
    assert c.loc[c["text"] == "Answer briefly.", "status"].tolist() == ["rejected: drops {{ text }}"]  # attempt 2
    assert (c["status"] == "ok").sum() == 1 + 3 + 4  # the original; round 1: 2 proposals + few-shot; round 2: 3 + 1
    assert set(c.loc[1:, "parent"]) == {0}  # nothing beat the original: every round started from it
    assert c["validation_score"].iat[0] == 1.0 and (c.loc[c["status"] == "ok"].iloc[1:]["validation_score"] == 0).all()
    assert c.loc[c["source"] == "few-shot", "status"].tolist() == ["ok", "ok"]
    assert o.best == "{{ text }}" and o.best_id == 0 and o.significant is False and o.test is None
    assert "no significant gain on the test split" in o.report().lower()
    with pytest.raises(ConfigError, match=r"not promoted: no candidate beat the original.*force=True"):
        o.promote(alias="candidate")

    from llmops_lab.tracking.clients import kernel_client

    client = kernel_client()
    run = client.get_run(o.run_id)
    assert run.data.tags["llmops.kind"] == "optimize" and run.data.metrics["optimize.significant"] == 0.0
    assert run.data.metrics["optimize.evaluated"] == 7 and run.data.params["split.test"] == "6"
    evaluated = c.loc[c["status"] == "ok"]
    labels = {"c0 original"} | {f"c{i} r{r}" for i, r in zip(evaluated["id"], evaluated["round"]) if i} | \
             {"proposer r1", "proposer r2"}
    kids = children_of(o.run_id)
    assert set(kids) == labels  # one child per evaluated candidate (+ the proposer's batch of each round)
    artifacts = {f.path for f in client.list_artifacts(o.run_id)}
    assert {"candidates.json", "split.json"} <= artifacts
    assert not client.get_prompt_version("opt-useless", 1).aliases  # nothing promoted
    v3 = client.get_prompt_version("opt-useless", int(c["version"].iat[3]))
    assert v3.tags["llmops.optimize.round"] == "1" and v3.tags["llmops.optimize.parent"] == "opt-useless@1"
    assert v3.tags["llmops.optimize.status"] == "ok"
    rejected = client.get_prompt_version("opt-useless", int(c.loc[c["text"] == "Answer briefly.", "version"].iat[0]))
    assert rejected.tags["llmops.optimize.status"] == "rejected: drops {{ text }}"
    assert int(c["version"].iat[0]) == 1  # the original is the first version

    # the same search again: every answer from the cache, not one request
    fake.reset()
    again = opt.optimize("{{ text }}", rows(24), scorers=["exact:expected"], proposer="fake:proposer", candidates=3,
                         rounds=2, name="opt-useless", progress=False)
    assert fake.request_count == 0
    assert again.candidates.drop(columns=["version"]).equals(c.drop(columns=["version"]))
    assert again.candidates["version"].tolist() == c["version"].tolist()  # the same registry versions


def better(req):
    """The proposer always proposes the bare template, which the echo model answers exactly."""
    return "{{ text }}" if req["model"] == "proposer" else "echo: " + req["messages"][-1]["content"]


def test_a_real_gain_on_enough_test_rows_is_significant_and_promotable(fake):
    fake.responder = better
    o = opt.optimize("Say {{ text }}", rows(24), scorers=["exact:expected"], proposer="fake:proposer", candidates=1,
                     rounds=1, few_shot=0, name="opt-better", progress=False)
    assert o.best == "{{ text }}" and o.best_id == 1
    assert (o.test["wins"], o.test["losses"], o.test["test"]) == (6, 0, "mcnemar")  # 6 test rows, all won
    assert o.test["p_value"] == pytest.approx(2 / 2 ** 6) and o.significant is True
    assert "significant gain on the test split" in o.report().lower() and "no significant" not in o.report().lower()
    version = o.promote(alias="candidate")
    from llmops_lab.tracking.clients import kernel_client

    client = kernel_client()
    assert client.get_prompt_version("opt-better", int(version.version)).template == "{{ text }}"
    assert "candidate" in client.get_prompt_version("opt-better", int(version.version)).aliases
    assert client.get_run(o.run_id).data.tags["llmops.promoted.candidate"].startswith("opt-better@")
    assert {"test: original", "test: c1"} <= set(children_of(o.run_id))


def test_a_gain_on_too_few_test_rows_is_not_significant_and_needs_force(fake):
    fake.responder = better
    o = opt.optimize("Say {{ text }}", rows(16), scorers=["exact:expected"], proposer="fake:proposer", candidates=1,
                     rounds=1, few_shot=0, name="opt-small", progress=False)
    assert o.best_id == 1 and o.test["wins"] == 4 and o.test["p_value"] == pytest.approx(2 / 2 ** 4)
    assert o.significant is False and "no significant gain on the test split" in o.report().lower()
    with pytest.raises(ConfigError, match=r"not significant \(p = 0.125, alpha 0.05\).*force=True"):
        o.promote(alias="candidate")
    from llmops_lab.tracking.clients import kernel_client

    assert not kernel_client().get_prompt_version("opt-small", 2).aliases
    assert "candidate" in o.promote(alias="candidate", force=True).aliases


def test_the_split_is_stratified_and_recorded(fake):
    fake.responder = useless
    labels = ["pos"] * 16 + ["neg"] * 8
    o = opt.optimize("{{ text }}", rows(24, labels), scorers=["exact:expected"], proposer="fake:proposer",
                     candidates=1, rounds=1, few_shot=0, label="label", seed=7, progress=False)
    assert pd.crosstab(o.split, pd.Series(labels)).to_dict() == {"neg": {"test": 2, "train": 4, "validation": 2},
                                                                 "pos": {"test": 4, "train": 8, "validation": 4}}
    from llmops_lab.tracking.clients import kernel_client

    client = kernel_client()
    params = client.get_run(o.run_id).data.params
    assert (params["split.label"], params["split.seed"], params["split.train"]) == ("label", "7", "12")
    import json
    import pathlib
    import urllib.parse

    root = urllib.parse.urlparse(client.get_run(o.run_id).info.artifact_uri).path
    table = json.loads(pathlib.Path(root, "split.json").read_text())
    assert [r[1] for r in table["data"]] == o.split.tolist()  # row -> split, as used


def test_budgets_refuse_the_first_batch_or_stop_the_search(fake):
    import llmops_lab

    fake.responder = useless
    llmops_lab.get_settings().prices["fake:test-model"] = {"input": 1000.0, "output": 2000.0}
    with pytest.raises(llmops_lab.BudgetError, match="over max_cost"):
        opt.optimize("{{ text }}", rows(24), scorers=["exact:expected"], max_cost=1e-9, max_tokens=5, progress=False)
    assert fake.request_count == 0
    # the original fits; the proposer has no price, so its batch is refused: the search stops and says why
    o = opt.optimize("{{ text }}", rows(24), scorers=["exact:expected"], proposer="fake:proposer", max_cost=1.0,
                     max_tokens=5, progress=False)
    assert fake.request_count == 18 and len(o.candidates) == 1 and o.best_id == 0 and not o.significant
    assert "stopped early" in o.report() and "no price for fake:proposer" in o.report()


def test_bad_input_is_one_line(fake):
    for kwargs, message in (({"scorers": None}, "at least one scorer"), ({"candidates": 0}, "candidates=0"),
                            ({"rounds": "2"}, "rounds='2'"), ({"label": "nope"}, "label column 'nope'")):
        with pytest.raises(ConfigError, match=message):
            opt.optimize("{{ text }}", rows(12), **{"scorers": ["exact:expected"], **kwargs}, progress=False)
    with pytest.raises(ConfigError, match="too few to split"):
        opt.optimize("{{ text }}", rows(2), scorers=["exact:expected"], progress=False)
    with pytest.raises(ConfigError, match="needs column .nope."):
        opt.optimize("{{ nope }}", rows(12), scorers=["exact:expected"], progress=False)
    assert fake.request_count == 0  # all refused before any call
    import llmops_lab

    with pytest.raises(ConfigError, match="proposer= is an optimize option"):
        llmops_lab.batch("{{ text }}", rows(2), proposer="fake:proposer")


def test_optimize_magic(shell, fake, capsys):
    fake.responder = useless
    shell.user_ns["rows"] = pd.DataFrame(rows(12))
    res = shell.run_cell('%llm optimize "{{ text }}" --dataset rows --scorer exact:expected '
                         '--model fake:test-model --proposer fake:proposer --candidates 2 --rounds 1 --out o')
    assert res.success, res.error_in_exec
    o = shell.user_ns["o"]
    assert o is res.result and o.significant is False and len(o.candidates) == 4  # original + 2 + few-shot
    assert "No significant gain on the test split" in capsys.readouterr().out
    from llmops_lab.tracking import registry

    registry.register_version("screen-opt", "{{ text }}")
    ref = shell.run_cell("%llm optimize screen-opt@1 --dataset rows --scorer exact:expected --model fake:test-model "
                         "--proposer fake:proposer --candidates 1 --rounds 1 --few-shot 0")
    assert ref.success and ref.result.name == "screen-opt"  # a registry prompt's candidates are its own versions
    assert ref.result.candidates["version"].iat[0] == 1
    bad = shell.run_cell('%llm optimize "{{ text }}" --dataset rows --scorer exact:expected --candidates many')
    err = capsys.readouterr().err
    assert not bad.success and "'many' is not a whole number" in err and "Traceback" not in err


def test_few_shot_rows_reach_the_registry_masked(fake):
    import secrets

    key = f"sk-proj-{secrets.token_hex(16)}"
    fake.responder = useless
    data = [{"text": f"item {i} {key}", "expected": f"echo: item {i} {key}"} for i in range(12)]
    o = opt.optimize("{{ text }}", data, scorers=["exact:expected"], proposer="fake:proposer", candidates=1,
                     rounds=1, name="opt-secret", progress=False)
    shots = o.candidates.loc[o.candidates["source"] == "few-shot"].iloc[0]
    assert key in shots["text"]  # the kernel keeps the real text
    from llmops_lab.tracking.clients import kernel_client

    client = kernel_client()
    stored = [client.get_prompt_version("opt-secret", v).template for v in o.candidates["version"]]
    assert stored and not any(key in t for t in stored)
    assert len(client.search_prompt_versions("opt-secret", max_results=100)) == len(set(o.candidates["version"]))
