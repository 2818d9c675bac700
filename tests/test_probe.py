"""Counterfactual probes: swaps (both ways, word boundaries, case kept), and probes on the fake echo server
where the outcomes are known by hand: consistent swaps give flip_rate 0, a model pinned to one name flips
every row; the probe's parent run carries the metrics a job gates on."""
import pandas as pd
import pytest

from llmops_lab.evaluation import probe as pr
from llmops_lab.evaluation.swaps import swapper, swappers
from llmops_lab.exceptions import ConfigError


# ---- swaps ---------------------------------------------------------------------------------------------

def test_swaps_go_both_ways_keep_case_and_respect_word_boundaries():
    g = swapper("gender")
    assert g.apply("he said she") == ("she said he", 2)
    assert g.apply("HE and She") == ("SHE and He", 2)
    assert g.apply("Hershey, the heathen, met Manfred") == ("Hershey, the heathen, met Manfred", 0)
    assert g.apply("women and men") == ("men and women", 2)
    assert g.apply("her hat") == ("his hat", 1)  # the documented choice for the ambiguous "her"
    assert g.apply("his hat, him") == ("her hat, her", 2)
    assert g.apply("Michael called Jessica") == ("Jessica called Michael", 2)  # SSA given names
    assert g.apply(None) == (None, 0) and g.apply(3) == (3, 0)


def test_custom_and_builtin_swap_sets():
    city = swappers({"city": [("Paris", "Lagos")]})[0]
    assert city.apply("PARIS to lagos") == ("LAGOS to paris", 2)
    assert [s.attribute for s in swappers(["gender", "names"])] == ["gender", "names"]
    assert swapper("names").apply("Greg met Lakisha") == ("Jamal met Emily", 2)
    for bad in ("colour", {"x": [("a", "a")]}, {"x": ["ab"]}, [], {"x": []}):
        with pytest.raises(ConfigError):
            swappers(bad)


def test_swap_frame_marks_the_rows_it_changed():
    frame = pd.DataFrame({"text": ["he ran", "it ran"], "expected": ["x", "she"], "other": ["he", "he"]})
    out, changed = pr.swap_frame(frame, swapper("gender"), ["text", "expected"])
    assert out["text"].tolist() == ["she ran", "it ran"] and out["expected"].tolist() == ["x", "he"]
    assert out["other"].tolist() == ["he", "he"] and frame["text"].iat[0] == "he ran"  # copy; other column kept
    assert changed == [True, True]


# ---- probes on the fake server ----------------------------------------------------------------------

NAMES = ["Emily", "Greg", "Anne", "Jill", "Allison", "Sarah", "Brad", "Todd", "Matthew", "Neil"]


def test_consistent_swaps_in_input_and_reference_give_flip_rate_zero(fake):
    # echo answers "echo: <text>"; the reference swaps with the input, so exact stays 1 on both sides
    rows = [{"text": f"{n} applied", "expected": f"echo: {n} applied"} for n in NAMES] + \
           [{"text": "nobody applied", "expected": "echo: nobody applied"}]
    p = pr.probe("{{ text }}", data=rows, swaps="names", scorers=["exact:expected"], progress=False)
    s = p.summary().set_index(["attribute", "scorer"]).loc[("names", "exact_expected")]
    assert s["n_swapped"] == 10 and s["flip_rate"] == 0.0 and s["p_value"] == 1.0  # the unswapped row is left out
    assert s["mean_original"] == 1.0 and s["mean_swapped"] == 1.0 and s["test"] == "mcnemar"
    assert p.swapped["names"]["output"].iat[0] == "echo: Lakisha applied"
    assert p.examples().empty and p.metrics()["probe.names.exact_expected.flip_rate"] == 0.0


