"""Prompt management on MLflow's prompt registry: list, diff, resolve (``name@alias|version``), promote.

The model and generation parameters travel with the version (MLflow's ``model_config``); what an application
loads and calls is :func:`llmops_lab.core.prompts.load_prompt` (``llmops_lab.load_prompt``). Reads and writes go to the project's store (``tracking/clients.kernel_client``); MLflow is
imported only when a function here is called.
"""
from __future__ import annotations

import difflib
import re
import time
from dataclasses import dataclass
from typing import Any, Mapping

from llmops_lab.exceptions import ConfigError
from llmops_lab.tracking import tags as T

__all__ = ["PromptRef", "parse_ref", "is_ref", "get_version", "list_prompts",
           "prompt_summaries", "versions_with_aliases", "diff_versions", "register_version", "check_alias",
           "promote_prompt", "set_alias",
           "model_config_for", "params_from_config", "schema_from_config",
           "PromptDiff"]

_REF = re.compile(r"^(?:prompts:/)?(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]{0,99})(?:(?:@|/)(?P<sel>[A-Za-z0-9_.-]+))?$")
# model_config keys <-> llmops generation parameters
_PARAM_KEYS = {"temperature": "temperature", "max_tokens": "max_tokens", "top_p": "top_p", "stop": "stop_sequences"}


@dataclass(frozen=True)
class PromptRef:
    """``summarize@production`` -> name ``summarize``, alias ``production``; ``summarize@2`` -> version 2."""

    name: str
    version: int | None = None
    alias: str | None = None

    def __str__(self) -> str:
        return self.name + (f"@{self.version}" if self.version is not None else f"@{self.alias}" if self.alias else "")


def is_ref(text: str) -> bool:
    """A registry reference (``name@2``, ``name@alias``, ``prompts:/name/2``) rather than an inline template."""
    return isinstance(text, str) and "{{" not in text and bool(_REF.match(text.strip())) and (
        "@" in text or text.startswith("prompts:/"))


def parse_ref(ref: str) -> PromptRef:
    """Parse ``name@alias``, ``name@version``, ``prompts:/name@alias`` or ``prompts:/name/version``."""
    m = _REF.match(ref.strip()) if isinstance(ref, str) else None
    if not m:
        raise ConfigError(f"prompt reference {ref!r} is invalid: write NAME@VERSION or NAME@ALIAS, e.g. summarize@production")
    sel = m.group("sel")
    if sel is None:
        return PromptRef(m.group("name"))
    if sel.isdigit():
        return PromptRef(m.group("name"), version=int(sel))
    if sel == "latest":
        return PromptRef(m.group("name"))
    return PromptRef(m.group("name"), alias=sel)


def _client():
    from llmops_lab.tracking.clients import kernel_client

    return kernel_client()


def _versions(client: Any, name: str) -> list:
    from mlflow.exceptions import MlflowException

    try:
        versions = list(client.search_prompt_versions(name, max_results=1000))
    except MlflowException:
        return []
    return sorted(versions, key=lambda v: int(v.version))


def get_version(ref: str | PromptRef, client: Any = None) -> Any:
    """The registry ``PromptVersion`` a reference points at (latest when no selector); a one-line error if none."""
    ref = parse_ref(ref) if isinstance(ref, str) else ref
    client = client or _client()
    from mlflow.exceptions import MlflowException

    try:
        if ref.alias:
            version = client.get_prompt_version_by_alias(ref.name, ref.alias)
        elif ref.version is not None:
            version = client.get_prompt_version(ref.name, ref.version)
        else:
            versions = _versions(client, ref.name)
            version = versions[-1] if versions else None
    except MlflowException:
        version = None
    if version is None:
        known = ", ".join(f"@{v.version}" for v in _versions(client, ref.name)) or "none"
        raise ConfigError(f"prompt {ref} not found in the registry (versions of {ref.name}: {known}); "
                          "see %llm prompts")
    return version


def model_config_for(model: str | None, params: Mapping[str, Any] | None) -> dict[str, Any]:
    """MLflow ``model_config`` from an llmops model id (``provider:model``) and generation parameters."""
    config: dict[str, Any] = {}
    if model:
        provider, _, name = model.partition(":")
        config["provider"], config["model_name"] = provider, name
    extra = {}
    for key, value in (params or {}).items():
        if value is None:
            continue
        if key in _PARAM_KEYS:
            value = [value] if key == "stop" and isinstance(value, str) else value
            config[_PARAM_KEYS[key]] = value
        else:
            extra[key] = value
    if extra:
        config["extra_params"] = extra
    return config


