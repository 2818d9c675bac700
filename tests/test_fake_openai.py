"""Tests for the fake OpenAI server, driven through the real ``openai`` SDK."""
from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import openai
import pytest
from openai import OpenAI

from fake_openai import FakeOpenAI

MSGS = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello big world"}]


@pytest.fixture
def srv():
    with FakeOpenAI(latency_ms=0) as s:
        yield s


def client(s: FakeOpenAI, **kw) -> OpenAI:
    return OpenAI(base_url=s.base_url, api_key=kw.pop("api_key", "x"), max_retries=0, **kw)


def test_completion_content_and_usage(srv):
    r = client(srv).chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    assert r.object == "chat.completion" and r.model == "gpt-4o-mini"
    assert r.choices[0].message.role == "assistant"
    assert r.choices[0].message.content == "echo: hello big world"
    assert r.choices[0].finish_reason == "stop"
    assert (r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens) == (5, 4, 9)
    assert srv.requests == [{"model": "gpt-4o-mini", "messages": MSGS}]


def test_max_tokens_truncates_and_custom_responder():
    with FakeOpenAI(responder=lambda req: "one two three four " + req["model"]) as s:
        c = client(s)
        r = c.chat.completions.create(model="m", messages=MSGS, max_tokens=3)
        assert r.choices[0].message.content == "one two three" and r.usage.completion_tokens == 3
        r = c.chat.completions.create(model="m", messages=MSGS)
        assert r.choices[0].message.content == "one two three four m"
        s.responder = None  # back to the default echo
        r = c.chat.completions.create(model="m", messages=MSGS)
        assert r.choices[0].message.content == "echo: hello big world"


def test_keep_alive_reuses_one_connection(srv):
    c = client(srv)
    for i in range(30):
        r = c.chat.completions.create(model="m", messages=[{"role": "user", "content": f"n{i}"}])
        assert r.choices[0].message.content == f"echo: n{i}"
    assert srv.connections_opened == 1
    assert srv.request_count == 30


def test_both_paths_models_and_404(srv):
    r = httpx.post(f"http://127.0.0.1:{srv.port}/chat/completions",
                   json={"model": "m", "messages": MSGS})
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"].startswith("echo:")
    assert {m.id for m in client(srv).models.list()} >= {"gpt-4o-mini"}
    r = httpx.post(f"{srv.base_url}/nope", json={})
    assert r.status_code == 404 and set(r.json()["error"]) >= {"message", "type", "code"}
    chunks = list(client(srv).chat.completions.create(model="m", messages=MSGS, stream=True))  # SSE
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "echo: hello big world"
    assert chunks[-1].choices[0].finish_reason == "stop" and all(c.usage is None for c in chunks)  # not asked for


def test_429_with_retry_after(srv):
    srv.fail_next("429", retry_after=7)
    with pytest.raises(openai.RateLimitError) as ei:
        client(srv).chat.completions.create(model="m", messages=MSGS)
    assert ei.value.response.headers["retry-after"] == "7"
    assert ei.value.body["type"] == "rate_limit_error"
    assert client(srv).chat.completions.create(model="m", messages=MSGS).choices  # only one fault
    assert srv.faults_served["429"] == 1


@pytest.mark.parametrize("kind,exc", [("500", openai.InternalServerError),
                                      ("503", openai.InternalServerError)])
def test_5xx(srv, kind, exc):
    srv.fail_next(kind, count=2)
    c = client(srv)
    for _ in range(2):
        with pytest.raises(exc) as ei:
            c.chat.completions.create(model="m", messages=MSGS)
        assert ei.value.status_code == int(kind)
    assert c.chat.completions.create(model="m", messages=MSGS).choices
    assert srv.faults_served[kind] == 2


def _swallow(c: OpenAI) -> None:
    try:
        c.chat.completions.create(model="m", messages=MSGS)
    except openai.APIError:
        pass


