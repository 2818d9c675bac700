"""Scorers for batch evaluation: ``exact:COL``, ``contains:COL``, ``regex:PAT``, ``json[:schema.json]``,
``numeric:COL[:tol]``, ``latency_under:MS``, ``cost_under:USD``, ``judge:"rubric"`` and plain callables.

A registry of the same shape as papermill's engines: ``SCORERS`` maps a spec prefix to a factory, and
:func:`register_scorer` (or the ``llmops_lab.scorers`` entry-point group) adds more::

    >>> def short(output): return len(output) < 80
    >>> scorers = parse_scorers(["exact:label", "regex:^\\\\d+$", short])
    >>> [(s.name, sorted(s.needs)) for s in scorers]
    [('exact_label', ['label']), ('regex', []), ('short', [])]
    >>> scorers[0].score(" Cat ", {"label": "cat"}, {"error": None})
    ScoreResult(value=1.0, passed=True, rationale=None)

One job per module: ``registry`` (Scorer, parsing, summaries), ``builtin`` (the built-in specs),
``judge`` (the model-graded scorer; a batch runs its calls through the runner), ``agreement`` (a judge checked
against human ratings: accuracy, Cohen's kappa, confusion, ``calibrate()``). ``to_mlflow_scorer`` hands a
parsed scorer to :mod:`llmops_lab.tracking.scorers` (the only MLflow import), imported when called, so
importing this package stays light (no mlflow, pandas, openai or jsonschema).
"""
from __future__ import annotations

from typing import Any

from llmops_lab.evaluation.scoring import builtin, judge, registry
from llmops_lab.evaluation.scoring.agreement import Agreement, agreement, cohen_kappa  # noqa: F401
from llmops_lab.evaluation.scoring.builtin import first_number, strip_fences
from llmops_lab.evaluation.scoring.judge import (  # noqa: F401
    JUDGE_SYSTEM,
    JSON_TEMPLATE,
    JUDGE_TEMPLATE,
    JsonJudge,
    Judge,
    judge_fields,
    parse_json_verdict,
    parse_verdict,
)
from llmops_lab.evaluation.scoring.registry import (  # noqa: F401
    _FORMS,
    SCORERS,
    RawScore,
    Scorer,
    ScoreResult,
    known_forms,
    parse_scorer,
    parse_scorers,
    register_scorer,
    summarize_scores,
    to_result,
)

__all__ = ["ScoreResult", "Scorer", "SCORERS", "register_scorer", "parse_scorer", "parse_scorers",
           "summarize_scores", "to_mlflow_scorer", "to_result", "parse_verdict", "known_forms",
           "strip_fences", "first_number", "JUDGE_TEMPLATE", "Judge", "JsonJudge", "JSON_TEMPLATE",
           "parse_json_verdict", "agreement", "Agreement", "cohen_kappa"]


def to_mlflow_scorer(scorer: Any, *, judge_model: str | None = None) -> Any:
    """An ``mlflow.genai`` scorer running ours (a spec, a callable or a :class:`Scorer`), for
    ``mlflow.genai.evaluate(scorers=[...])``.

    >>> mlflow.genai.evaluate(data=[{"inputs": {"q": "2+2"}, "outputs": "4", "expectations": {"answer": 4}}],
    ...                       scorers=[to_mlflow_scorer("numeric:answer")])          # doctest: +SKIP
    """
    from llmops_lab.tracking.scorers import as_mlflow_scorer

    ours = parse_scorer(scorer, judge_model=judge_model)
    return as_mlflow_scorer(ours.score, name=ours.name, description=ours.spec or ours.name)


def _examples() -> dict[str, str]:
    """Every docstring with examples in the modules, so ``doctest.testmod(scoring)`` runs them all."""
    import inspect

    found: dict[str, str] = {}
    for module in (registry, builtin, judge):
        found[module.__name__] = module.__doc__ or ""
        for name, obj in vars(module).items():
            if getattr(obj, "__module__", None) != module.__name__:
                continue
            members = [(name, obj)] + [(f"{name}.{k}", v) for k, v in vars(obj).items()] if inspect.isclass(obj) \
                else [(name, obj)]
            for qualname, member in members:
                doc = inspect.getdoc(getattr(member, "__func__", member)) if callable(member) or \
                    isinstance(member, classmethod) else None
                if doc and ">>>" in doc:
                    found[f"{module.__name__}.{qualname}"] = doc
    return found


def __getattr__(name: str) -> Any:
    if name == "__test__":  # built on demand (doctest asks for it): no cost at import
        return _examples()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
