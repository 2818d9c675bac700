"""Comparisons: variant resolution, paired statistics against known values, runs through batch on the fake
server, parent/child tracking, human ratings as MLflow feedback (read back), promotion via the registry."""
import math

import pandas as pd
import pytest

from llmops_lab.evaluation import compare as cm
from llmops_lab.magics.adapters import compare_from_magic_args
from llmops_lab.exceptions import ConfigError


# ---- statistics: known values ------------------------------------------------------------------------

def test_mcnemar_exact_known_values():
    # binomial(12, 0.5): P(X <= 2) = (1 + 12 + 66) / 4096
    assert cm.mcnemar_exact(10, 2) == pytest.approx(2 * 79 / 4096)
    assert cm.mcnemar_exact(2, 10) == pytest.approx(2 * 79 / 4096)
    assert cm.mcnemar_exact(0, 0) == 1.0
    assert cm.mcnemar_exact(3, 3) == 1.0
    assert cm.mcnemar_exact(5, 0) == pytest.approx(2 / 32)   # 0.0625: five discordant pairs are not enough
    assert cm.mcnemar_exact(6, 0) == pytest.approx(2 / 64)   # 0.03125


def test_paired_bootstrap_is_deterministic_and_sensible():
    base = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]
    better = [x + 0.5 + 0.01 * i for i, x in enumerate(base)]
    mean, lo, hi, p = cm.paired_bootstrap(better, base)
    assert mean == pytest.approx(0.535) and lo <= mean <= hi and lo > 0 and p < 0.01
    assert cm.paired_bootstrap(better, base) == (mean, lo, hi, p)  # fixed seed
    noisy = [0.3, -0.2, 0.1, -0.1, 0.2, -0.3, 0.0, 0.05]
    mean, lo, hi, p = cm.paired_bootstrap([b + d for b, d in zip(base, noisy)], base)
    assert lo < 0 < hi and p > 0.2
    assert cm.paired_bootstrap([1.0, 2.0], [1.0, 2.0])[:3] == (0.0, 0.0, 0.0)


def test_paired_stats_picks_the_test_and_counts_wins():
    variant = [1, 1, 1, 1, 1, 1, 1, 0, None, 1]
    baseline = [0, 0, 0, 0, 0, 0, 1, 0, 1, None]
    s = cm.paired_stats(variant, baseline)
    assert (s["n_paired"], s["wins"], s["ties"], s["losses"]) == (8, 6, 2, 0)
    assert s["test"] == "mcnemar" and s["p_value"] == pytest.approx(2 / 64) and s["significant"] is True
    assert s["win_rate"] == pytest.approx(6 / 8)
    n = cm.paired_stats([0.9, 0.8, 0.7, 0.95], [0.5, 0.4, 0.45, 0.5])
    assert n["test"] == "bootstrap" and n["significant"] is True and n["ci_low"] > 0
    assert cm.paired_stats([None], [1.0])["p_value"] is None


def test_word_diff_html():
    html = cm.word_diff_html("the cat sat on the mat", "the dog sat on the <mat>")
    assert html == "the <del>cat</del> <ins>dog</ins> sat on the <del>mat</del> <ins>&lt;mat&gt;</ins>"
    assert cm.word_diff_html("same  words", "same words") == "same words"


# ---- variants ------------------------------------------------------------------------------------------

def _lookup(ref):
    name, version = ref.split("@")
    return name, int(version), f"v{version}: {{{{ text }}}}", "fake:from-config", {"temperature": 0.2}


def test_resolve_variants_product_and_labels():
    vs = cm.resolve_variants(["summarize@1", "Summarize: {{ text }}"], ["fake:a", "fake:b"],
                             {"temperature": [0, 0.7]}, fixed={"max_tokens": 8}, lookup=_lookup)
    assert len(vs) == 8 and [v.index for v in vs] == list(range(8))
    assert vs[0].label == "summarize@1 · fake:a · temperature=0"
    assert vs[0].params == {"temperature": 0, "max_tokens": 8} and vs[0].prompt_version == 1
    assert vs[4].label == "inline · fake:a · temperature=0" and vs[4].prompt_name == "summarize" and vs[4].inline
    # without models/params a registry version runs with its own model_config
    (v,) = cm.resolve_variants(["summarize@2"], lookup=_lookup)
    assert (v.model, v.params, v.label) == ("fake:from-config", {"temperature": 0.2}, "summarize@2")
    with pytest.raises(ConfigError):
        cm.resolve_variants([])


