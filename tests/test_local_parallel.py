"""A batch on the embedded model runs on several worker processes (one per core by default).

Real processes throughout: real llama.cpp workers on the real SmolLM2 model; their pids are watched from
outside (``provider.worker_pids``) and one is killed with a real SIGKILL mid-batch.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

import llmops_lab
from llmops_lab.exceptions import LocalModelError
from llmops_lab.providers import local

pytestmark = pytest.mark.slow

PROMPT = "Classify the sentiment of the review as positive or negative. Answer with one word.\n\nReview: {{ text }}"
REVIEWS = pd.DataFrame({"text": ["I loved this film.", "Terrible service, never again.", "Great value, very happy!",
                                 "The battery died after two days.", "A delightful evening.", "Cold food, rude waiter."]})


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@contextlib.contextmanager
def watching(provider: local.LocalProvider, on_new=None):
    """Every worker pid seen while the block runs (sampled every 5 ms); ``on_new(pid)`` for each new one."""
    seen: list[int] = []
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.005):
            for pid in provider.worker_pids:
                if pid not in seen:
                    seen.append(pid)
                    if on_new is not None:
                        on_new(pid)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        done.set()
        thread.join()


def batch(rows: pd.DataFrame, concurrency: int, **params) -> pd.DataFrame:
    return llmops_lab.batch(PROMPT, rows, concurrency=concurrency, temperature=0, cache=False, progress=False,
                            **{"max_tokens": 6, **params})


@pytest.fixture
def local_model(project, monkeypatch):
    monkeypatch.delenv("LLMOPS_LOCAL_WORKERS", raising=False)
    monkeypatch.delenv("LLMOPS_LOCAL_THREADS", raising=False)
    llmops_lab.configure(model="local:smollm2-135m", tracking=False)
    provider = local.provider()
    yield provider
    provider.shutdown()


def test_concurrency_two_uses_two_workers_with_the_same_answers(local_model):
    provider = local_model
    with watching(provider) as serial:
        one = batch(REVIEWS, 1)
    primary = provider.worker_pid
    with watching(provider) as parallel:
        two = batch(REVIEWS, 2)
    assert serial == [primary]  # concurrency 1 never starts a second worker
    assert len(parallel) == 2 and parallel[0] == primary, parallel
    assert list(two["output"]) == list(one["output"]) and all(one["output"]), one["output"]
    # the batch's extra worker exited with it; the primary stays for the next call
    assert provider.worker_pids == [primary]
    assert not alive(parallel[1])
    # a single call after the batch: the primary, all cores again, the same answer as the batch's row
    assert llmops_lab.run(PROMPT, {"text": REVIEWS["text"][0]}, temperature=0, max_tokens=6).text == one["output"][0]
    assert provider.worker_pids == [primary]


def test_worker_cap_from_the_environment(local_model, monkeypatch):
    provider = local_model
    monkeypatch.setenv("LLMOPS_LOCAL_WORKERS", "1")
    with watching(provider) as capped:
        batch(REVIEWS.head(4), 4)
    assert len(capped) == 1
    monkeypatch.setenv("LLMOPS_LOCAL_WORKERS", "3")
    with watching(provider) as three:
        batch(REVIEWS, 4)
    assert len(three) == 3
    assert provider.worker_pids == three[:1]
    monkeypatch.setenv("LLMOPS_LOCAL_WORKERS", "two")
    with pytest.raises(LocalModelError, match=r"LLMOPS_LOCAL_WORKERS='two': use a whole number from 1 up"):
        batch(REVIEWS.head(1), 2)
    monkeypatch.delenv("LLMOPS_LOCAL_WORKERS")
    assert len(batch(REVIEWS.head(2), 2)) == 2  # the failed batch left no count of open batches behind


def test_extra_worker_killed_mid_batch_fails_one_row(local_model):
    """SIGKILL of the batch's second worker: that row gets the one-line message, the batch goes on."""
    provider = local_model
    llmops_lab.run("Say OK.", max_tokens=2, temperature=0)  # the primary is up; the next pid is the extra
    primary = provider.worker_pid
    killed: list[int] = []

    def kill_extra(pid: int) -> None:
        if pid != primary and not killed:
            killed.append(pid)
            threading.Timer(1.0, os.kill, (pid, signal.SIGKILL)).start()  # loaded and generating by then

    rows = pd.DataFrame({"text": [f"Write a long story about a lighthouse keeper number {i}." for i in range(4)]})
    with watching(provider, kill_extra) as seen:
        frame = llmops_lab.batch("{{ text }}", rows, concurrency=2, temperature=0, cache=False, progress=False,
                                 max_tokens=48)
    errors = frame["error"].dropna().tolist()
    assert len(errors) == 1, errors
    assert "stopped by SIGKILL" in errors[0] and "earlier runs are intact" in errors[0]
    assert frame["output"].notna().sum() == 3
    assert killed and len(seen) >= 3  # the killed worker's slot started a new one for the next row
    assert provider.worker_pids == [primary]
    time.sleep(0.1)
    assert [pid for pid in seen if pid != primary and alive(pid)] == []


