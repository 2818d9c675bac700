"""Display masking: what a notebook may keep of a text (a saved .ipynb is storage too). The front ends (magics,
widgets, explain) call this; the policy lives here.

- Interactive: secrets masked (labels), nothing else, so the user sees their own data.
- A job run (``LLMOPS_JOB`` set: the output notebook becomes an artifact): the whole log policy.

The result objects keep the real text; only what is displayed is masked. Never raises (fail closed).

A streamed answer is shown as it arrives (:func:`streaming_view`): judged on all the text received so far, shown
only up to a point no secret can still straddle, so a key split across pieces never flashes on screen.
"""
from __future__ import annotations

import os
from typing import Any, Iterable

from llmops_lab.trust.active import redactor_for
from llmops_lab.trust.redactor import (
    FAILED_MARK,
    Redactor,
    _secret_redactor,
    known_prefix_start,
    known_secrets,
    known_spans,
    mask_known,
)

__all__ = ["display_redactor", "mask_for_display", "for_display", "frame_for_display", "streaming_view", "StreamView"]

# Held back from a streamed answer besides its unfinished word: room for a match that spans words (a phone
# number, an IBAN in groups) to be complete, and so judged, before any part of it is shown.
STREAM_HOLD_CHARS = 32


def display_redactor() -> Redactor:
    """What a notebook may keep (a saved .ipynb is storage too): secrets masked; in a job run (``LLMOPS_JOB``
    set: the output notebook becomes an artifact) the whole log policy."""
    return redactor_for() if os.environ.get("LLMOPS_JOB") else _secret_redactor()


def _known(redactor: Redactor, asked: Iterable[str]) -> dict[str, str]:
    """The secrets of the prompt an answer replies to (masked again if the answer repeats them in another form)."""
    known: dict[str, str] = {}
    for question in asked:
        known.update(known_secrets(question, redactor.redact(question)[1]))
    return known


def mask_for_display(text: str, asked: Iterable[str] = ()) -> str:
    """``text`` masked with :func:`display_redactor`, and the secrets of ``asked`` (the prompt it answers) where
    it repeats them re-cased, spaced or quoted; never raises (fail closed)."""
    try:
        redactor = display_redactor()
        return mask_known(redactor.mask(text), _known(redactor, asked))[0]
    except Exception:  # noqa: BLE001 - fail closed: never show raw
        return FAILED_MARK


def for_display(value: Any, asked: Iterable[str] = ()) -> Any:
    """``value`` as a notebook may keep it: a text masked with :func:`mask_for_display`, anything else as is."""
    return mask_for_display(value, asked) if isinstance(value, str) else value


class StreamView:
    """What may be shown of one streamed answer while it arrives (``view(text_so_far)``): masked for display,
    the prompt's secrets (``asked``) masked in any form the answer repeats them, cut at the last whitespace at
    least :data:`STREAM_HOLD_CHARS` before the end, and before any masked span the cut would split or any
    beginning of a prompt secret still arriving. The rest shows with the next pieces, or when the stream ends.

    >>> view = StreamView(["my key is sk-proj-abcdefghijklmnopqrstuvwx"])
    >>> view("You asked me to repeat it: S K - P R O J - A B C D E F G H I J K L M N")  # the key, spaced: held
    'You asked me to repeat it: '
    """

    def __init__(self, asked: Iterable[str] = ()):
        self.asked = [a for a in asked if isinstance(a, str)]
        try:
            self.known = _known(display_redactor(), self.asked)
        except Exception:  # noqa: BLE001 - fail closed: nothing of the stream is shown until it ends
            self.known = None

    def __call__(self, text: str) -> str:
        if self.known is None:
            return ""
        try:
            _, findings = display_redactor().redact(text)
            spans = [(f.start, f.end, f.replacement) for f in findings]
            extra = known_spans(text, self.known)
            partial = known_prefix_start(text, self.known)
        except Exception:  # noqa: BLE001 - fail closed: never show raw
            return FAILED_MARK
        cut = _hold_back_point(text)
        if partial is not None:
            cut = min(cut, partial)
        parts, last = [], 0
        for start, end, token in _merged(spans, extra):  # in text order
            if end > cut:
                cut = min(cut, start)  # still arriving, or straddling the cut: hold it back whole
                break
            parts += [text[last:start], token]
            last = end
        parts.append(text[last:max(cut, last)])
        return "".join(parts)

    def final(self, text: str) -> str:
        """The whole answer, once the stream has ended."""
        return mask_for_display(text, self.asked)


def _merged(first: list[tuple[int, int, str]], second: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """Spans of both lists in text order without overlaps (the detector's span wins a tie)."""
    kept, last = [], 0
    for start, end, token in sorted(first + second, key=lambda s: (s[0], -s[1])):
        if start >= last:
            kept.append((start, end, token))
            last = end
    return kept


def streaming_view(text: str) -> str:
    """:class:`StreamView` of an answer to a prompt without secrets.

    >>> streaming_view("the key is sk-proj-")       # the unfinished word could be a key: held back
    ''
    >>> streaming_view("the key is sk-proj-abcdefghijklmnopqrstuvwx and that is all there is to say about it")
    'the key is [OPENAI_KEY] and that'
    """
    return StreamView()(text)


def _hold_back_point(text: str) -> int:
    end = len(text) - STREAM_HOLD_CHARS + 1  # a whitespace at len - HOLD_CHARS may be the cut
    if end <= 0:
        return 0
    return max(text.rfind(" ", 0, end), text.rfind("\n", 0, end), text.rfind("\t", 0, end), 0)


def frame_for_display(frame: Any) -> Any:
    """A copy of a results DataFrame with every text column masked for display (the variable keeps the real
    answers)."""
    shown = frame.copy()
    for column in shown.columns[shown.dtypes == object]:
        shown[column] = shown[column].map(for_display)
    return shown
