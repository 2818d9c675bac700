"""The llmops-lab command, through its installed entry point."""
import os
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent / "llmops-lab"


def cli(*args, cwd=None, env=None):
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, cwd=cwd, timeout=120,
                          env={**os.environ, **(env or {})})


def test_local_model_status():
    out = cli("local-model", "status")
    assert out.returncode == 0 and "local:smollm2-135m  ready" in out.stdout


def test_demo_with_missing_notebook_is_one_line_error(tmp_path):
    (tmp_path / "llmops.toml").write_text("")
    out = cli("demo", "--notebook", "nope.ipynb", cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [f"llmops-lab: error: notebook {tmp_path / 'nope.ipynb'} not found"]


def test_demo_reports_failing_cell_without_traceback(tmp_path):
    import nbformat

    (tmp_path / "llmops.toml").write_text("")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("%load_ext llmops_lab"),
                nbformat.v4.new_code_cell("%%llm\nHello {{ nobody }}")]
    nbformat.write(nb, tmp_path / "bad.ipynb")
    out = cli("demo", "--notebook", "bad.ipynb", cwd=tmp_path, env={"LLMOPS_HOME": str(tmp_path / "h")})
    assert out.returncode == 2
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("llmops-lab: error: bad.ipynb failed in cell 2: UsageError: template variable nobody")
    assert "Traceback" not in out.stderr


def test_flush_with_empty_spool(tmp_path):
    (tmp_path / "llmops.toml").write_text("")
    out = cli("flush", cwd=tmp_path, env={"LLMOPS_HOME": str(tmp_path / "h")})
    assert out.returncode == 0 and "replayed 0 record(s)" in out.stdout
