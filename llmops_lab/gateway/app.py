"""The serve endpoint's Starlette application: ``/v1/chat/completions``, ``/v1/models``, ``/healthz``.

Every request is authenticated (``Authorization: Bearer llk-…``, :mod:`.keys`), bounded in size, checked
against its key's prompts, rate and budget, then run through the one call core in a worker thread, so it is
redacted, recorded and spooled like a notebook call (``llmops.kind=serve``, user ``serve-key:NAME``). User
errors are one-line OpenAI-shaped errors, never tracebacks.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from dataclasses import dataclass, field, replace
from typing import Any

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from llmops_lab.gateway import shapes
from llmops_lab.tracking import tags as T
from llmops_lab.gateway.keys import KeyInfo, KeyStore
from llmops_lab.gateway.limits import Limits, seconds_to_midnight_utc
from llmops_lab.gateway.resolver import PromptResolver, RegistryUnavailable
from llmops_lab.gateway.windows import WINDOW_S, Windows
from llmops_lab.exceptions import BudgetError, ConfigError, LlmopsError, ProviderError, TemplateError

MAX_BODY_BYTES = 1_000_000
OVERRIDABLE = ("temperature", "max_tokens", "top_p", "stop", "seed")  # request fields a caller may set
PROMPT_PREFIX = "prompt:"
VERSION_HEADER = "x-llmops-prompt-version"
PASSTHROUGH_NAME = "serve-passthrough"
PASSTHROUGH_TEMPLATE = "{{ input }}"  # a plain model call: the last user message, inserted as it is


class HTTPProblem(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


@dataclass
class CallSpec:
    """What one request asks the call core for."""

    template: str
    variables: dict[str, Any]
    model: str | None
    name: str
    params: dict[str, Any]
    system: str | None = None
    history: list[dict[str, str]] = field(default_factory=list)
    extra: list[dict[str, str]] = field(default_factory=list)  # messages after the rendered prompt
    schema: Any = None
    version: str | None = None  # NAME@VERSION of a served prompt


def create_app(max_body_bytes: int = MAX_BODY_BYTES, window_s: float = WINDOW_S) -> Starlette:
    """The ASGI app for the project in the current directory (uvicorn's factory)."""
    from llmops_lab.config import get_settings

    import os

    # A registry read must fail fast when the store is down (MLflow's default retries for minutes): the
    # resolver then serves the last known version. The writer retries on its own schedule.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    settings = get_settings()
    state = _State(KeyStore(settings.home), Limits(settings.home / "serve_keys.db"),
                   PromptResolver(settings.home, settings.resolved_tracking_uri()), max_body_bytes,
                   Windows(window_s=window_s))
    routes = [Route("/v1/chat/completions", state.chat, methods=["POST"]),
              Route("/v1/models", state.models, methods=["GET"]),
              Route("/healthz", state.health, methods=["GET"])]
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        # Import the registry's client and the providers before the first request, not during it: uvicorn
        # accepts connections only after this, so no caller waits seconds for a worker's imports.
        await asyncio.to_thread(_warm)
        state.windows.start()
        yield
        state.windows.close_all()  # after the last response: every row's window becomes its run

    return Starlette(routes=routes, exception_handlers={HTTPProblem: _problem, Exception: _unexpected},
                     lifespan=lifespan)


def _warm() -> None:
    import openai  # noqa: F401

    from llmops_lab.tracking.clients import kernel_client

    try:
        kernel_client()
    except Exception:  # noqa: BLE001 - the store may be down at start: the last known versions still serve
        pass


async def _problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPProblem)
    return JSONResponse(shapes.error(exc.status, exc.message), status_code=exc.status, headers=exc.headers)


async def _unexpected(request: Request, exc: Exception) -> Response:
    import logging

    logging.getLogger("llmops_lab.serve").exception("unexpected error")  # the server's log, never the client
    return JSONResponse(shapes.error(500, "internal error: see the server log"), status_code=500)


