"""Compare prompt variants on the same rows: prompts x models x parameter grids, each run through ``batch``.

    >>> cmp = llmops_lab.compare(prompts=["summarize@1", "summarize@2", "Summarize in 10 words: {{ text }}"],
    ...                          models=["local:smollm2-135m", "openai:gpt-4o-mini"], data=news_df,
    ...                          scorers=["contains:keyword"], baseline=0)              # doctest: +SKIP
    >>> cmp.summary()          # one row per variant: means, wins/ties/losses vs baseline, p-value   # doctest: +SKIP
    >>> cmp.promote(2, alias="production", reason="best contains rate")              # doctest: +SKIP

One call path: every variant is one ``batch`` call (cache, retries, redaction, spool, one MLflow run each,
``trace_sample=None`` so every row has a trace to hang human feedback on). Tracking: a parent run
(``llmops.kind=compare``) is created here with ``client_for(uri).create_run``; each variant's batch run
gets ``mlflow.parentRunId`` once ``batch_run_id`` resolves (the batch writer owns run creation, so the
parent link is set afterwards rather than threading a parent through the spool record). The summary table
is logged on the parent as ``comparison.json``.

Statistics are pure functions in :mod:`llmops_lab.analysis.paired` (re-exported here): :func:`mcnemar_exact`
(pass/fail scorers: exact binomial test on the discordant pairs) and :func:`paired_bootstrap` (numeric
scorers: CI of the mean paired difference, fixed seed). A variant is compared with the baseline only on rows
where both have a score. The word diff is :mod:`llmops_lab.analysis.diff`.
"""
from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from llmops_lab.analysis.diff import word_diff, word_diff_html
from llmops_lab.analysis.paired import (BOOTSTRAP_SAMPLES, SEED, direction, mcnemar_exact, paired_bootstrap,
                                        paired_stats)
from llmops_lab.exceptions import ConfigError

__all__ = ["Variant", "Comparison", "compare", "resolve_variants", "BOOTSTRAP_SAMPLES", "SEED", "mcnemar_exact",
           "paired_bootstrap", "paired_stats", "direction", "word_diff", "word_diff_html", "DRAFTS_NAME"]

# Inline templates of a comparison with no ``name`` and no registry prompt to borrow one from all run under this
# one registry name (a version per template text) instead of one ``prompt-<hash>`` prompt each: the registry
# gets one clearly-named entry for drafts. Promoting such a variant needs a real name (``name=`` / the grid's
# name field).
DRAFTS_NAME = "compare-drafts"


# ---- variants ------------------------------------------------------------------------------------

@dataclass
class Variant:
    """One column of the comparison: a template, the model and parameters it runs with."""

    index: int
    label: str
    template: str
    model: str | None
    params: dict[str, Any] = field(default_factory=dict)
    prompt_name: str | None = None      # registry name (for registry refs) or the name inline templates use
    prompt_version: int | None = None   # registry version; None for inline templates
    source: str = ""                    # what the user wrote: "summarize@1" or the inline text

    @property
    def inline(self) -> bool:
        return self.prompt_version is None


