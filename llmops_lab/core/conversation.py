"""Conversations across cells: a named chat whose turns are sent again with each new message.

A :class:`Conversation` lives in the kernel (:func:`conversations`, by name) and keeps what the user typed and
what the model answered. Each :meth:`Conversation.send` is one call through the call core (``core/call.py``):
``prepare(..., history=...)`` puts the earlier turns between the system message and the new user message, and
``complete`` records it like any call, with ``conversation`` {id, name, turn, dropped, parent} in its record.
The writer tags the run with the conversation and the turn and gives its trace MLflow's session metadata.

After a kernel restart :func:`resume` rebuilds a conversation from its runs (``tracking/reader``). Stored turns
were masked before storage, so a resumed conversation holds masked text where a secret was.

The context guard: when a request would pass ``chat_max_chars`` (a setting; ``max_chars=`` per conversation),
the oldest turns are left out of the request, and the result's ``note`` says so (printed too: never silently).
The kernel keeps every turn; only the request is shortened.
"""
from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass
from typing import Any, Mapping

from llmops_lab.config import get_settings
from llmops_lab.core.results import LLMResult
from llmops_lab.exceptions import ConfigError, StreamInterrupted
from llmops_lab.providers.base import Message, OnText

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_KERNEL: dict[str, "Conversation"] = {}  # the conversations of this kernel, by name


@dataclass
class Turn:
    """One exchange: the user message as sent (rendered) and the model's answer."""

    number: int
    user: str
    assistant: str


