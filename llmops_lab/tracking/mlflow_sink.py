"""The call-record writer: a spool record -> run (tags, params, metrics, artifacts), registered prompt
version linked to it, and a CHAT_MODEL trace. Runs in the tracker's thread; imports MLflow there.
A compare record (a comparison's parent run) is handed to :func:`llmops_lab.tracking.writer.write_compare`;
clients come from :mod:`llmops_lab.tracking.reader`, prompt versions from :mod:`llmops_lab.tracking.registry`.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable

from llmops_lab.config import Settings
from llmops_lab.tracking import context
from llmops_lab.tracking import tags as T
from llmops_lab.tracking.clients import kernel_client
from llmops_lab.tracking.writer import experiment_id as _experiment_id, slug as _slug  # noqa: F401
from llmops_lab.trust import at_rest

# The writer is already off the critical path: export traces synchronously so "logged" means logged.
os.environ.setdefault("MLFLOW_ENABLE_ASYNC_TRACE_LOGGING", "false")

STAGING_CONTEXT = b"llmops-staging"  # authenticated with each encrypted chunk
TABLE_ROWS = 10_000  # rows in the MLflow results table (the full table is results.csv)
JUDGE_METRICS = ("judge_prompt_tokens", "judge_completion_tokens", "judge_total_tokens", "judge_cost_usd",
                 "judge_requests", "judge_cache_hits")


class MlflowSink:
    """Writes records to the tracking store of the current settings."""

    def __init__(self, settings: Callable[[], Settings]):
        self._settings = settings
        self._experiments: dict[tuple[str, str], str] = {}
        self._prompts: dict[tuple[str, str, str], Any] = {}  # (uri, name, sha256) -> PromptVersion
        self._exit_hook = False

    # -- lookups, cached per process ----------------------------------------------------------------
    def _experiment_id(self, client: Any, uri: str, name: str, settings: Settings) -> str:
        return _experiment_id(client, uri, name, settings, self._experiments)

    def _prompt_version(self, client: Any, uri: str, prompt: dict[str, str], model_config: dict | None = None) -> Any:
        """The registry version with this exact text; registers a new version only when the text changed.
        With a ``model_config`` (a call with a schema: it holds the ``response_format``), the version must
        have that config too."""
        import json

        key = (uri, prompt["name"], prompt["sha256"], json.dumps(model_config, sort_keys=True, default=str))
        if key not in self._prompts:
            from llmops_lab.tracking.registry import version_with_text

            self._prompts[key] = version_with_text(client, prompt["name"], prompt["template"], prompt["sha256"],
                                                   model_config=model_config)
        return self._prompts[key]

    # -- the write ----------------------------------------------------------------------------------
    def write(self, record: dict[str, Any], replay: bool = False) -> tuple[str, str | None]:
        """Log one record; returns (run_id, prompt_uri). With ``replay``, a record MLflow already has
        is not written twice, and a half-written run is replaced."""
        kind = record.get("kind")
        if kind == "batch_rows":
            self._stage_rows(record)
            return "", None
        if kind in (T.COMPARE, T.PROBE, T.OPTIMIZE, T.AGREEMENT):  # runs of no call: tracking/writer.py writes them
            from llmops_lab.tracking.writer import write_compare

            return write_compare(record, self._settings(), replay, self._experiments), None
        client, exp_id, version, existing = self._begin(record, replay)
        prompt_uri = f"prompts:/{version.name}/{version.version}"
        if existing:
            return existing, prompt_uri
        settings = self._settings()
        start_ms, end_ms = record["start_ns"] // 1_000_000, record["end_ns"] // 1_000_000
        from mlflow.tracing.utils.prompt import update_linked_prompts_tag

        # The prompt link is MLflow's own tag (what link_prompt_version_to_run writes for non-UC stores),
        # set at creation: three store round trips fewer per record.
        tags = {**self._tags(record, settings, version),
                T.LINKED_PROMPTS: update_linked_prompts_tag(None, [version])}
        run = client.create_run(exp_id, start_time=start_ms, run_name=record["prompt"]["name"], tags=tags)
        run_id = run.info.run_id
        params = {"provider": record["provider"], "model": record["model_name"],
                  "endpoint_host": record.get("endpoint_host") or "in-process",
                  "prompt_name": version.name, "prompt_version": version.version, **record["params"]}
        json_schema = _json_schema(record)
        if json_schema is not None:  # the schema itself is schema.json; the param names it
            params.pop("response_format", None)
            params["schema"] = record["params"]["response_format"]["json_schema"].get("name")
        if kind == "batch":
            metrics = self._log_batch_body(client, run_id, record, params, settings)
        else:
            metrics = {"latency_ms": record["latency_ms"], "ttft_ms": record.get("ttft_ms"),
                       **(record.get("usage") or {})}
            if record.get("cost_usd") is not None:
                metrics["cost_usd"] = record["cost_usd"]
            if record.get("retries") is not None:
                metrics["retries"] = record["retries"]
            if record.get("schema_retries") is not None:
                metrics["schema_retries"] = record["schema_retries"]
            rejected = record.get("schema_rejected")  # the answer that was retried, kept for a look
            _log_texts(client, run_id, {"prompt.txt": _render_messages(record["messages"]),
                                        T.OUTPUT_ARTIFACT: record.get("output"),
                                        T.MESSAGES_ARTIFACT: _messages_json(record), "schema.json": json_schema,
                                        "schema_rejected.json": _as_json(rejected) if rejected else None})
        from mlflow.entities import Metric, Param

        client.log_batch(run_id, metrics=[Metric(k, float(v), end_ms, 0) for k, v in metrics.items()
                                          if v is not None],
                         params=[Param(k, str(v)[:6000]) for k, v in params.items()])
        if kind == "batch":
            for row in record.get("trace_rows") or []:
                self._trace(client, {**record, **row, "kind": "batch"}, exp_id, run_id, version)
        else:
            self._trace(client, record, exp_id, run_id, version)
        client.set_terminated(run_id, status=_run_status(record), end_time=end_ms)
        if kind == "batch":
            import shutil

            shutil.rmtree(self._staging(record["batch"], settings), ignore_errors=True)
        return run_id, prompt_uri

    def _begin(self, record: dict[str, Any], replay: bool) -> tuple[Any, str, Any, str | None]:
        settings = self._settings()
        uri = settings.resolved_tracking_uri()
        client = kernel_client(uri)  # one per URI; the URI becomes the process-wide MLflow URI
        exp_id = self._experiment_id(client, uri, record["experiment"], settings)
        model_config = None
        if _json_schema(record) is not None:
            # Only the schema: it is part of what the prompt asks for; model and temperature are not (a new
            # version per temperature would bury the prompt's history). Promotion stores those.
            model_config = {"extra_params": {"response_format": record["params"]["response_format"]}}
        version = self._prompt_version(client, uri, record["prompt"], model_config)
        if replay:
            found = client.search_runs([exp_id], filter_string=T.tag_filter(T.RECORD_ID, record["id"]),
                                       max_results=5)
            for run in found:
                if run.info.status in ("FINISHED", "FAILED", "KILLED"):
                    return client, exp_id, version, run.info.run_id
                client.delete_run(run.info.run_id)  # interrupted mid-write: write it again whole
        return client, exp_id, version, None

    # -- batches --------------------------------------------------------------------------------------
    @staticmethod
    def _staging(batch_id: str, settings: Settings) -> Path:
        return settings.home / "staging" / batch_id

    def _stage_rows(self, record: dict[str, Any]) -> None:
        """Keep a chunk of batch rows on disk until the batch record arrives (atomic, so replay-safe)."""
        import json

        folder = self._staging(record["batch"], self._settings())
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{record['chunk']:06d}.json"
        tmp = target.with_suffix(".tmp")
        # Encrypted with LLMOPS_DATA_KEY when it is set (trust/at_rest.py), like the spool line it came from.
        tmp.write_text(at_rest.seal(json.dumps(record["rows"], ensure_ascii=False, default=str), STAGING_CONTEXT))
        tmp.replace(target)

    def _log_batch_body(self, client: Any, run_id: str, record: dict[str, Any], params: dict[str, Any],
                        settings: Settings) -> dict[str, Any]:
        """Dataset input, results table and artifacts of a batch; returns its metrics."""
        import json
        import tempfile

        import pandas as pd
        from mlflow.entities import Dataset, DatasetInput, InputTag

        summary, dataset = record["summary"], record["dataset"]
        params.update(record.get("batch_params") or {})
        params["dataset_digest"] = dataset["digest"]
        client.log_inputs(run_id, [DatasetInput(_dataset_entity(dataset, record, Dataset),
                                                [InputTag("mlflow.data.context", "eval")])])
        folder = self._staging(record["batch"], settings)
        chunks = sorted(folder.glob("*.json")) if folder.is_dir() else []
        if len(chunks) != record["chunks"]:
            raise RuntimeError(f"batch {record['batch']}: {len(chunks)} of {record['chunks']} row chunks staged")
        # A chunk that does not decrypt raises DataKeyError: the batch record stays spooled, the chunk staged.
        table = pd.DataFrame([row for chunk in chunks
                              for row in json.loads(at_rest.open_text(chunk.read_text(), STAGING_CONTEXT,
                                                                      f"staged batch rows {chunk}"))])
        client.log_table(run_id, table.head(TABLE_ROWS), "results.json")
        with tempfile.TemporaryDirectory() as tmp:
            table.to_csv(Path(tmp) / "results.csv", index=False)
            (Path(tmp) / "prompt.txt").write_text(record["prompt"]["template"], encoding="utf-8")
            json_schema = _json_schema(record)
            if json_schema is not None:
                (Path(tmp) / "schema.json").write_text(json_schema, encoding="utf-8")
            client.log_artifacts(run_id, tmp)
        rows = max(summary["rows"], 1)
        metrics = {key: summary.get(key) for key in ("rows", "errors", "cache_hits", "requests", "retries",
                                                     "latency_p50_ms", "latency_p95_ms", "rows_per_s",
                                                     "prompt_tokens", "completion_tokens", "cost_usd")}
        metrics["latency_ms"] = summary.get("latency_p50_ms")
        metrics["total_tokens"] = summary["prompt_tokens"] + summary["completion_tokens"]
        metrics["error_rate"] = summary["errors"] / rows
        if summary.get("schema_valid_rate") is not None:
            metrics["schema_valid_rate"] = summary["schema_valid_rate"]
        for name, value in (summary.get("scores") or {}).items():
            metrics[f"score.{name}"] = value
        # Judge calls, apart from the rows' own (only batches with a judge scorer; older records have none).
        metrics.update({key: summary.get(key) for key in JUDGE_METRICS if summary.get(key) is not None})
        return metrics

    def _tags(self, record: dict[str, Any], settings: Settings, version: Any) -> dict[str, str]:
        tags = {
            T.RECORD_ID: record["id"],
            T.KIND: record.get("run_kind") or record["kind"],  # run_kind: a served window is batch-shaped
            T.USER: record.get("user") or "unknown",
            T.MLFLOW_USER: record.get("user") or "unknown",
            T.MODEL: record["model"],
            T.PROMPT: f"{version.name}@{version.version}",
        }
        if record.get("notebook"):
            tags[T.NOTEBOOK] = record["notebook"]
            tags[T.SOURCE_NAME] = record["notebook"]
            tags[T.SOURCE_TYPE] = T.NOTEBOOK_SOURCE
        if record.get("cell_id"):
            tags[T.CELL_ID] = record["cell_id"]
        commit = context.git_commit(Path(record.get("project_root") or settings.project_root))
        if commit:
            tags[T.GIT_COMMIT] = commit
            tags[T.SOURCE_GIT_COMMIT] = commit
        if record.get("error"):
            tags[T.ERROR] = record["error"][:5000]
        if record.get("interrupted"):
            tags[T.INTERRUPTED] = "true"
        if record.get("usage_estimated"):
            tags[T.USAGE_ESTIMATED] = "true"
        tags.update(_conversation_tags(record.get("conversation")))
        redaction = record.get("redaction") or {}
        if redaction:  # audit: was the record masked, and what (counts per detector, never values)
            tags[T.REDACTION] = redaction.get("status", "ok")
            if redaction.get("counts"):
                tags[T.REDACTION_COUNTS] = ",".join(f"{k}:{v}" for k, v in redaction["counts"].items())
        return tags

    def _trace(self, client: Any, record: dict[str, Any], exp_id: str, run_id: str, version: Any) -> None:
        from mlflow.entities import SpanType

        usage = record.get("usage") or {}
        attributes = {"model": record["model"], **record["params"], T.RECORD_ID: record["id"],
                      "mlflow.chat.tokenUsage": {"input_tokens": usage.get("prompt_tokens", 0),
                                                 "output_tokens": usage.get("completion_tokens", 0),
                                                 "total_tokens": usage.get("total_tokens", 0)}}
        if "index" in record:
            attributes[T.ROW] = record["index"]
            attributes[T.CACHED] = bool(record.get("cached"))
        span = client.start_trace(record["prompt"]["name"], span_type=SpanType.CHAT_MODEL,
                                  inputs={"messages": record.get("messages"), "variables": record.get("variables")},
                                  attributes=attributes, tags={T.RECORD_ID: record["id"]},
                                  experiment_id=exp_id, start_time_ns=record["start_ns"] or None, run_id=run_id)
        if record.get("conversation"):
            _set_session(span.trace_id, record["conversation"]["id"], record.get("user") or "unknown")
        if record.get("schema_rejected"):
            _schema_attempts(client, span, record)
        outputs = {"content": record.get("output")} if not record.get("error") else {"error": record["error"]}
        client.end_trace(span.trace_id, outputs=outputs, status="ERROR" if record.get("error") else "OK",
                         end_time_ns=record["end_ns"] or None)
        try:
            client.link_prompt_versions_to_trace([version], span.trace_id)
        except Exception:  # noqa: BLE001 - the run link is the contract; the trace link is a bonus
            pass
        if not self._exit_hook:
            # OpenTelemetry registers its exporter's shutdown at the first trace; atexit runs last-in
            # first-out, so registering our exit flush now makes it run while traces can still export.
            import atexit

            from llmops_lab.tracking import shutdown

            atexit.register(shutdown)
            self._exit_hook = True


def _dataset_entity(dataset: dict[str, Any], record: dict[str, Any], entity_cls: Any) -> Any:
    """An MLflow Dataset entity from the record (the frame itself never leaves the notebook)."""
    import json

    types = {"int": "long", "float": "double", "bool": "boolean", "datetime": "datetime"}
    colspec = [{"type": next((v for k, v in types.items() if t.startswith(k)), "string"), "name": c,
                "required": True} for c, t in dataset["dtypes"].items()]
    source = dataset["source"]
    if source.endswith((".csv", ".jsonl", ".json")):
        source_type, source_json = "local", json.dumps({"uri": source})
    else:
        source_type = "code"
        source_json = json.dumps({"tags": {T.SOURCE_NAME: record.get("notebook") or "notebook"}})
    profile = json.dumps({"num_rows": dataset["rows"], "num_elements": dataset["rows"] * len(dataset["columns"])})
    return entity_cls(dataset["name"], dataset["digest"], source_type, source_json,
                      json.dumps({"mlflow_colspec": colspec}), profile)


def _log_texts(client: Any, run_id: str, files: dict[str, str | None]) -> None:
    """Several small text artifacts in one upload."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        for name, text in files.items():
            if text is not None:
                (Path(tmp) / name).write_text(text, encoding="utf-8")
        client.log_artifacts(run_id, tmp)


