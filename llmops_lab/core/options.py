"""The keywords ``run``, ``batch`` and ``compare`` share, and a one-line refusal when a keyword of one is given to
another where it cannot make sense (``run(..., scorers=...)``: one call has no rows to score).

Shared by all three, under the same names: ``model``, ``name``, ``system``, the generation parameters as keywords
(``temperature``, ``max_tokens``, ``top_p``, ``seed``, ``stop``), ``max_cost``, ``force``, ``logprobs``,
``top_logprobs``, ``schema`` (structured output) and ``variables``. ``batch`` and ``compare`` share the row options (``scorers``, ``concurrency``,
``cache``, ``refresh``, ``judge_model``, ``progress``, ``trace_sample``, ``dataset_name``); only ``compare`` has
the variant options (``models``, ``params`` as a grid, ``baseline``, ``primary``); only ``probe`` has ``swaps``
(its other keywords are ``batch``'s); only ``optimize`` has ``proposer``, ``candidates``, ``rounds``, ``few_shot``
and ``proposer_params``.
"""
from __future__ import annotations

from typing import Any, Mapping

from llmops_lab.exceptions import ConfigError

ROW_OPTIONS = ("data", "scorers", "concurrency", "cache", "refresh", "judge_model", "progress", "trace_sample",
               "dataset_name")
VARIANT_OPTIONS = ("prompts", "models", "params", "baseline", "primary")
PROBE_OPTIONS = ("swaps",)  # only probe swaps words; its other keywords are batch's
OPTIMIZE_OPTIONS = ("proposer", "candidates", "rounds", "few_shot", "proposer_params")  # only optimize searches


def refuse_options(where: str, given: Mapping[str, Any]) -> None:
    """Raise a one-line ConfigError if ``given`` (the ``**params`` of ``where``) holds another API's option."""
    for key in given:
        if key in ("stream", "on_text") and where not in ("run", "send"):
            raise ConfigError(f"{where}() does not stream: its answers arrive as rows (a progress bar); "
                              "stream one call with llmops_lab.run(..., stream=True)")
        if where in ("run", "send") and key in ROW_OPTIONS:
            raise ConfigError(f"{where}() makes one call, with no rows: {key}= is a batch option; use "
                              f"llmops_lab.batch(template, data, {key}=...)")
        if key == "params" and where in ("run", "batch"):
            raise ConfigError(f"{where}(): params= is compare's parameter grid; give generation parameters as "
                              "keywords (temperature=0, max_tokens=64)")
        if key in PROBE_OPTIONS:
            raise ConfigError(f"{where}(): {key}= is a probe option; use llmops_lab.probe(template, data=..., "
                              f"{key}=..., scorers=[...])")
        if key in OPTIMIZE_OPTIONS:
            raise ConfigError(f"{where}(): {key}= is an optimize option; use llmops_lab.optimize(template, data=..., "
                              f"scorers=[...], {key}=...)")
        if key in VARIANT_OPTIONS:
            raise ConfigError(f"{where}() runs one prompt with one model: {key}= is a compare option; use "
                              f"llmops_lab.compare(prompts, models, data=..., {key}=...)")
