"""Batch evaluation: one template over every row of a dataset, through the same steps as ``run``
(``core/steps.py``): plan once, render each row once, budget, cache, provider, record.

validate everything (the row plan and each judge scorer's plan) -> budget (rows + judge calls, an upper
bound) -> runner over the rows (concurrency, cache, retries) -> runner over the judge calls (same cache and
limits) -> other scores -> results DataFrame + summary -> one MLflow run (kind=batch) fed through the spool
in chunks (``core/records.py``).
"""
from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Sequence

from llmops_lab.config import Settings, get_settings
from llmops_lab.core import steps
from llmops_lab.core.plan import CallPlan, plan_call
from llmops_lab.core.records import RESULT_COLUMNS, TOKENS_COLUMN  # noqa: F401 - RESULT_COLUMNS re-exported
from llmops_lab.exceptions import ConfigError

if TYPE_CHECKING:
    from llmops_lab.evaluation.runner import RowCall, RowResult

CHUNK_ROWS = 1000  # rows per spool record at most: bounded records, flat memory in the writer
# Rows are masked while the batch runs when nothing changes them after (evaluation/early_rows.py), up to this
# many: those records wait in memory until the run ends (larger batches mask chunk by chunk after it).
EARLY_ROWS_MAX = 20_000
_tickets: dict[str, Any] = {}