def test_model_pinned_to_one_name_flips_every_row(fake):
    fake.responder = lambda req: "Emily"  # always the same name, whatever was asked
    rows = [{"question": f"Who is the best candidate, {n} or someone else?", "expected": "Emily"}
            for n in ["Emily"] * 8]
    p = pr.probe("{{ question }}", data=rows, swaps="names", scorers=["exact:expected"], progress=False)
    s = p.summary().iloc[0]
    # original: every answer matches; swapped: the reference is Lakisha and the answer stays Emily
    assert (s["n_swapped"], s["flips"], s["flip_rate"]) == (8, 8, 1.0)
    assert s["p_value"] == pytest.approx(2 / 2 ** 8) and s["p_value"] < 0.01
    assert (s["mean_original"], s["mean_swapped"], s["worst_diff"]) == (1.0, 0.0, -1.0)
    ex = p.examples()
    assert len(ex) == 8 and ex["expected_swapped"].iat[0] == "Lakisha" and ex["output_swapped"].iat[0] == "Emily"
    assert ex["question_swapped"].iat[0].startswith("Who is the best candidate, Lakisha")
    grid = p.comparison("names")
    assert grid.n_rows == 8 and [v.label for v in grid.variants] == ["original", "swapped: names"]
    html = p.widget().static_html()  # the comparison grid of the flipped rows
    assert "Lakisha" in html and "swapped: names" in html

    from llmops_lab.tracking.clients import kernel_client

    run = kernel_client().get_run(p.run_id)
    assert run.data.tags["llmops.kind"] == "probe"
    assert run.data.metrics["probe.names.exact_expected.flip_rate"] == 1.0
    assert run.data.metrics["probe.names.exact_expected.p_value"] == pytest.approx(2 / 256)
    assert "probe.json" in [f.path for f in kernel_client().list_artifacts(p.run_id)]  # the summary table
    children = {kernel_client().get_run(r).data.tags.get("mlflow.parentRunId") for r in p.run_ids.values()}
    assert children == {p.run_id} and set(p.run_ids) == {"original", "names"}

    from llmops_lab.jobs.definition import Gate
    from llmops_lab.jobs.gate import evaluate

    verdict = evaluate([Gate(metric="probe.names.exact_expected.flip_rate", max=0.05)], p.metrics())
    assert verdict.passed is False


def test_a_scorer_pinned_to_one_name_flips_every_row(fake):
    # the echo model follows the swap; a scorer that looks for "Emily" whatever the reference does not
    def says_emily(output):
        return "Emily" in output

    rows = [{"text": f"Emily wrote letter {i}"} for i in range(8)]
    p = pr.probe("{{ text }}", data=rows, swaps="names", scorers=[says_emily], progress=False)
    s = p.summary().iloc[0]
    assert (s["scorer"], s["n_swapped"], s["flip_rate"]) == ("says_emily", 8, 1.0)
    assert s["test"] == "mcnemar" and s["p_value"] == pytest.approx(2 / 256) and s["p_value"] < 0.01


def test_numeric_scorer_uses_the_bootstrap(fake):
    fake.responder = lambda req: "a long answer" if "Emily" in str(req["messages"]) else "short"

    def fullness(output):  # numeric: 0.9 for the long answer, 0.2 for the short one
        return 0.9 if "long" in output else 0.2

    rows = [{"text": f"Emily case {i}"} for i in range(6)]
    p = pr.probe("{{ text }}", data=rows, swaps="names", scorers=[fullness], progress=False)
    s = p.summary().iloc[0]
    assert s["test"] == "bootstrap" and s["flip_rate"] == 1.0 and s["worst_diff"] == pytest.approx(-0.7)
    assert s["ci_low"] == pytest.approx(-0.7) and s["mean_swapped"] == pytest.approx(0.2)


def test_probe_needs_a_scorer_and_known_columns(fake):
    with pytest.raises(ConfigError, match="scorer"):
        pr.probe("{{ text }}", data=[{"text": "he"}], scorers=None, progress=False)
    with pytest.raises(ConfigError, match="no column"):
        pr.probe("{{ text }}", data=[{"text": "he"}], scorers=["exact:text"], columns=["nope"], progress=False)


def test_probe_magic(shell, fake, capsys):
    shell.user_ns["rows"] = pd.DataFrame({"text": ["he waited", "she left", "they stayed"],
                                          "expected": ["echo: he waited", "echo: she left", "echo: they stayed"]})
    res = shell.run_cell('%llm probe "{{ text }}" --dataset rows --swaps gender --scorer exact:expected --out p')
    assert res.success, res.error_in_exec
    p = shell.user_ns["p"]
    assert p is res.result and p.summary()["n_swapped"].tolist() == [2] and p.summary()["flip_rate"].tolist() == [0.0]
    from llmops_lab.tracking import registry

    registry.register_version("screen", "{{ text }}")
    ref = shell.run_cell("%llm probe screen@1 --dataset rows --swaps gender --scorer exact:expected")
    assert ref.success and ref.result.summary()["flip_rate"].tolist() == [0.0]  # a registry prompt's template
    bad = shell.run_cell('%llm probe "{{ text }}" --dataset rows --swaps colour --scorer exact:expected')
    assert not bad.success and "no built-in swap 'colour'" in capsys.readouterr().err


def test_swaps_given_to_run_or_batch_names_probe(bare_project):
    import llmops_lab

    for call in (lambda: llmops_lab.batch("{{ a }}", [{"a": 1}], swaps="gender"),
                 lambda: llmops_lab.run("hi", swaps="gender")):
        with pytest.raises(ConfigError, match="swaps= is a probe option"):
            call()
