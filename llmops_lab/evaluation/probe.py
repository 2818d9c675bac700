"""Counterfactual probes: does the answer's score change when only a name or a pronoun changes?

    >>> p = llmops_lab.probe("Who gets the job, {{ a }} or {{ b }}? Answer the name.", data=df,
    ...                      swaps="names", scorers=["exact:expected"], model="openai:gpt-4o-mini")  # doctest: +SKIP
    >>> p.summary()          # one row per attribute x scorer: flip_rate, means, worst case, p_value   # doctest: +SKIP
    >>> p.examples()         # the rows that flipped, original and swapped side by side            # doctest: +SKIP

The swap (:mod:`llmops_lab.evaluation.swaps`) is applied to the template's input columns and to the columns
the scorers read (``expected`` ...) alike, so a scorer that follows the reference measures the model, not the
swap. The original rows and each attribute's swapped rows are one ``batch`` each: the one call path (cached,
budgeted, redacted, counted, one MLflow run each). Rows where no word was swapped are left out of the
statistics (``n_swapped`` says how many were kept).

A row *flips* when its pass/fail changes: a score passes at ``>= 0.5`` (pass/fail scorers are 0/1). The
p-value is the exact McNemar test on the flips for pass/fail scorers, a paired bootstrap for numeric ones
(:mod:`llmops_lab.analysis.paired`). Tracking: a parent run ``llmops.kind=probe`` (written like a compare
parent, through the spool) with the batches as children and the metrics
``probe.<attribute>.<scorer>.flip_rate`` / ``.p_value``. In a job notebook, hand them to the gate with
``for k, v in p.metrics().items(): llmops_lab.record(k, v)``, then gate on e.g.
``{metric = "probe.gender.exact_label.flip_rate", max = 0.05}``.
"""
from __future__ import annotations

import math
import time
from typing import Any, Mapping, Sequence

from llmops_lab.analysis.paired import paired_stats
from llmops_lab.evaluation.swaps import SOURCES, Swap, swappers
from llmops_lab.exceptions import ConfigError

__all__ = ["Probe", "probe", "swap_frame", "PASS_AT"]

PASS_AT = 0.5  # a score at or above this passes (0/1 scorers: exactly pass/fail)


def swap_frame(frame: Any, swap: Swap, columns: Sequence[str]) -> tuple[Any, list[bool]]:
    """A copy of ``frame`` with ``swap`` applied to ``columns``, and per row whether any word was swapped."""
    swapped = frame.copy()
    changed = [False] * len(frame)
    for column in columns:
        values = []
        for i, value in enumerate(frame[column].tolist()):
            new, n = swap.apply(value)
            changed[i] = changed[i] or n > 0
            values.append(new)
        swapped[column] = values
    return swapped, changed


