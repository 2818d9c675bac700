"""Cost budgets, checked before any request: ``max_cost`` per call or batch, ``max_cost_day`` per UTC day.

An estimate counts input tokens with the model's own tokenizer when one is available offline (the
embedded model's), else as characters / 4 (labelled "≈"), and assumes every answer uses
``max_tokens`` (or :data:`ASSUMED_OUTPUT_TOKENS` when unset): an upper bound, never an average.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Iterable

from llmops_lab.config import Settings
from llmops_lab.exceptions import BudgetError
from llmops_lab.providers.base import Message, ModelId, Usage
from llmops_lab.providers.pricing import cost_usd, price_of

ASSUMED_OUTPUT_TOKENS = 256
DAY_SPEND_TTL_S = 60.0  # re-read the day's spend from MLflow at most once a minute



@dataclass(frozen=True)
class CostEstimate:
    calls: int
    input_tokens: int
    output_tokens: int
    cost_usd: float | None  # None: no price known for the model
    exact_tokens: bool  # input tokens from the model's tokenizer (else characters / 4)

    def describe(self) -> str:
        approx = "" if self.exact_tokens else "≈"
        cost = "unknown (no price for this model)" if self.cost_usd is None else f"≤ ${self.cost_usd:.4f}"
        return (f"{self.calls} call(s), {approx}{self.input_tokens:,} input + ≤{self.output_tokens:,} output "
                f"tokens, cost {cost}")

    def __add__(self, other: "CostEstimate") -> "CostEstimate":
        """Two estimates as one (a batch's rows + its judge calls); unknown if either cost is unknown."""
        cost = None if self.cost_usd is None or other.cost_usd is None else self.cost_usd + other.cost_usd
        return CostEstimate(self.calls + other.calls, self.input_tokens + other.input_tokens,
                            self.output_tokens + other.output_tokens, cost,
                            self.exact_tokens and other.exact_tokens)


def _token_counter(model_id: ModelId):
    """(count(texts) -> [int], exact?) for a model: the local model's tokenizer, else characters / 4."""
    if model_id.provider == "local":
        from llmops_lab.providers import local

        return (lambda texts: local.provider().count_tokens(model_id.model, texts)), True
    return (lambda texts: [max(1, len(text) // 4) for text in texts]), False


def output_bound(params: dict[str, Any]) -> int:
    """The most output tokens one call may use: ``max_tokens``, else :data:`ASSUMED_OUTPUT_TOKENS`."""
    return int(params.get("max_tokens") or ASSUMED_OUTPUT_TOKENS)


def estimate(model_id: ModelId, message_lists: Iterable[list[Message]], params: dict[str, Any],
             settings: Settings, *, extra_input_tokens: int = 0) -> CostEstimate:
    """Upper-bound cost of sending each message list once; ``extra_input_tokens`` per call is input not
    known yet (a judge call reads the answer it grades)."""
    count, exact = _token_counter(model_id)
    calls = 0
    contents: list[str] = []
    for messages in message_lists:
        calls += 1
        contents.extend(m["content"] for m in messages)
    tokens_in = sum(count(contents)) + 4 * len(contents) + calls * extra_input_tokens  # + role/format overhead
    tokens_out = calls * output_bound(params)
    return CostEstimate(calls, tokens_in, tokens_out, cost_usd(model_id, Usage(tokens_in, tokens_out),
                                                               settings.prices), exact)


def check(model_id: ModelId, est_fn, settings: Settings, *, max_cost: float | None, force: bool,
          what: str, also: Iterable[ModelId] = ()) -> CostEstimate | None:
    """Refuse (BudgetError) before any request if the estimate exceeds ``max_cost`` (or the settings'),
    or the day's budget. ``est_fn()`` builds the estimate only when a budget applies; ``also``: other models
    the estimate covers (a batch's judges), which need a price too."""
    limit = max_cost if max_cost is not None else settings.max_cost
    day_limit = settings.max_cost_day
    if force or (limit is None and day_limit is None):
        return None
    for priced in (model_id, *also):
        if price_of(priced, settings.prices) is None:
            raise BudgetError(f"cannot check the cost budget of this {what}: no price for {priced}; add it under "
                              f"[tool.llmops-lab.prices] or pass force=True (--force)")
    est = est_fn()
    if limit is not None and est.cost_usd > limit:
        raise BudgetError(f"this {what} may cost up to ${est.cost_usd:.4f} ({est.describe()}), over max_cost "
                          f"${limit:.4f}: lower max_tokens, use fewer rows, raise max_cost, or pass force=True "
                          "(--force)")
    if day_limit is not None:
        spent = spent_today(settings)
        if spent + est.cost_usd > day_limit:
            raise BudgetError(f"today's spend ${spent:.4f} + this {what} (up to ${est.cost_usd:.4f}) exceeds "
                              f"max_cost_day ${day_limit:.4f}: wait until tomorrow (UTC), raise max_cost_day, "
                              "or pass force=True (--force)")
    return est


_day = {"at": 0.0, "day": "", "spent": 0.0}
_day_lock = threading.Lock()


def spent_today(settings: Settings) -> float:
    """USD of every run started today (UTC) in the store, judge calls included, read from MLflow (cached for a
    minute)."""
    day = time.strftime("%Y-%m-%d", time.gmtime())
    with _day_lock:
        if _day["day"] == day and time.monotonic() - _day["at"] < DAY_SPEND_TTL_S:
            return _day["spent"]
    from datetime import datetime, timezone

    from llmops_lab.tracking.reader import spent_since

    now = datetime.now(timezone.utc)
    spent = spent_since(now - now.replace(hour=0, minute=0, second=0, microsecond=0))
    with _day_lock:
        _day.update(at=time.monotonic(), day=day, spent=spent)
    return spent


def note_spend(amount: float | None) -> None:
    """Count a call's cost towards today's cached spend until the next read from MLflow."""
    if amount:
        with _day_lock:
            _day["spent"] += amount
