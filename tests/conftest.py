"""Fixtures: a project folder with its own MLflow store, the fake OpenAI-compatible server, an IPython shell."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # fake_openai, helpers

from fake_openai import FakeOpenAI  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

# A test never waits minutes for an unreachable server, and never sees a real key.
os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = "5"
for _var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "MLFLOW_TRACKING_URI", "LLMOPS_HOME", "LLMOPS_MODEL",
             "LLMOPS_NOTEBOOK", "LLMOPS_EXPERIMENT"):
    os.environ.pop(_var, None)


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A fresh project root (its own .llmops store), settings reloaded, tracker flushed afterwards."""
    import llmops_lab.config as config
    import llmops_lab.tracking as tracking

    (tmp_path / "llmops.toml").write_text("")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # mlflow.set_tracking_uri() exports it
    tracking.shutdown(5)
    config.reset_settings(tmp_path)
    yield tmp_path
    tracking.shutdown(10)
    config.reset_settings(REPO)


@pytest.fixture(scope="session")
def fake_server():
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def fake(fake_server, project):
    """The fake server, reset, configured as endpoint ``fake`` (``fake:any-model``) and as OpenAI."""
    import llmops_lab

    fake_server.reset()
    # reset() keeps these: a test that changed them must not leak into the next one
    fake_server.latency_ms = 0
    fake_server.responder = None
    fake_server.fault_rate = 0.0
    fake_server.api_key = None
    llmops_lab.get_settings().endpoints["fake"] = {"base_url": fake_server.base_url}
    llmops_lab.configure(model="fake:test-model", max_retries=2)
    return fake_server


@pytest.fixture
def shell(project):
    """A real IPython shell with the extension loaded."""
    from IPython.core.interactiveshell import InteractiveShell

    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "llmops_lab")
    yield ip
    ip.user_ns.pop("_", None)


@pytest.fixture(scope="session")
def wheel_venv(tmp_path_factory):
    """A clean venv with the wheel of this checkout installed (built once per session; see wheel_venv.py)."""
    import wheel_venv as wv

    built = wv.build(tmp_path_factory.mktemp("wheel-venv"))
    yield built
    wv.remove(built)


def mlflow_client():
    import llmops_lab
    from mlflow import MlflowClient

    uri = llmops_lab.get_settings().resolved_tracking_uri()
    return MlflowClient(tracking_uri=uri, registry_uri=uri)