def batch(template: str, data: Any, *, model: str | None = None, name: str | None = None,
          system: str | None = None, scorers: Sequence[Any] | str | None = None, concurrency: int = 8,
          cache: bool = True, refresh: bool = False, variables: Mapping[str, Any] | None = None,
          judge_model: str | None = None, progress: bool = True, trace_sample: int | None = 20,
          dataset_name: str | None = None, max_cost: float | None = None, force: bool = False,
          logprobs: bool = False, top_logprobs: int | None = None, schema: Any = None, **params: Any):
    """Run ``template`` over every row of ``data``; returns a DataFrame of inputs, outputs and scores.

    >>> results = llmops_lab.batch("Classify: {{ text }}", reviews_df, scorers=["exact:label"],  # doctest: +SKIP
    ...                            model="openai:gpt-4o-mini", concurrency=16, temperature=0)
    >>> results["exact_label"].mean(), batch_run_id(results)                          # doctest: +SKIP

    ``max_cost`` (USD, default from settings) refuses, before any request, a batch whose upper-bound
    cost estimate is higher (``force=True`` skips budget checks).
    ``data``: a DataFrame, a list of dicts, or a .csv/.jsonl path. Template variables come from the
    columns, then from ``variables``. Responses are cached (``cache=False`` to skip, ``refresh=True`` to
    re-ask); a row that fails after retries is marked in ``error`` and the batch goes on.

    A scorer that asks a model (``judge:"rubric"``, or any :class:`~llmops_lab.evaluation.scoring.Scorer` with a
    ``judge``) sends its calls through the same runner and cache as the rows, and within the budget; their
    tokens and cost are the ``judge_prompt_tokens``, ``judge_completion_tokens`` and ``judge_cost_usd``
    columns (``total_tokens`` and ``cost_usd`` stay the row's own call). A failed judge call is that score's
    error; the batch goes on.

    ``logprobs=True`` (``top_logprobs`` 0-20, default 5) adds a ``token_logprobs`` column: per row the list
    of :class:`~llmops_lab.providers.base.TokenLogprob` (None where the endpoint returned none), e.g.
    ``explain.shade_html(results.token_logprobs[0])`` or ``explain.logprobs_frame(...)``. It is part of the
    cache key; cached rows keep their tokens masked like their text. The column is never logged to MLflow.

    ``schema`` (as in :func:`llmops_lab.run`: a pydantic model class, a JSON-schema dict or a ``.json`` path) is
    sent with every row (``response_format``, part of the cache key). Each answer is validated: columns
    ``schema_valid`` (bool; None for a failed call), ``schema_data`` (the validated object as a dict) and
    ``schema_error`` (one line naming the field), the ``schema_valid_rate`` metric (over answered rows), and
    scorers like ``field:age`` compare the parsed answer's field with a column. Rows are not retried on a
    mismatch: the rate measures how well the prompt and model keep to the schema.

    >>> results = llmops_lab.batch("Extract the person: {{ text }}", df, schema=Person,      # doctest: +SKIP
    ...                            scorers=["field:age", "field:name=expected_name"])
    >>> results["schema_valid"].mean(), results["field_age"].mean()                       # doctest: +SKIP
    """
    from llmops_lab.core import budget, steps
    from llmops_lab.evaluation import datasets as data_mod
    from llmops_lab.core.options import refuse_options
    from llmops_lab.evaluation.runner import RowCall, run_rows

    refuse_options("batch", params)  # compare keywords: a one-line error that names compare
    settings = get_settings()
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or not 1 <= concurrency <= 256:
        raise ConfigError(f"concurrency={concurrency!r}: use a whole number from 1 to 256")
    if trace_sample is not None and (not isinstance(trace_sample, int) or trace_sample < 0):
        raise ConfigError(f"trace_sample={trace_sample!r}: use a whole number >= 0 or None for every row")
    frame = data_mod.load_rows(data)
    if frame.columns.duplicated().any():
        twice = sorted({str(c) for c in frame.columns[frame.columns.duplicated()]})
        raise ConfigError(f"the data has duplicate column names ({', '.join(twice)}): rename them so each row maps "
                          "one value to each template variable")
    plan = plan_call(template, model=model, name=name, system=system, params=params, settings=settings,
                     logprobs=logprobs, top_logprobs=top_logprobs, schema=schema)
    data_mod.check_columns(frame, set(plan.template.variables), variables)
    from llmops_lab.evaluation.scoring import parse_scorers

    scorer_list = parse_scorers(scorers, judge_model=judge_model)
    for scorer in scorer_list:
        missing = sorted(set(scorer.needs) - set(frame.columns))
        if missing:
            raise ConfigError(f"scorer {scorer.spec or scorer.name} needs column {', '.join(missing)}, which the "
                              f"data lacks (columns: {', '.join(map(str, frame.columns))})")
    # Model-graded scorers (Scorer.judge) are planned now, like the batch: a bad judge model fails before any call.
    judges = [(scorer, scorer.judge.plan(settings)) for scorer in scorer_list if scorer.judge is not None]
    # Only what the template reads: the notebook namespace is big and rows are many.
    base = {k: v for k, v in (variables or {}).items() if k in plan.template.variables}
    columns = [str(c) for c in frame.columns]

    def values_of(row: tuple) -> dict[str, Any]:
        return {**base, **dict(zip(columns, row))}

    first = plan.messages(values_of(next(frame.itertuples(index=False, name=None))))  # fail early; reused

    def estimate_all() -> "budget.CostEstimate":
        # Streams (renders, counts, forgets): memory stays flat; it runs only when a budget applies.
        rendered = (m for m, _ in (steps.render(plan, values_of(v)) for v in frame.itertuples(index=False, name=None))
                    if m is not None)
        total = budget.estimate(plan.model_id, rendered, plan.params, settings)
        answer_bound = budget.output_bound(plan.params)  # the judge reads the answer: at most this many tokens
        for scorer, judge_plan in judges:
            asked = (m for m, _ in (steps.render(judge_plan, scorer.judge.variables("", dict(zip(columns, v))))
                                    for v in frame.itertuples(index=False, name=None)) if m is not None)
            total += budget.estimate(judge_plan.model_id, asked, judge_plan.params, settings,
                                     extra_input_tokens=answer_bound)
        return total

    estimate = budget.check(plan.model_id, estimate_all, settings, max_cost=max_cost, force=force, what="batch",
                            also=[judge_plan.model_id for _, judge_plan in judges])
    if estimate is not None:
        print(f"budget check: {estimate.describe()}")
    from llmops_lab.core.cache import ResponseCache

    response_cache = ResponseCache(settings.home / "cache.db") if cache else None
    collector = _Collector(len(frame), plan, settings, progress)
    # The traced rows keep their one render (and the variables it used, notebook ones included); the others
    # are dropped once sent, so 100,000 rows never hold 100,000 message lists.
    trace_limit = len(frame) if trace_sample is None else min(trace_sample, len(frame))
    traced: dict[int, tuple[Any, dict[str, str]]] = {}

    def rows() -> Iterator["RowCall"]:
        for index, values in enumerate(frame.itertuples(index=False, name=None)):
            row_vars = values_of(values)
            messages, error = (first, None) if index == 0 else steps.render(plan, row_vars)
            if index < trace_limit:
                traced[index] = (messages, plan.template.values_for_log(row_vars))
            if error is not None:
                yield RowCall(index, [], None, error=error)
                continue
            yield RowCall(index, messages, steps.key(plan, messages) if response_cache is not None else None)

    from llmops_lab.core import records
    from llmops_lab.evaluation.early_rows import EarlyRows

    batch_id = records.new_id()
    # Nothing after the run changes a row (no scores, judges or schema): its logged record is masked meanwhile.
    early = (EarlyRows(collector, frame, settings, batch_id, CHUNK_ROWS) if settings.tracking and not scorer_list
             and plan.schema is None and len(frame) <= EARLY_ROWS_MAX else None)
    collector.answered = early.answered if early is not None else None
    started_ns = time.time_ns()
    try:
        try:
            stats = run_rows(plan, rows(), concurrency=concurrency, cache=response_cache, refresh=refresh,
                             on_result=collector.add, idle=early.step if early is not None else None)
        finally:
            collector.close()
        judged = _run_judges(judges, frame, collector, settings, concurrency=concurrency, cache=response_cache,
                             refresh=refresh) if judges else None
    finally:
        if response_cache is not None:
            response_cache.close()
    ended_ns = time.time_ns()
    results = collector.frame(frame)
    if plan.schema is not None:
        collector.validate(plan.schema, results)
    if judged is not None:
        judged.add_columns(results)
    score_columns = _score(results, frame, scorer_list, collector, judged)
    summary = _summary(results, score_columns, stats, (ended_ns - started_ns) / 1e9, judged)
    budget.note_spend((summary["cost_usd"] or 0.0) + (summary.get("judge_cost_usd") or 0.0))
    results.attrs["llmops"] = {"summary": summary, "record_id": None}
    print(format_summary(summary))
    from llmops_lab.core import debug
    from llmops_lab.core.results import tidy

    debug.note_bulk("batch", f"{plan.name}, {len(results)} rows", len(results), "the results DataFrame")
    results = tidy(results)  # readable floats when shown; the values are exact
    if settings.tracking:
        batch_params: dict[str, Any] = {"concurrency": concurrency, "rows": len(results), "trace_sample": trace_sample}
        if judges:
            batch_params["judge_model"] = ",".join(sorted({str(jp.model_id) for _, jp in judges}))
        record_id = _track(results, frame, plan, settings, summary, collector, traced, started_ns, ended_ns,
                           batch_params, dataset_name or (data if isinstance(data, str) else None), batch_id,
                           early.finish() if early is not None else None)
        results.attrs["llmops"]["record_id"] = record_id
    return results


