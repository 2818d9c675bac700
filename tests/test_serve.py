"""``llmops-lab serve``: the real server as a process (uvicorn), called with the official openai SDK, upstream
the fake OpenAI server; what it records read back from the project's MLflow store."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai
import pytest

from conftest import REPO, make_project
from teamserver import free_port

pytestmark = pytest.mark.timeout(180)


def _cli(project: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "llmops_lab.cli", *args], cwd=project, capture_output=True,
                          text=True, env=_env(), timeout=120)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "LLMOPS_", "OPENAI_"))}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


class Served:
    def __init__(self, project: Path, port: int, proc: subprocess.Popen):
        self.project, self.port, self.proc = project, port, proc
        self.base_url = f"http://127.0.0.1:{port}/v1"

    def client(self, key: str, **kw) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.base_url, api_key=key, max_retries=0, timeout=30, **kw)

    def key(self, name: str, prompts: tuple[str, ...] = (), rpm: int | None = None) -> str:
        from llmops_lab.gateway.keys import KeyStore

        return KeyStore(self.project / ".llmops").create(name, prompts=prompts, rpm=rpm)


def _start(project: Path, *args: str) -> Served:
    port = free_port()
    log = open(project / "serve.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "llmops_lab.cli", "serve", "--port", str(port), *args],
                            cwd=project, env=_env(), stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).read()
            return Served(project, port, proc)
        except OSError:
            if proc.poll() is not None:
                raise AssertionError((project / "serve.log").read_text())
            time.sleep(0.2)
    proc.kill()
    raise AssertionError("serve did not start: " + (project / "serve.log").read_text())


def _stop(served: Served) -> int:
    served.proc.send_signal(signal.SIGTERM)
    return served.proc.wait(timeout=60)


def _project(root: Path, fake_server) -> Path:
    project = make_project(root, settings=f'model = "fake:upstream"\n[endpoints.fake]\n'
                                          f'base_url = "{fake_server.base_url}"\n', store=True)
    _register(project, "greet", "Say hello to {{ who }}.", alias="production")
    return project


@pytest.fixture(scope="module")
def module_server(tmp_path_factory, fake_server, store_template):
    """One server for the tests that do not stop it (starting one costs seconds)."""
    server = _start(_project(tmp_path_factory.mktemp("serve") / "proj", fake_server))
    yield server
    if server.proc.poll() is None:
        _stop(server)


@pytest.fixture
def served(module_server, fake_server):
    fake_server.reset()
    fake_server.latency_ms = 0
    fake_server.responder = None
    fake_server.chunk_delay_ms = 0
    fake_server.chunk_chars = None
    return module_server


@pytest.fixture
def own_server(tmp_path, fake_server, store_template):
    """A server of its own, for a test that stops it."""
    fake_server.reset()
    server = _start(_project(tmp_path / "proj", fake_server))
    yield server
    if server.proc.poll() is None:
        _stop(server)


def _register(project: Path, name: str, template: str, alias: str | None = None) -> int:
    code = ("import llmops_lab\nfrom llmops_lab.tracking import registry\n"
            f"v = registry.register_version({name!r}, {template!r}, model='fake:upstream', params={{'temperature': 0}})\n"
            f"{'registry.set_alias(%r, %r, int(v.version))' % (name, alias) if alias else ''}\n"
            "print(v.version)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=project, capture_output=True, text=True, env=_env(),
                         timeout=120)
    assert out.returncode == 0, out.stderr
    return int(out.stdout.split()[-1])


def _serve_runs(project: Path) -> list:
    code = ("import json, llmops_lab, llmops_lab.tracking as t\nfrom mlflow import MlflowClient\n"
            "uri = llmops_lab.get_settings().resolved_tracking_uri()\nc = MlflowClient(uri)\n"
            "exps = [e.experiment_id for e in c.search_experiments()]\n"
            "runs = c.search_runs(exps, \"tags.`llmops.kind` = 'serve'\", max_results=5000)\n"
            "print(json.dumps([{**r.data.tags, 'rows': r.data.metrics.get('rows')} for r in runs]))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=project, capture_output=True, text=True, env=_env(),
                         timeout=120)
    assert out.returncode == 0, out.stderr
    import json

    return json.loads(out.stdout.splitlines()[-1])


@pytest.fixture
def one_window(tmp_path, fake_server, store_template):
    """A server whose window outlasts the test: its requests become one run when it stops."""
    fake_server.reset()
    server = _start(_project(tmp_path / "proj", fake_server), "--window-s", "600")
    yield server
    if server.proc.poll() is None:
        _stop(server)


def test_prompt_render_with_the_sdk_is_recorded_as_serve(one_window, fake_server):
    served = one_window
    out = _cli(served.project, "serve", "key", "create", "app", "--rpm", "100")
    assert out.returncode == 0, out.stderr
    key = out.stdout.splitlines()[0]
    for who in ("Bob", "Eve"):
        served.client(key).chat.completions.create(model="prompt:greet@production", messages=[],
                                                   extra_body={"variables": {"who": who}})
    answer = served.client(key).chat.completions.with_raw_response.create(
        model="prompt:greet@production", messages=[], extra_body={"variables": {"who": "Ada"}})
    completion = answer.parse()
    assert answer.headers["x-llmops-prompt-version"] == "greet@1"
    sent = fake_server.requests[-1]
    assert sent["messages"][-1]["content"] == "Say hello to Ada."
    assert sent["model"] == "upstream" and sent["temperature"] == 0
    assert completion.choices[0].message.content and completion.usage.total_tokens > 0
    # the SIGTERM'd server leaves its records to MLflow (flushed at exit, or replayed by the next writer)
    assert _stop(served) == 0
    assert _cli(served.project, "flush").returncode == 0  # what the exit flush left (bounded to 3 s)
    runs = _serve_runs(served.project)
    assert len(runs) == 1 and runs[0]["rows"] == 3  # one window: three requests, one run
    tags = runs[0]
    assert tags["llmops.user"] == "serve-key:app" and tags["llmops.prompt"] == "greet@1"
    assert key not in str(runs) and key not in (served.project / "serve.log").read_text()
    code = ("import llmops_lab\nt = llmops_lab.stats(None, by='kind')\n"
            "print(dict(zip(t['kind'], t['calls'])))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=served.project, capture_output=True, text=True,
                         env=_env(), timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "{'serve': 3}"


def test_auth_scope_size_and_bad_variables(served):
    scoped = served.key("narrow", prompts=("other",))
    bare = urllib.request.Request(served.base_url + "/chat/completions", data=b'{"model": "prompt:greet@production"}',
                                  headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(bare, timeout=10)
    assert missing.value.code == 401 and b"missing API key" in missing.value.read()
    with pytest.raises(openai.AuthenticationError, match="invalid or revoked"):
        served.client("llk-wrong").chat.completions.create(model="prompt:greet@production", messages=[])
    with pytest.raises(openai.PermissionDeniedError, match="may not call prompt greet"):
        served.client(scoped).chat.completions.create(model="prompt:greet@production", messages=[],
                                                      extra_body={"variables": {"who": "x"}})
    with pytest.raises(openai.PermissionDeniedError, match="only the prompts other"):
        served.client(scoped).chat.completions.create(model="fake:upstream",
                                                      messages=[{"role": "user", "content": "hi"}])
    key = served.key("app-auth")
    client = served.client(key)
    with pytest.raises(openai.BadRequestError, match="needs the variables who"):
        client.chat.completions.create(model="prompt:greet@production", messages=[])
    with pytest.raises(openai.NotFoundError, match="not found in the registry"):
        client.chat.completions.create(model="prompt:nope@production", messages=[])
    with pytest.raises(openai.APIStatusError, match="over 1000000 bytes") as err:
        client.chat.completions.create(model="prompt:greet@production", messages=[],
                                       extra_body={"variables": {"who": "x" * 1_100_000}})
    assert err.value.status_code == 413
    assert _cli(served.project, "serve", "key", "revoke", "app-auth").returncode == 0
    with pytest.raises(openai.AuthenticationError, match="invalid or revoked"):
        client.chat.completions.create(model="prompt:greet@production", messages=[],
                                       extra_body={"variables": {"who": "x"}})
    listed = _cli(served.project, "serve", "key", "list").stdout
    assert "app-auth\trevoked" in listed and "narrow\tactive\tother" in listed and "llk-" not in listed


def test_rate_limit_gives_429_with_retry_after(served):
    client = served.client(served.key("slow", rpm=2))
    for _ in range(2):
        client.chat.completions.create(model="fake:upstream", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.RateLimitError, match="2 requests per minute") as err:
        client.chat.completions.create(model="fake:upstream", messages=[{"role": "user", "content": "hi"}])
    assert 1 <= int(err.value.response.headers["retry-after"]) <= 60


def test_streaming_is_openai_shaped_with_usage(served, fake_server):
    fake_server.chunk_chars = 3
    client = served.client(served.key("app-stream"))
    pieces, usage = [], None
    with client.chat.completions.create(model="prompt:greet@production", messages=[], stream=True,
                                        stream_options={"include_usage": True},
                                        extra_body={"variables": {"who": "Ada"}}) as stream:
        for chunk in stream:
            if chunk.usage is not None:
                usage = chunk.usage
            for choice in chunk.choices:
                pieces.append(choice.delta.content or "")
    plain = client.chat.completions.create(model="prompt:greet@production", messages=[],
                                           extra_body={"variables": {"who": "Ada"}})
    assert "".join(pieces) == plain.choices[0].message.content and len([p for p in pieces if p]) > 1
    assert usage is not None and usage.total_tokens == plain.usage.total_tokens


def test_alias_move_is_served_without_restart_or_failure(served):
    client = served.client(served.key("app-move"))

    def ask(_):
        answer = client.chat.completions.with_raw_response.create(
            model="prompt:greet@production", messages=[], extra_body={"variables": {"who": "Ada"}})
        return answer.headers["x-llmops-prompt-version"]

    with ThreadPoolExecutor(4) as pool:
        assert set(pool.map(ask, range(8))) == {"greet@1"}
        v2 = _register(served.project, "greet", "Greet {{ who }} warmly.", alias="production")
        moved_at = time.monotonic()
        seen = []
        while time.monotonic() - moved_at < 15:
            batch = list(pool.map(ask, range(8)))  # any failure raises here
            seen.extend(batch)
            if batch[-1] == f"greet@{v2}":
                break
    assert seen[-1] == f"greet@{v2}" and time.monotonic() - moved_at <= 10 + 2


def test_sigterm_mid_load_answers_or_refuses_cleanly_and_loses_no_record(own_server):
    served = own_server
    client = served.client(served.key("app"))
    served_ok = []

    def ask(i):
        try:
            client.chat.completions.create(model="prompt:greet@production", messages=[],
                                           extra_body={"variables": {"who": f"n{i}"}})
            served_ok.append(i)
        except openai.APIConnectionError:
            pass  # sent after the server stopped accepting

    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(ask, i) for i in range(40)]
        time.sleep(0.5)
        served.proc.send_signal(signal.SIGTERM)
        for f in futures:
            f.result()
    assert served.proc.wait(timeout=60) == 0
    assert served_ok, "no request was answered before SIGTERM"
    # what the exiting server could not write in its last seconds is in the spool, written by the next writer
    assert _cli(served.project, "flush").returncode == 0
    runs = _serve_runs(served.project)
    assert sum(r["rows"] for r in runs) >= len(served_ok) and len(runs) < len(served_ok)  # rows of windows


def test_models_lists_the_served_prompts_within_the_keys_scope(served):
    everything = served.client(served.key("lister")).models.list()
    ids = [m.id for m in everything.data]
    assert "prompt:greet@production" in ids and "fake:upstream" in ids
    narrow = served.client(served.key("lister-narrow", prompts=("other",))).models.list()
    assert [m.id for m in narrow.data] == []
    health = urllib.request.urlopen(f"http://127.0.0.1:{served.port}/healthz", timeout=10).read()
    assert b'"status":"ok"' in health


def test_registry_down_keeps_serving_the_last_known_version(tmp_path, fake_server, store_template):
    """The project's store is a real ``mlflow server``; stopped, the endpoint keeps serving what it served."""
    fake_server.reset()
    mlflow_port = free_port()
    store = tmp_path / "store"
    store.mkdir()
    mlflow_proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{store / 'mlflow.db'}",
         "--artifacts-destination", str(store / "artifacts"), "--host", "127.0.0.1", "--port", str(mlflow_port),
         "--workers", "1"], cwd=store, env=_env(), stdout=open(store / "mlflow.log", "w"),
        stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{mlflow_port}/health", timeout=2).read()
                break
            except OSError:
                assert time.monotonic() < deadline and mlflow_proc.poll() is None, (store / "mlflow.log").read_text()
                time.sleep(0.5)
        project = make_project(tmp_path / "proj", settings=f'model = "fake:upstream"\n'
                                                           f'tracking_uri = "http://127.0.0.1:{mlflow_port}"\n'
                                                           f'[endpoints.fake]\nbase_url = "{fake_server.base_url}"\n')
        _register(project, "greet", "Say hello to {{ who }}.", alias="production")
        served = _start(project)
        try:
            client = served.client(served.key("app"))

            def ask() -> str:
                answer = client.chat.completions.with_raw_response.create(
                    model="prompt:greet@production", messages=[], extra_body={"variables": {"who": "Ada"}})
                return answer.headers["x-llmops-prompt-version"]

            assert ask() == "greet@1"
            os.killpg(mlflow_proc.pid, signal.SIGKILL)
            mlflow_proc.wait(10)
            time.sleep(6)  # past the resolver's 5 s: the next request asks the (dead) registry again
            assert ask() == "greet@1"
            health = urllib.request.urlopen(f"http://127.0.0.1:{served.port}/healthz", timeout=10).read()
            assert b'"status":"degraded"' in health
            with pytest.raises(openai.APIStatusError, match="cannot be reached") as never_served:
                client.chat.completions.create(model="prompt:other@production", messages=[])
            assert never_served.value.status_code == 503
        finally:
            _stop(served)
    finally:
        if mlflow_proc.poll() is None:
            os.killpg(mlflow_proc.pid, signal.SIGKILL)