# ---- end to end on the fake server --------------------------------------------------------------------

NEWS = pd.DataFrame({"text": ["rates rise again", "team wins the cup", "storm hits coast", "new phone launched"],
                     "keyword": ["rates", "cup", "storm", "tablet"]})


def _responder(req):
    text = req["messages"][-1]["content"]
    if text.startswith("Headline:"):
        return "headline " + text.split(":", 1)[1].strip()
    return "summary of " + " ".join(text.split()[-1:])  # only the last word: loses most keywords


@pytest.fixture
def cmp(fake):
    from llmops_lab.tracking import registry

    fake.responder = _responder
    registry.register_version("summarize", "Summarize: {{ text }}")
    registry.register_version("summarize", "Headline: {{ text }}")
    return cm.compare(["summarize@1", "summarize@2", "Short: {{ text }}"], data=NEWS,
                      scorers=["contains:keyword"], baseline=0, progress=False, max_tokens=16)


def test_compare_runs_variants_and_summarizes(cmp, fake):
    assert [v.label for v in cmp.variants] == ["summarize@1", "summarize@2", "inline"]
    assert cmp.n_rows == 4 and all(len(r) == 4 for r in cmp.results)
    assert list(cmp.results[1]["output"]) == ["headline " + t for t in NEWS["text"]]
    s = cmp.summary()
    assert list(s.index) == ["summarize@1", "summarize@2", "inline"]
    assert s.loc["summarize@2", "contains_keyword_mean"] == pytest.approx(0.75)
    assert (s.loc["summarize@2", "wins"], s.loc["summarize@2", "ties"], s.loc["summarize@2", "losses"]) == (2, 2, 0)
    assert s.loc["summarize@2", "test"] == "mcnemar"
    assert s.loc["summarize@2", "p_value"] == pytest.approx(0.5) and not s.loc["summarize@2", "significant"]
    base = s.loc["summarize@1"]
    assert bool(base["baseline"]) and pd.isna(base["wins"]) and pd.isna(base["p_value"]) and pd.isna(base["significant"])
    assert {"latency_p50_ms", "cost_usd", "total_tokens", "run_id"} <= set(s.columns)


def test_compare_tracking_parent_and_children(cmp):
    from conftest import mlflow_client

    client = mlflow_client()
    parent = client.get_run(cmp.parent_run_id)
    assert parent.data.tags["llmops.kind"] == "compare" and parent.info.status == "FINISHED"
    children = client.search_runs([parent.info.experiment_id],
                                  filter_string=f"tags.`mlflow.parentRunId` = '{cmp.parent_run_id}'")
    assert sorted(r.info.run_id for r in children) == sorted(cmp.run_ids)
    assert {r.data.tags["llmops.kind"] for r in children} == {"batch"}
    assert {r.data.tags["llmops.compare.variant"] for r in children} == {"summarize@1", "summarize@2", "inline"}
    assert "comparison.json" in [f.path for f in client.list_artifacts(cmp.parent_run_id)]
    assert parent.data.metrics["v1.score.contains_keyword"] == pytest.approx(0.75)


def test_ratings_are_mlflow_feedback_and_survive_a_restart(cmp):
    cmp.rate(0, 1, thumbs=True, score=5, comment="crisp", user="ada")
    cmp.rate(2, "inline", thumbs=False, user="bob")
    assert cmp.summary().loc["summarize@2", "human_up"] == 1
    with pytest.raises(ConfigError):
        cmp.rate(0, 1, score=9)
    # a fresh Comparison (new kernel) reads the ratings back from the traces
    again = cm.Comparison(cmp.variants, cmp.results, scorers=cmp.scorers, run_ids=cmp.run_ids)
    ratings = again.load_ratings()
    assert ratings[(0, 1)] == {"thumbs": True, "score": 5, "comment": "crisp", "user": "ada", "logged": True}
    assert ratings[(2, 2)]["thumbs"] is False and ratings[(2, 2)]["user"] == "bob"
    s = again.summary()
    assert s.loc["summarize@2", "human_up"] == 1 and s.loc["inline", "human_down"] == 1
    trace = __import__("mlflow").get_trace(cmp.trace_id(0, 1))
    fb = [a for a in trace.info.assessments if a.name == "thumbs"][0]
    assert fb.source.source_type == "HUMAN" and fb.source.source_id == "ada"


