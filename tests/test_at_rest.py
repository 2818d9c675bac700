"""Encryption at rest with LLMOPS_DATA_KEY (trust/at_rest.py): the spool, staged batch rows and cached answers
hold no plaintext while the key is set; after a flush MLflow has the records, decrypted; without the key (or
with another one) nothing is lost: the writer keeps the records, the cache misses; plaintext from before the key
still reads. Real parts: run()/batch() against the fake server, a byte scan of .llmops/, the `llmops-lab` CLI."""
from __future__ import annotations

import os
import secrets
import sqlite3
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import mlflow_client, spool_files

import llmops_lab
from llmops_lab import tracking
from llmops_lab.core.cache import CachedResponse, ResponseCache
from llmops_lab.exceptions import ConfigError, DataKeyError
from llmops_lab.trust import at_rest

KEY, OTHER_KEY = at_rest.new_key(), at_rest.new_key()
QUESTION = f"purple elephant {secrets.token_hex(4)}"  # fresh per run: a hit can only come from this test
ANSWER = f"giraffe quokka {secrets.token_hex(4)}"
DOWN = "sqlite:////proc/llmops-down/mlflow.db"  # a store that cannot be written: records wait in the spool


def plaintext_hits(home: Path) -> list[str]:
    """Files under ``home`` (spool, staging, cache.db and its WAL) that hold the question or the answer."""
    needles = (QUESTION.encode(), ANSWER.encode())
    return [str(p) for p in sorted(home.rglob("*")) if p.is_file() and p.name != "mlflow.db"
            and any(n in p.read_bytes() for n in needles)]


@pytest.fixture
def echo(fake):
    fake.responder = lambda req: f"{ANSWER} (to: {req['messages'][-1]['content']})"
    return fake


# -- the cipher -----------------------------------------------------------------------------------------------

def test_sealed_values_round_trip_and_name_their_key():
    token = at_rest.seal("secret text", b"ctx", key=KEY)
    assert token.startswith(f"{at_rest.PREFIX}{at_rest.key_id(KEY)}:") and "secret" not in token
    assert token != at_rest.seal("secret text", b"ctx", key=KEY)  # a fresh nonce per value
    assert at_rest.open_text(token, b"ctx", "x", key=KEY) == "secret text"
    assert at_rest.open_text("not sealed", b"ctx", "x", key=KEY) == "not sealed"  # written before the key
    assert at_rest.seal("as is", b"ctx") == "as is"  # no key in the environment: nothing changes


def test_no_key_another_key_or_a_moved_value_is_a_one_line_error():
    token = at_rest.seal("secret text", b"ctx", key=KEY)
    cases = [({"key": None}, "x is encrypted at rest: set LLMOPS_DATA_KEY"),
             ({"key": OTHER_KEY}, f"x was encrypted with another LLMOPS_DATA_KEY (key id {at_rest.key_id(KEY)}"),
             ({"key": KEY, "context": b"elsewhere"}, "x does not decrypt with LLMOPS_DATA_KEY"),
             ({"key": KEY, "token": token[:-6] + "AAAAAA"}, "x does not decrypt with LLMOPS_DATA_KEY")]
    for case, expected in cases:
        with pytest.raises(DataKeyError) as info:
            at_rest.open_text(case.get("token", token), case.get("context", b"ctx"), "x", key=case["key"])
        assert str(info.value).startswith(expected) and "\n" not in str(info.value)
        assert "nothing was dropped" in str(info.value)


@pytest.mark.parametrize("bad", ["hunter2", "A" * 40, at_rest.new_key()[:-2] + "!=", "x" * 44, " ", ""])
def test_a_malformed_key_is_refused_in_one_line(bad, monkeypatch):
    monkeypatch.setenv("LLMOPS_DATA_KEY", bad)
    if not bad:
        return at_rest.check_key()  # empty: no key
    with pytest.raises(DataKeyError, match=r"LLMOPS_DATA_KEY is not a data key .*llmops-lab data-key new"):
        at_rest.check_key()
    assert len(at_rest.new_key()) == 44 and at_rest.new_key() != at_rest.new_key()


def test_a_malformed_key_stops_a_call_before_the_model_is_paid(echo, monkeypatch):
    monkeypatch.setenv("LLMOPS_DATA_KEY", "not-a-key")
    with pytest.raises(DataKeyError):
        llmops_lab.run("hello")
    with pytest.raises(DataKeyError):
        llmops_lab.batch("{{ q }}", [{"q": "a"}], progress=False)
    assert echo.request_count == 0


