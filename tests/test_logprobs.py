"""Explainability (issue #4): token logprobs from providers, cache, display, magic, compare grid, local model."""
from __future__ import annotations

import math
import re

import pytest

import llmops_lab
from llmops_lab.core import explain
from llmops_lab.exceptions import ConfigError
from llmops_lab.providers.base import TokenLogprob
from llmops_lab.providers.openai_compat import parse_logprobs

SECRET = "sk-proj-abcdefghijklmnopqrstuvwx"


# ---- parsing (pure) --------------------------------------------------------------------------------

def test_parse_openai_shape_dicts_and_sdk_objects():
    from openai.types.chat.chat_completion import ChoiceLogprobs

    raw = {"content": [
        {"token": "Hi", "logprob": -0.1, "bytes": [72, 105], "top_logprobs": [
            {"token": "Hi", "logprob": -0.1, "bytes": [72, 105]}, {"token": "Hello", "logprob": -2.5, "bytes": None}]},
        {"token": "!", "logprob": -1.0, "bytes": [33], "top_logprobs": []}]}
    for shape in (raw, ChoiceLogprobs.model_validate(raw)):
        tokens = parse_logprobs(shape)
        assert [t.token for t in tokens] == ["Hi", "!"]
        assert tokens[0].top == (("Hi", -0.1), ("Hello", -2.5)) and tokens[1].top == ()
        assert tokens[0].prob == pytest.approx(math.exp(-0.1))
    assert parse_logprobs(None) is None and parse_logprobs({"content": None}) is None


def test_parse_merges_utf8_byte_fragments():
    smile = "🙂".encode()  # 4 bytes, sent as two fragments like OpenAI does for rare characters
    raw = {"content": [
        {"token": "ok ", "logprob": -0.5, "bytes": list(b"ok "), "top_logprobs": []},
        {"token": "bytes:\\xf0\\x9f", "logprob": -1.0, "bytes": list(smile[:2]), "top_logprobs": []},
        {"token": "bytes:\\x99\\x82", "logprob": -0.25, "bytes": list(smile[2:]), "top_logprobs": []}]}
    tokens = parse_logprobs(raw)
    assert "".join(t.token for t in tokens) == "ok 🙂"
    assert tokens[1].logprob == pytest.approx(-1.25)  # joint probability of the fragments


# ---- options ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, message", [
    ({"logprobs": True, "top_logprobs": 50}, r"top_logprobs=50 is out of range: use a whole number from 0 to 20"),
    ({"top_logprobs": 3}, r"top_logprobs=3 needs logprobs=True"),
    ({"logprobs": "yes"}, r"logprobs='yes': use True or False"),
    ({"logprobs": True, "top_logprobs": True}, r"out of range"),
])
def test_bad_options_are_one_line_config_errors_before_any_call(fake, kwargs, message):
    with pytest.raises(ConfigError, match=message) as err:
        llmops_lab.run("hi", **kwargs)
    assert "\n" not in str(err.value) and fake.request_count == 0


def test_logprob_params():
    from llmops_lab.core.call import logprob_params

    assert logprob_params() == {} and logprob_params(False) == {}
    assert logprob_params(True) == {"logprobs": True, "top_logprobs": 5}
    assert logprob_params(True, 0) == {"logprobs": True, "top_logprobs": 0}


# ---- run() through the fake OpenAI-compatible server ---------------------------------------------

def test_run_with_logprobs(fake):
    llmops_lab.configure(tracking=False)
    r = llmops_lab.run("Say {{ x }}", {"x": "hello there"}, logprobs=True, top_logprobs=3)
    assert fake.requests[-1]["logprobs"] is True and fake.requests[-1]["top_logprobs"] == 3
    assert "".join(t.token for t in r.tokens) == r.text == "echo: Say hello there"
    assert all(0 < t.prob <= 1 and len(t.top) == 3 for t in r.tokens)
    assert all(t.top[0][1] >= t.top[1][1] >= t.top[2][1] for t in r.tokens)
    frame = r.logprobs_frame()
    assert list(frame.columns) == ["token", "logprob", "prob", "top"] and len(frame) == len(r.tokens)
    assert frame["top"][0][0] == (r.tokens[0].token, pytest.approx(r.tokens[0].prob))
    page = r._repr_html_()
    tokens_div = page.split('class="llmops-tokens"', 1)[1]
    assert tokens_div.count("<span style=\"background-color:rgba") == len(r.tokens) and "token probability" in page
    assert page.count("title=") == len(r.tokens) and "alternatives:" in page and "fake:test-model" in page
    assert str(r) == r.text and "TokenLogprob" not in repr(r)  # the plain views are unchanged