def _grid(params: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """``{"temperature": [0, 0.7], "max_tokens": 32}`` -> [{t: 0, m: 32}, {t: 0.7, m: 32}]."""
    if not params:
        return [{}]
    keys = list(params)
    values = [v if isinstance(v, (list, tuple)) else [v] for v in params.values()]
    if any(len(v) == 0 for v in values):
        raise ConfigError("params: every grid entry needs at least one value")
    return [dict(zip(keys, combo)) for combo in itertools.product(*values)]


def resolve_variants(prompts: Sequence[str] | str, models: Sequence[str] | str | None = None,
                     params: Mapping[str, Any] | None = None, *, name: str | None = None,
                     fixed: Mapping[str, Any] | None = None, lookup: Any = None) -> list[Variant]:
    """Prompts (registry refs or inline templates) x models x parameter grid -> variants, in that order.

    A registry version's ``model_config`` supplies its model and parameters unless ``models``/``params``
    override them. ``lookup(ref) -> (name, version, template, model, params)`` is injectable for tests.
    """
    from llmops_lab.tracking import registry

    if isinstance(prompts, str):
        prompts = [prompts]
    if not prompts:
        raise ConfigError("compare needs at least one prompt (a registry reference like summarize@1 or a template)")
    if isinstance(models, str):
        models = [models]
    grid = _grid(params)
    resolved = []
    for source in prompts:
        if not isinstance(source, str) or not source.strip():
            raise ConfigError(f"prompt {source!r}: use a registry reference (name@version) or a template text")
        if registry.is_ref(source):
            if lookup is not None:
                pname, version, template, model, cfg = lookup(source)
            else:
                pv = registry.get_version(source)
                model, cfg = registry.params_from_config(getattr(pv, "model_config", None))
                pname, version, template = pv.name, int(pv.version), pv.template
            resolved.append((source, f"{pname}@{version}", pname, version, template, model, cfg))
        else:
            resolved.append((source, None, None, None, source, None, {}))
    registry_names = [r[2] for r in resolved if r[2]]
    inline_name = name or (registry_names[0] if registry_names else DRAFTS_NAME)
    variants: list[Variant] = []
    inline_no = 0
    for source, label, pname, version, template, model_cfg, cfg in resolved:
        if label is None:
            inline_no += 1
            label = f"inline{inline_no}" if sum(1 for r in resolved if r[1] is None) > 1 else "inline"
            pname = inline_name
        for model in (models or [model_cfg]):
            for point in grid:
                merged = {**cfg, **(fixed or {}), **point}
                variants.append(Variant(len(variants), "", template, model, merged, pname, version, source))
                variants[-1].label = _label(label, model, point, bool(models and len(models) > 1), len(grid) > 1)
    labels = [v.label for v in variants]
    if len(set(labels)) != len(labels):  # the same prompt given twice: keep labels unique
        for v in variants:
            if labels.count(v.label) > 1:
                v.label = f"{v.label} #{v.index}"
    return variants


def _label(prompt: str, model: str | None, point: Mapping[str, Any], show_model: bool, show_params: bool) -> str:
    parts = [prompt]
    if show_model and model:
        parts.append(model)
    if show_params and point:
        parts.append(",".join(f"{k}={v}" for k, v in point.items()))
    return " · ".join(parts)


# ---- the comparison ------------------------------------------------------------------------------

class Comparison:
    """Results of a comparison: per-variant batch results on the same rows, statistics, ratings, promote.

    Build with :func:`compare`; or ``Comparison(variants, results, scorers=[...])`` from existing frames.
    In a notebook it displays as the comparison grid widget.
    """

    def __init__(self, variants: list[Variant], results: list[Any], *, scorers: Sequence[str] = (),
                 baseline: int = 0, name: str | None = None, parent_run_id: str | None = None,
                 run_ids: Sequence[str | None] | None = None, primary: str | None = None):
        if len(variants) != len(results):
            raise ConfigError("one results frame per variant is needed")
        if not variants:
            raise ConfigError("a comparison needs at least one variant")
        n = {len(r) for r in results}
        if len(n) != 1:
            raise ConfigError(f"variants have different row counts ({sorted(n)}): they must run on the same rows")
        self.variants = variants
        self.results = results
        self.scorers = list(scorers)
        self.primary = primary or (self.scorers[0] if self.scorers else None)
        self.baseline = self.variant_index(baseline)
        self.name = name
        self.parent_run_id = parent_run_id
        self.run_ids = list(run_ids) if run_ids is not None else [None] * len(variants)
        self.ratings: dict[tuple[int, int], dict[str, Any]] = {}
        self._widget = None
        self.schema: Any = None  # core/schema.OutputSchema every variant ran with (compare(schema=)); promoted too

    # -- lookups
    @property
    def n_rows(self) -> int:
        return len(self.results[0])

    def has_logprobs(self, variant: int | str) -> bool:
        """Whether the variant ran with ``logprobs=True`` (its results have a ``token_logprobs`` column)."""
        from llmops_lab.evaluation.batch import TOKENS_COLUMN

        return TOKENS_COLUMN in self.results[self.variant_index(variant)].columns

    def tokens(self, row: int, variant: int | str) -> list[Any] | None:
        """The token logprobs of one cell (in memory only), or None (not requested or none returned).

        >>> cmp.tokens(0, 1)[0].prob                                          # doctest: +SKIP
        """
        from llmops_lab.evaluation.batch import TOKENS_COLUMN

        vi = self.variant_index(variant)
        if not self.has_logprobs(vi):
            return None
        return self.results[vi][TOKENS_COLUMN].iat[row]

    def variant_index(self, variant: int | str) -> int:
        if isinstance(variant, bool):
            raise ConfigError(f"variant {variant!r}: use an index or a label")
        if isinstance(variant, int):
            if not 0 <= variant < len(self.variants):
                raise ConfigError(f"variant {variant} out of range: 0..{len(self.variants) - 1}")
            return variant
        for v in self.variants:
            if v.label == variant or v.source == variant:
                return v.index
        raise ConfigError(f"no variant {variant!r}; variants: {', '.join(v.label for v in self.variants)}")

    def inputs(self):
        """The input columns shared by every variant."""
        from llmops_lab.evaluation.batch import RESULT_COLUMNS

        frame = self.results[0]
        drop = set(RESULT_COLUMNS) | set(self.scorers) | {c for c in frame.columns if str(c).endswith("_rationale")}
        return frame[[c for c in frame.columns if c not in drop]]

    # -- statistics
    def summary(self, alpha: float = 0.05):
        """One row per variant: prompt (its text, shortened), model, params, rows, errors, score means, human
        ratings, wins/ties/losses of the primary scorer vs the baseline, p-value, ``significant`` and
        ``direction`` (``better`` / ``worse`` than the baseline, or ``no difference``), p50 latency of the rows
        that reached the model (NaN when every row came from the cache: see ``cached``), total cost, run id."""
        import pandas as pd

        base = self.results[self.baseline]
        thumbs = self._rating_columns()
        rows = []
        for v, res in zip(self.variants, self.results):
            row: dict[str, Any] = {"variant": v.label, "baseline": v.index == self.baseline,
                                   "prompt": prompt_snippet(v.template), "model": v.model,
                                   "params": v.params, "rows": len(res), "errors": int(res["error"].notna().sum())}
            for s in self.scorers:
                values = res[s].dropna()
                row[f"{s}_mean"] = float(values.mean()) if len(values) else None
            row.update({k: thumbs[k][v.index] for k in thumbs})
            stats = dict.fromkeys(("wins", "ties", "losses", "win_rate", "diff", "ci_low", "ci_high", "p_value",
                                   "significant", "direction", "test"))
            if self.primary and v.index != self.baseline:
                stats = paired_stats(res[self.primary].tolist(), base[self.primary].tolist(), alpha=alpha)
                stats.pop("n_paired")
            elif self.primary:
                stats["direction"] = "baseline"
            row.update(stats)
            called = res[~res["cached"].astype(bool) & res["error"].isna()]["latency_ms"].dropna()
            row["latency_p50_ms"] = float(called.median()) if len(called) else None  # cache hits took no model time
            row["cached"] = int(res["cached"].astype(bool).sum())
            costs = res["cost_usd"].dropna()
            row["cost_usd"] = float(costs.sum()) if len(costs) else None
            row["total_tokens"] = int(res["total_tokens"].sum())
            row["run_id"] = self.run_ids[v.index]
            rows.append(row)
        frame = pd.DataFrame(rows).set_index("variant")
        for col in ("wins", "ties", "losses"):
            frame[col] = frame[col].astype("Int64")
        frame["significant"] = frame["significant"].astype("boolean")
        frame["latency_p50_ms"] = frame["latency_p50_ms"].astype(float)  # NaN: every row came from the cache
        from llmops_lab.core.results import tidy

        return tidy(frame)

    def _rating_columns(self) -> dict[str, list]:
        if not self.ratings:
            return {}
        up = [0] * len(self.variants)
        down = [0] * len(self.variants)
        scores: list[list[float]] = [[] for _ in self.variants]
        for (_, vi), r in self.ratings.items():
            if r.get("thumbs") is True:
                up[vi] += 1
            elif r.get("thumbs") is False:
                down[vi] += 1
            if r.get("score") is not None:
                scores[vi].append(float(r["score"]))
        return {"human_up": up, "human_down": down,
                "human_score_mean": [sum(s) / len(s) if s else None for s in scores]}

    def table(self):
        """Long format: one row per (row, variant) with output, scores, latency, tokens, cost, error, rating."""
        import pandas as pd

        frames = []
        for v, res in zip(self.variants, self.results):
            f = res.copy()
            f.insert(0, "row", range(len(f)))
            f.insert(1, "variant", v.label)
            f["thumbs"] = [self.ratings.get((i, v.index), {}).get("thumbs") for i in range(len(f))]
            frames.append(f)
        return pd.concat(frames, ignore_index=True)

    # -- human ratings
    def rate(self, row: int, variant: int | str, thumbs: bool | None = None, score: int | None = None,
             comment: str | None = None, user: str | None = None) -> dict[str, Any]:
        """Rate one cell (👍 ``thumbs=True`` / 👎 ``False``, optional ``score`` 1-5 and ``comment``): logged to
        MLflow with ``mlflow.log_feedback`` (source HUMAN, the user) on the row's trace in that variant's run."""
        vi = self.variant_index(variant)
        if not isinstance(row, int) or not 0 <= row < self.n_rows:
            raise ConfigError(f"row {row!r} out of range: 0..{self.n_rows - 1}")
        if thumbs is None and score is None and not comment:
            raise ConfigError("a rating needs thumbs=True/False, a score 1-5 or a comment")
        if score is not None and (isinstance(score, bool) or score not in (1, 2, 3, 4, 5)):
            raise ConfigError(f"score={score!r}: use a whole number from 1 to 5")
        from llmops_lab.tracking import context

        user = user or context.user()
        rating = {"thumbs": thumbs, "score": score, "comment": comment or None, "user": user, "logged": False}
        trace_id = self.trace_id(row, vi)
        if trace_id is not None:
            from llmops_lab.tracking import tags as T
            from llmops_lab.tracking import writer

            meta = {T.ROW: str(row), T.VARIANT: self.variants[vi].label}
            if thumbs is not None:
                writer.log_feedback(trace_id, "thumbs", bool(thumbs), user=user, rationale=comment or None,
                                    metadata=meta)
            if score is not None:
                writer.log_feedback(trace_id, "rating", int(score), user=user, rationale=comment or None,
                                    metadata=meta)
            if comment and thumbs is None and score is None:
                writer.log_feedback(trace_id, "comment", comment, user=user, metadata=meta)
            rating["logged"] = True
        self.ratings[(row, vi)] = rating
        if self._widget is not None:
            self._widget.refresh(header=True)
        return rating

    def _traces(self, vi: int) -> dict[int, dict[str, Any]]:
        """Row index -> {"trace_id", "ratings"} of a variant's run (cached per variant)."""
        cache = self.__dict__.setdefault("_trace_cache", {})
        if vi not in cache:
            from llmops_lab.tracking import traces

            cache[vi] = traces.row_traces(self.run_ids[vi])
        return cache[vi]

    def trace_id(self, row: int, variant: int | str) -> str | None:
        trace = self._traces(self.variant_index(variant)).get(row)
        return trace["trace_id"] if trace is not None else None

    def load_ratings(self) -> dict[tuple[int, int], dict[str, Any]]:
        """Read human feedback back from the variants' traces (ratings survive a kernel restart)."""
        self.__dict__.pop("_trace_cache", None)
        ratings: dict[tuple[int, int], dict[str, Any]] = {}
        for vi in range(len(self.variants)):
            for row, trace in self._traces(vi).items():
                found = trace["ratings"]
                if found:
                    ratings[(row, vi)] = {"thumbs": found.get("thumbs"), "score": found.get("score"),
                                          "comment": found.get("comment"), "user": found.get("user"), "logged": True}
        self.ratings = ratings
        return ratings

    # -- promotion
    def promote(self, variant: int | str, alias: str = "production", *, name: str | None = None,
                reason: str | None = None, user: str | None = None):
        """Register the variant's prompt (if needed) with its model and parameters as ``model_config`` and
        point ``alias`` at it; who, what and why are tagged on the version and on the comparison's run."""
        from llmops_lab.tracking import registry

        v = self.variants[self.variant_index(variant)]
        prompt_name = name or self.promote_name(v.index)
        if not prompt_name:
            raise ConfigError(f"variant {v.label!r} is an inline template with no prompt name yet: give one "
                              "(the grid's name field, or cmp.promote(..., name='my-prompt'))")
        stats = self.summary().loc[v.label]
        why = reason or (f"compare: {self.primary} {stats.get(f'{self.primary}_mean')}" if self.primary else "compare")
        params = v.params if self.schema is None else {**v.params, "response_format": self.schema.response_format()}
        version = registry.promote_prompt(prompt_name, v.template, model=v.model, params=params, alias=alias,
                                          reason=why, user=user, source=self.parent_run_id or "")
        if self.parent_run_id:
            from llmops_lab.tracking import context, writer
            from llmops_lab.tracking import tags as T

            writer.set_run_tag(self.parent_run_id, f"{T.PROMOTED}{alias}",
                               f"{prompt_name}@{version.version} ({v.label}) by {user or context.user()}: {why}"[:5000])
        return version

    def promote_name(self, variant: int | str) -> str | None:
        """The registry name :meth:`promote` uses without ``name=``: a registry variant's own name, the name its
        inline templates ran under, or None for an unnamed inline draft (``compare-drafts``)."""
        v = self.variants[self.variant_index(variant)]
        for candidate in (v.prompt_name, self.name):
            if candidate and candidate != DRAFTS_NAME:
                return candidate
        return None

    # -- display
    def widget(self, **kwargs: Any):
        """The comparison grid (ipywidgets)."""
        from llmops_lab.widgets.compare_grid import CompareGrid

        if self._widget is None or kwargs:
            self._widget = CompareGrid(self, **kwargs)
        return self._widget

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget())  # the widget's bundle also carries a static HTML table for saved notebooks

    def _repr_html_(self) -> str:
        """The grid's first page as static HTML (what nbconvert and GitHub show of a saved notebook)."""
        return self.widget().static_html()

    def __repr__(self) -> str:
        return (f"Comparison({len(self.variants)} variants x {self.n_rows} rows, baseline "
                f"{self.variants[self.baseline].label!r}, run {self.parent_run_id})")