class _State:
    def __init__(self, keys: KeyStore, limits: Limits, resolver: PromptResolver, max_body_bytes: int,
                 windows: Windows):
        self.keys, self.limits, self.resolver, self.max_body_bytes = keys, limits, resolver, max_body_bytes
        self.windows = windows

    # -- routes -----------------------------------------------------------------------------------------
    async def chat(self, request: Request) -> Response:
        key = self._authenticate(request)
        body = await self._json_body(request)
        spec = await asyncio.to_thread(self._spec, body, key)
        self._admit(key)
        completion_id = "chatcmpl-" + _new_id()
        model_label = str(body["model"])
        headers = {VERSION_HEADER: spec.version} if spec.version else {}
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            pieces = self._start_stream(spec, key)
            first = await pieces.get()
            if first[0] == "error":  # failed before any text: a plain error answer with its status
                raise first[1] if isinstance(first[1], HTTPProblem) else HTTPProblem(500, _client_message(first[1]))
            return StreamingResponse(self._events(first, pieces, key, completion_id, model_label, include_usage),
                                     media_type="text/event-stream", headers=headers)
        result = await asyncio.to_thread(_run, spec, key.name, self.windows)
        return JSONResponse(shapes.completion(completion_id, model_label, result.text, result.finish_reason,
                                              result.usage), headers=headers,
                            background=BackgroundTask(self.limits.add_spend, key.name, result.cost_usd))

    async def models(self, request: Request) -> Response:
        key = self._authenticate(request)
        served = await asyncio.to_thread(_served_models, key)
        return JSONResponse({"object": "list", "data": [{"id": m, "object": "model", "created": 0,
                                                         "owned_by": "llmops-lab"} for m in served]})

    async def health(self, request: Request) -> Response:
        degraded = sorted(self.resolver.degraded)
        return JSONResponse({"status": "degraded" if degraded else "ok",
                             "detail": f"serving the last known version of {len(degraded)} prompt(s): the "
                                       "registry is unreachable" if degraded else None})

    # -- checks -----------------------------------------------------------------------------------------
    def _authenticate(self, request: Request) -> KeyInfo:
        scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise HTTPProblem(401, "missing API key: send Authorization: Bearer <key> (llmops-lab serve key create)")
        info = self.keys.lookup(token.strip())
        if info is None:
            raise HTTPProblem(401, "invalid or revoked API key")
        return info

    async def _json_body(self, request: Request) -> dict[str, Any]:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            raise HTTPProblem(413, f"request body over {self.max_body_bytes} bytes")
        raw = bytearray()
        async for part in request.stream():
            raw += part
            if len(raw) > self.max_body_bytes:
                raise HTTPProblem(413, f"request body over {self.max_body_bytes} bytes")
        try:
            body = json.loads(bytes(raw) or b"null")
        except ValueError:
            raise HTTPProblem(400, "the request body is not JSON") from None
        if not isinstance(body, dict) or not isinstance(body.get("model"), str):
            raise HTTPProblem(400, "the body must be a JSON object with a model (prompt:NAME@ALIAS or provider:model)")
        return body

    def _admit(self, key: KeyInfo) -> None:
        wait = self.limits.rate_wait(key.name, key.rpm)
        if wait is not None:
            raise HTTPProblem(429, f"key {key.name} is over its limit of {key.rpm} requests per minute",
                              {"Retry-After": str(max(1, math.ceil(wait)))})
        if key.max_cost_day is not None and self.limits.spent_today(key.name) >= key.max_cost_day:
            raise HTTPProblem(429, f"key {key.name} has spent its budget of ${key.max_cost_day:g} today (UTC)",
                              {"Retry-After": str(seconds_to_midnight_utc())})

    def _spec(self, body: dict[str, Any], key: KeyInfo) -> CallSpec:
        model = body["model"].strip()
        messages = _messages(body.get("messages"))
        params = {k: body[k] for k in OVERRIDABLE if body.get(k) is not None}
        if body.get("max_completion_tokens") is not None and "max_tokens" not in params:
            params["max_tokens"] = body["max_completion_tokens"]
        if model.startswith(PROMPT_PREFIX):
            return self._prompt_spec(model[len(PROMPT_PREFIX):], body, messages, params, key)
        if key.prompts:
            raise HTTPProblem(403, f"key {key.name} may call only the prompts {', '.join(key.prompts)}, not the "
                                   f"model {model}")
        if not messages or messages[-1]["role"] != "user":
            raise HTTPProblem(400, "messages must end with a user message")
        system = "\n\n".join(m["content"] for m in messages if m["role"] == "system") or None
        history = [m for m in messages[:-1] if m["role"] != "system"]
        return CallSpec(PASSTHROUGH_TEMPLATE, {"input": messages[-1]["content"]}, model, PASSTHROUGH_NAME, params,
                        system=system, history=history)

    def _prompt_spec(self, ref: str, body: dict[str, Any], messages: list[dict[str, str]],
                     params: dict[str, Any], key: KeyInfo) -> CallSpec:
        from llmops_lab.tracking.registry import parse_ref

        try:
            name = parse_ref(ref).name
        except ConfigError as err:
            raise HTTPProblem(400, str(err)) from None
        if "@" not in ref:
            raise HTTPProblem(400, f"prompt:{ref} needs an alias or version: prompt:{ref}@production or @3")
        if not key.allows(name):
            raise HTTPProblem(403, f"key {key.name} may not call prompt {name}")
        variables = body.get("variables") or {}
        if not isinstance(variables, dict):
            raise HTTPProblem(400, "variables must be a JSON object of name -> value")
        try:
            prompt = self.resolver.get(ref)
        except RegistryUnavailable as err:
            raise HTTPProblem(503, str(err), {"Retry-After": "5"}) from None
        except ConfigError as err:
            raise HTTPProblem(404, str(err)) from None
        missing = [v for v in _template_variables(prompt.template) if v not in variables]
        if missing:
            raise HTTPProblem(400, f"prompt {prompt.name}@{prompt.version} needs the variables "
                                   f"{', '.join(missing)}: send them in \"variables\"")
        return CallSpec(prompt.template, variables, prompt.model, prompt.name, {**prompt.params, **params},
                        extra=messages, schema=prompt.schema, version=f"{prompt.name}@{prompt.version}")

    # -- streaming --------------------------------------------------------------------------------------
    def _start_stream(self, spec: CallSpec, key: KeyInfo) -> asyncio.Queue:
        """Run the call in a worker thread; its pieces, then ("done", result) or ("error", exc), arrive in order."""
        loop = asyncio.get_running_loop()
        pieces: asyncio.Queue = asyncio.Queue()

        def on_text(piece: str) -> None:
            loop.call_soon_threadsafe(pieces.put_nowait, ("piece", piece))

        def call() -> None:
            try:
                outcome = ("done", _run(spec, key.name, self.windows, on_text))
            except BaseException as err:  # noqa: BLE001 - reported to the client as the stream's last event
                outcome = ("error", err)
            loop.call_soon_threadsafe(pieces.put_nowait, outcome)

        loop.run_in_executor(None, call)
        return pieces

    async def _events(self, first: tuple[str, Any], pieces: asyncio.Queue, key: KeyInfo, completion_id: str,
                      model: str, include_usage: bool):
        yield shapes.chunk(completion_id, model, {"role": "assistant", "content": ""})
        kind, value = first
        while kind == "piece":
            yield shapes.chunk(completion_id, model, {"content": value})
            kind, value = await pieces.get()
        if kind == "error":  # the text so far was sent; the stream ends with an error event
            yield shapes.stream_error(_client_message(value))
            yield shapes.DONE
            return
        yield shapes.chunk(completion_id, model, {}, finish_reason=value.finish_reason or "stop")
        if include_usage:
            yield shapes.chunk(completion_id, model, chunk_usage=value.usage)
        yield shapes.DONE
        await asyncio.to_thread(self.limits.add_spend, key.name, value.cost_usd)


