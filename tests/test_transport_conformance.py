"""The two batch transports (providers/lean_http.py and the openai SDK) observed alike, on the fake server.

Every test runs once per transport with the same expectations: what the endpoint receives (body, auth,
organisation and project headers), the parsed Completion, retries and waits, the adaptive limit's signal and
the exact ProviderError message of each failure.
"""
import asyncio
import time

import pytest

import llmops_lab
from llmops_lab import providers
from llmops_lab.config import get_settings
from llmops_lab.exceptions import ProviderError
from llmops_lab.providers.base import ModelId
from llmops_lab.providers.openai_compat import parse_logprobs

MSG = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello there friend"}]
CLIENTS = {"lean": "LeanClient", "sdk": "AsyncOpenAI"}


@pytest.fixture(params=["lean", "sdk"])
def transport(request, fake, monkeypatch):
    for name in ("OPENAI_ORG_ID", "OPENAI_PROJECT_ID"):
        monkeypatch.delenv(name, raising=False)
    providers._clients.clear()  # providers are cached per settings: each test builds its own
    yield request.param
    providers._clients.clear()


def call(transport, params=None, *, model="m1", provider="fake", **settings):
    """One ``acomplete`` as the batch runner makes it; returns (Completion or ProviderError, rate-limit calls,
    seconds taken)."""
    llmops_lab.configure(batch_transport=transport, **settings)
    p = providers.resolve(ModelId(provider, model), get_settings())
    limited = []

    async def main():
        client = p.async_client()
        assert type(client).__name__ == CLIENTS[transport]
        try:
            return await p.acomplete(client, model, MSG, params or {}, on_rate_limit=lambda: limited.append(1))
        except ProviderError as err:
            return err
        finally:
            await client.close()

    start = time.perf_counter()
    out = asyncio.run(main())
    return out, limited, time.perf_counter() - start


def where(fake):
    return f"fake:m1 ({fake.host}:{fake.port})"


def test_success_parses_the_same_completion(transport, fake):
    params = {"temperature": 0, "max_tokens": 50, "stop": "zzz", "seed": 7}
    c, limited, _ = call(transport, params)
    assert c.text == "echo: hello there friend" and c.finish_reason == "stop"
    assert (c.usage.prompt_tokens, c.usage.completion_tokens) == (5, 4)
    assert c.response_model == "m1" and c.retries == 0 and c.latency_ms > 0 and limited == []
    assert c.endpoint_host == f"{fake.host}:{fake.port}" and str(c.model_id) == "fake:m1" and c.tokens is None
    # the body the endpoint gets is the same (a str stop becomes a list, None params are dropped)
    assert fake.requests[-1] == {"model": "m1", "messages": MSG, "temperature": 0, "max_tokens": 50,
                                 "stop": ["zzz"], "seed": 7}
    raw = c.extra["raw"]
    raw = raw.model_dump(exclude_none=True) if hasattr(raw, "model_dump") else raw  # what `%llm last` shows
    assert raw["choices"][0]["message"]["content"] == c.text and raw["usage"]["total_tokens"] == 9


def test_logprobs_are_parsed_and_kept_out_of_the_raw_copy(transport, fake):
    from fake_openai import fake_logprobs

    c, _, _ = call(transport, {"logprobs": True, "top_logprobs": 2})
    assert c.tokens == parse_logprobs(fake_logprobs("echo: hello there friend", 2))
    raw = c.extra["raw"]
    choice = raw.choices[0].logprobs if hasattr(raw, "choices") else raw["choices"][0]["logprobs"]
    assert choice is None


def test_auth_organisation_and_project_headers(transport, fake, monkeypatch):
    monkeypatch.setenv("FAKE_KEY", "sk-conformance-123")
    monkeypatch.setenv("OPENAI_ORG_ID", "org-42")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj-7")
    get_settings().endpoints["fake"] = {"base_url": fake.base_url, "api_key_env": "FAKE_KEY"}
    fake.api_key = "sk-conformance-123"
    c, _, _ = call(transport)
    assert c.text == "echo: hello there friend"
    seen = fake.headers_seen[-1]
    assert seen["authorization"] == "Bearer sk-conformance-123"
    assert (seen["openai-organization"], seen["openai-project"]) == ("org-42", "proj-7")
    assert seen["content-type"] == "application/json" and seen["user-agent"]


def test_no_organisation_header_unless_configured(transport, fake):
    call(transport)
    assert not {"openai-organization", "openai-project"} & set(fake.headers_seen[-1])


def test_wrong_key_is_401_with_the_same_message(transport, fake, monkeypatch):
    monkeypatch.setenv("FAKE_KEY", "sk-wrong")
    get_settings().endpoints["fake"] = {"base_url": fake.base_url, "api_key_env": "FAKE_KEY"}
    fake.api_key = "sk-right"
    err, _, _ = call(transport)
    assert str(err) == f"{where(fake)} rejected FAKE_KEY (401 unauthorized): check the key"
    assert fake.request_count == 1  # not retried


