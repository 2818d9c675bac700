"""The names llmops-lab writes into MLflow and reads back: run kinds, tags, span attributes, metadata.

Writers (``tracking/mlflow_sink.py``, ``tracking/writer.py``, ``tracking/registry.py``) and readers
(``tracking/reader.py``, the server, audit, jobs) use these constants, never the strings themselves,
so a name is spelled in one place. Pure: imports nothing.
"""
from __future__ import annotations

# -- run kinds (the value of KIND) ---------------------------------------------------------------------
SINGLE = "single"  # one run() / %%llm call
SERVE = "serve"  # one request to `llmops-lab serve` (a single call made for an application)
BATCH = "batch"  # one batch() (or one compare variant)
COMPARE = "compare"  # a comparison's parent run
PROBE = "probe"  # a counterfactual probe's parent run (written like a compare parent)
OPTIMIZE = "optimize"  # a prompt search's parent run (written like a compare parent)
AGREEMENT = "agreement"  # a judge checked against human ratings (written like a compare parent, no children)
JOB = "job"  # one job execution
ERASURE = "erasure"  # the audit run of a forget or gc (tracking/erasure.py)

# -- llmops tags on runs --------------------------------------------------------------------------------
KIND = "llmops.kind"
RECORD_ID = "llmops.record_id"
USER = "llmops.user"
MODEL = "llmops.model"
PROMPT = "llmops.prompt"  # name@version
NOTEBOOK = "llmops.notebook"
CELL_ID = "llmops.cell_id"
GIT_COMMIT = "llmops.git_commit"
ERROR = "llmops.error"
INTERRUPTED = "llmops.interrupted"  # "true": a kernel interrupt stopped a streamed answer (run KILLED)
USAGE_ESTIMATED = "llmops.usage_estimated"  # "true": the stream ended before its usage chunk (tokens/cost ≈)
REDACTION = "llmops.redaction"
REDACTION_COUNTS = "llmops.redaction.counts"
BASELINE = "llmops.baseline"  # compare parent: the baseline variant's label
COMPARE_PARENT = "llmops.compare.parent"  # compare child
COMPARE_VARIANT = "llmops.compare.variant"  # compare child
PROMOTED = "llmops.promoted."  # + alias, on a compare parent after a promote
JUDGE_ACCURACY = "llmops.judge.accuracy"  # judge prompt version: agreement with human ratings
JUDGE_KAPPA = "llmops.judge.kappa"  # judge prompt version: Cohen's kappa against human ratings
OPTIMIZE_ROUND = "llmops.optimize.round"  # optimize candidate version: the search round (0: the original)
OPTIMIZE_PARENT = "llmops.optimize.parent"  # optimize candidate version: name@version it was proposed from
OPTIMIZE_STATUS = "llmops.optimize.status"  # optimize candidate version: ok or why it was rejected
OPTIMIZE_VALIDATION = "llmops.optimize.validation"  # optimize candidate version: its validation score
JUDGE_RATED = "llmops.judge.rated"  # judge prompt version: how many human ratings it was checked on
JOB_NAME = "llmops.job"
JOB_SCHEDULE = "llmops.job.schedule"
JOB_TIMEZONE = "llmops.job.timezone"
JOB_TRIGGER = "llmops.job.trigger"
JOB_EXECUTION = "llmops.job.execution"
JOB_STATUS = "llmops.job.status"
JOB_SCHEDULED_FOR = "llmops.job.scheduled_for"
JOB_GATE = "llmops.job.gate"
JOB_BATCH_RUNS = "llmops.job.batch_runs"
CONVERSATION = "llmops.conversation"  # a chat turn: the conversation's id (a uuid; a reset starts a new one)
CONVERSATION_NAME = "llmops.conversation_name"  # a chat turn: the conversation's name
TURN = "llmops.turn"  # a chat turn: its number in the conversation, from 1
TURNS_DROPPED = "llmops.turns_dropped"  # a chat turn: the oldest turns the context guard left out of the request
CONVERSATION_PARENT = "llmops.conversation_parent"  # a fork's turn: "<parent id>:<turns copied>"
NOTEBOOK_DIGEST = "llmops.notebook_digest"
HOST = "llmops.host"

# -- MLflow's own tags that llmops-lab sets ------------------------------------------------------------
MLFLOW_USER = "mlflow.user"
SOURCE_NAME = "mlflow.source.name"
SOURCE_TYPE = "mlflow.source.type"
SOURCE_GIT_COMMIT = "mlflow.source.git.commit"
PARENT_RUN_ID = "mlflow.parentRunId"
LINKED_PROMPTS = "mlflow.linkedPrompts"
NOTEBOOK_SOURCE = "NOTEBOOK"  # the value of SOURCE_TYPE

# -- MLflow's trace metadata that llmops-lab sets (the UI groups a session's traces) ---------------------
TRACE_SESSION = "mlflow.trace.session"  # = TraceMetadataKey.TRACE_SESSION: a chat turn's conversation id
TRACE_USER = "mlflow.trace.user"  # = TraceMetadataKey.TRACE_USER

# -- run artifacts read back ---------------------------------------------------------------------------
MESSAGES_ARTIFACT = "messages.json"  # a chat turn: the messages as sent, masked (resume reads the last one)
OUTPUT_ARTIFACT = "output.md"  # a single call's answer, masked

# -- prompt registry version tags ----------------------------------------------------------------------
SHA256 = "llmops.sha256"
PROMOTED_BY = "llmops.promoted_by"
PROMOTED_ALIAS = "llmops.promoted_alias"
PROMOTED_AT = "llmops.promoted_at"
PROMOTED_REASON = "llmops.promoted_reason"
PROMOTED_FROM = "llmops.promoted_from"

# -- trace span attributes and feedback metadata -------------------------------------------------------
ROW = "llmops.row"  # span attribute of a batch row's trace; feedback metadata
CACHED = "llmops.cached"  # span attribute of a batch row's trace
VARIANT = "llmops.variant"  # feedback metadata: the compare variant's label
SOURCE_RUN = "mlflow.sourceRun"  # trace metadata (MLflow's): the run a trace was logged in

# -- params and metrics read back ----------------------------------------------------------------------
DATASET_DIGEST = "dataset_digest"  # batch run param
SCORE = "score."  # metric prefix: score.<scorer>


def tag_filter(tag: str, value: str) -> str:
    """``tags.`llmops.kind` = 'batch'``: a search_runs filter on one tag (quotes in the value dropped)."""
    return f"tags.`{tag}` = '{str(value).replace(chr(39), '')}'"
