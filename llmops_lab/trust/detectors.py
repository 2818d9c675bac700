"""Redaction detectors: the registry (:func:`register_detector`, registration order is priority), the
built-in secret and PII detectors with their validators and finders, and the optional presidio detectors.

Pure: regexes are compiled once, at import; nothing here reads settings or the environment.
"""
from __future__ import annotations

import ipaddress
import math
import re
import threading
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Iterable, Iterator

from llmops_lab.exceptions import ConfigError

__all__ = ["Finding", "Facts", "Detector", "DETECTORS", "BUILTIN", "register_detector", "luhn_ok", "iban_ok",
           "secret_name"]


@dataclass(frozen=True)
class Finding:
    """One masked value: which detector, where in the original text, and what replaced it (never the value)."""

    detector: str
    category: str  # "secret" | "pii"
    start: int
    end: int
    replacement: str


_DIGIT_RUN = re.compile(r"\d[\d .\-()/:]{5,}")  # 6+ characters: NINO digits (123456) are the shortest


class Facts:
    """Cheap facts about one text, computed once and shared by the detectors' pre-checks."""

    __slots__ = ("text", "_lowered", "_digits", "_longest", "_runs", "_short_runs")

    def __init__(self, text: str):
        self.text = text
        self._lowered: str | None = None
        self._digits = -1
        self._longest = -1
        self._runs: list[tuple[int, int]] | None = None
        self._short_runs: list[tuple[int, int]] | None = None

    @property
    def lowered(self) -> str:
        """``text.lower()`` when it keeps every index (else the text itself, case-insensitive checks fall back)."""
        if self._lowered is None:
            low = self.text.lower()
            self._lowered = low if len(low) == len(self.text) else self.text
        return self._lowered

    @property
    def digits(self) -> int:
        if self._digits < 0:
            self._digits = sum(map(self.text.count, "0123456789"))
        return self._digits

    @property
    def digit_runs(self) -> list[tuple[int, int]]:
        """Spans of 7+ characters of digits and separators (where cards, phones, IPs, SSNs and IBAN digits live)."""
        if self._runs is None:
            self._runs = [(s, e) for s, e in self.short_digit_runs if e - s >= 7]
        return self._runs

    @property
    def short_digit_runs(self) -> list[tuple[int, int]]:
        """The same from 6 characters (the six digits of a NINO); the 7+ runs are these, filtered by length."""
        if self._short_runs is None:
            self._short_runs = [m.span() for m in _DIGIT_RUN.finditer(self.text)]
        return self._short_runs

    @property
    def longest(self) -> int:
        """Length of the longest whitespace-free run."""
        if self._longest < 0:
            self._longest = max(map(len, self.text.split()), default=0)
        return self._longest


@dataclass(frozen=True)
class Detector:
    """A named detector: a regex (``group`` is the part to mask) with an optional validator, or a finder.

    ``hints``: substrings of which one must be in the lowered text; ``precheck``: a cheap test on
    :class:`Facts`. Both only skip work: they never change what a detector finds.
    """

    name: str
    category: str
    label: str
    pattern: re.Pattern | None = None
    group: int = 0
    validate: Callable[[str], bool] | None = None
    finder: Callable[[Facts], Iterable[tuple[int, int]]] | None = None
    hints: tuple[str, ...] = ()
    precheck: Callable[[Facts], bool] | None = None
    lowered: bool = False  # run the pattern on the lowered text (a case-insensitive match, faster than (?i))
    word_start: bool = False  # the match must not follow a letter, digit or '_' (a \b kept out of the regex,
    #                           so that a literal-first pattern gets re's fast literal search)

    def spans(self, facts: Facts) -> Iterator[tuple[int, int]]:
        if self.precheck is not None and not self.precheck(facts):  # first: its facts are shared and cached
            return
        if self.hints and not any(h in facts.lowered for h in self.hints):
            return
        text = facts.text
        if self.finder is not None:
            yield from self.finder(facts)
            return
        assert self.pattern is not None
        haystack = facts.lowered if self.lowered and facts.lowered is not text else text
        if self.lowered and haystack is text:  # lowering changed lengths: match case-insensitively instead
            matches = re.compile(self.pattern.pattern, self.pattern.flags | re.IGNORECASE).finditer(text)
        else:
            matches = self.pattern.finditer(haystack)
        for match in matches:
            if self.word_start and match.start() and (text[match.start() - 1].isalnum()
                                                      or text[match.start() - 1] == "_"):
                continue
            start, end = match.span(self.group)
            if start < end and (self.validate is None or self.validate(text[start:end])):
                yield start, end


