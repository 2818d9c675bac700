"""One clean venv per test session with the wheel of this checkout installed (``[local,lab]``).

Shared by the pip-user test (tests/test_wheel_install.py) and the GitHub workflow replay
(tests/test_jobs_exports.py): building the wheel and installing ~1.3 GB into a new venv takes minutes, once.
llama-cpp-python comes from the portable wheel the main venv was installed from, so nothing compiles.
"""
from __future__ import annotations

import importlib.metadata
import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

REPO = Path(__file__).resolve().parents[1]


def llama_wheels() -> Path:
    """The folder of the portable llama-cpp-python wheel the main venv was installed from."""
    hint = "`make install` installs llama-cpp-python from a portable wheel file; run it first"
    try:
        direct = importlib.metadata.distribution("llama-cpp-python").read_text("direct_url.json")
    except importlib.metadata.PackageNotFoundError:
        pytest.fail(f"llama-cpp-python is not installed in {sys.prefix}: {hint}")
    url = json.loads(direct or "{}").get("url", "")
    wheel = Path(unquote(urlparse(url).path)) if url.startswith("file://") else None
    if wheel is None or wheel.suffix != ".whl" or not wheel.is_file():
        pytest.fail(f"llama-cpp-python was not installed from a local wheel file (direct_url: {url or 'none'}): {hint}")
    return wheel.parent


def _check(step: str, out: subprocess.CompletedProcess) -> None:
    if out.returncode:
        pytest.fail(f"{step} failed (exit {out.returncode}):\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")


@dataclass
class WheelVenv:
    root: Path
    wheel: Path
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def venv(self) -> Path:
        return self.root / "venv"

    @property
    def bin(self) -> Path:
        return self.venv / "bin"


def build(root: Path) -> WheelVenv:
    """``pip wheel`` this checkout, then ``pip install 'WHEEL[local,lab]'`` into ``root/venv``."""
    llama = llama_wheels()
    timings: dict[str, float] = {}
    start = time.monotonic()
    _check("pip wheel", subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w",
                                        str(root / "dist"), str(REPO)], capture_output=True, text=True, timeout=600))
    timings["build wheel"] = time.monotonic() - start
    wheel = next((root / "dist").glob("llmops_lab-*.whl"))
    start = time.monotonic()
    _check("venv", subprocess.run([sys.executable, "-m", "venv", str(root / "venv")], capture_output=True, text=True))
    _check("pip install", subprocess.run(
        [str(root / "venv" / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
         "--find-links", str(llama), "--only-binary", "llama-cpp-python", f"{wheel}[local,lab]"],
        capture_output=True, text=True, timeout=1800))
    timings["venv + pip install"] = time.monotonic() - start
    return WheelVenv(root, wheel, timings)


def remove(built: WheelVenv) -> None:
    print("\nwheel venv timings: " + ", ".join(f"{k} {v:.0f} s" for k, v in built.timings.items()))
    shutil.rmtree(built.venv, ignore_errors=True)  # 1.3 GB
