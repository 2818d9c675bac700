"""The scorer registry: what a scorer is (:class:`Scorer`, :class:`ScoreResult`), how specs are parsed,
and how scores are summarised. Pure: no model call, no heavy import (built-ins: ``builtin.py``,
the model-graded judge: ``judge.py``)."""
from __future__ import annotations

import inspect
import math
import numbers
import re
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Union

from llmops_lab.exceptions import ConfigError

if TYPE_CHECKING:
    from llmops_lab.evaluation.scoring.judge import Judge

# What a scorer function may return: bool (pass/fail), a number (score), a dict, or None (abstain).
RawScore = Union[bool, float, int, Mapping[str, Any], None]
ScoreFn = Callable[[str, Mapping[str, Any], Mapping[str, Any]], RawScore]
ScorerFactory = Callable[..., Union["Scorer", Callable[..., RawScore]]]

_RATIONALE_LIMIT = 500


@dataclass(frozen=True)
class ScoreResult:
    """One score of one row: ``value`` (mean-able), ``passed`` (pass-rate-able), ``rationale`` (why).

    A scorer that raised has ``value=None`` and a rationale starting with ``"error: "``.
    """

    value: float | None
    passed: bool | None
    rationale: str | None = None

    @property
    def is_error(self) -> bool:
        return self.value is None and (self.rationale or "").startswith("error: ")


@dataclass(frozen=True)
class Scorer:
    """A named scorer: ``Scorer("short", lambda out, row, meta: len(out) < 80).score(out, row, meta)``.

    ``name`` is the results column, ``needs`` the row columns it reads (checked before any call),
    ``fn`` is always called as ``fn(output, row, meta)``; use :meth:`from_callable` for other arities.
    """

    name: str
    fn: ScoreFn = field(repr=False)
    needs: frozenset[str] = frozenset()
    spec: str | None = None  # the text it was parsed from, for messages
    # Set when the scorer asks a model (typed, not guessed from its name): a batch then sends these calls
    # through its runner, so they are cached, budgeted and counted; ``fn`` is the standalone path.
    judge: "Judge | None" = field(default=None, repr=False, compare=False)

    @classmethod
    def from_callable(cls, fn: Callable[..., RawScore], *, name: str | None = None,
                      needs: Iterable[str] | None = None) -> "Scorer":
        """Wrap ``fn(output)``, ``fn(output, row)`` or ``fn(output, row, meta)``.

        >>> def short(output): return len(output) < 80
        >>> Scorer.from_callable(short).score("hi", {}, {}).passed
        True
        """
        arity = _arity(fn)
        if arity == 1:
            wrapped: ScoreFn = lambda output, row, meta: fn(output)  # noqa: E731
        elif arity == 2:
            wrapped = lambda output, row, meta: fn(output, row)  # noqa: E731
        else:
            wrapped = fn
        needs = needs if needs is not None else getattr(fn, "needs", ())
        return cls(name or _callable_name(fn), wrapped, frozenset(needs), spec=None)

    def score(self, output: str | None, row: Mapping[str, Any],
              meta: Mapping[str, Any] | None = None) -> ScoreResult:
        """Score one row; never raises (an exception becomes ``value=None, rationale="error: ..."``).

        If the row's call failed (``meta["error"]``), nothing is scored: all three fields are None.
        """
        meta = meta or {}
        if meta.get("error"):
            return ScoreResult(None, None, None)
        try:
            return to_result(self.fn("" if output is None else str(output), row, meta))
        except Exception as err:  # noqa: BLE001 - a scorer bug must never abort a batch
            return ScoreResult(None, None, _truncate(f"error: {type(err).__name__}: {err}"))


