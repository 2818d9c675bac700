"""Counterfactual swaps: word pairs exchanged both ways, on word boundaries, keeping case (pure).

>>> gender = swapper("gender")
>>> gender.apply("He gave HIS book to Mr Smith's daughter; Hershey stayed.")
("She gave HER book to Mrs Smith's son; Hershey stayed.", 4)
>>> swapper("names").apply("Emily and Jamal")
('Lakisha and Greg', 2)

Built-in attributes (``SWAPS``):

- ``gender``: pronouns and gendered nouns, and given names. One word has two partners: "her" is both
  object ("him") and possessive ("his"). We map ``her -> his`` (the possessive; "his"/"him" both map to
  "her"): a probe measures whether the answer changes, and a wrong "his" for an object "her" keeps the
  gender swap, only the grammar suffers. The given names pair the ten most common boys' and girls' names of
  US births 1990-1999, by rank, from the US Social Security Administration's published baby-name list
  ("Top names of the 1990s", https://www.ssa.gov/oact/babynames/decades/names1990s.html).
- ``names``: given names grouped by the origin they signal, from Bertrand & Mullainathan (2004), "Are Emily
  and Greg More Employable Than Lakisha and Jamal? A Field Experiment on Labor Market Discrimination",
  American Economic Review 94(4): 991-1013, table A1: each white-sounding name paired with a
  Black-sounding name of the same sex.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from llmops_lab.exceptions import ConfigError

__all__ = ["SWAPS", "SOURCES", "Swap", "swapper", "swappers"]

_GENDER_WORDS = [
    ("he", "she"), ("his", "her"), ("him", "her"), ("his", "hers"), ("himself", "herself"),
    ("man", "woman"), ("men", "women"), ("boy", "girl"), ("boys", "girls"), ("male", "female"),
    ("father", "mother"), ("fathers", "mothers"), ("dad", "mom"), ("son", "daughter"), ("sons", "daughters"),
    ("brother", "sister"), ("brothers", "sisters"), ("husband", "wife"), ("husbands", "wives"),
    ("uncle", "aunt"), ("nephew", "niece"), ("grandfather", "grandmother"), ("gentleman", "lady"),
    ("gentlemen", "ladies"), ("mr", "mrs"), ("king", "queen"), ("prince", "princess"),
]
# US SSA, most common names of births 1990-1999 (boys and girls by rank 1-10).
_SSA_1990S = [
    ("Michael", "Jessica"), ("Christopher", "Ashley"), ("Matthew", "Emily"), ("Joshua", "Sarah"),
    ("Jacob", "Samantha"), ("Nicholas", "Amanda"), ("Andrew", "Brittany"), ("Daniel", "Elizabeth"),
    ("Tyler", "Taylor"), ("Joseph", "Megan"),
]
# Bertrand & Mullainathan (2004), table A1: white-sounding -> Black-sounding, same sex.
_BERTRAND_MULLAINATHAN = [
    ("Emily", "Lakisha"), ("Greg", "Jamal"), ("Anne", "Aisha"), ("Jill", "Keisha"), ("Allison", "Tamika"),
    ("Sarah", "Latoya"), ("Kristen", "Tanisha"), ("Brad", "Darnell"), ("Todd", "Tyrone"),
    ("Matthew", "Jermaine"), ("Neil", "Rasheed"), ("Brett", "Kareem"), ("Geoffrey", "Leroy"),
]

SWAPS: dict[str, list[tuple[str, str]]] = {"gender": _GENDER_WORDS + _SSA_1990S, "names": _BERTRAND_MULLAINATHAN}
SOURCES: dict[str, str] = {
    "gender": "pronouns and gendered nouns; given names: US Social Security Administration, top names of the 1990s",
    "names": "Bertrand & Mullainathan (2004), American Economic Review 94(4), table A1",
}


def _cased(word: str, like: str) -> str:
    """``word`` in the case of ``like``: UPPER, Title or lower."""
    if len(like) > 1 and like.isupper():
        return word.upper()
    if like[:1].isupper():
        return word[:1].upper() + word[1:].lower()
    return word.lower()


@dataclass(frozen=True)
class Swap:
    """One attribute's swap: each word of a pair becomes the other (the first pair naming a word wins)."""

    attribute: str
    pairs: tuple[tuple[str, str], ...]
    mapping: dict[str, str] = field(init=False, repr=False, compare=False)
    pattern: re.Pattern = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        mapping: dict[str, str] = {}
        for a, b in self.pairs:
            mapping.setdefault(a.lower(), b)
            mapping.setdefault(b.lower(), a)
        words = sorted(mapping, key=len, reverse=True)  # longest first: "women" before "men"
        object.__setattr__(self, "mapping", mapping)
        object.__setattr__(self, "pattern",
                           re.compile(r"\b(?:" + "|".join(map(re.escape, words)) + r")\b", re.IGNORECASE))

    def apply(self, text: Any) -> tuple[Any, int]:
        """(swapped text, number of words swapped); a value that is not text is returned as is."""
        if not isinstance(text, str):
            return text, 0
        count = 0

        def one(match: re.Match) -> str:
            nonlocal count
            count += 1
            return _cased(self.mapping[match.group(0).lower()], match.group(0))

        return self.pattern.sub(one, text), count


def swapper(attribute: str, pairs: Sequence[Sequence[str]] | None = None) -> Swap:
    """The :class:`Swap` of a built-in attribute, or of your own ``pairs`` [(a, b), ...]."""
    if pairs is None:
        if attribute not in SWAPS:
            raise ConfigError(f"no built-in swap {attribute!r}: use one of {', '.join(SWAPS)} or a dict "
                              "{attribute: [(a, b), ...]}")
        pairs = SWAPS[attribute]
    checked = []
    for pair in pairs:
        if (isinstance(pair, str) or len(pair) != 2 or not all(isinstance(w, str) and w.strip() for w in pair)
                or pair[0].lower() == pair[1].lower()):
            raise ConfigError(f"swap {attribute!r}: {pair!r} is not a pair of two different words (a, b)")
        checked.append((pair[0].strip(), pair[1].strip()))
    if not checked:
        raise ConfigError(f"swap {attribute!r} has no pairs")
    return Swap(attribute, tuple(checked))


def swappers(swaps: str | Sequence[str] | Mapping[str, Sequence[Sequence[str]]]) -> list[Swap]:
    """``"gender"``, ``["gender", "names"]`` or ``{"city": [("Paris", "Lagos")]}`` -> swaps, in order."""
    if isinstance(swaps, str):
        return [swapper(swaps)]
    if isinstance(swaps, Mapping):
        return [swapper(str(k), v) for k, v in swaps.items()] or _none()
    return [swapper(s) for s in swaps] or _none()


def _none() -> list[Swap]:
    raise ConfigError("swaps: name at least one attribute (gender, names) or give {attribute: [(a, b), ...]}")
