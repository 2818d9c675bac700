"""Typed exceptions. Everything a user can fix is an `LlmopsError`: one line, what is wrong, how to fix it.

Front ends (magics, CLI) print these without a traceback; anything else is a bug and keeps its traceback.
"""
from __future__ import annotations


class LlmopsError(Exception):
    """A user-fixable problem. `str(err)` is a single line that says what to change.

    Raised from the Python API in IPython/Jupyter (``llmops_lab.run(...)`` in a cell), it shows as that one line
    (``ConfigError: ...``), like the magics' ``UsageError``: IPython calls :meth:`_render_traceback_` instead of
    printing the stack. ``%tb`` or ``err.__traceback__`` still have it for a bug report.
    """

    def _render_traceback_(self) -> list[str]:
        text = str(self)
        try:
            from llmops_lab.trust.redaction import mask_secrets  # a saved notebook keeps error outputs: never a key in them

            text = mask_secrets(text)
        except Exception:  # noqa: BLE001 - an error about an error must still show
            pass
        return [f"{type(self).__name__}: {text}"]


class ConfigError(LlmopsError):
    """Bad setting, option value or model id."""


class InsecureTransportError(ConfigError):
    """Credentials would cross the network in clear text (``http://`` to a host that is not this machine)."""


class DataKeyError(ConfigError):
    """``LLMOPS_DATA_KEY`` is malformed, missing for an encrypted file, or not the key a file was written with."""


class TemplateError(LlmopsError):
    """The prompt template does not parse or needs a variable that is not defined."""


class MissingApiKeyError(ConfigError):
    """A provider needs an API key that is not in the environment."""


class ProviderError(LlmopsError):
    """The model endpoint failed (after retries) or refused the request."""


class StreamBroken(ProviderError):
    """A streamed answer broke mid-way (the endpoint closed the connection after some text). The call is
    logged FAILED with the partial answer as its output; ``err.partial`` is that text (masked nowhere: it is
    the kernel's, like a result's ``text``), ``err.completion`` the provider's partial completion."""

    def __init__(self, message: str, completion: object):
        super().__init__(message)
        self.completion = completion
        self.partial: str = getattr(completion, "text", "")


class LocalModelError(LlmopsError):
    """The embedded local model is not installed or cannot load."""


class LocalWorkerError(LocalModelError, ProviderError):
    """The embedded model's worker process died mid-request (logged as a failed call, like an endpoint's)."""


class StreamInterrupted(KeyboardInterrupt):
    """A kernel interrupt stopped a streamed answer (``run(..., stream=True)``, a streamed ``%%llm`` cell).

    Still a KeyboardInterrupt, so a loop of calls stops as you asked. The partial answer is ``err.result``
    (an ``LLMResult`` with ``interrupted=True``), already logged: the run's status is KILLED, not FAILED.
    """

    def __init__(self, result: object):
        super().__init__("the answer was stopped mid-stream")
        self.result = result

    def _render_traceback_(self) -> list[str]:
        return [("KeyboardInterrupt: generation stopped; the partial answer is kept (in _, and logged as an "
                 "interrupted run)")]


class SchemaError(LlmopsError):
    """The answer did not match the call's schema, even after one retry that showed the model the error.

    ``str(err)`` names the failing field; ``err.raw`` is the last answer's text and ``err.result`` the whole
    ``LLMResult`` (``data`` None). The run is logged FAILED, with the raw answer as its ``output.md``.
    """

    def __init__(self, message: str, raw: str = "", result: object = None):
        super().__init__(message)
        self.raw = raw
        self.result = result


class BudgetError(LlmopsError):
    """A call or batch would exceed its cost budget."""


class RedactionError(LlmopsError):
    """Redaction could not run where it must (scope ``send``): nothing was sent."""


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


class JobCancelled(JobError):
    """The execution was cancelled (scheduler stopping, SIGTERM, Ctrl-C)."""


class JobTimedOut(JobError):
    """An attempt ran past the job's timeout."""
