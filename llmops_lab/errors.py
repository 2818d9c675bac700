"""Typed exceptions. Everything a user can fix is an `LlmopsError`: one line, what is wrong, how to fix it.

Front ends (magics, CLI) print these without a traceback; anything else is a bug and keeps its traceback.
"""
from __future__ import annotations


class LlmopsError(Exception):
    """A user-fixable problem. `str(err)` is a single line that says what to change."""


class ConfigError(LlmopsError):
    """Bad setting, option value or model id."""


class TemplateError(LlmopsError):
    """The prompt template does not parse or needs a variable that is not defined."""


class MissingApiKeyError(ConfigError):
    """A provider needs an API key that is not in the environment."""


class ProviderError(LlmopsError):
    """The model endpoint failed (after retries) or refused the request."""


class LocalModelError(LlmopsError):
    """The embedded local model is not installed or cannot load."""


class LocalWorkerError(LocalModelError, ProviderError):
    """The embedded model's worker process died mid-request (logged as a failed call, like an endpoint's)."""
