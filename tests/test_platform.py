"""Supported platforms: Linux and macOS. Windows is told so in one sentence at import."""
import subprocess
import sys

from conftest import REPO


def test_import_on_windows_is_one_clear_sentence():
    code = "import sys; sys.platform = 'win32'; import llmops_lab"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert out.stderr.strip().splitlines()[-1].startswith("ImportError: llmops-lab needs Linux or macOS: ")
    assert "spool.py" not in out.stderr  # not a traceback from deep inside


def test_package_is_typed():
    assert (REPO / "llmops_lab" / "py.typed").is_file()
