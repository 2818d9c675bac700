"""``PromptClient``: an application's helper for ``llmops-lab serve`` (optional: the plain openai SDK works).

    >>> from llmops_lab.client import PromptClient                                    # doctest: +SKIP
    >>> prompts = PromptClient("http://127.0.0.1:8400/v1", key="llk-…")                 # doctest: +SKIP
    >>> answer = prompts.complete("summarize@production", article=text)                # doctest: +SKIP
    >>> answer.text, answer.version                                                    # doctest: +SKIP
    ('…', 'summarize@4')

It calls ``prompt:REF`` with the variables, retries rate limits and server errors (honouring ``Retry-After``,
through the SDK's own retries), and remembers which version each reference last answered with
(``prompts.versions``), so an application can log or pin it. Imports only the openai SDK.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

VERSION_HEADER = "x-llmops-prompt-version"


@dataclass(frozen=True)
class PromptAnswer:
    text: str
    version: str | None  # NAME@VERSION that answered
    usage: dict[str, int]
    finish_reason: str | None
    raw: Any  # the SDK's ChatCompletion


class PromptClient:
    """A client of one serve endpoint with one key."""

    def __init__(self, base_url: str, key: str, *, timeout: float = 60.0, max_retries: int = 3):
        import openai

        self._client = openai.OpenAI(base_url=base_url, api_key=key, timeout=timeout, max_retries=max_retries)
        self.versions: dict[str, str] = {}  # ref -> the NAME@VERSION it last answered with

    def complete(self, ref: str, messages: list[dict[str, str]] | None = None, /, **variables: Any) -> PromptAnswer:
        """Render prompt ``ref`` (``NAME@ALIAS`` or ``NAME@VERSION``) with ``variables`` and return the answer.
        Generation parameters go in ``params=`` (temperature, max_tokens, top_p, stop, seed)."""
        params = variables.pop("params", None) or {}
        raw = self._client.chat.completions.with_raw_response.create(
            model=f"prompt:{ref}", messages=messages or [], extra_body={"variables": variables}, **params)
        completion = raw.parse()
        version = raw.headers.get(VERSION_HEADER)
        if version:
            self.versions[ref] = version
        choice = completion.choices[0]
        usage = completion.usage.model_dump() if completion.usage else {}
        return PromptAnswer(choice.message.content or "", version, usage, choice.finish_reason, completion)

    def stream(self, ref: str, messages: list[dict[str, str]] | None = None, /, **variables: Any) -> Iterator[str]:
        """The answer's text pieces as they arrive; ``versions[ref]`` is set when the stream starts."""
        params = variables.pop("params", None) or {}
        with self._client.chat.completions.with_streaming_response.create(
                model=f"prompt:{ref}", messages=messages or [], extra_body={"variables": variables}, stream=True,
                **params) as response:
            version = response.headers.get(VERSION_HEADER)
            if version:
                self.versions[ref] = version
            for chunk in response.parse():
                for choice in chunk.choices:
                    if choice.delta and choice.delta.content:
                        yield choice.delta.content
