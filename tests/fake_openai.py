"""Fake OpenAI-compatible HTTP server for tests and benchmarks.

Pure stdlib asyncio, HTTP/1.1 keep-alive, runs in a background thread so it can
be used from synchronous code::

    with FakeOpenAI(latency_ms=0) as srv:
        client = OpenAI(base_url=srv.base_url, api_key="x")

``"stream": true`` is answered with server-sent events: one chunk per word (with its leading whitespace), or
per ``chunk_chars`` characters when set (a word split over chunks), ``chunk_delay_ms`` apart (``break_stream_after``
= N: the connection is reset after N chunks, as by a proxy timing out), then the finish chunk, a usage chunk when ``stream_options.include_usage`` is set, and
``data: [DONE]``; a client that goes away mid-stream is counted in ``streams_abandoned``.

Also runnable as a script: ``python tests/fake_openai.py --port 0 --latency-ms 50``
prints ``READY http://127.0.0.1:PORT/v1`` and serves until SIGTERM/SIGINT.
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import json
import random
import re
import signal
import socket
import struct
import threading
import time
import uuid
import zlib
from typing import Any, Callable, Iterable

FAULT_KINDS = ("429", "500", "503", "timeout", "reset")
# Faults only fail_next() injects (never picked at random by fault_rate); counted in faults_served once served.
# "malformed": HTTP 200 whose body is cut off mid-JSON, as from a proxy that dropped the end.
EXTRA_FAULTS = ("malformed",)
MODELS = ("gpt-4o-mini", "gpt-4o", "fake-model")
_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
            429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable"}
_ERRORS = {  # fault kind -> (status, type, code, message)
    "429": (429, "rate_limit_error", "rate_limit_exceeded", "Rate limit reached (fake)."),
    "500": (500, "server_error", None, "The server had an error (fake)."),
    "503": (503, "server_error", "service_unavailable", "The server is overloaded (fake)."),
}
Response = tuple[int, dict[str, str], bytes]


class _Stream:
    """A streamed answer: the SSE ``data:`` payloads, written ``delay_s`` apart."""

    def __init__(self, events: list[dict[str, Any]], delay_s: float):
        self.events, self.delay_s = events, delay_s


def _words(text: str) -> int:
    return len(text.split())


def _text(content: Any) -> str:
    """Flatten a message ``content`` (string or list of content parts) to text."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def error_body(message: str, type_: str, code: str | None = None) -> dict[str, Any]:
    """OpenAI-shaped error payload."""
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


def fake_logprobs(content: str, top: int) -> dict[str, Any]:
    """OpenAI-shaped ``choice.logprobs`` for ``content``, deterministic: tokens are words with their leading
    whitespace; a token's logprob comes from a CRC of its text (0 to -4), its alternatives are the token
    itself then ``<token>~1``, ``<token>~2``... each 0.5 less likely."""
    items = []
    for token in re.findall(r"\s*\S+|\s+", content):
        logprob = -(zlib.crc32(token.encode()) % 400) / 100.0
        alts = [(token, logprob)] + [(f"{token}~{k}", logprob - 0.5 * k) for k in range(1, top)]
        items.append({"token": token, "logprob": logprob, "bytes": list(token.encode()),
                      "top_logprobs": [{"token": t, "logprob": lp, "bytes": list(t.encode())}
                                       for t, lp in alts[:top]]})
    return {"content": items, "refusal": None}


def default_responder(req: dict[str, Any]) -> str:
    """``echo: <last user message>``."""
    users = [m for m in req.get("messages") or [] if isinstance(m, dict) and m.get("role") == "user"]
    return f"echo: {_text(users[-1].get('content')) if users else ''}"


