"""Password-like values we store (a future ``llmops-lab serve`` key, anything a user logs in with) are kept
only as a slow, salted hash: scrypt from :mod:`hashlib`, never the value itself.

>>> stored = hash_secret("correct horse battery staple")
>>> stored.split("$")[:4]
['scrypt', '32768', '8', '1']
>>> verify_secret("correct horse battery staple", stored), verify_secret("wrong", stored)
(True, False)

The form is ``scrypt$n$r$p$salt$hash`` (salt and hash urlsafe base64): the cost parameters travel with
each hash, so they can be raised later (:func:`needs_rehash`) and old hashes still verify. scrypt with n=2^15,
r=8 uses 32 MiB and about 0.1 s of CPU per hash: cheap for one login, expensive for a guessing attack on a
stolen file. The MLflow team server's user passwords are hashed by MLflow itself (werkzeug, also scrypt).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os

N, R, P = 2 ** 15, 8, 1  # OWASP's scrypt minimum is n=2^17 at r=8 for 128 MiB; 2^15 keeps 2 cores responsive
SALT_BYTES = 16
HASH_BYTES = 32
SCHEME = "scrypt"


def _scrypt(secret: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    # maxmem: scrypt needs 128*r*n bytes (+ a little); OpenSSL's default cap (32 MiB) refuses exactly n=2^15.
    return hashlib.scrypt(secret.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=HASH_BYTES,
                          maxmem=256 * r * n + (1 << 20))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_secret(secret: str, *, n: int = N, r: int = R, p: int = P) -> str:
    """``scrypt$n$r$p$salt$hash`` of ``secret`` with a fresh random salt (two hashes of one value differ)."""
    if not isinstance(secret, str) or not secret:
        raise ValueError("hash_secret needs a non-empty str")
    salt = os.urandom(SALT_BYTES)
    return "$".join((SCHEME, str(n), str(r), str(p), _b64(salt), _b64(_scrypt(secret, salt, n, r, p))))


def _parse(stored: str) -> tuple[int, int, int, bytes, bytes] | None:
    parts = stored.split("$") if isinstance(stored, str) else []
    if len(parts) != 6 or parts[0] != SCHEME:
        return None
    try:
        n, r, p = (int(v) for v in parts[1:4])
        return n, r, p, _unb64(parts[4]), _unb64(parts[5])
    except ValueError:
        return None


def verify_secret(secret: str, stored: str) -> bool:
    """Whether ``secret`` hashes to ``stored`` (with the parameters stored in it); a malformed ``stored`` is
    False. The comparison takes the same time wherever the hashes differ."""
    parsed = _parse(stored)
    if parsed is None or not isinstance(secret, str):
        return False
    n, r, p, salt, expected = parsed
    try:
        return hmac.compare_digest(_scrypt(secret, salt, n, r, p), expected)
    except ValueError:  # parameters scrypt refuses (n not a power of 2 ...): not a hash we made
        return False


def needs_rehash(stored: str, *, n: int = N, r: int = R, p: int = P) -> bool:
    """True when ``stored`` was made with weaker parameters than today's: hash the value again at the next
    successful login.

    >>> needs_rehash(hash_secret("s3cret", n=2 ** 14))
    True
    """
    parsed = _parse(stored)
    return parsed is None or parsed[0] < n or parsed[1] < r or parsed[2] < p