def _as_json(value: Any) -> str:
    import json

    return json.dumps(value, indent=2, ensure_ascii=False)


def _json_schema(record: dict[str, Any]) -> str | None:
    """The JSON schema a call asked its answer to match (``response_format``, as redacted), as text; None
    without one."""
    response_format = (record.get("params") or {}).get("response_format")
    if not isinstance(response_format, dict) or "json_schema" not in response_format:
        return None
    return _as_json(response_format["json_schema"].get("schema"))


def _schema_attempts(client: Any, root: Any, record: dict[str, Any]) -> None:
    """A schema call that was asked twice: both exchanges as child spans of its trace, the rejected answer with
    its validation error, then the retry's messages (the answer and the correction appended) and answer."""
    from mlflow.entities import SpanType

    rejected, start = record["schema_rejected"], record["start_ns"] or time.time_ns()
    split = start + int((rejected.get("latency_ms") or 0) * 1_000_000)
    end = max(record["end_ns"] or time.time_ns(), split)
    first = client.start_span("attempt 1", root.trace_id, root.span_id, span_type=SpanType.CHAT_MODEL,
                              inputs={"messages": record.get("messages")}, start_time_ns=start,
                              attributes={"llmops.schema_error": rejected.get("error"),
                                          "mlflow.chat.tokenUsage": {
                                              "input_tokens": rejected.get("prompt_tokens") or 0,
                                              "output_tokens": rejected.get("completion_tokens") or 0}})
    client.end_span(root.trace_id, first.span_id, outputs={"content": rejected.get("output")}, status="ERROR",
                    end_time_ns=split)
    retry = [*(record.get("messages") or []), {"role": "assistant", "content": rejected.get("output")},
             {"role": "user", "content": rejected.get("correction")}]
    second = client.start_span("attempt 2 (schema retry)", root.trace_id, root.span_id,
                               span_type=SpanType.CHAT_MODEL, inputs={"messages": retry}, start_time_ns=split,
                               attributes={"llmops.schema_error": record.get("error")} if record.get("error") else None)
    outputs = {"content": record.get("output")}
    client.end_span(root.trace_id, second.span_id, outputs=outputs, status="ERROR" if record.get("error") else "OK",
                    end_time_ns=end)


