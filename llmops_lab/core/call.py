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
from dataclasses import dataclass, replace
from typing import Any, Callable, Mapping

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
from llmops_lab.exceptions import ConfigError, ProviderError, SchemaError, StreamInterrupted
from llmops_lab.providers.base import Completion, OnText, Usage

RecordTo = Callable[[dict[str, Any], Settings], Any]  # takes a call's record (the spool's submit by default)


def build_record(call: PromptCall, settings: Settings, *, kind: str, start_ns: int, end_ns: int,
                 completion: Completion | None, error: str | None,
                 conformed: "Conformed | None" = None) -> records.SingleRecord:
    """The spool record of one call: everything MLflow will get, and nothing secret (redacted, fail closed)."""
    from llmops_lab.core import steps

    return records.single(call.plan, call.messages, call.variables_logged, settings, kind=kind, start_ns=start_ns,
                          end_ns=end_ns, completion=completion, error=error,
                          cost_usd=steps.cost(call.plan, completion.usage, settings) if completion else None,
                          conversation=call.conversation,
                          schema_retries=conformed.retries if conformed else None,
                          schema_rejected=conformed.rejected if conformed else None)


@dataclass
class Conformed:
    """A schema call's outcome: the validated object, or the one-line mismatch after the retry."""

    data: Any = None
    error: str | None = None
    retries: int = 0  # 1 when the first answer did not validate and the model was asked again
    # the first exchange, logged (redacted) as schema_rejected.json and as the trace's first attempt span:
    # {"output", "error", "correction" (the user message of the retry), "latency_ms", "prompt_tokens",
    # "completion_tokens"}
    rejected: dict[str, Any] | None = None


def execute(call: PromptCall, settings: Settings, *, kind: str = "single", on_text: OnText | None = None,
            record_to: RecordTo | None = None) -> tuple[Completion, dict[str, Any], Conformed | None]:
    """Send the call (streamed to ``on_text`` when given); a provider failure is logged as a failed run, then
    raised. An interrupted stream returns normally: ``completion.interrupted`` says so. A call with a schema
    is validated, and asked once more if it does not match (:func:`conform`); the completion returned then
    covers both requests. ``record_to(record, settings)`` takes the records instead of the spool's ``submit``
    (a served request's row goes to its window: gateway/windows.py)."""
    from llmops_lab.tracking import submit

    record_to = record_to or submit
    start_ns = time.time_ns()
    conformed = None
    try:
        if on_text is None:
            completion = call.provider.complete(call.model_id.model, call.messages, call.params)
        else:
            begin = getattr(on_text, "begin", None)
            if callable(begin):  # a display of the stream: it masks the prompt's secrets the answer repeats
                begin(call.messages)
            completion = call.provider.stream(call.model_id.model, call.messages, call.params, on_text)
        if call.plan.schema is not None:
            completion, conformed = conform(call, completion)
    except ProviderError as err:
        if settings.tracking:  # a stream that broke mid-way: its partial answer is the failed run's output
            record_to(build_record(call, settings, kind=kind, start_ns=start_ns, end_ns=time.time_ns(),
                                   completion=getattr(err, "completion", None), error=str(err)), settings)
        raise
    record = build_record(call, settings, kind=kind, start_ns=start_ns, end_ns=time.time_ns(),
                          completion=completion, error=conformed.error if conformed else None, conformed=conformed)
    return completion, record, conformed


def conform(call: PromptCall, first: Completion) -> tuple[Completion, Conformed]:
    """Validate the answer against the call's schema; if it does not match, ask once more through the same
    provider, the answer and the validation error added to the conversation. Returns the last completion
    (tokens, cost and latency of both requests summed) and the outcome."""
    from llmops_lab.core.schema import Mismatch, correction

    schema = call.plan.schema
    try:
        return first, Conformed(data=schema.validate(first.text))
    except Mismatch as err:
        rejected = {"output": first.text, "error": str(err), "correction": correction(err),
                    "latency_ms": first.latency_ms, "prompt_tokens": first.usage.prompt_tokens,
                    "completion_tokens": first.usage.completion_tokens}
        retry_messages = [*call.messages, {"role": "assistant", "content": first.text},
                          {"role": "user", "content": rejected["correction"]}]
    if call.plan.send_redactor is not None:  # redaction scope "send": what goes out is masked, this too
        from llmops_lab.trust.redaction import mask_messages

        retry_messages = mask_messages(retry_messages, redactor=call.plan.send_redactor)
    second = call.provider.complete(call.model_id.model, retry_messages, call.params)
    both = replace(second, usage=Usage(first.usage.prompt_tokens + second.usage.prompt_tokens,
                                       first.usage.completion_tokens + second.usage.completion_tokens),
                   latency_ms=first.latency_ms + second.latency_ms, retries=first.retries + second.retries)
    try:
        return both, Conformed(data=schema.validate(second.text), retries=1, rejected=rejected)
    except Mismatch as err:
        return both, Conformed(error=f"{err} (after 1 retry)", retries=1, rejected=rejected)


