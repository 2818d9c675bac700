"""Regression gate: pure checks of an execution's metrics against thresholds and a baseline."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from llmops_lab.jobs.definition import Gate


@dataclass
class Verdict:
    passed: bool
    checks: list[dict[str, Any]] = field(default_factory=list)  # one per rule: metric, rule, value, limit, ok, why
    baseline: dict[str, Any] | None = None  # {"source": "execution 3" | "run <id>", "metrics": {...}}

    @property
    def reason(self) -> str:
        failed = [c["why"] for c in self.checks if not c["ok"]]
        if failed:
            return "; ".join(failed)
        return "; ".join(c["why"] for c in self.checks) if self.checks else "no gate"

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "reason": self.reason, "checks": self.checks, "baseline": self.baseline}


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def evaluate(gates: Sequence[Gate], metrics: Mapping[str, float],
             baseline: Mapping[str, float] | None = None, baseline_source: str | None = None,
             require_baseline: bool = False) -> Verdict:
    """Check every rule of every gate. A gate metric the notebook did not record is a breach (fail closed);
    ``max_drop`` without a baseline passes and says so (the first execution), unless ``require_baseline``
    (a pinned baseline run must exist and have the metric)."""
    checks: list[dict[str, Any]] = []
    for gate in gates:
        value = metrics.get(gate.metric)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            checks.append({"metric": gate.metric, "rule": "recorded", "value": value, "limit": None, "ok": False,
                           "why": f"{gate.metric} was not recorded by the notebook "
                                  f"(call llmops_lab.record({gate.metric!r}, value))"})
            continue
        if gate.min is not None:
            ok = value >= gate.min
            checks.append({"metric": gate.metric, "rule": "min", "value": value, "limit": gate.min, "ok": ok,
                           "why": f"{gate.metric} {_fmt(value)} {'>=' if ok else '<'} min {_fmt(gate.min)}"})
        if gate.max is not None:
            ok = value <= gate.max
            checks.append({"metric": gate.metric, "rule": "max", "value": value, "limit": gate.max, "ok": ok,
                           "why": f"{gate.metric} {_fmt(value)} {'<=' if ok else '>'} max {_fmt(gate.max)}"})
        if gate.max_drop is not None:
            base = (baseline or {}).get(gate.metric)
            if base is None:
                why = (f"{gate.metric}: the pinned baseline ({baseline_source or gate.baseline}) has no "
                       f"{gate.metric}") if require_baseline else f"{gate.metric}: no baseline yet for max_drop"
                checks.append({"metric": gate.metric, "rule": "max_drop", "value": value, "limit": gate.max_drop,
                               "ok": not require_baseline, "why": why})
                continue
            drop = base - value
            ok = drop <= gate.max_drop + 1e-12
            where = f" ({baseline_source})" if baseline_source else ""
            why = (f"{gate.metric} {_fmt(value)} dropped {_fmt(drop)} from baseline {_fmt(base)}{where}, "
                   f"more than max_drop {_fmt(gate.max_drop)}") if not ok else \
                  (f"{gate.metric} {_fmt(value)} vs baseline {_fmt(base)}{where}: change {_fmt(-drop)} "
                   f"within max_drop {_fmt(gate.max_drop)}")
            checks.append({"metric": gate.metric, "rule": "max_drop", "value": value, "limit": gate.max_drop,
                           "baseline": base, "ok": ok, "why": why})
    return Verdict(all(c["ok"] for c in checks), checks,
                   {"source": baseline_source, "metrics": dict(baseline)} if baseline is not None else None)
