"""Honest prompt optimisation: search on train and validation rows, judge the winner on held-out test rows.

    >>> o = llmops_lab.optimize("Label the review as pos or neg: {{ text }}", data=df, scorers=["exact:label"],
    ...                         model="openai:gpt-4o-mini", proposer="openai:gpt-4o", label="label")  # doctest: +SKIP
    >>> o.candidates          # text, train/validation score, status, round, parent                   # doctest: +SKIP
    >>> print(o.report())     # "no significant gain on the test split ..." unless there is one        # doctest: +SKIP
    >>> o.promote(alias="candidate")   # only when o.significant (or force=True)                      # doctest: +SKIP

The rows are split once into train, validation and test (:func:`llmops_lab.evaluation.datasets.split`,
stratified by ``label``, seeded). Each round, a proposer model reads the current best template, its train
score and its failing train rows (:mod:`llmops_lab.evaluation.proposer`, OPRO/COPRO style) and writes
``candidates`` new templates; one more candidate puts ``few_shot`` train rows before the current best as
worked examples. A candidate that drops a template variable, or is no template, is rejected with its reason.
Each candidate left runs as one ``batch`` over the train and validation rows (cached, budgeted, redacted, one
MLflow run each) and is ranked on validation; a candidate must beat the best so far, ties keep the earlier one.
Only the final best and the original ever see the test rows, and ``significant`` is True only if the best beats
the original there (the paired test ``compare`` uses: exact McNemar for pass/fail scores, a paired bootstrap
otherwise) at ``alpha``. A failed row scores 0. Nothing is promoted unless you call :meth:`Optimization.promote`.

Tracking: every candidate is a version of the prompt ``name`` (tags ``llmops.optimize.round``, ``.parent``,
``.status``); the search is a parent run ``llmops.kind=optimize`` (through the spool, like a compare parent)
whose children are the candidates' batches, the proposer's batches and the two test batches; it logs
``candidates.json`` and ``split.json``.
"""
from __future__ import annotations

import math
import time
from typing import Any, Mapping, Sequence

from llmops_lab.evaluation import proposer as P
from llmops_lab.evaluation.probe import PASS_AT  # a train row scoring below it is a failure the proposer sees
from llmops_lab.exceptions import BudgetError, ConfigError

__all__ = ["Optimization", "optimize", "PASS_AT"]

PROPOSER_DEFAULTS = {"temperature": 0.8, "max_tokens": 300}
SHARED_OPTIONS = ("concurrency", "cache", "refresh", "force")  # batch options the proposer's batches share
COLUMNS = ["id", "round", "parent", "source", "status", "train_score", "validation_score", "text", "version"]


