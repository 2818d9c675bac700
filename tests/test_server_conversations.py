"""The sidebar's conversation view (issue #18, item 4): a turn's run detail lists its conversation's turns in
order, the runs list marks turns, and ``GET conversations/<id>`` answers the same, on a real jupyter-server
reading a real sqlite store written by real ``Conversation.send`` calls through the fake OpenAI server."""
from __future__ import annotations

import json
import os

import pytest
import tornado.httpclient

pytest_plugins = ["pytest_jupyter.jupyter_server"]

NOTEBOOK = "notebooks/chat.ipynb"
OTHER = "notebooks/other.ipynb"
KEY = "sk-proj-" + "Q7vLm2Xc9RtB4nWz8KpD1sYh6GfJ3aEu"  # an OpenAI-shaped key: stored masked


def _notebook(path):
    import nbformat

    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nbformat.v4.new_notebook(), str(path))


@pytest.fixture(scope="module")
def chats(tmp_path_factory, fake_server):
    """notebooks/chat.ipynb's experiment: conversation "support" (turn 2 failed once, then answered; turn 3
    holds a key and a long question), a run that is no turn; notebooks/other.ipynb's: conversation "elsewhere"."""
    import llmops_lab
    import llmops_lab.config as config
    import llmops_lab.tracking as tracking
    from conftest import REPO, make_project
    from llmops_lab.core import conversation as chat_core

    root = make_project(tmp_path_factory.mktemp("chatproject"), store=True)
    _notebook(root / NOTEBOOK)
    _notebook(root / OTHER)
    old_cwd = os.getcwd()
    os.chdir(root)
    tracking.shutdown(5)
    saved_uri = os.environ.pop("MLFLOW_TRACKING_URI", None)
    config.reset_settings(root)
    fake_server.reset()
    fake_server.latency_ms, fake_server.responder, fake_server.fault_rate, fake_server.api_key = 0, None, 0.0, None
    fake_server.chunk_chars, fake_server.break_stream_after = None, None
    llmops_lab.get_settings().endpoints["fake"] = {"base_url": fake_server.base_url}
    llmops_lab.configure(model="fake:test-model", max_retries=0)
    try:
        os.environ["LLMOPS_NOTEBOOK"] = str(root / NOTEBOOK)
        support = llmops_lab.Conversation("support", system="Be brief.")
        first = support.send("My order {{ order }} is late", {"order": "A-17"}).run_id
        fake_server.fail_next("500", 1)
        with pytest.raises(llmops_lab.ProviderError):
            support.send("Where is it?")
        second = support.send("Where is it now?").run_id
        third = support.send(f"My key is {KEY}. " + "Please check again. " * 30).run_id
        lone = llmops_lab.run("Not a chat", name="lone").run_id
        os.environ["LLMOPS_NOTEBOOK"] = str(root / OTHER)
        elsewhere = llmops_lab.Conversation("elsewhere")
        elsewhere.send("hello there")
        assert tracking.flush(30) == 0
    finally:
        os.environ.pop("LLMOPS_NOTEBOOK", None)
        chat_core._KERNEL.clear()
    yield {"root": root, "id": support.id, "turns": [first, second, third], "lone": lone, "other": elsewhere.id}
    tracking.shutdown(10)
    os.chdir(old_cwd)
    if saved_uri is not None:
        os.environ["MLFLOW_TRACKING_URI"] = saved_uri
    config.reset_settings(REPO)


