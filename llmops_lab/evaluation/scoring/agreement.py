"""Judges checked against people: how often a judge scorer agrees with human ratings, and a calibrated version.

    >>> a = llmops_lab.scoring.agreement('judge:"Is the summary faithful?"', cmp)   # ratings from cmp.rate()  # doctest: +SKIP
    >>> a.accuracy, a.kappa, a.confusion                                                 # doctest: +SKIP
    >>> better = a.calibrate()      # a new judge version with the disagreements as labelled examples  # doctest: +SKIP

``ratings`` are the human ratings already stored as MLflow feedback: a
:class:`~llmops_lab.evaluation.compare.Comparison` (its ``rate()`` ratings, read back with ``load_ratings()``
when it has none in memory), or a DataFrame / list of dicts with an ``output`` column, a ``human`` column
(True/False, ``pass``/``fail``, or a 1-5 score: 4-5 pass, 1-2 fail, 3 left out) and the row's fields. The
judge's calls go through the batch runner and the response cache (asked again, they cost nothing).

A judge answer that gives no verdict is the label ``none``: it counts as a disagreement and is a category of
its own in the confusion table and in kappa.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Mapping, Sequence

from llmops_lab.evaluation.scoring.judge import Judge
from llmops_lab.exceptions import ConfigError

__all__ = ["Agreement", "agreement", "cohen_kappa", "human_label", "examples_block"]

NO_VERDICT = "none"


def cohen_kappa(a: Sequence[Any], b: Sequence[Any]) -> float:
    """Cohen's kappa of two raters' labels: (p_o - p_e) / (1 - p_e); NaN when chance agreement is certain.

    >>> round(cohen_kappa(["pass", "pass", "fail", "fail"], ["pass", "fail", "fail", "fail"]), 4)
    0.5
    """
    if len(a) != len(b):
        raise ConfigError(f"cohen_kappa: {len(a)} labels against {len(b)}")
    n = len(a)
    if not n:
        return math.nan
    observed = sum(x == y for x, y in zip(a, b)) / n
    chance = sum((list(a).count(k) / n) * (list(b).count(k) / n) for k in set(a) | set(b))
    return math.nan if chance == 1 else (observed - chance) / (1 - chance)


def human_label(value: Any) -> str | None:
    """A human rating as ``pass`` / ``fail`` (None: no usable rating).

    >>> [human_label(v) for v in (True, "FAIL", 5, 3, 1, None)]
    ['pass', 'fail', 'pass', None, 'fail', None]
    """
    if isinstance(value, bool):
        return "pass" if value else "fail"
    if isinstance(value, (int, float)) and not (isinstance(value, float) and math.isnan(value)):
        return "pass" if value >= 4 else "fail" if value <= 2 else None
    if isinstance(value, str) and value.strip().lower() in ("pass", "fail"):
        return value.strip().lower()
    return None


def _rated_rows(ratings: Any):
    """Ratings of any accepted shape -> DataFrame of output, human (pass/fail) and the row's fields."""
    import pandas as pd

    if hasattr(ratings, "variants") and hasattr(ratings, "ratings"):  # a Comparison
        found = ratings.ratings or (ratings.load_ratings() if any(ratings.run_ids) else {})
        inputs = ratings.inputs()
        rows = []
        for (row, vi), r in sorted(found.items()):
            label = human_label(r.get("thumbs")) or human_label(r.get("score"))
            rows.append({**inputs.iloc[row].to_dict(), "output": ratings.results[vi]["output"].iat[row],
                         "human": label, "variant": ratings.variants[vi].label, "row": row})
        frame = pd.DataFrame(rows)
    else:
        frame = pd.DataFrame(ratings) if not isinstance(ratings, pd.DataFrame) else ratings.copy()
        missing = {"output", "human"} - set(frame.columns)
        if missing:
            raise ConfigError(f"ratings need the columns output and human (missing: {', '.join(sorted(missing))})")
        frame["human"] = [human_label(v) for v in frame["human"]]
    if frame.empty:
        raise ConfigError("no human ratings to check the judge against: rate rows first (cmp.rate(row, variant, "
                          "thumbs=True) or the grid's 👍/👎)")
    frame = frame[frame["human"].notna()].reset_index(drop=True)
    if frame.empty:
        raise ConfigError("no usable human ratings (thumbs, pass/fail or a score other than 3)")
    return frame


def _as_judge(judge: Any, judge_model: str | None) -> tuple[str, Judge]:
    """(scorer name, Judge) of a judge scorer spec, a Scorer with a judge, or a Judge."""
    if isinstance(judge, Judge):
        return "judge", judge
    from llmops_lab.evaluation.scoring.registry import parse_scorer

    scorer = parse_scorer(judge, judge_model=judge_model)
    if scorer.judge is None:
        raise ConfigError(f"{scorer.spec or scorer.name} is not a judge: give judge:\"rubric\" or a Judge")
    return scorer.name, scorer.judge


