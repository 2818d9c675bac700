"""The built-in scorers (``exact``, ``contains``, ``regex``, ``json``, ``numeric``, ``latency_under``,
``cost_under``, ``field``), registered on import. Pure apart from reading a JSON schema file at parse time;
jsonschema is imported only when a schema is given."""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Callable, Mapping

from llmops_lab.evaluation.scoring.registry import (
    RawScore,
    Scorer,
    _short,
    register_scorer,
)
from llmops_lab.exceptions import ConfigError


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




@register_scorer("field", form="field:NAME[=COL][:tol]")
def _field(arg: str) -> Scorer:
    """The answer's JSON field NAME (dots for nested: ``address.city``) equals ``row[COL]`` (COL defaults to
    NAME): numbers within absolute ``tol`` (default 0), anything else as stripped text, case-sensitively.

    In a batch with ``schema=`` it reads the validated answer (an answer that did not validate fails); without
    one it parses the output as JSON (fences stripped)."""
    form = "field:NAME[=COL][:tol], e.g. field:age or field:age=expected_age:0.5"
    spec, tolerance = arg, 0.0
    head, sep, tail = arg.rpartition(":")
    if sep:
        try:
            tolerance = float(tail)
        except ValueError:
            raise ConfigError(f"field tolerance {tail!r} is not a number: write {form}") from None
        if tolerance < 0 or math.isnan(tolerance):
            raise ConfigError(f"field tolerance {tail!r} must be >= 0: write {form}")
        spec = head
    name, renamed, column = spec.partition("=")
    name = _column(name, form)
    column = _column(column, form) if renamed else name
    path = name.split(".")

    def field_(output: str, row: Mapping[str, Any], meta: Mapping[str, Any]) -> RawScore:
        if "data" in meta:
            document = meta["data"]
            if document is None:
                return {"passed": False, "rationale": "the answer did not match the schema"}
        else:
            try:
                document = json.loads(strip_fences(output))
            except ValueError as err:
                return {"passed": False, "rationale": f"not JSON: {err}"}
        for key in path:
            if not isinstance(document, Mapping) or key not in document:
                return {"passed": False, "rationale": f"no field {name!r} in the answer"}
            document = document[key]
        return _same_value(document, _cell(row, column), tolerance)

    return Scorer(f"field_{name}", field_, frozenset({column}))


def _same_value(got: Any, expected: Any, tolerance: float) -> RawScore:
    """Numbers within ``tolerance``; anything else compared as stripped text."""
    if isinstance(got, (int, float)) and not isinstance(got, bool):
        try:
            wanted = float(str(expected).replace(",", "").strip())
        except ValueError:
            return {"passed": False, "rationale": f"expected {_short(str(expected))}, got {got!r}"}
        ok = abs(float(got) - wanted) <= tolerance
        return {"passed": ok, "rationale": None if ok else f"expected {wanted:g}, got {got:g}"}
    ok = str(got).strip() == str(expected).strip()
    return {"passed": ok, "rationale": None if ok else f"expected {_short(str(expected))}, got {_short(str(got))}"}
