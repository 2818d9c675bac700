"""A pip user gets the product: the wheel built from this checkout, installed with ``[local,lab]`` in a clean
venv, runs the demo and ``init`` outside any repository, with no Node.js on PATH, and enables the sidebar.

Slow (a wheel build and a venv install, then the embedded model): one venv serves every test here.
"""
from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import time
import zipfile
from pathlib import Path

import pytest


pytestmark = pytest.mark.slow

NODE_TOOLS = {"node", "nodejs", "npm", "npx", "corepack", "yarn", "pnpm"}
MARKERS = ("pyproject.toml", ".git", "llmops.toml")


def _bin_without_node(folder: Path) -> Path:
    """/usr/bin (which /bin links to here) as symlinks, minus Node.js and its package managers."""
    folder.mkdir()
    for entry in Path("/usr/bin").iterdir():
        if entry.name not in NODE_TOOLS:
            (folder / entry.name).symlink_to(entry)
    return folder


def _outside_any_project(folder: Path) -> Path:
    for parent in (folder, *folder.parents):
        found = [m for m in MARKERS if (parent / m).exists()]
        if found:
            pytest.fail(f"the temp folder {folder} is inside a project ({parent / found[0]}): set TMPDIR elsewhere")
    return folder


class Venv:
    def __init__(self, built, work: Path):
        self.root, self.wheel, self.timings = built.root, built.wheel, built.timings
        self.bin, self.work = built.bin, work
        clean = {k: v for k, v in os.environ.items()
                 if not k.startswith(("JUPYTER", "LLMOPS_", "MLFLOW_", "PYTHON", "VIRTUAL_ENV", "CONDA", "PIP_"))}
        self.env = {**clean, "PATH": f"{self.bin}:{_bin_without_node(work / 'sysbin')}"}

    def run(self, *args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.bin / args[0]), *args[1:]], cwd=cwd, env=self.env, capture_output=True,
                              text=True, timeout=timeout)

    def folder(self, name: str) -> Path:
        path = self.work / "work" / name
        path.mkdir(parents=True)
        return _outside_any_project(path)


def _plain(text: str) -> str:
    """Without the ANSI colours jupyter puts on "enabled" and "OK"."""
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def _check(step: str, out: subprocess.CompletedProcess) -> None:
    if out.returncode:
        pytest.fail(f"{step} failed (exit {out.returncode}):\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")


@pytest.fixture(scope="module")
def venv(wheel_venv, tmp_path_factory) -> Venv:
    """The session's clean venv with the wheel installed (conftest.wheel_venv), seen without Node.js."""
    return Venv(wheel_venv, tmp_path_factory.mktemp("wheel-install"))


def test_wheel_ships_the_examples_templates_and_types(venv):
    with zipfile.ZipFile(venv.wheel) as wheel:
        names = set(wheel.namelist())
        metadata = wheel.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert {"llmops_lab/py.typed", "llmops_lab/examples/01_quickstart.ipynb",
            "llmops_lab/templates/report.ipynb"} <= names
    assert any(n.endswith("share/jupyter/labextensions/llmops-lab/package.json") for n in names)
    assert "Requires-Python: >=3.11" in metadata
    assert "Classifier: Operating System :: POSIX :: Linux" in metadata


def test_no_node_on_path(venv):
    out = subprocess.run(["sh", "-c", "command -v node npm npx || true"], env=venv.env, capture_output=True,
                         text=True)
    assert out.stdout == ""


def test_demo_in_an_empty_folder(venv):
    folder = venv.folder("demo")
    start = time.monotonic()
    out = venv.run("llmops-lab", "demo", cwd=folder, timeout=900)
    venv.timings["demo"] = time.monotonic() - start
    _check("llmops-lab demo", out)
    assert (folder / "llmops.toml").is_file() and (folder / "notebooks" / "01_quickstart.ipynb").is_file()
    executed = folder / ".llmops" / "demo" / "01_quickstart.ipynb"
    assert f"executed notebook: {executed}" in out.stdout
    assert "browse the runs it logged:  llmops-lab ui " in out.stdout  # on PATH: no path to the executable
    assert (folder / ".llmops" / "mlflow.db").is_file()
    with sqlite3.connect(folder / ".llmops" / "mlflow.db") as db:
        runs = db.execute("select name, status from runs").fetchall()
    assert sorted(runs) == [("haiku", "FINISHED"), ("summarize", "FINISHED"), ("title", "FINISHED")]
    noise = [line for line in (out.stdout + out.stderr).splitlines() if re.search(r"warn|traceback", line, re.I)]
    assert noise == []
    assert venv.run("llmops-lab", "demo", "--notebook", "none.ipynb", cwd=folder).returncode == 2  # a project now


def test_init_in_an_empty_folder_then_again(venv):
    folder = venv.folder("init")
    out = venv.run("llmops-lab", "init", cwd=folder)
    _check("llmops-lab init", out)
    created = {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert set(created) == {"pyproject.toml", "notebooks/eval.ipynb", ".gitignore"}
    assert [line.split()[0] for line in out.stdout.splitlines()[:3]] == ["created"] * 3
    again = venv.run("llmops-lab", "init", ".", cwd=folder)
    _check("llmops-lab init (again)", again)
    assert [line.split()[0] for line in again.stdout.splitlines()[:3]] == ["left"] * 3
    assert {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()} == created


def test_jupyter_sees_the_sidebar_and_the_server_extension(venv):
    cwd = venv.folder("jupyter")
    labext = venv.run("jupyter", "labextension", "list", cwd=cwd, timeout=120)
    _check("jupyter labextension list", labext)
    text = _plain(labext.stdout + labext.stderr)  # the list goes to stderr
    assert re.search(r"llmops-lab v\S+ enabled\s+OK", text), text
    server = venv.run("jupyter", "server", "extension", "list", cwd=cwd, timeout=120)
    _check("jupyter server extension list", server)
    text = _plain(server.stdout + server.stderr)
    assert re.search(r"llmops_lab\s+enabled", text) and re.search(r"llmops_lab \S+ OK", text), text


def test_installed_package_is_typed_and_outside_the_checkout(venv):
    code = "import llmops_lab, pathlib; p = pathlib.Path(llmops_lab.__file__).parent; print(p); " \
           "print((p / 'py.typed').is_file())"
    out = venv.run("python", "-c", code, cwd=venv.folder("typed"))
    _check("import llmops_lab", out)
    location, typed = out.stdout.split()
    assert Path(location).is_relative_to(venv.bin.parent) and typed == "True"