def to_result(raw: RawScore) -> ScoreResult:
    """Normalize what a scorer returned: bool -> 1.0/0.0 + passed; number -> value; dict -> its keys.

    >>> to_result({"score": 0.5, "passed": True, "rationale": "half right"})
    ScoreResult(value=0.5, passed=True, rationale='half right')
    """
    if raw is None:
        return ScoreResult(None, None, None)
    if _is_bool(raw):
        return ScoreResult(1.0 if raw else 0.0, bool(raw), None)
    if isinstance(raw, numbers.Real):
        return ScoreResult(float(raw), None, None)  # type: ignore[arg-type]
    if isinstance(raw, Mapping):
        unknown = set(raw) - {"score", "value", "passed", "rationale"}
        if unknown:
            raise TypeError(f"scorer returned unknown keys {sorted(unknown)}: use score/value, passed, rationale")
        passed = raw.get("passed")
        passed = None if passed is None else bool(passed)
        value = raw.get("score", raw.get("value"))
        if value is None and passed is not None:
            value = 1.0 if passed else 0.0
        elif value is not None:
            value = 1.0 if value is True else 0.0 if value is False else float(value)
        rationale = raw.get("rationale")
        return ScoreResult(value, passed, None if rationale is None else _truncate(str(rationale)))
    raise TypeError(f"scorer returned {type(raw).__name__}: return a bool, a number or a dict")


# ---- registry ------------------------------------------------------------------------------------

# prefix -> factory(arg, **options) returning a Scorer or a plain callable.
SCORERS: dict[str, ScorerFactory] = {}
# prefix -> (how the spec is written, e.g. "exact:COL[:case]"; argument: True required, False none, None optional)
_FORMS: dict[str, tuple[str, bool | None]] = {}
_entry_points_loaded = False


def register_scorer(prefix: str, *, form: str | None = None, takes_arg: bool | None = True
                    ) -> Callable[[ScorerFactory], ScorerFactory]:
    """Register ``factory(arg, **options)`` for specs ``PREFIX:ARG``; it returns a Scorer or a callable.

    >>> @register_scorer("max_words", form="max_words:N")
    ... def max_words(arg):
    ...     limit = int(arg)
    ...     return Scorer(f"max_words_{limit}", lambda output, row, meta: len(output.split()) <= limit)
    >>> parse_scorer("max_words:20").name
    'max_words_20'

    ``options`` (only passed if the factory accepts them): ``judge_model``. A plain callable returned by
    the factory is named after the prefix. Plugins can also declare an entry point in the group
    ``llmops_lab.scorers`` (``name = "pkg.module:factory"``); it is loaded on first use of ``name``.
    """
    prefix = _check_prefix(prefix)

    def decorate(factory: ScorerFactory) -> ScorerFactory:
        SCORERS[prefix] = factory
        _FORMS[prefix] = (form or (f"{prefix}:ARG" if takes_arg else prefix), takes_arg)
        return factory

    return decorate


def _check_prefix(prefix: str) -> str:
    if not re.fullmatch(r"[a-z][a-z0-9_]*", prefix or ""):
        raise ConfigError(f"scorer prefix {prefix!r} is invalid: use lowercase letters, digits and '_'")
    return prefix


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    from importlib.metadata import entry_points

    for ep in entry_points(group="llmops_lab.scorers"):
        if ep.name not in SCORERS:
            SCORERS[_check_prefix(ep.name)] = _lazy(ep)


def _lazy(ep: Any) -> ScorerFactory:
    def factory(arg: str | None, **options: Any) -> Any:
        return _call_factory(ep.load(), arg, options)

    return factory


def _call_factory(factory: ScorerFactory, arg: str | None, options: Mapping[str, Any]) -> Any:
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return factory(arg)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return factory(arg, **options)
    return factory(arg, **{k: v for k, v in options.items() if k in params})


def known_forms() -> str:
    """``contains:COL, cost_under:USD, ...``: what a spec may look like, for error messages."""
    return ", ".join(_form(p)[0] for p in sorted(SCORERS)) + ", or a Python function"


def _form(prefix: str) -> tuple[str, bool | None]:
    return _FORMS.get(prefix, (f"{prefix}[:ARG]", None))  # SCORERS set directly: argument optional


