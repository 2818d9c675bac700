"""Run a notebook with papermill, tagged so its calls land in that notebook's experiment."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .config import Settings
from .errors import ConfigError, LlmopsError


def execute_notebook(source: Path, output: Path, settings: Settings, parameters: dict[str, Any] | None = None,
                     timeout: float | None = 600, kernel_name: str | None = None) -> Path:
    """Execute ``source`` into ``output``. The kernel learns its notebook path through ``LLMOPS_NOTEBOOK``."""
    if not source.is_file():
        raise ConfigError(f"notebook {source} not found")
    import papermill

    output.parent.mkdir(parents=True, exist_ok=True)
    env_before = os.environ.get("LLMOPS_NOTEBOOK")
    os.environ["LLMOPS_NOTEBOOK"] = str(source.resolve())  # the kernel inherits our environment
    try:
        papermill.execute_notebook(str(source), str(output), parameters=parameters or {},
                                   cwd=str(source.parent), execution_timeout=timeout, progress_bar=False,
                                   kernel_name=kernel_name)
    except papermill.PapermillExecutionError as err:
        raise LlmopsError(f"{source.name} failed in cell {err.exec_count}: {err.ename}: {err.evalue} "
                          f"(partial output in {output})") from None
    finally:
        if env_before is None:
            os.environ.pop("LLMOPS_NOTEBOOK", None)
        else:
            os.environ["LLMOPS_NOTEBOOK"] = env_before
    return output