def _run(spec: CallSpec, key_name: str, windows: Windows, on_text: Any = None) -> Any:
    """One served call through the call core (in a worker thread), recorded as a row of the key's window."""
    from llmops_lab.config import get_settings
    from llmops_lab.core.call import complete, prepare
    from llmops_lab.tracking.context import acting_as

    started = time.perf_counter()
    settings = get_settings()
    try:
        with acting_as(f"serve-key:{key_name}"):
            call = prepare(spec.template, spec.variables, model=spec.model, name=spec.name, system=spec.system,
                           params=spec.params, settings=settings, schema=spec.schema, history=spec.history)
            if spec.extra:
                call = replace(call, messages=call.messages + _masked(call, spec.extra))
            return complete(call, settings, max_cost=None, force=False, on_text=on_text, started=started,
                            kind=T.SERVE, record_to=windows.recorder(call.plan))
    except BudgetError as err:
        raise HTTPProblem(429, str(err), {"Retry-After": str(seconds_to_midnight_utc())}) from None
    except (ConfigError, TemplateError) as err:
        raise HTTPProblem(400, str(err)) from None
    except ProviderError as err:
        raise HTTPProblem(502, str(err)) from None
    except LlmopsError as err:  # a schema mismatch, a redaction refusal: the caller's request, one line
        raise HTTPProblem(422, str(err)) from None


