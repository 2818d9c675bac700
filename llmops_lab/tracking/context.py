"""Who and where a call comes from: notebook, cell, user, git commit, experiment name."""
from __future__ import annotations

import getpass
import os
import subprocess
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache
from pathlib import Path
from typing import Iterator

from llmops_lab.config import Settings

DEFAULT_EXPERIMENT = "llmops-lab"


def _shell():
    import sys

    if "IPython" not in sys.modules:  # a plain script: no shell, and no 0.1-0.3 s import to find that out
        return None
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    return get_ipython()


def notebook_path() -> str | None:
    """The running notebook: ``LLMOPS_NOTEBOOK`` (set by our papermill runs), else what Jupyter tells the
    kernel (``__session__`` in the namespace, ``JPY_SESSION_NAME`` in the environment)."""
    if os.environ.get("LLMOPS_NOTEBOOK"):
        return os.environ["LLMOPS_NOTEBOOK"]
    shell = _shell()
    session = shell.user_ns.get("__session__") if shell is not None else None
    if isinstance(session, str) and session:
        return session
    return os.environ.get("JPY_SESSION_NAME") or None


def cell_id() -> str | None:
    """The id of the executing cell, when the front end sends it (JupyterLab, nbclient)."""
    shell = _shell()
    header = getattr(shell, "parent_header", None) or {}
    return (header.get("metadata") or {}).get("cellId")


def experiment_name(settings: Settings, notebook: str | None) -> str:
    """One experiment per notebook: its path relative to the project root, without ``.ipynb``."""
    if settings.experiment:
        return settings.experiment
    if not notebook:
        return DEFAULT_EXPERIMENT
    path = Path(notebook)
    try:
        path = path.resolve().relative_to(settings.project_root.resolve())
    except ValueError:
        path = Path(path.name)
    return str(path.with_suffix("")) if path.suffix == ".ipynb" else str(path)


# Who a call is made for when it is not the login user: a served request runs as its key's name.
_ACTING_USER: ContextVar[str | None] = ContextVar("llmops_acting_user", default=None)


@contextmanager
def acting_as(name: str) -> Iterator[None]:
    """Calls inside record ``name`` as their user (``llmops-lab serve``: ``serve-key:NAME``), in this thread."""
    token = _ACTING_USER.set(name)
    try:
        yield
    finally:
        _ACTING_USER.reset(token)


def user() -> str:
    return _ACTING_USER.get() or _login_user()


@lru_cache(maxsize=1)
def _login_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


@lru_cache(maxsize=4)
def git_commit(root: Path) -> str | None:
    """HEAD of the project's repository (called off the critical path, by the writer)."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None
