"""Masking what is stored or sent, under the settings' policy: texts (:func:`mask_text`; :func:`mask_answer`
for cached answers, with the secrets of their prompt in any form),
messages (:func:`mask_messages`, scope ``send``) and spool records (:func:`redact_record`). Fail closed: a
failure masks everything (or, for sending, sends nothing); never raw.
"""
from __future__ import annotations

from collections import Counter
from typing import Any, Callable, Iterable

from llmops_lab.exceptions import RedactionError
from llmops_lab.trust.active import redactor_for
from llmops_lab.trust.detectors import Finding, secret_name
from llmops_lab.trust.redactor import FAILED_MARK, Redactor, known_secrets, mask_known

__all__ = ["SAFE_FIELDS", "redact", "mask_text", "mask_answer", "mask_messages", "redact_record"]

# Record fields that are identifiers or structure, never user content (kept as is).
SAFE_FIELDS = frozenset({"id", "v", "kind", "batch", "chunk", "chunks", "experiment", "notebook", "cell_id",
                         "user", "project_root", "model", "provider", "model_name", "endpoint_host", "start_ns",
                         "end_ns", "usage", "latency_ms", "cost_usd", "retries", "finish_reason", "summary",
                         "batch_params", "dataset", "redaction", "audit",
                         "conversation"})  # conversation: uuid, a checked name, turn numbers


def redact(text: str, settings: Any = None) -> tuple[str, list[Finding]]:
    """``(masked, findings)`` under the settings' policy."""
    return redactor_for(settings).redact(text)


def mask_text(text: str | None, settings: Any = None) -> str | None:
    """Masked text for storage; on any failure the whole text is replaced (fail closed)."""
    if text is None:
        return None
    try:
        return redactor_for(settings).mask(text)
    except Exception:  # noqa: BLE001 - fail closed: never store raw
        return FAILED_MARK



def mask_answer(text: str | None, asked: Iterable[str] = (), settings: Any = None) -> str | None:
    """:func:`mask_text` for a model's answer, which also masks the secrets of ``asked`` (the texts it was
    sent) where the answer repeats them in another form (re-cased, spaced, quoted). Fail closed."""
    if text is None:
        return None
    try:
        redactor = redactor_for(settings)
        known: dict[str, str] = {}
        for question in asked:
            known.update(known_secrets(question, redactor.redact(question)[1]))
        return mask_known(redactor.mask(text), known)[0]
    except Exception:  # noqa: BLE001 - fail closed: never store raw
        return FAILED_MARK


def mask_messages(messages: list[dict[str, Any]], settings: Any = None, *,
                  redactor: Redactor | None = None) -> list[dict[str, Any]]:
    """Messages with masked contents, for sending (scope ``send``). Raises RedactionError: nothing is sent."""
    try:
        redactor = redactor or redactor_for(settings)
        return [{**m, "content": redactor.mask(m["content"])} if isinstance(m.get("content"), str) else m
                for m in messages]
    except Exception as err:  # noqa: BLE001
        raise RedactionError(f"redaction failed ({type(err).__name__}) with scope 'send': nothing was sent; fix "
                             "the redaction settings or use scope = 'log'") from None


def _walk(value: Any, fn: Callable[[str, str | None], str], name: str | None = None) -> Any:
    """``value`` with every string replaced by ``fn(text, name)``; ``name`` is the dict key it is under."""
    if isinstance(value, str):
        return fn(value, name)
    if isinstance(value, dict):
        return {k: _walk(v, fn, k if isinstance(k, str) else None) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_walk(v, fn, name) for v in value]
    return value


def redact_record(record: dict[str, Any], settings: Any = None) -> dict[str, Any]:
    """A copy of a spool record with every user-content string masked; never raises, never returns raw.

    Every secret found anywhere in the record is then searched for in every other content string in another
    form (:func:`~llmops_lab.trust.redactor.mask_known`: re-cased, split by whitespace, quoted), so an answer
    that repeats a key of its prompt as ``3F2A 9C01 ...`` is masked too (counted as ``altered_secret``).
    Identifiers and structure (``SAFE_FIELDS``) are kept; the prompt's name and hash are kept, its template
    masked. ``record["redaction"]`` says what happened: ``{"status": "ok", "scope", "counts"}`` or
    ``{"status": "failed", "error"}`` with every content string replaced by ``FAILED_MARK``.
    """
    counts: Counter = Counter()
    try:
        redactor = redactor_for(settings)
        known: dict[str, str] = {}

        def mask(text: str, name: str | None) -> str:
            # A value under a secret's name ({"api_key": "3f2a..."}, a column "password") is read as
            # "name: value", so the keyword detectors see the name a bare value lacks.
            prefix = f"{name}: " if name and secret_name(name) else ""
            masked, findings = redactor.redact(prefix + text)
            if not masked.startswith(prefix):  # the name itself was masked: the value alone, then
                prefix = ""
                masked, findings = redactor.redact(text)
            counts.update(f.detector for f in findings)
            known.update(known_secrets(prefix + text, findings))
            return masked[len(prefix):]

        def mask_altered(text: str, _name: str | None) -> str:
            masked, count = mask_known(text, known)
            if count:
                counts["altered_secret"] += count
            return masked

        out = _mask_fields(record, mask)
        if known:  # a secret of the prompt repeated in the answer in another form (re-cased, spaced, quoted)
            out = _mask_fields(out, mask_altered)
        out["redaction"] = {"status": "ok", "scope": redactor.policy.scope, "style": redactor.policy.style,
                            "counts": dict(sorted(counts.items()))}
        return out
    except Exception as err:  # noqa: BLE001 - fail closed
        out = _mask_fields(record, lambda _text, _name: FAILED_MARK)
        out["redaction"] = {"status": "failed", "error": type(err).__name__}
        return out


def _mask_fields(record: dict[str, Any], fn: Callable[[str, str | None], str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in record.items():
        if key in SAFE_FIELDS:
            out[key] = value
        elif key == "prompt" and isinstance(value, dict):
            out[key] = {**value, "template": _walk(value.get("template"), fn)}  # not under a name
        else:
            out[key] = _walk(value, fn, key)
    return out

