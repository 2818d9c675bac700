import time

import pytest

from conftest import make_project
from llmops_lab import providers
from llmops_lab.config import get_settings, load_settings
from llmops_lab.exceptions import ConfigError, MissingApiKeyError, ProviderError
from llmops_lab.providers.base import ModelId, RetryPolicy, Usage, parse_retry_after
from llmops_lab.providers.pricing import cost_usd

MSG = [{"role": "user", "content": "hello there friend"}]


def _provider(fake, **settings):
    import llmops_lab

    llmops_lab.configure(**settings)
    return providers.resolve(ModelId("fake", "m1"), get_settings())


def test_completion_shape_and_usage(fake):
    c = _provider(fake).complete("m1", MSG, {"temperature": 0, "max_tokens": 50})
    assert c.text == "echo: hello there friend"
    assert (c.usage.prompt_tokens, c.usage.completion_tokens) == (3, 4)
    assert c.finish_reason == "stop" and c.retries == 0 and c.latency_ms > 0
    assert fake.requests[-1]["temperature"] == 0 and fake.requests[-1]["max_tokens"] == 50


def test_retry_after_is_honoured(fake):
    fake.fail_next("429", count=1, retry_after=0.4)
    start = time.perf_counter()
    c = _provider(fake).complete("m1", MSG, {})
    assert c.retries == 1 and time.perf_counter() - start >= 0.4
    assert fake.request_count == 2


def test_5xx_then_success(fake):
    fake.fail_next("500", count=2)
    assert _provider(fake, max_retries=2).complete("m1", MSG, {}).retries == 2


def test_clear_error_after_last_try(fake):
    fake.fail_next("503", count=10)
    with pytest.raises(ProviderError) as err:
        _provider(fake, max_retries=1).complete("m1", MSG, {})
    assert "after 2 tries" in str(err.value) and "503" in str(err.value)
    assert fake.request_count == 2


def test_timeout_is_retried_then_reported(fake):
    fake.fail_next("timeout", count=5)
    with pytest.raises(ProviderError, match="timed out .* after 2 tries"):
        _provider(fake, max_retries=1, timeout=0.3).complete("m1", MSG, {})


def test_connection_reset_is_retried(fake):
    fake.fail_next("reset", count=1)
    assert _provider(fake).complete("m1", MSG, {}).retries == 1


def test_openai_needs_key_before_any_request(fake, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(MissingApiKeyError, match="OPENAI_API_KEY is not set"):
        providers.resolve(ModelId("openai", "gpt-4o-mini"), get_settings())
    assert fake.request_count == 0


def test_openai_provider_uses_env_base_url_and_key(fake, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-123")
    monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
    c = providers.resolve(ModelId("openai", "gpt-4o-mini"), get_settings()).complete("gpt-4o-mini", MSG, {})
    assert c.model_id == ModelId("openai", "gpt-4o-mini")
    assert fake.last_headers["authorization"] == "Bearer sk-test-123"


def test_rejected_key_message_names_variable_not_value(fake_server, project, monkeypatch):
    from fake_openai import FakeOpenAI

    with FakeOpenAI(api_key="sk-right") as srv:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong-secret")
        monkeypatch.setenv("OPENAI_BASE_URL", srv.base_url)
        with pytest.raises(ProviderError) as err:
            providers.resolve(ModelId("openai", "gpt-4o-mini"), get_settings()).complete("gpt-4o-mini", MSG, {})
    assert "OPENAI_API_KEY" in str(err.value) and "sk-wrong" not in str(err.value)


def test_unknown_provider_lists_known(tmp_path):
    with pytest.raises(ConfigError, match="unknown provider 'nope'.*local, openai"):
        providers.resolve(ModelId("nope", "x"), load_settings(make_project(tmp_path)))


def test_endpoint_key_env_missing(tmp_path, monkeypatch):
    settings = load_settings(make_project(tmp_path))
    settings.endpoints["team"] = {"base_url": "http://127.0.0.1:9/v1", "api_key_env": "TEAM_KEY"}
    monkeypatch.delenv("TEAM_KEY", raising=False)
    with pytest.raises(MissingApiKeyError, match="TEAM_KEY"):
        providers.resolve(ModelId("team", "x"), settings)


def test_model_id_parse():
    assert ModelId.parse("openai:gpt-4o-mini") == ModelId("openai", "gpt-4o-mini")
    assert ModelId.parse("vllm:meta/llama:8b") == ModelId("vllm", "meta/llama:8b")
    for bad in ("gpt-4o", ":x", "x:", ""):
        with pytest.raises(ConfigError):
            ModelId.parse(bad)


def test_retry_policy_and_header_parsing():
    policy = RetryPolicy(max_retries=3, base_s=0.5, cap_s=4)
    assert policy.delay(0, retry_after_s=2.5) == 2.5
    assert all(0 <= policy.delay(10) <= 4 for _ in range(50))
    assert parse_retry_after({"retry-after": "3"}) == 3.0
    assert parse_retry_after({"retry-after-ms": "250"}) == 0.25
    assert parse_retry_after({}) is None


def test_pricing_known_unknown_override_and_local():
    usage = Usage(1_000_000, 1_000_000)
    assert cost_usd(ModelId("openai", "gpt-4o-mini"), usage) == pytest.approx(0.75)
    assert cost_usd(ModelId("openai", "some-future-model"), usage) is None
    assert cost_usd(ModelId("vllm", "x"), usage, {"vllm:x": {"input": 1, "output": 2}}) == pytest.approx(3)
    assert cost_usd(ModelId("local", "smollm2-135m"), usage) == 0
