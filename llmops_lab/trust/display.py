"""Display masking: what a notebook may keep of a text (a saved .ipynb is storage too). The front ends (magics,
widgets, explain) call this; the policy lives here.

- Interactive: secrets masked (labels), nothing else, so the user sees their own data.
- A job run (``LLMOPS_JOB`` set: the output notebook becomes an artifact): the whole log policy.

The result objects keep the real text; only what is displayed is masked. Never raises (fail closed).
"""
from __future__ import annotations

import os
from typing import Any, Iterable

from llmops_lab.trust.active import redactor_for
from llmops_lab.trust.redactor import FAILED_MARK, Redactor, _secret_redactor, known_secrets, mask_known

__all__ = ["display_redactor", "mask_for_display", "for_display", "frame_for_display"]


def display_redactor() -> Redactor:
    """What a notebook may keep (a saved .ipynb is storage too): secrets masked; in a job run (``LLMOPS_JOB``
    set: the output notebook becomes an artifact) the whole log policy."""
    return redactor_for() if os.environ.get("LLMOPS_JOB") else _secret_redactor()


def mask_for_display(text: str, asked: Iterable[str] = ()) -> str:
    """``text`` masked with :func:`display_redactor`, and the secrets of ``asked`` (the prompt it answers) where
    it repeats them re-cased, spaced or quoted; never raises (fail closed)."""
    try:
        redactor = display_redactor()
        known: dict[str, str] = {}
        for question in asked:
            known.update(known_secrets(question, redactor.redact(question)[1]))
        return mask_known(redactor.mask(text), known)[0]
    except Exception:  # noqa: BLE001 - fail closed: never show raw
        return FAILED_MARK


def for_display(value: Any, asked: Iterable[str] = ()) -> Any:
    """``value`` as a notebook may keep it: a text masked with :func:`mask_for_display`, anything else as is."""
    return mask_for_display(value, asked) if isinstance(value, str) else value


def frame_for_display(frame: Any) -> Any:
    """A copy of a results DataFrame with every text column masked for display (the variable keeps the real
    answers)."""
    shown = frame.copy()
    for column in shown.columns[shown.dtypes == object]:
        shown[column] = shown[column].map(for_display)
    return shown
