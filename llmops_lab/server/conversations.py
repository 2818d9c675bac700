"""A conversation's turns for the panel: every run of one conversation id, in turn order, with short excerpts.

The runs are found by their ``llmops.conversation`` tag in one experiment of the request's store (the run's
own experiment when asked from a run detail), so a request never reaches another project's runs. The
excerpts are the stored artifacts (``messages.json``: the user message as sent, ``output.md``: the answer),
masked before storage like everything else; nothing is unmasked here. Failed and interrupted turns are
listed too (with their status): the panel shows what happened, the kernel's ``--resume`` skips them.
"""
from __future__ import annotations

import json
import re
from typing import Any

from llmops_lab.server.errors import ApiError
from llmops_lab.server.stores import Store, experiment_id
from llmops_lab.tracking import reader
from llmops_lab.tracking import tags as T

CONVERSATION_ID = re.compile(r"^[0-9a-f]{32}$")  # uuid4().hex, as core/conversation.py makes it
MAX_TURNS = 100  # runs listed per conversation (the oldest first; `truncated` says more exist)
MAX_EXCERPT = 240  # characters of a user message or an answer in the list


def check_conversation_id(value: str) -> str:
    if not isinstance(value, str) or not CONVERSATION_ID.match(value):
        raise ApiError(400, f"conversation id {str(value)[:40]!r} is invalid: it is 32 hexadecimal characters "
                            "(the llmops.conversation tag of a turn's run)")
    return value


def excerpt(text: str | None, limit: int = MAX_EXCERPT) -> str | None:
    """``text`` on one line (whitespace runs become one space), cut at ``limit`` characters with "…"."""
    if text is None:
        return None
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit - 1].rstrip() + "…"


def _user_message(client: Any, run: Any) -> str | None:
    try:
        sent = json.loads(reader.artifact_text(client, run, T.MESSAGES_ARTIFACT) or "[]")
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    last = sent[-1] if isinstance(sent, list) and sent else None
    return last.get("content") if isinstance(last, dict) and isinstance(last.get("content"), str) else None


def _answer(client: Any, run: Any) -> str | None:
    try:
        return reader.artifact_text(client, run, T.OUTPUT_ARTIFACT)
    except (OSError, UnicodeDecodeError):
        return None


def _turn_number(run: Any) -> int:
    value = run.data.tags.get(T.TURN, "")
    return int(value) if value.isdigit() else 0


def _turn(client: Any, run: Any) -> dict[str, Any]:
    error = run.data.tags.get(T.ERROR)
    return {"turn": _turn_number(run), "run_id": run.info.run_id, "name": run.info.run_name,
            "status": run.info.status, "start_time": run.info.start_time,
            "interrupted": run.data.tags.get(T.INTERRUPTED) == "true",
            "user": excerpt(_user_message(client, run)), "assistant": excerpt(_answer(client, run)),
            "error": excerpt(error.strip().splitlines()[0]) if error and error.strip() else None}


def turns_of(client: Any, experiment_ids: list[str], conversation_id: str) -> dict[str, Any] | None:
    """``{id, name, parent, turns: [Turn], truncated}`` of one conversation, ordered by turn number then start
    time (a failed turn and its retry share a number); None when no run carries that id."""
    runs = reader.search_runs(client, experiment_ids, T.tag_filter(T.CONVERSATION, conversation_id),
                              order_by="attributes.start_time ASC", limit=MAX_TURNS + 1)
    if not runs:
        return None
    truncated = len(runs) > MAX_TURNS
    runs = sorted(runs[:MAX_TURNS], key=lambda r: (_turn_number(r), r.info.start_time))
    last = runs[-1].data.tags
    parent_id, _, copied = (last.get(T.CONVERSATION_PARENT) or "").partition(":")
    return {"id": conversation_id, "name": last.get(T.CONVERSATION_NAME),
            "parent": {"id": parent_id, "turns": int(copied)} if parent_id and copied.isdigit() else None,
            "turns": [_turn(client, r) for r in runs], "truncated": truncated}


def of_run(client: Any, run: Any) -> dict[str, Any] | None:
    """The conversation of a turn's run (searched in the run's own experiment), with ``current`` = its turn;
    None for a run that is no conversation turn."""
    conversation_id = run.data.tags.get(T.CONVERSATION)
    if not conversation_id or not CONVERSATION_ID.match(conversation_id):
        return None
    found = turns_of(client, [run.info.experiment_id], conversation_id)
    if found is None:  # not searchable yet (the run was just written): at least the run itself
        found = {"id": conversation_id, "name": run.data.tags.get(T.CONVERSATION_NAME), "parent": None,
                 "turns": [_turn(client, run)], "truncated": False}
    return {**found, "current": run.info.run_id}


def conversation(store: Store, conversation_id: str, experiment: str | None = None) -> dict[str, Any]:
    """``GET conversations/<id>``: the turns of a conversation of the store's (or ``experiment``'s) experiment."""
    check_conversation_id(conversation_id)
    client = store.client()
    exp_id = experiment_id(store, client, experiment or store.experiment) if client is not None else None
    found = turns_of(client, [exp_id], conversation_id) if exp_id is not None else None
    if found is None:
        raise ApiError(404, f"conversation {conversation_id} not found in experiment "
                            f"{experiment or store.experiment!r} of this project's store")
    return {**found, "current": None}
