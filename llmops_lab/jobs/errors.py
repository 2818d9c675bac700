"""Typed job errors. All are :class:`~llmops_lab.errors.LlmopsError`: one line, what is wrong, how to fix it."""
from __future__ import annotations

from ..errors import ConfigError, LlmopsError


class JobError(LlmopsError):
    """A job definition, parameter or command is wrong."""


class JobDefinitionError(ConfigError, JobError):
    """``llmops_jobs.toml`` or a promote request does not validate."""


class JobNotFoundError(JobError):
    """No job of that name in ``llmops_jobs.toml``."""


class JobBusyError(JobError):
    """The job is already executing (one execution of a job at a time)."""


class NotebookError(JobError):
    """The notebook is missing, outside the project, unreadable, or has no parameters cell."""