def check_conversation_name(name: Any) -> str:
    """A conversation name: letters, digits, ``_ . -``, up to 64 characters (it becomes a tag value)."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ConfigError(f"conversation name {name!r} is not valid: use letters, digits, _ . - "
                          "(up to 64 characters, starting with a letter or digit), e.g. support-bot")
    from llmops_lab.trust.redaction import find_secrets

    if find_secrets(name):  # a name is stored as a tag, unmasked
        raise ConfigError("the conversation name looks like a secret: refused; choose a plain name")
    return name


class Conversation:
    """A chat across calls (and cells): each :meth:`send` carries the earlier turns.

    >>> chat = llmops_lab.Conversation("support", model="openai:gpt-4o-mini", system="Be brief.")  # doctest: +SKIP
    >>> chat.send("My order {{ order }} is late", {"order": "A-17"}).text                     # doctest: +SKIP
    >>> chat.send("What can I do?").text            # the request holds system, turn 1 and this  # doctest: +SKIP
    >>> chat.turns[0].user, len(chat)                                                            # doctest: +SKIP

    ``model`` and ``system`` default to the configured model and no system message; ``max_chars`` to the
    ``chat_max_chars`` setting (24,000 characters, about 6,000 tokens). A new conversation replaces any of the
    same name in this kernel (``%llm chat`` lists them; ``%%llm --chat NAME`` continues one).
    """

    def __init__(self, name: str, *, model: str | None = None, system: str | None = None,
                 max_chars: int | None = None):
        self.name = check_conversation_name(name)
        for what, value in (("model", model), ("system", system)):
            if value is not None and not isinstance(value, str):
                raise ConfigError(f"Conversation {what} must be text (str), not {type(value).__name__}")
        if max_chars is not None and (isinstance(max_chars, bool) or not isinstance(max_chars, int)
                                      or max_chars < 1):
            raise ConfigError(f"max_chars={max_chars!r} must be a whole number of characters, at least 1")
        self.id = uuid.uuid4().hex
        self.model = model
        self.system = system
        self.max_chars = max_chars
        self.turns: list[Turn] = []
        self.parent: dict[str, Any] | None = None  # a fork: {"id", "turns"} of the conversation it copied
        self.resumed = False  # rebuilt from MLflow: its text is the masked text that was stored
        _KERNEL[self.name] = self

    @classmethod
    def resume(cls, name: str, experiment: str | None = None) -> "Conversation":
        """Conversation ``name`` rebuilt from MLflow after a restart (masked text; :func:`resume`).

        >>> chat = llmops_lab.Conversation.resume("support")                                  # doctest: +SKIP
        """
        return resume(name, experiment)

    def __len__(self) -> int:
        return len(self.turns)

    def __repr__(self) -> str:
        return f"Conversation({self.name!r}, {len(self.turns)} turns, id {self.id[:8]})"

    def history(self) -> list[Message]:
        """Every earlier turn as chat messages (user, assistant, ...), oldest first."""
        return [m for t in self.turns for m in ({"role": "user", "content": t.user},
                                                  {"role": "assistant", "content": t.assistant})]

    def send(self, text: str, variables: Mapping[str, Any] | None = None, *, model: str | None = None,
             name: str | None = None, max_cost: float | None = None, force: bool = False,
             logprobs: bool = False, top_logprobs: int | None = None, stream: bool = False,
             on_text: OnText | None = None, schema: Any = None, **params: Any) -> LLMResult:
        """The next turn: ``text`` (a template, like :func:`llmops_lab.run`'s) rendered with ``variables``, sent
        after the earlier turns; the answer joins the conversation. Same keywords as ``run``. An interrupted
        stream or a failed call adds no turn (the run is logged all the same). With ``schema=`` the answer is
        validated like ``run``'s (``r.data``); the turn's assistant message is the validated answer's JSON text
        (a rejected first answer and the retry's correction stay out of the conversation: only in the run)."""
        from llmops_lab.core.call import check_streaming, complete, prepare, stream_target
        from llmops_lab.core.options import refuse_options

        refuse_options("send", params)
        check_streaming(logprobs, stream, on_text, where="send")
        if schema is not None and (stream or on_text is not None):
            raise ConfigError("send(): a schema answer is validated whole, so it does not stream: drop stream= or "
                              "schema=")
        started = time.perf_counter()
        settings = get_settings()
        history = self.history()
        call = prepare(text, variables, model=model or self.model, name=name, system=self.system, params=params,
                       settings=settings, logprobs=logprobs, top_logprobs=top_logprobs, history=history,
                       schema=schema)
        dropped = fit_context(call.messages, len(history), self.max_chars or settings.chat_max_chars)
        call.conversation = {"id": self.id, "name": self.name, "turn": len(self.turns) + 1, "dropped": dropped,
                             "parent": self.parent}
        note = self._dropped_note(dropped, self.max_chars or settings.chat_max_chars)
        if note:
            print(note, flush=True)  # before the answer streams: the user sees why it may forget
        try:
            result = complete(call, settings, max_cost=max_cost, force=force,
                              on_text=stream_target(stream, on_text), started=started)
        except StreamInterrupted as err:
            err.result.note = note
            raise
        result.note = note
        self.turns.append(Turn(len(self.turns) + 1, call.messages[-1]["content"], result.text))
        return result

    def _dropped_note(self, dropped: int, limit: int) -> str | None:
        if not dropped:
            return None
        return (f"note: {self.name}: the oldest {dropped} turn(s) were not sent, to stay under "
                f"{limit:,} characters (chat_max_chars); the transcript keeps them")

    def reset(self) -> None:
        """Forget every turn; the next turn starts a new conversation id (the logged runs stay)."""
        self.turns = []
        self.id = uuid.uuid4().hex
        self.parent = None
        self.resumed = False

    def fork(self, new_name: str) -> "Conversation":
        """A copy under ``new_name`` with this conversation's turns; the two continue apart."""
        if check_conversation_name(new_name) in _KERNEL:
            raise ConfigError(f"a conversation {new_name!r} exists in this kernel: fork to another name, or "
                              f"clear it first (%llm chat {new_name} --reset)")
        copy = Conversation(new_name, model=self.model, system=self.system, max_chars=self.max_chars)
        copy.turns = [Turn(t.number, t.user, t.assistant) for t in self.turns]
        copy.parent = {"id": self.id, "turns": len(self.turns)}
        copy.resumed = self.resumed
        return copy

    def transcript(self) -> str:
        """The conversation as Markdown, oldest turn first (the caller masks it for display)."""
        lines = [f"**{self.name}** · {len(self.turns)} turn(s) · {self.model or get_settings().model} · "
                 f"conversation {self.id[:8]}"]
        if self.resumed:
            lines.append("_Rebuilt from MLflow: values masked when the turns were logged stay masked._")
        if self.system:
            lines.append(f"**system:** {self.system}")
        for turn in self.turns:
            lines.append(f"**user ({turn.number}):** {turn.user}")
            lines.append(f"**assistant ({turn.number}):** {turn.assistant}")
        return "\n\n".join(lines)


def fit_context(messages: list[Message], history_len: int, limit: int) -> int:
    """Drop the oldest history turns from ``messages`` (in place) until the request is at most ``limit``
    characters; returns how many turns were dropped. The system message and the new message always stay.

    >>> sent = [{"role": "user", "content": "old question"}, {"role": "assistant", "content": "old answer"},
    ...         {"role": "user", "content": "new"}]
    >>> fit_context(sent, 2, 20), [m["content"] for m in sent]
    (1, ['new'])
    """
    start = 1 if messages and messages[0]["role"] == "system" else 0
    dropped = 0
    total = sum(len(m["content"]) for m in messages)
    while total > limit and history_len - 2 * dropped >= 2:
        pair = messages[start:start + 2]
        total -= sum(len(m["content"]) for m in pair)
        del messages[start:start + 2]
        dropped += 1
    return dropped


# -- the kernel's conversations ------------------------------------------------------------------------

def conversations() -> dict[str, Conversation]:
    """The conversations of this kernel, by name (a copy of the mapping)."""
    return dict(_KERNEL)


def get(name: str) -> Conversation:
    """The kernel's conversation ``name``; a one-line error naming the others when there is none."""
    check_conversation_name(name)
    if name not in _KERNEL:
        known = ", ".join(sorted(_KERNEL)) or "none yet"
        raise ConfigError(f"no conversation {name!r} in this kernel (conversations: {known}); start one with "
                          f"%%llm --chat {name}, or rebuild it from MLflow with %llm chat {name} --resume")
    return _KERNEL[name]


def continue_or_start(name: str, *, model: str | None = None, system: str | None = None) -> Conversation:
    """``%%llm --chat NAME``: the kernel's conversation (a ``model``/``system`` given changes it from this turn
    on), else a new one."""
    if name not in _KERNEL:
        return Conversation(name, model=model, system=system)
    conversation = _KERNEL[name]
    if model is not None:
        conversation.model = model
    if system is not None:
        conversation.system = system
    return conversation


def forget(name: str) -> None:
    _KERNEL.pop(name, None)


def resume(name: str, experiment: str | None = None) -> Conversation:
    """Rebuild conversation ``name`` from its runs in MLflow (its newest id in this notebook's experiment),
    a fork's copied turns included; it replaces any conversation of that name in this kernel."""
    from llmops_lab.tracking.reader import conversation_turns

    check_conversation_name(name)
    found = conversation_turns(name=name, experiment=experiment)
    if found is None:
        raise ConfigError(f"no logged turns of conversation {name!r} in MLflow (experiment "
                          f"{_experiment_label(experiment)}): nothing to resume")
    conversation = Conversation(name, model=found["model"], system=found["system"])
    conversation.id = found["id"]
    conversation.parent = found["parent"]
    conversation.turns = _inherited_turns(found["parent"], experiment) + [
        Turn(t["turn"], t["user"], t["assistant"]) for t in found["turns"]]
    conversation.resumed = True
    return conversation


def _inherited_turns(parent: dict[str, Any] | None, experiment: str | None) -> list[Turn]:
    """The turns a fork copied: the first ``parent["turns"]`` of its parent (itself perhaps a fork)."""
    from llmops_lab.tracking.reader import conversation_turns

    if not parent:
        return []
    found = conversation_turns(conversation_id=parent["id"], experiment=experiment)
    if found is None:
        return []
    turns = _inherited_turns(found["parent"], experiment) + [Turn(t["turn"], t["user"], t["assistant"])
                                                             for t in found["turns"]]
    return turns[:int(parent["turns"])]


def _experiment_label(experiment: str | None) -> str:
    from llmops_lab.tracking import context

    return experiment or context.experiment_name(get_settings(), context.notebook_path())
