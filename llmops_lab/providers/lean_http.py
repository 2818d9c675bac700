"""The lean transport for batch rows: chat completions over one aiohttp session per batch.

The openai SDK costs ≈ 1.5 ms of CPU per request (request models, header merging, response models), and a batch
at concurrency 64 is bound by the client's CPU; this path costs ≈ 0.2–0.4 ms (``benchmarks/README.md``).
It sends what the SDK sends that an endpoint acts on (the same URL, Authorization, OpenAI-Organization,
OpenAI-Project, Content-Type, the same JSON body) and turns the answer into the same :class:`Completion`.
Every decision on a failure (retry or not, how long to wait, the one-line ProviderError) is the provider's,
shared with the SDK path (``OpenAICompatProvider._status_delay`` / ``_connection_delay``), so both say the same.

Used by ``OpenAICompatProvider.async_client``/``acomplete`` (batch rows and judge rows, through
``evaluation/runner.run_rows``) unless ``batch_transport = "sdk"`` or the base URL carries a query string.
"""
from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING, Any, Callable

from llmops_lab.exceptions import ProviderError
from llmops_lab.providers.base import Completion, Message, ModelId, Usage

if TYPE_CHECKING:
    from llmops_lab.providers.openai_compat import OpenAICompatProvider


class LeanClient:
    """One batch's keep-alive connection pool (belongs to the event loop that made it).

    The pool has no cap of its own: it never holds more connections than requests in flight, and the
    runner's ``AdaptiveLimit`` keeps those at the batch's concurrency, so the pool is sized to it.
    Headers and the URL are built once, here, not per request.
    """

    def __init__(self, url: str, headers: dict[str, str], timeout: float):
        import aiohttp
        import yarl

        self._aiohttp = aiohttp
        self.url = yarl.URL(url, encoded=False)
        # HTTP(S)_PROXY / NO_PROXY as the SDK's httpx reads them, looked up once per batch, not per request
        # (aiohttp's trust_env would look them up, and netrc, on every request).
        from aiohttp.helpers import get_env_proxy_for_url

        try:
            self.proxy, self.proxy_auth = get_env_proxy_for_url(self.url)
        except LookupError:  # no proxy for this URL, or NO_PROXY covers its host
            self.proxy, self.proxy_auth = None, None
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, limit_per_host=0, keepalive_timeout=30),
            # As the SDK's httpx timeout: per connect and per read, not for the whole call.
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=timeout, sock_read=timeout),
            headers=headers, skip_auto_headers=("Accept-Encoding",), auto_decompress=False)

    async def post(self, body: bytes) -> tuple[int, Any, bytes]:
        """(status, headers, body bytes); raises TimeoutError or aiohttp.ClientError."""
        async with self.session.post(self.url, data=body, allow_redirects=False, proxy=self.proxy,
                                     proxy_auth=self.proxy_auth) as response:
            return response.status, response.headers, await response.read()

    async def close(self) -> None:
        await self.session.close()


def encode(model: str, messages: list[Message], params: dict[str, Any]) -> bytes:
    """The request body, encoded once per row (and reused by its retries)."""
    return json.dumps({"model": model, "messages": messages, **params}, ensure_ascii=False,
                      separators=(",", ":")).encode()


async def acomplete(provider: "OpenAICompatProvider", client: LeanClient, model: str, messages: list[Message],
                    params: dict[str, Any], on_rate_limit: Callable[[], None] | None = None) -> Completion:
    """One chat completion with the provider's retries, back-off and error messages."""
    import aiohttp

    body = encode(model, messages, params)
    attempt, start = 0, time.perf_counter()
    while True:
        try:
            status, headers, data = await client.post(body)
        except TimeoutError:  # aiohttp's ServerTimeoutError is one too
            delay = provider._connection_delay(model, attempt, timed_out=True)
        except aiohttp.ClientError:  # refused, reset, closed before the answer
            delay = provider._connection_delay(model, attempt, timed_out=False)
        else:
            if status < 400:
                return completion(provider, _json(provider, model, data), model, start, attempt,
                                  bool(params.get("logprobs")))
            delay = provider._status_delay(status, headers, status_detail(status, data), model, attempt)
            if on_rate_limit is not None and status == 429:
                on_rate_limit()
        await asyncio.sleep(delay)
        attempt += 1


def _json(provider: "OpenAICompatProvider", model: str, data: bytes) -> dict[str, Any]:
    try:
        answer = json.loads(data)
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise ProviderError(provider.malformed_message(model))
    return answer


def status_detail(status: int, data: bytes) -> str:
    """What the SDK puts in its error's message: ``Error code: N`` and the body's ``error.message`` if any."""
    detail = f"Error code: {status}"
    try:
        body = json.loads(data)
    except ValueError:
        return detail
    error = body.get("error", body) if isinstance(body, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    if isinstance(message, str) and message:
        detail += f" - {message}"
    return detail


def completion(provider: "OpenAICompatProvider", answer: dict[str, Any], model: str, start: float, attempt: int,
               want_logprobs: bool) -> Completion:
    """The parsed JSON as the SDK path's Completion; ``extra["raw"]`` is the dict (without token logprobs)."""
    choices = answer.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else None
    usage = answer.get("usage")
    tokens = None
    if choice is not None and want_logprobs:
        from llmops_lab.providers.openai_compat import parse_logprobs

        tokens = parse_logprobs(choice.get("logprobs"))
        if tokens is not None:  # as the SDK path: a secret split over tokens must not sit in the raw copy
            choice["logprobs"] = None
    message = choice.get("message") if choice is not None else None
    return Completion(
        text=(message.get("content") or "") if isinstance(message, dict) else "",
        model_id=ModelId(provider.name, model),
        usage=(Usage(usage.get("prompt_tokens") or 0, usage.get("completion_tokens") or 0)
               if isinstance(usage, dict) else Usage()),
        latency_ms=(time.perf_counter() - start) * 1000,
        finish_reason=choice.get("finish_reason") if choice is not None else None,
        retries=attempt,
        endpoint_host=provider.endpoint_host,
        response_model=answer.get("model"),
        extra={"raw": answer},
        tokens=tokens,
    )
