"""The sqlite response cache: key canonical form, round-trips, threads, two processes, kill -9, corruption."""
from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import llmops_lab.core.cache as cache_module
from llmops_lab.core.cache import CachedResponse, ResponseCache, cache_key
from llmops_lab.exceptions import ConfigError
from llmops_lab.providers.base import Completion, ModelId, Usage

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Summarize: café ☕"}]
PARAMS = {"temperature": 0.0, "max_tokens": 64, "seed": None}


def base_key(**change):
    args = {"provider": "openai", "endpoint": "https://api.example.com/v1", "model": "gpt-4o-mini",
            "params": PARAMS, "messages": MESSAGES}
    args.update(change)
    return cache_key(**args)


def answer(text="Hello!", **change) -> CachedResponse:
    values = dict(prompt_tokens=8, completion_tokens=2, finish_reason="stop", response_model="gpt-4o-mini-2024",
                  latency_ms=412.5, created_at=1_700_000_000.25)
    values.update(change)
    return CachedResponse(text, **values)


# -- key ------------------------------------------------------------------------------------------

def test_key_is_stable_and_canonical():
    key = base_key()
    assert len(key) == 64 and int(key, 16) >= 0
    # Golden value: the canonical form must not drift silently (bump KEY_VERSION when it changes on purpose).
    assert key == "3f6bbb69dc21722657953d42e8979acfda02aa2eabbfe87a84d4fb1be9089ecf"
    reordered = {"seed": None, "max_tokens": 64, "temperature": 0.0}
    assert base_key(params=reordered) == key
    assert base_key(params={"max_tokens": 64, "temperature": 0.0}) == key  # None dropped
    assert base_key(params={"max_tokens": 64, "temperature": 0.0, "top_p": None, "stop": None}) == key
    swapped = [{"content": m["content"], "role": m["role"]} for m in MESSAGES]
    assert base_key(messages=swapped) == key


@pytest.mark.parametrize("change", [
    {"provider": "vllm"},
    {"endpoint": None},
    {"endpoint": "https://api.example.com/v2"},
    {"model": "gpt-4o"},
    {"params": {"temperature": 0.5, "max_tokens": 64}},
    {"params": {"temperature": 0.0, "max_tokens": 65}},
    {"params": {"temperature": 0.0, "max_tokens": 64, "seed": 1}},
    {"params": {"temperature": 0.0}},
    {"messages": MESSAGES[1:]},
    {"messages": MESSAGES[::-1]},
    {"messages": [MESSAGES[0], {"role": "user", "content": "Summarize: cafe ☕"}]},
    {"messages": [MESSAGES[0], {"role": "assistant", "content": MESSAGES[1]["content"]}]},
    {"messages": MESSAGES + [{"role": "user", "content": ""}]},
])
def test_key_changes_with_anything_sent(change):
    assert base_key(**change) != base_key()


def test_key_rejects_values_that_are_not_json():
    with pytest.raises(ConfigError, match="plain JSON") as err:
        base_key(params={"temperature": object()})
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError):
        base_key(params={"temperature": float("nan")})


# -- round trips ----------------------------------------------------------------------------------

def test_put_get_round_trip(tmp_path):
    with ResponseCache(tmp_path / ".llmops" / "cache.db") as cache:  # creates the folder
        assert cache.get("missing") is None and len(cache) == 0 and bool(cache)
        cache.put("k1", answer())
        got = cache.get("k1")
        assert got == answer() and isinstance(got, CachedResponse)
        with pytest.raises(Exception):
            got.text = "mutated"  # frozen
        cache.put("k1", answer("Replaced"))  # a put replaces
        assert cache.get("k1").text == "Replaced" and len(cache) == 1 and "k1" in cache and "k2" not in cache
    assert cache.get("k1").text == "Replaced"  # closed by the with block, reopened on use
    cache.close()
    # reopened from disk
    assert ResponseCache(tmp_path / ".llmops" / "cache.db").get("k1") == answer("Replaced")


def test_default_cache_is_under_the_project_home(bare_project):
    cache = ResponseCache.default()
    assert cache.path.resolve() == (bare_project / ".llmops" / "cache.db").resolve() and cache.path.exists()
    cache.close()