DETECTORS: dict[str, Detector] = {}


def register_detector(name: str, pattern: str | re.Pattern | None = None, *, category: str = "pii",
                      label: str | None = None, group: int = 0, validate: Callable[[str], bool] | None = None,
                      finder: Callable[["Facts"], Iterable[tuple[int, int]]] | None = None,
                      hints: Iterable[str] = (), precheck: Callable[[Facts], bool] | None = None,
                      lowered: bool = False, word_start: bool = False, flags: int = 0) -> Detector:
    """Add a detector to the registry (``category`` "secret" or "pii"); registration order is priority."""
    if category not in ("secret", "pii"):
        raise ConfigError(f"detector {name!r}: category must be 'secret' or 'pii', not {category!r}")
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise ConfigError(f"detector name {name!r} is invalid: use lowercase letters, digits and '_'")
    if (pattern is None) == (finder is None):
        raise ConfigError(f"detector {name!r} needs exactly one of pattern or finder")
    compiled = None
    if pattern is not None:
        try:
            compiled = pattern if isinstance(pattern, re.Pattern) else re.compile(pattern, flags)
        except re.error as err:
            raise ConfigError(f"detector {name!r}: invalid regular expression: {err}") from None
    detector = Detector(name, category, label or name.upper(), compiled, group, validate, finder, tuple(hints),
                        precheck, lowered, word_start)
    DETECTORS[name] = detector
    return detector


# -- validators --------------------------------------------------------------------------------------

