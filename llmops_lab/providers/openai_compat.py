"""OpenAI and every OpenAI-compatible endpoint (vLLM, Ollama, llama.cpp server, Azure via base_url).

The SDK's own retries are off (max_retries=0) so that retries are counted here, honour Retry-After,
tell the batch runner about rate limits, and end in one clear error. ``complete`` is the sync path
(single calls); ``acomplete`` the async one (batches, on an ``AsyncOpenAI`` owned by the batch's loop);
``stream`` is ``complete`` over SSE (``stream_options.include_usage``: the last chunk carries the usage, so
tokens and cost are the endpoint's own, not an estimate).
"""
from __future__ import annotations

import asyncio
import json
import time
from typing import Any, Callable
from urllib.parse import urlparse

from llmops_lab.exceptions import ProviderError, StreamBroken
from llmops_lab.providers.base import (Completion, Message, ModelId, OnText, RetryPolicy, TokenLogprob, Usage,
                                       parse_retry_after)

RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})


class OpenAICompatProvider:
    """Chat completions through the ``openai`` SDK against ``base_url``."""

    def __init__(self, name: str, base_url: str | None, api_key: str, timeout: float, max_retries: int,
                 key_source: str = "the API key", transport: str = "lean"):
        import openai

        self.name = name
        self.base_url = base_url
        self.endpoint_host = urlparse(base_url).netloc if base_url else "api.openai.com"
        self.policy = RetryPolicy(max_retries=max_retries)
        self._key_source = key_source  # the variable's name, for messages; never the key
        self._client_args = {"base_url": base_url, "api_key": api_key, "timeout": timeout, "max_retries": 0}
        self._client = openai.OpenAI(**self._client_args)
        self._openai = openai
        # Batch rows go over providers/lean_http.py unless told otherwise, or unless the base URL has a query
        # string (Azure-style ?api-version=): the SDK's URL handling stays the reference there.
        self.transport = "sdk" if transport == "sdk" or urlparse(str(self._client.base_url)).query else "lean"
        self._timeout = timeout

    # -- the two call loops ---------------------------------------------------------------------------
    def complete(self, model: str, messages: list[Message], params: dict[str, Any]) -> Completion:
        request = {"model": model, "messages": messages, **_sdk_params(params)}
        attempt, start = 0, time.perf_counter()
        while True:
            try:
                response = self._client.chat.completions.create(**request)
                return self._completion(response, model, start, attempt, bool(params.get("logprobs")))
            except self._openai.OpenAIError as err:
                delay = self._retry_delay(err, model, attempt)
            except json.JSONDecodeError:  # the SDK lets it through: a 2xx whose body is not JSON
                raise ProviderError(self.malformed_message(model)) from None
            time.sleep(delay)
            attempt += 1

    def stream(self, model: str, messages: list[Message], params: dict[str, Any], on_text: OnText) -> Completion:
        """``complete``, streamed: ``on_text`` gets each piece. Retries only before the first piece (after it the
        user has seen text that a retry would not repeat); a kernel interrupt closes the connection, which stops
        the generation server-side, and returns the partial answer."""
        request = {"model": model, "messages": messages, **_sdk_params(params), "stream": True,
                   "stream_options": {"include_usage": True}}
        answer = _StreamedAnswer(time.perf_counter(), on_text)
        attempt = 0
        try:
            while True:
                try:
                    with self._client.chat.completions.create(**request) as chunks:
                        for chunk in chunks:
                            answer.add(chunk)
                    return self._streamed(answer, model, attempt)
                except self._openai.OpenAIError as err:
                    if answer.pieces:  # the text so far is kept: logged as the failed run's output
                        answer.finish_reason = "error"
                        raise StreamBroken(
                            f"{self.name}:{model} ({self.endpoint_host}): the stream broke after "
                            f"{len(answer.text)} characters (kept as the failed run's output): "
                            f"{_error_detail(err)}",
                            self._streamed(answer.estimate_usage(messages), model, attempt)) from None
                    delay = self._retry_delay(err, model, attempt)
                time.sleep(delay)
                attempt += 1
        except KeyboardInterrupt:  # leaving the `with` closed the response: the endpoint stops generating
            answer.finish_reason = "interrupted"
            return self._streamed(answer.estimate_usage(messages), model, attempt, interrupted=True)

    def async_client(self) -> Any:
        """A client for one event loop (connections belong to the loop that made them): the lean transport's
        ``LeanClient`` (providers/lean_http.py), or an ``AsyncOpenAI`` with ``transport="sdk"``."""
        if self.transport == "sdk":
            return self._openai.AsyncOpenAI(**self._client_args)
        from llmops_lab.providers.lean_http import LeanClient

        sdk = self._client  # its resolved URL and headers: the lean path sends what the SDK would
        headers = {"Content-Type": "application/json", "Accept": "application/json",
                   "User-Agent": f"llmops-lab (lean; {sdk.user_agent})"}
        if sdk.api_key:
            headers["Authorization"] = f"Bearer {sdk.api_key}"
        if sdk.organization is not None:
            headers["OpenAI-Organization"] = sdk.organization
        if sdk.project is not None:
            headers["OpenAI-Project"] = sdk.project
        return LeanClient(f"{sdk.base_url}chat/completions", headers, self._timeout)

    async def acomplete(self, client: Any, model: str, messages: list[Message], params: dict[str, Any],
                        on_rate_limit: Callable[[], None] | None = None) -> Completion:
        if not isinstance(client, self._openai.AsyncOpenAI):  # the lean client of async_client()
            from llmops_lab.providers import lean_http

            return await lean_http.acomplete(self, client, model, messages, _sdk_params(params), on_rate_limit)
        request = {"model": model, "messages": messages, **_sdk_params(params)}
        attempt, start = 0, time.perf_counter()
        while True:
            try:
                response = await client.chat.completions.create(**request)
                return self._completion(response, model, start, attempt, bool(params.get("logprobs")))
            except self._openai.OpenAIError as err:
                delay = self._retry_delay(err, model, attempt)
                if on_rate_limit is not None and getattr(err, "status_code", None) == 429:
                    on_rate_limit()
            except json.JSONDecodeError:
                raise ProviderError(self.malformed_message(model)) from None
            await asyncio.sleep(delay)
            attempt += 1

    # -- shared decisions -----------------------------------------------------------------------------
    def _retry_delay(self, err: Exception, model: str, attempt: int) -> float:
        """Seconds to wait before the next try, or raise the final one-line ProviderError."""
        openai = self._openai
        if isinstance(err, openai.APIStatusError):
            return self._status_delay(err.status_code, err.response.headers, _error_detail(err), model, attempt)
        if isinstance(err, openai.APIConnectionError):  # includes APITimeoutError
            return self._connection_delay(model, attempt, isinstance(err, openai.APITimeoutError))
        raise ProviderError(f"{self.name}:{model} failed: {type(err).__name__}: {err}") from None

    # Both transports decide through these two, so they retry, wait and fail alike.
    def _status_delay(self, status: int, headers: Any, detail: str, model: str, attempt: int) -> float:
        if status in RETRY_STATUS and attempt < self.policy.max_retries:
            return self.policy.delay(attempt, parse_retry_after(headers))
        raise ProviderError(self._status_message(model, status, " ".join(detail.split())[:300], attempt)) from None

    def _connection_delay(self, model: str, attempt: int, timed_out: bool) -> float:
        if attempt < self.policy.max_retries:
            return self.policy.delay(attempt)
        what = "timed out" if timed_out else "could not connect"
        raise ProviderError(f"{self.name}:{model} {what} ({self.endpoint_host}) after {attempt + 1} "
                            f"tries: check the endpoint is up, or raise timeout= / max_retries=") from None

    def malformed_message(self, model: str) -> str:
        return (f"{self.name}:{model} ({self.endpoint_host}) answered with a body that is not a JSON object: "
                "check that base_url points at an OpenAI-compatible API")

    def _completion(self, response: Any, model: str, start: float, attempt: int,
                    want_logprobs: bool = False) -> Completion:
        choice = response.choices[0] if response.choices else None
        usage = response.usage
        # Parsed only when asked for: the default path stays as cheap as a bare SDK call.
        tokens = parse_logprobs(getattr(choice, "logprobs", None)) if want_logprobs and choice else None
        if tokens is not None:
            # The tokens live in Completion.tokens; the raw copy (shown by `%llm last`, whose masking sees one
            # flat string) must not hold them: a secret split over tokens would escape it.
            choice.logprobs = None
        return Completion(
            text=(choice.message.content or "") if choice else "",
            model_id=ModelId(self.name, model),
            usage=Usage(usage.prompt_tokens or 0, usage.completion_tokens or 0) if usage else Usage(),
            latency_ms=(time.perf_counter() - start) * 1000,
            finish_reason=choice.finish_reason if choice else None,
            retries=attempt,
            endpoint_host=self.endpoint_host,
            response_model=response.model,
            extra={"raw": response},  # the SDK object; serialised only if `%llm last` asks for it
            tokens=tokens,
        )

    def _streamed(self, answer: _StreamedAnswer, model: str, attempt: int, interrupted: bool = False) -> Completion:
        return Completion(
            text=answer.text, model_id=ModelId(self.name, model), usage=answer.usage,
            latency_ms=(time.perf_counter() - answer.start) * 1000, finish_reason=answer.finish_reason,
            retries=attempt, endpoint_host=self.endpoint_host, response_model=answer.response_model,
            extra={"raw": answer.last_chunk, "chunks": answer.chunks}, ttft_ms=answer.ttft_ms,
            interrupted=interrupted, usage_estimated=answer.usage_estimated)

    def _status_message(self, model: str, status: int, detail: str, attempt: int) -> str:
        where = f"{self.name}:{model} ({self.endpoint_host})"
        if status == 401:
            return f"{where} rejected {self._key_source} (401 unauthorized): check the key"
        if status == 403:
            return f"{where} refused access (403): the key lacks permission for this model"
        if status == 404:
            return f"{where}: model or endpoint not found (404): check the model name and base_url"
        if status in RETRY_STATUS:
            return (f"{where} failed after {attempt + 1} tries: HTTP {status} {detail}: "
                    "try again later, lower the concurrency, or raise max_retries=")
        return f"{where} rejected the request (HTTP {status}): {detail}"