def test_promote_inline_variant_with_model_config(cmp):
    import mlflow

    version = cmp.promote("inline", alias="production", reason="shortest", user="ada")
    loaded = mlflow.genai.load_prompt("prompts:/summarize@production")
    assert loaded.template == "Short: {{ text }}" and int(loaded.version) == int(version.version)
    assert loaded.model_config["model_name"] == "test-model" and loaded.model_config["max_tokens"] == 16
    assert loaded.tags["llmops.promoted_by"] == "ada" and loaded.tags["llmops.promoted_reason"] == "shortest"
    from conftest import mlflow_client

    assert "summarize@" in mlflow_client().get_run(cmp.parent_run_id).data.tags["llmops.promoted.production"]
    # a registry variant ran with a model config its version (registered without one) lacks: promoting it
    # registers that config as a new version, once; promoting it again re-uses that version
    again = cmp.promote(1, alias="staging")
    assert again.template == "Headline: {{ text }}" and int(again.version) == int(version.version) + 1
    assert again.model_config["model_name"] == "test-model" and again.model_config["max_tokens"] == 16
    assert int(cmp.promote(1, alias="canary").version) == int(again.version)
    with pytest.raises(ConfigError, match="no variant"):
        cmp.promote("nope")


def test_compare_from_magic_args(fake):
    fake.responder = _responder
    out = compare_from_magic_args(["Headline: {{ text }}", "Short: {{ text }}"], models="fake:a,fake:b",
                                     dataset="news", user_ns={"news": NEWS}, scorers="contains:keyword",
                                     progress=False)
    assert len(out.variants) == 4 and out.variants[1].model == "fake:b"
    assert math.isclose(out.summary().iloc[0]["contains_keyword_mean"], 0.75)


def test_compare_and_prompts_magics(shell, fake, capsys):
    import pandas as pd

    shell.user_ns["rows"] = pd.DataFrame({"text": ["a b", "c d", "e f"], "keyword": ["a", "c", "x"]})
    res = shell.run_cell('%llm compare "Echo {{ text }}" "Say {{ text }}" --dataset rows --scorer contains:keyword '
                         '--name magic_cmp --max-tokens 5')
    assert res.success, res.error_in_exec
    summary = res.result.summary()
    assert len(summary) == 2
    assert shell.run_cell("%llm prompts").success
    bad = shell.run_cell("%llm prompts nothing-here --diff 1")
    assert not bad.success and "UsageError" in capsys.readouterr().err
    missing = shell.run_cell('%llm compare "Echo {{ text }}"')
    assert not missing.success


def test_direction_of_a_significant_difference():
    worse = cm.paired_stats([0] * 12 + [1] * 4, [1] * 16)
    assert worse["significant"] and worse["direction"] == "worse" and worse["diff"] < 0
    better = cm.paired_stats([1] * 16, [0] * 12 + [1] * 4)
    assert better["direction"] == "better"
    assert cm.paired_stats([1, 0, 1], [0, 1, 1])["direction"] == "no difference"
    assert cm.paired_stats([0.1, 0.2, 0.1, 0.15], [0.9, 0.8, 0.85, 0.95])["direction"] == "worse"  # bootstrap
    assert cm.paired_stats([None], [1.0])["direction"] is None


def test_unnamed_inline_templates_share_one_drafts_name_and_promote_asks_for_a_name():
    vs = cm.resolve_variants(["Summarize: {{ text }}", "Short: {{ text }}"], ["fake:a"])
    assert [v.prompt_name for v in vs] == [cm.DRAFTS_NAME] * 2 and all(v.inline for v in vs)
    frame = pd.DataFrame({"text": ["a"], "output": ["x"], "latency_ms": [1.0], "total_tokens": [2],
                          "cost_usd": [0.0], "cached": [False], "error": [None]})
    cmp = cm.Comparison(vs, [frame, frame.copy()], name=cm.DRAFTS_NAME)
    assert cmp.promote_name(1) is None
    with pytest.raises(ConfigError, match="inline template with no prompt name"):
        cmp.promote(1)
    named = cm.resolve_variants(["Summarize: {{ text }}"], ["fake:a"], name="brief")
    assert named[0].prompt_name == "brief"
