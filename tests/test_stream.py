"""Streaming (issue #18, item 1): a real IPython shell and llmops_lab.run against the fake server streaming SSE
with a delay between chunks; the embedded model streaming through its worker (marked slow)."""
import contextlib
import os
import signal
import threading
import time
from pathlib import Path

import pytest

import llmops_lab
from conftest import mlflow_client
from llmops_lab.exceptions import ConfigError, StreamInterrupted

WORDS = 40
KEY = "sk-proj-" + "Q7vLm2Xc9RtB4nWz8KpD1sYh6GfJ3aEu"  # an OpenAI-shaped key, split over chunks below


def story(req):
    return " ".join(f"word{i}" for i in range(WORDS))


class Shown:
    """Every answer display and update the shell publishes, with the fake server's chunk count at that time (the
    shell's own display publisher is the observation point; nothing is replaced)."""

    def __init__(self, shell, fake, monkeypatch):
        self.items: list[tuple[str, int, bool]] = []  # (text, chunks sent so far, an update)
        original = shell.display_pub.publish

        def publish(data, metadata=None, **kw):
            text = data.get("text/markdown") or data.get("text/plain") or ""
            if "tokens ·" not in text:  # the footer
                self.items.append((text, fake.chunks_sent if fake else 0, bool(kw.get("update"))))
            return original(data, metadata=metadata, **kw)

        monkeypatch.setattr(shell.display_pub, "publish", publish)

    @property
    def texts(self) -> list[str]:
        return [text for text, _, _ in self.items]


@contextlib.contextmanager
def interrupt_mid_stream(fake, chunks: int = 5):
    """A kernel interrupt as Jupyter sends it: SIGINT to this process from outside the running code, once the
    fake server has sent ``chunks`` chunks (not on a timer: imports and start-up vary on a loaded machine)."""
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.005):
            if fake.chunks_sent >= chunks:
                os.kill(os.getpid(), signal.SIGINT)
                return

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join()


