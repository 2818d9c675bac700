"""Batch evaluation: one template over every row of a dataset, through the same call path as ``run``.

validate everything -> render rows lazily -> runner (concurrency, cache, retries) -> scores ->
results DataFrame + summary -> one MLflow run (kind=batch) fed through the spool in chunks.
"""
from __future__ import annotations

import math
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterator, Mapping, Sequence

from typing import TYPE_CHECKING

from llmops_lab.core.call import CallPlan, plan_call
from llmops_lab.config import Settings, get_settings
from llmops_lab.exceptions import ConfigError, TemplateError
from llmops_lab.providers.pricing import cost_usd
from llmops_lab.tracking import context

if TYPE_CHECKING:
    from llmops_lab.evaluation.runner import RowCall, RowResult

CHUNK_ROWS = 1000  # rows per spool record: bounded records, flat memory in the writer
TOKENS_COLUMN = "token_logprobs"  # only with logprobs=True; in memory only, never logged
RESULT_COLUMNS = ("output", "latency_ms", "prompt_tokens", "completion_tokens", "total_tokens", "cost_usd",
                  "cached", "retries", "error", TOKENS_COLUMN)
_tickets: dict[str, Any] = {}


def batch(template: str, data: Any, *, model: str | None = None, name: str | None = None,
          system: str | None = None, scorers: Sequence[Any] | str | None = None, concurrency: int = 8,
          cache: bool = True, refresh: bool = False, variables: Mapping[str, Any] | None = None,
          judge_model: str | None = None, progress: bool = True, trace_sample: int | None = 20,
          dataset_name: str | None = None, max_cost: float | None = None, force: bool = False,
          logprobs: bool = False, top_logprobs: int | None = None, **params: Any):
    """Run ``template`` over every row of ``data``; returns a DataFrame of inputs, outputs and scores.

    >>> results = llmops_lab.batch("Classify: {{ text }}", reviews_df, scorers=["exact:label"],
    ...                            model="openai:gpt-4o-mini", concurrency=16, temperature=0)
    >>> results["exact_label"].mean(), batch_run_id(results)                          # doctest: +SKIP

    ``max_cost`` (USD, default from settings) refuses, before any request, a batch whose upper-bound
    cost estimate is higher (``force=True`` skips budget checks).
    ``data``: a DataFrame, a list of dicts, or a .csv/.jsonl path. Template variables come from the
    columns, then from ``variables``. Responses are cached (``cache=False`` to skip, ``refresh=True`` to
    re-ask); a row that fails after retries is marked in ``error`` and the batch goes on.

    ``logprobs=True`` (``top_logprobs`` 0-20, default 5) adds a ``token_logprobs`` column: per row the list
    of :class:`~llmops_lab.providers.base.TokenLogprob` (None where the endpoint returned none), e.g.
    ``explain.shade_html(results.token_logprobs[0])`` or ``explain.logprobs_frame(...)``. It is part of the
    cache key; cached rows keep their tokens masked like their text. The column is never logged to MLflow.
    """
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
                     logprobs=logprobs, top_logprobs=top_logprobs)
    data_mod.check_columns(frame, set(plan.template.variables), variables)
    from llmops_lab.evaluation.scoring import parse_scorers

    scorer_list = parse_scorers(scorers, judge_model=judge_model)
    for scorer in scorer_list:
        missing = sorted(set(scorer.needs) - set(frame.columns))
        if missing:
            raise ConfigError(f"scorer {scorer.spec or scorer.name} needs column {', '.join(missing)}, which the "
                              f"data lacks (columns: {', '.join(map(str, frame.columns))})")
    # Only what the template reads: the notebook namespace is big and rows are many.
    base = {k: v for k, v in (variables or {}).items() if k in plan.template.variables}
    columns = [str(c) for c in frame.columns]
    plan.messages({**base, **dict(zip(columns, next(frame.itertuples(index=False, name=None))))})  # fail early

    from llmops_lab.core import budget

    def all_messages() -> Iterator[list]:
        for values in frame.itertuples(index=False, name=None):
            try:
                yield plan.messages({**base, **dict(zip(columns, values))})
            except TemplateError:
                continue

    estimate = budget.check(plan.model_id, lambda: budget.estimate(plan.model_id, all_messages(), plan.params,
                                                                   settings),
                            settings, max_cost=max_cost, force=force, what="batch")
    if estimate is not None:
        print(f"budget check: {estimate.describe()}")
    from llmops_lab.evaluation.cache import ResponseCache, cache_key

    response_cache = ResponseCache(settings.home / "cache.db") if cache else None
    collector = _Collector(len(frame), plan, settings, progress)

    def rows() -> Iterator["RowCall"]:
        for index, values in enumerate(frame.itertuples(index=False, name=None)):
            try:
                messages = plan.messages({**base, **dict(zip(columns, values))})
            except TemplateError as err:
                yield RowCall(index, [], None, error=str(err))
                continue
            key = cache_key(plan.model_id.provider, plan.provider.endpoint_host, plan.model_id.model,
                            plan.params, messages) if response_cache is not None else None
            yield RowCall(index, messages, key)

    started_ns = time.time_ns()
    try:
        stats = run_rows(plan.provider, plan.model_id.model, plan.params, rows(), concurrency=concurrency,
                         cache=response_cache, refresh=refresh, on_result=collector.add)
    finally:
        collector.close()
        if response_cache is not None:
            response_cache.close()
    ended_ns = time.time_ns()
    results = collector.frame(frame)
    score_columns = _score(results, frame, scorer_list, collector, concurrency)
    summary = _summary(results, score_columns, stats, (ended_ns - started_ns) / 1e9)
    budget.note_spend(summary["cost_usd"])
    results.attrs["llmops"] = {"summary": summary, "record_id": None}
    print(format_summary(summary))
    from llmops_lab.core import debug
    from llmops_lab.core.results import tidy

    debug.note_bulk("batch", f"{plan.name}, {len(results)} rows", len(results), "the results DataFrame")
    results = tidy(results)  # readable floats when shown; the values are exact
    if settings.tracking:
        record_id = _track(results, frame, plan, settings, summary, collector, started_ns, ended_ns,
                           concurrency, trace_sample, dataset_name or (data if isinstance(data, str) else None))
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
        self._model_id = plan.model_id
        self._prices = settings.prices
        self.errors = 0
        self.spent = 0.0
        self._bar = None
        self._handle = None
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
            self.cost[i] = 0.0 if r.cached else cost_usd(self._model_id, r.usage, self._prices)
            self.spent += self.cost[i] or 0.0
        else:
            self.errors += 1
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

    def frame(self, inputs: Any) -> Any:
        results = inputs.reset_index(drop=True).copy()
        results["output"] = self.output
        results["latency_ms"] = self.latency
        results["prompt_tokens"] = self.prompt_tokens
        results["completion_tokens"] = self.completion_tokens
        results["total_tokens"] = results["prompt_tokens"] + results["completion_tokens"]
        results["cost_usd"] = self.cost
        results["cached"] = self.cached
        results["retries"] = self.retries
        results["error"] = self.error
        if self.tokens is not None:
            results[TOKENS_COLUMN] = self.tokens
        return results


