"""Many calls at once: an asyncio loop in a worker thread (so it never fights Jupyter's own loop),
an adaptive concurrency limit, the response cache, and shared in-flight requests.

Pure orchestration: rows in, :class:`RowResult` out (through ``on_result``, in completion order).
"""
from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterable

from llmops_lab.evaluation.cache import CachedResponse
from llmops_lab.exceptions import LlmopsError
from llmops_lab.providers.base import Message, Provider, Usage
from llmops_lab.trust.redaction import FAILED_MARK, mask_text


@dataclass
class RowCall:
    index: int
    messages: list[Message]
    cache_key: str | None = None
    error: str | None = None  # the row could not be rendered: reported, never sent


@dataclass
class RowResult:
    index: int
    text: str | None
    usage: Usage
    latency_ms: float
    cached: bool
    retries: int
    error: str | None
    finish_reason: str | None
    start_ns: int
    end_ns: int
    tokens: list[Any] | None = None  # TokenLogprob list, only for logprobs requests (in memory only)


class AdaptiveLimit:
    """A concurrency limit that halves on rate limiting (at most once a second) and creeps back up."""

    def __init__(self, maximum: int, recover_after: int = 20):
        self.maximum = maximum
        self.limit = maximum
        self.in_flight = 0
        self.recover_after = recover_after
        self._successes = 0
        self._last_cut = 0.0
        self._cond = asyncio.Condition()
        self.cuts = 0

    async def __aenter__(self) -> None:
        async with self._cond:
            await self._cond.wait_for(lambda: self.in_flight < self.limit)
            self.in_flight += 1

    async def __aexit__(self, *exc: Any) -> None:
        async with self._cond:
            self.in_flight -= 1
            # One slot freed: wake one waiter (plus one per slot a recovery added), not all of them.
            self._cond.notify(max(1, self.limit - self.in_flight))

    def rate_limited(self) -> None:
        now = time.monotonic()
        if now - self._last_cut >= 1.0 and self.limit > 1:
            self.limit = max(1, self.limit // 2)
            self._last_cut = now
            self.cuts += 1
        self._successes = 0

    def succeeded(self) -> None:
        self._successes += 1
        if self.limit < self.maximum and self._successes >= self.recover_after:
            self.limit += 1
            self._successes = 0


def run_rows(provider: Provider, model: str, params: dict[str, Any], rows: Iterable[RowCall], *,
             concurrency: int, cache: Any | None, refresh: bool,
             on_result: Callable[[RowResult], None]) -> dict[str, int]:
    """Run every row; blocks the caller until done (Ctrl-C cancels what is in flight).

    Returns counters: requests sent, cache hits, shared (deduplicated) rows, limit cuts.
    """
    stats = {"requests": 0, "cache_hits": 0, "shared": 0, "limit_cuts": 0}
    failure: list[BaseException] = []
    want_tokens = bool(params.get("logprobs"))

    async def main() -> None:
        limit = AdaptiveLimit(concurrency)
        client = provider.async_client()
        in_flight: dict[str, asyncio.Future] = {}
        pending: set[asyncio.Task] = set()

        async def one(row: RowCall) -> None:
            start_ns = time.time_ns()
            if row.error is not None:
                on_result(RowResult(row.index, None, Usage(), 0.0, False, 0, row.error, None, start_ns, start_ns))
                return
            if row.cache_key is not None and not refresh and cache is not None:
                hit = cache.get(row.cache_key)
                if hit is not None:
                    stats["cache_hits"] += 1
                    on_result(RowResult(row.index, hit.text, Usage(hit.prompt_tokens, hit.completion_tokens), 0.0,
                                        True, 0, None, hit.finish_reason, start_ns, time.time_ns(),
                                        _cached_tokens(hit) if want_tokens else None))
                    return
            shared = in_flight.get(row.cache_key) if row.cache_key is not None else None
            if shared is not None:
                stats["shared"] += 1
                completion, error = await asyncio.shield(shared)
            else:
                future = asyncio.get_running_loop().create_future()
                if row.cache_key is not None:
                    in_flight[row.cache_key] = future
                completion, error = await send(row)
                future.set_result((completion, error))
                in_flight.pop(row.cache_key, None)
            end_ns = time.time_ns()
            if error is not None:
                on_result(RowResult(row.index, None, Usage(), (end_ns - start_ns) / 1e6, False, 0, error, None,
                                    start_ns, end_ns))
            else:
                on_result(RowResult(row.index, completion.text, completion.usage, completion.latency_ms,
                                    shared is not None, completion.retries, None, completion.finish_reason,
                                    start_ns, end_ns, completion.tokens))

        async def send(row: RowCall) -> tuple[Any, str | None]:
            async with limit:
                stats["requests"] += 1
                try:
                    completion = await provider.acomplete(client, model, row.messages, params,
                                                          on_rate_limit=limit.rate_limited)
                except LlmopsError as err:  # the batch goes on; the row is marked
                    return None, str(err)
            limit.succeeded()
            if cache is not None and row.cache_key is not None:
                stored = mask_text(completion.text)  # the log-side redaction (docs/architecture.md); key = what was sent
                tokens, ok = _storable_tokens(completion.tokens) if want_tokens else (None, True)
                if ok and (stored != FAILED_MARK or completion.text == FAILED_MARK):  # fail closed: not cached
                    # Written before the row completes: a kernel killed mid-batch never pays for it twice.
                    cache.put(row.cache_key, replace(CachedResponse.from_completion(completion), text=stored,
                                                     tokens=tokens))
            return completion, None

        try:
            for row in rows:
                # Bound the tasks alive at once so 100k rows do not become 100k coroutines.
                while len(pending) >= concurrency * 4:
                    done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                    pending.difference_update(done)
                    for task in done:
                        task.result()
                task = asyncio.create_task(one(row))
                pending.add(task)
            while pending:
                done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                pending.difference_update(done)
                for task in done:
                    task.result()
        finally:
            for task in pending:
                task.cancel()
            if client is not None and hasattr(client, "close"):
                await client.close()
            stats["limit_cuts"] = limit.cuts

    loop = asyncio.new_event_loop()
    main_task: list[asyncio.Task] = []

    def worker() -> None:
        try:
            main_task.append(loop.create_task(main()))
            loop.run_until_complete(main_task[0])
        except BaseException as err:  # noqa: BLE001 - re-raised in the caller's thread
            failure.append(err)
        finally:
            loop.close()

    thread = threading.Thread(target=worker, name="llmops-batch", daemon=True)
    thread.start()
    try:
        while thread.is_alive():
            thread.join(0.2)
    except KeyboardInterrupt:  # the kernel's interrupt: cancel in-flight requests, keep what finished
        if main_task:
            loop.call_soon_threadsafe(main_task[0].cancel)
        thread.join(10)
        raise
    if failure and not isinstance(failure[0], asyncio.CancelledError):
        raise failure[0]
    return stats


def _cached_tokens(hit: CachedResponse) -> list[Any] | None:
    if hit.tokens is None:
        return None
    from llmops_lab.core.explain import tokens_from_json

    return tokens_from_json(hit.tokens)


def _storable_tokens(tokens: list[Any] | None) -> tuple[str | None, bool]:
    """(masked tokens as JSON, ok) for the cache: masked like the text (log policy); not ok -> cache nothing."""
    if tokens is None:
        return None, True
    from llmops_lab.core.explain import storable_tokens, tokens_to_json

    try:
        return tokens_to_json(storable_tokens(tokens)), True
    except Exception:  # noqa: BLE001 - fail closed: an unmasked token is never stored
        return None, False