def _judge_labels(judge: Judge, frame: Any, *, concurrency: int, cache: bool) -> list[str]:
    """The judge's verdict per row, through the runner and the response cache (like a batch's judge calls)."""
    from llmops_lab.config import get_settings
    from llmops_lab.core import steps
    from llmops_lab.core.cache import ResponseCache
    from llmops_lab.evaluation.runner import RowCall, run_rows

    settings = get_settings()
    plan = judge.plan(settings)
    fields = [c for c in frame.columns if c not in ("output", "human", "variant", "row")]
    response_cache = ResponseCache(settings.home / "cache.db") if cache else None
    labels = [NO_VERDICT] * len(frame)

    def calls():
        for i, record in enumerate(frame.to_dict("records")):
            messages, error = steps.render(plan, judge.variables(str(record["output"] or ""),
                                                                 {k: record[k] for k in fields}))
            yield RowCall(i, messages or [], steps.key(plan, messages) if response_cache and not error else None,
                          error=error)

    def graded(r: Any) -> None:
        if r.error is None:
            verdict = judge.verdict(r.text or "")
            labels[r.index] = NO_VERDICT if verdict.passed is None else ("pass" if verdict.passed else "fail")

    try:
        run_rows(plan, calls(), concurrency=concurrency, cache=response_cache, refresh=False, on_result=graded)
    finally:
        if response_cache is not None:
            response_cache.close()
    return labels


def examples_block(rows: Sequence[Mapping[str, Any]], limit: int = 8) -> str:
    """Rated rows as labelled examples for a judge prompt, kept literal (``{% raw %}``) so their braces and
    Jinja syntax stay text when the prompt renders.

    >>> examples_block([{"output": "Paris is in Spain", "human": "fail"}]).splitlines()[:3]
    ['{% raw %}Example 1 (graded by a person: FAIL):', '<<<', 'Paris is in Spain']
    """
    parts = []
    for i, r in enumerate(rows[:limit], 1):
        output = str(r["output"]).replace("{% endraw %}", "{ % endraw % }")  # cannot close the raw block early
        parts.append(f"Example {i} (graded by a person: {str(r['human']).upper()}):\n<<<\n{output}\n>>>")
    return "{% raw %}" + "\n\n".join(parts) + "{% endraw %}"