def luhn_ok(text: str) -> bool:
    """Luhn checksum of the digits in ``text`` (13 to 19 of them), as on payment cards."""
    digits = [int(c) for c in text if c.isdigit()]
    if not 13 <= len(digits) <= 19 or len(set(digits)) == 1:
        return False
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def iban_ok(text: str) -> bool:
    """ISO 13616 mod-97 check of an IBAN (spaces ignored)."""
    s = text.replace(" ", "").upper()
    if not 15 <= len(s) <= 34 or not s[:2].isalpha() or not s[2:4].isdigit() or not s.isalnum():
        return False
    rearranged = s[4:] + s[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b")


def _iban_spans(facts: "Facts") -> Iterator[tuple[int, int]]:
    """IBANs around runs of digits; when words follow the number, shorten group by group until the
    checksum holds."""
    text, seen = facts.text, set()
    for run_start, run_end in facts.digit_runs:
        lo = max(0, run_start - 36)
        while lo > 0 and text[lo - 1].isalnum():  # start the window at a word boundary
            lo -= 1
        window = text[lo:min(len(text), run_end + 8)]
        for match in _IBAN.finditer(window):
            start = lo + match.start()
            candidate = match.group()
            while candidate and start not in seen:
                if iban_ok(candidate):
                    seen.add(start)
                    yield start, start + len(candidate)
                    break
                if " " not in candidate[5:]:
                    break
                candidate = candidate[:candidate.rfind(" ")]


def _ip_ok(text: str) -> bool:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False
    return not (address.version == 6 and text.count(":") < 2)


def _phone_ok(text: str) -> bool:
    digits = sum(c.isdigit() for c in text)
    if text.startswith("0"):  # a national number: 10 to 12 digits with the trunk 0 (shorter: dates, codes)
        return 10 <= digits <= 12
    return 7 <= digits <= 15


def _entropy(text: str) -> float:
    counts = Counter(text)
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def _high_entropy_ok(text: str) -> bool:
    """A random-looking token: mixed case and digits, high per-character entropy (not a word or a hex hash)."""
    digits = sum(c.isdigit() for c in text)
    if digits < 2 or not any(c.islower() for c in text) or not any(c.isupper() for c in text):
        return False
    if text.startswith(("http", "www")) or text.count("/") > 3:  # paths and URLs
        return False
    # Random strings switch between upper, lower, digit and symbol at ~60 % of positions; CamelCase names
    # and snake_case paths (customer_reviews_2024_Q3, getUserById2024Version) at ~30-38 %.
    switches = sum(_kind(a) != _kind(b) for a, b in zip(text, text[1:])) / (len(text) - 1)
    return switches >= 0.4 and _entropy(text) >= min(4.0, math.log2(len(text)) - 0.7)


def _kind(c: str) -> int:
    return 0 if c.isupper() else 1 if c.islower() else 2 if c.isdigit() else 3


# -- finders for the detectors whose regex alone would be slow or too loose ---------------------------------

_EMAIL_DOMAIN = re.compile(r"@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}\b")
_EMAIL_LOCAL = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._%+-")


def _email_spans(facts: "Facts") -> Iterator[tuple[int, int]]:
    """Anchored on the '@' (rare), then the local part is walked back: no scan from every word."""
    text = facts.text
    for match in _EMAIL_DOMAIN.finditer(text):
        start = match.start()
        while start > 0 and text[start - 1] in _EMAIL_LOCAL:
            start -= 1
        if start < match.start() and not _scp_host(text, start, match.end()):
            yield start, match.end()


def _scp_host(text: str, start: int, end: int) -> bool:
    """``git@github.com:org/repo.git``: a user and host in an scp-style path, not an address."""
    return text.startswith(":", end) and text[start:text.index("@", start)] in ("git", "hg", "ubuntu", "ec2-user")


_CARD = re.compile(r"\d(?:[ \-]?\d){12,18}")


def _card_spans(facts: "Facts") -> Iterator[tuple[int, int]]:
    text = facts.text
    for run_start, run_end in facts.digit_runs:
        for match in _CARD.finditer(text, run_start, run_end):
            yield from _card_check(text, *match.span())


def _card_check(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    if True:
        if (start and (text[start - 1].isdigit() or text[start - 1] == "-")) or \
                (end < len(text) and (text[end].isdigit() or text[end] == "-")):
            return
        if luhn_ok(text[start:end]) and _card_number_ok("".join(c for c in text[start:end] if c.isdigit())):
            yield start, end


def _card_number_ok(digits: str) -> bool:
    """A length and leading digits that a card scheme issues (Visa, Mastercard, Amex, Diners, Discover, JCB,
    UnionPay): a 17-digit tracking number or an ISBN that happens to pass Luhn is not a card."""
    n, first = len(digits), digits[0]
    if first == "4":
        return n in (13, 16, 19)
    if first in "25":
        return n == 16 and (first == "5" and digits[1] in "12345" or "2221" <= digits[:4] <= "2720")
    if digits[:2] in ("34", "37"):
        return n == 15
    if digits[:2] in ("30", "36", "38"):
        return n in (14, 16)
    return first in "36" and 16 <= n <= 19


_IPV4 = re.compile(r"(?<![\w.])\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}(?![\w.])")
_HEXCOLON = frozenset("0123456789abcdefABCDEF:")


def _ip_spans(facts: "Facts") -> Iterator[tuple[int, int]]:
    text = facts.text
    if text.count(".") >= 3:
        for run_start, run_end in facts.digit_runs:
            for match in _IPV4.finditer(text, run_start, run_end):
                if _ip_ok(match.group()):
                    yield match.span()
    if text.count(":") >= 2:  # IPv6: grow each run of hex digits and colons around a colon
        i = text.find(":")
        while i != -1:
            start, end = i, i
            while start > 0 and text[start - 1] in _HEXCOLON:
                start -= 1
            while end < len(text) and text[end] in _HEXCOLON:
                end += 1
            candidate = text[start:end]
            before = text[start - 1] if start else " "
            after = text[end] if end < len(text) else " "
            if candidate.count(":") >= 2 and not (before.isalnum() or before in "._") and \
                    not (after.isalnum() or after == "_") and _ip_ok(candidate):
                yield start, end
            i = text.find(":", end + 1)


# Random by construction but not secret: inline data (data:...;base64,) and integrity digests (sha512-...).
_ENCODED_DATA = ("base64,", "sha256-", "sha384-", "sha512-")
_TOKEN = re.compile(r"(?<![A-Za-z0-9+/_\-])[A-Za-z0-9+/_\-]{24,}={0,2}(?![A-Za-z0-9+/_\-])")


def _encoded_data(word: str, start: int) -> bool:
    return word.endswith(_ENCODED_DATA, 0, start) or word.startswith(_ENCODED_DATA[1:], start)


def _high_entropy_spans(facts: "Facts") -> Iterator[tuple[int, int]]:
    """Random-looking tokens, searched only inside whitespace-free runs of 24+ characters (rare in prose)."""
    text, pos = facts.text, 0
    for word in text.split():
        if len(word) < 24:
            continue
        at = text.find(word, pos)
        pos = at + len(word)
        for match in _TOKEN.finditer(word):
            if _high_entropy_ok(match.group()) and not _encoded_data(word, match.start()):
                yield at + match.start(), at + match.end()


# International (+CC ...), North-American, and national numbers with a trunk 0 and a separator after the area
# code (020 7946 0958, 06 12 34 56 78, 030 12345678, 089/1234567): _phone_ok counts their digits.
_PHONE = re.compile(r"\+\d{1,3}[\s.\-]?(?:\(\d{1,4}\)[\s.\-]?)?\d{1,4}(?:[\s.\-]?\d{2,4}){1,4}"
                    r"|\(\d{3}\)\s?\d{3}[\s.\-]\d{4}|(?<!\d)\d{3}[\s.\-]\d{3}[\s.\-]\d{4}"
                    r"|(?<![\d.])0[1-9]\d{0,3}[ ./\-]\d{2,8}(?:[ .\-]\d{2,4}){0,3}(?![\d.\-/])")


def _phone_spans(facts: "Facts") -> Iterator[tuple[int, int]]:
    """International (+CC ...) and North-American numbers, inside runs of digits and separators."""
    text = facts.text
    for run_start, run_end in facts.digit_runs:
        offset = run_start - 1 if run_start and text[run_start - 1] in "+(" else run_start
        if offset and (text[offset - 1].isalnum() or text[offset - 1] == "+"):
            continue
        for match in _PHONE.finditer(text[offset:run_end]):
            end = offset + match.end()
            if end < len(text) and (text[end].isalnum() or text[end] == "_"):
                continue
            if _phone_ok(match.group()):
                yield offset + match.start(), end


_SSN = re.compile(r"(?<![\w\-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\w\-])")
_SSN_LABELLED = re.compile(r"(?:ssn|social security (?:number|no\.?))[\s:#=\"']{1,4}"
                           r"((?!000|666|9\d\d)\d{3}[ ]?(?!00)\d{2}[ ]?(?!0000)\d{4})(?!\d)", re.IGNORECASE)


def _ssn_spans(facts: Facts) -> Iterator[tuple[int, int]]:
    """US Social Security numbers: dashed anywhere, undashed only after "SSN". Never issued: area 000, 666 or
    9xx, group 00, serial 0000."""
    for run_start, run_end in facts.digit_runs:
        if facts.text.find("-", run_start, run_end) != -1:
            for match in _SSN.finditer(facts.text, max(0, run_start - 1), min(len(facts.text), run_end + 1)):
                yield match.span()
    probe = facts.lowered if facts.lowered is not facts.text else facts.text.lower()  # only a probe: no indices
    if "ssn" in probe or "social security" in probe:
        for match in _SSN_LABELLED.finditer(facts.text):
            yield match.span(1)


# UK National Insurance number: two letters (not D, F, I, Q, U, V; no O second; not BG GB KN NK NT TN ZZ),
# six digits (pairs may be spaced) and A-D.
_NINO = re.compile(r"[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d\d ?\d\d ?\d\d ?[A-D](?![A-Za-z0-9])")


_NINO_NEVER = ("BG", "GB", "KN", "NK", "NT", "TN", "ZZ")  # prefixes never issued


def _nino_spans(facts: Facts) -> Iterator[tuple[int, int]]:
    """NINOs around runs of digits: the letters are at most 3 characters before the run."""
    text = facts.text
    for run_start, run_end in facts.short_digit_runs:
        letter = run_start - 2 if text[run_start - 1:run_start] == " " else run_start - 1
        if letter < 1 or not text[letter].isupper():  # cheap: most runs (ids, times, prices) follow no letter
            continue
        for match in _NINO.finditer(text, max(0, run_start - 3), min(len(text), run_end + 2)):
            start, end = match.span()
            if (start and (text[start - 1].isalnum() or text[start - 1] == "_")) or \
                    (end < len(text) and text[end].isalnum()) or text[start:start + 2] in _NINO_NEVER:
                continue  # inside a word (the window's edges hide it from the regex), or never issued
            yield start, end


# Keyword assignments as config files, code, JSON, XML, CLI flags and prose write them. The keyword may end a
# longer name (DB_PASSWORD, AZURE_OPENAI_API_KEY); the value must not be a reference to one (see _keyword_value_ok).
_KEYWORDS = (r"passwords?|passwd|pwd|passphrase|passwort|kennwort|contrase[ñn]a|mot de passe|(?:db|database|smtp|mysql|redis)[_-]?pass|secret(?:[_-]?key)?"
             r"|client[_-]?secret|api[_ -]?key|apikey|x-api-key|access[_-]?(?:key|token)|auth[_-]?(?:token|key)"
             r"|_?authtoken|token|refresh[_-]?token|private[_-]?key|signing[_-]?key|encryption[_-]?key"
             r"|credentials?")
_VALUE = r"([^\s\"'`,;<>]{6,})"
# Assignments are found from a keyword's last letters and the separator after them (":", "=", ">"), then the
# whole keyword is checked before it: one fast scan of the text, and a regex run only where a key ends.
_SEPARATOR = re.compile(r"(?:words?|wd|phrase|pass|passe|wort|contrase[ñn]a|secret|key|token|credentials?)[\"']?[ \t]*([:=>])")  # a key's end
_KEYWORD_BEFORE = re.compile(rf"(?<![a-z0-9])(?P<kw>{_KEYWORDS})[\"']?[ \t]*\Z")  # key = v, "key": "v", <key>v
_VALUE_AFTER = re.compile(rf"[=>]?[ \t]*[\"']?{_VALUE}")  # after the separator (also := and =>)
_FLAG = re.compile(rf"--(?P<kw>{_KEYWORDS})[ =]{_VALUE}")  # --password v
_PROSE = re.compile(rf"(?P<kw>pass(?:word|phrase|code)) (?:is|was|=) {_VALUE}")  # the password is v
_SECRET_NAME = re.compile(rf"(?<![a-z0-9])(?:{_KEYWORDS})\Z")


@lru_cache(maxsize=4096)  # field and column names repeat on every record
def secret_name(name: str) -> bool:
    """Whether a field or column name says its value is a secret (``api_key``, ``DB_PASSWORD``,
    ``access_token``). A bare ``token`` is not: a dataset's column of words is as likely as a credential."""
    low = name.lower()
    return len(name) < 64 and low != "token" and _SECRET_NAME.search(low) is not None


_REFERENCE_PREFIXES = ("os.", "env.", "process.env", "settings.", "config.", "self.", "request.", "secrets.",
                       "getenv", "vault:", "http://", "https://", "/", "~/", "./", "../")  # references, paths
_PLACEHOLDERS = frozenset({"none", "null", "true", "false", "undefined", "required", "optional", "string",
                           "redacted", "example", "changeit", "secret", "password", "bearer", "basic"})
_NAME_WORDS = re.compile(r"[a-z_]*(?:pass|pwd|token|secret|key|credential)[a-z_]*")  # with a '_': new_password


def _keyword_value_ok(keyword: str, value: str, prose: bool = False) -> bool:
    """A literal that could be the secret: not a reference (${X}, os.environ[...], get_token(), a path, a
    variable such as new_password), a mask (********), a placeholder (your_token_here), or a count
    (token: 512000). In prose ("the password is ...") only a value with a digit or a symbol counts."""
    low = value.lower().rstrip(".")
    if value[0] in "${%*[(<#&" or any(c in value for c in "([{") or low.startswith(_REFERENCE_PREFIXES):
        return False
    if low in _PLACEHOLDERS or len(set(low)) <= 2 or ('_' in low and _NAME_WORDS.fullmatch(low)):
        return False
    if (prose or keyword == "token") and value.isalpha() and (value.islower() or value.isupper() or prose):
        return False  # "the password is incorrect", "token: running" (a word, in NLP data)
    return not (low.isdigit() and ("token" in keyword or "key" in keyword))


_ANY_CASE = {p: re.compile(p.pattern, re.IGNORECASE) for p in (_SEPARATOR, _KEYWORD_BEFORE, _VALUE_AFTER, _FLAG,
                                                                 _PROSE)}


def _keyword_spans(facts: Facts) -> Iterator[tuple[int, int]]:
    """Values after a secret keyword, matched on the lowered text (indices shared with the original)."""
    text, lowered = facts.text, facts.lowered
    any_case = (lambda p: _ANY_CASE[p]) if lowered is text else (lambda p: p)  # lowering moved indices
    keyword_before, value_after = any_case(_KEYWORD_BEFORE), any_case(_VALUE_AFTER)
    for separator in any_case(_SEPARATOR).finditer(lowered):
        at = separator.start(1)
        if lowered.startswith("==", at):  # a comparison (password == confirm), not an assignment
            continue
        keyword = keyword_before.search(lowered, max(0, at - 40), at)
        value = keyword and value_after.match(lowered, at + 1)
        if value and _keyword_value_ok(keyword.group("kw").lower(), text[value.start(1):value.end(1)]):
            yield value.span(1)
    for pattern, hint in ((_FLAG, "--"), (_PROSE, "pass")):
        if hint in lowered:
            for match in any_case(pattern).finditer(lowered):
                start, end = match.span(2)
                if pattern is _PROSE and match.start() and lowered[match.start() - 1].isalnum():
                    continue  # inside a word ("bypassword is")
                end -= pattern is _PROSE and text[end - 1] == "."  # the end of the sentence
                if _keyword_value_ok(match.group("kw").lower(), text[start:end], prose=pattern is _PROSE):
                    yield start, end


_HEX_KEY = re.compile(r"(?:key\d?|token|secret)[\"'\s:=]{0,5}([0-9a-f]{64}|[0-9a-f]{32})(?![0-9a-z])")
_HEX_KEY_ANY_CASE = re.compile(_HEX_KEY.pattern, re.IGNORECASE)
_KEY_QUALIFIERS = ("api", "subscription", "azure", "openai", "access", "secret", "account", "auth", "service",
                   "primary", "secondary", "client", "master", "admin", "x-")


def _hex_key_spans(facts: Facts) -> Iterator[tuple[int, int]]:
    """A 32- or 64-hex key after a key word (Azure OpenAI and Cognitive Services keys, Twilio auth tokens). Hex
    alone is too common (hashes, ids): after a bare "key" a qualifier must come first ("api key", not "cache
    key")."""
    lowered = facts.lowered
    pattern = _HEX_KEY_ANY_CASE if lowered is facts.text else _HEX_KEY  # lowering moved indices
    for match in pattern.finditer(lowered):
        if lowered[match.start():match.start() + 3].lower() == "key":
            before = lowered[max(0, match.start() - 40):match.start()].lower()
            if not any(q in before for q in _KEY_QUALIFIERS):
                continue
        yield match.span(1)


# -- the built-in registry (order = priority when spans overlap: key formats first) -------------------

register_detector("private_key", r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?"
                  r"(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|\Z)", category="secret",
                  label="PRIVATE_KEY", hints=("private key",))
register_detector("anthropic_key", r"sk-ant-[A-Za-z0-9_\-]{20,}", category="secret", label="ANTHROPIC_KEY",
                  hints=("sk-ant-",), word_start=True)
register_detector("openai_key", r"sk-(?:proj-|svcacct-|admin-|None-)?[A-Za-z0-9_\-]{20,}", category="secret",
                  label="OPENAI_KEY", hints=("sk-",), word_start=True)
register_detector("aws_access_key", r"A(?:KIA|SIA|BIA|CCA)[0-9A-Z]{16}\b", category="secret",
                  label="AWS_ACCESS_KEY", hints=("akia", "asia", "abia", "acca"), word_start=True)
register_detector("aws_secret_key", r"aws.{0,20}?(?:secret|private).{0,20}?[\"'\s:=]+([a-z0-9/+=]{40})(?![a-z0-9/+=])",
                  category="secret", label="AWS_SECRET_KEY", group=1, hints=("aws",), lowered=True)
register_detector("github_token", r"g(?:h[pousr]_[A-Za-z0-9]{36,255}|ithub_pat_[A-Za-z0-9_]{22,255})\b",
                  category="secret", label="GITHUB_TOKEN", word_start=True, hints=("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"))
register_detector("slack_token", r"\bxox[abposre]-[A-Za-z0-9-]{10,}|https://hooks\.slack\.com/services/[A-Za-z0-9/_-]+",
                  category="secret", label="SLACK_TOKEN", hints=("xox", "hooks.slack.com"))
register_detector("gitlab_token", r"gl(?:pat|dt|rt|ptt|cbt|oas|soat|ft|imt|agent)-[A-Za-z0-9_\-]{20,}",
                  category="secret", label="GITLAB_TOKEN", word_start=True, precheck=lambda f: f.longest >= 25)
register_detector("webhook_url", r"https://(?:(?:ptb\.|canary\.)?discord(?:app)?\.com/api/webhooks/\d+/[\w\-]+"
                  r"|[\w\-]+\.webhook\.office\.com/webhook\w*/[^\s\"'<>]+)", category="secret", label="WEBHOOK_URL",
                  hints=("discord", "webhook.office.com"), precheck=lambda f: f.longest >= 40)
register_detector("stripe_key", r"(?:[rs]k_(?:live|test)|whsec)_[A-Za-z0-9]{20,}", category="secret",
                  label="STRIPE_KEY", word_start=True, hints=("k_live_", "k_test_", "whsec_"),
                  precheck=lambda f: f.longest >= 26)
register_detector("huggingface_token", r"(?:hf|api_org)_[A-Za-z0-9]{30,}\b", category="secret",
                  label="HF_TOKEN", word_start=True, hints=("hf_", "api_org_"), precheck=lambda f: f.longest >= 33)
register_detector("sendgrid_key", r"SG\.[\w\-]{22}\.[\w\-]{43}", category="secret", label="SENDGRID_KEY",
                  word_start=True, precheck=lambda f: f.longest >= 69)
register_detector("twilio_key", r"SK[0-9a-f]{32}(?![0-9A-Za-z])", category="secret", label="TWILIO_KEY",
                  word_start=True, precheck=lambda f: f.longest >= 34)
register_detector("npm_token", r"npm_[A-Za-z0-9]{36}(?![0-9A-Za-z])", category="secret", label="NPM_TOKEN",
                  word_start=True, precheck=lambda f: f.longest >= 40)
register_detector("pypi_token", r"pypi-AgE[A-Za-z0-9_\-]{50,}", category="secret", label="PYPI_TOKEN",
                  word_start=True, precheck=lambda f: f.longest >= 58)
register_detector("telegram_bot_token", r"(?<!\d)\d{8,10}:AA[\w\-]{33}(?![\w\-])", category="secret",
                  label="TELEGRAM_TOKEN", hints=(":aa",), precheck=lambda f: f.longest >= 44)
register_detector("google_api_key", r"AIza[0-9A-Za-z_\-]{35}\b", category="secret", label="GOOGLE_API_KEY",
                  hints=("aiza",), word_start=True)
register_detector("jwt", r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}", category="secret",
                  label="JWT", hints=("eyj",), word_start=True)
register_detector("bearer_token", r"bearer\s+([a-z0-9._~+/\-]{12,}=*)", category="secret",
                  label="BEARER_TOKEN", group=1, hints=("bearer",), lowered=True, word_start=True)
register_detector("url_password", r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@]*:([^\s/@]+)@", category="secret",
                  label="PASSWORD", group=1, hints=("://",), word_start=True)  # redis://:pw@ has no user
