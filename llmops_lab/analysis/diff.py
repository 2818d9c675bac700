"""Word-level diff of two answers (pure): what the comparison grid marks as added and removed."""
from __future__ import annotations

__all__ = ["word_diff", "word_diff_html"]


def word_diff(baseline: str | None, other: str | None) -> list[tuple[str, str]]:
    """Word-level diff of ``other`` vs ``baseline``: ``[(op, text)]`` with op ``=`` (both), ``-`` (only in the
    baseline) or ``+`` (only in ``other``); words of a run are joined by single spaces.

    >>> word_diff("the cat sat", "the dog sat")
    [('=', 'the'), ('-', 'cat'), ('+', 'dog'), ('=', 'sat')]
    """
    import difflib

    a, b = (baseline or "").split(), (other or "").split()
    if a == b:
        return [("=", " ".join(b))] if b else []
    out: list[tuple[str, str]] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "equal":
            out.append(("=", " ".join(b[j1:j2])))
            continue
        if op in ("delete", "replace"):
            out.append(("-", " ".join(a[i1:i2])))
        if op in ("insert", "replace"):
            out.append(("+", " ".join(b[j1:j2])))
    return out


def word_diff_html(baseline: str | None, other: str | None) -> str:
    """``other`` as HTML with words added vs ``baseline`` in <ins> and removed ones in <del>."""
    import html

    tags = {"-": "del", "+": "ins"}
    return " ".join(html.escape(text) if op == "=" else f"<{tags[op]}>{html.escape(text)}</{tags[op]}>"
                    for op, text in word_diff(baseline, other))