def compare(prompts: Sequence[str] | str, models: Sequence[str] | str | None = None, *, data: Any,
            scorers: Sequence[Any] | str | None = None, baseline: int | str = 0,
            params: Mapping[str, Any] | None = None, name: str | None = None, model: str | None = None,
            system: str | None = None, variables: Mapping[str, Any] | None = None, concurrency: int = 8,
            progress: bool = True, cache: bool = True, refresh: bool = False, judge_model: str | None = None,
            primary: str | None = None, trace_sample: int | None = None, dataset_name: str | None = None,
            max_cost: float | None = None, force: bool = False, logprobs: bool = False,
            top_logprobs: int | None = None, schema: Any = None, **fixed_params: Any) -> Comparison:
    """Run every variant (prompts x models x ``params`` grid) over ``data`` through ``batch``; returns a
    :class:`Comparison` (displays as a grid). ``fixed_params`` (e.g. ``max_tokens=32``) apply to all
    variants; ``name`` is the registry name inline templates run and are promoted under; ``primary`` the
    scorer the paired statistics use (default: the first). ``trace_sample=None`` traces every row (needed
    to log a rating to MLflow; one trace costs the writer ~70 ms CPU, so for large data pass a number and
    ratings of untraced rows stay in-process). ``logprobs=True`` (``top_logprobs`` 0-20, default 5) asks every
    variant for token logprobs (a request option, not part of the variant: never promoted); the grid's
    "shade tokens" option then shows each answer shaded by token probability. ``schema`` (as in ``batch``) is
    sent with every variant's rows, which get the ``schema_valid`` columns; a promoted variant keeps it in its
    version's ``model_config``.

    Keywords shared with ``run`` and ``batch`` mean the same here (:mod:`llmops_lab.core.options`): ``model`` (one
    model for every prompt; or ``models``, not both), ``system``, ``variables``, ``refresh``, ``judge_model``,
    ``dataset_name``, ``force``, and ``max_cost``, which applies to each variant (each is one batch, checked
    before its first request)."""
    from llmops_lab.core.call import logprob_params
    from llmops_lab.evaluation.batch import batch, batch_run_id
    from llmops_lab.config import get_settings

    from llmops_lab.config import validate_params

    if model is not None:
        if models is not None:
            raise ConfigError("compare(): give models=[...] (several) or model=... (one), not both")
        models = [model]
    logprob_params(logprobs, top_logprobs)  # a bad option fails before any variant runs
    if schema is not None:  # likewise a bad schema; resolved once, every variant sends the same one
        from llmops_lab.core.schema import resolve

        schema = resolve(schema)
    validate_params(fixed_params)  # likewise an unknown keyword (one line, with a close name)
    variants = resolve_variants(prompts, models, params, name=name, fixed=fixed_params)
    settings = get_settings()
    for v in variants:  # pin what actually runs, so a promoted variant stores its real model config
        v.model = v.model or settings.model
        v.params = {**settings.generation_defaults(), **v.params}
    started_ms = int(time.time() * 1000)
    results, scorer_names = [], None
    for v in variants:
        if progress:
            print(f"[{v.index}] {v.label}")
        res = batch(v.template, data, model=v.model, name=v.prompt_name, system=system, scorers=scorers,
                    concurrency=concurrency, cache=cache, refresh=refresh, variables=variables,
                    judge_model=judge_model, progress=progress, trace_sample=trace_sample,
                    dataset_name=dataset_name, max_cost=max_cost, force=force, logprobs=logprobs,
                    top_logprobs=top_logprobs, schema=schema, **v.params)
        results.append(res)
        if scorer_names is None:
            scorer_names = list((res.attrs.get("llmops") or {}).get("summary", {}).get("scores", {}))
    cmp = Comparison(variants, results, scorers=scorer_names or [], baseline=baseline,
                     name=name or next((v.prompt_name for v in variants if v.prompt_name), None), primary=primary)
    cmp.schema = schema
    from llmops_lab.core import debug

    debug.note_bulk("compare", f"compare of {len(variants)} variants x {cmp.n_rows} rows", cmp.n_rows,
                    "cmp.summary(), cmp.table()")
    if settings.tracking:
        traced = len(cmp.inputs()) if trace_sample is None else min(trace_sample, cmp.n_rows)
        cmp.run_ids = [batch_run_id(r, timeout=120 + 0.2 * traced) for r in results]  # ~70 ms per trace
        cmp.parent_run_id = _track_parent(cmp, settings, started_ms)
    return cmp