def test_the_data_key_is_never_a_setting(tmp_path):
    from conftest import make_project

    from llmops_lab.config import load_settings

    with pytest.raises(ConfigError, match="data_key is never a setting.*export LLMOPS_DATA_KEY"):
        llmops_lab.configure(data_key=KEY)
    with pytest.raises(ConfigError, match="data_key is never a setting"):
        load_settings(make_project(tmp_path, {"pyproject.toml": f'[tool.llmops-lab]\ndata_key = "{KEY}"\n'}))
    settings = load_settings(make_project(tmp_path / "p2"), environ={"LLMOPS_DATA_KEY": KEY})
    assert KEY not in str(settings.public_view())


def test_cli_prints_a_fresh_key_alone_on_stdout():
    out = subprocess.run([sys.executable, "-m", "llmops_lab.cli", "data-key", "new"], check=False, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    key = out.stdout.strip()
    assert out.stdout == key + "\n" and at_rest.key_id(key) in out.stderr
    assert at_rest.open_text(at_rest.seal("x", b"c", key=key), b"c", "x", key=key) == "x"


def test_without_a_key_cryptography_is_not_even_imported(tmp_path):
    code = ("import sys; from pathlib import Path\n"
            "from llmops_lab.tracking.spool import Spool, read_records\n"
            "from llmops_lab.core.cache import ResponseCache, CachedResponse\n"
            f"s = Spool(Path({str(tmp_path)!r})); s.append({{'id': '1', 'text': 'hi'}}); s.close()\n"
            f"c = ResponseCache(Path({str(tmp_path)!r}) / 'c.db'); c.put('k', CachedResponse('hi'))\n"
            "assert c.get('k').text == 'hi' and read_records(s.path)[0]['text'] == 'hi'\n"
            "print('cryptography' in sys.modules)")
    env = {k: v for k, v in os.environ.items() if k != "LLMOPS_DATA_KEY"}
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60, env=env)
    assert out.stdout.strip() == "False", out.stderr


# -- the files ------------------------------------------------------------------------------------------------

