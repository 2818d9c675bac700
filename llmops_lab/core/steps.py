"""The steps every model call takes, each in one place. Single calls (``core/call.run``), batch rows and
comparison variants (``evaluation/batch`` -> ``evaluation/runner``) and judge calls (a batch's model-graded
scorers, through the same runner) all go through them:

  plan      core/plan.plan_call      once per call, batch or judge scorer: params, model, provider, redactor
  render    CallPlan.messages        once per row (``render`` below); send-side masking included
  budget    core/budget.check        before any request; an upper bound (a batch: its rows + judge calls)
  cache     key / to_cache / hit     the key is what is sent; only successes, masked, are stored
  provider  Provider.complete        (single) / Provider.acomplete in the runner's loop (many)
  record    core/records             typed spool records, redacted

Single calls never use the cache (a user re-running a cell wants a new answer).
"""
from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from llmops_lab.exceptions import TemplateError
from llmops_lab.providers.pricing import cost_usd

if TYPE_CHECKING:
    from llmops_lab.config import Settings
    from llmops_lab.core.plan import CallPlan
    from llmops_lab.core.cache import CachedResponse
    from llmops_lab.providers.base import Completion, Message, Usage


def render(plan: "CallPlan", variables: Mapping[str, Any]) -> "tuple[list[Message] | None, str | None]":
    """(messages, None), or (None, why) for a row that cannot be sent: it is reported, never sent."""
    try:
        return plan.messages(variables), None
    except TemplateError as err:
        return None, str(err)


def key(plan: "CallPlan", messages: "list[Message]") -> str:
    """The response-cache key of exactly what is sent (docs/architecture.md, invariant 3)."""
    from llmops_lab.core.cache import cache_key

    return cache_key(plan.model_id.provider, plan.provider.endpoint_host, plan.model_id.model, plan.params,
                     messages)


def to_cache(completion: "Completion", want_tokens: bool,
             messages: Sequence[Mapping[str, Any]] = ()) -> "CachedResponse | None":
    """What to store for an answer: masked with the log policy, with the secrets of the ``messages`` it answers
    in any form (re-cased, spaced, quoted); None (store nothing) if masking failed."""
    from llmops_lab.core.cache import CachedResponse
    from llmops_lab.trust.redaction import FAILED_MARK, mask_answer

    stored = mask_answer(completion.text, [m["content"] for m in messages if isinstance(m.get("content"), str)])
    tokens, ok = _storable_tokens(completion.tokens) if want_tokens else (None, True)
    if not ok or (stored == FAILED_MARK and completion.text != FAILED_MARK):  # fail closed
        return None
    return replace(CachedResponse.from_completion(completion), text=stored, tokens=tokens)


def hit_tokens(hit: "CachedResponse") -> list[Any] | None:
    """The token logprobs of a cache hit (stored masked, as JSON)."""
    if hit.tokens is None:
        return None
    from llmops_lab.core.explain import tokens_from_json

    return tokens_from_json(hit.tokens)


def cost(plan: "CallPlan", usage: "Usage", settings: "Settings") -> float | None:
    """USD of one answered call (None: no price known for the model)."""
    return cost_usd(plan.model_id, usage, settings.prices)


def _storable_tokens(tokens: list[Any] | None) -> tuple[str | None, bool]:
    """(masked tokens as JSON, ok) for the cache: masked like the text (log policy); not ok -> cache nothing."""
    if tokens is None:
        return None, True
    from llmops_lab.core.explain import storable_tokens, tokens_to_json

    try:
        return tokens_to_json(storable_tokens(tokens)), True
    except Exception:  # noqa: BLE001 - fail closed: an unmasked token is never stored
        return None, False