def run(template: str, variables: Mapping[str, Any] | None = None, *, model: str | None = None,
        name: str | None = None, system: str | None = None, max_cost: float | None = None,
        force: bool = False, logprobs: bool = False, top_logprobs: int | None = None, stream: bool = False,
        on_text: OnText | None = None, schema: Any = None, **params: Any) -> LLMResult:
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

    ``schema`` (a pydantic model class, a JSON-schema dict or a path to a ``.json`` schema file) asks for
    structured output natively (``response_format``; a JSON-schema grammar on the embedded model) and validates
    the answer: ``r.data`` is the model instance (a dict for a dict schema). An answer that does not validate is
    asked for once more, the validation error shown to the model (``r.schema_retries`` 1; tokens and cost of
    both requests counted). If it still does not, the run is logged FAILED with the raw answer kept and
    :class:`~llmops_lab.exceptions.SchemaError` names the failing field (``err.raw``: the answer). A schema call
    does not stream: the answer is judged whole.

    >>> class Person(pydantic.BaseModel):                                           # doctest: +SKIP
    ...     name: str
    ...     age: int
    >>> llmops_lab.run("Invent a person.", schema=Person, temperature=0).data     # doctest: +SKIP
    Person(name='Ada', age=36)
    """
    from llmops_lab.core.options import refuse_options

    refuse_options("run", params)  # batch/compare keywords: a one-line error that names the right function
    check_streaming(logprobs, stream, on_text)
    if schema is not None and (stream or on_text is not None):
        raise ConfigError("run(): a schema answer is validated whole, so it does not stream: drop stream= or "
                          "schema=")
    started = time.perf_counter()
    settings = get_settings()
    call = prepare(template, variables, model=model, name=name, system=system, params=params, settings=settings,
                   logprobs=logprobs, top_logprobs=top_logprobs, schema=schema)
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
             on_text: OnText | None, started: float, kind: str = "single",
             record_to: RecordTo | None = None) -> LLMResult:
    """A prepared call from the budget check on: send, record, spool, result. ``run`` and a conversation's
    ``send`` both end here, so a chat turn is a call like any other; so does a served request (``kind``
    ``serve``: gateway/app.py)."""
    from llmops_lab.core import budget, debug
    from llmops_lab.tracking import submit

    rendered = time.perf_counter()
    budget.check(call.model_id, lambda: _estimate(call, settings), settings, max_cost=max_cost, force=force,
                 what="call")
    checked = time.perf_counter()
    completion, record, conformed = execute(call, settings, kind=kind, on_text=on_text, record_to=record_to)
    answered = time.perf_counter()
    ticket = (record_to or submit)(record, settings) if settings.tracking else None
    spooled = time.perf_counter()
    budget.note_spend(record["cost_usd"])
    debug.remember(record, completion, ticket, {
        "render_ms": (rendered - started) * 1000, "budget_ms": (checked - rendered) * 1000,
        "provider_ms": (answered - checked) * 1000, "spool_ms": (spooled - answered) * 1000})
    result = LLMResult(
        text=completion.text, model=record["model"], usage=record["usage"], latency_ms=completion.latency_ms,
        cost_usd=record["cost_usd"], prompt_name=call.name, messages=call.messages, params=call.params,
        record_id=record["id"], finish_reason=completion.finish_reason, retries=completion.retries,
        _ticket=ticket, tokens=completion.tokens, ttft_ms=completion.ttft_ms, interrupted=completion.interrupted,
        usage_estimated=completion.usage_estimated,
        schema_name=call.plan.schema.name if conformed else None, schema_retries=conformed.retries if conformed else 0,
        _validated=conformed.data if conformed else None)
    if conformed is not None and conformed.error is not None:  # logged FAILED above, with the raw answer
        raise SchemaError(conformed.error, raw=completion.text, result=result)
    if isinstance(on_text, _StreamPrinter):
        on_text.finish(result.text)
    if completion.interrupted:
        raise StreamInterrupted(result)
    return result


def _estimate(call: PromptCall, settings: Settings) -> Any:
    """The call's upper-bound cost; with a schema, two requests (the retry reads the first answer back)."""
    from llmops_lab.core import budget

    if call.plan.schema is None:
        return budget.estimate(call.model_id, [call.messages], call.params, settings)
    first = budget.estimate(call.model_id, [call.messages], call.params, settings)
    retry = budget.estimate(call.model_id, [call.messages], call.params, settings,
                            extra_input_tokens=budget.output_bound(call.params) + RETRY_NOTE_TOKENS)
    return first + retry


RETRY_NOTE_TOKENS = 200  # bounds the retry's added user message: a fixed text and a one-line error


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