def _masked(call: Any, extra: list[dict[str, str]]) -> list[dict[str, str]]:
    if call.plan.send_redactor is None:
        return extra
    from llmops_lab.trust.redaction import mask_messages

    return mask_messages(extra, redactor=call.plan.send_redactor)


def _messages(raw: Any) -> list[dict[str, str]]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise HTTPProblem(400, "messages must be a list of {role, content}")
    out = []
    for i, message in enumerate(raw):
        if not isinstance(message, dict) or message.get("role") not in ("system", "user", "assistant"):
            raise HTTPProblem(400, f"messages[{i}] needs a role of system, user or assistant")
        content = message.get("content")
        if isinstance(content, list):  # content parts: the text ones, joined
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
        if not isinstance(content, str):
            raise HTTPProblem(400, f"messages[{i}].content must be text")
        out.append({"role": message["role"], "content": content})
    return out


def _template_variables(template: str) -> list[str]:
    from llmops_lab.core.templates import PromptTemplate

    return list(PromptTemplate(template).variables)


def _served_models(key: KeyInfo) -> list[str]:
    from llmops_lab.config import get_settings
    from llmops_lab.tracking.registry import prompt_summaries

    out = []
    for summary in prompt_summaries():
        name = summary.get("name")
        if not name or not key.allows(name):
            continue
        aliases = summary.get("aliases") or {}
        out.extend(f"{PROMPT_PREFIX}{name}@{alias}" for alias in (aliases if isinstance(aliases, (list, dict)) else ()))
    if not key.prompts:
        out.append(get_settings().model)
    return out


def _client_message(err: BaseException) -> str:
    if isinstance(err, HTTPProblem):
        return err.message
    return "internal error: see the server log"


def _new_id() -> str:
    import uuid

    return uuid.uuid4().hex[:24]


def app_from_env() -> Starlette:
    """uvicorn's factory in each worker process: the settings ``llmops-lab serve`` put in the environment."""
    import os

    return create_app(int(os.environ.get("LLMOPS_SERVE_MAX_BODY") or MAX_BODY_BYTES),
                      float(os.environ.get("LLMOPS_SERVE_WINDOW_S") or WINDOW_S))
