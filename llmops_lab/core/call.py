"""One call, end to end: ``run`` (``llmops_lab.run``, ``%%llm``) = plan -> render -> budget -> provider ->
record -> spool. The steps themselves live in one place each (``core/steps.py`` lists them), shared with
batch rows, comparison variants and judge calls; single calls never use the response cache. A conversation's
turn (``core/conversation.py``) is prepared with its history, then takes the same ``complete``.

Streaming (``run(..., stream=True)``): the provider hands the answer over piece by piece (``Provider.stream``),
the record gets ``ttft_ms``; a kernel interrupt mid-stream keeps the partial answer, logs it as an
interrupted run (MLflow status KILLED) and raises :class:`~llmops_lab.exceptions.StreamInterrupted`.
"""
from __future__ import annotations

import time
from typing import Any, Mapping

from llmops_lab.config import Settings, get_settings
from llmops_lab.core import records
from llmops_lab.core.plan import (  # noqa: F401
    DEFAULT_TOP_LOGPROBS,
    MAX_TOP_LOGPROBS,
    CallPlan,
    PromptCall,
    logprob_params,
    plan_call,
    prepare,
)
from llmops_lab.core.results import LLMResult
from llmops_lab.exceptions import ConfigError, ProviderError, StreamInterrupted
from llmops_lab.providers.base import Completion, OnText


def build_record(call: PromptCall, settings: Settings, *, kind: str, start_ns: int, end_ns: int,
                 completion: Completion | None, error: str | None) -> records.SingleRecord:
    """The spool record of one call: everything MLflow will get, and nothing secret (redacted, fail closed)."""
    from llmops_lab.core import steps

    return records.single(call.plan, call.messages, call.variables_logged, settings, kind=kind, start_ns=start_ns,
                          end_ns=end_ns, completion=completion, error=error,
                          cost_usd=steps.cost(call.plan, completion.usage, settings) if completion else None,
                          conversation=call.conversation)


def execute(call: PromptCall, settings: Settings, *, kind: str = "single",
            on_text: OnText | None = None) -> tuple[Completion, dict[str, Any]]:
    """Send the call (streamed to ``on_text`` when given); a provider failure is logged as a failed run, then
    raised. An interrupted stream returns normally: ``completion.interrupted`` says so."""
    from llmops_lab.tracking import submit

    start_ns = time.time_ns()
    try:
        if on_text is None:
            completion = call.provider.complete(call.model_id.model, call.messages, call.params)
        else:
            begin = getattr(on_text, "begin", None)
            if callable(begin):  # a display of the stream: it masks the prompt's secrets the answer repeats
                begin(call.messages)
            completion = call.provider.stream(call.model_id.model, call.messages, call.params, on_text)
    except ProviderError as err:
        if settings.tracking:
            submit(build_record(call, settings, kind=kind, start_ns=start_ns, end_ns=time.time_ns(),
                                completion=None, error=str(err)), settings)
        raise
    record = build_record(call, settings, kind=kind, start_ns=start_ns, end_ns=time.time_ns(),
                          completion=completion, error=None)
    return completion, record


def run(template: str, variables: Mapping[str, Any] | None = None, *, model: str | None = None,
        name: str | None = None, system: str | None = None, max_cost: float | None = None,
        force: bool = False, logprobs: bool = False, top_logprobs: int | None = None, stream: bool = False,
        on_text: OnText | None = None, **params: Any) -> LLMResult:
    """Render ``template`` with ``variables``, call the model, log the call to MLflow, return the result.

    >>> r = llmops_lab.run("Summarize in one sentence: {{ article }}", {"article": text},  # doctest: +SKIP
    ...                    model="openai:gpt-4o-mini", name="summarize", temperature=0, max_tokens=64)
    >>> print(r.text, r.latency_ms, r.cost_usd, r.run_id)                     # doctest: +SKIP

    ``params`` are generation parameters (temperature, max_tokens, top_p, seed, stop); anything else
    is a ConfigError. ``model`` defaults to the configured model, ``name`` to ``prompt-<hash>``.
    ``max_cost`` (USD, default from settings) refuses a call whose upper-bound cost is higher;
    ``force=True`` skips the budget checks.

    ``logprobs=True`` (``top_logprobs`` alternatives per token, 0-20, default 5) asks the provider for token
    log-probabilities: ``r.tokens``, ``r.logprobs_frame()``, and in a notebook the answer shaded by
    probability with the alternatives on hover. Tokens are kept in memory for display only: they are never
    written to the spool, MLflow or the cache unmasked (see :mod:`llmops_lab.core.explain`).

    >>> r = llmops_lab.run("Capital of France?", logprobs=True, top_logprobs=3, temperature=0)  # doctest: +SKIP
    >>> r.logprobs_frame().head()                                                              # doctest: +SKIP

    ``stream=True`` prints the answer as it arrives (masked for display, like a cell), or hands each raw piece
    to ``on_text(piece)``; the result is the same ``LLMResult``, with ``ttft_ms`` (time to first token). Usage
    is the endpoint's own (``stream_options.include_usage``). A kernel interrupt stops the generation within
    a piece: the partial answer is logged as an interrupted run and
    :class:`~llmops_lab.exceptions.StreamInterrupted` (a KeyboardInterrupt) is raised with it as ``.result``.

    >>> r = llmops_lab.run("Tell me a story about {{ x }}", {"x": "a cat"}, stream=True)  # doctest: +SKIP
    >>> r.ttft_ms, r.latency_ms                                                              # doctest: +SKIP
    """
    from llmops_lab.core.options import refuse_options

    refuse_options("run", params)  # batch/compare keywords: a one-line error that names the right function
    check_streaming(logprobs, stream, on_text)
    started = time.perf_counter()
    settings = get_settings()
    call = prepare(template, variables, model=model, name=name, system=system, params=params, settings=settings,
                   logprobs=logprobs, top_logprobs=top_logprobs)
    return complete(call, settings, max_cost=max_cost, force=force, on_text=stream_target(stream, on_text),
                    started=started)


