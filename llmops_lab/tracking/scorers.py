"""MLflow interop for scorers: :func:`as_mlflow_scorer` (the only place scorers meet mlflow; the public
``llmops_lab.scoring.to_mlflow_scorer`` parses a spec and calls it)."""
from __future__ import annotations

import json
from typing import Any, Callable, Mapping

def as_mlflow_scorer(score: Callable[[str, dict, dict], Any], *, name: str, description: str) -> Any:
    """An ``mlflow.genai`` scorer that runs ``score(output, row, meta)`` (one of our scorers' ``score``).

    ``outputs`` becomes the output (non-strings as JSON); ``inputs`` and ``expectations`` (dicts) are
    merged into the row, expectations winning; a non-dict value is put under the key ``inputs`` or
    ``expectations``. There is no call metadata, so ``latency_under``/``cost_under`` score None.
    The Feedback's value is the pass/fail bool for pass/fail scorers, else the numeric value.
    """
    from mlflow.entities import Feedback
    from mlflow.genai.scorers import scorer as mlflow_scorer

    meta = {"latency_ms": None, "cost_usd": None, "usage": {}, "error": None}

    def run(inputs: Any = None, outputs: Any = None, expectations: Any = None) -> Any:
        row = {**_as_row(inputs, "inputs"), **_as_row(expectations, "expectations")}
        result = score(_as_text(outputs), row, meta)
        if result.is_error:
            return Feedback(error=result.rationale)
        value: Any = result.value
        if result.passed is not None and result.value == float(result.passed):
            value = result.passed  # a plain pass/fail: MLflow counts True as passing
        return Feedback(value=value, rationale=result.rationale)

    run.__name__ = name
    return mlflow_scorer(run, name=name, description=description)


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


