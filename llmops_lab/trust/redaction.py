"""Secret and PII redaction: a small registry of detectors, a policy from settings, fail-closed masking.

>>> masked, findings = redact("mail bob@example.com, key sk-proj-abcdefghijklmnopqrstuvwx")
>>> masked
'mail [EMAIL], key [OPENAI_KEY]'
>>> [(f.detector, f.category) for f in findings]
[('email', 'pii'), ('openai_key', 'secret')]

Policy (``[tool.llmops-lab.redaction]`` in pyproject.toml or llmops.toml)::

    detectors = ["secrets", "pii"]   # groups or detector names; secret detectors are always on
    exclude = []                     # e.g. ["ip_address", "high_entropy"]
    style = "label"                  # "label" -> [EMAIL]; "hash" -> [EMAIL:3f2a9c01d4] (HMAC, joinable)
    scope = "log"                    # "log": mask what is stored; "send": also mask what goes to the provider
    patterns = { employee_id = "EMP-\\d{6}" }   # your own detectors (PII)
    presidio = ["PERSON", "LOCATION"]           # optional: names and places via presidio-analyzer

The hash style keys an HMAC with ``LLMOPS_REDACTION_KEY`` from the environment (never from a notebook),
so equal values get equal tokens (joinable across runs) without the value being recoverable.

Where it runs (docs/architecture.md): before sending, only with scope ``send`` (``CallPlan.messages``, so the cache
key hashes exactly what is sent); before anything is stored (``redact_record`` on every spool record,
``mask_text`` on cached responses). Redaction never raises into a call: if it fails, the record is
stored fully masked with ``redaction.status = "failed"`` (fail closed), never raw.

The work is split by job (this module is the public facade; import from here):
detectors.py (registry, built-ins, presidio), policy.py (Policy, parse_policy), redactor.py (Redactor,
secrets-only masking), active.py (the settings' redactor), records.py (what is stored or sent),
display.py (what a notebook keeps), preview.py (the preview table).
"""
from __future__ import annotations

from llmops_lab.trust.active import policy_for, redactor_for
from llmops_lab.trust.detectors import (BUILTIN, DETECTORS, Detector, Facts, Finding, _group, _presidio_analyzer,  # noqa: F401
                                        _presidio_detectors, iban_ok, luhn_ok, register_detector)
from llmops_lab.trust.display import display_redactor, for_display, frame_for_display, mask_for_display
from llmops_lab.trust.policy import GROUPS, KEY_ENV, OPTIONAL_SECRETS, SCOPES, STYLES, Policy, parse_policy
from llmops_lab.trust.preview import Preview, preview
from llmops_lab.trust.records import SAFE_FIELDS, mask_answer, mask_messages, mask_text, redact, redact_record
from llmops_lab.trust.redactor import (FAILED_MARK, Redactor, _secret_redactor, find_secrets, known_secrets,  # noqa: F401
                                       mask_known, mask_secrets)

__all__ = ["BUILTIN", "DETECTORS", "Detector", "Facts", "Finding", "register_detector", "luhn_ok", "iban_ok",
           "Policy", "parse_policy", "KEY_ENV", "STYLES", "SCOPES", "GROUPS", "OPTIONAL_SECRETS",
           "Redactor", "FAILED_MARK", "mask_secrets", "find_secrets", "redactor_for", "policy_for",
           "SAFE_FIELDS", "redact", "mask_text", "mask_answer", "mask_messages", "redact_record", "known_secrets",
           "mask_known",
           "display_redactor", "mask_for_display", "for_display", "frame_for_display", "Preview", "preview"]