def check_streaming(logprobs: bool, stream: bool, on_text: OnText | None, where: str = "run") -> None:
    if logprobs and (stream or on_text is not None):
        raise ConfigError(f"{where}(): logprobs=True does not stream (the shaded answer needs every token): "
                          "drop stream= or logprobs=")


def stream_target(stream: bool, on_text: OnText | None) -> OnText | None:
    """Where streamed pieces go: ``on_text``, else (``stream=True``) printed as a notebook may keep them."""
    return _StreamPrinter() if stream and on_text is None else on_text


def complete(call: PromptCall, settings: Settings, *, max_cost: float | None, force: bool,
             on_text: OnText | None, started: float) -> LLMResult:
    """A prepared call from the budget check on: send, record, spool, result. ``run`` and a conversation's
    ``send`` both end here, so a chat turn is a call like any other."""
    from llmops_lab.core import budget, debug
    from llmops_lab.tracking import submit

    rendered = time.perf_counter()
    budget.check(call.model_id, lambda: budget.estimate(call.model_id, [call.messages], call.params, settings),
                 settings, max_cost=max_cost, force=force, what="call")
    checked = time.perf_counter()
    completion, record = execute(call, settings, on_text=on_text)
    answered = time.perf_counter()
    ticket = submit(record, settings) if settings.tracking else None
    spooled = time.perf_counter()
    budget.note_spend(record["cost_usd"])
    debug.remember(record, completion, ticket, {
        "render_ms": (rendered - started) * 1000, "budget_ms": (checked - rendered) * 1000,
        "provider_ms": (answered - checked) * 1000, "spool_ms": (spooled - answered) * 1000})
    result = LLMResult(
        text=completion.text, model=record["model"], usage=record["usage"], latency_ms=completion.latency_ms,
        cost_usd=record["cost_usd"], prompt_name=call.name, messages=call.messages, params=call.params,
        record_id=record["id"], finish_reason=completion.finish_reason, retries=completion.retries,
        _ticket=ticket, tokens=completion.tokens, ttft_ms=completion.ttft_ms, interrupted=completion.interrupted)
    if isinstance(on_text, _StreamPrinter):
        on_text.finish(result.text)
    if completion.interrupted:
        raise StreamInterrupted(result)
    return result


class _StreamPrinter:
    """``run(stream=True)`` without ``on_text``: the answer printed as it arrives, as a notebook may keep it
    (masked for display, the prompt's secrets in any form, the unfinished tail held back until it can be
    judged)."""

    def __init__(self) -> None:
        from llmops_lab.trust.display import StreamView

        self.pieces: list[str] = []
        self.printed = ""
        self.view = StreamView()

    def begin(self, messages: list[dict[str, Any]]) -> None:
        from llmops_lab.trust.display import StreamView

        self.view = StreamView(m.get("content") for m in messages)

    def __call__(self, piece: str) -> None:
        self.pieces.append(piece)
        self._print(self.view("".join(self.pieces)))

    def finish(self, text: str) -> None:
        shown = self.view.final(text).lstrip()
        if not shown.startswith(self.printed):  # a mask changed text already printed: print it whole, anew
            print()
            self.printed = ""
        self._print(shown)
        print(flush=True)

    def _print(self, shown: str) -> None:
        # Printed text cannot be taken back: print only what extends it (what does not waits for finish).
        shown = shown.lstrip()
        if shown.startswith(self.printed):
            print(shown[len(self.printed):], end="", flush=True)
            self.printed = shown