class Optimization:
    """A finished search: ``candidates`` (a DataFrame), ``best`` (its text), ``significant``, ``report()``."""

    def __init__(self, template: str, name: str, rows: list[dict[str, Any]], best_id: int, split: Any, *,
                 scorer: str, model: str | None, params: Mapping[str, Any], test: dict[str, Any] | None,
                 alpha: float, note: str = ""):
        self.template = template
        self.name = name
        self._rows = rows
        self.best_id = best_id
        self.split = split
        self.scorer = scorer
        self.model = model
        self.params = dict(params)
        self.test = test  # paired_stats of best vs original on the test rows (+ their means), or None
        self.alpha = alpha
        self.note = note  # why the search stopped early (a budget), or ""
        self.run_id: str | None = None
        self.promoted: Any = None

    @property
    def candidates(self):
        """One row per candidate: id, round, parent (id), source (original, proposer, few-shot), status (``ok``,
        ``rejected: …``, ``not evaluated: budget``), train_score, validation_score, text, version (registry)."""
        import pandas as pd

        frame = pd.DataFrame(self._rows, columns=COLUMNS)
        for col in ("parent", "version"):
            frame[col] = frame[col].astype("Int64")
        return frame

    @property
    def best(self) -> str:
        """The best candidate's template (the original when none beat it on validation)."""
        return self._rows[self.best_id]["text"]

    @property
    def significant(self) -> bool:
        """True only if the best beats the original on the held-out test rows at ``alpha``."""
        t = self.test
        return bool(t and t["significant"] and (t["diff"] or 0) > 0)

    def metrics(self) -> dict[str, float]:
        """What the parent run logs: ``optimize.original.validation`` / ``.test``, ``optimize.best.*``,
        ``optimize.p_value``, ``optimize.significant`` (0/1), ``optimize.candidates``, ``optimize.evaluated``."""
        original, best = self._rows[0], self._rows[self.best_id]
        out = {"optimize.candidates": float(len(self._rows) - 1),
               "optimize.evaluated": float(sum(r["status"] == "ok" for r in self._rows[1:])),
               "optimize.significant": float(self.significant)}
        for key, value in (("optimize.original.validation", original["validation_score"]),
                           ("optimize.best.validation", best["validation_score"])):
            if value is not None:
                out[key] = float(value)
        if self.test:
            out.update({"optimize.original.test": self.test["original_mean"], "optimize.best.test": self.test["best_mean"]})
            if self.test["p_value"] is not None:
                out["optimize.p_value"] = float(self.test["p_value"])
        return out

    def report(self) -> str:
        """The search in plain words: what was tried, and whether the best holds up on the test rows."""
        rows = self._rows[1:]
        ok = sum(r["status"] == "ok" for r in rows)
        rejected = sum(r["status"].startswith("rejected") for r in rows)
        lines = [f"{len(rows)} candidates over {max((r['round'] for r in rows), default=0)} rounds: {ok} evaluated, "
                 f"{rejected} rejected; ranked by {self.scorer} on the validation split."]
        if self.note:
            lines.append(self.note)
        v0 = self._rows[0]["validation_score"]
        if self.best_id == 0:
            lines.append(f"No significant gain on the test split: no candidate beat the original's validation score "
                         f"({_f(v0)}), so the original stays. Nothing was promoted.")
            return "\n".join(lines)
        best = self._rows[self.best_id]
        lines.append(f"Best: candidate {self.best_id} (round {best['round']}), validation {_f(v0)} -> "
                     f"{_f(best['validation_score'])}.")
        t = self.test
        if not t:
            lines.append("No significant gain on the test split: the test comparison was not run. Nothing was promoted.")
            return "\n".join(lines)
        score = (f"{self.scorer} {_f(t['original_mean'])} -> {_f(t['best_mean'])} on {t['n_paired']} test rows "
                 f"({t['wins']} better, {t['losses']} worse, {t['test']} p = {_f(t['p_value'])})")
        if self.significant:
            lines.append(f"Significant gain on the test split: {score}, below alpha {self.alpha}. Not promoted yet: "
                         f"o.promote(alias='candidate') does it.")
        else:
            lines.append(f"No significant gain on the test split: {score}, not below alpha {self.alpha}. The "
                         f"validation gain may be chance; nothing was promoted.")
        return "\n".join(lines)

    def promote(self, alias: str = "candidate", *, force: bool = False, reason: str | None = None,
                user: str | None = None) -> Any:
        """Point ``alias`` at the best candidate's version of ``name``; only when :attr:`significant`, or with
        ``force=True``. Returns the registry version."""
        from llmops_lab.tracking import registry

        registry.check_alias(alias)
        if not self.significant and not force:
            why = ("no candidate beat the original on validation" if self.best_id == 0 else
                   "the test comparison was not run" if not self.test else
                   f"its test gain is not significant (p = {_f(self.test['p_value'])}, alpha {self.alpha})")
            raise ConfigError(f"not promoted: {why}; o.promote(alias={alias!r}, force=True) promotes it anyway")
        why = reason or ("optimize: " + (f"test p = {_f(self.test['p_value'])}" if self.test else "forced")
                         + ("" if self.significant else " (forced)"))
        from llmops_lab.trust.redaction import mask_text

        version = registry.promote_prompt(self.name, mask_text(self.best) or "", model=self.model, params=self.params, alias=alias,
                                          reason=why, user=user, source=self.run_id or "")
        if self.run_id:
            from llmops_lab.tracking import context, writer
            from llmops_lab.tracking import tags as T

            writer.set_run_tag(self.run_id, f"{T.PROMOTED}{alias}",
                               f"{self.name}@{version.version} (candidate {self.best_id}) by "
                               f"{user or context.user()}: {why}")
        self.promoted = version
        return version

    def _repr_html_(self) -> str:
        import html

        return f"<pre>{html.escape(self.report())}</pre>" + self.candidates.drop(columns=["version"]).to_html(index=False)

    def __repr__(self) -> str:
        return f"Optimization({self.name}: best candidate {self.best_id}, significant={self.significant}, run {self.run_id})"


