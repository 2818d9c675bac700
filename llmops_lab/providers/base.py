"""What every provider takes and returns. Providers are the only code that talks to models."""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from llmops_lab.exceptions import ConfigError

Message = dict[str, str]  # {"role": "system"|"user"|"assistant", "content": str}
OnText = Callable[[str], None]  # called with each piece of a streamed answer, in order


@dataclass(frozen=True)
class ModelId:
    """``provider:model``, e.g. ``ModelId.parse("openai:gpt-4o-mini")``."""

    provider: str
    model: str

    @classmethod
    def parse(cls, text: str) -> "ModelId":
        provider, sep, model = (text or "").strip().partition(":")
        if not sep or not provider or not model:
            raise ConfigError(f"model {text!r} is not provider:model "
                              "(for example local:smollm2-135m or openai:gpt-4o-mini)")
        return cls(provider, model)

    def __str__(self) -> str:
        return f"{self.provider}:{self.model}"


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def as_dict(self) -> dict[str, int]:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "total_tokens": self.total_tokens}


@dataclass(frozen=True, slots=True)
class TokenLogprob:
    """One generated token with its log-probability and the most likely alternatives at that position.

    >>> t = TokenLogprob(" Paris", -0.05, ((" Paris", -0.05), (" Lyon", -3.2)))
    >>> round(t.prob, 3), t.top[1][0]
    (0.951, ' Lyon')

    Provider-neutral: OpenAI's ``choice.logprobs.content`` and llama.cpp's both map to a list of these.
    ``top`` is ordered most likely first and may include the chosen token itself.
    """

    token: str
    logprob: float
    top: tuple[tuple[str, float], ...] = ()

    @property
    def prob(self) -> float:
        """``exp(logprob)``, in (0, 1]."""
        return math.exp(self.logprob)


@dataclass
class Completion:
    """One model answer, the same shape from every provider.

    ``tokens`` is only set when the request asked for logprobs (``params["logprobs"]``) and the endpoint
    returned them; None otherwise (not requested, or the endpoint does not support them).
    """

    text: str
    model_id: ModelId
    usage: Usage
    latency_ms: float  # provider time, retries and back-off included
    finish_reason: str | None = None
    retries: int = 0
    endpoint_host: str | None = None
    response_model: str | None = None  # what the endpoint says it ran
    extra: dict[str, Any] = field(default_factory=dict)
    tokens: list[TokenLogprob] | None = None
    ttft_ms: float | None = None  # streamed answers: time to the first piece of text (retries included)
    interrupted: bool = False  # streamed answers: a kernel interrupt stopped it; ``text`` is what had arrived
    # the endpoint's usage chunk never came (interrupted or broken stream): ``usage`` is an estimate
    usage_estimated: bool = False


class Provider(Protocol):
    """A model backend. ``complete`` raises ProviderError after its last try.

    ``stream`` is ``complete`` with the answer handed to ``on_text`` piece by piece as it arrives. A
    KeyboardInterrupt while it streams (in the provider or in ``on_text``) stops the generation and returns
    what had arrived, ``interrupted=True``; retries happen only before the first piece.
    """

    name: str
    endpoint_host: str | None

    def complete(self, model: str, messages: list[Message], params: dict[str, Any]) -> Completion: ...

    def stream(self, model: str, messages: list[Message], params: dict[str, Any], on_text: OnText) -> Completion: ...

    def async_client(self) -> Any:
        """A client for one event loop (or None), passed back to ``acomplete``."""

    async def acomplete(self, client: Any, model: str, messages: list[Message], params: dict[str, Any],
                        on_rate_limit: Callable[[], None] | None = None) -> Completion: ...


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential back-off with full jitter, capped; a server's Retry-After wins when given."""

    max_retries: int = 3
    base_s: float = 0.5
    cap_s: float = 20.0

    def delay(self, attempt: int, retry_after_s: float | None = None, rng: random.Random | None = None) -> float:
        if retry_after_s is not None and retry_after_s >= 0:
            return min(retry_after_s, 60.0)
        return (rng or random).uniform(0, min(self.cap_s, self.base_s * 2 ** attempt))


def parse_retry_after(headers: Any) -> float | None:
    """Seconds from ``retry-after-ms`` or ``retry-after`` (seconds or HTTP date); None if absent."""
    if headers is None:
        return None
    value = headers.get("retry-after-ms")
    if value is not None:
        try:
            return float(value) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        from email.utils import parsedate_to_datetime
        from datetime import datetime, timezone

        try:
            return max(0.0, (parsedate_to_datetime(value) - datetime.now(timezone.utc)).total_seconds())
        except (TypeError, ValueError):
            return None
