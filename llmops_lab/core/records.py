"""The spool records, one typed builder per kind: ``single`` (a call), ``batch_rows`` (a chunk of a
batch's results) and ``batch`` (the record that makes a batch one MLflow run, with its trace rows).

The writer (``tracking/mlflow_sink.py``) reads these dicts, possibly from a spool file an older version
wrote: fields are only ever added, never renamed or removed (``v`` stays 1). Every builder returns the
record already redacted (``redact_record``: masked, fail closed), so nothing secret reaches the spool.
The fields every record of a call shares (who, where, which prompt, model and params) are built once,
by :func:`origin` and :func:`call_fields`.
"""
from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any, Mapping, Optional, TypedDict

from llmops_lab.tracking import context

if TYPE_CHECKING:
    from llmops_lab.config import Settings
    from llmops_lab.core.plan import CallPlan
    from llmops_lab.providers.base import Completion

VERSION = 1
TOKENS_COLUMN = "token_logprobs"  # only with logprobs=True; in memory only, never logged
# A batch's results-table columns that are the call's bookkeeping, not its inputs (judge_*: with judge scorers).
# The results frame, compare's inputs view and the sidebar's batch rows all split a table by this list.
RESULT_COLUMNS = ("output", "latency_ms", "prompt_tokens", "completion_tokens", "total_tokens", "cost_usd",
                  "cached", "retries", "error", TOKENS_COLUMN, "schema_valid", "schema_error", "schema_data",
                  "judge_prompt_tokens", "judge_completion_tokens", "judge_cost_usd")


class Origin(TypedDict):
    """Who ran it and where: read once per call or batch (the notebook path costs a lookup)."""

    experiment: str
    notebook: Optional[str]
    cell_id: Optional[str]
    user: str
    project_root: str


class CallFields(TypedDict):
    """What was asked: prompt, model and parameters, the same for every row of a plan."""

    prompt: dict[str, str]
    model: str
    provider: str
    model_name: str
    endpoint_host: Optional[str]
    params: dict[str, Any]


class SingleRecord(Origin, CallFields):
    id: str
    v: int
    kind: str  # "single" (run, %%llm) or another single-call kind
    messages: list[dict[str, str]]
    variables: dict[str, str]
    start_ns: int
    end_ns: int
    output: Optional[str]
    finish_reason: Optional[str]
    usage: dict[str, int]
    latency_ms: float
    cost_usd: Optional[float]
    retries: Optional[int]
    error: Optional[str]
    ttft_ms: Optional[float]  # streamed calls: time to the first piece of the answer
    interrupted: bool  # a kernel interrupt stopped the stream: output is the partial answer (run KILLED)
    usage_estimated: bool  # the stream ended before its usage chunk: usage and cost are estimates
    # Structured output (the schema itself is params["response_format"], logged as schema.json):
    schema_retries: Optional[int]  # 1: the first answer did not match and the model was asked again
    schema_rejected: Optional[dict[str, Any]]  # that first exchange: {"output", "error", "correction", usage…}
    conversation: Optional[dict[str, Any]]  # a chat turn: id, name, turn, dropped (+ parent of a fork); else None


class BatchRowsRecord(TypedDict):
    id: str
    v: int
    kind: str  # "batch_rows"
    batch: str
    chunk: int
    rows: list[dict[str, Any]]


class TraceRow(TypedDict):
    """One traced row of a batch: its messages as sent (rendered once, with the notebook's variables)."""

    index: int
    messages: Optional[list[dict[str, str]]]
    output: Optional[str]
    error: Optional[str]
    variables: dict[str, str]
    usage: dict[str, int]
    start_ns: int
    end_ns: int
    cached: bool


class BatchRecord(Origin, CallFields):
    id: str
    v: int
    kind: str  # "batch"
    batch: str
    chunks: int
    system: Optional[str]
    batch_params: dict[str, Any]
    dataset: dict[str, Any]
    summary: dict[str, Any]  # judge_* keys only when the batch had a model-graded scorer
    trace_rows: list[TraceRow]
    start_ns: int
    end_ns: int


