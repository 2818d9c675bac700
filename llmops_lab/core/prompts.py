"""A registered prompt as an application calls it: ``llmops_lab.load_prompt("summarize@production")``.

    >>> summarize = llmops_lab.load_prompt("summarize@production")          # doctest: +SKIP
    >>> summarize(text=article).text                                         # doctest: +SKIP

``load_prompt`` resolves the alias every time it is called, so moving the alias (``promote``) changes what
applications run without a redeploy. The version comes from the registry (:mod:`llmops_lab.tracking.registry`);
calling it is an ordinary tracked call (:func:`llmops_lab.core.call.run`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from llmops_lab.core.templates import PromptTemplate


@dataclass
class LoadedPrompt:
    """A registered prompt version an application calls: template + model + parameters.

    ``prompt(text=...)`` renders and calls the model through ``llmops_lab.run`` (tracked, cached budget
    rules apply); ``prompt.render(text=...)`` only renders.
    """

    name: str
    version: int
    template: str
    model: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    aliases: list[str] = field(default_factory=list)
    ref: str = ""
    schema: dict[str, Any] | None = None  # the JSON schema of the version's model_config: answers are validated

    @property
    def uri(self) -> str:
        return f"prompts:/{self.name}/{self.version}"

    def render(self, variables: Mapping[str, Any] | None = None, **kwargs: Any) -> str:
        return PromptTemplate(self.template).render({**(variables or {}), **kwargs})

    def __call__(self, variables: Mapping[str, Any] | None = None, **kwargs: Any):
        from llmops_lab.core.call import run

        return run(self.template, {**(variables or {}), **kwargs}, model=self.model, name=self.name,
                   schema=self.schema, **self.params)

    def __repr__(self) -> str:
        return (f"LoadedPrompt({self.ref or self.uri} -> {self.uri}, model={self.model!r}, params={self.params!r})")


def load_prompt(ref: str) -> LoadedPrompt:
    """``load_prompt("summarize@production")``: the version the alias points at *now*, with its model config."""
    from llmops_lab.tracking import registry

    version = registry.get_version(ref)
    config = getattr(version, "model_config", None)
    model, params = registry.params_from_config(config)
    return LoadedPrompt(version.name, int(version.version), version.template, model, params,
                        list(getattr(version, "aliases", None) or []), ref=str(ref),
                        schema=registry.schema_from_config(config))