def test_unknown_path_is_404_with_the_same_message(transport, fake):
    get_settings().endpoints["fake"] = {"base_url": fake.base_url.replace("/v1", "/nowhere/v1")}
    err, _, _ = call(transport)
    assert str(err) == f"{where(fake)}: model or endpoint not found (404): check the model name and base_url"


def test_429_honours_retry_after_and_tells_the_limit(transport, fake):
    fake.fail_next("429", count=1, retry_after=0.4)
    c, limited, took = call(transport)
    assert c.retries == 1 and limited == [1] and took >= 0.4 and fake.request_count == 2


def test_500_then_success(transport, fake):
    fake.fail_next("500", count=2)
    c, limited, _ = call(transport)
    assert c.text == "echo: hello there friend" and c.retries == 2 and limited == []


def test_500_that_never_ends(transport, fake):
    fake.fail_next("500", count=10)
    err, _, _ = call(transport, max_retries=1)
    assert str(err) == (f"{where(fake)} failed after 2 tries: HTTP 500 Error code: 500 - The server had an "
                        "error (fake).: try again later, lower the concurrency, or raise max_retries=")
    assert fake.request_count == 2


def test_429_that_never_ends_tells_the_limit_each_retry(transport, fake):
    fake.fail_next("429", count=10, retry_after=0)
    err, limited, _ = call(transport, max_retries=2)
    assert str(err).startswith(f"{where(fake)} failed after 3 tries: HTTP 429 Error code: 429 - Rate limit")
    assert limited == [1, 1]  # not on the last answer: that one ends the call


def test_timeout_is_retried_then_reported(transport, fake):
    fake.fail_next("timeout", count=5)
    err, _, took = call(transport, max_retries=1, timeout=0.3)
    assert str(err) == (f"fake:m1 timed out ({fake.host}:{fake.port}) after 2 tries: check the endpoint is up, "
                        "or raise timeout= / max_retries=")
    assert 0.6 <= took < 5


def test_timeout_then_success(transport, fake):
    fake.fail_next("timeout", count=1)
    c, _, _ = call(transport, timeout=0.3)
    assert c.retries == 1 and c.text == "echo: hello there friend"


def test_connection_reset_then_success(transport, fake):
    fake.fail_next("reset", count=1)
    c, _, _ = call(transport)
    assert c.retries == 1 and c.text == "echo: hello there friend"


def test_connection_reset_every_time(transport, fake):
    fake.fail_next("reset", count=10)
    err, _, _ = call(transport, max_retries=1)
    assert str(err) == (f"fake:m1 could not connect ({fake.host}:{fake.port}) after 2 tries: check the endpoint "
                        "is up, or raise timeout= / max_retries=")


def test_malformed_json_body_is_one_clear_error(transport, fake):
    fake.fail_next("malformed")
    err, _, _ = call(transport)
    assert isinstance(err, ProviderError)
    assert str(err) == (f"{where(fake)} answered with a body that is not a JSON object: check that base_url "
                        "points at an OpenAI-compatible API")


def test_nothing_listening(transport, fake):
    import socket

    with socket.socket() as s:  # a port nobody serves
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    get_settings().endpoints["fake"] = {"base_url": f"http://127.0.0.1:{port}/v1"}
    err, _, _ = call(transport, max_retries=0)
    assert str(err) == (f"fake:m1 could not connect (127.0.0.1:{port}) after 1 tries: check the endpoint is up, "
                        "or raise timeout= / max_retries=")


def test_sync_call_names_a_malformed_body_too(fake):
    fake.fail_next("malformed")
    p = providers.resolve(ModelId("fake", "m1"), get_settings())
    with pytest.raises(ProviderError, match="not a JSON object"):
        p.complete("m1", MSG, {})


def test_batches_use_the_lean_transport_by_default(fake):
    import pandas as pd

    providers._clients.clear()
    res = llmops_lab.batch("say {{ x }}", pd.DataFrame({"x": ["a", "b", "c"]}), progress=False, cache=False)
    assert list(res["output"]) == ["echo: say a", "echo: say b", "echo: say c"]
    assert all(h["user-agent"].startswith("llmops-lab (lean;") for h in fake.headers_seen)


def test_a_query_string_base_url_keeps_the_sdk(fake):
    get_settings().endpoints["fake"] = {"base_url": fake.base_url + "?api-version=2024-06-01"}
    providers._clients.clear()
    p = providers.resolve(ModelId("fake", "m1"), get_settings())
    assert p.transport == "sdk"


def test_batch_transport_setting_is_checked():
    from llmops_lab.exceptions import ConfigError

    with pytest.raises(ConfigError, match="use lean .* or sdk"):
        llmops_lab.configure(batch_transport="curl")


def test_proxy_from_the_environment_is_used_and_no_proxy_bypasses_it(transport, fake, monkeypatch):
    from teamserver import free_port

    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    err, _, _ = call(transport, max_retries=0)
    assert isinstance(err, ProviderError) and "could not connect" in str(err), err
    assert fake.requests == []  # it went to the proxy, not to the endpoint
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    providers._clients.clear()
    c, _, _ = call(transport, max_retries=0)
    assert not isinstance(c, ProviderError) and c.text == "echo: hello there friend"
