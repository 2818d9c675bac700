"""MLflow interop for scorers: :func:`to_mlflow_scorer` (the only place scorers meet mlflow)."""
from __future__ import annotations

import json
from typing import Any, Callable, Mapping

from llmops_lab.evaluation.scoring import RawScore, Scorer, parse_scorer


def to_mlflow_scorer(scorer: "str | Callable[..., RawScore] | Scorer", *, judge_model: str | None = None) -> Any:
    """An ``mlflow.genai`` scorer running ours, for ``mlflow.genai.evaluate(scorers=[...])``.

    >>> mlflow.genai.evaluate(data=[{"inputs": {"q": "2+2"}, "outputs": "4", "expectations": {"answer": 4}}],
    ...                       scorers=[to_mlflow_scorer("numeric:answer")])          # doctest: +SKIP

    ``outputs`` becomes the output (non-strings as JSON); ``inputs`` and ``expectations`` (dicts) are
    merged into the row, expectations winning; a non-dict value is put under the key ``inputs`` or
    ``expectations``. There is no call metadata, so ``latency_under``/``cost_under`` score None.
    The Feedback's value is the pass/fail bool for pass/fail scorers, else the numeric value.
    """
    from mlflow.entities import Feedback
    from mlflow.genai.scorers import scorer as mlflow_scorer

    ours = parse_scorer(scorer, judge_model=judge_model)
    meta = {"latency_ms": None, "cost_usd": None, "usage": {}, "error": None}

    def run(inputs: Any = None, outputs: Any = None, expectations: Any = None) -> Any:
        row = {**_as_row(inputs, "inputs"), **_as_row(expectations, "expectations")}
        result = ours.score(_as_text(outputs), row, meta)
        if result.is_error:
            return Feedback(error=result.rationale)
        value: Any = result.value
        if result.passed is not None and result.value == float(result.passed):
            value = result.passed  # a plain pass/fail: MLflow counts True as passing
        return Feedback(value=value, rationale=result.rationale)

    run.__name__ = ours.name
    return mlflow_scorer(run, name=ours.name, description=ours.spec or ours.name)


def _as_row(value: Any, key: str) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return dict(value)
    return {key: value}


def _as_text(outputs: Any) -> str:
    if outputs is None or isinstance(outputs, str):
        return outputs or ""
    try:
        return json.dumps(outputs, default=str)
    except (TypeError, ValueError):
        return str(outputs)


