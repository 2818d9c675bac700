"""Prompt management: references, listing, diffs, load_prompt with model config, promotion via aliases."""
import pytest

import llmops_lab
from llmops_lab.tracking import registry
from llmops_lab.exceptions import ConfigError


def test_parse_ref_and_is_ref():
    assert registry.parse_ref("summarize@2") == registry.PromptRef("summarize", version=2)
    assert registry.parse_ref("summarize@production") == registry.PromptRef("summarize", alias="production")
    assert registry.parse_ref("prompts:/summarize/3") == registry.PromptRef("summarize", version=3)
    assert registry.parse_ref("summarize") == registry.PromptRef("summarize")
    assert registry.is_ref("summarize@1") and registry.is_ref("prompts:/x@prod")
    assert not registry.is_ref("Summarize in 10 words: {{ text }}") and not registry.is_ref("summarize")
    with pytest.raises(ConfigError, match="NAME@VERSION"):
        registry.parse_ref("bad ref@@")


def test_model_config_round_trip():
    config = registry.model_config_for("openai:gpt-4o-mini", {"temperature": 0, "max_tokens": 32, "seed": 7,
                                                              "stop": "\n"})
    assert config == {"provider": "openai", "model_name": "gpt-4o-mini", "temperature": 0, "max_tokens": 32,
                      "stop_sequences": ["\n"], "extra_params": {"seed": 7}}
    model, params = registry.params_from_config(config)
    assert model == "openai:gpt-4o-mini"
    assert params == {"temperature": 0, "max_tokens": 32, "stop": ["\n"], "seed": 7}


def test_promote_load_list_diff(fake):
    import mlflow

    v1 = registry.register_version("summarize", "Summarize: {{ text }}")
    assert registry.register_version("summarize", "Summarize: {{ text }}").version == v1.version  # no duplicate
    promoted = registry.promote_prompt("summarize", "Summarize briefly: {{ text }}", model="fake:m2",
                                       params={"temperature": 0, "max_tokens": 16}, reason="wins on accuracy",
                                       user="ada")
    assert int(promoted.version) == 2 and promoted.tags["llmops.promoted_by"] == "ada"
    assert promoted.tags["llmops.promoted_reason"] == "wins on accuracy"

    loaded = mlflow.genai.load_prompt("prompts:/summarize@production")
    assert int(loaded.version) == 2 and loaded.model_config["model_name"] == "m2"

    app = llmops_lab_load("summarize@production")
    assert (app.version, app.model, app.params) == (2, "fake:m2", {"temperature": 0, "max_tokens": 16})
    assert app.render(text="hello") == "Summarize briefly: hello"
    result = app(text="hello")
    assert result.text and fake.requests[-1]["model"] == "m2"
    assert fake.requests[-1]["max_tokens"] == 16

    # moving the alias changes what the application runs, with no code change
    registry.promote_prompt("summarize", "Summarize: {{ text }}", alias="production")
    assert llmops_lab_load("summarize@production").template == "Summarize: {{ text }}"

    # the app's call is logged against version 2 (same text) and the promotion re-used version 1: no new one
    from llmops_lab import tracking

    assert tracking.flush(60) == 0
    table = registry.list_prompts()
    row = table.set_index("name").loc["summarize"]
    assert row["versions"] == [1, 2]
    assert "production→" in row["aliases"]

    diff = registry.diff_versions("summarize", 1, 2)
    assert "-Summarize: {{ text }}" in diff and "+Summarize briefly: {{ text }}" in diff and "+# model: fake:m2" in diff
    assert "identical" in registry.diff_versions("summarize", 1, 1)

    with pytest.raises(ConfigError, match="not found"):
        llmops_lab.load_prompt("summarize@staging")
    with pytest.raises(ConfigError, match="alias"):
        registry.promote_prompt("summarize", "x {{ text }}", alias="latest")


def llmops_lab_load(ref):
    import llmops_lab

    return llmops_lab.load_prompt(ref)


def test_prompts_from_magic_args(fake):
    from llmops_lab.magics.adapters import prompts_from_magic_args

    registry.register_version("greet", "Hello {{ name }}")
    registry.register_version("greet", "Hi {{ name }}!")
    assert list(prompts_from_magic_args()["name"]) == ["greet"]
    assert prompts_from_magic_args("greet").iloc[0]["versions"] == [1, 2]
    diff = prompts_from_magic_args("greet", diff=("1", "2"))
    assert isinstance(diff, str) and "+Hi {{ name }}!" in diff and "<pre>" in diff._repr_html_()
    with pytest.raises(ConfigError, match="no prompt named"):
        prompts_from_magic_args("nope")
    with pytest.raises(ConfigError, match="usage"):
        prompts_from_magic_args(None, diff=("1", "2"))