def params_from_config(config: Any) -> tuple[str | None, dict[str, Any]]:
    """(model id, generation parameters) from a version's ``model_config`` (dict or PromptModelConfig)."""
    if config is None:
        return None, {}
    if hasattr(config, "model_dump"):
        config = config.model_dump(exclude_none=True)
    config = {k: v for k, v in dict(config).items() if v is not None}
    model = f"{config['provider']}:{config['model_name']}" if config.get("provider") and config.get("model_name") \
        else config.get("model_name")
    params = {ours: config[theirs] for ours, theirs in _PARAM_KEYS.items() if theirs in config}
    params.update(config.get("extra_params") or {})
    params.pop("response_format", None)  # not a generation parameter: see schema_from_config
    return model, params


def schema_from_config(config: Any) -> dict[str, Any] | None:
    """The JSON schema a version's ``model_config`` asks answers to match (``extra_params.response_format``),
    or None.

    >>> schema_from_config({"extra_params": {"response_format": {"type": "json_schema",
    ...     "json_schema": {"name": "P", "schema": {"type": "object"}}}}})
    {'type': 'object'}
    """
    if config is None:
        return None
    if hasattr(config, "model_dump"):
        config = config.model_dump(exclude_none=True)
    response_format = (dict(config).get("extra_params") or {}).get("response_format")
    if isinstance(response_format, dict) and isinstance(response_format.get("json_schema"), dict):
        return response_format["json_schema"].get("schema")
    return None


def prompt_summaries(filter_string: str | None = None, client: Any = None) -> list[dict[str, Any]]:
    """Registered prompts as plain dicts: name, versions, latest, aliases ``{alias: version}``, model of the
    latest version and its ``updated_ms``. ``client`` defaults to the project's store."""
    client = client or _client()
    rows = []
    for prompt in client.search_prompts(filter_string=filter_string, max_results=1000):
        versions = versions_with_aliases(client, prompt.name)
        aliases = {}
        for v in versions:
            for alias in getattr(v, "aliases", None) or []:
                aliases[alias] = int(v.version)
        latest = versions[-1] if versions else None
        model, _ = params_from_config(getattr(latest, "model_config", None)) if latest else (None, {})
        rows.append({"name": prompt.name, "versions": [int(v.version) for v in versions],
                     "latest": int(latest.version) if latest else None, "aliases": aliases, "model": model,
                     "updated_ms": (latest.last_updated_timestamp or latest.creation_timestamp) if latest else None})
    return rows


def list_prompts(filter_string: str | None = None, client: Any = None):
    """Registered prompts: one row per prompt with its versions, latest version, aliases and latest model."""
    import pandas as pd

    rows = [{**row, "aliases": ", ".join(f"{a}→{n}" for a, n in sorted(row["aliases"].items())),
             "updated": pd.to_datetime(row["updated_ms"], unit="ms") if row["updated_ms"] else None}
            for row in prompt_summaries(filter_string, client)]
    return pd.DataFrame(rows, columns=["name", "versions", "latest", "aliases", "model", "updated"])


def diff_versions(name: str, a: int | str, b: int | str, client: Any = None) -> str:
    """A unified diff of two versions of ``name`` (template, then model config): ``%llm prompts NAME --diff 1 2``."""
    client = client or _client()
    va, vb = (get_version(PromptRef(name, version=int(x)) if str(x).isdigit() else PromptRef(name, alias=str(x)),
                          client) for x in (a, b))

    def lines(v: Any) -> list[str]:
        model, params = params_from_config(getattr(v, "model_config", None))
        config = [f"# model: {model}"] + [f"# {k}: {params[k]}" for k in sorted(params)] if model or params else []
        return v.template.splitlines() + ([""] + config if config else [])

    out = difflib.unified_diff(lines(va), lines(vb), f"{name}@{va.version}", f"{name}@{vb.version}", lineterm="")
    text = "\n".join(out)
    return text or f"{name}@{va.version} and {name}@{vb.version} are identical"


def register_version(name: str, template: str, *, model: str | None = None, params: Mapping[str, Any] | None = None,
                     commit_message: str | None = None, client: Any = None) -> Any:
    """The version of ``name`` with this template and model config; registered only if none matches."""
    from llmops_lab.core.templates import check_name

    check_name(name)
    client = client or _client()
    config = model_config_for(model, params)
    for version in reversed(_versions(client, name)):
        existing = getattr(version, "model_config", None)
        existing = existing.model_dump(exclude_none=True) if hasattr(existing, "model_dump") else (existing or {})
        existing = {k: v for k, v in dict(existing).items() if v is not None}
        if version.template == template and existing == config:
            return version
    from llmops_lab.core.templates import PromptTemplate

    return client.register_prompt(name, template, commit_message=commit_message or "registered by llmops-lab",
                                  tags={T.SHA256: PromptTemplate(template).sha256},
                                  model_config=config or None)


