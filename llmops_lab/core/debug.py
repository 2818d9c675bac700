"""Debuggability: the last call in full (``%llm last``) and any logged run (``%llm trace RUN_ID``).

The last call is kept in memory only (its raw response is never logged); a run is read back from MLflow.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from llmops_lab.exceptions import ConfigError

_last: dict[str, Any] = {}
_bulk: dict[str, Any] = {}  # the last batch or comparison, when it came after the last single call


def remember(record: dict[str, Any], completion: Any, ticket: Any, timings: dict[str, float]) -> None:
    _last.clear()
    _last.update(record=record, completion=completion, ticket=ticket, timings=timings)
    _bulk.clear()


def note_bulk(kind: str, what: str, rows: int, where: str) -> None:
    """A batch or comparison ran: ``%llm last`` says so instead of silently showing an older single call."""
    _bulk.clear()
    _bulk.update(kind=kind, what=what, rows=rows, where=where)


@dataclass
class CallReport:
    """Everything about one call, shown as HTML in a notebook and as text elsewhere."""

    title: str
    facts: dict[str, Any]
    messages: list[dict[str, str]]
    output: str | None
    raw_response: Any = None
    spans: list[dict[str, Any]] = field(default_factory=list)
    note: str | None = None  # e.g. "the last call was a batch": shown above everything

    def _sections(self) -> list[tuple[str, str]]:
        out = [("call", "\n".join(f"{k}: {v}" for k, v in self.facts.items() if v is not None))]
        out += [(f"message [{m['role']}]", m["content"]) for m in self.messages]
        if self.messages or self.output is not None:
            out.append(("output", self.output if self.output is not None else "(none)"))
        if self.raw_response is not None:
            out.append(("raw response", json.dumps(self.raw_response, indent=2, default=str)[:20000]))
        for span in self.spans:
            out.append((f"span {span['name']}", json.dumps(span, indent=2, default=str)[:5000]))
        from llmops_lab.trust.redaction import mask_secrets  # the raw response is unredacted; a saved notebook must not keep keys

        return [(name, mask_secrets(body)) for name, body in out]

    def __str__(self) -> str:
        head = [self.title] + ([self.note] if self.note else [])
        return "\n\n".join(head + [f"--- {name}\n{body}" for name, body in self._sections()])

    def _repr_html_(self) -> str:
        """Sections as collapsible blocks. Text wraps at word boundaries (Jupyter's own output style breaks
        long lines mid-word); JSON keeps its layout."""
        import html

        parts = [f"<div><b>{html.escape(self.title)}</b></div>"]
        if self.note:
            parts.append(f"<div style='color:#8a5a00;margin:4px 0'>{html.escape(self.note)}</div>")
        for name, body in self._sections():
            wrap = "pre" if name.startswith(("raw response", "span ")) else "pre-wrap"
            parts.append(f"<details{' open' if name in ('call', 'output') else ''}><summary>{html.escape(name)}"
                         f"</summary><pre style='white-space:{wrap};word-break:normal;overflow-wrap:break-word;"
                         f"margin:4px 0 8px 0'>{html.escape(body)}</pre></details>")
        return "".join(parts)


def last() -> CallReport:
    """The last single call of this process: messages, parameters, raw response, retries, timings.

    Batches and comparisons are many calls: when one ran after the last single call, the report says so
    (where its rows are) above that call; with no single call yet it is a short report of the batch."""
    note = None
    if _bulk:
        note = (f"the last call of this session was a {_bulk['kind']} ({_bulk['what']}): %llm last shows single "
                f"calls; its rows are in {_bulk['where']}")
        if not _last:
            return CallReport(f"last call: a {_bulk['kind']}", {"kind": _bulk["kind"], "what": _bulk["what"],
                                                                 "rows": _bulk["rows"]}, [], None, note=note)
        note += ". Below: the last single call, before it"
    if not _last:
        raise ConfigError("no call yet in this session: run a %%llm cell first")
    record, completion, ticket = _last["record"], _last["completion"], _last["ticket"]
    raw = completion.extra.get("raw")
    if hasattr(raw, "model_dump"):
        raw = raw.model_dump(exclude_none=True)
    facts = {
        "model": record["model"], "endpoint": record.get("endpoint_host") or "in-process",
        "prompt": record["prompt"]["name"], "params": json.dumps(record["params"]),
        "latency_ms": round(record["latency_ms"], 1), "usage": json.dumps(record["usage"]),
        "cost_usd": record["cost_usd"], "retries": record["retries"], "finish_reason": record["finish_reason"],
        "cache": "not used (single calls always ask the model; batches use the cache)",
        "stages_ms": ", ".join(f"{k[:-3]} {v:.2f}" for k, v in _last["timings"].items()),
        "tracking": ticket.status if ticket is not None else "off",
        "run_id": ticket.run_id if ticket is not None else None,
        "prompt_uri": ticket.prompt_uri if ticket is not None else None,
    }
    return CallReport("last call", facts, record["messages"], record.get("output"), raw, note=note)


def describe_run(run_id: str) -> CallReport:
    """A logged run read back from MLflow: params, metrics, tags, prompt, output and its trace spans."""
    from llmops_lab import tracking
    from llmops_lab.config import get_settings
    from llmops_lab.tracking import reader, traces

    tracking.flush(10.0)
    client = reader.kernel_client()  # the reader's client of this kernel's store
    run = reader.get_run(client, run_id, any_error=True, deleted=True)
    if run is None:
        raise ConfigError(f"no run {run_id!r} in {get_settings().resolved_tracking_uri()}: copy the id from "
                          "%llm runs or a cell footer") from None
    run_facts = reader.run_facts(run)
    facts = {key: run_facts[key] for key in ("run_id", "status", "kind", "model", "prompt", "notebook", "user",
                                             "git_commit", "error")}
    facts["params"] = json.dumps(run_facts["params"], sort_keys=True)
    facts["metrics"] = json.dumps({k: round(v, 4) for k, v in sorted(run_facts["metrics"].items())})
    prompt = reader.artifact_text(client, run, "prompt.txt")
    output = reader.artifact_text(client, run, "output.md")
    spans = []
    try:
        found = traces.traces(client, run, 5, locations=True)
        if found:
            facts.setdefault("trace_id", found[0].info.trace_id)
        for span in traces.span_dicts(found):
            spans.append({"name": span["name"], "type": span["span_type"], "status": span["status_code"],
                          "duration_ms": round((span["end_ns"] - span["start_ns"]) / 1e6, 1),
                          "attributes": span["attributes"]})
    except Exception:  # noqa: BLE001 - a run without traces is still worth showing
        pass
    messages = [{"role": "user", "content": prompt}] if prompt is not None else []
    return CallReport(f"run {run_id}", facts, messages, output, None, spans)