def test_fake_server_streams_sse_with_exact_usage(fake):
    from openai import OpenAI

    fake.chunk_delay_ms = 5
    client = OpenAI(base_url=fake.base_url, api_key="x", max_retries=0)
    whole = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "a b c"}])
    chunks = list(client.chat.completions.create(model="m", messages=[{"role": "user", "content": "a b c"}],
                                                 stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content == "echo: a b c"
    assert chunks[-1].choices == [] and chunks[-1].usage.model_dump() == whole.usage.model_dump()
    assert fake.chunks_sent == 4 and fake.streams_abandoned == 0


def test_cell_shows_the_first_chunk_before_the_answer_completes(shell, fake, monkeypatch):
    fake.responder, fake.chunk_delay_ms = story, 20
    shown = Shown(shell, fake, monkeypatch)
    res = shell.run_cell("%%llm --name story --out r\nTell a story")
    assert res.success, res.error_in_exec
    r = shell.user_ns["r"]
    assert r.text == story(None) and not r.interrupted
    first_text, chunks_then, _ = shown.items[0]
    assert first_text and chunks_then < WORDS, shown.items[:3]  # on screen while the server was still sending
    assert len(shown.items) >= 3 and shown.items[-1] == (r.text, WORDS, True)  # one display, then updates
    assert all(later.startswith(earlier) for earlier, later in zip(shown.texts, shown.texts[1:]))
    assert fake.requests[-1]["stream"] is True and fake.requests[-1]["stream_options"] == {"include_usage": True}
    assert 0 < r.ttft_ms < r.latency_ms and r.latency_ms >= WORDS * 20 * 0.9


def test_streamed_usage_and_cost_are_exact_and_logged_with_ttft(shell, fake, monkeypatch):
    llmops_lab.get_settings().prices["fake:test-model"] = {"input": 1.0, "output": 2.0}  # USD per 1M tokens
    fake.responder, fake.chunk_delay_ms = story, 2
    assert shell.run_cell("%%llm --name priced --no-stream --out whole\nTell a story").success
    assert shell.run_cell("%%llm --name priced --out streamed\nTell a story").success
    whole, streamed = shell.user_ns["whole"], shell.user_ns["streamed"]
    assert "stream" not in fake.requests[0] and fake.requests[1]["stream"] is True
    assert streamed.usage == whole.usage == {"prompt_tokens": 3, "completion_tokens": WORDS, "total_tokens": 43}
    assert streamed.cost_usd == whole.cost_usd and streamed.cost_usd is not None
    run = mlflow_client().get_run(streamed.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.metrics["completion_tokens"] == WORDS and run.data.metrics["ttft_ms"] == pytest.approx(
        streamed.ttft_ms) and run.data.metrics["ttft_ms"] < run.data.metrics["latency_ms"]
    assert "ttft_ms" not in mlflow_client().get_run(whole.run_id).data.metrics


def test_interrupt_mid_stream_keeps_the_partial_answer(shell, fake, monkeypatch, capsys):
    fake.responder, fake.chunk_delay_ms = story, 50
    llmops_lab.get_settings().prices["fake:test-model"] = {"input": 1.0, "output": 2.0}  # $ per 1M tokens
    shown = Shown(shell, fake, monkeypatch)
    with interrupt_mid_stream(fake):
        res = shell.run_cell("%%llm --name stopped --out r\nTell a story")
    assert isinstance(res.error_in_exec, StreamInterrupted)  # the cell stops (so does Run All), in one line
    assert "generation stopped; the partial answer is kept" in capsys.readouterr().out
    r = shell.user_ns["r"]
    assert shell.user_ns["_"] is r and r.interrupted and r.finish_reason == "interrupted"
    assert r.text and story(None).startswith(r.text) and len(r.text) < len(story(None))
    assert shown.texts[-1] == r.text  # the partial answer stays on screen, whole
    deadline = time.monotonic() + 2
    while not fake.streams_abandoned and time.monotonic() < deadline:
        time.sleep(0.01)
    received = len(r.text.split())
    assert fake.streams_abandoned == 1 and fake.chunks_sent <= received + 2  # generation stopped within a chunk
    assert "interrupted" in r.footer()
    assert r.usage["completion_tokens"] == received  # no usage chunk came: one token per piece received
    # ... an estimate, and said so: the footer's tokens and cost carry "≈", the run a tag
    assert r.usage_estimated and f"≈{r.usage['total_tokens']} tokens" in r.footer() and "≈$" in r.footer()
    run = mlflow_client().get_run(r.run_id)
    assert run.info.status == "KILLED" and run.data.tags["llmops.interrupted"] == "true"
    assert run.data.tags["llmops.usage_estimated"] == "true"
    assert "llmops.error" not in run.data.tags
    path = mlflow_client().download_artifacts(r.run_id, "output.md")
    assert Path(path).read_text() == r.text
    assert shell.run_cell("%%llm --name after --no-stream --out again\nhi").success  # the client still works


def test_a_key_split_across_chunks_never_shows(shell, fake, monkeypatch):
    answer = f"Your key is {KEY} and you should rotate it soon, as a key pasted into a chat is no longer secret."
    fake.responder, fake.chunk_chars, fake.chunk_delay_ms = (lambda req: answer), 5, 40  # an update every 3 chunks
    shown = Shown(shell, fake, monkeypatch)
    assert shell.run_cell("%%llm --name leak --format text --out r\nkey?").success
    assert shell.user_ns["r"].text == answer  # the result keeps the real text
    assert len(shown.items) >= 5
    for text in shown.texts:
        assert not any(fragment in text for fragment in fragments_of(KEY)), text
    assert shown.texts[-1] == answer.replace(KEY, "[OPENAI_KEY]")


def test_the_prompt_key_repeated_spaced_and_upper_cased_never_shows_while_streaming(shell, fake, monkeypatch):
    hex_key = "3f2a9c01d4e5f6071829" + "3a4b5c6d7e8f"  # an Azure-style key: 32 hex characters
    spaced = " ".join(hex_key.upper()[i:i + 4] for i in range(0, 32, 4))  # 39 characters: more than the hold-back
    answer = f"Noted, your key is {spaced} and it is stored nowhere else, as the notebook promised you earlier."
    fake.responder, fake.chunk_chars, fake.chunk_delay_ms = (lambda req: answer), 3, 30
    shell.user_ns["k"] = hex_key
    shown = Shown(shell, fake, monkeypatch)
    assert shell.run_cell("%%llm --format text --out r\nRemember api key: {{ k }}").success
    assert shell.user_ns["r"].text == answer and len(shown.items) >= 5
    for text in shown.texts:
        folded = "".join(text.lower().split())
        assert not any(fragment in folded for fragment in fragments_of(hex_key, 8)), text
    assert "[API_KEY]" in shown.texts[-1] or "[SECRET]" in shown.texts[-1], shown.texts[-1]


def fragments_of(secret: str, size: int = 4) -> set[str]:
    return {secret[i:i + size] for i in range(len(secret) - size + 1)}


@pytest.mark.parametrize("answer", [
    f"Your key is {KEY} and you should rotate it soon, as a pasted key is no longer secret at all.",
    f"api_key = hunter2-{KEY[-12:]}\nthen the rest of the answer goes on for a while longer, as answers do.",
    ("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nBKcwggSjAgEAAoIBAQC7\n-----END PRIVATE KEY-----\n"
     "and more text after the block, long enough to move the cut past it."),
])
def test_no_prefix_of_a_stream_shows_a_secret(answer):
    """Every point a stream can be cut at (any chunking): what may be shown never holds part of a secret."""
    from llmops_lab.trust.display import mask_for_display, streaming_view

    secrets = [line for line in answer.splitlines() if line.startswith(("MIIE", "BKcw"))] or \
        [KEY if KEY in answer else f"hunter2-{KEY[-12:]}"]
    for end in range(len(answer) + 1):
        shown = streaming_view(answer[:end])
        assert mask_for_display(answer).startswith(shown), (end, shown)
        for secret in secrets:
            assert not any(fragment in shown for fragment in fragments_of(secret, 6)), (end, shown)


def test_no_stream_flag_and_setting(shell, fake, monkeypatch):
    assert shell.run_cell("%%llm --no-stream\nhi").success
    assert "stream" not in fake.requests[-1]
    assert shell.run_cell("%llm config stream=false").success
    assert llmops_lab.get_settings().stream is False
    assert shell.run_cell("%%llm\nhi").success and "stream" not in fake.requests[-1]
    assert shell.run_cell("%%llm --stream\nhi").success and fake.requests[-1]["stream"] is True
    assert shell.run_cell("%llm config stream=true").success
    monkeypatch.setenv("LLMOPS_NOTEBOOK", "/nb/unattended.ipynb")  # papermill: the saved notebook keeps the end
    assert shell.run_cell("%%llm\nhi").success and "stream" not in fake.requests[-1]
    monkeypatch.delenv("LLMOPS_NOTEBOOK")
    for line in ("%%llm --format json", "%%llm --format code", "%%llm --logprobs"):
        fake.responder = lambda req: '{"a": 1}'
        assert shell.run_cell(f"{line}\nhi").success
        assert "stream" not in fake.requests[-1], line  # judged whole: never streamed


@pytest.mark.parametrize("line,message", [
    ("%%llm --stream --format json", "--format json does not stream"),
    ("%%llm --stream --logprobs", "--logprobs does not stream"),
    ("%%llm --stream --dataset df", "a batch (--dataset) does not stream"),
])
def test_what_does_not_stream_says_so(shell, fake, capsys, line, message):
    shell.user_ns["df"] = [{"t": "a"}]
    assert not shell.run_cell(f"{line}\nhi").success
    assert message in capsys.readouterr().err and fake.request_count == 0


def test_run_streams_to_on_text_and_prints_masked_by_default(fake, capsys):
    fake.chunk_delay_ms = 2
    pieces = []
    r = llmops_lab.run("Say {{ x }}", {"x": "hello streaming world"}, stream=True, on_text=pieces.append)
    assert "".join(pieces) == r.text == "echo: Say hello streaming world" and len(pieces) == 5
    assert r.ttft_ms is not None and capsys.readouterr().out == ""  # on_text given: nothing printed
    fake.responder = lambda req: f"the key {KEY} is here"
    r = llmops_lab.run("key?", stream=True)
    assert r.text == f"the key {KEY} is here"
    assert capsys.readouterr().out == "the key [OPENAI_KEY] is here\n"
    with pytest.raises(ConfigError, match="logprobs=True does not stream"):
        llmops_lab.run("hi", stream=True, logprobs=True)
    with pytest.raises(ConfigError, match=r"batch\(\) does not stream"):
        llmops_lab.batch("{{ t }}", [{"t": "a"}], stream=True)


def test_run_interrupted_raises_with_the_logged_partial_result(fake):
    fake.responder, fake.chunk_delay_ms = story, 50
    with interrupt_mid_stream(fake), pytest.raises(StreamInterrupted) as stopped:
        llmops_lab.run("Tell a story", stream=True, on_text=lambda piece: None)
    r = stopped.value.result
    assert isinstance(stopped.value, KeyboardInterrupt) and r.interrupted and r.text
    assert story(None).startswith(r.text) and r.run_id
    assert mlflow_client().get_run(r.run_id).info.status == "KILLED"


def test_errors_before_the_first_chunk_are_retried_like_complete(fake):
    fake.fail_next("503", 1, retry_after=0)
    r = llmops_lab.run("hi", stream=True, on_text=lambda piece: None)
    assert r.text == "echo: hi" and r.retries == 1
    fake.fail_next("500", 3, retry_after=0)
    with pytest.raises(llmops_lab.ProviderError, match="failed after 3 tries: HTTP 500"):
        llmops_lab.run("hi", stream=True, on_text=lambda piece: None)


def test_a_stream_broken_midway_fails_the_call_in_one_line(shell, fake, capsys):
    fake.responder, fake.chunk_delay_ms, fake.break_stream_after = story, 5, 5
    res = shell.run_cell("%%llm --name broken --out broken_answer\nTell a story")
    assert not res.success and "broken_answer" not in shell.user_ns
    err = capsys.readouterr().err
    assert "the stream broke after 29 characters" in err and "Traceback" not in err  # "word0 word1 ... word4"
    assert fake.request_count == 1  # text had been shown: not retried
    llmops_lab.flush()
    runs = mlflow_client().search_runs([e.experiment_id for e in mlflow_client().search_experiments()])
    (run,) = [r for r in runs if r.data.params.get("prompt_name") == "broken"]
    # the failed run keeps what had arrived as its output, its usage estimated (no usage chunk came)
    assert run.info.status == "FAILED" and "stream broke" in run.data.tags["llmops.error"]
    output = Path(mlflow_client().download_artifacts(run.info.run_id, "output.md")).read_text()
    assert output == "word0 word1 word2 word3 word4"  # the 29 characters that had arrived
    assert run.data.tags["llmops.usage_estimated"] == "true" and run.data.metrics["completion_tokens"] == 5


def test_a_broken_stream_keeps_its_partial_text_on_the_error(fake):
    fake.responder, fake.chunk_delay_ms, fake.break_stream_after = story, 5, 3
    pieces = []
    with pytest.raises(llmops_lab.StreamBroken) as broken:
        llmops_lab.run("Tell a story", name="broken-api", stream=True, on_text=pieces.append)
    assert isinstance(broken.value, llmops_lab.ProviderError)  # `except ProviderError` still catches it
    assert broken.value.partial == "".join(pieces) and story(None).startswith(broken.value.partial)
    assert len(pieces) == 3 and "kept as the failed run's output" in str(broken.value)
    assert broken.value.completion.usage_estimated and broken.value.completion.usage.completion_tokens == 3
    llmops_lab.flush()
    runs = mlflow_client().search_runs([e.experiment_id for e in mlflow_client().search_experiments()],
                                       "tags.`llmops.usage_estimated` = 'true'")
    (run,) = [r for r in runs if r.data.params.get("prompt_name") == "broken-api"]
    assert run.info.status == "FAILED"
    assert Path(mlflow_client().download_artifacts(run.info.run_id, "output.md")).read_text() == broken.value.partial
    fake.break_stream_after = None
    whole = llmops_lab.run("Tell a story", stream=True, on_text=lambda piece: None)
    assert not whole.usage_estimated and "≈" not in whole.footer()  # the endpoint's usage: exact


# -- the embedded model ---------------------------------------------------------------------------------------

@pytest.mark.slow
def test_local_model_streams_the_same_answer(project):
    llmops_lab.configure(model="local:smollm2-135m", tracking=False)
    text = "The council voted to turn the old depot into a library. Work starts in spring."
    prompt, params = "Summarize in one sentence: {{ t }}", {"temperature": 0, "seed": 1, "max_tokens": 32}
    whole = llmops_lab.run(prompt, {"t": text}, **params)
    pieces = []
    streamed = llmops_lab.run(prompt, {"t": text}, stream=True, on_text=pieces.append, **params)
    assert len(pieces) >= 2 and streamed.text == whole.text and "".join(pieces).strip() == streamed.text
    assert streamed.usage == whole.usage and streamed.finish_reason == whole.finish_reason
    assert 0 < streamed.ttft_ms < streamed.latency_ms


@pytest.mark.slow
def test_local_model_streams_into_a_cell(shell, monkeypatch):
    llmops_lab.configure(model="local:smollm2-135m", tracking=False)
    shown = Shown(shell, None, monkeypatch)
    res = shell.run_cell("%%llm --temperature 0 --seed 1 --max-tokens 96 --out r\nWrite three sentences about rain.")
    assert res.success, res.error_in_exec
    r = shell.user_ns["r"]
    assert len(shown.items) >= 2 and shown.items[0][0] != r.text and shown.texts[-1] == r.text
    assert r.ttft_ms < r.latency_ms / 2


@pytest.mark.slow
def test_local_model_interrupt_stops_the_worker_generating(project):
    from llmops_lab.providers import local

    llmops_lab.configure(model="local:smollm2-135m", tracking=False)
    llmops_lab.run("Say OK.", max_tokens=2)
    pid = local.provider().worker_pid
    pieces = []

    def on_text(piece):
        pieces.append(piece)
        if len(pieces) == 3:
            os.kill(os.getpid(), signal.SIGINT)  # delivered to this thread at once: mid-stream

    with pytest.raises(StreamInterrupted) as stopped:
        llmops_lab.run("Write a long story about a dragon.", stream=True, on_text=on_text, max_tokens=200)
    r = stopped.value.result
    assert r.interrupted and r.text == "".join(pieces).strip() and len(pieces) <= 4
    assert r.usage["completion_tokens"] <= 4  # the worker stopped after the token in progress
    assert local.provider().worker_pid == pid  # cancelled, not killed: the model stays loaded
    assert llmops_lab.run("Say OK.", max_tokens=2).text
