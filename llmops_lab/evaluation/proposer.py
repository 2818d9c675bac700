"""What a prompt search proposes: the proposer's own prompt (a versioned template, OPRO/COPRO style), the
proposer's answer read back as a candidate template, the checks a candidate must pass before it is evaluated,
and few-shot candidates built from train rows.

Pure: no model call here (:mod:`llmops_lab.evaluation.optimize` sends the proposer's rows through ``batch``).
"""
from __future__ import annotations

import random
import re
from typing import Any, Iterable, Mapping, Sequence

__all__ = ["PROPOSER_TEMPLATE", "PROPOSER_VERSION", "proposer_rows", "read_proposal", "check_candidate",
           "few_shot_candidate"]

PROPOSER_VERSION = "opro-1"  # bump when PROPOSER_TEMPLATE changes: it is recorded on the optimize run
PROPOSER_TEMPLATE = """You improve prompt templates. A template is sent to a model once per row; the \
placeholders in double braces are filled in from the row and must stay exactly as written: {{ placeholders }}.

The current template scores {{ score }} on the training rows (1.0 is perfect):
<template>
{{ current }}
</template>

{{ failures }}

Write a better template (attempt {{ attempt }}): clearer instructions, the same placeholders. Reply with the \
template only, no explanation."""

MAX_FAILURES = 5  # failing train rows shown to the proposer
MAX_CELL = 300  # characters of one value shown to the proposer


def _cut(value: Any) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= MAX_CELL else text[:MAX_CELL] + "…"


def failures_text(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """The failing train rows as the proposer reads them: each row's columns, the answer and its score."""
    if not rows:
        return "It gets every training row right; make it more robust."
    lines = ["Rows it gets wrong:"]
    for i, row in enumerate(rows[:MAX_FAILURES], 1):
        cells = "; ".join(f"{c}: {_cut(row.get(c))}" for c in columns)
        lines.append(f"{i}. {cells}; answer: {_cut(row.get('output'))}")
    return "\n".join(lines)


def proposer_rows(current: str, score: float | None, failures: str, variables: Iterable[str], n: int,
                  start: int = 1) -> list[dict[str, Any]]:
    """``n`` rows for the proposer's batch: the same request but for its attempt number, so each row is its own
    request (and its own cache entry) and a re-run of the search asks nothing again."""
    placeholders = ", ".join("{{ " + v + " }}" for v in sorted(variables)) or "(none)"
    shown = "unknown" if score is None else f"{score:.3f}"
    return [{"current": current, "score": shown, "failures": failures, "placeholders": placeholders,
             "attempt": start + k} for k in range(n)]


_FENCE = re.compile(r"^```[A-Za-z0-9_-]*\n(?P<body>.*?)\n?```$", re.S)
_TAGS = re.compile(r"^<template>\s*(?P<body>.*?)\s*</template>$", re.S)
_LEAD = re.compile(r"^(?:here is|here's)?\s*(?:the\s+)?(?:better|improved|new)?\s*template\s*:\s*", re.I)


def read_proposal(text: Any) -> str:
    """The candidate template in a proposer's answer: code fences, ``<template>`` tags and a leading
    "Template:" removed, whitespace trimmed.

    >>> read_proposal("```\\nSay {{ text }}\\n```"), read_proposal("Improved template: Say {{ text }}")
    ('Say {{ text }}', 'Say {{ text }}')
    """
    body = str(text or "").strip()
    for pattern in (_FENCE, _TAGS):
        m = pattern.match(body)
        if m:
            body = m.group("body").strip()
    return _LEAD.sub("", body, count=1).strip()


def check_candidate(text: str, variables: Iterable[str], columns: Iterable[str], seen: Iterable[str]) -> str:
    """``ok``, or why the candidate is rejected (its ``status``): empty, a duplicate, not a template, a template
    variable dropped, or a variable that is no column of the data."""
    from llmops_lab.core.templates import PromptTemplate
    from llmops_lab.exceptions import TemplateError

    if not text.strip():
        return "rejected: empty"
    if text in set(seen):
        return "rejected: duplicate"
    try:
        used = PromptTemplate(text).variables
    except TemplateError as err:
        return f"rejected: not a template ({str(err).splitlines()[0][:120]})"
    dropped = sorted(set(variables) - set(used))
    if dropped:
        return "rejected: drops " + ", ".join("{{ " + v + " }}" for v in dropped)
    unknown = sorted(set(used) - set(columns))
    if unknown:
        return "rejected: uses " + ", ".join("{{ " + v + " }}" for v in unknown) + ", not a column of the data"
    return "ok"


def few_shot_candidate(template: str, rows: Sequence[Mapping[str, Any]], variables: Sequence[str],
                       reference: str, k: int, seed: int, label: str | None = None) -> str | None:
    """``template`` with ``k`` train rows before it as worked examples (inputs, then the reference answer),
    chosen with ``seed`` (one per label first when ``label`` is given); kept literal with ``{% raw %}``.
    None without rows."""
    if not rows or k <= 0:
        return None
    rng = random.Random(seed)
    order = list(range(len(rows)))
    rng.shuffle(order)
    if label:  # one row of each label before a second of any: sort by the row's rank within its label
        rank: dict[int, int] = {}
        counts: dict[Any, int] = {}
        for i in order:
            key = rows[i].get(label)
            rank[i] = counts.get(key, 0)
            counts[key] = rank[i] + 1
        order.sort(key=rank.__getitem__)
    picked = [rows[i] for i in order[:k]]
    parts = []
    for n, row in enumerate(picked, 1):
        cells = "\n".join(f"{v}: {row.get(v)}" for v in variables)
        parts.append(f"Example {n}\n{cells}\nAnswer: {row.get(reference)}")
    block = "\n\n".join(parts).replace("{% endraw %}", "{ % endraw % }")  # cannot close the raw block early
    return "{% raw %}" + block + "{% endraw %}\n\n" + template
