"""The prompt registry for the panel: list, one prompt's versions, a diff, moving an alias.

The reading and diffing is :mod:`llmops_lab.tracking.registry`'s, given this request's client.
"""
from __future__ import annotations

import re
from typing import Any

from llmops_lab.server.errors import ApiError
from llmops_lab.server.stores import Store

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_SELECTOR = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
MAX_FILTER = 500


def check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ApiError(400, f"prompt name {str(name)[:60]!r} is invalid: letters, digits, '_', '.' or '-'")
    return name


def _versions(client: Any, name: str) -> list[Any]:
    """Every version of ``name`` with its aliases, oldest first; 404 when the prompt does not exist."""
    from llmops_lab.tracking.registry import versions_with_aliases

    found = versions_with_aliases(client, name) if client is not None else []
    if not found:
        raise ApiError(404, f"prompt {name!r} not found in the registry")
    return found


def list_prompts(store: Store, filter_string: str | None = None) -> dict[str, Any]:
    from llmops_lab.tracking.registry import prompt_summaries

    if filter_string is not None and (len(filter_string) > MAX_FILTER or "\x00" in filter_string):
        raise ApiError(400, f"filter is too long or has a NUL byte (at most {MAX_FILTER} characters)")
    client = store.client()
    return {"prompts": prompt_summaries(filter_string or None, client) if client is not None else []}


def _version_dict(v: Any) -> dict[str, Any]:
    from llmops_lab.tracking.registry import params_from_config

    model, params = params_from_config(getattr(v, "model_config", None))
    return {"version": int(v.version), "template": v.template if isinstance(v.template, str) else str(v.template),
            "aliases": sorted(getattr(v, "aliases", None) or []), "model": model, "params": params,
            "commit_message": getattr(v, "commit_message", None), "created_ms": v.creation_timestamp}


def prompt_detail(store: Store, name: str) -> dict[str, Any]:
    check_name(name)
    return {"name": name, "versions": [_version_dict(v) for v in _versions(store.client(), name)]}


def _selector(value: str | None, what: str) -> str:
    if not value or not _SELECTOR.match(value):
        raise ApiError(400, f"{what}={value!r} is invalid: give a version number or an alias")
    return value


def diff(store: Store, name: str, a: str | None, b: str | None) -> dict[str, Any]:
    from llmops_lab.exceptions import ConfigError
    from llmops_lab.tracking.registry import diff_versions

    check_name(name)
    a, b = _selector(a, "a"), _selector(b, "b")
    client = store.client()
    _versions(client, name)  # 404 for an unknown prompt
    try:
        text = diff_versions(name, a, b, client=client)
    except ConfigError as err:  # registry: "prompt NAME@X not found in the registry (versions …)"
        raise ApiError(404, str(err)) from None
    return {"a": a, "b": b, "diff": text}


def set_alias(store: Store, name: str, body: dict[str, Any], user: str | None = None) -> dict[str, Any]:
    """Point ``alias`` at ``version`` (MLflow moves it if it pointed elsewhere); who did it, from the panel, and
    the optional ``reason`` are recorded on the version like any promotion (:func:`registry.set_alias`)."""
    from llmops_lab.exceptions import ConfigError
    from llmops_lab.tracking.registry import check_alias, set_alias as registry_set_alias

    check_name(name)
    alias, version, reason = body.get("alias"), body.get("version"), body.get("reason")
    try:
        check_alias(alias)
    except ConfigError as err:
        raise ApiError(400, str(err)) from None
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ApiError(400, "version must be a whole number of an existing version, e.g. {\"version\": 2}")
    if reason is not None and (not isinstance(reason, str) or len(reason) > 1000):
        raise ApiError(400, "reason must be text of at most 1,000 characters")
    client = store.client()
    numbers = [int(v.version) for v in _versions(client, name)]
    if version not in numbers:
        raise ApiError(404, f"{name}@{version} not found: versions are {', '.join(map(str, numbers))}")
    updated = registry_set_alias(name, alias, version, reason=reason, user=user, source="jupyterlab sidebar",
                                 client=client)
    return {"version": version, "aliases": sorted(getattr(updated, "aliases", None) or [])}
