"""The core call path shared by every front end: template -> render -> provider -> Completion -> record.

``run`` is the single-call entry point; magics, widgets, batches and jobs all go through it (or,
for many rows, through the same ``prepare`` / ``execute`` / ``record`` steps).
"""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any, Mapping

from llmops_lab import providers
from llmops_lab.config import Settings, get_settings, validate_params
from llmops_lab.exceptions import ConfigError, ProviderError, TemplateError
from llmops_lab.core.templates import PromptTemplate, check_name
from llmops_lab.providers.base import Completion, Message, ModelId
from llmops_lab.providers.pricing import cost_usd
from llmops_lab.core.results import LLMResult
from llmops_lab.tracking import context


@dataclass
class CallPlan:
    """What every row of a call shares, validated: template, name, model, parameters, provider."""

    template: PromptTemplate
    name: str
    model_id: ModelId
    params: dict[str, Any]
    provider: providers.Provider
    system: str | None = None
    send_redactor: Any = None  # redaction scope "send": messages are masked here, so the cache key covers them
    max_chars: int = 1_000_000

    def messages(self, variables: Mapping[str, Any]) -> list[Message]:
        """Render for one set of variables (TemplateError if one is missing, the prompt is too long or not text)."""
        messages: list[Message] = [{"role": "system", "content": self.system}] if self.system else []
        for name in self.template.variables:
            if isinstance(variables.get(name), (bytes, bytearray, memoryview)):
                raise TemplateError(f"template variable {name} is binary data ({type(variables[name]).__name__}), not "
                                    f"text: decode it first, e.g. {name}.decode('utf-8', errors='replace')")
        messages.append({"role": "user", "content": self.template.render(variables)})
        _check_sendable(messages, self.max_chars)
        if self.send_redactor is not None:
            from llmops_lab.trust.redaction import mask_messages

            messages = mask_messages(messages, redactor=self.send_redactor)
        return messages


def _check_sendable(messages: list[Message], max_chars: int) -> None:
    """Refuse, before any call, a prompt over ``max_prompt_chars`` or one that is not valid Unicode text."""
    total = sum(len(m["content"]) for m in messages)
    if total > max_chars:
        raise TemplateError(f"the rendered prompt is {total:,} characters, over max_prompt_chars={max_chars:,}: "
                            "shorten the input (e.g. llmops_lab.data.prepare(df, max_chars=...)) or raise the limit "
                            "with %llm config max_prompt_chars=N")
    for m in messages:
        text = m["content"]
        if not text.isascii():
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as err:
                raise TemplateError(f"the rendered {m['role']} message is not valid text (undecodable byte "
                                    f"{text[err.start]!r} at character {err.start}): decode the data as UTF-8, "
                                    "e.g. bytes.decode('utf-8', errors='replace')") from None


@dataclass
class PromptCall:
    """One rendered call: a plan plus its messages. Nothing here can fail for user reasons later."""

    plan: CallPlan
    messages: list[Message]
    variables_logged: dict[str, str]

    @property
    def name(self) -> str:
        return self.plan.name

    @property
    def model_id(self) -> ModelId:
        return self.plan.model_id

    @property
    def params(self) -> dict[str, Any]:
        return self.plan.params

    @property
    def provider(self) -> providers.Provider:
        return self.plan.provider

    @property
    def template(self) -> PromptTemplate:
        return self.plan.template


MAX_TOP_LOGPROBS = 20  # OpenAI's limit for top_logprobs
DEFAULT_TOP_LOGPROBS = 5


def logprob_params(logprobs: bool = False, top_logprobs: int | None = None) -> dict[str, Any]:
    """The request options for token logprobs, validated; ``{}`` when not requested (the default path).

    >>> logprob_params(True)
    {'logprobs': True, 'top_logprobs': 5}
    >>> logprob_params()
    {}

    They are request parameters like temperature: sent to the provider, part of the response-cache key
    (a cached answer without logprobs never satisfies a logprobs request) and logged as run params.
    """
    if not isinstance(logprobs, bool):
        raise ConfigError(f"logprobs={logprobs!r}: use True or False")
    if top_logprobs is not None:
        if not logprobs:
            raise ConfigError(f"top_logprobs={top_logprobs!r} needs logprobs=True (in a cell: --logprobs "
                              "--top-logprobs N)")
        if isinstance(top_logprobs, bool) or not isinstance(top_logprobs, int) \
                or not 0 <= top_logprobs <= MAX_TOP_LOGPROBS:
            raise ConfigError(f"top_logprobs={top_logprobs!r} is out of range: use a whole number from 0 to "
                              f"{MAX_TOP_LOGPROBS}")
    if not logprobs:
        return {}
    return {"logprobs": True, "top_logprobs": DEFAULT_TOP_LOGPROBS if top_logprobs is None else top_logprobs}


