"""Explainability: token log-probabilities shown as the answer shaded by probability (pure functions).

>>> from llmops_lab.providers.base import TokenLogprob
>>> tokens = [TokenLogprob("Paris", -0.01, (("Paris", -0.01), ("Lyon", -4.8))), TokenLogprob(".", -0.9)]
>>> html_text = shade_html(tokens)          # spans with a background per probability, alternatives on hover
>>> logprobs_frame(tokens)["prob"].round(2).tolist()
[0.99, 0.41]

One renderer for every front end: ``LLMResult``'s notebook HTML, the ``%%llm --logprobs`` cell and the
comparison grid (``shade_tokens``) all call :func:`shade_html`.

Privacy (docs/architecture.md, redaction): tokens are output text. They live in memory (``Completion.tokens``,
``LLMResult.tokens``, a batch's ``tokens`` column) and are never put in a spool record or MLflow. What is
stored or shown goes through :func:`mask_tokens`, which redacts the *joined* tokens (a secret split over
several tokens is still found) and masks every token that overlaps a finding: the notebook gets the
display policy (:func:`display_tokens`, :func:`redaction.display_redactor`), the response cache the log policy
(:func:`storable_tokens`). Masking that fails hides the tokens (fail closed), never shows them raw.
"""
from __future__ import annotations

import html
import json
from typing import TYPE_CHECKING, Any, Callable, Sequence

if TYPE_CHECKING:
    from llmops_lab.providers.base import TokenLogprob

NO_LOGPROBS_NOTE = "this endpoint returned no logprobs"
HIDDEN_NOTE = "token view hidden: masking the tokens failed"
# Probability -> how strongly a token is shaded: confident tokens stay almost white, unlikely ones stand out.
_SHADE_RGB = (230, 80, 30)
_LEGEND = (1.0, 0.9, 0.7, 0.5, 0.3, 0.1)


# ---- masking -------------------------------------------------------------------------------------

def mask_tokens(tokens: Sequence["TokenLogprob"], redact: Callable[[str], tuple[str, list[Any]]]
                ) -> list["TokenLogprob"]:
    """Tokens with what ``redact`` finds in their joined text masked; raises if ``redact`` does.

    >>> from llmops_lab.providers.base import TokenLogprob
    >>> fake = lambda text: (text, [type("F", (), {"start": 4, "end": 9, "replacement": "[X]"})()])
    >>> [t.token for t in mask_tokens([TokenLogprob(w, -0.1) for w in ("key ", "ab", "cde", " ok")], fake)]
    ['key ', '[X]', '', ' ok']

    A token that overlaps a finding shows the replacement once (in the token where the finding starts; the
    others lose their masked characters) and loses its alternatives (they could complete the secret).
    Alternatives of other tokens are masked one by one.
    """
    from llmops_lab.providers.base import TokenLogprob

    joined = "".join(t.token for t in tokens)
    _, findings = redact(joined)
    spans = sorted((f.start, f.end, f.replacement) for f in findings)
    out: list[TokenLogprob] = []
    pos = 0
    for t in tokens:
        start, end = pos, pos + len(t.token)
        pos = end
        hits = [(s, e, r) for s, e, r in spans if s < end and e > start]
        if not hits:
            top = tuple((redact(alt)[0], lp) for alt, lp in t.top)
            out.append(t if top == t.top else TokenLogprob(t.token, t.logprob, top))
            continue
        text, cursor = [], start
        for s, e, replacement in hits:
            if s > cursor:
                text.append(joined[cursor:s])
            if s >= start:  # the finding starts in this token: its replacement goes here, once
                text.append(replacement)
            cursor = max(cursor, e)
        if cursor < end:
            text.append(joined[cursor:end])
        out.append(TokenLogprob("".join(text), t.logprob, ()))
    return out


def display_tokens(tokens: Sequence["TokenLogprob"] | None) -> list["TokenLogprob"] | None:
    """What a notebook may show of the tokens (:func:`redaction.display_redactor`). None if masking fails."""
    if tokens is None:
        return None
    from llmops_lab.trust.redaction import display_redactor

    try:
        return mask_tokens(tokens, display_redactor().redact)
    except Exception:  # noqa: BLE001 - fail closed: hide, never show raw
        return None


def storable_tokens(tokens: Sequence["TokenLogprob"] | None, settings: Any = None) -> list["TokenLogprob"] | None:
    """Tokens masked with the log policy (the same as the stored output), for the response cache.
    Raises if masking fails: the caller then stores nothing (fail closed)."""
    if tokens is None:
        return None
    from llmops_lab.trust.redaction import redactor_for

    return mask_tokens(tokens, redactor_for(settings).redact)


