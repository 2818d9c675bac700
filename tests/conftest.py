"""Fixtures: a project folder with its own MLflow store, the fake OpenAI-compatible server, an IPython shell.

Every test project is made by :func:`make_project`. Its MLflow store (``.llmops/mlflow.db``) is a copy of one
store migrated once per session (MLflow's schema migrations take seconds; a copy takes milliseconds): MLflow
sees its tables and migrates nothing, and ``migrate_store`` only opens it once per process as for any store.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
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


_TEMPLATE: Path | None = None
GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false"]


def migrated_store() -> Path:
    """An empty MLflow store, created and migrated by ``tracking.clients.migrate_store`` once per session."""
    global _TEMPLATE
    if _TEMPLATE is None:
        import atexit

        from llmops_lab.tracking.clients import migrate_store

        folder = Path(tempfile.mkdtemp(prefix="llmops-test-store-"))
        atexit.register(shutil.rmtree, folder, True)
        migrate_store(f"sqlite:///{folder / 'mlflow.db'}")
        _TEMPLATE = folder / "mlflow.db"
    return _TEMPLATE


def copy_store(home: Path) -> Path:
    """``home/mlflow.db``: a copy of the session's migrated store, as if first written with ``home``'s project
    as the working directory (MLflow's Default experiment keeps its artifacts under ``<cwd>/mlruns``)."""
    home.mkdir(parents=True, exist_ok=True)
    db = home / "mlflow.db"
    shutil.copyfile(migrated_store(), db)
    with contextlib.closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("UPDATE experiments SET artifact_location = ? WHERE experiment_id = 0",
                     (str(home.parent / "mlruns" / "0"),))
    return db


def make_project(folder: Path, files: dict[str, str | bytes | Path] | None = None, *, settings: str | None = "",
                 store: bool = False, git: bool = False) -> Path:
    """A project folder: ``llmops.toml`` holding ``settings`` (None: no marker), ``files`` (path relative to the
    project -> text, bytes, or a Path to copy), with ``store`` an already migrated MLflow store in ``.llmops/``
    (without, the first write creates it), with ``git`` a repository with everything committed on ``main``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if settings is not None:
        (folder / "llmops.toml").write_text(settings)
    for name, content in (files or {}).items():
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Path):
            shutil.copyfile(content, target)
        elif isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)
    if store:
        copy_store(folder / ".llmops")
    if git:
        subprocess.run(["git", "init", "-q", "-b", "main", str(folder)], check=True)
        subprocess.run([*GIT, "add", "-A"], cwd=folder, check=True)
        subprocess.run([*GIT, "commit", "-qm", "project"], cwd=folder, check=True)
    return folder


@contextlib.contextmanager
def active_project(root: Path, mp: pytest.MonkeyPatch, unset: tuple[str, ...] = ()):
    """``root`` as this process's project for the block: cwd, settings reloaded, no tracker or exported
    MLflow URI of an earlier test (``mlflow.set_tracking_uri()`` exports it); the tracker flushed afterwards."""
    import llmops_lab.config as config
    import llmops_lab.tracking as tracking

    mp.chdir(root)
    for var in ("MLFLOW_TRACKING_URI", *unset):
        mp.delenv(var, raising=False)
    tracking.shutdown(5)
    config.reset_settings(root)
    try:
        yield root
    finally:
        tracking.shutdown(10)
        config.reset_settings(REPO)


@pytest.fixture(scope="session")
def store_template():
    """The session's migrated MLflow store (what :func:`make_project` copies with ``store=True``)."""
    return migrated_store()


@pytest.fixture
def project(tmp_path, monkeypatch, store_template):
    """A fresh project root (its own migrated .llmops store), settings reloaded, tracker flushed afterwards."""
    make_project(tmp_path, store=True)
    with active_project(tmp_path, monkeypatch):
        yield tmp_path


@pytest.fixture
def bare_project(tmp_path, monkeypatch):
    """:func:`project` without an MLflow store: for tests of settings and parsing that never log a run."""
    make_project(tmp_path)
    with active_project(tmp_path, monkeypatch):
        yield tmp_path


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
    fake_server.chunk_delay_ms = 0
    fake_server.chunk_chars = None
    fake_server.break_stream_after = None
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


def spool_files(project: Path) -> list[Path]:
    """The spool files left in ``project`` (sorted)."""
    return sorted((project / ".llmops" / "spool").glob("*.jsonl"))


def assert_spool_delivered(project: Path) -> None:
    """After a flush that returned 0: the only spool file left is this process's own (its tracker deletes it
    when it closes), every record appended to it is acknowledged, and no other process left one behind."""
    import llmops_lab.tracking as tracking

    spool = tracking.get_tracker().spool
    assert spool_files(project) == [spool.path] and spool.acked == spool.appended > 0, \
        (spool_files(project), spool.path, spool.acked, spool.appended)

