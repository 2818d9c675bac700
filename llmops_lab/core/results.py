"""What a call returns: the answer plus where it was logged."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

_FENCE = re.compile(r"^\s*```[\w+-]*\s*\n(.*?)\n?```\s*$", re.DOTALL)


def strip_fences(text: str) -> str:
    """The body of a single fenced code block, or the text unchanged."""
    match = _FENCE.match(text)
    return match.group(1) if match else text


def format_cost(cost: float | None) -> str | None:
    if cost is None:
        return None
    return "$0" if cost == 0 else f"${cost:.6f}".rstrip("0") if cost < 0.01 else f"${cost:.4f}"


@dataclass
class LLMResult:
    """One ``%%llm`` cell or :func:`llmops_lab.run` call.

    >>> r = llmops_lab.run("Say hi to {{ who }}", {"who": "Ada"})   # doctest: +SKIP
    >>> r.text, r.usage["total_tokens"], r.run_id                     # doctest: +SKIP
    """

    text: str
    model: str
    usage: dict[str, int]
    latency_ms: float
    cost_usd: float | None
    prompt_name: str
    messages: list[dict[str, str]]
    params: dict[str, Any]
    record_id: str
    finish_reason: str | None = None
    retries: int = 0
    _ticket: Any = field(default=None, repr=False)
    tokens: list[Any] | None = field(default=None, repr=False)  # TokenLogprob list when logprobs were asked for
    ttft_ms: float | None = None  # streamed calls: time to the first piece of the answer
    interrupted: bool = False  # a kernel interrupt stopped the stream: ``text`` is the partial answer
    usage_estimated: bool = False  # the stream stopped before the endpoint's usage: tokens and cost estimated
    schema_name: str | None = None  # the call asked for structured output (``schema=``): ``data`` is validated
    schema_retries: int = 0  # 1: the first answer did not match the schema and the model was asked again
    _validated: Any = field(default=None, repr=False)
    note: str | None = None  # a conversation turn whose oldest turns were left out of the request (context guard)

    @property
    def logprobs_requested(self) -> bool:
        """Whether the call asked for token logprobs (they are request parameters)."""
        return bool(self.params.get("logprobs"))

    @property
    def run_id(self) -> str | None:
        """The MLflow run id; waits (a few seconds at most) for the background writer. None: still queued."""
        return self._ticket.wait() if self._ticket is not None else None

    @property
    def prompt_uri(self) -> str | None:
        """``prompts:/NAME/VERSION`` of the registered prompt this call used."""
        if self._ticket is None or self._ticket.wait() is None:
            return None
        return self._ticket.prompt_uri

    @property
    def tracking_status(self) -> str:
        """``logged``, ``pending`` (writer busy), ``queued`` (MLflow unreachable; kept in the spool) or ``off``."""
        return self._ticket.status if self._ticket is not None else "off"

    @property
    def data(self) -> Any:
        """With a schema: the validated object (a model instance, or a dict for a dict schema; None if the
        answer did not validate). Otherwise the answer parsed as JSON (code fences removed); None if not JSON."""
        if self.schema_name is not None:
            return self._validated
        try:
            return json.loads(strip_fences(self.text))
        except (json.JSONDecodeError, TypeError):
            return None

    def logprobs_frame(self) -> Any:
        """One row per generated token: ``token``, ``logprob``, ``prob``, ``top`` ([(alternative, prob)]).

        >>> r = llmops_lab.run("Capital of France?", logprobs=True)        # doctest: +SKIP
        >>> r.logprobs_frame().sort_values("prob").head(3)                  # the least certain tokens  # doctest: +SKIP

        Empty when the endpoint returned no logprobs. Held in memory only (never logged).
        """
        if not self.logprobs_requested:
            from llmops_lab.exceptions import ConfigError

            raise ConfigError("this result has no logprobs: call with logprobs=True (in a cell: %%llm --logprobs)")
        from llmops_lab.core.explain import logprobs_frame

        return logprobs_frame(self.tokens)

    def footer(self) -> str:
        """``model · 412 ms · 96 tokens · $0.00002 · run 1a2b3c4d`` (run id when already known)."""
        about = "≈" if self.usage_estimated else ""  # estimated: the endpoint never sent its usage
        parts = [self.model, f"{self.latency_ms:,.0f} ms", f"{about}{self.usage.get('total_tokens', 0)} tokens"]
        cost = format_cost(self.cost_usd)
        if cost is not None:
            parts.append(about + cost)
        if self.retries:
            parts.append(f"{self.retries} retr{'y' if self.retries == 1 else 'ies'}")
        if self.schema_name is not None:
            parts.append(f"schema {self.schema_name}" + (" (retried once)" if self.schema_retries else ""))
        if self.interrupted:
            parts.append("interrupted")
        parts.append(self._tracking_label())
        return " · ".join(parts)

    def _tracking_label(self) -> str:
        ticket = self._ticket
        if ticket is None:
            return "not tracked"
        if ticket.run_id:
            return f"run {ticket.run_id[:8]}"
        if ticket.status == "pending":
            return "logging…"
        from llmops_lab.tracking.store_errors import is_refusal

        if is_refusal(ticket.error):  # the store answered no: say why, not "unreachable"
            return f"queued, not logged: {ticket.error.split(':')[0]} (no permission; kept in spool)"
        return "queued (MLflow unreachable, kept in spool)"

    def __str__(self) -> str:
        return self.text

    def _repr_markdown_(self) -> str:
        return f"{self.text}\n\n<sub>{self.footer()}</sub>"

    def _repr_html_(self) -> str | None:
        """With logprobs: the answer shaded by token probability (alternatives on hover); else None, so the
        notebook keeps the Markdown view."""
        if not self.logprobs_requested:
            return None
        from llmops_lab.core.explain import result_html

        return result_html(self.text, self.tokens, footer=self.footer())


def format_number(value: float) -> str:
    """How tables show a float: ``628.67 -> 629``, ``12.345 -> 12.3``, ``0.75 -> 0.75``, ``1.2e-05`` stays."""
    import math

    if math.isnan(value) or math.isinf(value):
        return str(value)
    size = abs(value)
    if size >= 100:
        return f"{value:,.0f}"
    if size >= 10:
        return f"{value:.1f}"
    if size >= 0.01 or size == 0:
        return f"{value:.3g}" if size < 1 else f"{value:.2f}"
    return f"{value:.2g}"


_TIDY: Any = None


def tidy(frame: Any) -> Any:
    """``frame`` (same data, same class for what is derived from it) shown with readable floats instead of six
    decimals (:func:`format_number`). Values are untouched: ``tidy(df)["latency_ms"]`` is exact."""
    global _TIDY
    if _TIDY is None:
        import pandas as pd

        class TidyFrame(pd.DataFrame):
            """A DataFrame that displays floats with :func:`format_number`."""

            @property
            def _constructor(self):
                return TidyFrame

            def _repr_html_(self):
                with pd.option_context("display.float_format", format_number):
                    return super()._repr_html_()

            def __repr__(self) -> str:
                with pd.option_context("display.float_format", format_number):
                    return super().__repr__()

        TidyFrame.__qualname__ = "TidyFrame"  # picklable: found through this module's __getattr__
        _TIDY = TidyFrame
    if isinstance(frame, _TIDY):
        return frame
    out = _TIDY(frame)
    out.attrs = dict(getattr(frame, "attrs", {}) or {})
    return out


def __getattr__(name: str) -> Any:
    if name == "TidyFrame":
        tidy(__import__("pandas").DataFrame())
        return _TIDY
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