class FakeOpenAI:
    """Fake OpenAI server with latency and fault injection (see module docstring)."""

    def __init__(self, latency_ms: float = 0, responder: Callable[[dict[str, Any]], str] | None = None,
                 fault_rate: float = 0.0, faults: Iterable[str] = ("429", "500", "timeout", "reset"),
                 seed: int | None = None, api_key: str | None = None, host: str = "127.0.0.1",
                 port: int = 0, hang_s: float = 30.0, chunk_delay_ms: float = 0) -> None:
        self.latency_ms = latency_ms
        self.chunk_delay_ms = chunk_delay_ms  # between streamed chunks
        self.chunk_chars: int | None = None  # streamed chunks of this many characters instead of words
        self.break_stream_after: int | None = None  # reset the connection after this many streamed chunks
        self.responder = responder  # None (also settable later) -> default_responder
        self.fault_rate = fault_rate
        self.faults = tuple(faults)
        if bad := set(self.faults) - set(FAULT_KINDS):
            raise ValueError(f"unknown fault kinds {sorted(bad)}; expected {FAULT_KINDS}")
        self.api_key = api_key
        self.host, self.port, self.hang_s = host, port, hang_s
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._queue: collections.deque[tuple[str, float | None]] = collections.deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.reset()

    # ---- public API -------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Copy of the JSON bodies of chat completion requests received."""
        with self._lock:
            return list(self._requests)

    def reset(self) -> None:
        """Forget recorded requests, counters and queued faults."""
        with self._lock:
            self._requests: list[dict[str, Any]] = []
            self.request_count = 0
            self.connections_opened = 0
            self.faults_served: dict[str, int] = {k: 0 for k in FAULT_KINDS}
            self.last_headers: dict[str, str] = {}
            self.headers_seen: list[dict[str, str]] = []  # every chat request's headers (names lower-case)
            self.chunks_sent = 0  # streamed content chunks written
            self.streams_abandoned = 0  # streams whose client went away before [DONE]
            self._queue.clear()
            self.logprobs_supported = True  # False: ignore "logprobs" like an endpoint without support

    def fail_next(self, kind: str, count: int = 1, retry_after: float | None = None) -> None:
        """Make the next ``count`` chat completion requests fail with ``kind``."""
        if kind not in FAULT_KINDS + EXTRA_FAULTS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {FAULT_KINDS + EXTRA_FAULTS}")
        with self._lock:
            self._queue.extend([(kind, retry_after)] * count)

    def start(self) -> "FakeOpenAI":
        """Start serving in a background thread; returns once the port is bound."""
        if self._thread is not None:
            return self
        ready = threading.Event()
        err: list[BaseException] = []

        def run() -> None:
            loop = self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            try:
                self._server = loop.run_until_complete(asyncio.start_server(
                    self._handle, self.host, self.port, limit=1 << 20, backlog=1024))
                self.port = self._server.sockets[0].getsockname()[1]
            except BaseException as e:  # noqa: BLE001 - re-raised in start()
                err.append(e)
            ready.set()
            try:
                if not err:
                    loop.run_forever()
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name="FakeOpenAI", daemon=True)
        self._thread.start()
        ready.wait()
        if err:
            self._thread = None
            raise err[0]
        return self

    def stop(self) -> None:
        """Close the server, cancel pending requests and join the thread."""
        if self._thread is None or self._loop is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout=2)
        except Exception:  # noqa: BLE001 - best effort, still stop the loop
            pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=2)
        self._thread = None

    def __enter__(self) -> "FakeOpenAI":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- internals --------------------------------------------------------
    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        tasks = [t for t in self._tasks if t is not asyncio.current_task()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        with self._lock:
            self.connections_opened += 1
        try:
            while True:
                line = await reader.readline()
                if not line.strip():
                    break
                parts = line.decode("latin-1").split()
                headers: dict[str, str] = {}
                while (h := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = h.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                if len(parts) != 3:
                    await self._write(writer, self._json(400, error_body(
                        "Malformed request line", "invalid_request_error")), False)
                    break
                method, target, version = parts
                body = await reader.readexactly(int(headers.get("content-length", "0") or 0))
                conn = headers.get("connection", "").lower()
                keep = conn != "close" if version == "HTTP/1.1" else conn == "keep-alive"
                resp = await self._dispatch(method, target.split("?", 1)[0], headers, body)
                if resp is None:  # "reset"/"timeout": drop the connection, no answer
                    self._abort(writer)
                    break
                if isinstance(resp, _Stream):
                    if not await self._write_stream(writer, resp, keep):
                        break
                    continue
                await self._write(writer, resp, keep)
                if not keep:
                    break
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            pass
        except asyncio.CancelledError:  # stop(); not re-raised: 3.11 streams would log it
            self._abort(writer)
        finally:
            self._tasks.discard(task)
            writer.close()

    @staticmethod
    def _abort(writer: asyncio.StreamWriter) -> None:
        """Close with a TCP RST (SO_LINGER 0) and no response."""
        sock = writer.get_extra_info("socket")
        try:
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        writer.transport.abort()

    @staticmethod
    async def _write(writer: asyncio.StreamWriter, resp: Response, keep: bool) -> None:
        status, headers, body = resp
        head = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}",
                "Content-Type: application/json", f"Content-Length: {len(body)}",
                f"Connection: {'keep-alive' if keep else 'close'}"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
        await writer.drain()

    async def _write_stream(self, writer: asyncio.StreamWriter, stream: _Stream, keep: bool) -> bool:
        """SSE in HTTP/1.1 chunked encoding; False when the client went away mid-stream."""
        head = ["HTTP/1.1 200 OK", "Content-Type: text/event-stream", "Cache-Control: no-cache",
                "Transfer-Encoding: chunked", f"Connection: {'keep-alive' if keep else 'close'}"]
        try:
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
            for i, event in enumerate([*stream.events, None]):
                if i and stream.delay_s:
                    await asyncio.sleep(stream.delay_s)
                data = f"data: {'[DONE]' if event is None else json.dumps(event)}\n\n".encode()
                writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                await writer.drain()
                if writer.is_closing():
                    raise ConnectionResetError
                if event is not None and event["choices"] and event["choices"][0]["delta"].get("content"):
                    with self._lock:
                        self.chunks_sent += 1
                if self.break_stream_after is not None and i + 1 >= self.break_stream_after:
                    self._abort(writer)
                    return False
            writer.write(b"0\r\n\r\n")
            await writer.drain()
            return True
        except ConnectionError:
            with self._lock:
                self.streams_abandoned += 1
            return False

    @staticmethod
    def _json(status: int, obj: Any, headers: dict[str, str] | None = None) -> Response:
        return status, headers or {}, json.dumps(obj).encode()

    async def _dispatch(self, method: str, path: str, headers: dict[str, str],
                        body: bytes) -> Response | _Stream | None:
        if path in ("/v1/chat/completions", "/chat/completions") and method == "POST":
            return await self._chat(headers, body)
        if path in ("/v1/models", "/models") and method == "GET":
            data = [{"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in MODELS]
            return self._json(200, {"object": "list", "data": data})
        return self._json(404, error_body(f"Invalid URL ({method} {path})",
                                          "invalid_request_error", "not_found"))

    def _pick_fault(self) -> tuple[str, float | None] | None:
        with self._lock:
            if self._queue:
                return self._queue.popleft()
            if self.fault_rate > 0 and self.faults and self._rng.random() < self.fault_rate:
                return self._rng.choice(self.faults), None
        return None

    async def _chat(self, headers: dict[str, str], body: bytes) -> Response | _Stream | None:
        try:
            req = json.loads(body or b"null")
        except ValueError:
            req = None
        with self._lock:
            self.request_count += 1
            self.last_headers = dict(headers)
            self.headers_seen.append(self.last_headers)
            if isinstance(req, dict):
                self._requests.append(req)
        if self.api_key is not None and headers.get("authorization") != f"Bearer {self.api_key}":
            return self._json(401, error_body("Incorrect API key provided (fake).",
                                              "invalid_request_error", "invalid_api_key"))
        if self.latency_ms:
            await asyncio.sleep(self.latency_ms / 1000)
        fault = self._pick_fault()
        if fault is not None:
            kind, retry_after = fault
            with self._lock:
                self.faults_served[kind] = self.faults_served.get(kind, 0) + 1
            if kind == "malformed":
                return 200, {}, b'{"id": "chatcmpl-cut", "object": "chat.completion", "choices": [{"index'
            if kind == "timeout":
                await asyncio.sleep(self.hang_s)
                return None
            if kind == "reset":
                return None
            status, type_, code, msg = _ERRORS[kind]
            extra = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
            return self._json(status, error_body(msg, type_, code), extra)
        if not isinstance(req, dict) or not isinstance(req.get("messages"), list):
            return self._json(400, error_body("Request body must be JSON with 'messages'.",
                                              "invalid_request_error"))
        try:
            content = str((self.responder or default_responder)(req))
        except Exception as e:  # noqa: BLE001 - surface responder bugs as 500
            return self._json(500, error_body(f"responder failed: {e!r}", "server_error"))
        limit = req.get("max_tokens") or req.get("max_completion_tokens")
        if isinstance(limit, int) and limit > 0:
            content = " ".join(content.split()[:limit])
        prompt = sum(_words(_text(m.get("content"))) for m in req["messages"] if isinstance(m, dict))
        completion = _words(content)
        logprobs = None
        if req.get("logprobs") and self.logprobs_supported:
            top = req.get("top_logprobs")
            if top is not None and (not isinstance(top, int) or not 0 <= top <= 20):
                return self._json(400, error_body("top_logprobs must be between 0 and 20 (fake).",
                                                  "invalid_request_error", "invalid_value"))
            logprobs = fake_logprobs(content, top or 0)
        usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
        if req.get("stream"):
            return self._stream(req, content, usage)
        return self._json(200, {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion",
            "created": int(time.time()), "model": req.get("model", "fake-model"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                         "finish_reason": "stop", "logprobs": logprobs}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                      "total_tokens": prompt + completion},
        })


    def _stream(self, req: dict[str, Any], content: str, usage: dict[str, int]) -> _Stream:
        """The answer as OpenAI streams it: a chunk per word, the finish chunk, then (if asked) the usage."""
        include_usage = bool((req.get("stream_options") or {}).get("include_usage"))
        base = {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion.chunk",
                "created": int(time.time()), "model": req.get("model", "fake-model")}

        def chunk(delta: dict[str, str], finish: str | None) -> dict[str, Any]:
            return {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
                    **({"usage": None} if include_usage else {})}

        size = self.chunk_chars
        pieces = ([content[i:i + size] for i in range(0, len(content), size)] if size
                  else re.findall(r"\s*\S+|\s+", content))
        events = [chunk({"role": "assistant", "content": piece}, None) for piece in pieces]
        events.append(chunk({}, "stop"))
        if include_usage:
            events.append({**base, "choices": [], "usage": usage})
        return _Stream(events, self.chunk_delay_ms / 1000)


def main(argv: list[str] | None = None) -> None:
    """Script entry point: serve until SIGTERM/SIGINT."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--latency-ms", type=float, default=0)
    p.add_argument("--fault-rate", type=float, default=0.0)
    p.add_argument("--faults", default="429,500,timeout,reset", help="comma-separated kinds")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--api-key", default=None)
    a = p.parse_args(argv)

    def _term(*_: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, _term)
    srv = FakeOpenAI(latency_ms=a.latency_ms, fault_rate=a.fault_rate, seed=a.seed,
                     faults=[f for f in a.faults.split(",") if f], api_key=a.api_key,
                     host=a.host, port=a.port)
    with srv:
        print(f"READY {srv.base_url}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