def _conversation_tags(conversation: dict[str, Any] | None) -> dict[str, str]:
    """A chat turn's run tags: the conversation (id, name), the turn number, turns dropped, a fork's parent."""
    if not conversation:
        return {}
    tags = {T.CONVERSATION: conversation["id"], T.CONVERSATION_NAME: conversation["name"],
            T.TURN: str(conversation["turn"])}
    if conversation.get("dropped"):
        tags[T.TURNS_DROPPED] = str(conversation["dropped"])
    if conversation.get("parent"):
        tags[T.CONVERSATION_PARENT] = f"{conversation['parent']['id']}:{conversation['parent']['turns']}"
    return tags


def _set_session(trace_id: str, session_id: str, user: str) -> None:
    """MLflow's session metadata on a trace still open, so the UI groups a conversation's turns. Trace
    metadata is fixed once the trace ends, and MlflowClient.start_trace takes none: set it in the trace
    manager that holds the open trace (what mlflow.update_current_trace does for the active one)."""
    try:
        from mlflow.tracing.trace_manager import InMemoryTraceManager

        manager = InMemoryTraceManager.get_instance()
        manager.set_trace_metadata(trace_id, T.TRACE_SESSION, session_id)
        manager.set_trace_metadata(trace_id, T.TRACE_USER, user)
    except Exception:  # noqa: BLE001 - an MLflow internal: never keep a turn spooled over it (the run's tags
        pass  # still name the conversation); tests/test_chat.py checks the metadata arrives


def _messages_json(record: dict[str, Any]) -> str | None:
    """A chat turn's messages as sent (masked), for resume; other calls keep prompt.txt only."""
    import json

    if not record.get("conversation"):
        return None
    return json.dumps(record["messages"], ensure_ascii=False)


def _render_messages(messages: list[dict[str, str]]) -> str:
    if len(messages) == 1:
        return messages[0]["content"]
    return "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in messages)


def _run_status(record: dict[str, Any]) -> str:
    """FAILED: the call failed; KILLED: a kernel interrupt stopped its stream (the partial answer is logged)."""
    if record.get("error"):
        return "FAILED"
    return "KILLED" if record.get("interrupted") else "FINISHED"
