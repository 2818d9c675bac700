"""llmops-lab: every prompt you try in a notebook, tracked in MLflow.

>>> %load_ext llmops_lab                      # in a notebook; then a %%llm cell is a prompt
>>> import llmops_lab
>>> r = llmops_lab.run("Summarize: {{ text }}", {"text": article}, name="summarize", temperature=0)
>>> r.text, r.run_id                                                                  # doctest: +SKIP
>>> chat = llmops_lab.Conversation("support", system="Be brief."); chat.send("Hi").text  # doctest: +SKIP
>>> results = llmops_lab.batch("Classify: {{ text }}", reviews_df, scorers=["exact:label"])  # doctest: +SKIP
>>> p = llmops_lab.probe("Reply to: {{ text }}", data=df, swaps="gender", scorers=["exact:label"])  # doctest: +SKIP
>>> o = llmops_lab.optimize("Label: {{ text }}", data=df, scorers=["exact:label"], label="label")  # doctest: +SKIP
>>> o.significant, o.report()          # judged on a held-out test split; o.promote() only if significant  # doctest: +SKIP
"""
from __future__ import annotations

import sys

if sys.platform == "win32":  # said here, not as a traceback from deep inside the spool
    raise ImportError("llmops-lab needs Linux or macOS: its spool locks files with fcntl, which Windows lacks "
                      "(use WSL on Windows)")

from typing import TYPE_CHECKING, Any

from llmops_lab.config import configure, get_settings
from llmops_lab.core.call import run
from llmops_lab.core.results import LLMResult
from llmops_lab.evaluation.batch import batch, batch_run_id
from llmops_lab.exceptions import (BudgetError, ConfigError, JobError, LlmopsError, MissingApiKeyError, ProviderError,
                                   RedactionError, SchemaError, StreamBroken, StreamInterrupted, TemplateError)
from llmops_lab.jobs.record import record
from llmops_lab.tracking import flush, recent_runs

if TYPE_CHECKING:  # what the lazy attributes below are, for IDEs and type checkers
    from llmops_lab.analysis import audit as audit
    from llmops_lab.analysis import monitoring as monitoring
    from llmops_lab.analysis.monitoring import stats as stats
    from llmops_lab.evaluation import compare as compare
    from llmops_lab.evaluation.probe import probe as probe
    from llmops_lab.evaluation.optimize import optimize as optimize
    from llmops_lab.evaluation import datasets as data
    from llmops_lab.evaluation import scoring as scoring
    from llmops_lab import exceptions as errors
    from llmops_lab.tracking import registry as registry
    from llmops_lab.core.prompts import load_prompt as load_prompt
    from llmops_lab.core.conversation import Conversation as Conversation
    from llmops_lab.jobs.erasure import forget as forget
    from llmops_lab.jobs.retention import gc as gc
    from llmops_lab.trust import redaction as redact
    from llmops_lab.trust import redaction as redaction

__version__ = "0.1.0"

# Loaded on first use (pandas, scipy, matplotlib, MLflow), so `%load_ext llmops_lab` stays light:
# name -> (module, attribute or None for the module itself).
_LAZY: dict[str, tuple[str, str | None]] = {
    "stats": ("llmops_lab.analysis.monitoring", "stats"),
    "load_prompt": ("llmops_lab.core.prompts", "load_prompt"),
    "Conversation": ("llmops_lab.core.conversation", "Conversation"),  # a chat across calls: .send(text)
    "compare": ("llmops_lab.evaluation.compare", None),  # a callable module: llmops_lab.compare(...)
    "probe": ("llmops_lab.evaluation.probe", "probe"),  # counterfactual probe: llmops_lab.probe(t, data=df, swaps=...)
    "optimize": ("llmops_lab.evaluation.optimize", "optimize"),  # prompt search, judged on a held-out test split
    "data": ("llmops_lab.evaluation.datasets", None),  # llmops_lab.data.prepare(df), .fingerprint, .diff
    "scoring": ("llmops_lab.evaluation.scoring", None),  # llmops_lab.scoring.to_mlflow_scorer(s)
    "monitoring": ("llmops_lab.analysis.monitoring", None),  # load_calls, summarize, plot_stats
    "audit": ("llmops_lab.analysis.audit", None),  # llmops_lab.audit.audit_log(since="7d")
    "registry": ("llmops_lab.tracking.registry", None),  # list_prompts, promote_prompt, set_alias
    "redact": ("llmops_lab.trust.redaction", None),  # llmops_lab.redact.preview(text)
    "redaction": ("llmops_lab.trust.redaction", None),
    "errors": ("llmops_lab.exceptions", None),  # llmops_lab.errors.ConfigError, as the README has long said
    "forget": ("llmops_lab.jobs.erasure", "forget"),  # llmops_lab.forget(contains="Ada", dry_run=True)
    "gc": ("llmops_lab.jobs.retention", "gc"),  # applies [tool.llmops-lab.retention]
}

__all__ = ["run", "Conversation", "batch", "batch_run_id", "compare", "probe", "optimize", "record", "load_prompt", "stats", "data", "scoring",
           "monitoring", "audit", "registry", "redact", "configure", "get_settings", "flush", "recent_runs",
           "LLMResult", "LlmopsError", "ConfigError", "TemplateError", "ProviderError", "MissingApiKeyError",
           "BudgetError", "RedactionError", "JobError", "StreamInterrupted", "StreamBroken", "SchemaError", "errors", "forget",
           "gc", "load_ipython_extension"]


def __getattr__(name: str) -> Any:
    """The lazy attributes (:data:`_LAZY`), imported on first access."""
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = importlib.import_module(module)
        return value if attr is None else getattr(value, attr)
    raise AttributeError(f"module 'llmops_lab' has no attribute {name!r}")


def __dir__() -> list[str]:
    """What ``dir(llmops_lab)`` and tab completion show: the public API, lazy attributes included."""
    return sorted({*__all__, "__version__"})


def load_ipython_extension(shell: Any) -> None:
    """``%load_ext llmops_lab``."""
    from llmops_lab.magics import load_ipython_extension as _load

    _load(shell)


# -- Jupyter entry points: the sidebar's server extension and the prebuilt labextension ----------------

def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """Found by jupyter-server through ``jupyter-config/server-config/llmops_lab.json``."""
    return [{"module": "llmops_lab.server"}]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """The LLMOps sidebar, built from ``labextension/`` into ``llmops_lab/labextension``."""
    return [{"src": "labextension", "dest": "llmops-lab"}]
