"""Magic arguments -> core calls: the strings a ``%llm`` line gives (a comma list of models, a variable name for
a dataset) turned into the Python API's arguments. Front-end glue, so it lives with the magics, not in the core.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from llmops_lab.exceptions import ConfigError


def compare_from_magic_args(prompts: Sequence[str], *, models: Sequence[str] | str | None = None,
                            dataset: Any, scorers: Sequence[Any] | str | None = None, baseline: int | str = 0,
                            params: Mapping[str, Any] | None = None, name: str | None = None,
                            concurrency: int = 8, user_ns: Mapping[str, Any] | None = None,
                            **fixed_params: Any) -> Any:
    """For ``%llm compare summarize@1 summarize@2 --models a,b --dataset news_df --scorer contains:kw``:
    ``dataset`` may be a variable name looked up in ``user_ns`` or a path; ``models`` a comma list."""
    if isinstance(dataset, str) and user_ns is not None and dataset in user_ns:
        dataset = user_ns[dataset]
    if isinstance(models, str):
        models = [m.strip() for m in models.split(",") if m.strip()]
    if isinstance(scorers, str):
        scorers = [scorers]
    from llmops_lab.evaluation.compare import compare

    return compare(list(prompts), models, data=dataset, scorers=scorers, baseline=baseline, params=params,
                   name=name, concurrency=concurrency, **fixed_params)


def probe_from_magic_args(prompt: str, *, dataset: Any, swaps: str = "gender",
                          scorers: Sequence[Any] | str | None = None, **options: Any) -> Any:
    """For ``%llm probe "Reply to {{ text }}" --dataset df --swaps gender,names --scorer exact:expected``:
    ``prompt`` is a registry reference (name@version|alias: its template, and its model unless ``--model``) or an
    inline template; ``swaps`` a comma list of built-in attributes."""
    from llmops_lab.evaluation.compare import resolve_variants
    from llmops_lab.evaluation.probe import probe

    variant = resolve_variants([prompt])[0]  # the one place a registry reference becomes a template
    if isinstance(scorers, str):
        scorers = [scorers]
    options["model"] = options.get("model") or variant.model
    return probe(variant.template, dataset, swaps=[s.strip() for s in swaps.split(",") if s.strip()],
                 scorers=scorers, **{**variant.params, **options})


def optimize_from_magic_args(prompt: str, *, dataset: Any, scorers: Sequence[Any] | str | None = None,
                             **options: Any) -> Any:
    """For ``%llm optimize classify@1 --dataset df --scorer exact:label --proposer local:smollm2-135m``:
    ``prompt`` is a registry reference (its template, model and name: the candidates become its versions) or an
    inline template."""
    from llmops_lab.evaluation.compare import resolve_variants
    from llmops_lab.evaluation.optimize import optimize

    variant = resolve_variants([prompt])[0]
    if isinstance(scorers, str):
        scorers = [scorers]
    options["model"] = options.get("model") or variant.model
    if variant.prompt_version is not None:
        options["name"] = options.get("name") or variant.prompt_name
    return optimize(variant.template, dataset, scorers=scorers, **{**variant.params, **options})


def prompts_from_magic_args(name: str | None = None, diff: Any = None) -> Any:
    """``%llm prompts`` -> :func:`~llmops_lab.tracking.registry.list_prompts` (a DataFrame); ``%llm prompts NAME``
    -> its row; ``%llm prompts NAME --diff 1 2`` (``diff=("1", "2")``; versions or aliases) -> a ``PromptDiff``."""
    from llmops_lab.tracking import registry

    if diff:
        if not name or len(diff) != 2:
            raise ConfigError("usage: %llm prompts NAME --diff A B (A, B: versions or aliases)")
        return registry.PromptDiff(registry.diff_versions(name, diff[0], diff[1]))
    table = registry.list_prompts()
    if name:
        table = table[table["name"] == name]
        if table.empty:
            raise ConfigError(f"no prompt named {name!r} in the registry; %llm prompts lists them")
    return table
