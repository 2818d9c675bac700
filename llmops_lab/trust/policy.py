"""Redaction policy: what to detect, how to replace, where (``[tool.llmops-lab.redaction]``), parsed and
validated into a :class:`Policy` (a one-line ConfigError otherwise).

Pure: reads no settings (config imports this module to check a policy at load; never the reverse).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from llmops_lab.exceptions import ConfigError
from llmops_lab.trust.detectors import BUILTIN, DETECTORS, _group

__all__ = ["Policy", "parse_policy", "KEY_ENV", "STYLES", "SCOPES", "GROUPS", "OPTIONAL_SECRETS"]

KEY_ENV = "LLMOPS_REDACTION_KEY"
STYLES = ("label", "hash")
SCOPES = ("log", "send")
GROUPS = ("secrets", "pii")
# Heuristic secret detectors a policy may turn off (false positives); the key formats are always on.
OPTIONAL_SECRETS = frozenset({"high_entropy", "secret_assignment"})


@dataclass(frozen=True)
class Policy:
    """What to detect, how to replace, and where (``scope``). Build it with :func:`parse_policy`."""

    detectors: tuple[str, ...] = BUILTIN
    style: str = "label"
    scope: str = "log"
    patterns: tuple[tuple[str, str], ...] = ()
    presidio: tuple[str, ...] = ()
    hash_key: bytes | None = field(default=None, repr=False)

    @property
    def sends_masked(self) -> bool:
        return self.scope == "send"


_POLICY_KEYS = ("detectors", "exclude", "style", "scope", "patterns", "presidio")


def parse_policy(table: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None) -> Policy:
    """A Policy from the ``[tool.llmops-lab.redaction]`` table, or a one-line ConfigError."""
    table = dict(table or {})
    environ = os.environ if environ is None else environ
    unknown = sorted(set(table) - set(_POLICY_KEYS))
    if unknown:
        raise ConfigError(f"unknown redaction setting {', '.join(map(repr, unknown))}: use {', '.join(_POLICY_KEYS)} "
                          "in [tool.llmops-lab.redaction]")

    def names(key: str, default: Iterable[str]) -> list[str]:
        value = table.get(key, list(default))
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"redaction {key} must be a list of detector names")
        return list(value)

    chosen: list[str] = []
    for name in [*names("detectors", GROUPS), "secrets"]:  # secret key formats are always on
        expanded = _group(name) if name in GROUPS else (name,)
        for item in expanded:
            if item not in DETECTORS:
                raise ConfigError(f"unknown redaction detector {item!r}: use secrets, pii or one of "
                                  f"{', '.join(BUILTIN)}")
            if item not in chosen:
                chosen.append(item)
    for name in names("exclude", ()):
        if name not in DETECTORS:
            raise ConfigError(f"redaction exclude: unknown detector {name!r} (known: {', '.join(BUILTIN)})")
        if DETECTORS[name].category == "secret" and name not in OPTIONAL_SECRETS:
            raise ConfigError(f"redaction exclude: {name} cannot be turned off (secrets are always masked); "
                              f"only {', '.join(sorted(OPTIONAL_SECRETS))} and PII detectors can")
        if name in chosen:
            chosen.remove(name)
    style = table.get("style", "label")
    if style not in STYLES:
        raise ConfigError(f"redaction style {style!r} is not one of {', '.join(STYLES)}")
    scope = table.get("scope", "log")
    if scope not in SCOPES:
        raise ConfigError(f"redaction scope {scope!r} is not one of {', '.join(SCOPES)} (log: mask what is stored; "
                          "send: also mask what goes to the provider)")
    patterns = table.get("patterns", {})
    if not isinstance(patterns, Mapping):
        raise ConfigError("redaction patterns must be a table of name = \"regex\"")
    for name, regex in patterns.items():
        if not isinstance(regex, str):
            raise ConfigError(f"redaction pattern {name!r} must be a string regex")
        try:
            re.compile(regex)
        except re.error as err:
            raise ConfigError(f"redaction pattern {name!r} is not a valid regular expression: {err}") from None
    presidio = names("presidio", ())
    key = None
    if style == "hash":
        raw = environ.get(KEY_ENV)
        if not raw:
            raise ConfigError(f"redaction style 'hash' needs a secret key in the environment variable {KEY_ENV} "
                              "(export it in the shell that starts Jupyter; never put it in a notebook)")
        key = raw.encode("utf-8")
    return Policy(tuple(chosen), style, scope, tuple(sorted(patterns.items())), tuple(presidio), key)