register_detector("hex_key", finder=_hex_key_spans, category="secret", label="API_KEY",
                  hints=("key", "token", "secret"), precheck=lambda f: f.longest >= 32)
register_detector("secret_assignment", finder=_keyword_spans, category="secret", label="SECRET",
                  hints=("pass", "pwd", "secret", "key", "token", "credential", "wort", "contrase"))
register_detector("high_entropy", finder=_high_entropy_spans, category="secret", label="SECRET",
                  precheck=lambda f: f.longest >= 24)
register_detector("email", finder=_email_spans, label="EMAIL", hints=("@",))
register_detector("ssn", finder=_ssn_spans, label="SSN", precheck=lambda f: f.digits >= 9)
register_detector("uk_nino", finder=_nino_spans, label="NINO", precheck=lambda f: f.digits >= 6)
register_detector("credit_card", finder=_card_spans, label="CREDIT_CARD", precheck=lambda f: f.digits >= 13)
register_detector("iban", finder=_iban_spans, label="IBAN", precheck=lambda f: f.digits >= 10)
register_detector("phone", finder=_phone_spans, label="PHONE", precheck=lambda f: f.digits >= 7)
register_detector("ip_address", finder=_ip_spans, label="IP_ADDRESS", precheck=lambda f: f.digits >= 2)