def parse_scorer(spec: "str | Callable[..., RawScore] | Scorer", *, judge_model: str | None = None) -> Scorer:
    """Turn ``"exact:label"``, a function or a Scorer into a Scorer; bad specs are one-line ConfigErrors.

    >>> parse_scorer("numeric:answer:0.01").name
    'numeric_answer'
    >>> parse_scorer("judge:'Is it polite?'", judge_model="openai:gpt-4o-mini").name
    'judge'
    """
    if isinstance(spec, Scorer):
        return spec
    if callable(spec):
        return Scorer.from_callable(spec)
    if not isinstance(spec, str):
        raise ConfigError(f"scorer {spec!r} is neither a spec string nor a function: use e.g. exact:COL")
    text = spec.strip()
    if not text:
        raise ConfigError(f"empty scorer spec: use one of {known_forms()}")
    prefix, sep, arg = text.partition(":")
    prefix = prefix.strip().lower()
    if prefix not in SCORERS:
        _load_entry_points()
    factory = SCORERS.get(prefix)
    if factory is None:
        raise ConfigError(f"unknown scorer {prefix!r} in {text!r}: use one of {known_forms()}")
    form, takes_arg = _form(prefix)
    argument: str | None = arg if sep else None
    if takes_arg and not (argument or "").strip():
        raise ConfigError(f"scorer {text!r} needs an argument: write {form}")
    if takes_arg is False and argument is not None:
        raise ConfigError(f"scorer {prefix!r} takes no argument: write {form}")
    made = _call_factory(factory, argument, {"judge_model": judge_model})
    scorer = made if isinstance(made, Scorer) else Scorer.from_callable(made, name=prefix)
    return replace(scorer, spec=text)


def parse_scorers(specs: "Iterable[str | Callable[..., RawScore] | Scorer] | str | None", *,
                  judge_model: str | None = None) -> list[Scorer]:
    """Parse several specs; duplicate column names get ``_2``, ``_3``... suffixes.

    >>> [s.name for s in parse_scorers(["regex:^a", "regex:b$"])]
    ['regex', 'regex_2']
    """
    if specs is None:
        return []
    if isinstance(specs, (str, Scorer)) or callable(specs):
        specs = [specs]  # type: ignore[list-item]
    out: list[Scorer] = []
    seen: set[str] = set()
    for spec in specs:  # type: ignore[union-attr]
        scorer = parse_scorer(spec, judge_model=judge_model)
        name, n = scorer.name, 1
        while name in seen:
            n += 1
            name = f"{scorer.name}_{n}"
        seen.add(name)
        out.append(scorer if name == scorer.name else replace(scorer, name=name))
    return out


def summarize_scores(results: Iterable[ScoreResult]) -> dict[str, Any]:
    """``{"mean", "pass_rate", "n_scored", "n_errors"}`` over one scorer's column.

    ``mean`` is over non-None values, ``pass_rate`` over non-None ``passed`` (None when there are none),
    ``n_scored`` counts rows with a value or a verdict, ``n_errors`` rows where the scorer raised.

    >>> summarize_scores([ScoreResult(1.0, True), ScoreResult(0.0, False), ScoreResult(None, None, "error: x")])
    {'mean': 0.5, 'pass_rate': 0.5, 'n_scored': 2, 'n_errors': 1}
    """
    values: list[float] = []
    verdicts: list[bool] = []
    n_scored = n_errors = 0
    for result in results:
        if result.value is not None and not (isinstance(result.value, float) and math.isnan(result.value)):
            values.append(result.value)
        if result.passed is not None:
            verdicts.append(result.passed)
        if result.value is not None or result.passed is not None:
            n_scored += 1
        elif result.is_error:
            n_errors += 1
    return {"mean": sum(values) / len(values) if values else None,
            "pass_rate": sum(verdicts) / len(verdicts) if verdicts else None,
            "n_scored": n_scored, "n_errors": n_errors}


# ---- helpers ---------------------------------------------------------------------------------------

def _arity(fn: Callable[..., Any]) -> int:
    """How many positional arguments to pass: 1, 2 or 3 (``*args`` or unknown: 3 if possible)."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return 2  # builtins without a signature: the documented (output, row) form
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params):
        return 3
    positional = [p for p in params if p.kind in (inspect.Parameter.POSITIONAL_ONLY,
                                                   inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    required = [p for p in positional if p.default is inspect.Parameter.empty]
    if not positional or len(required) > 3:
        raise ConfigError(f"scorer function {_callable_name(fn)!r} must take (output), (output, row) "
                          "or (output, row, meta)")
    return min(len(positional), 3)


def _callable_name(fn: Callable[..., Any]) -> str:
    name = getattr(fn, "__name__", None) or type(fn).__name__
    return "lambda" if name == "<lambda>" else name


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool) or type(value).__name__ == "bool_"  # numpy.bool_ without importing numpy


def _short(text: str, limit: int = 80) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "…")


def _truncate(text: str, limit: int = _RATIONALE_LIMIT) -> str:
    return text if len(text) <= limit else text[:limit] + "…"