def _track_parent(cmp: Comparison, settings: Any, started_ms: int, timeout: float = 30.0) -> str | None:
    """Parent run (kind=compare) with the variants' batch runs as children and the summary as a table: one
    record through the spool, like the batches (durable at submit, written once); waits for its run id."""
    import uuid

    from llmops_lab.tracking import context, submit, writer
    from llmops_lab.trust.redaction import redact_record

    notebook = context.notebook_path()
    summary = cmp.summary()
    metrics: dict[str, float] = {}
    for i, (label, row) in enumerate(summary.iterrows()):
        for s in cmp.scorers:
            if row.get(f"{s}_mean") is not None and not _nan(row[f"{s}_mean"]):
                metrics[f"v{i}.score.{s}"] = float(row[f"{s}_mean"])
        if row.get("win_rate") is not None and not _nan(row["win_rate"]):
            metrics[f"v{i}.win_rate"] = float(row["win_rate"])
    table = summary.reset_index().astype(object)
    table["params"] = table["params"].map(str)
    children = [((res.attrs.get("llmops") or {}).get("record_id"), run_id, v.label)
                for v, res, run_id in zip(cmp.variants, cmp.results, cmp.run_ids)]
    record = writer.compare_record(
        record_id=uuid.uuid4().hex, experiment=context.experiment_name(settings, notebook), notebook=notebook,
        user=context.user(), name=f"compare {cmp.name or ''}".strip(), started_ms=started_ms,
        baseline=cmp.variants[cmp.baseline].label, children=children, metrics=metrics,
        params={"variants": str(len(cmp.variants)), "rows": str(cmp.n_rows), "primary_scorer": str(cmp.primary)},
        table=table)
    return submit(redact_record(record, settings), settings).wait(timeout)


