"""Encryption at rest of the files llmops-lab owns (spool lines, staged batch rows, cached answers), with the
project key ``LLMOPS_DATA_KEY`` from the environment (never a setting, never a file of ours).

>>> key = new_key()
>>> len(key), key_id(key) == key_id(key)
(44, True)
>>> token = seal("the answer", b"spool", key=key)
>>> token.startswith(PREFIX) and "answer" not in token
True
>>> open_text(token, b"spool", "a spool line", key=key)
'the answer'
>>> open_text("plain text from before the key", b"spool", "a spool line", key=key)
'plain text from before the key'

Without a key nothing changes (and :mod:`cryptography` is not imported): :func:`seal` returns the text as
it is. With one, each value becomes ``llmops-enc1:<key id>:<base64url(nonce + AES-256-GCM ciphertext)>``:
one line of ASCII, so a spool line stays a line. The key id (8 hex digits of a hash of the key) tells "no
key" and "another key" apart in the error. ``context`` is authenticated with the value (``b"spool"``,
``b"staging"``, the cache key), so a value moved to another place does not decrypt there.

Key format: 32 random bytes in urlsafe base64 (44 characters), made by ``llmops-lab data-key new``. Lose the
key and the encrypted spool lines, staged rows and cached answers are lost with it (MLflow's store is not
encrypted by us: docs/security.md "Transport and encryption").
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import threading
from typing import Any

from llmops_lab.exceptions import DataKeyError

ENV = "LLMOPS_DATA_KEY"
PREFIX = "llmops-enc1:"
NONCE_BYTES = 12  # AES-GCM's standard nonce, random per value (NIST: up to 2^32 random nonces per key)
KEY_HINT = "make one with `llmops-lab data-key new` and export it in the shell that starts Jupyter"
log = logging.getLogger("llmops_lab.trust")

_lock = threading.Lock()
_ciphers: dict[str, tuple[str, Any]] = {}  # key text -> (key id, AESGCM), parsed once per process
_warned: set[str] = set()


def new_key() -> str:
    """A fresh data key: 32 random bytes, urlsafe base64."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode("ascii")


def _raw_key(key: str) -> bytes:
    text = key.strip()
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32 or not text.replace("-", "").replace("_", "").rstrip("=").isalnum():
        raise DataKeyError(f"{ENV} is not a data key (32 random bytes in urlsafe base64, 44 characters): "
                           f"{KEY_HINT}")
    return raw


def key_id(key: str) -> str:
    """8 hex digits naming a key without revealing it (a hash: 32 bits of a 256-bit key's digest)."""
    return hashlib.sha256(b"llmops-data-key-id:" + _raw_key(key)).hexdigest()[:8]


def _cipher(key: str) -> tuple[str, Any]:
    found = _ciphers.get(key)
    if found is None:
        with _lock:
            raw = _raw_key(key)
            from cryptography.hazmat.primitives.ciphers.aead import (
                AESGCM,  # only with a key: no cost without
            )

            found = _ciphers[key] = (key_id(key), AESGCM(raw))
    return found


def current_key() -> str | None:
    """``LLMOPS_DATA_KEY`` of this process's environment, or None (read on every use: cheap, and a key
    exported later, or a test's monkeypatch, takes effect at once)."""
    return os.environ.get(ENV) or None


def check_key() -> None:
    """A malformed ``LLMOPS_DATA_KEY`` is a one-line :class:`DataKeyError` now, before any paid call."""
    key = current_key()
    if key is not None:
        _cipher(key)


def seal(text: str, context: bytes, *, key: str | None = None) -> str:
    """``text`` encrypted with ``key`` (default: the environment's), or ``text`` itself when there is no key."""
    key = key or current_key()
    if key is None:
        return text
    kid, aead = _cipher(key)
    nonce = os.urandom(NONCE_BYTES)
    blob = nonce + aead.encrypt(nonce, text.encode("utf-8"), context)
    return f"{PREFIX}{kid}:{base64.urlsafe_b64encode(blob).decode('ascii')}"


def is_sealed(text: object) -> bool:
    return isinstance(text, str) and text.startswith(PREFIX)


def open_text(text: str, context: bytes, where: str, *, key: str | None = None) -> str:
    """The plaintext of a value :func:`seal` made; a value written before the key was set comes back as it
    is (migration). No key, another key or a damaged value: a one-line :class:`DataKeyError` naming
    ``where``; the caller keeps what it read."""
    if not text.startswith(PREFIX):
        return text
    key = key or current_key()
    kept = "it is kept, nothing was dropped"
    if key is None:
        raise DataKeyError(f"{where} is encrypted at rest: set {ENV} to the key it was written with; {kept}")
    kid, aead = _cipher(key)
    stored_id, _, body = text[len(PREFIX):].partition(":")
    if stored_id != kid:
        raise DataKeyError(f"{where} was encrypted with another {ENV} (key id {stored_id}; this one is {kid}): "
                           f"set the key it was written with; {kept}")
    from cryptography.exceptions import InvalidTag

    try:
        blob = base64.urlsafe_b64decode(body.strip())
        return aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], context).decode("utf-8")
    except (InvalidTag, binascii.Error, ValueError):
        raise DataKeyError(f"{where} does not decrypt with {ENV} (key id {kid}): it is damaged or was moved; "
                           f"{kept}") from None


def open_or_none(text: str, context: bytes, where: str) -> str | None:
    """:func:`open_text`, or None (logged once per kind of failure) when it cannot be decrypted: for caches,
    where an unreadable value is a miss, never an error."""
    try:
        return open_text(text, context, where)
    except DataKeyError as err:
        reason = str(err).split(":", 1)[0]
        if reason not in _warned:
            _warned.add(reason)
            log.warning("%s; treated as a miss", err)
        return None
