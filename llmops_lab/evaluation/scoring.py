"""Scorers for batch evaluation: ``exact:COL``, ``contains:COL``, ``regex:PAT``, ``json[:schema.json]``,
``numeric:COL[:tol]``, ``latency_under:MS``, ``cost_under:USD``, ``judge:"rubric"`` and plain callables.

A registry of the same shape as papermill's engines: ``SCORERS`` maps a spec prefix to a factory, and
:func:`register_scorer` (or the ``llmops_lab.scorers`` entry-point group) adds more::

    >>> def short(output): return len(output) < 80
    >>> scorers = parse_scorers(["exact:label", "regex:^\\\\d+$", short])
    >>> [(s.name, sorted(s.needs)) for s in scorers]
    [('exact_label', ['label']), ('regex', []), ('short', [])]
    >>> scorers[0].score(" Cat ", {"label": "cat"}, {"error": None})
    ScoreResult(value=1.0, passed=True, rationale=None)

Pure apart from ``judge`` (one model call per row through the one call path) and reading a JSON schema
file at parse time. No heavy import at module load: mlflow and jsonschema are imported where used.
"""
from __future__ import annotations

import inspect
import json
import math
import numbers
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Union

from llmops_lab.exceptions import ConfigError

__all__ = ["ScoreResult", "Scorer", "SCORERS", "register_scorer", "parse_scorer", "parse_scorers",
           "summarize_scores", "to_mlflow_scorer", "to_result", "parse_verdict", "known_forms",
           "strip_fences", "first_number", "JUDGE_TEMPLATE"]

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


# ---- built-ins -----------------------------------------------------------------------------------

def _cell(row: Mapping[str, Any], column: str) -> Any:
    if column not in row:
        raise KeyError(f"row has no column {column!r}")
    value = row[column]
    if value is None or (isinstance(value, float) and math.isnan(value)):
        raise ValueError(f"row has no value in column {column!r}")
    return value


def _column(arg: str, form: str) -> str:
    column = arg.strip()
    if not column:
        raise ConfigError(f"scorer needs a column name: write {form}")
    return column


@register_scorer("exact", form="exact:COL[:case]")
def _exact(arg: str) -> Scorer:
    """Output equals ``row[COL]`` after stripping, case-insensitively (``:case`` for case-sensitive).

    "Exact" is about the whole answer (not a substring, unlike ``contains``); case is ignored by default on
    purpose, since models capitalise freely ("Positive" answers "positive"). Documented in the README and
    ``%llm help``; kept rather than flipped so existing specs keep their scores."""
    column, case = arg, False
    if arg.endswith(":case"):
        column, case = arg[: -len(":case")], True
    column = _column(column, "exact:COL[:case]")

    def exact(output: str, row: Mapping[str, Any], meta: Mapping[str, Any]) -> RawScore:
        expected = str(_cell(row, column)).strip()
        got = output.strip()
        ok = got == expected if case else got.casefold() == expected.casefold()
        return {"passed": ok, "rationale": None if ok else f"expected {_short(expected)}, got {_short(got)}"}

    return Scorer(f"exact_{column}", exact, frozenset({column}))


@register_scorer("contains", form="contains:COL")
def _contains(arg: str) -> Scorer:
    """``row[COL]`` appears in the output, case-insensitively."""
    column = _column(arg, "contains:COL")

    def contains(output: str, row: Mapping[str, Any], meta: Mapping[str, Any]) -> RawScore:
        expected = str(_cell(row, column)).strip()
        ok = expected.casefold() in output.casefold()
        return {"passed": ok, "rationale": None if ok else f"{_short(expected)} not in output"}

    return Scorer(f"contains_{column}", contains, frozenset({column}))


