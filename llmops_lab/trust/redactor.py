"""The redactor: applies one :class:`~llmops_lab.trust.policy.Policy` (compiled once, results cached); finds
known secrets again in another form (:func:`mask_known`: re-cased, spaced, quoted); and the secrets-only
redactors every front end uses for error messages (:func:`mask_secrets`) and for refusing keys typed into
options (:func:`find_secrets`).

Pure: reads no settings; the settings' redactor is :func:`llmops_lab.trust.active.redactor_for`.
"""
from __future__ import annotations

import hashlib
import hmac
import re
from bisect import bisect_right
from functools import lru_cache
from typing import Any, Callable

from llmops_lab.trust.detectors import DETECTORS, Detector, Facts, Finding, _group, _presidio_analyzer, _presidio_detectors
from llmops_lab.trust.policy import Policy

__all__ = ["Redactor", "FAILED_MARK", "mask_secrets", "find_secrets", "known_secrets", "mask_known"]

FAILED_MARK = "[REDACTED: redaction failed]"


class Redactor:
    """Applies one policy; compiled once. ``redact(text) -> (masked, findings)``."""

    def __init__(self, policy: Policy, presidio_analyzer: Callable[[], Any] | None = None):
        self.policy = policy
        detectors = [DETECTORS[n] for n in policy.detectors]
        detectors += [Detector(f"pattern_{name}", "pii", name.upper(), re.compile(regex))
                      for name, regex in policy.patterns]
        if policy.presidio:
            detectors += _presidio_detectors(policy.presidio, presidio_analyzer or _presidio_analyzer)
        self.detectors = detectors
        self._cached = lru_cache(maxsize=2048)(self._redact)

    def replacement(self, detector: Detector, value: str) -> str:
        if self.policy.style == "hash" and self.policy.hash_key is not None:
            digest = hmac.new(self.policy.hash_key, f"{detector.label}\0{value}".encode("utf-8", "surrogatepass"),
                              hashlib.sha256).hexdigest()[:10]
            return f"[{detector.label}:{digest}]"
        return f"[{detector.label}]"

    def redact(self, text: str) -> tuple[str, list[Finding]]:
        """The masked text and what was masked. Raises on a detector failure (callers fail closed)."""
        if not isinstance(text, str):
            raise TypeError(f"redact() takes text, not {type(text).__name__}")
        if len(text) < 6:
            return text, []
        if len(text) <= 20_000:
            masked, findings = self._cached(text)
            return masked, list(findings)
        masked, findings = self._redact(text)
        return masked, list(findings)

    def _redact(self, text: str) -> tuple[str, tuple[Finding, ...]]:
        facts = Facts(text)
        taken: list[tuple[int, int, Detector]] = []
        for detector in self.detectors:  # priority order: a kept span is never overlapped by a later one
            for start, end in detector.spans(facts):
                if all(end <= s or start >= e for s, e, _ in taken):
                    taken.append((start, end, detector))
        if not taken:
            return text, ()
        taken.sort(key=lambda t: t[0])
        parts, findings, last = [], [], 0
        for start, end, detector in taken:
            token = self.replacement(detector, text[start:end])
            parts += [text[last:start], token]
            findings.append(Finding(detector.name, detector.category, start, end, token))
            last = end
        parts.append(text[last:])
        return "".join(parts), tuple(findings)

    def mask(self, text: str) -> str:
        return self.redact(text)[0]


# -- known secrets in another form (a model repeating a key from its prompt) ---------------------------------

# Characters a model may put inside or around a secret it repeats and that leave it usable once removed:
# whitespace, zero-width characters, quotes and backticks (code fences).
_IGNORABLE = "\\s'\"`\u200b\u200c\u200d\u2060\ufeff\u2018\u2019\u201c\u201d"
_KEPT = re.compile(f"[^{_IGNORABLE}]+")
KNOWN_MIN_CHARS = 8  # shorter values would mask ordinary words