def test_timeout_then_recovers_and_stop_is_fast():
    s = FakeOpenAI().start()
    try:
        s.fail_next("timeout")
        c = client(s, timeout=0.5)
        t0 = time.perf_counter()
        with pytest.raises(openai.APITimeoutError):
            c.chat.completions.create(model="m", messages=MSGS)
        assert 0.4 < time.perf_counter() - t0 < 3
        assert c.chat.completions.create(model="m", messages=MSGS).choices
        s.fail_next("timeout")  # leave a request hanging server-side; stop() must cancel it
        hung = threading.Thread(target=_swallow, args=(client(s, timeout=10),), daemon=True)
        hung.start()
        while s.faults_served["timeout"] < 2:
            time.sleep(0.01)
    finally:
        t0 = time.perf_counter()
        s.stop()
    assert time.perf_counter() - t0 < 2.5
    hung.join(timeout=2)  # the hanging request was cancelled and its connection dropped
    assert not hung.is_alive()


def test_reset_is_connection_error(srv):
    srv.fail_next("reset")
    with pytest.raises(openai.APIConnectionError) as ei:
        client(srv).chat.completions.create(model="m", messages=MSGS)
    assert not isinstance(ei.value, openai.APITimeoutError)
    assert srv.faults_served["reset"] == 1


def test_request_count_counts_everything_and_reset(srv):
    c = client(srv, timeout=0.3)
    for kind in ("429", "500", "503", "timeout", "reset"):
        srv.fail_next(kind)
        with pytest.raises(openai.APIError):
            c.chat.completions.create(model="m", messages=MSGS)
    c.chat.completions.create(model="m", messages=MSGS)
    assert srv.request_count == 6 and len(srv.requests) == 6
    assert all(v == 1 for v in srv.faults_served.values())
    srv.reset()
    assert srv.request_count == 0 and srv.requests == [] and sum(srv.faults_served.values()) == 0


def test_random_faults_are_seeded():
    def run() -> list[str]:
        out = []
        with FakeOpenAI(fault_rate=0.5, faults=("429", "500"), seed=3) as s:
            c = client(s)
            for _ in range(40):
                try:
                    c.chat.completions.create(model="m", messages=MSGS)
                    out.append("ok")
                except openai.APIStatusError as e:
                    out.append(str(e.status_code))
            assert s.faults_served["429"] + s.faults_served["500"] == 40 - out.count("ok")
        return out

    a = run()
    assert a == run()
    assert 5 < a.count("ok") < 35 and "429" in a and "500" in a


def test_latency_respected(srv):
    c = client(srv)
    c.chat.completions.create(model="m", messages=MSGS)  # warm up connection
    srv.latency_ms = 100
    t0 = time.perf_counter()
    c.chat.completions.create(model="m", messages=MSGS)
    assert time.perf_counter() - t0 >= 0.1


def test_auth_and_last_headers():
    with FakeOpenAI(api_key="sk-test") as s:
        with pytest.raises(openai.AuthenticationError) as ei:
            client(s, api_key="wrong").chat.completions.create(model="m", messages=MSGS)
        assert ei.value.status_code == 401 and ei.value.body["code"] == "invalid_api_key"
        assert s.last_headers["authorization"] == "Bearer wrong"
        r = client(s, api_key="sk-test").chat.completions.create(model="m", messages=MSGS)
        assert r.choices[0].message.content == "echo: hello big world"
        assert s.last_headers["authorization"] == "Bearer sk-test"
        assert s.request_count == 2


def test_concurrency_16_threads(srv):
    srv.latency_ms = 50
    clients = [client(srv) for _ in range(16)]
    errors: list[BaseException] = []

    def work(c: OpenAI) -> None:
        try:
            for _ in range(10):
                c.chat.completions.create(model="m", messages=MSGS)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=work, args=(c,)) for c in clients]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    assert not errors and srv.request_count == 160
    assert elapsed < 3.0, elapsed  # serial would be 16 * 10 * 0.05 = 8 s; ideal ~0.5 s


def test_script_mode():
    script = Path(__file__).with_name("fake_openai.py")
    p = subprocess.Popen([sys.executable, str(script), "--port", "0", "--latency-ms", "5"],
                         stdout=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline().strip()
        assert line.startswith("READY http://127.0.0.1:") and line.endswith("/v1")
        c = OpenAI(base_url=line.split()[1], api_key="x", max_retries=0)
        assert c.chat.completions.create(model="m", messages=MSGS).choices[0].message.content
        p.terminate()
        assert p.wait(timeout=5) == 0
    finally:
        if p.poll() is None:
            p.kill()