@register_scorer("regex", form="regex:PATTERN")
def _regex(arg: str) -> Scorer:
    """``re.search(PATTERN, output)`` finds a match; use ``(?i)`` for case-insensitive."""
    try:
        pattern = re.compile(arg)
    except re.error as err:
        raise ConfigError(f"regex {arg!r} does not compile ({err}): fix the pattern") from None

    def regex(output: str, row: Mapping[str, Any], meta: Mapping[str, Any]) -> RawScore:
        ok = pattern.search(output) is not None
        return {"passed": ok, "rationale": None if ok else f"no match for {_short(arg)}"}

    return Scorer("regex", regex)


_FENCE = re.compile(r"^```[\w+-]*[ \t]*\n?(.*?)\n?```$", re.DOTALL)


def strip_fences(text: str) -> str:
    """The inside of a Markdown code fence wrapping the whole text, else the text stripped.

    >>> strip_fences('```json\\n{"a": 1}\\n```')
    '{"a": 1}'
    """
    text = text.strip()
    match = _FENCE.match(text)
    return match.group(1).strip() if match else text


@register_scorer("json", form="json[:path/to/schema.json]", takes_arg=None)
def _json(arg: str | None) -> Scorer:
    """Output parses as JSON (``` fences stripped) and, with a schema file, validates against it."""
    validator = _schema_validator(arg.strip()) if arg and arg.strip() else None

    def json_(output: str, row: Mapping[str, Any], meta: Mapping[str, Any]) -> RawScore:
        try:
            document = json.loads(strip_fences(output))
        except ValueError as err:
            return {"passed": False, "rationale": f"not JSON: {err}"}
        if validator is not None:
            error = _best_error(validator, document)
            if error is not None:
                return {"passed": False, "rationale": error}
        return True

    return Scorer("json", json_)


def _schema_validator(path_text: str) -> Any:
    path = Path(path_text).expanduser()
    if not path.is_file():
        raise ConfigError(f"JSON schema file {path_text!r} not found (from {Path.cwd()}): give a path to a .json file")
    try:
        schema = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ConfigError(f"JSON schema {path_text!r} is not readable JSON: {err}") from None
    try:
        from jsonschema import validators
        from jsonschema.exceptions import SchemaError
    except ImportError:
        raise ConfigError("json:SCHEMA needs the jsonschema package: pip install jsonschema") from None
    cls = validators.validator_for(schema)
    try:
        cls.check_schema(schema)
    except SchemaError as err:
        raise ConfigError(f"JSON schema {path_text!r} is invalid: {err.message}") from None
    return cls(schema)


def _best_error(validator: Any, document: Any) -> str | None:
    from jsonschema.exceptions import best_match

    error = best_match(validator.iter_errors(document))
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "(root)"
    return f"schema: {where}: {error.message}"


_NUMBER = re.compile(r"[-+]?(?:\d+(?:,\d{3})*(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")


def first_number(text: str) -> float | None:
    """The first number in ``text`` (thousands separators allowed), or None.

    >>> first_number("The answer is 1,234.5 apples")
    1234.5
    """
    match = _NUMBER.search(text)
    return float(match.group(0).replace(",", "")) if match else None


@register_scorer("numeric", form="numeric:COL[:tol]")
def _numeric(arg: str) -> Scorer:
    """The first number in the output is within absolute ``tol`` (default 0) of ``float(row[COL])``."""
    column, tolerance = arg, 0.0
    if ":" in arg:
        column, _, tol_text = arg.rpartition(":")
        try:
            tolerance = float(tol_text)
        except ValueError:
            raise ConfigError(f"numeric tolerance {tol_text!r} is not a number: write numeric:COL[:tol], "
                              "e.g. numeric:answer:0.01") from None
        if tolerance < 0 or math.isnan(tolerance):
            raise ConfigError(f"numeric tolerance {tol_text!r} must be >= 0")
    column = _column(column, "numeric:COL[:tol]")

    def numeric(output: str, row: Mapping[str, Any], meta: Mapping[str, Any]) -> RawScore:
        raw = _cell(row, column)
        try:
            expected = float(str(raw).replace(",", "").strip())
        except ValueError:
            raise ValueError(f"expected value {_short(str(raw))} in column {column!r} is not a number") from None
        got = first_number(output)
        if got is None:
            return {"passed": False, "rationale": "no number in output"}
        ok = abs(got - expected) <= tolerance
        return {"passed": ok, "rationale": None if ok else f"expected {expected:g}, got {got:g}"}

    return Scorer(f"numeric_{column}", numeric, frozenset({column}))