def _folded(text: str) -> tuple[str, Callable[[int], int]]:
    """``text`` case-folded without ignorable characters, and a map from its indices back to ``text``'s."""
    low = text.casefold()
    if len(low) != len(text):  # a character folds to several (ß -> ss): map character by character
        return _folded_by_character(text)
    starts, offsets, parts, size = [], [], [], 0  # per run of kept characters: where in the view, in text
    for run in _KEPT.finditer(low):
        starts.append(size)
        offsets.append(run.start())
        parts.append(run.group())
        size += len(parts[-1])

    def where(i: int) -> int:
        k = bisect_right(starts, i) - 1
        return offsets[k] + i - starts[k]
    return "".join(parts), where


def _folded_by_character(text: str) -> tuple[str, Callable[[int], int]]:
    chars: list[str] = []
    where: list[int] = []
    for i, c in enumerate(text):
        if not _KEPT.fullmatch(c):
            continue
        folded = c.casefold()
        chars.append(folded)
        where.extend([i] * len(folded))
    return "".join(chars), where.__getitem__


def known_secrets(text: str, findings: list[Finding]) -> dict[str, str]:
    """The secrets found in ``text``, folded (as :func:`mask_known` searches), each with its replacement."""
    known = {}
    for f in findings:
        if f.category == "secret":
            folded = _folded(text[f.start:f.end])[0]
            if len(folded) >= KNOWN_MIN_CHARS:
                known[folded] = f.replacement
    return known


def known_spans(text: str, known: dict[str, str]) -> list[tuple[int, int, str]]:
    """Where ``text`` repeats a known secret in another form: ``(start, end, replacement)`` in ``text``'s
    indices, in text order, without overlaps (one secret inside another: the first, longest one is kept)."""
    if not known:
        return []
    folded, where = _folded(text)
    spans = []
    for value, token in known.items():
        at = folded.find(value)
        while at != -1:
            spans.append((where(at), where(at + len(value) - 1) + 1, token))
            at = folded.find(value, at + len(value))
    kept, last = [], 0
    for start, end, token in sorted(spans, key=lambda s: (s[0], -s[1])):
        if start >= last:
            kept.append((start, end, token))
            last = end
    return kept


def mask_known(text: str, known: dict[str, str]) -> tuple[str, int]:
    """``text`` with every occurrence of a known secret masked even when re-cased, split by whitespace or
    zero-width characters, or wrapped in quotes or backticks; and how many were masked. Case is ignored for
    every secret (hex keys work in any case; masking a re-cased base64 key costs nothing). The whole original
    span, from the secret's first character to its last, is replaced."""
    spans = known_spans(text, known)
    if not spans:
        return text, 0
    parts, last = [], 0
    for start, end, token in spans:
        parts += [text[last:start], token]
        last = end
    parts.append(text[last:])
    return "".join(parts), len(spans)


def known_prefix_start(text: str, known: dict[str, str]) -> int | None:
    """Where ``text``'s end could be the beginning of a known secret still arriving (a stream cut mid-key, in
    any of the forms :func:`mask_known` finds); None when it cannot."""
    if not known:
        return None
    folded, where = _folded(text)
    earliest = None
    for value in known:
        for size in range(min(len(value) - 1, len(folded)), 0, -1):  # the longest partial match first
            if folded.endswith(value[:size]):
                at = where(len(folded) - size)
                earliest = at if earliest is None else min(earliest, at)
                break
    return earliest


_secrets_only: Redactor | None = None


def _secret_redactor() -> Redactor:
    global _secrets_only
    if _secrets_only is None:
        _secrets_only = Redactor(Policy(_group("secrets")))
    return _secrets_only


def mask_secrets(text: str) -> str:
    """Only secrets masked, with labels (for error messages and logs); never raises."""
    try:
        return _secret_redactor().mask(text)
    except Exception:  # noqa: BLE001
        return FAILED_MARK


_refusal: Redactor | None = None


def find_secrets(text: str) -> list[str]:
    """Names of the secret detectors that match ``text`` (used to refuse keys typed into options). The
    high-entropy heuristic is left out here: refusing a command on a guess would be worse than masking."""
    global _refusal
    if _refusal is None:
        _refusal = Redactor(Policy(tuple(n for n in _group("secrets") if n != "high_entropy")))
    try:
        return sorted({f.detector for f in _refusal.redact(text)[1]})
    except Exception:  # noqa: BLE001
        return []

