"""Stored secrets are slow salted hashes (trust/kdf.py): scrypt with its cost parameters in the hash."""
from __future__ import annotations

import hashlib

import pytest

from llmops_lab.trust.kdf import N, P, R, hash_secret, needs_rehash, verify_secret


def test_a_hash_verifies_its_secret_only():
    stored = hash_secret("serve-key-0123456789")
    assert verify_secret("serve-key-0123456789", stored)
    assert not verify_secret("serve-key-012345678", stored) and not verify_secret("", stored)
    assert "serve-key" not in stored


def test_two_hashes_of_one_secret_differ_and_both_verify():
    a, b = hash_secret("same"), hash_secret("same")
    assert a != b and a.split("$")[4] != b.split("$")[4]  # a fresh salt each time
    assert verify_secret("same", a) and verify_secret("same", b)


def test_the_cost_is_in_the_hash_and_slow_enough():
    scheme, n, r, p, salt, digest = hash_secret("x").split("$")
    assert (scheme, int(n), int(r), int(p)) == ("scrypt", N, R, P)
    assert int(n) >= 2 ** 15 and int(r) >= 8  # 32 MiB and ~0.1 s per guess (not asserted as a time)
    assert 128 * int(r) * int(n) >= 32 * 2 ** 20
    assert len(salt) >= 22 and len(digest) >= 43  # 16 and 32 bytes, base64 without padding


def test_parameters_can_be_raised_later_and_old_hashes_still_verify():
    old = hash_secret("s3cret", n=2 ** 14)
    assert verify_secret("s3cret", old) and needs_rehash(old)
    assert not needs_rehash(hash_secret("s3cret"))
    # The stored hash is exactly scrypt of the stored parameters (anyone can check it with hashlib).
    _, n, r, p, salt, digest = old.split("$")
    import base64

    raw = hashlib.scrypt(b"s3cret", salt=base64.urlsafe_b64decode(salt + "=="), n=int(n), r=int(r), p=int(p),
                         dklen=32, maxmem=64 * 2 ** 20)
    assert base64.urlsafe_b64encode(raw).decode().rstrip("=") == digest


@pytest.mark.parametrize("stored", ["", "plain", "scrypt$1$8$1$AAAA$AAAA", "bcrypt$2$8$1$AAAA$AAAA",
                                    "scrypt$x$8$1$AAAA$AAAA", "scrypt$32768$8$1$AAAA"])
def test_a_malformed_hash_never_verifies(stored):
    assert verify_secret("anything", stored) is False and needs_rehash(stored)


def test_an_empty_secret_is_not_hashed():
    with pytest.raises(ValueError):
        hash_secret("")
