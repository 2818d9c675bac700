"""The active policy: the (cached) :class:`~llmops_lab.trust.redactor.Redactor` for the settings' redaction
table and the current HMAC key. The one trust module that reads settings (config never imports it).
"""
from __future__ import annotations

import json
import os
import threading
from typing import Any

from llmops_lab.trust.policy import KEY_ENV, Policy, parse_policy
from llmops_lab.trust.redactor import Redactor

__all__ = ["redactor_for", "policy_for"]

_redactors: dict[tuple, Redactor] = {}
_redactors_lock = threading.Lock()


def policy_for(settings: Any = None) -> Policy:
    """The policy of ``settings`` (default: the process settings)."""
    return redactor_for(settings).policy


def redactor_for(settings: Any = None) -> Redactor:
    """The (cached) redactor for ``settings.redaction`` and the current key."""
    if settings is None:
        from llmops_lab.config import get_settings

        settings = get_settings()
    table = getattr(settings, "redaction", None) or {}
    cache_key = (json.dumps(table, sort_keys=True, default=str), os.environ.get(KEY_ENV))
    redactor = _redactors.get(cache_key)
    if redactor is None:
        with _redactors_lock:
            redactor = _redactors.get(cache_key)
            if redactor is None:
                redactor = _redactors[cache_key] = Redactor(parse_policy(table))
    return redactor