def version_with_text(client: Any, name: str, template: str, sha256: str,
                      model_config: Mapping[str, Any] | None = None) -> Any:
    """The version of ``name`` whose text is ``template`` (first found), else a new version registered with it
    (the call writer's lookup: the text alone decides, whatever the model config). With ``model_config`` (a
    call with a schema: its ``response_format`` is part of what the prompt is) the version must have that
    config too, and a new one is registered with it."""
    from mlflow.exceptions import MlflowException

    try:
        for version in client.search_prompt_versions(name, max_results=1000):
            if version.template == template and (model_config is None or _stored_config(version) == model_config):
                return version
    except MlflowException:
        pass  # no such prompt yet
    return client.register_prompt(name, template, commit_message="registered by llmops-lab", tags={T.SHA256: sha256},
                                  model_config=dict(model_config) if model_config else None)


def _stored_config(version: Any) -> dict[str, Any]:
    """A version's ``model_config`` as a plain dict without None values."""
    existing = getattr(version, "model_config", None)
    existing = existing.model_dump(exclude_none=True) if hasattr(existing, "model_dump") else (existing or {})
    return {k: v for k, v in dict(existing).items() if v is not None}


def check_alias(alias: Any) -> str:
    """An alias name MLflow and ``name@alias`` references both accept, or a one-line ConfigError."""
    if not isinstance(alias, str) or not re.match(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$", alias) or alias == "latest":
        raise ConfigError(f"alias {alias!r} is invalid: use letters, digits, '-' or '_' (not 'latest')")
    return alias


def promote_prompt(name: str, template: str, *, model: str | None = None, params: Mapping[str, Any] | None = None,
                   alias: str = "production", reason: str | None = None, user: str | None = None,
                   source: str | None = None) -> Any:
    """Register (if needed) and point ``alias`` at the version; who/why/when go into the version's tags."""
    check_alias(alias)
    client = _client()
    version = register_version(name, template, model=model, params=params,
                               commit_message=f"promoted to {alias}" + (f": {reason}" if reason else ""), client=client)
    return set_alias(name, alias, int(version.version), reason=reason, user=user, source=source, client=client)


def set_alias(name: str, alias: str, version: int, *, reason: str | None = None, user: str | None = None,
              source: str | None = None, client: Any = None) -> Any:
    """Point ``alias`` at ``name``'s ``version`` and record who/why/when/from where in that version's tags
    (``llmops.promoted_*``); returns the version with its aliases. ``client`` defaults to the project's store.

    >>> set_alias("summarize", "production", 2, reason="wins 14/3 on news-eval", source="sidebar")  # doctest: +SKIP
    """
    from llmops_lab.tracking import context

    check_alias(alias)
    client = client or _client()
    client.set_prompt_alias(name, alias, int(version))
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    for key, value in {T.PROMOTED_BY: user or context.user(), T.PROMOTED_ALIAS: alias,
                       T.PROMOTED_AT: stamp, T.PROMOTED_REASON: reason or "",
                       T.PROMOTED_FROM: source or ""}.items():
        client.set_prompt_version_tag(name, int(version), key, value)
    return client.get_prompt_version(name, int(version))


def versions_with_aliases(client: Any, name: str) -> list:
    """Every version of ``name``, oldest first, each read on its own: search_prompt_versions leaves aliases out
    (prompts have few versions)."""
    return [client.get_prompt_version(name, v.version) for v in _versions(client, name)]


class PromptDiff(str):
    """A diff that shows as preformatted text in a notebook (and is a plain ``str`` otherwise)."""

    def _repr_html_(self) -> str:
        import html

        lines = []
        for line in self.splitlines():
            color = "#070" if line.startswith("+") and not line.startswith("+++") else \
                "#b00" if line.startswith("-") and not line.startswith("---") else "inherit"
            lines.append(f"<span style='color:{color}'>{html.escape(line)}</span>")
        return "<pre>" + "\n".join(lines) + "</pre>"



def tag_version(name: str, version: int, tags: Mapping[str, Any], client: Any = None) -> None:
    """Set tags on one prompt version (values as text): e.g. a judge version's agreement with people."""
    client = client or _client()
    for key, value in tags.items():
        client.set_prompt_version_tag(name, int(version), key, str(value))