def test_shutdown_stops_every_worker(local_model):
    provider = local_model
    with watching(provider) as seen:
        batch(REVIEWS, 4)
        assert llmops_lab.run("Say OK.", max_tokens=2, temperature=0).text
    assert len(seen) == 2
    provider.shutdown()  # what atexit does when the process ends
    assert provider.worker_pids == []
    assert [pid for pid in seen if alive(pid)] == []


def test_thread_shares(monkeypatch):
    """A batch row runs on cores // the worker cap (also at concurrency 1); other calls on cores // workers."""
    monkeypatch.delenv("LLMOPS_LOCAL_WORKERS", raising=False)
    monkeypatch.delenv("LLMOPS_LOCAL_THREADS", raising=False)
    cores = local.cpu_cores()
    provider = local.LocalProvider()  # no worker starts: only slots are handed out
    primary = provider._slots[0]
    assert provider._threads(primary) == cores
    batch_handle = provider.async_client()
    row = provider._checkout(batch_handle)
    assert row is primary and provider._threads(row) == max(1, cores // local.max_workers()) == 1
    provider._checkin(row)
    assert provider._threads(primary) == cores
    monkeypatch.setenv("LLMOPS_LOCAL_WORKERS", "1")  # the design before: one worker on every core
    row = provider._checkout(provider.async_client())
    assert provider._threads(row) == cores
    provider._checkin(row)
    monkeypatch.setenv("LLMOPS_LOCAL_THREADS", "3")
    assert provider._threads(primary) == 3
    monkeypatch.setenv("LLMOPS_LOCAL_THREADS", "0")
    with pytest.raises(LocalModelError, match=r"LLMOPS_LOCAL_THREADS='0': use a whole number from 1 up"):
        provider._threads(primary)


def test_logprobs_and_schema_batches_on_two_workers(local_model):
    """Each worker loads its own logprobs instance and compiles the schema grammar: the same as one worker."""
    provider = local_model
    rows = REVIEWS.head(2)
    with watching(provider) as serial:
        one = batch(rows, 1, logprobs=True, top_logprobs=2, max_tokens=4)
    with watching(provider) as parallel:
        two = batch(rows, 2, logprobs=True, top_logprobs=2, max_tokens=4)
    assert len(serial) == 1 and len(parallel) == 2
    assert list(two["output"]) == list(one["output"])
    assert list(two["token_logprobs"]) == list(one["token_logprobs"]) and one["token_logprobs"][0]
    schema = {"type": "object", "properties": {"label": {"type": "string", "enum": ["positive", "negative"]}},
              "required": ["label"]}
    with watching(provider) as parallel:
        structured = batch(rows, 2, schema=schema, max_tokens=16)
    assert len(parallel) == 2
    assert structured["error"].isna().all(), structured["error"].tolist()
    assert set(structured["output"].map(lambda text: json.loads(text)["label"])) <= {"positive", "negative"}
