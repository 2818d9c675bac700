"""Tornado handlers: parse the request, run a service function off the IOLoop, write JSON.

Every verb is ``@tornado.web.authenticated`` (Jupyter's token/cookie; XSRF for writes is checked by
``APIHandler.prepare``). Services are blocking (MLflow, sqlite, nbformat), so they run in a small thread
pool: the server keeps answering kernels and the file browser meanwhile.
"""
from __future__ import annotations

import functools
import json
import math
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import tornado.ioloop
import tornado.web
from jupyter_server.base.handlers import APIHandler
from tornado.httputil import responses

from llmops_lab.server import conversations, jobs, mlflow_ui, prompts, runs, stores
from llmops_lab.server.errors import ApiError, classify

MAX_BODY = 64 * 1024
_executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="llmops-lab-api")


def _jsonable(value: Any) -> Any:
    """NaN/inf become null: JSON.parse in the browser refuses them."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


class BaseHandler(APIHandler):
    """JSON in/out, 64 KB body limit, service calls in the thread pool, errors as one-line messages."""

    _store: stores.Store | None = None

    async def prepare(self) -> None:  # type: ignore[override]
        await super().prepare()
        length = self.request.headers.get("Content-Length")
        if len(self.request.body or b"") > MAX_BODY or (length and length.isdigit() and int(length) > MAX_BODY):
            raise ApiError(413, "request body is over 64 KB")

    @property
    def root_dir(self) -> str:
        return self.settings["llmops_lab_root_dir"]

    async def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` in the pool; known failures become HTTPError(status, one line)."""
        loop = tornado.ioloop.IOLoop.current()
        try:
            return await loop.run_in_executor(_executor, functools.partial(fn, *args, **kwargs))
        except tornado.web.HTTPError:
            raise
        except Exception as err:  # noqa: BLE001 - classified below; anything unknown is re-raised
            found = classify(err, self._store.shown_uri if self._store else None)
            if found is None:
                raise
            raise ApiError(*found) from None

    async def store(self, required: bool = False) -> stores.Store:
        """Settings/store of ``?notebook=`` (confined to the server root), else of the server root."""
        notebook = self.get_query_argument("notebook", None)
        if required and not notebook:
            raise ApiError(400, "notebook is required: a path relative to the server root")
        self._store = await self.call(stores.resolve, self.root_dir, notebook or None)
        return self._store

    def body(self) -> dict[str, Any]:
        if not self.request.body:
            return {}
        try:
            data = json.loads(self.request.body)
        except (ValueError, UnicodeDecodeError):
            raise ApiError(400, "request body is not valid JSON") from None
        if not isinstance(data, dict):
            raise ApiError(400, "request body must be a JSON object")
        return data

    def where(self) -> jobs.Where:
        """The server root and whether its contents manager opens hidden files (for links into JupyterLab)."""
        from pathlib import Path

        manager = getattr(self, "contents_manager", None)
        return jobs.Where(Path(self.root_dir), bool(getattr(manager, "allow_hidden", False)))

    def user_name(self) -> str | None:
        """Who is logged in to Jupyter (recorded when the panel changes something)."""
        user = self.current_user
        name = getattr(user, "username", None) or getattr(user, "name", None)
        return str(name)[:200] if name else None

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """``{"message": "<one line>"}``; tornado's HTTPError text with its arguments applied, no traceback."""
        exc = (kwargs.get("exc_info") or (None, None, None))[1]
        message = responses.get(status_code, "Unknown error")
        if isinstance(exc, tornado.web.HTTPError) and exc.log_message:
            message = exc.log_message % exc.args if exc.args else exc.log_message
        elif exc is not None:
            message = "internal error in llmops-lab: see the Jupyter server log"
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"message": message}))

    def reply(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(_jsonable(data), allow_nan=False))

    @tornado.web.authenticated
    def options(self, *args: Any, **kwargs: Any) -> None:
        # APIHandler answers CORS preflights anonymously; this API sets no CORS headers and has no preflight
        raise ApiError(405, "OPTIONS is not supported")


class ContextHandler(BaseHandler):
    @tornado.web.authenticated
    async def get(self) -> None:
        store = await self.store()

        def work() -> dict[str, Any]:
            client = store.client()
            return {"project_root": str(store.settings.project_root), "tracking_uri": store.shown_uri,
                    "experiment": store.experiment, "experiment_id": stores.experiment_id(store, client),
                    "mlflow_ui": mlflow_ui.status(store)}

        self.reply(await self.call(work))


class RunsHandler(BaseHandler):
    @tornado.web.authenticated
    async def get(self) -> None:
        max_results = runs.parse_max_results(self.get_query_argument("max_results", None))
        order_by = runs.parse_order_by(self.get_query_argument("order_by", None))
        token = runs.check_page_token(self.get_query_argument("page_token", None))
        experiment = self.get_query_argument("experiment", None) or None
        if experiment is not None and (len(experiment) > 500 or "\x00" in experiment):
            raise ApiError(400, "experiment name is too long or has a NUL byte")
        store = await self.store()
        self.reply(await self.call(runs.list_runs, store, experiment=experiment, max_results=max_results,
                                   page_token=token, order_by=order_by))


