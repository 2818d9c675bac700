"""Reading traces back: a run's traces and their spans as plain dicts (``%llm trace``, the panel's run detail),
and a batch run's row -> trace map with the human feedback on each (compare's ratings)."""
from __future__ import annotations

from typing import Any

from llmops_lab.tracking import tags as T
from llmops_lab.tracking.clients import kernel_client


def traces(client: Any, run: Any, max_results: int, *, locations: bool = False) -> list:
    """The first ``max_results`` traces of a run (with their spans)."""
    if locations:
        return list(client.search_traces(locations=[run.info.experiment_id], run_id=run.info.run_id,
                                         max_results=max_results))
    return list(client.search_traces(experiment_ids=[run.info.experiment_id], run_id=run.info.run_id,
                                     max_results=max_results))


def span_dicts(trace_list: list, max_spans: int | None = None) -> list[dict[str, Any]]:
    """The spans of traces as plain dicts: trace_id, name, span_type, start_ns, end_ns, status (its value,
    ``OK``), status_code (its text, ``SpanStatusCode.OK``), attributes (as stored)."""
    out: list[dict[str, Any]] = []
    for trace in trace_list:
        for span in (trace.data.spans if trace.data else []):
            if max_spans is not None and len(out) >= max_spans:
                return out
            status = getattr(span.status, "status_code", span.status)
            out.append({"trace_id": span.trace_id, "name": span.name, "span_type": span.span_type,
                        "start_ns": span.start_time_ns, "end_ns": span.end_time_ns,
                        "status": getattr(status, "value", str(status)), "status_code": str(status),
                        "attributes": span.attributes or {}})
    return out


def row_traces(run_id: str | None) -> dict[int, dict[str, Any]]:
    """Batch row index -> {"trace_id", "ratings"} of a run's traces (the span attribute ``llmops.row``);
    ``ratings``: the human feedback on that trace (thumbs, score, comment, user; latest wins)."""
    found: dict[int, dict[str, Any]] = {}
    if not run_id:
        return found
    client = kernel_client()
    exp_id = client.get_run(run_id).info.experiment_id
    token = None
    while True:
        page = client.search_traces(locations=[exp_id], run_id=run_id, max_results=500, page_token=token)
        for trace in page:
            for span in trace.data.spans:
                r = span.attributes.get(T.ROW)
                if r is not None:
                    found[int(r)] = {"trace_id": trace.info.trace_id, "ratings": _human_feedback(trace)}
                    break
        token = page.token
        if not token:
            break
    return found


def _human_feedback(trace: Any) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for a in sorted(trace.info.assessments or [], key=lambda a: a.create_time_ms or 0):
        if getattr(a, "valid", True) is False or a.source.source_type != "HUMAN":
            continue
        value = a.feedback.value if a.feedback is not None else None
        if a.name == "thumbs":
            found["thumbs"] = bool(value)
        elif a.name == "rating":
            found["score"] = int(value)
        if a.rationale or a.name == "comment":
            found["comment"] = a.rationale or value
        found["user"] = a.source.source_id
    return found