def test_default_path_sends_and_keeps_nothing_new(fake):
    llmops_lab.configure(tracking=False)
    r = llmops_lab.run("hi")
    assert "logprobs" not in fake.requests[-1] and "top_logprobs" not in fake.requests[-1]
    assert r.tokens is None and r._repr_html_() is None  # the notebook keeps the Markdown view
    with pytest.raises(ConfigError, match="no logprobs: call with logprobs=True"):
        r.logprobs_frame()


def test_endpoint_without_logprobs_gives_a_note_not_an_error(fake):
    llmops_lab.configure(tracking=False)
    fake.logprobs_supported = False
    r = llmops_lab.run("hi <b>", logprobs=True)
    assert r.tokens is None and r.text == "echo: hi <b>"
    page = r._repr_html_()
    assert explain.NO_LOGPROBS_NOTE in page and "hi &lt;b&gt;" in page and "<b>" not in page
    assert r.logprobs_frame().empty


def test_tokens_are_never_logged(fake, project):
    fake.responder = lambda req: "zebra quokka answer"
    r = llmops_lab.run("hi", logprobs=True, top_logprobs=2)
    assert r.tokens[0].top[1][0] == "zebra~1"
    assert r.run_id  # logged to MLflow
    llmops_lab.flush()
    stored = b"".join(p.read_bytes() for p in (project / ".llmops").rglob("*") if p.is_file())
    assert b"zebra quokka answer" in stored  # the output itself is logged (we looked in the right place)...
    assert b"zebra~1" not in stored and b"quokka~1" not in stored  # ...its tokens and alternatives are not


# ---- masking ---------------------------------------------------------------------------------------

def test_mask_tokens_finds_a_secret_split_over_tokens():
    from llmops_lab.trust.redaction import _secret_redactor

    pieces = ["my key is ", SECRET[:9], SECRET[9:20], SECRET[20:], " ok"]
    tokens = [TokenLogprob(p, -0.2, ((p, -0.2), (SECRET, -3.0))) for p in pieces]
    masked = explain.mask_tokens(tokens, _secret_redactor().redact)
    joined = "".join(t.token for t in masked)
    assert joined == "my key is [OPENAI_KEY] ok"
    assert [t.token for t in masked[1:4]] == ["[OPENAI_KEY]", "", ""]
    assert all(t.top == () for t in masked[1:4])  # a token inside the secret loses its alternatives
    assert masked[0].top == (("my key is ", -0.2), ("[OPENAI_KEY]", -3.0))  # others are masked one by one
    assert [t.logprob for t in masked] == [-0.2] * 5  # the numbers are kept


def test_display_masks_secrets_in_the_shaded_view(fake):
    llmops_lab.configure(tracking=False)
    fake.responder = lambda req: f"the key is {SECRET} done"
    r = llmops_lab.run("hi", logprobs=True)
    assert SECRET in r.text and SECRET in "".join(t.token for t in r.tokens)  # the object keeps the real answer
    page = r._repr_html_()
    assert SECRET not in page and "[OPENAI_KEY]" in page


# ---- HTML (pure) -----------------------------------------------------------------------------------

def test_shade_html_escapes_tokens_and_alternatives():
    tokens = [TokenLogprob("<script>", -3.0, (("<script>", -3.0), ('"><img src=x onerror=alert(1)>', -4.0))),
              TokenLogprob("alert(1)</script>", -0.01)]
    page = explain.shade_html(tokens)
    assert "<script>" not in page and "</script>" not in page and "<img" not in page
    assert "&lt;script&gt;" in page and "&quot;&gt;&lt;img" in page
    # low probability stands out (strong shade + outline); a near-certain token is almost transparent
    assert re.search(r"rgba\(230,80,30,0\.8\d\);outline", page) and "rgba(230,80,30,0.01)\"" in page
    assert "token probability" in page and "token probability" not in explain.shade_html(tokens, legend=False)


def test_shade_color_is_monotonic():
    alphas = [float(explain.shade_color(p).rsplit(",", 1)[1].rstrip(")")) for p in (0.0, 0.3, 0.7, 1.0)]
    assert alphas == sorted(alphas, reverse=True) and alphas[-1] == 0


# ---- cache -----------------------------------------------------------------------------------------

def test_logprobs_are_part_of_the_cache_key():
    from llmops_lab.core.call import logprob_params
    from llmops_lab.core.cache import cache_key

    msgs = [{"role": "user", "content": "Hi"}]
    plain = cache_key("openai", None, "gpt-4o-mini", {"temperature": 0.0}, msgs)
    with_lp = cache_key("openai", None, "gpt-4o-mini", {"temperature": 0.0, **logprob_params(True)}, msgs)
    with_lp2 = cache_key("openai", None, "gpt-4o-mini", {"temperature": 0.0, **logprob_params(True, 2)}, msgs)
    assert len({plain, with_lp, with_lp2}) == 3
    # the default path's key is unchanged: existing cache entries still match
    assert plain == cache_key("openai", None, "gpt-4o-mini", {"temperature": 0.0, **logprob_params()}, msgs)


