"""The OpenAI wire shapes the serve endpoint answers with: a chat completion, its stream chunks, an error."""
from __future__ import annotations

import json
import time
from typing import Any

ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 413: "invalid_request_error", 429: "rate_limit_error",
               502: "upstream_error", 503: "service_unavailable"}


def error(status: int, message: str, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": ERROR_TYPES.get(status, "api_error"), "param": None,
                      "code": code}}


def usage(result_usage: dict[str, int]) -> dict[str, int]:
    return {"prompt_tokens": int(result_usage.get("prompt_tokens", 0)),
            "completion_tokens": int(result_usage.get("completion_tokens", 0)),
            "total_tokens": int(result_usage.get("total_tokens", 0))}


def completion(completion_id: str, model: str, text: str, finish_reason: str | None,
               result_usage: dict[str, int]) -> dict[str, Any]:
    return {"id": completion_id, "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": finish_reason or "stop", "logprobs": None}],
            "usage": usage(result_usage)}


def chunk(completion_id: str, model: str, delta: dict[str, Any] | None = None, finish_reason: str | None = None,
          chunk_usage: dict[str, int] | None = None) -> bytes:
    body: dict[str, Any] = {"id": completion_id, "object": "chat.completion.chunk", "created": int(time.time()),
                            "model": model,
                            "choices": [] if chunk_usage is not None else
                            [{"index": 0, "delta": delta or {}, "finish_reason": finish_reason, "logprobs": None}]}
    if chunk_usage is not None:
        body["usage"] = usage(chunk_usage)
    return b"data: " + json.dumps(body, ensure_ascii=False).encode("utf-8") + b"\n\n"


def stream_error(message: str) -> bytes:
    return b"data: " + json.dumps(error(502, message)).encode("utf-8") + b"\n\n"


DONE = b"data: [DONE]\n\n"
