"""The redaction preview: what the current policy would mask in a text (nothing is stored or sent), as a
table in a notebook (``llmops_lab.redact.preview(text)``, ``%llm redact-preview``)."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from llmops_lab.exceptions import ConfigError
from llmops_lab.trust.active import redactor_for
from llmops_lab.trust.detectors import Finding
from llmops_lab.trust.policy import Policy

__all__ = ["Preview", "preview"]


@dataclass
class Preview:
    """What redaction would do to a text: ``.masked``, ``.findings``; shown as a table in notebooks."""

    text_length: int
    masked: str
    findings: list[Finding]
    policy: Policy

    def _rows(self) -> list[tuple[str, str, str, str]]:
        return [(f.detector, f.category, f"{f.start}-{f.end}", f.replacement) for f in self.findings]

    def summary(self) -> str:
        what = "sent to the provider and stored" if self.policy.scope == "send" else "stored (MLflow, spool, cache)"
        if not self.findings:
            return f"nothing to mask (policy: style {self.policy.style}, scope {self.policy.scope})"
        counts = Counter(f.detector for f in self.findings)
        listed = ", ".join(f"{n}×{c}" if c > 1 else n for n, c in counts.items())
        return f"{len(self.findings)} value(s) masked before being {what}: {listed}"

    def __str__(self) -> str:
        lines = [self.summary()]
        lines += [f"  {d:<18} {c:<7} chars {pos:<12} -> {r}" for d, c, pos, r in self._rows()]
        lines += ["", self.masked]
        return "\n".join(lines)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        import html

        rows = "".join(f"<tr><td>{html.escape(d)}</td><td>{c}</td><td>{p}</td><td><code>{html.escape(r)}</code></td></tr>"
                       for d, c, p, r in self._rows())
        table = (f"<table><tr><th>detector</th><th>category</th><th>chars</th><th>replaced by</th></tr>{rows}</table>"
                 if rows else "")
        return (f"<div><b>{html.escape(self.summary())}</b>{table}"
                f"<pre style='white-space:pre-wrap'>{html.escape(self.masked)}</pre></div>")


def preview(text: Any, settings: Any = None) -> Preview:
    """Show what would be masked in ``text`` under the current policy (nothing is stored or sent).

    >>> llmops_lab.redact.preview("call me at +44 20 7946 0958")                      # doctest: +SKIP
    1 value(s) masked before being stored (MLflow, spool, cache): phone
    """
    if not isinstance(text, str):
        raise ConfigError(f"redact preview takes text, not {type(text).__name__}")
    redactor = redactor_for(settings)
    masked, findings = redactor.redact(text)
    return Preview(len(text), masked, findings, redactor.policy)
