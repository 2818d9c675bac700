"""Scores a detector on the labelled corpus: recall (labelled values found) and precision (findings that are
labelled values), per kind and per category. Shared by tests/test_redaction_corpus.py and
benchmarks/redaction_corpus.py, so the test and the published figures count the same way.

A finder maps a text to ``(start, end, category)`` spans. A positive is *caught* when a span overlaps its
labelled value, and *masked* when the spans cover all of it. A finding is true when it overlaps the labelled
value of its text; findings on negatives, and beside the labelled value, are false.
"""
from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).parent
Span = tuple[int, int, str]
Finder = Callable[[str], Iterable[Span]]


def load(name: str) -> list[dict]:
    with open(HERE / name, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


@dataclass
class Tally:
    positives: int = 0
    caught: int = 0
    masked: int = 0
    true_findings: int = 0
    false_findings: int = 0
    missed: list[str] = field(default_factory=list)

    @property
    def recall(self) -> float:
        return self.caught / self.positives if self.positives else float("nan")

    @property
    def masked_recall(self) -> float:
        return self.masked / self.positives if self.positives else float("nan")

    @property
    def precision(self) -> float:
        found = self.true_findings + self.false_findings
        return self.true_findings / found if found else float("nan")


@dataclass
class Score:
    kinds: dict[str, Tally]  # positive kinds
    categories: dict[str, Tally]  # "secret", "pii", "all"
    negative_hits: dict[str, list[str]]  # negative kind -> texts with a finding
    negatives: int


def _covered(start: int, end: int, spans: list[Span]) -> bool:
    position = start
    for s, e, _ in sorted(spans):
        if s <= position < e:
            position = e
    return position >= end


def score(finder: Finder, positives: list[dict], negatives: list[dict]) -> Score:
    kinds: dict[str, Tally] = defaultdict(Tally)
    categories: dict[str, Tally] = defaultdict(Tally)
    for row in positives:
        start = row["text"].index(row["value"])
        end = start + len(row["value"])
        spans = list(finder(row["text"]))
        hits = [s for s in spans if s[0] < end and s[1] > start]
        for tally in (kinds[row["kind"]], categories[row["category"]], categories["all"]):
            tally.positives += 1
            tally.caught += bool(hits)
            tally.masked += _covered(start, end, hits)
            if not hits:
                tally.missed.append(row["text"])
        kinds[row["kind"]].true_findings += len(hits)
        kinds[row["kind"]].false_findings += len(spans) - len(hits)
        for span in spans:
            true = span in hits
            for tally in (categories[span[2]], categories["all"]):
                tally.true_findings += true
                tally.false_findings += not true
    negative_hits: dict[str, list[str]] = defaultdict(list)
    for row in negatives:
        spans = list(finder(row["text"]))
        if spans:
            negative_hits[row["kind"]].append(row["text"])
        for span in spans:
            categories[span[2]].false_findings += 1
            categories["all"].false_findings += 1
    return Score(dict(kinds), dict(categories), dict(negative_hits), len(negatives))


def ours(redactor) -> Finder:
    """Our redactor's findings as spans."""
    def find(text: str) -> list[Span]:
        return [(f.start, f.end, f.category) for f in redactor.redact(text)[1]]
    return find


@contextmanager
def detect_secrets() -> Iterator[Finder]:
    """detect-secrets 1.5 with its default plugins and filters, line by line through ``scan_line`` (its ad hoc
    scan). Its high-entropy plugins report every candidate there and leave the entropy limit to the caller
    (``detect-secrets scan --string`` prints them as False), so candidates under the limit are dropped here."""
    from detect_secrets.core.scan import scan_line
    from detect_secrets.settings import default_settings, get_plugins

    with default_settings():
        plugins = {p.secret_type: p for p in get_plugins()}

        def over_limit(secret) -> bool:
            plugin = plugins.get(secret.type)
            limit = getattr(plugin, "entropy_limit", None)
            return limit is None or plugin.calculate_shannon_entropy(secret.secret_value) > limit

        def find(text: str) -> list[Span]:
            spans: set[Span] = set()
            offset = 0
            for line in text.split("\n"):
                for secret in scan_line(line):
                    if secret.secret_value and over_limit(secret):
                        at = line.find(secret.secret_value)
                        while at != -1:
                            spans.add((offset + at, offset + at + len(secret.secret_value), "secret"))
                            at = line.find(secret.secret_value, at + 1)
                offset += len(line) + 1
            return _outermost(spans)

        yield find


def _outermost(spans: set[Span]) -> list[Span]:
    """One finding per place: a value reported by two plugins, or inside another reported value, counts once."""
    kept: list[Span] = []
    for span in sorted(spans, key=lambda s: (s[0], -s[1])):
        if kept and span[0] < kept[-1][1]:
            if span[1] > kept[-1][1]:
                kept[-1] = (kept[-1][0], span[1], "secret")
            continue
        kept.append(span)
    return kept