def _f(x: Any) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3g}"


def _scores(results: Any, scorer: str) -> list[float]:
    """A batch's scores with a failed or unscored row as 0 (a candidate that errors must not win)."""
    out = []
    for value in results[scorer].tolist():
        try:
            v = float(value)
        except (TypeError, ValueError):
            v = math.nan
        out.append(0.0 if math.isnan(v) else v)
    return out


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def optimize(template: str, data: Any, *, scorers: Sequence[Any] | str | None = None, model: str | None = None,
             proposer: str | None = None, candidates: int = 8, rounds: int = 3, seed: int = 0,
             max_cost: float | None = None, label: str | None = None,
             fractions: tuple[float, float, float] = (0.5, 0.25, 0.25), few_shot: int = 2, name: str | None = None,
             alpha: float = 0.05, proposer_params: Mapping[str, Any] | None = None, progress: bool = True,
             **batch_options: Any) -> Optimization:
    """Search for a better ``template`` on ``data`` and test the winner on held-out rows; returns an
    :class:`Optimization`.

    ``scorers``: the first one ranks the candidates. ``proposer``: the model that writes candidates (default:
    ``model``); ``proposer_params``: its generation parameters (default temperature 0.8, max_tokens 300).
    ``candidates`` per round, ``rounds`` rounds, ``few_shot`` train rows in the extra few-shot candidate (0: none).
    ``label``: the column to stratify the split by; ``fractions``: train, validation, test. ``max_cost`` (USD)
    bounds the whole search, the proposer included; the search stops where the next batch would exceed it.
    ``name``: the registry prompt the candidates become versions of (default: the template's own name).
    Other keywords (``temperature``, ``max_tokens``, ``concurrency``, ``judge_model``, ``trace_sample`` ...) go
    to each evaluation ``batch``.

    >>> o = optimize("Answer with the capital: {{ country }}", data=df, scorers=["exact:capital"],
    ...              proposer="local:smollm2-135m", candidates=2, rounds=1)                 # doctest: +SKIP
    >>> o.significant, o.best                                                            # doctest: +SKIP
    (False, 'Answer with the capital: {{ country }}')
    """
    from llmops_lab.config import get_settings
    from llmops_lab.core.templates import PromptTemplate, check_name
    from llmops_lab.evaluation.datasets import check_columns, load_rows, split
    from llmops_lab.evaluation.scoring import parse_scorers

    for key, value, low in (("candidates", candidates, 1), ("rounds", rounds, 1), ("few_shot", few_shot, 0)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ConfigError(f"optimize: {key}={value!r}: use a whole number >= {low}")
    if not scorers:
        raise ConfigError("optimize needs at least one scorer (e.g. scorers=['exact:label']): the first ranks the "
                          "candidates")
    if max_cost is not None and (not isinstance(max_cost, (int, float)) or max_cost < 0):
        raise ConfigError(f"optimize: max_cost={max_cost!r}: use an amount in USD >= 0")
    original = PromptTemplate(template)
    variables = sorted(original.variables)
    frame = load_rows(data).reset_index(drop=True)
    check_columns(frame, variables)
    scorer_list = parse_scorers(scorers, judge_model=batch_options.get("judge_model"))
    references = [c for s in scorer_list for c in sorted(s.needs) if c not in variables and c in frame.columns]
    splits = split(frame, fractions, label=label, seed=seed)
    prompt_name = name or original.auto_name()
    check_name(prompt_name)
    settings = get_settings()
    started_ms = int(time.time() * 1000)

    search = frame[splits != "test"].reset_index(drop=True)
    search_split = splits[splits != "test"].tolist()
    test_rows = frame[splits == "test"].reset_index(drop=True)
    train_pos = [i for i, s in enumerate(search_split) if s == "train"]
    val_pos = [i for i, s in enumerate(search_split) if s == "validation"]
    shown_columns = [*variables, *references]
    options = {"model": model, "name": prompt_name, "scorers": scorers, "progress": False, "trace_sample": 0,
               **batch_options}
    proposer_options = {"model": proposer or model, "name": "optimize-proposer", "progress": False,
                        "trace_sample": 0, **PROPOSER_DEFAULTS, **(proposer_params or {}),
                        **{k: batch_options[k] for k in SHARED_OPTIONS if k in batch_options}}
    spent = [0.0]
    children: list[tuple[str | None, str]] = []  # (batch record id, label), in the order they ran

    def run_batch(text: str, rows: Any, label_: str, opts: Mapping[str, Any]) -> Any:
        from llmops_lab.evaluation.batch import batch

        left = None if max_cost is None else max(0.0, max_cost - spent[0])
        if progress:
            print(f"[{label_}] ", end="")
        results = batch(text, rows, **{**opts, **({"max_cost": left} if left is not None else {})})
        info = results.attrs.get("llmops") or {}
        s = info.get("summary", {})
        spent[0] += (s.get("cost_usd") or 0.0) + (s.get("judge_cost_usd") or 0.0)
        children.append((info.get("record_id"), label_))
        return results

    rows: list[dict[str, Any]] = []
    search_results: dict[int, Any] = {}

    def add(text: str, round_: int, parent: int | None, source: str, status: str) -> dict[str, Any]:
        row = {"id": len(rows), "round": round_, "parent": parent, "source": source, "status": status,
               "train_score": None, "validation_score": None, "text": text,
               "version": _register(prompt_name, text, round_, parent, status, settings, rows)}
        rows.append(row)
        return row

    def evaluate(row: dict[str, Any]) -> None:
        results = run_batch(row["text"], search, f"c{row['id']} r{row['round']}" if row["id"] else "c0 original",
                            options)
        search_results[row["id"]] = results
        scores = _scores(results, scorer_name(results))
        row["train_score"] = _mean([scores[i] for i in train_pos])
        row["validation_score"] = _mean([scores[i] for i in val_pos])
        _tag_status(prompt_name, row, settings)

    primary: list[str] = []

    def scorer_name(results: Any) -> str:
        if not primary:
            names = list((results.attrs.get("llmops") or {}).get("summary", {}).get("scores", {}))
            if not names:
                raise ConfigError("optimize: the scorers gave no score column to rank candidates by")
            primary.append(names[0])
        return primary[0]

    evaluate(add(template, 0, None, "original", "ok"))  # a budget too small for the original: raised as it is
    best = rows[0]
    note = ""
    try:
        for round_ in range(1, rounds + 1):
            base = best
            results = search_results[base["id"]]
            scores = _scores(results, primary[0])
            failing = [{**{c: search[c].iat[i] for c in shown_columns}, "output": results["output"].iat[i]}
                       for i in train_pos if scores[i] < PASS_AT]
            asks = P.proposer_rows(base["text"], base["train_score"], P.failures_text(failing, shown_columns),
                                   variables, candidates, start=(round_ - 1) * candidates + 1)
            proposals = run_batch(P.PROPOSER_TEMPLATE, asks, f"proposer r{round_}", proposer_options)
            texts = [(P.read_proposal(t), "proposer") for t in proposals["output"].tolist()]
            if few_shot and references:
                train = [search.iloc[i].to_dict() for i in train_pos]
                shots = P.few_shot_candidate(base["text"], train, variables, references[0], few_shot,
                                             seed + round_, label)
                if shots:
                    texts.append((shots, "few-shot"))
            fresh = []
            for text, source in texts:
                status = P.check_candidate(text, variables, frame.columns, [r["text"] for r in rows])
                fresh.append(add(text, round_, base["id"], source, status))
            for row in fresh:
                if row["status"] == "ok":
                    evaluate(row)
                    if (row["validation_score"] or 0) > (best["validation_score"] or 0):
                        best = row
    except BudgetError as err:
        note = f"The search stopped early: {err}"
        for row in rows:
            if row["status"] == "ok" and row["validation_score"] is None:
                row["status"] = "not evaluated: budget"

    test = None
    if best["id"]:
        try:
            before = _scores(run_batch(template, test_rows, "test: original", options), primary[0])
            after = _scores(run_batch(best["text"], test_rows, f"test: c{best['id']}", options), primary[0])
            from llmops_lab.analysis.paired import paired_stats

            test = {**paired_stats(after, before, alpha=alpha), "original_mean": _mean(before),
                    "best_mean": _mean(after)}
        except BudgetError as err:
            note = f"The test comparison was not run: {err}"
    params = {k: batch_options[k] for k in ("temperature", "max_tokens", "top_p", "seed", "stop") if k in batch_options}
    result = Optimization(template, prompt_name, rows, best["id"], splits, scorer=primary[0],
                          model=model or settings.model, params=params, test=test, alpha=alpha, note=note)
    if progress:
        print(result.report())
    if settings.tracking:
        result.run_id = _track(result, children, settings, started_ms, label, seed, fractions,
                               proposer or model or settings.model, rounds, candidates)
    return result


def _register(name: str, text: str, round_: int, parent: int | None, status: str, settings: Any,
              rows: Sequence[Mapping[str, Any]]) -> int | None:
    """The candidate as a version of ``name``, tagged with its round, its parent's version and its status
    (before its batch runs, so the batch's run links to this version); None with tracking off."""
    if not settings.tracking:
        return None
    from llmops_lab.tracking import registry
    from llmops_lab.tracking import tags as T

    from llmops_lab.trust.redaction import mask_text

    # masked as the batch's own record is (few-shot rows are data), so its run links to this same version
    version = int(registry.register_version(name, mask_text(text, settings) or "",
                                            commit_message=f"optimize round {round_}").version)
    parent_version = rows[parent]["version"] if parent is not None else None
    registry.tag_version(name, version, {T.OPTIMIZE_ROUND: round_, T.OPTIMIZE_STATUS: status,
                                         T.OPTIMIZE_PARENT: f"{name}@{parent_version}" if parent_version else ""})
    return version


def _tag_status(name: str, row: Mapping[str, Any], settings: Any) -> None:
    if settings.tracking and row["version"]:
        from llmops_lab.tracking import registry
        from llmops_lab.tracking import tags as T

        registry.tag_version(name, row["version"], {T.OPTIMIZE_VALIDATION: f"{row['validation_score']:.4f}"})


def _track(o: Optimization, children: Sequence[tuple[str | None, str]], settings: Any, started_ms: int,
           label: str | None, seed: int, fractions: Sequence[float], proposer: str, rounds: int,
           candidates: int) -> str | None:
    """The parent run (kind=optimize): one spool record written like a compare parent, after its batches;
    waits for its run id (the writer writes the batches first)."""
    import uuid

    import pandas as pd

    from llmops_lab.tracking import context, submit, writer
    from llmops_lab.tracking import tags as T
    from llmops_lab.trust.redaction import redact_record

    notebook = context.notebook_path()
    table = o.candidates.astype(object)
    table = table.where(table.notna(), None)
    counts = o.split.value_counts().to_dict()
    split_table = pd.DataFrame({"row": range(len(o.split)), "split": o.split.tolist()})
    params = {"template_name": o.name, "model": o.model, "proposer": proposer, "proposer_template": P.PROPOSER_VERSION,
              "rounds": str(rounds), "candidates": str(candidates), "scorer": o.scorer, "alpha": str(o.alpha),
              "best": str(o.best_id), "split.seed": str(seed), "split.label": label or "",
              "split.fractions": ",".join(f"{f:g}" for f in fractions),
              **{f"split.{k}": str(counts.get(k, 0)) for k in ("train", "validation", "test")}}
    record = writer.compare_record(
        record_id=uuid.uuid4().hex, experiment=context.experiment_name(settings, notebook), notebook=notebook,
        user=context.user(), name=f"optimize {o.name}", started_ms=started_ms, baseline="c0 original",
        children=[(rid, None, lbl) for rid, lbl in children], metrics=o.metrics(), params=params,
        table=table, kind=T.OPTIMIZE, table_file="candidates.json", tables={"split.json": split_table})
    return submit(redact_record(record, settings), settings).wait(120 + 2.0 * len(children))