def batch_run_id(results: Any, timeout: float = 30.0) -> str | None:
    """The MLflow run id of a batch's results (waits for the writer, at most ``timeout`` s)."""
    record_id = (getattr(results, "attrs", {}).get("llmops") or {}).get("record_id")
    ticket = _tickets.get(record_id)
    return ticket.wait(timeout) if ticket is not None else None


class _Collector:
    """Receives row results from the runner's thread; keeps columns, not objects (flat memory)."""

    def __init__(self, n: int, plan: CallPlan, settings: Settings, progress: bool):
        self.n = n
        self.output: list[str | None] = [None] * n
        self.latency = [math.nan] * n
        self.prompt_tokens = [0] * n
        self.completion_tokens = [0] * n
        self.cost: list[float | None] = [None] * n
        self.cached = [False] * n
        self.retries = [0] * n
        self.error: list[str | None] = [None] * n
        self.times = [(0, 0)] * n
        self.tokens: list[Any] | None = [None] * n if plan.params.get("logprobs") else None
        self.data: list[Any] | None = None  # with a schema: each answer's validated object, as plain data
        self._plan, self._settings = plan, settings
        self.errors = 0
        self.spent = 0.0
        self._bar = None
        self._handle = None
        self.answered: bytearray | None = None  # EarlyRows: which rows have their final values
        if progress:
            from tqdm.auto import tqdm

            try:
                from tqdm.notebook import tqdm_notebook
            except ImportError:  # pragma: no cover - tqdm.notebook needs nothing beyond tqdm itself
                tqdm_notebook = None
            if tqdm_notebook is not None and isinstance(tqdm, type) and issubclass(tqdm, tqdm_notebook):
                # In a notebook the bar is a widget whose saved text is its first state ("0% 0/8"): it is
                # displayed with an id and replaced by its final line when the batch ends (see close).
                from IPython.display import display

                self._bar = tqdm(total=n, desc=plan.name, unit="row", mininterval=0.25, display=False)
                self._handle = display(self._bar.container, display_id=True)
                self._bar.displayed = True
            else:
                self._bar = tqdm(total=n, desc=plan.name, unit="row", mininterval=0.25)

    def add(self, r: "RowResult") -> None:
        i = r.index
        self.output[i], self.error[i], self.cached[i], self.retries[i] = r.text, r.error, r.cached, r.retries
        self.latency[i] = r.latency_ms
        self.prompt_tokens[i], self.completion_tokens[i] = r.usage.prompt_tokens, r.usage.completion_tokens
        self.times[i] = (r.start_ns, r.end_ns)
        if self.tokens is not None:
            self.tokens[i] = r.tokens
        if r.error is None:
            self.cost[i] = 0.0 if r.cached else steps.cost(self._plan, r.usage, self._settings)
            self.spent += self.cost[i] or 0.0
        else:
            self.errors += 1
        if self.answered is not None:
            self.answered[i] = 1
        if self._bar is not None:
            self._bar.update(1)
            if self._bar.n % 50 == 0 or self._bar.n == self.n:
                self._bar.set_postfix(errors=self.errors, cost=f"${self.spent:.4f}", refresh=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.set_postfix(errors=self.errors, cost=f"${self.spent:.4f}", refresh=False)
            final = self._bar.format_meter(**self._bar.format_dict)
            self._bar.close()
            if self._handle is not None:
                self._handle.update(_FinalBar(final))

    def frame(self, inputs: Any, rows: slice = slice(None)) -> Any:
        """The results of ``rows`` (all by default) beside ``inputs`` (those rows of the input frame)."""
        results = inputs.reset_index(drop=True).copy()
        results["output"] = self.output[rows]
        results["latency_ms"] = self.latency[rows]
        results["prompt_tokens"] = self.prompt_tokens[rows]
        results["completion_tokens"] = self.completion_tokens[rows]
        results["total_tokens"] = results["prompt_tokens"] + results["completion_tokens"]
        results["cost_usd"] = self.cost[rows]
        results["cached"] = self.cached[rows]
        results["retries"] = self.retries[rows]
        results["error"] = self.error[rows]
        if self.tokens is not None:
            results[TOKENS_COLUMN] = self.tokens[rows]
        return results

    def validate(self, schema: Any, results: Any) -> None:
        """The schema columns: ``schema_valid``, ``schema_error`` and ``schema_data`` (None where the call failed)."""
        from llmops_lab.core.schema import Mismatch

        valid: list[bool | None] = [None] * self.n
        problems: list[str | None] = [None] * self.n
        self.data = [None] * self.n
        for i, output in enumerate(self.output):
            if self.error[i] is not None:
                continue
            try:
                self.data[i] = schema.as_dict(schema.validate(output or ""))
                valid[i] = True
            except Mismatch as err:
                valid[i], problems[i] = False, str(err)
        results["schema_valid"] = valid
        results["schema_error"] = problems
        results["schema_data"] = self.data  # prefixed: a dataset may well have a column "data"


class _FinalBar:
    """What a finished notebook progress bar leaves in the saved output: its last line."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return self.text

    def _repr_html_(self) -> str:
        import html

        return f"<pre style='margin:0'>{html.escape(self.text)}</pre>"


class _Judged:
    """The judge calls of a batch: each judge scorer's verdicts, and per row their tokens and cost (apart from
    the row's own call: ``total_tokens`` and ``cost_usd`` stay the row's)."""

    def __init__(self, n: int):
        self.verdicts: dict[str, list[Any]] = {}
        self.prompt_tokens = [0] * n
        self.completion_tokens = [0] * n
        self.cost: list[float | None] = [None] * n
        self.stats = {"requests": 0, "cache_hits": 0}

    def add_columns(self, results: Any) -> None:
        results["judge_prompt_tokens"] = self.prompt_tokens
        results["judge_completion_tokens"] = self.completion_tokens
        results["judge_cost_usd"] = self.cost


def _run_judges(judges: list, inputs: Any, collector: _Collector, settings: Settings, *, concurrency: int,
                cache: Any, refresh: bool) -> _Judged:
    """Every judge call through the batch's runner (same cache, concurrency, limits), one pass per judge scorer."""
    from llmops_lab.core import steps
    from llmops_lab.evaluation.runner import RowCall, run_rows
    from llmops_lab.evaluation.scoring.registry import ScoreResult, _truncate

    n = collector.n
    judged = _Judged(n)
    columns = [str(c) for c in inputs.columns]
    for scorer, plan in judges:
        verdicts: list[Any] = [ScoreResult(None, None, None)] * n  # a failed row is not graded (as Scorer.score)
        judge = scorer.judge

        def calls() -> Iterator[RowCall]:
            for i, values in enumerate(inputs.itertuples(index=False, name=None)):
                if collector.error[i] is not None:
                    continue
                output = collector.output[i]
                messages, error = steps.render(plan, judge.variables("" if output is None else str(output),
                                                                     dict(zip(columns, values))))
                if error is not None:
                    yield RowCall(i, [], None, error=error)
                else:
                    yield RowCall(i, messages, steps.key(plan, messages) if cache is not None else None)

        def graded(r: RowResult, judge=judge, plan=plan, verdicts=verdicts) -> None:
            if r.error is not None:  # the score is an error; the batch goes on
                verdicts[r.index] = ScoreResult(None, None, _truncate(f"error: {r.error}"))
                return
            verdicts[r.index] = judge.verdict(r.text or "")
            i = r.index
            judged.prompt_tokens[i] += r.usage.prompt_tokens
            judged.completion_tokens[i] += r.usage.completion_tokens
            cost = 0.0 if r.cached else steps.cost(plan, r.usage, settings)
            if cost is not None:
                judged.cost[i] = (judged.cost[i] or 0.0) + cost

        stats = run_rows(plan, calls(), concurrency=concurrency, cache=cache, refresh=refresh, on_result=graded)
        judged.stats["requests"] += stats["requests"]
        judged.stats["cache_hits"] += stats["cache_hits"]
        judged.verdicts[scorer.name] = verdicts
    return judged