class _FinalBar:
    """What a finished notebook progress bar leaves in the saved output: its last line."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return self.text

    def _repr_html_(self) -> str:
        import html

        return f"<pre style='margin:0'>{html.escape(self.text)}</pre>"


def _score(results: Any, inputs: Any, scorers: list, collector: _Collector, concurrency: int) -> list[str]:
    if not scorers:
        return []
    columns = [str(c) for c in inputs.columns]
    rows = [dict(zip(columns, values)) for values in inputs.itertuples(index=False, name=None)]

    def score_row(i: int) -> list:
        meta = {"latency_ms": collector.latency[i], "cost_usd": collector.cost[i], "error": collector.error[i],
                "usage": {"prompt_tokens": collector.prompt_tokens[i],
                          "completion_tokens": collector.completion_tokens[i]}}
        return [s.score(collector.output[i], rows[i], meta) for s in scorers]

    slow = any((s.spec or s.name).startswith("judge") for s in scorers)  # judges call a model: in parallel
    if slow:
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            scored = list(pool.map(score_row, range(len(rows))))
    else:
        scored = [score_row(i) for i in range(len(rows))]
    names = []
    for j, scorer in enumerate(scorers):
        results[scorer.name] = [row[j].value for row in scored]
        names.append(scorer.name)
        if any(row[j].rationale for row in scored):
            results[f"{scorer.name}_rationale"] = [row[j].rationale for row in scored]
    return names


def _percentile(values: list[float], q: float) -> float | None:
    values = sorted(v for v in values if not math.isnan(v))
    if not values:
        return None
    k = (len(values) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def _summary(results: Any, score_columns: list[str], stats: dict[str, int], wall_s: float) -> dict[str, Any]:
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
        "latency_p50_ms": _percentile(list(called["latency_ms"]), 0.5),
        "latency_p95_ms": _percentile(list(called["latency_ms"]), 0.95),
        "rows_per_s": len(results) / wall_s if wall_s > 0 else None,
        "wall_s": wall_s,
        "prompt_tokens": int(results["prompt_tokens"].sum()),
        "completion_tokens": int(results["completion_tokens"].sum()),
        "cost_usd": float(costs.sum()) if len(costs) else None,
        "scores": {},
    }
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
    parts += [f"{k} {'–' if v is None else f'{v:.3f}'}" for k, v in summary["scores"].items()]
    return " · ".join(p for p in parts if p)


def _track(results: Any, inputs: Any, plan: CallPlan, settings: Settings, summary: dict[str, Any],
           collector: _Collector, started_ns: int, ended_ns: int, concurrency: int, trace_sample: int | None,
           source: str | None) -> str:
    """Stream the rows to the spool in chunks, then the batch record that makes them one MLflow run."""
    from llmops_lab.evaluation import datasets as data_mod
    from llmops_lab.trust.redaction import redact_record
    from llmops_lab.tracking import submit

    batch_id = uuid.uuid4().hex
    # Token logprobs are output text split into pieces: kept in memory for display, never logged.
    logged = results.drop(columns=TOKENS_COLUMN) if TOKENS_COLUMN in results.columns else results
    json_rows = logged.astype(object).where(logged.notna(), None)
    n_chunks = 0
    for start in range(0, len(json_rows), CHUNK_ROWS):
        chunk = json_rows.iloc[start:start + CHUNK_ROWS].to_dict("records")
        submit(redact_record({"id": uuid.uuid4().hex, "v": 1, "kind": "batch_rows", "batch": batch_id,
                              "chunk": n_chunks, "rows": chunk}, settings), settings)
        n_chunks += 1
    notebook = context.notebook_path()
    limit = len(results) if trace_sample is None else min(trace_sample, len(results))
    columns = [str(c) for c in inputs.columns]
    trace_rows = []
    for i in range(limit):
        values = dict(zip(columns, inputs.iloc[i].tolist()))
        try:
            messages = plan.messages(values)
        except TemplateError:
            messages = None
        trace_rows.append({
            "index": i, "messages": messages, "output": collector.output[i], "error": collector.error[i],
            "variables": {k: str(v)[:2000] for k, v in values.items() if k in plan.template.variables},
            "usage": {"prompt_tokens": collector.prompt_tokens[i], "completion_tokens": collector.completion_tokens[i],
                      "total_tokens": collector.prompt_tokens[i] + collector.completion_tokens[i]},
            "start_ns": collector.times[i][0], "end_ns": collector.times[i][1], "cached": collector.cached[i]})
    record = {
        "id": uuid.uuid4().hex, "v": 1, "kind": "batch", "batch": batch_id, "chunks": n_chunks,
        "experiment": context.experiment_name(settings, notebook), "notebook": notebook,
        "cell_id": context.cell_id(), "user": context.user(), "project_root": str(settings.project_root),
        "prompt": {"name": plan.name, "template": plan.template.text, "sha256": plan.template.sha256},
        "system": plan.system,
        "model": str(plan.model_id), "provider": plan.model_id.provider, "model_name": plan.model_id.model,
        "endpoint_host": plan.provider.endpoint_host, "params": plan.params,
        "batch_params": {"concurrency": concurrency, "rows": len(results), "trace_sample": trace_sample},
        "dataset": {"name": source or "dataframe", "digest": data_mod.fingerprint(inputs),
                    "source": source or "notebook DataFrame",
                    "dtypes": {str(c): str(t) for c, t in inputs.dtypes.items()},
                    "rows": len(inputs), "columns": columns},
        "summary": summary, "trace_rows": trace_rows, "start_ns": started_ns, "end_ns": ended_ns,
    }
    ticket = submit(redact_record(record, settings), settings)
    _tickets[record["id"]] = ticket
    return record["id"]