def test_get_many_and_put_many(tmp_path, monkeypatch):
    cache = ResponseCache(tmp_path / "cache.db")
    items = {f"key{i}": answer(f"answer {i}", completion_tokens=i) for i in range(1200)}
    assert cache.put_many(items) == 1200  # a mapping
    assert cache.put_many([("extra", answer("x"))]) == 1 and cache.put_many([]) == 0  # pairs, empty
    assert len(cache) == 1201
    wanted = [f"key{i}" for i in range(0, 1300, 3)] + ["key3", "nope"]  # > one chunk, misses, a duplicate
    got = cache.get_many(wanted)
    assert set(got) == {f"key{i}" for i in range(0, 1200, 3)}
    assert all(got[k] == items[k] for k in got)
    assert cache.get_many([]) == {}
    monkeypatch.setattr(cache_module, "_CHUNK", 7)  # chunk boundaries give the same answer
    assert cache.get_many(wanted) == got
    cache.clear()
    assert len(cache) == 0 and cache.get_many(wanted) == {}


def test_only_successful_answers_are_stored(tmp_path):
    cache = ResponseCache(tmp_path / "cache.db")
    with pytest.raises(TypeError, match="successful answers only"):
        cache.put("k", RuntimeError("429 Too Many Requests"))
    with pytest.raises(TypeError):
        cache.put_many([("a", answer()), ("b", None)])
    assert len(cache) == 0  # nothing of the failed put_many was written


def test_completion_conversions():
    model = ModelId.parse("openai:gpt-4o-mini")
    completion = Completion("Hi", model, Usage(5, 1), 321.0, finish_reason="stop", response_model="gpt-4o-mini-x")
    stored = CachedResponse.from_completion(completion)
    assert (stored.text, stored.prompt_tokens, stored.completion_tokens, stored.finish_reason,
            stored.response_model, stored.latency_ms) == ("Hi", 5, 1, "stop", "gpt-4o-mini-x", 321.0)
    assert abs(stored.created_at - time.time()) < 5
    hit = stored.to_completion(model, "api.example.com")
    assert (hit.text, hit.usage, hit.latency_ms, hit.endpoint_host) == ("Hi", Usage(5, 1), 0.0, "api.example.com")
    assert hit.extra == {"cached": True, "cached_latency_ms": 321.0, "cached_at": stored.created_at}


def test_wal_mode_and_timing(tmp_path):
    cache = ResponseCache(tmp_path / "cache.db")
    keys = [cache_key("openai", None, "m", {"temperature": 0}, [{"role": "user", "content": f"row {i}"}])
            for i in range(2000)]
    start = time.perf_counter()
    cache.put_many((k, answer("x" * 300)) for k in keys)
    put_ms = (time.perf_counter() - start) * 1000
    timings = []
    for _ in range(10):
        start = time.perf_counter()
        found = cache.get_many(keys)
        timings.append((time.perf_counter() - start) * 1000)
    assert len(found) == 2000 and all(found[k].text == "x" * 300 for k in keys)
    print(f"\n[cache timing] put_many 2,000: {put_ms:.1f} ms; get_many 2,000 keys: best {min(timings):.1f} ms, "
          f"first {timings[0]:.1f} ms")
    other = sqlite3.connect(tmp_path / "cache.db")
    assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert cache._conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    assert cache._conn.execute("PRAGMA busy_timeout").fetchone()[0] == cache_module.BUSY_TIMEOUT_MS
    other.close()


# -- concurrency ----------------------------------------------------------------------------------

def test_threads(tmp_path):
    cache = ResponseCache(tmp_path / "cache.db")
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def worker(n: int) -> None:
        try:
            barrier.wait()
            for i in range(100):
                key = f"t{n}-{i}"
                cache.put(key, answer(key))
                assert cache.get(key).text == key
                if i % 10 == 9:
                    cache.put_many((f"t{n}-bulk{i}-{j}", answer(str(j))) for j in range(10))
                    assert len(cache.get_many([f"t{n}-{j}" for j in range(i + 1)])) == i + 1
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(cache) == 8 * (100 + 10 * 10)


CHILD = textwrap.dedent("""
    import os, signal, sys
    from llmops_lab.core.cache import CachedResponse, ResponseCache
    cache = ResponseCache(sys.argv[1])
    mode, count = sys.argv[2], int(sys.argv[3])
    if mode == "race":
        print("ready", flush=True)
        for i in range(count):
            cache.put(f"child-{i}", CachedResponse(f"child {i}", 1, 2, "stop", "m", 10.0, 1.0))
            if i % 50 == 0:
                cache.put_many((f"child-bulk-{i}-{j}", CachedResponse("b", created_at=1.0)) for j in range(5))
        print("done", flush=True)
    else:  # "kill": killed right after the puts return, nothing closed or flushed
        cache.put_many((f"bulk-{i}", CachedResponse(f"bulk {i}", created_at=1.0)) for i in range(count))
        cache.put("last", CachedResponse("last one", 3, 4, "stop", "m", 99.0, 2.0))
        os.kill(os.getpid(), signal.SIGKILL)
""")


