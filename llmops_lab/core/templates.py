"""Prompt templates: Jinja2 ``{{ var }}`` in a sandbox with StrictUndefined (the MLflow registry's syntax).

Pure: parsing, variables, rendering and hashing. Registering in MLflow lives in ``tracking``.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any, Mapping

from llmops_lab.exceptions import TemplateError

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


@lru_cache(maxsize=1)
def _environment():
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    # keep_trailing_newline: the text sent is exactly what the user wrote.
    return ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined, keep_trailing_newline=False,
                                         autoescape=False)


def check_name(name: str) -> str:
    """A prompt name usable in MLflow's registry, or a one-line error."""
    if not NAME_PATTERN.match(name):
        raise TemplateError(f"prompt name {name!r} is invalid: use letters, digits, '-', '_' or '.' (max 100)")
    return name


@lru_cache(maxsize=256)
def _compile(text: str) -> tuple[Any, frozenset[str]]:
    """Parse once, per distinct text: (compiled template, undeclared variables)."""
    import jinja2
    from jinja2 import meta

    if not text.strip():
        raise TemplateError("the prompt is empty: write the prompt in the cell body")
    env = _environment()
    try:
        ast = env.parse(text)
    except jinja2.TemplateSyntaxError as err:
        raise TemplateError(f"template syntax error on line {err.lineno}: {err.message}") from None
    return env.from_string(ast), frozenset(meta.find_undeclared_variables(ast))


@dataclass(frozen=True)
class PromptTemplate:
    """A prompt template, e.g. ``PromptTemplate("Summarize: {{ article }}").render({"article": text})``."""

    text: str

    @property
    def _compiled(self):
        return _compile(self.text)[0]

    @property
    def variables(self) -> frozenset[str]:
        """Names the template reads from its variables (loop variables excluded)."""
        return _compile(self.text)[1]

    @cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    def auto_name(self) -> str:
        """A stable registry name for an unnamed cell: the same text always gets the same name."""
        return f"prompt-{self.sha256[:8]}"

    def render(self, variables: Mapping[str, Any]) -> str:
        """Render with the given variables. Missing variables and sandbox escapes are TemplateErrors."""
        import jinja2
        from jinja2.sandbox import SecurityError

        missing = sorted(v for v in self.variables if v not in variables)
        if missing:
            names = ", ".join(missing)
            raise TemplateError(f"template variable {names} not defined: set it in the notebook "
                                f"or pass variables={{{missing[0]!r}: ...}}")
        values = {name: variables[name] for name in self.variables}
        try:
            return self._compiled.render(values)
        except SecurityError as err:
            raise TemplateError(f"template refused by the sandbox: {err}") from None
        except jinja2.UndefinedError as err:
            raise TemplateError(f"template error: {err.message}") from None
        except Exception as err:  # noqa: BLE001 - user templates can fail in many ways, all user errors
            raise TemplateError(f"template failed to render: {type(err).__name__}: {err}") from None

    def values_for_log(self, variables: Mapping[str, Any], limit: int = 2000) -> dict[str, str]:
        """The variables this template used, as short strings for the trace inputs."""
        out = {}
        for name in sorted(self.variables):
            if name in variables:
                text = str(variables[name])
                out[name] = text if len(text) <= limit else text[:limit] + f"… [{len(text) - limit} more chars]"
        return out
