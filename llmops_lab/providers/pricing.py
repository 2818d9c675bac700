"""Cost of a call from a price table kept as data (``prices.json``), overridable in config.

Unknown model -> ``None`` (no cost shown), never a guess. The embedded local model costs 0.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Mapping

from llmops_lab.providers.base import ModelId, Usage

PRICES_FILE = Path(__file__).with_name("prices.json")


@lru_cache(maxsize=1)
def price_table() -> dict:
    return json.loads(PRICES_FILE.read_text())


def price_of(model_id: ModelId, overrides: Mapping[str, Mapping[str, float]] | None = None) -> dict | None:
    """``{"input": $/1M, "output": $/1M}`` for a model, or None when unknown."""
    key = str(model_id)
    if overrides and key in overrides:
        return dict(overrides[key])
    table = price_table()
    if model_id.provider in table["free_providers"]:
        return {"input": 0.0, "output": 0.0}
    return table["models"].get(key)


def cost_usd(model_id: ModelId, usage: Usage, overrides: Mapping[str, Mapping[str, float]] | None = None
             ) -> float | None:
    """e.g. ``cost_usd(ModelId("openai", "gpt-4o-mini"), Usage(1000, 200))`` -> 0.00027."""
    price = price_of(model_id, overrides)
    if price is None:
        return None
    return (usage.prompt_tokens * price["input"] + usage.completion_tokens * price["output"]) / 1_000_000
