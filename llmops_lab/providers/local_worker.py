"""The embedded model's worker process: llama.cpp runs here, never in the kernel.

Native code built for another CPU (pip's default llama-cpp-python build uses ``-march=native``) can die
with SIGSEGV/SIGILL on the first completion; in this process that costs one call, not the user's kernel.
Started by :mod:`llmops_lab.providers.local` as ``python local_worker.py FD``: FD is one end of a socket
pair carrying pickled request/answer dicts (``multiprocessing.connection`` framing), one request at a
time. The worker exits when the kernel's end closes. It imports nothing from llmops_lab, so it starts in
the time Python and llama_cpp take to import.

Requests: ``{"op": "complete", "model", "path", "messages", "kwargs", "logprobs", "size"}``,
``{"op": "stream", ...}`` (the same fields), ``{"op": "tokenize", "model", "path", "texts"}``, ``{"op": "info"}``,
``{"op": "exit"}``. Each may carry ``"threads"``: the cores this worker may use now (the kernel runs
one worker per core during a batch, one worker on every core otherwise). Answers: ``{"ok": True, ...}``
or ``{"ok": False, "error": "one line"}``. A ``stream`` request is answered by ``{"piece": text}``
messages, one per piece llama.cpp yields, then its answer; a ``{"op": "cancel"}`` received meanwhile
stops the generation after the current token (the model stays loaded). A cancel that arrives after the
answer is ignored.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
from multiprocessing.connection import Connection
from typing import Any

_models: dict[tuple[str, bool], Any] = {}


def _load(request: dict[str, Any]) -> Any:
    import llama_cpp

    logprobs = bool(request.get("logprobs"))
    key = (request["path"], logprobs)
    threads = int(request.get("threads") or os.cpu_count() or 1)
    if key not in _models:
        _models[key] = llama_cpp.Llama(model_path=request["path"], n_threads=threads, n_threads_batch=threads,
                                       verbose=False, logits_all=logprobs, **request.get("size", {}))
    llm = _models[key]
    if llm.n_threads != threads:  # the kernel runs more (or fewer) workers now: share the cores anew
        llm._ctx.set_n_threads(threads, threads)
        llm.n_threads = llm.n_threads_batch = threads
    return llm


def _plain(value: Any) -> Any:
    """llama.cpp's answer with numpy floats made plain, so it pickles without numpy on the other side."""
    return json.loads(json.dumps(value, default=float))


def _complete(request: dict[str, Any]) -> dict[str, Any]:
    llm = _load(request)
    start = time.perf_counter()
    try:
        out = llm.create_chat_completion(messages=request["messages"], **request["kwargs"])
    except ValueError as err:  # e.g. prompt longer than the context window
        return {"ok": False, "refused": True, "error": str(err)}
    return {"ok": True, "out": _plain(out), "latency_ms": (time.perf_counter() - start) * 1000}


def _stream(request: dict[str, Any], conn: Connection) -> dict[str, Any]:
    llm = _load(request)
    sampled = 0  # tokens sampled, EOS included; the first call sees the prompt's length

    def count(input_ids: Any, scores: Any) -> Any:  # llama.cpp streams no usage: count it here, exactly
        nonlocal sampled, prompt_tokens
        if not sampled:
            prompt_tokens = len(input_ids)
        sampled += 1
        return scores

    prompt_tokens, finish = 0, None
    try:
        for chunk in llm.create_chat_completion(messages=request["messages"], stream=True, logits_processor=[count],
                                                **request["kwargs"]):
            choice = chunk["choices"][0]
            finish = choice.get("finish_reason") or finish
            if choice["delta"].get("content"):
                conn.send({"piece": choice["delta"]["content"]})
            if conn.poll():  # the only message the kernel sends mid-stream is a cancel
                conn.recv()
                finish = "interrupted"
                break
    except ValueError as err:  # e.g. prompt longer than the context window
        return {"ok": False, "refused": True, "error": str(err)}
    completion_tokens = sampled - (finish == "stop")  # an end-of-text token is sampled, never counted
    return {"ok": True, "finish_reason": finish,
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens}}


def _tokenize(request: dict[str, Any]) -> dict[str, Any]:
    llm = _load(request)
    return {"ok": True, "counts": [len(llm.tokenize(t.encode("utf-8"), add_bos=False, special=True))
                                   for t in request["texts"]]}


def _info(request: dict[str, Any]) -> dict[str, Any]:
    import llama_cpp

    return {"ok": True, "version": llama_cpp.__version__, "pid": os.getpid(),
            "system_info": llama_cpp.llama_print_system_info().decode("utf-8", "replace").strip()}


OPS = {"complete": _complete, "tokenize": _tokenize, "info": _info}


def serve(conn: Connection) -> None:
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):  # the kernel went away
            return
        if request.get("op") == "exit":
            return
        if request.get("op") == "cancel":  # the stream it meant has already ended
            continue
        try:
            answer = _stream(request, conn) if request["op"] == "stream" else OPS[request["op"]](request)
        except Exception as err:  # noqa: BLE001 - reported to the kernel as one line; the worker lives on
            answer = {"ok": False, "error": f"{type(err).__name__}: {err}"}
        conn.send(answer)


def main() -> None:
    # Jupyter interrupts the kernel's whole process group; the kernel decides what an interrupt means here.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sock = socket.socket(fileno=int(sys.argv[1]))
    conn = Connection(sock.detach())
    try:
        serve(conn)
    finally:
        for model in _models.values():
            model.close()  # free llama.cpp contexts while the interpreter is intact


if __name__ == "__main__":
    main()
