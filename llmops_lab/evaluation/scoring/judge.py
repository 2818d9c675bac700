"""LLM as judge: ``judge:"rubric"`` grades each output with a model.

A judge scorer carries a :class:`Judge` (``Scorer.judge``): what to ask (template, system, params, model)
and how to read the answer. In a batch those calls go through the batch's own runner, like its rows
(cached, budgeted, counted in ``judge_*`` columns and metrics); :attr:`Scorer.fn` is the standalone path
(one call, no cache, no record) for ``Scorer.score`` and ``to_mlflow_scorer``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

from llmops_lab.evaluation.scoring.registry import (
    RawScore,
    Scorer,
    ScoreResult,
    _truncate,
    register_scorer,
)
from llmops_lab.exceptions import ConfigError

if TYPE_CHECKING:
    from llmops_lab.config import Settings
    from llmops_lab.core.plan import CallPlan


JUDGE_SYSTEM = "You are a strict, fair evaluator of language model outputs."
# Rubric, fields and output are variables, never template text: braces in them stay plain text.
_GRADE = """Grade the output below against the rubric.

Rubric:
{{ rubric }}

Input fields:
{{ fields }}

Output to grade:
<<<
{{ output }}
>>>

"""
JUDGE_TEMPLATE = _GRADE + "Answer with PASS or FAIL alone on the first line, then one sentence explaining why."
_VERDICT = re.compile(r"\b(pass|fail)(?:ed|es|s)?\b", re.IGNORECASE)
_FIELD_LIMIT = 2000


def _unquote(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1].strip()
    return text


def judge_fields(row: Mapping[str, Any]) -> str:
    """The row's fields as ``- name: value`` lines for the judge prompt (long values truncated)."""
    if not row:
        return "(none)"
    lines = []
    for key, value in row.items():
        text = str(value)
        if len(text) > _FIELD_LIMIT:
            text = text[:_FIELD_LIMIT] + f"… [{len(text) - _FIELD_LIMIT} more chars]"
        lines.append(f"- {key}: {text}")
    return "\n".join(lines)


def parse_verdict(answer: str) -> ScoreResult:
    """``PASS``/``FAIL`` (first occurrence, any case) and the rest as rationale; else value None.

    >>> parse_verdict("**Pass** - it answers the question.")
    ScoreResult(value=1.0, passed=True, rationale='it answers the question.')
    """
    text = (answer or "").strip()
    match = _VERDICT.search(text)
    if match is None:
        return ScoreResult(None, None, _truncate(text or "(empty answer)", 200))
    passed = match.group(1).lower() == "pass"
    rest = text[match.end():]
    rationale = " ".join(rest.split()).lstrip("*_:-–—.,; ").strip() or None
    return ScoreResult(1.0 if passed else 0.0, passed, None if rationale is None else _truncate(rationale))


@dataclass(frozen=True)
class Judge:
    """A model call a scorer needs per row: rendered from ``variables(output, row)``, read by ``verdict``.

    Subclass it (or build one) in a plugin scorer to get the same batching, cache and counting.
    """

    rubric: str
    model: str | None = None  # None: the configured model
    template: str = JUDGE_TEMPLATE
    system: str | None = JUDGE_SYSTEM
    params: Mapping[str, Any] = field(default_factory=lambda: {"temperature": 0})
    name: str = "llmops-judge"
    # A JSON schema the answer is decoded under (``response_format``: json_schema on endpoints, a grammar on the
    # embedded model); None: free text.
    answer_schema: Mapping[str, Any] | None = None

    def plan(self, settings: "Settings") -> "CallPlan":
        """The judge's call plan (provider resolved, params validated): built once per batch."""
        from llmops_lab.core.plan import plan_call

        return plan_call(self.template, model=self.model or settings.model, name=self.name, system=self.system,
                         params=self.params, settings=settings,
                         schema=dict(self.answer_schema) if self.answer_schema is not None else None)

    def variables(self, output: str, row: Mapping[str, Any]) -> dict[str, Any]:
        return {"rubric": self.rubric, "fields": judge_fields(row), "output": output}

    def verdict(self, answer: str) -> ScoreResult:
        return parse_verdict(answer)

    def as_scorer(self, name: str = "judge") -> Scorer:
        """This judge as a scorer for ``batch`` / ``compare`` / ``probe`` (e.g. a calibrated judge)."""
        return Scorer(name, lambda output, row, meta: self.score(output, row), judge=self)

    def score(self, output: str, row: Mapping[str, Any]) -> RawScore:
        """One standalone call: no cache and no MLflow record (the batch logs scores, not judge runs)."""
        from llmops_lab.config import get_settings

        plan = self.plan(get_settings())
        completion = plan.provider.complete(plan.model_id.model, plan.messages(self.variables(output, row)),
                                            plan.params)
        verdict = self.verdict(completion.text)
        return {"value": verdict.value, "passed": verdict.passed, "rationale": verdict.rationale}