def test_two_processes_write_at_once(tmp_path):
    path = tmp_path / "cache.db"
    ResponseCache(path).close()
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path), "race", "400"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "ready"
    cache = ResponseCache(path)
    for i in range(400):
        cache.put(f"parent-{i}", answer(f"parent {i}"))
        if i % 50 == 0:
            cache.put_many((f"parent-bulk-{i}-{j}", answer()) for j in range(5))
    out, err = child.communicate(timeout=120)
    assert child.returncode == 0, err
    assert out.strip() == "done"
    parent = cache.get_many([f"parent-{i}" for i in range(400)])
    kid = cache.get_many([f"child-{i}" for i in range(400)])
    assert len(parent) == 400 and len(kid) == 400
    assert kid["child-399"].text == "child 399" and parent["parent-7"].text == "parent 7"
    assert len(cache) == 2 * (400 + 8 * 5)


def test_new_file_opened_by_three_processes_at_once(tmp_path):
    path = tmp_path / "fresh" / "cache.db"
    children = [subprocess.Popen([sys.executable, "-c", CHILD, str(path), "race", "60"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
    assert len(ResponseCache(path).get_many([f"child-{i}" for i in range(60)])) == 60


def test_an_interrupted_write_releases_the_lock(tmp_path, monkeypatch):
    monkeypatch.setattr(cache_module, "BUSY_TIMEOUT_MS", 500)  # fail fast if the lock were kept
    cache = ResponseCache(tmp_path / "cache.db")

    def interrupted(conn):
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(cache_module._INSERT, cache_module._row("lost", answer()))
        raise KeyboardInterrupt  # Ctrl-C in the notebook in the middle of a write

    with pytest.raises(KeyboardInterrupt):
        cache._run(interrupted)
    cache.put("kept", answer())
    other = ResponseCache(tmp_path / "cache.db")  # a second writer is not blocked, and sees the put
    other.put("other", answer())
    assert other.get("kept") == answer() and other.get("lost") is None and len(cache) == 2


def test_put_is_durable_when_the_process_is_killed(tmp_path):
    path = tmp_path / "cache.db"
    child = subprocess.run([sys.executable, "-c", CHILD, str(path), "kill", "250"],
                           capture_output=True, text=True, timeout=120)
    assert child.returncode == -signal.SIGKILL, child.stderr
    cache = ResponseCache(path)
    assert cache.get("last") == CachedResponse("last one", 3, 4, "stop", "m", 99.0, 2.0)
    assert len(cache.get_many([f"bulk-{i}" for i in range(250)])) == 250


# -- corruption -----------------------------------------------------------------------------------

def test_garbage_file_is_a_one_line_config_error(tmp_path):
    path = tmp_path / "cache.db"
    path.write_bytes(b"this is not a database, just bytes\n" * 200)
    with pytest.raises(ConfigError) as err:
        ResponseCache(path)
    message = str(err.value)
    assert str(path) in message and "delete it" in message and "\n" not in message


def damage(path, first_page: int) -> None:
    with sqlite3.connect(path) as conn:  # fold the WAL into the file so the damage below is what is read
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(path.read_bytes())
    for offset in range(4096 * first_page, len(data), 4096):  # page headers and first cells overwritten
        data[offset:offset + 64] = b"\xff" * 64
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("first_page", [1, 150])
def test_damaged_pages_are_a_config_error(tmp_path, first_page):
    path = tmp_path / "cache.db"
    with ResponseCache(path) as cache:
        cache.put_many((f"k{i}", answer("y" * 500)) for i in range(2000))
    damage(path, first_page)
    if first_page > 1:
        cache = ResponseCache(path)  # opens: the first pages are intact; the damage shows on reading
    with pytest.raises(ConfigError, match="delete it") as err:
        cache = ResponseCache(path)
        cache.get_many([f"k{i}" for i in range(2000)])
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_a_folder_in_the_way_is_a_config_error(tmp_path):
    (tmp_path / "cache.db").mkdir()
    with pytest.raises(ConfigError, match="cache.db"):
        ResponseCache(tmp_path / "cache.db")
