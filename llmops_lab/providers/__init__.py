"""Provider registry: ``provider:model`` -> the one object that talks to that model.

``local`` is the embedded model, ``openai`` the OpenAI API (``OPENAI_API_KEY``, ``OPENAI_BASE_URL``),
any other name an OpenAI-compatible endpoint from ``[tool.llmops-lab.endpoints.NAME]``.
"""
from __future__ import annotations

import os
import threading
from typing import Any

from llmops_lab.config import Settings
from llmops_lab.exceptions import ConfigError, MissingApiKeyError
from llmops_lab.providers.base import Completion, Message, ModelId, Provider, TokenLogprob, Usage

__all__ = ["Completion", "Message", "ModelId", "Provider", "TokenLogprob", "Usage", "resolve", "describe_providers"]

_clients: dict[tuple, Provider] = {}
_lock = threading.Lock()
KEY_HINT = "export it in the shell that starts Jupyter (never paste keys into a notebook)"


def _openai_spec(settings: Settings) -> dict[str, Any]:
    return {"base_url": os.environ.get("OPENAI_BASE_URL") or None, "api_key_env": "OPENAI_API_KEY"}


def _endpoint_spec(name: str, settings: Settings) -> dict[str, Any]:
    if name == "openai":
        return _openai_spec(settings)
    if name in settings.endpoints:
        return settings.endpoints[name]
    known = ", ".join(["local", "openai", *sorted(settings.endpoints)])
    raise ConfigError(f"unknown provider {name!r}: use one of {known}, or add "
                      f"[tool.llmops-lab.endpoints.{name}] base_url=... to pyproject.toml")


def resolve(model_id: ModelId, settings: Settings) -> Provider:
    """The provider for a model id; clients are reused so connections stay alive."""
    if model_id.provider == "local":
        from llmops_lab.providers import local

        local.model_path(model_id.model)  # unknown/uninstalled model: fail before any call
        return local.provider()
    spec = _endpoint_spec(model_id.provider, settings)
    key_env = spec.get("api_key_env")
    api_key = os.environ.get(key_env) if key_env else None
    if key_env and not api_key:
        raise MissingApiKeyError(f"{key_env} is not set (needed for {model_id}): {KEY_HINT}")
    if api_key:  # a key goes only over TLS or to this machine (trust/transport.py)
        from llmops_lab.trust.transport import check_transport

        check_transport(spec.get("base_url"), f"the API key of endpoint {model_id.provider!r} ({key_env})",
                        allow_insecure=settings.allow_insecure_transport)
    cache_key = (model_id.provider, spec.get("base_url"), key_env, hash(api_key), settings.timeout,
                 settings.max_retries, settings.batch_transport)
    with _lock:
        if cache_key not in _clients:
            from llmops_lab.providers.openai_compat import OpenAICompatProvider

            _clients[cache_key] = OpenAICompatProvider(
                model_id.provider, spec.get("base_url"), api_key or "not-needed", settings.timeout,
                settings.max_retries, key_source=key_env or "the request", transport=settings.batch_transport)
        return _clients[cache_key]


def describe_providers(settings: Settings) -> list[dict[str, Any]]:
    """One row per provider for `%llm models`: what is configured, never a key's value."""
    from llmops_lab.providers import local

    rows = []
    for name, state in local.status().items():
        rows.append({"model": f"local:{name}", "endpoint": "in-process (llama.cpp)",
                     "ready": state["installed"], "note": state["path"] or local.INSTALL_HINT,
                     "loaded": state["loaded"]})
    openai_key = bool(os.environ.get("OPENAI_API_KEY"))
    rows.append({"model": "openai:<model>", "endpoint": os.environ.get("OPENAI_BASE_URL") or "api.openai.com",
                 "ready": openai_key, "note": "OPENAI_API_KEY set" if openai_key else f"OPENAI_API_KEY not set: "
                 f"{KEY_HINT}", "loaded": False})
    for name, spec in sorted(settings.endpoints.items()):
        key_env = spec.get("api_key_env")
        ready = not key_env or bool(os.environ.get(key_env))
        note = "no key needed" if not key_env else (f"{key_env} set" if ready else f"{key_env} not set")
        rows.append({"model": f"{name}:<model>", "endpoint": spec["base_url"], "ready": ready, "note": note,
                     "loaded": False})
    return rows