def test_prompt_client_remembers_versions_and_streams(served):
    from llmops_lab.client import PromptClient

    prompts = PromptClient(served.base_url, served.key("client"), max_retries=0)
    answer = prompts.complete("greet@production", who="Ada")
    assert answer.text and answer.version == prompts.versions["greet@production"]
    assert answer.version.startswith("greet@") and answer.usage["total_tokens"] > 0
    assert "".join(prompts.stream("greet@production", who="Ada")) == answer.text


def test_two_workers_serve_together_and_stop_on_sigterm(tmp_path, fake_server, store_template):
    fake_server.reset()
    server = _start(_project(tmp_path / "proj", fake_server), "--workers", "2")
    try:
        client = server.client(server.key("app")).with_options(timeout=150)  # each worker's first call imports MLflow
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda i: client.chat.completions.create(
                model="prompt:greet@production", messages=[], extra_body={"variables": {"who": f"w{i}"}}),
                range(24)))
        assert all(a.choices[0].message.content for a in answers)
        children = {pid: _started(pid) for pid in
                    Path(f"/proc/{server.proc.pid}/task/{server.proc.pid}/children").read_text().split()}
        assert len(children) >= 2  # uvicorn's worker processes (and multiprocessing's resource tracker)
    finally:
        assert _stop(server) == 0
    deadline = time.monotonic() + 20  # each child sees its parent gone, then exits
    while time.monotonic() < deadline and any(_started(pid) == started for pid, started in children.items()):
        time.sleep(0.2)
    assert [pid for pid, started in children.items() if _started(pid) == started] == []


def _started(pid: str) -> str | None:
    """A live process's start time (so a pid reused by another process does not count); None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] == "Z" else fields[19]