def _score(results: Any, inputs: Any, scorers: list, collector: _Collector, judged: _Judged | None) -> list[str]:
    if not scorers:
        return []
    local = [s for s in scorers if s.judge is None]  # judge scorers were graded by _run_judges
    local_scored: list[list[Any]] = []
    if local:
        columns = [str(c) for c in inputs.columns]
        for i, values in enumerate(inputs.itertuples(index=False, name=None)):
            meta = {"latency_ms": collector.latency[i], "cost_usd": collector.cost[i], "error": collector.error[i],
                    "usage": {"prompt_tokens": collector.prompt_tokens[i],
                              "completion_tokens": collector.completion_tokens[i]}}
            if collector.data is not None:  # a schema batch: field:NAME scorers read the validated answer
                meta["data"] = collector.data[i]
                meta["schema_valid"] = results["schema_valid"][i]
            row = dict(zip(columns, values))
            local_scored.append([s.score(collector.output[i], row, meta) for s in local])
    names = []
    k = 0
    for scorer in scorers:
        if scorer.judge is not None:
            column = judged.verdicts[scorer.name]
        else:
            column = [row[k] for row in local_scored]
            k += 1
        results[scorer.name] = [r.value for r in column]
        names.append(scorer.name)
        if any(r.rationale for r in column):
            results[f"{scorer.name}_rationale"] = [r.rationale for r in column]
    return names