def test_batch_cache_separates_and_keeps_masked_tokens(fake, project):
    import sqlite3

    import pandas as pd

    llmops_lab.configure(tracking=False)
    fake.responder = lambda req: f"{req['messages'][-1]['content']} key {SECRET}"
    data = pd.DataFrame({"text": ["alpha", "beta"]})
    plain = llmops_lab.batch("{{ text }}", data, progress=False)
    assert "token_logprobs" not in plain.columns and fake.request_count == 2
    fresh = llmops_lab.batch("{{ text }}", data, progress=False, logprobs=True, top_logprobs=2)
    assert fake.request_count == 4, "a cached answer without logprobs must not satisfy a logprobs request"
    assert not fresh["cached"].any() and fresh["token_logprobs"][0][0].token == "alpha"
    again = llmops_lab.batch("{{ text }}", data, progress=False, logprobs=True, top_logprobs=2)
    assert fake.request_count == 4 and again["cached"].all()
    tokens = again["token_logprobs"][1]
    assert "".join(t.token for t in tokens) == again["output"][1] == "beta key [OPENAI_KEY]"  # masked like the text
    assert len(tokens[0].top) == 2
    with sqlite3.connect(project / ".llmops" / "cache.db") as conn:
        rows = conn.execute("SELECT text, tokens FROM responses").fetchall()
    assert len(rows) == 4 and sum(t is not None for _, t in rows) == 2
    assert all(SECRET not in (text + (tokens or "")) for text, tokens in rows)


def test_cache_adds_the_tokens_column_to_an_old_database(tmp_path):
    import sqlite3

    from llmops_lab.core.cache import CachedResponse, ResponseCache

    path = tmp_path / "cache.db"
    with sqlite3.connect(path) as conn:  # the schema before logprobs
        conn.execute("CREATE TABLE responses (key TEXT PRIMARY KEY, text TEXT NOT NULL, prompt_tokens INTEGER "
                     "NOT NULL, completion_tokens INTEGER NOT NULL, finish_reason TEXT, response_model TEXT, "
                     "latency_ms REAL NOT NULL, created_at REAL NOT NULL)")
        conn.execute("INSERT INTO responses VALUES ('old', 'hi', 1, 1, 'stop', 'm', 5.0, 0.0)")
    with ResponseCache(path) as cache:
        assert cache.get("old").text == "hi" and cache.get("old").tokens is None
        cache.put("new", CachedResponse("x", tokens=explain.tokens_to_json([TokenLogprob("x", -0.5)])))
        assert cache.get("new").to_completion(llmops_lab.providers.ModelId("a", "b")).tokens == [
            TokenLogprob("x", -0.5)]


# ---- the magic -------------------------------------------------------------------------------------

def _published(shell, monkeypatch) -> list[dict]:
    seen: list[dict] = []
    original = shell.display_pub.publish
    monkeypatch.setattr(shell.display_pub, "publish",
                        lambda data, *a, **k: (seen.append(data), original(data, *a, **k))[1])
    return seen


def test_llm_magic_logprobs(shell, fake, monkeypatch):
    llmops_lab.configure(tracking=False)
    seen = _published(shell, monkeypatch)
    res = shell.run_cell("%%llm --logprobs --top-logprobs 2 --out r\nSay <script>{{ 1 + 1 }}")
    assert res.success, res.error_in_exec
    r = shell.user_ns["r"]
    assert fake.requests[-1]["top_logprobs"] == 2 and len(r.tokens[0].top) == 2
    pages = [d["text/html"] for d in seen if "text/html" in d and "llmops-tokens" in d["text/html"]]
    assert len(pages) == 1 and "&lt;script&gt;2" in pages[0] and "<script>" not in pages[0]
    assert not any("text/markdown" in d for d in seen)  # the shaded view replaces the markdown one


def test_llm_magic_without_logprobs_is_unchanged(shell, fake, monkeypatch):
    llmops_lab.configure(tracking=False)
    seen = _published(shell, monkeypatch)
    assert shell.run_cell("%%llm --out r\nhi").success
    assert "logprobs" not in fake.requests[-1] and shell.user_ns["r"].tokens is None
    assert any("text/markdown" in d for d in seen) and not any("llmops-tokens" in str(d) for d in seen)


