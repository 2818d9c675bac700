"""llmops-lab: every prompt you try in a notebook, tracked in MLflow.

>>> %load_ext llmops_lab                      # in a notebook; then a %%llm cell is a prompt
>>> import llmops_lab
>>> r = llmops_lab.run("Summarize: {{ text }}", {"text": article}, name="summarize", temperature=0)
>>> r.text, r.run_id                                                                  # doctest: +SKIP
>>> results = llmops_lab.batch("Classify: {{ text }}", reviews_df, scorers=["exact:label"])  # doctest: +SKIP
"""
from __future__ import annotations

import sys

if sys.platform == "win32":  # said here, not as a traceback from deep inside the spool
    raise ImportError("llmops-lab needs Linux or macOS: its spool locks files with fcntl, which Windows lacks "
                      "(use WSL on Windows)")

from .api import run
from .batch import batch, batch_run_id
from .config import configure, get_settings
from .errors import ConfigError, LlmopsError, MissingApiKeyError, ProviderError, TemplateError
from .jobs.record import record
from .results import LLMResult
from .tracking import flush, recent_runs

__version__ = "0.1.0"
__all__ = ["run", "batch", "batch_run_id", "record", "data", "stats", "configure", "get_settings", "flush", "recent_runs", "LLMResult", "LlmopsError",
           "ConfigError", "TemplateError", "ProviderError", "MissingApiKeyError", "load_ipython_extension",
           "compare", "load_prompt"]


def __getattr__(name: str):
    # `data` and `stats` load on first use (pandas, matplotlib): `%load_ext` stays light.
    if name == "stats":
        from .monitoring import stats

        return stats
    if name == "data":
        import importlib

        return importlib.import_module(".data", __name__)
    if name in ("redact", "redaction", "audit"):  # llmops_lab.redact.preview(text), llmops_lab.audit.audit_log()
        import importlib

        return importlib.import_module(".redaction" if name == "redact" else f".{name}", __name__)
    if name == "compare":  # comparisons and the prompt registry load on first use (pandas, scipy, mlflow)
        import importlib

        return importlib.import_module(".compare", __name__)  # a callable module: llmops_lab.compare(...)
    if name == "load_prompt":
        from .registry import load_prompt

        return load_prompt
    raise AttributeError(f"module 'llmops_lab' has no attribute {name!r}")


def load_ipython_extension(shell) -> None:
    """``%load_ext llmops_lab``."""
    from .magics import load_ipython_extension as _load

    _load(shell)


# -- Jupyter entry points: the sidebar's server extension and the prebuilt labextension ----------------

def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """Found by jupyter-server through ``jupyter-config/server-config/llmops_lab.json``."""
    return [{"module": "llmops_lab.server"}]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """The LLMOps sidebar, built from ``labextension/`` into ``llmops_lab/labextension``."""
    return [{"src": "labextension", "dest": "llmops-lab"}]