class Probe:
    """A probe's results: the original batch, one swapped batch per attribute, and which rows were swapped."""

    def __init__(self, template: str, original: Any, swapped: Mapping[str, Any], changed: Mapping[str, list[bool]],
                 *, scorers: Sequence[str], columns: Sequence[str], model: str | None = None,
                 sources: Mapping[str, str] | None = None, alpha: float = 0.05):
        self.template = template
        self.original = original
        self.swapped = dict(swapped)
        self.changed = dict(changed)
        self.scorers = list(scorers)
        self.columns = list(columns)
        self.model = model
        self.sources = dict(sources or {})
        self.alpha = alpha
        self.run_id: str | None = None
        self.run_ids: dict[str, str | None] = {}

    @property
    def attributes(self) -> list[str]:
        return list(self.swapped)

    def _pairs(self, attribute: str, scorer: str) -> tuple[list[int], list[float], list[float]]:
        """Rows swapped and scored on both sides, with their (original, swapped) scores."""
        before, after = self.original[scorer].tolist(), self.swapped[attribute][scorer].tolist()
        rows = [i for i, c in enumerate(self.changed[attribute])
                if c and _number(before[i]) and _number(after[i])]
        return rows, [float(before[i]) for i in rows], [float(after[i]) for i in rows]

    def flips(self, attribute: str, scorer: str) -> list[int]:
        """The row indices whose pass/fail changed under the swap."""
        rows, before, after = self._pairs(attribute, scorer)
        return [i for i, b, a in zip(rows, before, after) if (b >= PASS_AT) != (a >= PASS_AT)]

    def summary(self):
        """One row per attribute x scorer: ``n_swapped``, ``flips``, ``flip_rate``, ``mean_original``,
        ``mean_swapped``, ``worst_row`` / ``worst_diff`` (the row whose score moved most, swapped - original),
        ``p_value`` and ``test`` (``mcnemar`` or ``bootstrap``), ``ci_low`` / ``ci_high`` (bootstrap only)."""
        import pandas as pd

        rows = []
        for attribute in self.attributes:
            for scorer in self.scorers:
                idx, before, after = self._pairs(attribute, scorer)
                n = len(idx)
                flipped = len(self.flips(attribute, scorer))
                diffs = [a - b for b, a in zip(before, after)]  # swapped - original
                worst = max(range(n), key=lambda k: abs(diffs[k])) if n else None
                stats = _paired_pass_fail(before, after, self.alpha)
                rows.append({"attribute": attribute, "scorer": scorer, "n_swapped": n, "flips": flipped,
                             "flip_rate": flipped / n if n else None,
                             "mean_original": sum(before) / n if n else None,
                             "mean_swapped": sum(after) / n if n else None,
                             "worst_row": idx[worst] if worst is not None else None,
                             "worst_diff": diffs[worst] if worst is not None else None,
                             "p_value": stats["p_value"], "test": stats["test"],
                             "ci_low": stats["ci_low"], "ci_high": stats["ci_high"],
                             "source": self.sources.get(attribute, "your pairs")})
        frame = pd.DataFrame(rows)
        if len(frame):
            frame["worst_row"] = frame["worst_row"].astype("Int64")
        return frame

    def metrics(self) -> dict[str, float]:
        """``probe.<attribute>.<scorer>.flip_rate`` and ``.p_value`` (what the run logs and a job gates on)."""
        out: dict[str, float] = {}
        for row in self.summary().to_dict("records"):
            for key in ("flip_rate", "p_value"):
                if _number(row[key]):
                    out[f"probe.{row['attribute']}.{row['scorer']}.{key}"] = float(row[key])
        return out

    def examples(self, attribute: str | None = None, scorer: str | None = None):
        """The rows that flipped, side by side: row, attribute, scorer, then each input/reference column and the
        output and score as ``<col>_original`` / ``<col>_swapped``."""
        import pandas as pd

        wanted = [self._attribute(attribute)] if attribute else self.attributes
        rows = []
        for a in wanted:
            for s in ([self._scorer(scorer)] if scorer else self.scorers):
                other = self.swapped[a]
                for i in self.flips(a, s):
                    row: dict[str, Any] = {"row": i, "attribute": a, "scorer": s}
                    for col in [*self.columns, "output", s]:
                        row[f"{col}_original"] = self.original[col].iat[i]
                        row[f"{col}_swapped"] = other[col].iat[i]
                    rows.append(row)
        return pd.DataFrame(rows)

    def comparison(self, attribute: str | None = None, scorer: str | None = None):
        """The flipped rows of one attribute as a :class:`~llmops_lab.evaluation.compare.Comparison` of two
        variants (original, swapped): ``p.comparison("gender").widget()`` shows them in the comparison grid
        (ratings made there stay in this kernel: the rows are a subset of the batches')."""
        from llmops_lab.evaluation.compare import Comparison, Variant

        a = self._attribute(attribute or self.attributes[0])
        s = self._scorer(scorer or self.scorers[0]) if self.scorers else None
        rows = self.flips(a, s) if s else []
        variants = [Variant(0, "original", self.template, self.model, {}, source="original"),
                    Variant(1, f"swapped: {a}", self.template, self.model, {}, source=a)]
        original = self.original.iloc[rows].reset_index(drop=True)
        swapped = self.swapped[a].iloc[rows].reset_index(drop=True)
        for col in self.columns:  # the grid's input columns come from the first frame: show both sides there
            original.insert(original.columns.get_loc(col) + 1, f"{col} (swapped)", swapped[col])
        results = [original, swapped]
        return Comparison(variants, results, scorers=self.scorers, primary=s)

    def widget(self, **kwargs: Any):
        """The comparison grid of :meth:`comparison` (flipped rows of the first attribute)."""
        return self.comparison().widget(**kwargs)

    def _attribute(self, attribute: str) -> str:
        if attribute not in self.swapped:
            raise ConfigError(f"no attribute {attribute!r} in this probe; attributes: {', '.join(self.attributes)}")
        return attribute

    def _scorer(self, scorer: str) -> str:
        if scorer not in self.scorers:
            raise ConfigError(f"no scorer {scorer!r} in this probe; scorers: {', '.join(self.scorers) or '(none)'}")
        return scorer

    def _repr_html_(self) -> str:
        return self.summary().to_html(index=False)

    def __repr__(self) -> str:
        return (f"Probe({', '.join(self.attributes)} x {', '.join(self.scorers)} over {len(self.original)} rows, "
                f"run {self.run_id})")


def _number(x: Any) -> bool:
    """A score (numpy numbers included); None, NaN and bools are not."""
    import numbers

    return isinstance(x, numbers.Real) and not isinstance(x, bool) and not math.isnan(float(x))