def plan_call(template: str, *, model: str | None, name: str | None, system: str | None,
              params: Mapping[str, Any], settings: Settings, logprobs: bool = False,
              top_logprobs: int | None = None) -> CallPlan:
    """Validate options and resolve the provider; raises a one-line LlmopsError before any model call."""
    for what, value in (("the template", template), ("model", model), ("name", name), ("system", system)):
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"{what} must be text (str), not {type(value).__name__}")
    if template is None:
        raise ConfigError("the template must be text (str), not None: pass the prompt as the first argument")
    generation = {**settings.generation_defaults(), **validate_params(dict(params)),
                  **logprob_params(logprobs, top_logprobs)}
    model_id = ModelId.parse(model or settings.model)
    prompt = PromptTemplate(template)
    prompt.variables  # noqa: B018 - syntax errors surface here
    prompt_name = check_name(name) if name else prompt.auto_name()
    provider = providers.resolve(model_id, settings)
    from llmops_lab.trust.redaction import redactor_for

    redactor = redactor_for(settings)
    return CallPlan(prompt, prompt_name, model_id, generation, provider, system,
                    redactor if redactor.policy.scope == "send" else None, settings.max_prompt_chars)


def prepare(template: str, variables: Mapping[str, Any] | None, *, model: str | None, name: str | None,
            system: str | None, params: Mapping[str, Any], settings: Settings, logprobs: bool = False,
            top_logprobs: int | None = None) -> PromptCall:
    """Plan and render one call."""
    plan = plan_call(template, model=model, name=name, system=system, params=params, settings=settings,
                     logprobs=logprobs, top_logprobs=top_logprobs)
    variables = variables if variables is not None else {}
    if not isinstance(variables, Mapping):
        raise ConfigError(f"variables must be a dict of name -> value, not {type(variables).__name__}")
    return PromptCall(plan, plan.messages(variables), plan.template.values_for_log(variables))


def build_record(call: PromptCall, settings: Settings, *, kind: str, start_ns: int, end_ns: int,
                 completion: Completion | None, error: str | None) -> dict[str, Any]:
    """The spool record of one call: everything MLflow will get, and nothing secret (redacted, fail closed)."""
    from llmops_lab.trust.redaction import redact_record

    notebook = context.notebook_path()
    usage = completion.usage.as_dict() if completion else {}
    return redact_record({
        "id": uuid.uuid4().hex,
        "v": 1,
        "kind": kind,
        "experiment": context.experiment_name(settings, notebook),
        "notebook": notebook,
        "cell_id": context.cell_id(),
        "user": context.user(),
        "project_root": str(settings.project_root),
        "prompt": {"name": call.name, "template": call.template.text, "sha256": call.template.sha256},
        "model": str(call.model_id),
        "provider": call.model_id.provider,
        "model_name": call.model_id.model,
        "endpoint_host": call.provider.endpoint_host,
        "params": call.params,
        "messages": call.messages,
        "variables": call.variables_logged,
        "start_ns": start_ns,
        "end_ns": end_ns,
        "output": completion.text if completion else None,
        "finish_reason": completion.finish_reason if completion else None,
        "usage": usage,
        "latency_ms": completion.latency_ms if completion else (end_ns - start_ns) / 1e6,
        "cost_usd": cost_usd(call.model_id, completion.usage, settings.prices) if completion else None,
        "retries": completion.retries if completion else None,
        "error": error,
    }, settings)


def execute(call: PromptCall, settings: Settings, *, kind: str = "single") -> tuple[Completion, dict[str, Any]]:
    """Send the call; a provider failure is logged as a failed run, then raised."""
    from llmops_lab.tracking import submit

    start_ns = time.time_ns()
    try:
        completion = call.provider.complete(call.model_id.model, call.messages, call.params)
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
        force: bool = False, logprobs: bool = False, top_logprobs: int | None = None, **params: Any) -> LLMResult:
    """Render ``template`` with ``variables``, call the model, log the call to MLflow, return the result.

    >>> r = llmops_lab.run("Summarize in one sentence: {{ article }}", {"article": text},
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
    """
    from llmops_lab.core import budget, debug
    from llmops_lab.core.options import refuse_options
    from llmops_lab.tracking import submit

    refuse_options("run", params)  # batch/compare keywords: a one-line error that names the right function
    started = time.perf_counter()
    settings = get_settings()
    call = prepare(template, variables, model=model, name=name, system=system, params=params, settings=settings,
                   logprobs=logprobs, top_logprobs=top_logprobs)
    rendered = time.perf_counter()
    budget.check(call.model_id, lambda: budget.estimate(call.model_id, [call.messages], call.params, settings),
                 settings, max_cost=max_cost, force=force, what="call")
    checked = time.perf_counter()
    completion, record = execute(call, settings)
    answered = time.perf_counter()
    ticket = submit(record, settings) if settings.tracking else None
    spooled = time.perf_counter()
    budget.note_spend(record["cost_usd"])
    debug.remember(record, completion, ticket, {
        "render_ms": (rendered - started) * 1000, "budget_ms": (checked - rendered) * 1000,
        "provider_ms": (answered - checked) * 1000, "spool_ms": (spooled - answered) * 1000})
    return LLMResult(
        text=completion.text, model=record["model"], usage=record["usage"], latency_ms=completion.latency_ms,
        cost_usd=record["cost_usd"], prompt_name=call.name, messages=call.messages, params=call.params,
        record_id=record["id"], finish_reason=completion.finish_reason, retries=completion.retries,
        _ticket=ticket, tokens=completion.tokens)