@pytest.mark.parametrize("line, message", [
    ("--logprobs --top-logprobs 50", "top_logprobs=50 is out of range: use a whole number from 0 to 20"),
    ("--top-logprobs 3", "top_logprobs=3 needs logprobs=True (in a cell: --logprobs --top-logprobs N)"),
    ("--logprobs --top-logprobs many", "'many' is not a whole number"),
])
def test_llm_magic_bad_logprob_options(shell, fake, capsys, line, message):
    from IPython.core.error import UsageError

    with pytest.raises(UsageError, match=re.escape(message)) as err:
        shell.run_cell_magic("llm", line, "hi")
    assert "\n" not in str(err.value) and fake.request_count == 0


def test_llm_magic_batch_with_logprobs(shell, fake):
    import pandas as pd

    llmops_lab.configure(tracking=False)
    shell.user_ns["df"] = pd.DataFrame({"text": ["a b", "c"]})
    assert shell.run_cell("%%llm --dataset df --logprobs --out res --no-cache\n{{ text }}").success
    res = shell.user_ns["res"]
    assert [len(t) for t in res["token_logprobs"]] == [3, 2] and fake.requests[-1]["logprobs"] is True


# ---- compare and its grid --------------------------------------------------------------------------

def test_compare_grid_shades_tokens(fake):
    import pandas as pd

    llmops_lab.configure(tracking=False)
    data = pd.DataFrame({"text": ["one <b>", "two"]})
    cmp = llmops_lab.compare(["A: {{ text }}", "B: {{ text }}"], data=data, progress=False, logprobs=True,
                             top_logprobs=2)
    assert cmp.has_logprobs(0) and cmp.tokens(0, 1)[0].token == "echo:"
    assert all(v.params.get("logprobs") is None for v in cmp.variants)  # a request option, never promoted
    grid = cmp.widget()
    assert not grid._shade_box.disabled and grid.shade_tokens is False
    assert "rgba(230,80,30" not in grid._grid.value
    grid._shade_box.value = True  # the checkbox drives the synced state
    assert grid.shade_tokens is True
    page = grid._grid.value
    assert page.count("llmops-tokens") == 4 and "token probability" in page and "title=" in page
    assert "&lt;b&gt;" in page and "<b>" not in page.replace("<b>#", "")
    grid.shade_tokens = False
    assert "llmops-tokens" not in grid._grid.value


def test_compare_magic_with_logprobs(shell, fake):
    import pandas as pd

    llmops_lab.configure(tracking=False)
    shell.user_ns["rows"] = pd.DataFrame({"text": ["a b"]})
    res = shell.run_cell('%llm compare "A {{ text }}" "B {{ text }}" --dataset rows --logprobs --top-logprobs 2')
    assert res.success, res.error_in_exec
    assert res.result.has_logprobs(1) and fake.requests[-1]["top_logprobs"] == 2
    bad = shell.run_cell('%llm compare "A {{ text }}" --dataset rows --top-logprobs 2')
    assert not bad.success and fake.request_count == 2


def test_compare_grid_option_is_off_without_logprobs():
    from llmops_lab.evaluation.compare import synthetic

    grid = synthetic(4, 2).widget()
    assert grid._shade_box.disabled
    grid.shade_tokens = True  # set from code: cells without tokens keep the diff view
    assert "llmops-tokens" not in grid._grid.value


def test_compare_rejects_bad_logprob_options_before_running(fake):
    import pandas as pd

    with pytest.raises(ConfigError, match="top_logprobs=21 is out of range"):
        llmops_lab.compare(["{{ text }}"], data=pd.DataFrame({"text": ["x"]}), progress=False, logprobs=True,
                           top_logprobs=21)
    assert fake.request_count == 0


# ---- the real local model --------------------------------------------------------------------------

@pytest.mark.slow
def test_local_model_logprobs(project):
    llmops_lab.configure(model="local:smollm2-135m", tracking=False)
    prompt = "Name the capital of France in one word."
    plain = llmops_lab.run(prompt, temperature=0, max_tokens=16)
    a = llmops_lab.run(prompt, temperature=0, max_tokens=16, logprobs=True, top_logprobs=3)
    b = llmops_lab.run(prompt, temperature=0, max_tokens=16, logprobs=True, top_logprobs=3)
    assert a.tokens and "".join(t.token for t in a.tokens).strip() == a.text
    assert a.text == plain.text == b.text  # the logprobs instance answers like the default one at temperature 0
    assert [(t.token, t.logprob) for t in a.tokens] == [(t.token, t.logprob) for t in b.tokens]
    assert all(0 < t.prob <= 1 for t in a.tokens)
    for t in a.tokens:  # 3 alternatives sorted, most likely first; greedy: the chosen token is among them
        probs = [lp for _, lp in t.top]
        assert len(t.top) == 3
        assert probs == sorted(probs, reverse=True) and t.token in [alt for alt, _ in t.top]
        assert isinstance(t.logprob, float)
    assert a.usage["completion_tokens"] == len(a.tokens)