def percentile(values: list[float], q: float) -> float | None:
    """Linear interpolation over the values that are not NaN (``q`` in 0..1); None when there are none."""
    values = sorted(v for v in values if not math.isnan(v))
    if not values:
        return None
    k = (len(values) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def _summary(results: Any, score_columns: list[str], stats: dict[str, int], wall_s: float,
             judged: _Judged | None = None) -> dict[str, Any]:
    called = results[~results["cached"] & results["error"].isna()]
    costs = results["cost_usd"].dropna()
    summary: dict[str, Any] = {
        "rows": len(results),
        "errors": int(results["error"].notna().sum()),
        "cache_hits": int(stats.get("cache_hits", 0)),
        "requests": int(stats.get("requests", 0)),
        "shared": int(stats.get("shared", 0)),
        "limit_cuts": int(stats.get("limit_cuts", 0)),
        "retries": int(results["retries"].sum()),
        "latency_p50_ms": percentile(list(called["latency_ms"]), 0.5),
        "latency_p95_ms": percentile(list(called["latency_ms"]), 0.95),
        "rows_per_s": len(results) / wall_s if wall_s > 0 else None,
        "wall_s": wall_s,
        "prompt_tokens": int(results["prompt_tokens"].sum()),
        "completion_tokens": int(results["completion_tokens"].sum()),
        "cost_usd": float(costs.sum()) if len(costs) else None,
        "scores": {},
    }
    if judged is not None:  # apart from the rows' own tokens and cost
        judge_prompt, judge_completion = sum(judged.prompt_tokens), sum(judged.completion_tokens)
        judge_costs = [c for c in judged.cost if c is not None]
        summary.update(judge_prompt_tokens=judge_prompt, judge_completion_tokens=judge_completion,
                       judge_total_tokens=judge_prompt + judge_completion,
                       judge_cost_usd=float(sum(judge_costs)) if judge_costs else None,
                       judge_requests=judged.stats["requests"], judge_cache_hits=judged.stats["cache_hits"])
    if "schema_valid" in results.columns:  # a schema batch: the share of answered rows that validated
        answered = results["schema_valid"].dropna()
        summary["schema_valid_rate"] = float(answered.astype(bool).mean()) if len(answered) else None
    for name in score_columns:
        values = results[name].dropna()
        summary["scores"][name] = float(values.mean()) if len(values) else None
    return summary


def _rate(value: float) -> str:
    """``290``, ``3.2``, ``0.63``: a slow batch is not "0 rows/s"."""
    return f"{value:,.0f}" if value >= 10 else f"{value:.2g}"


def format_summary(summary: Mapping[str, Any]) -> str:
    """One line: ``200 rows · 0 errors · 35 cached · p50 52 ms · p95 61 ms · 290 rows/s · $0.0012 · exact_label 0.91``."""
    def ms(v: float | None) -> str:
        return "–" if v is None else f"{v:,.0f} ms"

    parts = [f"{summary['rows']} rows", f"{summary['errors']} errors", f"{summary['cache_hits']} cached",
             f"p50 {ms(summary['latency_p50_ms'])}", f"p95 {ms(summary['latency_p95_ms'])}",
             f"{_rate(summary['rows_per_s'])} rows/s" if summary.get("rows_per_s") else "",
             "cost unknown" if summary["cost_usd"] is None else f"${summary['cost_usd']:.4f}"]
    if "judge_requests" in summary:
        cost = summary.get("judge_cost_usd")
        parts.append(f"judge {summary['judge_total_tokens']:,} tokens "
                     + ("cost unknown" if cost is None else f"${cost:.4f}"))
    if summary.get("schema_valid_rate") is not None:
        parts.append(f"schema valid {summary['schema_valid_rate']:.0%}")
    parts += [f"{k} {'–' if v is None else f'{v:.3f}'}" for k, v in summary["scores"].items()]
    return " · ".join(p for p in parts if p)


def _track(results: Any, inputs: Any, plan: CallPlan, settings: Settings, summary: dict[str, Any],
           collector: _Collector, traced: dict[int, tuple[Any, dict[str, str]]], started_ns: int, ended_ns: int,
           batch_params: dict[str, Any], source: str | None, batch_id: str, chunks: list[Any] | None) -> str:
    """Stream the rows to the spool in chunks (``chunks``: already built, masked, while the batch ran), then the
    batch record that makes them one MLflow run."""
    from llmops_lab.core import records
    from llmops_lab.evaluation import datasets as data_mod
    from llmops_lab.evaluation.early_rows import logged_rows
    from llmops_lab.tracking import submit

    if chunks is None:  # one chunk at a time: 100,000 rows never sit in memory as dicts at once
        chunks = (records.batch_rows(batch_id, i, logged_rows(results.iloc[start:start + CHUNK_ROWS]), settings)
                  for i, start in enumerate(range(0, len(results), CHUNK_ROWS)))
    n_chunks = 0
    for chunk in chunks:
        submit(chunk, settings)
        n_chunks += 1
    trace_rows = [records.trace_row(i, messages, variables, output=collector.output[i], error=collector.error[i],
                                    prompt_tokens=collector.prompt_tokens[i],
                                    completion_tokens=collector.completion_tokens[i],
                                    start_ns=collector.times[i][0], end_ns=collector.times[i][1],
                                    cached=collector.cached[i])
                  for i, (messages, variables) in sorted(traced.items())]
    columns = [str(c) for c in inputs.columns]
    dataset = {"name": source or "dataframe", "digest": data_mod.fingerprint(inputs),
               "source": source or "notebook DataFrame", "dtypes": {str(c): str(t) for c, t in inputs.dtypes.items()},
               "rows": len(inputs), "columns": columns}
    record = records.batch(plan, settings, batch_id=batch_id, chunks=n_chunks, batch_params=batch_params,
                           dataset=dataset, summary=summary, trace_rows=trace_rows, start_ns=started_ns,
                           end_ns=ended_ns)
    ticket = submit(record, settings)
    _tickets[record["id"]] = ticket
    return record["id"]
