"""Structured output: a schema for the answer (``run(..., schema=Person)``, ``%%llm --schema Person``).

A schema spec is a pydantic model class, a JSON-schema dict, or a path to a ``.json`` schema file;
:func:`resolve` turns any of them into an :class:`OutputSchema`. The request asks for it natively (the
``response_format`` request parameter: ``json_schema`` on OpenAI-compatible endpoints, a JSON-schema grammar on
the embedded model), so it is part of the cache key like any parameter. :meth:`OutputSchema.validate` turns an
answer into the validated object (a model instance, or the parsed dict) or raises :class:`Mismatch`, whose
message is one line naming the failing field.

>>> s = resolve({"title": "Person", "type": "object", "properties": {"age": {"type": "integer"}},
...              "required": ["age"]})
>>> s.validate('{"age": 41}')
{'age': 41}
>>> s.validate('{"age": "old"}')
Traceback (most recent call last):
...
llmops_lab.core.schema.Mismatch: answer does not match schema Person: field 'age': 'old' is not of type 'integer'
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmops_lab.exceptions import ConfigError

_NAME = re.compile(r"[^A-Za-z0-9_-]+")


class Mismatch(ValueError):
    """An answer that does not validate; ``str()`` is one line naming the failing field."""


@dataclass(frozen=True)
class OutputSchema:
    """A resolved schema: its name, its JSON schema, and the pydantic class when it came from one."""

    name: str
    json_schema: dict[str, Any]
    model: Any = field(default=None, compare=False)  # a pydantic BaseModel subclass, or None for a dict schema

    def response_format(self) -> dict[str, Any]:
        """The OpenAI ``response_format`` request parameter. Not ``strict``: strict mode refuses schemas
        without ``additionalProperties: false`` on every object (pydantic's default), and the answer is
        validated here anyway."""
        return {"type": "json_schema", "json_schema": {"name": self.name, "schema": self.json_schema}}

    def validate(self, text: str) -> Any:
        """The validated object for an answer, or :class:`Mismatch` (one line, naming the field)."""
        from llmops_lab.core.results import strip_fences

        try:
            document = json.loads(strip_fences(text or ""))
        except ValueError as err:
            raise Mismatch(f"answer does not match schema {self.name}: it is not JSON ({err})") from None
        if self.model is not None:
            return self._validate_model(document)
        problem = _first_problem(_validator(self.json_schema), document)
        if problem is not None:
            raise Mismatch(f"answer does not match schema {self.name}: {problem}")
        return document

    def _validate_model(self, document: Any) -> Any:
        from pydantic import ValidationError

        try:
            return self.model.model_validate(document)
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ()))
            subject = f"field '{where}'" if where else "the answer"
            raise Mismatch(f"answer does not match schema {self.name}: {subject}: {first.get('msg')}") from None

    def as_dict(self, value: Any) -> Any:
        """A validated object as plain JSON data (a model instance dumped), for tables and logs."""
        return value.model_dump(mode="json") if self.model is not None and value is not None else value


def resolve(spec: Any) -> OutputSchema:
    """An :class:`OutputSchema` from a pydantic model class, a JSON-schema dict or a ``.json`` file path."""
    if isinstance(spec, OutputSchema):
        return spec
    if _is_model_class(spec):
        return OutputSchema(_safe_name(spec.__name__), spec.model_json_schema(), spec)
    if isinstance(spec, dict):
        return _from_dict(spec, "the schema dict")
    if isinstance(spec, (str, Path)):
        return _from_file(Path(spec))
    raise ConfigError(f"schema={type(spec).__name__} is not a schema: give a pydantic model class, a JSON-schema "
                      "dict or a path to a .json schema file")


def _is_model_class(spec: Any) -> bool:
    if not isinstance(spec, type):
        return False
    try:
        from pydantic import BaseModel
    except ImportError:  # pragma: no cover - pydantic comes with MLflow
        return False
    return issubclass(spec, BaseModel)


def _from_file(path: Path) -> OutputSchema:
    if path.suffix != ".json":
        raise ConfigError(f"schema {str(path)!r} is not a .json file, a notebook variable or a schema: give a "
                          "pydantic model class, a JSON-schema dict or a path to a .json schema file")
    if not path.is_file():
        raise ConfigError(f"schema file {str(path)!r} not found (from {Path.cwd()})")
    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ConfigError(f"schema file {str(path)!r} is not readable JSON: {err}") from None
    if not isinstance(schema, dict):
        raise ConfigError(f"schema file {str(path)!r} holds a {type(schema).__name__}, not a JSON schema object")
    return _from_dict(schema, f"schema file {str(path)!r}", default_name=path.stem)


def _from_dict(schema: dict[str, Any], what: str, default_name: str = "answer") -> OutputSchema:
    from jsonschema.exceptions import SchemaError

    try:
        _validator(schema).check_schema(schema)
    except SchemaError as err:
        raise ConfigError(f"{what} is not a valid JSON schema: {err.message}") from None
    return OutputSchema(_safe_name(str(schema.get("title") or default_name)), schema)


def _safe_name(name: str) -> str:
    """OpenAI's ``json_schema.name`` allows ``[A-Za-z0-9_-]{1,64}``."""
    return (_NAME.sub("_", name).strip("_") or "answer")[:64]


def _validator(schema: dict[str, Any]) -> Any:
    from jsonschema import validators

    cls = validators.validator_for(schema)
    return cls(schema)


def _first_problem(validator: Any, document: Any) -> str | None:
    """``field 'age': 'old' is not of type 'integer'``, or None when the document validates."""
    from jsonschema.exceptions import best_match

    error = best_match(validator.iter_errors(document))
    if error is None:
        return None
    path = [str(p) for p in error.absolute_path]
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = next((r for r in error.validator_value if r not in error.instance), None)
        if missing is not None:
            path.append(str(missing))
    subject = f"field '{'.'.join(path)}'" if path else "the answer"
    return f"{subject}: {error.message}"


def correction(error: Mismatch) -> str:
    """The user message of the one retry: the validation error, shown to the model."""
    return f"Your answer did not match the schema: {error}. Answer again with JSON only, matching the schema."