def tokens_to_json(tokens: Sequence["TokenLogprob"] | None) -> str | None:
    """Compact JSON for storage: ``[[token, logprob, [[alt, logprob], ...]], ...]``."""
    if tokens is None:
        return None
    return json.dumps([[t.token, t.logprob, [list(a) for a in t.top]] for t in tokens], ensure_ascii=False,
                      separators=(",", ":"))


def tokens_from_json(text: str | None) -> list["TokenLogprob"] | None:
    """The inverse of :func:`tokens_to_json`."""
    if text is None:
        return None
    from llmops_lab.providers.base import TokenLogprob

    return [TokenLogprob(tok, float(lp), tuple((a, float(alp)) for a, alp in top))
            for tok, lp, top in json.loads(text)]


# ---- tables --------------------------------------------------------------------------------------

def logprobs_frame(tokens: Sequence["TokenLogprob"] | None):
    """A DataFrame, one row per token: ``token``, ``logprob``, ``prob``, ``top`` ([(alternative, prob)]).

    Empty (with those columns) when there are no tokens.
    """
    import math

    import pandas as pd

    rows = [{"token": t.token, "logprob": t.logprob, "prob": math.exp(t.logprob),
             "top": [(alt, math.exp(lp)) for alt, lp in t.top]} for t in tokens or ()]
    return pd.DataFrame(rows, columns=["token", "logprob", "prob", "top"])


# ---- HTML ----------------------------------------------------------------------------------------

def shade_color(prob: float) -> str:
    """The background for a token of probability ``prob``: transparent at 1, strong at 0.

    >>> shade_color(1.0), shade_color(0.0)
    ('rgba(230,80,30,0.00)', 'rgba(230,80,30,0.85)')
    """
    alpha = 0.85 * (1.0 - min(max(prob, 0.0), 1.0))
    return f"rgba({_SHADE_RGB[0]},{_SHADE_RGB[1]},{_SHADE_RGB[2]},{alpha:.2f})"


def _shown(token: str) -> str:
    """A token as text in a tooltip: quoted, whitespace visible."""
    return repr(token)


def _title(t: "TokenLogprob") -> str:
    lines = [f"{_shown(t.token)}  p={t.prob:.1%}  (logprob {t.logprob:.3f})"]
    if t.top:
        import math

        lines.append("alternatives:")
        lines += [f"  {_shown(alt)}  {math.exp(lp):.1%}" for alt, lp in t.top]
    return "\n".join(lines)


def legend_html() -> str:
    """The probability scale shown above shaded tokens."""
    swatches = "".join(f'<span style="background-color:{shade_color(p)};padding:0 4px;margin-left:2px;'
                       f'border:1px solid #ddd">{p:.0%}</span>' for p in _LEGEND)
    return (f'<div style="font-size:0.8em;color:#666;margin-bottom:4px">token probability: {swatches}'
            ' · hover a token for its top alternatives</div>')


def shade_html(tokens: Sequence["TokenLogprob"] | None, *, legend: bool = True, text: str | None = None) -> str:
    """The tokens as HTML, each shaded by its probability, its alternatives in a ``title`` tooltip.

    Everything is escaped (a token ``<script>`` shows as text). With no tokens: ``text`` escaped plus the
    note that the endpoint returned no logprobs. Tokens are shown as given: mask them first
    (:func:`display_tokens`) for a notebook.

    >>> from llmops_lab.providers.base import TokenLogprob
    >>> "&lt;script&gt;" in shade_html([TokenLogprob("<script>", -2.0)], legend=False)
    True
    """
    if tokens is None:
        body = html.escape(text or "")
        return (f'<div style="white-space:pre-wrap">{body}</div>'
                f'<div style="font-size:0.8em;color:#777;font-style:italic">({NO_LOGPROBS_NOTE})</div>')
    spans = []
    for t in tokens:
        low = ";outline:1px solid #c33" if t.prob < 0.1 else ""  # the least likely tokens stand out even in print
        spans.append(f'<span style="background-color:{shade_color(t.prob)}{low}" '
                     f'title="{html.escape(_title(t), quote=True)}">{html.escape(t.token)}</span>')
    head = legend_html() if legend else ""
    return f'{head}<div class="llmops-tokens" style="white-space:pre-wrap;line-height:1.6">{"".join(spans)}</div>'


def result_html(text: str, tokens: Sequence["TokenLogprob"] | None, *, footer: str | None = None) -> str:
    """The notebook view of one answer with logprobs: masked for display, shaded, with an optional footer."""
    shown = display_tokens(tokens)
    if tokens is not None and shown is None:
        body = (f'<div style="font-size:0.8em;color:#b00">({HIDDEN_NOTE})</div>')
    else:
        from llmops_lab.trust.redaction import mask_for_display

        body = shade_html(shown, text=mask_for_display(text))
    if footer:
        body += f'<div style="color:#777;font-size:0.85em">{html.escape(footer)}</div>'
    return body