def test_with_the_key_no_plaintext_is_stored_and_mlflow_gets_it_all_decrypted(echo, project, monkeypatch):
    monkeypatch.setenv("LLMOPS_DATA_KEY", KEY)
    llmops_lab.configure(tracking_uri=DOWN)
    single = llmops_lab.run(f"Say {QUESTION}", name="enc-single")
    frame = llmops_lab.batch("Q: {{ q }}", pd.DataFrame({"q": [QUESTION, f"{QUESTION} again"]}), name="enc-batch",
                             progress=False)
    assert single.text.startswith(ANSWER) and frame["output"].str.startswith(ANSWER).all()
    home = project / ".llmops"
    tracking.flush(3)  # the batch's row chunk is staged; the runs wait for the store
    assert spool_files(project) and list((home / "staging").rglob("*.json")) and (home / "cache.db").exists()
    assert plaintext_hits(home) == []
    spooled = spool_files(project)[0].read_text().splitlines()
    assert spooled and all(line.startswith(at_rest.PREFIX) for line in spooled)
    with sqlite3.connect(home / "cache.db") as db:
        texts = [row[0] for row in db.execute("SELECT text FROM responses")]
    assert len(texts) == 2 and all(at_rest.is_sealed(t) for t in texts)

    # Without the key the writer cannot read the staged rows: the batch record waits, nothing is lost.
    monkeypatch.delenv("LLMOPS_DATA_KEY")
    llmops_lab.configure(tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    assert tracking.flush(4) == 1
    assert "staged batch rows" in tracking.get_tracker().last_error and "set LLMOPS_DATA_KEY" in \
        tracking.get_tracker().last_error
    again = llmops_lab.batch("Q: {{ q }}", pd.DataFrame({"q": [QUESTION]}), name="enc-batch", progress=False)
    assert not again["cached"].any()  # the encrypted rows are misses without the key, not errors

    monkeypatch.setenv("LLMOPS_DATA_KEY", KEY)
    assert tracking.flush(60) == 0
    client = mlflow_client()
    runs = {r.data.tags["llmops.kind"] + ":" + r.info.run_name: r for e in client.search_experiments()
            for r in client.search_runs([e.experiment_id])}
    assert {"single:enc-single", "batch:enc-batch"} <= set(runs)
    output = Path(client.download_artifacts(single.run_id, "output.md", str(project))).read_text()
    assert output.startswith(ANSWER)
    batch_runs = [r for r in client.search_runs([runs["batch:enc-batch"].info.experiment_id])
                  if r.data.tags["llmops.kind"] == "batch"]
    tables = [pd.read_csv(client.download_artifacts(r.info.run_id, "results.csv", str(project))) for r in batch_runs]
    assert sorted(len(t) for t in tables) == [1, 2] and all(t["output"].str.startswith(ANSWER).all() for t in tables)
    assert not (home / "staging").exists() or not list((home / "staging").rglob("*.json"))


def test_the_cache_reads_old_plaintext_rows_and_misses_rows_it_cannot_decrypt(project, monkeypatch):
    path = project / ".llmops" / "cache.db"
    with ResponseCache(path) as cache:
        cache.put("old", CachedResponse("plain answer", tokens='[["plain", -0.1, []]]'))
        monkeypatch.setenv("LLMOPS_DATA_KEY", KEY)
        cache.put("new", CachedResponse("sealed answer", tokens='[["sealed", -0.1, []]]'))
        assert cache.get("old").text == "plain answer" and cache.get("new").tokens == '[["sealed", -0.1, []]]'
        assert {k: v.text for k, v in cache.get_many(["old", "new", "none"]).items()} == \
            {"old": "plain answer", "new": "sealed answer"}
        with sqlite3.connect(path) as db:
            stored = dict(db.execute("SELECT key, text || coalesce(tokens, '') FROM responses"))
        assert "sealed" not in stored["new"] and stored["old"].startswith("plain answer")
        for env in (None, OTHER_KEY):
            if env is None:
                monkeypatch.delenv("LLMOPS_DATA_KEY")
            else:
                monkeypatch.setenv("LLMOPS_DATA_KEY", env)
            assert cache.get("new") is None and set(cache.get_many(["old", "new"])) == {"old"}
        # A row moved to another key does not decrypt there (the cache key is authenticated with it).
        monkeypatch.setenv("LLMOPS_DATA_KEY", KEY)
        with sqlite3.connect(path) as db:
            db.execute("UPDATE responses SET key = 'moved' WHERE key = 'new'")
        assert cache.get("moved") is None


def test_a_spool_left_encrypted_waits_for_its_key_then_is_replayed(echo, project, monkeypatch):
    monkeypatch.setenv("LLMOPS_DATA_KEY", KEY)
    llmops_lab.configure(tracking_uri=DOWN)
    llmops_lab.run(f"Say {QUESTION}", name="left-behind")
    tracking.shutdown(1)  # this kernel ends: its spool file stays, unlocked, for a later replay
    [left] = spool_files(project)
    assert plaintext_hits(project / ".llmops") == []
    with pytest.raises(DataKeyError, match="was encrypted with another LLMOPS_DATA_KEY"):
        monkeypatch.setenv("LLMOPS_DATA_KEY", OTHER_KEY)
        tracking.spool.read_records(left)
    monkeypatch.delenv("LLMOPS_DATA_KEY")  # a second kernel, without the key, leaves a plaintext spool file
    llmops_lab.configure(tracking_uri=DOWN)
    llmops_lab.run("Say hi", name="plain-left")
    tracking.shutdown(1)
    [plain] = [p for p in spool_files(project) if p != left]

    env = {k: v for k, v in os.environ.items() if k not in ("LLMOPS_DATA_KEY", "MLFLOW_TRACKING_URI")}
    flush = [sys.executable, "-m", "llmops_lab.cli", "flush", "--timeout", "20"]
    out = subprocess.run(flush, check=False, cwd=project, env=env, capture_output=True, text=True, timeout=180)
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert out.returncode == 1 and len(errors) == 1, out.stderr
    assert f"spool file {left} is encrypted at rest: set LLMOPS_DATA_KEY" in errors[0]
    assert "nothing was dropped" in errors[0] and left.exists()
    assert "replayed 1 record(s)" in out.stdout and not plain.exists()  # the other file went on

    out = subprocess.run(flush, check=False, cwd=project, env={**env, "LLMOPS_DATA_KEY": KEY}, capture_output=True, text=True,
                         timeout=180)
    assert out.returncode == 0 and "replayed 1 record(s)" in out.stdout, out.stdout + out.stderr
    assert not left.exists()
    llmops_lab.configure(tracking_uri=None)  # the project's own store, where the CLI replayed it
    client = mlflow_client()
    names = [r.info.run_name for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    assert sorted(names) == ["left-behind", "plain-left"]