def _positive_number(arg: str, form: str) -> float:
    try:
        limit = float(arg)
    except ValueError:
        raise ConfigError(f"{arg.strip()!r} is not a number: write {form}") from None
    if not limit > 0 or math.isinf(limit):
        raise ConfigError(f"{arg.strip()!r} must be a positive number: write {form}")
    return limit


def _under(meta_key: str, arg: str, form: str, prefix: str, shown: Callable[[float], str]) -> Scorer:
    """Passes when ``meta[meta_key]`` is below the limit in ``arg``; an unknown value scores None."""
    limit = _positive_number(arg, form)

    def below(output: str, row: Mapping[str, Any], meta: Mapping[str, Any]) -> RawScore:
        value = meta.get(meta_key)
        if value is None:
            return None
        return {"passed": float(value) < limit, "rationale": shown(float(value))}

    return Scorer(f"{prefix}_{arg.strip()}", below)


@register_scorer("latency_under", form="latency_under:MS")
def _latency_under(arg: str) -> Scorer:
    """The call's latency (``meta["latency_ms"]``) is below MS; unknown latency scores None."""
    return _under("latency_ms", arg, "latency_under:MS, e.g. latency_under:500", "latency_under",
                  lambda ms: f"{ms:.0f} ms")


@register_scorer("cost_under", form="cost_under:USD")
def _cost_under(arg: str) -> Scorer:
    """The call's cost (``meta["cost_usd"]``) is below USD; unknown cost (no price) scores None."""
    return _under("cost_usd", arg, "cost_under:USD, e.g. cost_under:0.001", "cost_under",
                  lambda usd: f"${usd:.6f}")


# ---- LLM as judge ----------------------------------------------------------------------------------

JUDGE_SYSTEM = "You are a strict, fair evaluator of language model outputs."
# Rubric, fields and output are variables, never template text: braces in them stay plain text.
JUDGE_TEMPLATE = """Grade the output below against the rubric.

Rubric:
{{ rubric }}

Input fields:
{{ fields }}

Output to grade:
<<<
{{ output }}
>>>

Answer with PASS or FAIL alone on the first line, then one sentence explaining why."""
_VERDICT = re.compile(r"\b(pass|fail)(?:ed|es|s)?\b", re.IGNORECASE)
_FIELD_LIMIT = 2000


def _unquote(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1].strip()
    return text


def judge_fields(row: Mapping[str, Any]) -> str:
    """The row's fields as ``- name: value`` lines for the judge prompt (long values truncated)."""
    if not row:
        return "(none)"
    lines = []
    for key, value in row.items():
        text = str(value)
        if len(text) > _FIELD_LIMIT:
            text = text[:_FIELD_LIMIT] + f"… [{len(text) - _FIELD_LIMIT} more chars]"
        lines.append(f"- {key}: {text}")
    return "\n".join(lines)


def parse_verdict(answer: str) -> ScoreResult:
    """``PASS``/``FAIL`` (first occurrence, any case) and the rest as rationale; else value None.

    >>> parse_verdict("**Pass** - it answers the question.")
    ScoreResult(value=1.0, passed=True, rationale='it answers the question.')
    """
    text = (answer or "").strip()
    match = _VERDICT.search(text)
    if match is None:
        return ScoreResult(None, None, _truncate(text or "(empty answer)", 200))
    passed = match.group(1).lower() == "pass"
    rest = text[match.end():]
    rationale = " ".join(rest.split()).lstrip("*_:-–—.,; ").strip() or None
    return ScoreResult(1.0 if passed else 0.0, passed, None if rationale is None else _truncate(rationale))