class _StreamedAnswer:
    """What an SSE stream has delivered so far: text pieces, the usage chunk, when the first piece came."""

    def __init__(self, start: float, on_text: OnText):
        self.start, self.on_text = start, on_text
        self.pieces: list[str] = []
        self.usage = Usage()
        self.finish_reason: str | None = None
        self.response_model: str | None = None
        self.ttft_ms: float | None = None
        self.chunks = 0
        self.last_chunk: Any = None
        self.usage_estimated = False

    def estimate_usage(self, messages: list[Message]) -> "_StreamedAnswer":
        """A stream cut before its usage chunk: estimate what was paid for (prompt characters / 4, one token
        per text chunk, as endpoints stream about one token per chunk), and say it is an estimate."""
        if self.usage == Usage():
            self.usage = Usage(max(1, sum(len(str(m.get("content") or "")) for m in messages) // 4),
                               len(self.pieces))
            self.usage_estimated = True
        return self

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    def add(self, chunk: Any) -> None:
        self.chunks += 1
        self.last_chunk = chunk
        self.response_model = chunk.model or self.response_model
        if chunk.usage is not None:  # the include_usage chunk: no choices, the whole call's tokens
            self.usage = Usage(chunk.usage.prompt_tokens or 0, chunk.usage.completion_tokens or 0)
        for choice in chunk.choices or ():
            self.finish_reason = choice.finish_reason or self.finish_reason
            piece = choice.delta.content if choice.delta is not None else None
            if piece:
                if self.ttft_ms is None:
                    self.ttft_ms = (time.perf_counter() - self.start) * 1000
                self.pieces.append(piece)
                self.on_text(piece)


def _sdk_params(params: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in params.items() if v is not None}
    if isinstance(out.get("stop"), str):
        out["stop"] = [out["stop"]]
    return out


def parse_logprobs(logprobs: Any) -> list[TokenLogprob] | None:
    """``choice.logprobs`` (SDK object or plain dict) -> provider-neutral tokens; None when absent.

    >>> parse_logprobs({"content": [{"token": "Hi", "logprob": -0.1, "bytes": [72, 105],
    ...                              "top_logprobs": [{"token": "Hi", "logprob": -0.1}]}]})[0].token
    'Hi'

    A character split over several tokens (UTF-8 bytes, e.g. an emoji) arrives as byte fragments whose
    ``token`` is an escape like ``\\xf0\\x9f``: consecutive fragments are merged into one token (the
    logprobs add up: the joint probability), so the tokens join back to the answer text.
    """
    content = _get(logprobs, "content") if logprobs is not None else None
    if content is None:
        return None
    out: list[TokenLogprob] = []
    pending: bytes = b""
    pending_logprob = 0.0
    pending_top: tuple[tuple[str, float], ...] = ()
    for item in content:
        token, logprob = str(_get(item, "token") or ""), float(_get(item, "logprob") or 0.0)
        top = tuple((str(_get(t, "token") or ""), float(_get(t, "logprob") or 0.0))
                    for t in (_get(item, "top_logprobs") or ()))
        raw = _get(item, "bytes")
        if raw is not None and (pending or _is_fragment(bytes(raw))):
            if not pending:
                pending_logprob, pending_top = 0.0, top
            pending += bytes(raw)
            pending_logprob += logprob
            try:
                token = pending.decode("utf-8")
            except UnicodeDecodeError:
                continue  # the character is not complete yet
            out.append(TokenLogprob(token, pending_logprob, pending_top))
            pending = b""
            continue
        out.append(TokenLogprob(token, logprob, top))
    if pending:  # cut off mid-character (max_tokens): keep what the endpoint said
        out.append(TokenLogprob(pending.decode("utf-8", errors="replace"), pending_logprob, pending_top))
    return out


def _is_fragment(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
        return False
    except UnicodeDecodeError:
        return True


def _get(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def _error_detail(err: Any) -> str:
    """The server's own message (the SDK extracts ``error.message``), on one short line."""
    return " ".join(str(getattr(err, "message", err)).split())[:300]