def _nan(x: Any) -> bool:
    return isinstance(x, float) and math.isnan(x)


def prompt_snippet(template: str, limit: int = 80) -> str:
    """A template on one line, shortened: what the grid and ``summary()`` show to tell variants apart."""
    text = " ".join(str(template).split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def synthetic(n_rows: int = 20, n_variants: int = 3, *, seed: int = 0) -> Comparison:
    """A comparison built from generated results (no model call): for tests, benchmarks and demos."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    words = ["the", "market", "rose", "fell", "sharply", "today", "after", "news", "of", "rates", "storm", "team"]
    texts = [" ".join(rng.choice(words, 12)) for _ in range(n_rows)]
    variants, results = [], []
    for vi in range(n_variants):
        outputs = [" ".join(t.split()[: 6 + (vi + i) % 4]) if (i + vi) % 5 else t.upper() for i, t in enumerate(texts)]
        frame = pd.DataFrame({"text": texts, "keyword": [t.split()[0] for t in texts]})
        frame["output"] = outputs
        frame["latency_ms"] = rng.gamma(4.0, 20.0 + 5 * vi, n_rows)
        frame["prompt_tokens"] = 20
        frame["completion_tokens"] = [len(o.split()) for o in outputs]
        frame["total_tokens"] = frame["prompt_tokens"] + frame["completion_tokens"]
        frame["cost_usd"] = frame["total_tokens"] * 1e-6
        frame["cached"] = True
        frame["retries"] = 0
        frame["error"] = [None if (i * (vi + 1)) % 97 else "timeout" for i in range(n_rows)]
        failed = frame["error"].notna()
        frame["contains_keyword"] = [None if f else float(k in o) for f, k, o in zip(failed, frame["keyword"], outputs)]
        frame["similarity"] = [None if f else float(x) for f, x in zip(failed, rng.uniform(0.3 + 0.05 * vi, 1.0, n_rows))]
        results.append(frame)
        variants.append(Variant(vi, f"prompt@{vi + 1}", f"Summarize v{vi + 1}: {{{{ text }}}}", "fake:test-model",
                                {"temperature": 0}, "prompt", vi + 1, f"prompt@{vi + 1}"))
    return Comparison(variants, results, scorers=["contains_keyword", "similarity"], baseline=0, name="prompt")


# ``llmops_lab.compare`` is both this module (``llmops_lab.compare.Comparison``, ``.word_diff``) and the function
# (``llmops_lab.compare(prompts, data=...)``): the package's lazy attribute returns this module, so the module
# itself is made callable and forwards to :func:`compare`.
class _CallableModule(__import__("types").ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> Comparison:
        return compare(*args, **kwargs)


__import__("sys").modules[__name__].__class__ = _CallableModule