@pytest.fixture(autouse=True)
def _no_exported_tracking_uri(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


@pytest.fixture
def jp_server_config():
    return {"ServerApp": {"jpserver_extensions": {"llmops_lab": True}}}


@pytest.fixture
def jp_root_dir(chats):
    return chats["root"]


async def get(jp_fetch, path, **params):
    response = await jp_fetch("llmops-lab", "api", *path.split("/"), params=params or None)
    return json.loads(response.body)


async def fails(jp_fetch, path, status, **params):
    with pytest.raises(tornado.httpclient.HTTPClientError) as err:
        await jp_fetch("llmops-lab", "api", *path.split("/"), params=params or None)
    assert err.value.code == status
    return json.loads(err.value.response.body)["message"]


async def test_a_turns_detail_lists_its_conversation_in_order(jp_fetch, chats):
    first, second, third = chats["turns"]
    detail = await get(jp_fetch, f"runs/{second}", notebook=NOTEBOOK)
    conversation = detail["conversation"]
    assert conversation["id"] == chats["id"] and conversation["name"] == "support"
    assert conversation["current"] == second and conversation["truncated"] is False
    turns = conversation["turns"]
    # turn 2 failed once and was sent again: both are listed under number 2, the failure first
    assert [(t["turn"], t["status"]) for t in turns] == [(1, "FINISHED"), (2, "FAILED"), (2, "FINISHED"),
                                                         (3, "FINISHED")]
    assert [t["run_id"] for t in turns if t["status"] == "FINISHED"] == [first, second, third]
    assert turns[0]["user"] == "My order A-17 is late" and turns[0]["assistant"] == "echo: My order A-17 is late"
    assert turns[1]["user"] == "Where is it?" and turns[1]["assistant"] is None and "500" in turns[1]["error"]
    assert turns[2]["error"] is None and turns[2]["interrupted"] is False
    # the long question is cut to one line; the key is masked as it was stored
    long = turns[3]["user"]
    assert len(long) == 240 and long.endswith("…") and "\n" not in long
    assert KEY not in json.dumps(detail) and "My key is [OPENAI_KEY]" in long
    # the run list marks each turn with its conversation and number; other runs are unmarked
    rows = {r["run_id"]: r for r in (await get(jp_fetch, "runs", notebook=NOTEBOOK))["runs"]}
    assert [(rows[r]["conversation_name"], rows[r]["turn"]) for r in chats["turns"]] == [("support", 1), ("support", 2),
                                                                                ("support", 3)]
    assert (rows[chats["lone"]]["conversation_name"], rows[chats["lone"]]["turn"]) == (None, None)
    lone = await get(jp_fetch, f"runs/{chats['lone']}", notebook=NOTEBOOK)
    assert lone["conversation"] is None


async def test_conversation_endpoint(jp_fetch, chats):
    answer = await get(jp_fetch, f"conversations/{chats['id']}", notebook=NOTEBOOK)
    detail = await get(jp_fetch, f"runs/{chats['turns'][0]}", notebook=NOTEBOOK)
    assert answer["turns"] == detail["conversation"]["turns"] and answer["current"] is None
    assert answer["name"] == "support" and answer["parent"] is None
    # confined to one experiment: the other notebook's conversation is not found from this one, and back
    assert "not found" in await fails(jp_fetch, f"conversations/{chats['other']}", 404, notebook=NOTEBOOK)
    assert "not found" in await fails(jp_fetch, f"conversations/{chats['id']}", 404, notebook=OTHER)
    assert (await get(jp_fetch, f"conversations/{chats['other']}", notebook=OTHER))["name"] == "elsewhere"
    assert (await get(jp_fetch, f"conversations/{chats['other']}", notebook=NOTEBOOK,
                      experiment="notebooks/other"))["name"] == "elsewhere"
    for bad in ("not-an-id", "A" * 32, "0" * 31, "0" * 32 + "' or 1=1"):
        assert "32 hexadecimal" in await fails(jp_fetch, f"conversations/{bad}", 400, notebook=NOTEBOOK)
    assert "not found" in await fails(jp_fetch, "conversations/" + "0" * 32, 404, notebook=NOTEBOOK)
    await fails(jp_fetch, f"conversations/{chats['id']}", 403, notebook="../outside.ipynb")


async def test_conversation_endpoint_needs_authentication(jp_fetch, jp_base_url, jp_http_port, chats):
    client = tornado.httpclient.AsyncHTTPClient()
    url = f"http://localhost:{jp_http_port}{jp_base_url}llmops-lab/api/conversations/{chats['id']}"
    for headers in ({}, {"Authorization": "token wrong"}):
        with pytest.raises(tornado.httpclient.HTTPClientError) as err:
            await client.fetch(url, headers=headers, follow_redirects=False)
        assert err.value.code == 403


def test_excerpt():
    from llmops_lab.server.conversations import excerpt

    assert excerpt(None) is None
    assert excerpt("  a\n\n b\tc ") == "a b c"
    assert excerpt("word " * 100, 20) == "word word word word…"
    assert len(excerpt("x" * 1000)) == 240
