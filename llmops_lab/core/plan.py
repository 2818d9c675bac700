"""Plan and render: what every model call starts with (single calls, batch rows, variants, judges).

``plan_call`` validates once (params, model id, template, provider, send-side redactor); ``CallPlan.messages``
renders one set of variables (refusing what cannot be sent). Nothing here talks to a model.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from llmops_lab import providers
from llmops_lab.config import Settings, validate_params
from llmops_lab.core.templates import PromptTemplate, check_name
from llmops_lab.exceptions import ConfigError, TemplateError
from llmops_lab.providers.base import Message, ModelId


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
    schema: Any = None  # core/schema.OutputSchema: its response_format is in params (sent, and in the cache key)

    def messages(self, variables: Mapping[str, Any], history: list[Message] | None = None) -> list[Message]:
        """Render for one set of variables (TemplateError if one is missing, the prompt is too long or not text).
        ``history``: earlier turns of a conversation, sent between the system message and the new user message."""
        messages: list[Message] = [{"role": "system", "content": self.system}] if self.system else []
        messages.extend({"role": m["role"], "content": m["content"]} for m in history or ())
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
    conversation: dict[str, Any] | None = None  # a chat turn: {"id", "name", "turn", "dropped", ...} (records)

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


def _check_safe_storage(settings: Settings) -> None:
    """Before any paid call: MLflow credentials go only over safe transport, and a data key, if set, is a key
    (the writer and the cache would otherwise fail after the answer was paid for)."""
    import os

    from llmops_lab.trust import at_rest, transport

    if settings.tracking:
        transport.check_tracking(settings.resolved_tracking_uri(), os.environ,
                                 allow_insecure=settings.allow_insecure_transport)
    at_rest.check_key()


def plan_call(template: str, *, model: str | None, name: str | None, system: str | None,
              params: Mapping[str, Any], settings: Settings, logprobs: bool = False,
              top_logprobs: int | None = None, schema: Any = None) -> CallPlan:
    """Validate options and resolve the provider; raises a one-line LlmopsError before any model call.

    ``schema`` (a pydantic model class, a JSON-schema dict or a ``.json`` path: :mod:`llmops_lab.core.schema`)
    becomes the ``response_format`` parameter."""
    for what, value in (("the template", template), ("model", model), ("name", name), ("system", system)):
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"{what} must be text (str), not {type(value).__name__}")
    if template is None:
        raise ConfigError("the template must be text (str), not None: pass the prompt as the first argument")
    generation = {**settings.generation_defaults(), **validate_params(dict(params)),
                  **logprob_params(logprobs, top_logprobs)}
    output_schema = None
    if schema is not None:
        from llmops_lab.core.schema import resolve

        output_schema = resolve(schema)
        generation["response_format"] = output_schema.response_format()
    model_id = ModelId.parse(model or settings.model)
    prompt = PromptTemplate(template)
    prompt.variables  # noqa: B018 - syntax errors surface here
    prompt_name = check_name(name) if name else prompt.auto_name()
    provider = providers.resolve(model_id, settings)
    _check_safe_storage(settings)
    from llmops_lab.trust.redaction import redactor_for

    redactor = redactor_for(settings)
    return CallPlan(prompt, prompt_name, model_id, generation, provider, system,
                    redactor if redactor.policy.scope == "send" else None, settings.max_prompt_chars, output_schema)


def prepare(template: str, variables: Mapping[str, Any] | None, *, model: str | None, name: str | None,
            system: str | None, params: Mapping[str, Any], settings: Settings, logprobs: bool = False,
            top_logprobs: int | None = None, schema: Any = None,
            history: list[Message] | None = None) -> PromptCall:
    """Plan and render one call; ``history`` (a conversation's earlier turns) goes before the new message."""
    plan = plan_call(template, model=model, name=name, system=system, params=params, settings=settings,
                     logprobs=logprobs, top_logprobs=top_logprobs, schema=schema)
    variables = variables if variables is not None else {}
    if not isinstance(variables, Mapping):
        raise ConfigError(f"variables must be a dict of name -> value, not {type(variables).__name__}")
    return PromptCall(plan, plan.messages(variables, history), plan.template.values_for_log(variables))