def new_id() -> str:
    return uuid.uuid4().hex


def origin(settings: "Settings") -> Origin:
    notebook = context.notebook_path()
    return {"experiment": context.experiment_name(settings, notebook), "notebook": notebook,
            "cell_id": context.cell_id(), "user": context.user(), "project_root": str(settings.project_root)}


def call_fields(plan: "CallPlan") -> CallFields:
    return {"prompt": {"name": plan.name, "template": plan.template.text, "sha256": plan.template.sha256},
            "model": str(plan.model_id), "provider": plan.model_id.provider, "model_name": plan.model_id.model,
            "endpoint_host": plan.provider.endpoint_host, "params": plan.params}


def _redacted(record: Mapping[str, Any], settings: "Settings") -> Any:
    from llmops_lab.trust.redaction import redact_record

    return redact_record(dict(record), settings)


def single(plan: "CallPlan", messages: list[dict[str, str]], variables: dict[str, str], settings: "Settings", *,
           kind: str, start_ns: int, end_ns: int, completion: "Completion | None", error: str | None,
           cost_usd: float | None, schema_retries: int | None = None,
           schema_rejected: dict[str, Any] | None = None,
           conversation: dict[str, Any] | None = None) -> SingleRecord:
    """The record of one call, answered (``completion``) or failed (``error``)."""
    record: SingleRecord = {
        "id": new_id(), "v": VERSION, "kind": kind, **origin(settings), **call_fields(plan),
        "messages": messages, "variables": variables, "start_ns": start_ns, "end_ns": end_ns,
        "output": completion.text if completion else None,
        "finish_reason": completion.finish_reason if completion else None,
        "usage": completion.usage.as_dict() if completion else {},
        "latency_ms": completion.latency_ms if completion else (end_ns - start_ns) / 1e6,
        "cost_usd": cost_usd if completion else None,
        "retries": completion.retries if completion else None,
        "error": error,
        "ttft_ms": completion.ttft_ms if completion else None,
        "interrupted": bool(completion and completion.interrupted),
        "usage_estimated": bool(completion and completion.usage_estimated),
        "schema_retries": schema_retries,
        "schema_rejected": schema_rejected,
        "conversation": conversation,
    }
    return _redacted(record, settings)


def batch_rows(batch_id: str, chunk: int, rows: list[dict[str, Any]], settings: "Settings") -> BatchRowsRecord:
    """A chunk of results-table rows; the sink stages it until the batch record arrives."""
    record: BatchRowsRecord = {"id": new_id(), "v": VERSION, "kind": "batch_rows", "batch": batch_id,
                               "chunk": chunk, "rows": rows}
    return _redacted(record, settings)


def trace_row(index: int, messages: list[dict[str, str]] | None, variables: dict[str, str], *, output: str | None,
              error: str | None, prompt_tokens: int, completion_tokens: int, start_ns: int, end_ns: int,
              cached: bool) -> TraceRow:
    return {"index": index, "messages": messages, "output": output, "error": error, "variables": variables,
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
            "start_ns": start_ns, "end_ns": end_ns, "cached": cached}


def batch(plan: "CallPlan", settings: "Settings", *, batch_id: str, chunks: int, batch_params: dict[str, Any],
          dataset: dict[str, Any], summary: dict[str, Any], trace_rows: list[TraceRow], start_ns: int,
          end_ns: int) -> BatchRecord:
    """The record that turns the staged chunks into one MLflow run (kind=batch)."""
    record: BatchRecord = {
        "id": new_id(), "v": VERSION, "kind": "batch", "batch": batch_id, "chunks": chunks,
        **origin(settings), **call_fields(plan), "system": plan.system, "batch_params": batch_params,
        "dataset": dataset, "summary": summary, "trace_rows": trace_rows, "start_ns": start_ns, "end_ns": end_ns,
    }
    return _redacted(record, settings)