@dataclass
class Agreement:
    """A judge against human ratings: ``table`` (one row per rating: output, human, judge, agree, fields),
    ``accuracy``, ``kappa``, ``confusion`` (human labels x judge labels) and :meth:`disagreements`."""

    judge: Judge
    scorer: str
    table: Any
    run_id: str | None = None  # the run kind=agreement that logged it (tracking on)

    @property
    def n(self) -> int:
        return len(self.table)

    @property
    def accuracy(self) -> float:
        return float(self.table["agree"].mean())

    @property
    def kappa(self) -> float:
        return cohen_kappa(self.table["human"].tolist(), self.table["judge"].tolist())

    @property
    def confusion(self):
        import pandas as pd

        labels = [k for k in ("pass", "fail", NO_VERDICT) if k in set(self.table["human"]) | set(self.table["judge"])]
        frame = pd.crosstab(pd.Categorical(self.table["human"], labels), pd.Categorical(self.table["judge"], labels),
                            rownames=["human"], colnames=["judge"], dropna=False)
        return frame

    def disagreements(self):
        """The rows where the judge and the person differ."""
        return self.table[~self.table["agree"]].reset_index(drop=True)

    def summary(self) -> dict[str, Any]:
        return {"rated": self.n, "accuracy": self.accuracy, "kappa": self.kappa,
                "disagreements": int((~self.table["agree"]).sum())}

    def metrics(self) -> dict[str, float]:
        """``judge.accuracy`` and ``judge.kappa`` (NaN left out): e.g. ``llmops_lab.record(k, v)`` for a job gate."""
        values = {"judge.accuracy": self.accuracy, "judge.kappa": self.kappa}
        return {k: float(v) for k, v in values.items() if not math.isnan(v)}

    def comparison(self):
        """The rated rows in the comparison grid: one column, with ``human`` and ``judge`` as its scores
        (1 = pass) so the grid's score chips show where they differ."""
        from llmops_lab.evaluation.compare import Comparison, Variant

        frame = self.table.copy()
        for col in ("human", "judge"):
            frame[col] = [1.0 if v == "pass" else 0.0 if v == "fail" else None for v in frame[col]]
        for col, value in (("error", None), ("cached", True), ("latency_ms", math.nan), ("cost_usd", None),
                           ("prompt_tokens", 0), ("completion_tokens", 0), ("total_tokens", 0), ("retries", 0)):
            if col not in frame.columns:
                frame[col] = value
        variant = Variant(0, f"{self.scorer} vs people", self.judge.template, self.judge.model, {}, self.judge.name)
        return Comparison([variant], [frame.drop(columns=["agree"])], scorers=["human", "judge"], primary="human")

    def calibrate(self, name: str | None = None, *, limit: int = 8) -> Judge:
        """A new judge version: its prompt holds the disagreements (up to ``limit``) as examples labelled by
        people. Registered as a version of prompt ``name`` (default: the judge's name) with this agreement in
        its tags (``llmops.judge.accuracy`` / ``.kappa`` / ``.rated``: the version it was measured on is the
        one before). Returns the calibrated :class:`Judge` (check it with ``agreement(new, ratings)`` again)."""
        from llmops_lab.tracking import registry
        from llmops_lab.tracking import tags as T

        wrong = self.disagreements().to_dict("records")
        if not wrong:
            raise ConfigError("the judge agrees with every rating: nothing to calibrate on")
        marker = "Output to grade:"
        block = "Examples graded by people (follow their judgement):\n" + examples_block(wrong, limit) + "\n\n"
        template = (self.judge.template.replace(marker, block + marker, 1) if marker in self.judge.template
                    else self.judge.template + "\n\n" + block)
        calibrated = replace(self.judge, template=template, name=name or self.judge.name)
        measured = {T.JUDGE_ACCURACY: f"{self.accuracy:.4f}", T.JUDGE_KAPPA: f"{self.kappa:.4f}",
                    T.JUDGE_RATED: str(self.n)}
        base = registry.register_version(calibrated.name, self.judge.template, model=self.judge.model,
                                         params=dict(self.judge.params), commit_message="judge before calibration")
        registry.tag_version(calibrated.name, base.version, measured)
        registry.register_version(calibrated.name, template, model=self.judge.model, params=dict(self.judge.params),
                                  commit_message=f"calibrated on {len(wrong[:limit])} disagreements with people")
        return calibrated

    def _repr_html_(self) -> str:
        s = self.summary()
        return (f"<p>{self.scorer}: {s['rated']} ratings · accuracy {s['accuracy']:.3f} · kappa {s['kappa']:.3f}"
                f" · {s['disagreements']} disagreements</p>" + self.confusion.to_html())

    def __repr__(self) -> str:
        s = self.summary()
        return (f"Agreement({self.scorer}: {s['rated']} ratings, accuracy {s['accuracy']:.3f}, kappa "
                f"{s['kappa']:.3f}, {s['disagreements']} disagreements)")


def agreement(judge: Any, ratings: Any, *, judge_model: str | None = None, concurrency: int = 8,
              cache: bool = True) -> Agreement:
    """Check a judge scorer against human ratings: accuracy, Cohen's kappa, confusion table, disagreements.

    >>> a = agreement('judge:"Is it polite?"', [{"output": "Thanks!", "human": True}])  # doctest: +SKIP
    >>> a.kappa, a.disagreements()                                                    # doctest: +SKIP
    """
    scorer, spec = _as_judge(judge, judge_model)
    table = _rated_rows(ratings)
    table["judge"] = _judge_labels(spec, table, concurrency=concurrency, cache=cache)
    table["agree"] = table["judge"] == table["human"]
    result = Agreement(spec, scorer, table)
    from llmops_lab.config import get_settings

    settings = get_settings()
    if settings.tracking:
        result.run_id = _track(result, settings)
    return result


def _track(a: Agreement, settings: Any, timeout: float = 30.0) -> str | None:
    """A run of its own (kind=agreement): metrics ``accuracy``, ``kappa`` (NaN left out), ``rated``,
    ``disagreements``; the rated rows as ``agreement.json``. One spool record, written like a compare parent
    with no children; waits for its run id."""
    import time
    import uuid

    from llmops_lab.tracking import context, submit, writer
    from llmops_lab.tracking import tags as T
    from llmops_lab.trust.redaction import redact_record

    notebook = context.notebook_path()
    s = a.summary()
    metrics = {k: float(s[k]) for k in ("accuracy", "kappa", "rated", "disagreements") if not math.isnan(float(s[k]))}
    table = a.table.astype(object)
    record = writer.compare_record(
        record_id=uuid.uuid4().hex, experiment=context.experiment_name(settings, notebook), notebook=notebook,
        user=context.user(), name=f"agreement {a.judge.name or a.scorer}", started_ms=int(time.time() * 1000),
        baseline="human", children=[], metrics=metrics,
        params={"scorer": a.scorer, "judge": a.judge.name or "", "judge_model": str(a.judge.model or "")},
        table=table.where(table.notna(), None), kind=T.AGREEMENT)
    return submit(redact_record(record, settings), settings).wait(timeout)