BUILTIN = tuple(DETECTORS)


def _group(name: str) -> tuple[str, ...]:
    category = {"secrets": "secret", "pii": "pii"}[name]
    return tuple(n for n in BUILTIN if DETECTORS[n].category == category)


# -- presidio (optional) ---------------------------------------------------------------------------------

_presidio_lock = threading.Lock()
_presidio_engine: Any = None


def _presidio_analyzer() -> Any:
    global _presidio_engine
    with _presidio_lock:
        if _presidio_engine is None:
            try:
                from presidio_analyzer import AnalyzerEngine
            except ImportError:
                raise ConfigError("redaction presidio = [...] needs presidio-analyzer and a spaCy model: "
                                  "pip install 'llmops-lab[presidio]' && python -m spacy download en_core_web_lg"
                                  ) from None
            _presidio_engine = AnalyzerEngine()
        return _presidio_engine


def _presidio_detectors(entities: tuple[str, ...], analyzer: Callable[[], Any] = _presidio_analyzer) -> list[Detector]:
    def finder_for(entity: str) -> Callable[[str], Iterator[tuple[int, int]]]:
        def find(facts: Facts) -> Iterator[tuple[int, int]]:
            for result in analyzer().analyze(text=facts.text, entities=[entity], language="en"):
                yield result.start, result.end
        return find

    return [Detector(f"presidio_{e.lower()}", "pii", e.upper(), finder=finder_for(e)) for e in entities]

