"""Many calls at once: an asyncio loop in a worker thread (so it never fights Jupyter's own loop),
an adaptive concurrency limit, the response cache (read and written in batches, off the loop), and
shared in-flight requests. The per-call steps (cache key, what is cached, cost) are ``core/steps.py``'s.

Pure orchestration: rows in, :class:`RowResult` out (through ``on_result``, in completion order).
"""
from __future__ import annotations

import asyncio
import collections
import threading
import time
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING, Any, Callable, Iterable

from llmops_lab.core import steps
from llmops_lab.core.cache import CachedResponse
from llmops_lab.exceptions import LlmopsError
from llmops_lab.providers.base import Message, Usage

if TYPE_CHECKING:
    from llmops_lab.core.plan import CallPlan


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
    """A concurrency limit that halves on rate limiting (at most once a second) and creeps back up.

    Taken without a lock while a slot is free (one loop, no thread: nothing can interleave); a full limit
    queues the request, and a freed slot is handed to the oldest one (first come, first served).
    """

    def __init__(self, maximum: int, recover_after: int = 20):
        self.maximum = maximum
        self.limit = maximum
        self.in_flight = 0
        self.recover_after = recover_after
        self._successes = 0
        self._last_cut = 0.0
        self._waiters: collections.deque[asyncio.Future] = collections.deque()
        self.cuts = 0

    async def __aenter__(self) -> None:
        if self.in_flight < self.limit and not self._waiters:
            self.in_flight += 1
            return
        slot = asyncio.get_running_loop().create_future()
        self._waiters.append(slot)
        try:
            await slot  # resolved by _wake, which counted this request in
        except asyncio.CancelledError:
            if slot.done() and not slot.cancelled():  # the slot came just as we were cancelled: give it back
                self.in_flight -= 1
                self._wake()
            raise

    async def __aexit__(self, *exc: Any) -> None:
        self.in_flight -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self.in_flight < self.limit:
            slot = self._waiters.popleft()
            if not slot.done():  # a cancelled waiter is skipped
                self.in_flight += 1
                slot.set_result(None)

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
            self._wake()


LOOKUP_ROWS = 256  # rows looked up in the cache per query: one thread hop and one sqlite query for all of them