JSON_TEMPLATE = _GRADE + ('Answer with one line of JSON and nothing else: '
                          '{"verdict": "PASS" or "FAIL", "reason": "one sentence"}')


def parse_json_verdict(answer: str) -> ScoreResult:
    """A ``{"verdict": "PASS"|"FAIL", "reason": ...}`` answer (code fences and text around the object allowed);
    an answer that is no such object is read as free text by :func:`parse_verdict`.

    >>> parse_json_verdict('```json\\n{"verdict": "fail", "reason": "No date."}\\n```')
    ScoreResult(value=0.0, passed=False, rationale='No date.')
    """
    import json

    text = answer or ""
    start, end = text.find("{"), text.rfind("}")
    if start != -1 and end > start:
        try:
            found = json.loads(text[start:end + 1])
        except ValueError:
            found = None
        label = str(found.get("verdict", "")).strip().lower() if isinstance(found, dict) else ""
        if label in ("pass", "fail"):
            reason = found.get("reason")
            return ScoreResult(1.0 if label == "pass" else 0.0, label == "pass",
                               _truncate(str(reason)) if reason else None)
    return parse_verdict(text)


VERDICT_SCHEMA = {"title": "verdict", "type": "object", "required": ["verdict"],
                  "properties": {"verdict": {"type": "string", "enum": ["PASS", "FAIL"]},
                                 "reason": {"type": "string"}}}


@dataclass(frozen=True)
class JsonJudge(Judge):
    """A judge whose answer is constrained to JSON with one of two labels, and short (``max_tokens`` 64), so a
    small local model's verdict still parses: the request carries the verdict's JSON schema (decoded under a
    grammar on the embedded model, ``response_format`` on endpoints), the object is read first, free text only
    as a fallback (an endpoint that ignores ``response_format``)."""

    template: str = JSON_TEMPLATE
    params: Mapping[str, Any] = field(default_factory=lambda: {"temperature": 0, "max_tokens": 64})
    answer_schema: Mapping[str, Any] | None = field(default_factory=lambda: dict(VERDICT_SCHEMA))

    def verdict(self, answer: str) -> ScoreResult:
        return parse_json_verdict(answer)


@register_scorer("judge_json", form='judge_json:"rubric text"')
def _judge_json(arg: str, *, judge_model: str | None = None) -> Scorer:
    """Like ``judge``, with the answer constrained to ``{"verdict": "PASS"|"FAIL", "reason": ...}`` (for small
    local judges)."""
    base = _judge(arg, judge_model=judge_model)
    spec = JsonJudge(base.judge.rubric, base.judge.model)

    def judge(output: str, row: Mapping[str, Any], meta: Mapping[str, Any]) -> RawScore:
        return spec.score(output, row)

    return Scorer("judge_json", judge, judge=spec)


@register_scorer("judge", form='judge:"rubric text"')
def _judge(arg: str, *, judge_model: str | None = None) -> Scorer:
    """An LLM grades each output against the rubric (``judge_model`` or the configured model, temperature 0)."""
    rubric = _unquote(arg)
    if not rubric:
        raise ConfigError('judge needs a rubric: write judge:"Does the answer cite the article?"')
    if judge_model is not None:
        from llmops_lab.providers.base import ModelId

        ModelId.parse(judge_model)  # a malformed model id fails at parse time, before any call
    spec = Judge(rubric, judge_model)

    def judge(output: str, row: Mapping[str, Any], meta: Mapping[str, Any]) -> RawScore:
        return spec.score(output, row)

    return Scorer("judge", judge, judge=spec)
