"""Confine a client-given path to the server root: the only way a request names a file on disk."""
from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

from llmops_lab.server.errors import ApiError

MAX_PATH = 1024
_DRIVE = re.compile(r"^[A-Za-z]:")


def confine(root: str | Path, relative: str | None, *, suffix: str | None = ".ipynb") -> Path:
    """The real path of ``relative`` (a path relative to ``root``, ``/`` separators) after every check:

    400 for an empty, absolute, over-long, NUL-bearing or wrongly typed path; 403 for ``..`` or a symlink
    that leads outside ``root``; 404 when nothing is there.
    """
    if not isinstance(relative, str) or not relative.strip():
        raise ApiError(400, "notebook path is missing: give a path relative to the server root")
    if "\x00" in relative or len(relative) > MAX_PATH:
        raise ApiError(400, "notebook path is invalid: NUL byte or over 1024 characters")
    text = relative.replace("\\", "/")
    if text.startswith("/") or _DRIVE.match(text):
        raise ApiError(400, f"notebook path {relative!r} is absolute: give a path relative to the server root")
    parts = PurePosixPath(text).parts
    if ".." in parts:
        raise ApiError(403, f"notebook path {relative!r} leaves the server root ('..' is not allowed)")
    base = Path(root).resolve()
    real = base.joinpath(*parts).resolve()  # symlinks resolved: a link pointing outside is caught below
    if real != base and base not in real.parents:
        raise ApiError(403, f"notebook path {relative!r} leads outside the server root")
    if not real.exists():
        raise ApiError(404, f"{relative} not found under the server root")
    if suffix and real.suffix != suffix:
        raise ApiError(400, f"{relative} is not a {suffix} file")
    return real


def relative_to(root: str | Path, path: Path) -> str:
    """``path`` relative to ``root`` (POSIX), or its name when it is elsewhere."""
    try:
        return path.resolve().relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        return path.name