def run_rows(plan: "CallPlan", rows: Iterable[RowCall], *, concurrency: int, cache: Any | None, refresh: bool,
             on_result: Callable[[RowResult], None], idle: Callable[[], None] | None = None) -> dict[str, int]:
    """Run every row of ``plan`` (rendered once, by the caller); blocks the caller until done (Ctrl-C cancels
    what is in flight). Used for a batch's rows and for its judge calls (each with its own plan).

    The cache is read in batches before rows are scheduled (``get_many``) and written in batches
    (``put_many``, a group commit a row waits for), both in a worker thread: no sqlite call blocks the loop.
    ``idle`` is called in the caller's thread every 50 ms while it waits (work that can overlap the requests).
    Returns counters: requests sent, cache hits, shared (deduplicated) rows, limit cuts.
    """
    provider, model, params = plan.provider, plan.model_id.model, plan.params
    stats = {"requests": 0, "cache_hits": 0, "shared": 0, "limit_cuts": 0}
    failure: list[BaseException] = []
    want_tokens = bool(params.get("logprobs"))
    use_cache = cache is not None

    async def main() -> None:
        limit = AdaptiveLimit(concurrency)
        client = provider.async_client()
        in_flight: dict[str, asyncio.Future] = {}
        # Keys this run cached since the last two lookups: a duplicate row looked up before its twin was
        # stored reads it back. Older ones need no memory: later lookups see them (flat for 100k rows).
        stored: list[set[str]] = [set(), set()]
        writes = _GroupWrites(cache) if use_cache else None
        pending: set[asyncio.Task] = set()

        def hit_result(row: RowCall, hit: CachedResponse, start_ns: int) -> RowResult:
            stats["cache_hits"] += 1
            return RowResult(row.index, hit.text, Usage(hit.prompt_tokens, hit.completion_tokens), 0.0, True, 0,
                             None, hit.finish_reason, start_ns, time.time_ns(),
                             steps.hit_tokens(hit) if want_tokens else None)

        async def one(row: RowCall, hit: CachedResponse | None) -> None:
            start_ns = time.time_ns()
            if row.error is not None:
                on_result(RowResult(row.index, None, Usage(), 0.0, False, 0, row.error, None, start_ns, start_ns))
                return
            if hit is not None:
                on_result(hit_result(row, hit, start_ns))
                return
            if not refresh and (row.cache_key in stored[0] or row.cache_key in stored[1]):  # a twin's answer (rare)
                hit = await asyncio.to_thread(cache.get, row.cache_key)
                if hit is not None:
                    on_result(hit_result(row, hit, start_ns))
                    return
            shared = in_flight.get(row.cache_key) if row.cache_key is not None else None
            if shared is not None:
                stats["shared"] += 1
                completion, error = await asyncio.shield(shared)
            else:
                future = asyncio.get_running_loop().create_future()
                if row.cache_key is not None:
                    in_flight[row.cache_key] = future
                try:
                    completion, error = await send(row)
                except BaseException as err:  # the rows sharing this request must not wait for ever
                    if isinstance(err, asyncio.CancelledError):
                        future.cancel()
                    else:
                        future.set_exception(err)
                        future.exception()  # retrieved here; the waiters get it too
                    in_flight.pop(row.cache_key, None)
                    raise
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
            # The slot is held until the answer is committed: at most `concurrency` answers are ever paid for
            # and not yet cached, so a kernel killed mid-batch pays again for no more than that.
            async with limit:
                stats["requests"] += 1
                try:
                    completion = await provider.acomplete(client, model, row.messages, params,
                                                          on_rate_limit=limit.rate_limited)
                except LlmopsError as err:  # the batch goes on; the row is marked
                    return None, str(err)
                limit.succeeded()
                if writes is not None and row.cache_key is not None:
                    value = steps.to_cache(completion, want_tokens, row.messages)  # masked; None: fail closed
                    if value is not None:
                        await writes.put(row.cache_key, value)  # committed before the row completes
                        stored[0].add(row.cache_key)
            return completion, None

        # Bound the tasks alive at once so 100k rows do not become 100k coroutines. A semaphore, not
        # asyncio.wait per row (which hooks and unhooks every pending task each time: O(window) per row).
        window = asyncio.Semaphore(concurrency * 4)
        crashed: list[BaseException] = []

        def finished(task: asyncio.Task) -> None:
            pending.discard(task)
            window.release()
            if not task.cancelled() and task.exception() is not None and not crashed:
                crashed.append(task.exception())  # a bug or a cache failure: the batch stops

        try:
            source = iter(rows)
            while chunk := list(islice(source, LOOKUP_ROWS)):
                hits: dict[str, CachedResponse] = {}
                stored[1], stored[0] = stored[0], set()  # before the lookup: what it cannot see yet stays
                if use_cache and not refresh:
                    keys = [r.cache_key for r in chunk if r.cache_key is not None and r.error is None]
                    if keys:
                        hits = await asyncio.to_thread(cache.get_many, keys)
                for row in chunk:
                    await window.acquire()
                    if crashed:
                        raise crashed[0]
                    hit = hits.get(row.cache_key) if row.cache_key is not None else None  # duplicates too
                    task = asyncio.create_task(one(row, hit))
                    pending.add(task)
                    task.add_done_callback(finished)
                del chunk, hits
            while pending and not crashed:
                await asyncio.wait(pending, return_when=asyncio.FIRST_EXCEPTION)
            if crashed:
                raise crashed[0]
        finally:
            for task in list(pending):
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
            try:
                loop.run_until_complete(loop.shutdown_default_executor())  # the cache's worker thread
            finally:
                loop.close()

    thread = threading.Thread(target=worker, name="llmops-batch", daemon=True)
    thread.start()
    try:
        while thread.is_alive():
            thread.join(0.2 if idle is None else 0.05)
            if idle is not None:
                idle()
    except BaseException:  # the kernel's interrupt (or idle failed): cancel in-flight requests, keep what finished
        if main_task:
            loop.call_soon_threadsafe(main_task[0].cancel)
        thread.join(10)
        raise
    if failure and not isinstance(failure[0], asyncio.CancelledError):
        raise failure[0]
    return stats


class _GroupWrites:
    """Cache writes batched off the loop: rows that finish together are committed in one ``put_many``
    (in a worker thread), and each waits for its commit before it completes (invariant: cached first)."""

    def __init__(self, cache: Any):
        self.cache = cache
        self.queue: list[tuple[str, CachedResponse, asyncio.Future]] = []
        self.flushing: asyncio.Task | None = None

    async def put(self, key: str, value: CachedResponse) -> None:
        done = asyncio.get_running_loop().create_future()
        self.queue.append((key, value, done))
        if self.flushing is None or self.flushing.done():
            self.flushing = asyncio.create_task(self._flush())
        await done

    async def _flush(self) -> None:
        while self.queue:
            group, self.queue = self.queue, []
            try:
                await asyncio.to_thread(self.cache.put_many, [(key, value) for key, value, _ in group])
            except BaseException as err:  # noqa: BLE001 - every waiting row gets it (as cache.put raised before)
                for _, _, done in group:
                    if not done.done():
                        done.set_exception(err)
                if isinstance(err, asyncio.CancelledError):
                    raise
                continue
            for _, _, done in group:
                if not done.done():
                    done.set_result(None)