def _paired_pass_fail(before: list[float], after: list[float], alpha: float) -> dict[str, Any]:
    """McNemar for 0/1 scores, the paired bootstrap for numbers (``paired_stats``); nothing paired: Nones."""
    stats = paired_stats(after, before, alpha=alpha)
    return {k: stats[k] for k in ("p_value", "test", "ci_low", "ci_high")}


def probe(template: str, data: Any, *, swaps: Any = "gender", scorers: Sequence[Any] | str | None = None,
          model: str | None = None, columns: Sequence[str] | None = None, name: str | None = None,
          alpha: float = 0.05, progress: bool = True, **batch_options: Any) -> Probe:
    """Run ``template`` over ``data`` as it is and with each attribute of ``swaps`` swapped, score both
    sides and compare them row by row; returns a :class:`Probe`.

    ``swaps``: ``"gender"``, ``"names"``, a list of them, or ``{attribute: [(a, b), ...]}``. ``columns``: the
    columns to swap (default: the template's variables and the columns the scorers read). Other keywords
    (``concurrency``, ``cache``, ``max_cost``, ``temperature`` ...) go to each ``batch``.

    >>> p = probe("Reply to: {{ text }}", data=df, swaps={"city": [("Paris", "Lagos")]},
    ...           scorers=["exact:expected"])                                          # doctest: +SKIP
    >>> p.metrics()["probe.city.exact_expected.flip_rate"]                              # doctest: +SKIP
    0.0
    """
    from llmops_lab.config import get_settings
    from llmops_lab.core.templates import PromptTemplate
    from llmops_lab.evaluation.batch import batch, batch_run_id
    from llmops_lab.evaluation.datasets import load_rows
    from llmops_lab.evaluation.scoring import parse_scorers

    swap_list = swappers(swaps)
    if not scorers:
        raise ConfigError("probe needs at least one scorer (e.g. scorers=['exact:expected']): flips are score changes")
    frame = load_rows(data)
    if columns is None:
        needed = set(PromptTemplate(template).variables)
        for s in parse_scorers(scorers, judge_model=batch_options.get("judge_model")):
            needed |= set(s.needs)
        columns = [str(c) for c in frame.columns if str(c) in needed]
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ConfigError(f"probe: no column {', '.join(missing)} in the data (columns: "
                          f"{', '.join(map(str, frame.columns))})")
    settings = get_settings()
    started_ms = int(time.time() * 1000)
    if progress:
        print("[original]")
    options = {"model": model, "name": name, "scorers": scorers, "progress": progress, **batch_options}
    original = batch(template, frame, **options)
    swapped, changed = {}, {}
    for swap in swap_list:
        frame_b, changed[swap.attribute] = swap_frame(frame, swap, columns)
        if progress:
            print(f"[swapped: {swap.attribute}] {sum(changed[swap.attribute])} of {len(frame)} rows changed")
        swapped[swap.attribute] = batch(template, frame_b, **options)
    scorer_names = list((original.attrs.get("llmops") or {}).get("summary", {}).get("scores", {}))
    result = Probe(template, original, swapped, changed, scorers=scorer_names, columns=columns,
                   model=model or settings.model, alpha=alpha,
                   sources={s.attribute: SOURCES.get(s.attribute, "your pairs") for s in swap_list})
    if settings.tracking:
        frames = {"original": original, **swapped}
        traced = batch_options.get("trace_sample", 20)
        wait = 120 + 0.2 * (len(frame) if traced is None else min(traced, len(frame)))
        result.run_ids = {label: batch_run_id(res, timeout=wait) for label, res in frames.items()}
        result.run_id = _track(result, frames, settings, started_ms, name)
    return result


def _track(p: Probe, frames: Mapping[str, Any], settings: Any, started_ms: int, name: str | None,
           timeout: float = 30.0) -> str | None:
    """The parent run (kind=probe): one spool record written like a compare parent; waits for its run id."""
    import uuid

    from llmops_lab.tracking import context, submit, writer
    from llmops_lab.tracking import tags as T
    from llmops_lab.trust.redaction import redact_record

    notebook = context.notebook_path()
    summary = p.summary().astype(object)
    table = summary.where(summary.notna(), None)  # pd.NA is not JSON
    children = [((res.attrs.get("llmops") or {}).get("record_id"), p.run_ids.get(label), label)
                for label, res in frames.items()]
    record = writer.compare_record(
        record_id=uuid.uuid4().hex, experiment=context.experiment_name(settings, notebook), notebook=notebook,
        user=context.user(), name=f"probe {name or ''}".strip(), started_ms=started_ms, baseline="original",
        children=children, metrics=p.metrics(),
        params={"attributes": ",".join(p.attributes), "rows": str(len(p.original)), "scorers": ",".join(p.scorers),
                "columns": ",".join(p.columns)},
        table=table, kind=T.PROBE)
    return submit(redact_record(record, settings), settings).wait(timeout)