class RunHandler(BaseHandler):
    @tornado.web.authenticated
    async def get(self, run_id: str) -> None:
        runs.check_run_id(run_id)
        store = await self.store()
        self.reply(await self.call(runs.run_detail, store, run_id))


class CompareHandler(BaseHandler):
    @tornado.web.authenticated
    async def get(self) -> None:
        ids = runs.parse_run_ids(self.get_query_argument("run_ids", None))
        store = await self.store()
        self.reply(await self.call(runs.compare_runs, store, ids))


class ConversationHandler(BaseHandler):
    @tornado.web.authenticated
    async def get(self, conversation_id: str) -> None:
        conversations.check_conversation_id(conversation_id)
        experiment = self.get_query_argument("experiment", None) or None
        if experiment is not None and (len(experiment) > 500 or "\x00" in experiment):
            raise ApiError(400, "experiment name is too long or has a NUL byte")
        store = await self.store()
        self.reply(await self.call(conversations.conversation, store, conversation_id, experiment))


class PromptsHandler(BaseHandler):
    @tornado.web.authenticated
    async def get(self) -> None:
        store = await self.store()
        self.reply(await self.call(prompts.list_prompts, store, self.get_query_argument("filter", None)))


class PromptHandler(BaseHandler):
    @tornado.web.authenticated
    async def get(self, name: str) -> None:
        prompts.check_name(name)
        store = await self.store()
        self.reply(await self.call(prompts.prompt_detail, store, name))


class PromptDiffHandler(BaseHandler):
    @tornado.web.authenticated
    async def get(self, name: str) -> None:
        store = await self.store()
        self.reply(await self.call(prompts.diff, store, name, self.get_query_argument("a", None),
                                   self.get_query_argument("b", None)))


class PromptAliasHandler(BaseHandler):
    @tornado.web.authenticated
    async def put(self, name: str) -> None:
        body = self.body()
        store = await self.store()
        self.reply(await self.call(prompts.set_alias, store, name, body, user=self.user_name()))


class JobsHandler(BaseHandler):
    @tornado.web.authenticated
    async def get(self) -> None:
        store = await self.store()
        self.reply(await self.call(jobs.list_jobs, store, self.where()))

    @tornado.web.authenticated
    async def post(self) -> None:
        body = self.body()
        notebook = body.get("notebook")
        if not isinstance(notebook, str) or not notebook:
            raise ApiError(400, "notebook is required: a path relative to the server root")
        self._store = await self.call(stores.resolve, self.root_dir, notebook)
        self.reply(await self.call(jobs.promote, self._store, body, self.where()), status=201)


class JobPreviewHandler(BaseHandler):
    @tornado.web.authenticated
    async def get(self) -> None:
        store = await self.store(required=True)
        self.reply(await self.call(jobs.preview, store, self.get_query_argument("schedule", None) or None,
                                   self.get_query_argument("timezone", None) or "UTC"))


class JobRunHandler(BaseHandler):
    @tornado.web.authenticated
    async def post(self, name: str) -> None:
        jobs.check_job_name(name)
        store = await self.store()
        self.reply(await self.call(jobs.run_now, store, name), status=202)


class JobHistoryHandler(BaseHandler):
    @tornado.web.authenticated
    async def get(self, name: str) -> None:
        jobs.check_job_name(name)
        limit = jobs.parse_limit(self.get_query_argument("limit", None))
        store = await self.store()
        self.reply(await self.call(jobs.history, store, name, limit, self.where()))


# An executed job notebook's HTML may hold anything its outputs held: served as an inert document (CSP
# sandbox: no script runs, no request leaves it, its origin is opaque), never as a page of this server.
REPORT_CSP = ("sandbox; default-src 'none'; style-src 'unsafe-inline' data:; img-src data:; font-src data:; "
              "frame-ancestors 'self'")


class JobFileHandler(BaseHandler):
    """``jobs/<name>/executions/<id>/report`` (the HTML report) and ``…/notebook`` (the executed notebook,
    as a download): the files recorded in the job's history, confined to ``.llmops/jobs/<name>/``."""

    @tornado.web.authenticated
    async def get(self, name: str, execution: str, what: str) -> None:
        jobs.check_job_name(name)
        execution_id = jobs.check_execution_id(execution)
        store = await self.store()
        path = await self.call(jobs.execution_file, store, name, execution_id, what)
        data = await self.call(path.read_bytes)
        if what == "report":
            content_type = "text/html; charset=utf-8"
            self.set_header("Content-Security-Policy", REPORT_CSP)
        else:
            content_type = "application/x-ipynb+json"
            self.set_header("Content-Disposition", f'attachment; filename="{name}-{path.name}"')
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Cache-Control", "no-store")
        self.finish(data, set_content_type=content_type)  # APIHandler.finish would say application/json


class MlflowUiHandler(BaseHandler):
    @tornado.web.authenticated
    async def post(self) -> None:
        body = self.body()
        notebook = body.get("notebook", self.get_query_argument("notebook", None))
        if notebook is not None and not isinstance(notebook, str):
            raise ApiError(400, "notebook must be a path relative to the server root")
        self._store = await self.call(stores.resolve, self.root_dir, notebook or None)
        self.reply(await self.call(mlflow_ui.start, self._store))