@register_scorer("judge", form='judge:"rubric text"')
def _judge(arg: str, *, judge_model: str | None = None) -> Scorer:
    """An LLM grades each output against the rubric (``judge_model`` or the configured model, temperature 0)."""
    rubric = _unquote(arg)
    if not rubric:
        raise ConfigError('judge needs a rubric: write judge:"Does the answer cite the article?"')
    if judge_model is not None:
        from llmops_lab.providers.base import ModelId

        ModelId.parse(judge_model)  # a malformed model id fails at parse time, before any call

    def judge(output: str, row: Mapping[str, Any], meta: Mapping[str, Any]) -> RawScore:
        from llmops_lab.core.call import prepare
        from llmops_lab.config import get_settings

        settings = get_settings()
        call = prepare(JUDGE_TEMPLATE, {"rubric": rubric, "fields": judge_fields(row), "output": output},
                       model=judge_model or settings.model, name="llmops-judge", system=JUDGE_SYSTEM,
                       params={"temperature": 0}, settings=settings)
        # Deliberately not api.execute(): the judge call is part of scoring the row, so it writes no
        # MLflow record (no spool entry, no run, no trace) of its own; the batch logs the scores.
        completion = call.provider.complete(call.model_id.model, call.messages, call.params)
        verdict = parse_verdict(completion.text)
        return {"value": verdict.value, "passed": verdict.passed, "rationale": verdict.rationale}

    return Scorer("judge", judge)


# ---- MLflow interop --------------------------------------------------------------------------------

def to_mlflow_scorer(scorer: "str | Callable[..., RawScore] | Scorer", *, judge_model: str | None = None) -> Any:
    """An ``mlflow.genai`` scorer running ours, for ``mlflow.genai.evaluate(scorers=[...])``.

    >>> mlflow.genai.evaluate(data=[{"inputs": {"q": "2+2"}, "outputs": "4", "expectations": {"answer": 4}}],
    ...                       scorers=[to_mlflow_scorer("numeric:answer")])          # doctest: +SKIP

    ``outputs`` becomes the output (non-strings as JSON); ``inputs`` and ``expectations`` (dicts) are
    merged into the row, expectations winning; a non-dict value is put under the key ``inputs`` or
    ``expectations``. There is no call metadata, so ``latency_under``/``cost_under`` score None.
    The Feedback's value is the pass/fail bool for pass/fail scorers, else the numeric value.
    """
    from mlflow.entities import Feedback
    from mlflow.genai.scorers import scorer as mlflow_scorer

    ours = parse_scorer(scorer, judge_model=judge_model)
    meta = {"latency_ms": None, "cost_usd": None, "usage": {}, "error": None}

    def run(inputs: Any = None, outputs: Any = None, expectations: Any = None) -> Any:
        row = {**_as_row(inputs, "inputs"), **_as_row(expectations, "expectations")}
        result = ours.score(_as_text(outputs), row, meta)
        if result.is_error:
            return Feedback(error=result.rationale)
        value: Any = result.value
        if result.passed is not None and result.value == float(result.passed):
            value = result.passed  # a plain pass/fail: MLflow counts True as passing
        return Feedback(value=value, rationale=result.rationale)

    run.__name__ = ours.name
    return mlflow_scorer(run, name=ours.name, description=ours.spec or ours.name)


def _as_row(value: Any, key: str) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return dict(value)
    return {key: value}


def _as_text(outputs: Any) -> str:
    if outputs is None or isinstance(outputs, str):
        return outputs or ""
    try:
        return json.dumps(outputs, default=str)
    except (TypeError, ValueError):
        return str(outputs)


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
