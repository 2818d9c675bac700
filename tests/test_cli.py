"""The llmops-lab command, through its installed entry point."""
import os
import subprocess
import sys
from pathlib import Path

from conftest import make_project

BIN = Path(sys.executable).parent / "llmops-lab"


def cli(*args, cwd=None, env=None):
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, cwd=cwd, timeout=120,
                          env={**os.environ, **(env or {})})


def test_local_model_status():
    out = cli("local-model", "status")
    assert out.returncode == 0 and "local:smollm2-135m  ready" in out.stdout


def test_demo_with_missing_notebook_is_one_line_error(tmp_path):
    make_project(tmp_path)
    out = cli("demo", "--notebook", "nope.ipynb", cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [f"llmops-lab: error: notebook {tmp_path / 'nope.ipynb'} not found"]


def test_demo_reports_failing_cell_without_traceback(tmp_path):
    import nbformat

    make_project(tmp_path)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("%load_ext llmops_lab"),
                nbformat.v4.new_code_cell("%%llm\nHello {{ nobody }}")]
    nbformat.write(nb, tmp_path / "bad.ipynb")
    out = cli("demo", "--notebook", "bad.ipynb", cwd=tmp_path, env={"LLMOPS_HOME": str(tmp_path / "h")})
    assert out.returncode == 2
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("llmops-lab: error: bad.ipynb failed in cell 2: UsageError: template variable nobody")
    assert "Traceback" not in out.stderr


def test_demo_kernel_is_encrypted_and_quiet(tmp_path):
    """papermill's kernel gets CurveZMQ keys: no "running over TCP without encryption" warning, no other noise."""
    import nbformat

    make_project(tmp_path)
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}})
    nb.cells = [nbformat.v4.new_code_cell("from ipykernel.kernelapp import IPKernelApp\n"
                                          "print('curve', IPKernelApp.instance().curve_secretkey is not None)")]
    nbformat.write(nb, tmp_path / "k.ipynb")
    out = cli("demo", "--notebook", "k.ipynb", "--output", "out.ipynb", cwd=tmp_path,
              env={"LLMOPS_HOME": str(tmp_path / "h")})
    assert out.returncode == 0, out.stderr
    # jupyter_client's shutdown interrupts the kernel (SIGINT) before asking it to stop; on a loaded machine
    # ipykernel sometimes logs that interrupt. It is the shutdown, not our noise: any other line fails.
    noise = [line for line in out.stderr.splitlines() if line != "[IPKernelApp] ERROR | KeyboardInterrupt caught in kernel."]
    assert noise == [] and "browse the runs it logged:" in out.stdout
    cells = nbformat.read(tmp_path / "out.ipynb", as_version=4).cells
    assert cells[0].outputs[0]["text"] == "curve True\n"


def test_kernel_config_asks_for_encryption_and_keeps_the_callers_settings():
    from traitlets.config import Config

    from llmops_lab.jobs.notebooks import kernel_config

    assert kernel_config().KernelManager.transport_encryption == "auto"
    mine = kernel_config(Config({"KernelManager": {"transport_encryption": "required", "shutdown_wait_time": 1.0}}))
    assert mine.KernelManager.transport_encryption == "required" and mine.KernelManager.shutdown_wait_time == 1.0


def test_flush_with_empty_spool(tmp_path):
    make_project(tmp_path)
    out = cli("flush", cwd=tmp_path, env={"LLMOPS_HOME": str(tmp_path / "h")})
    assert out.returncode == 0 and "replayed 0 record(s)" in out.stdout


def _free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_local_model_serve_is_openai_compatible(project):
    """`llmops-lab local-model serve` answers our own OpenAI-compatible provider (slow: loads the model)."""
    import time
    import urllib.request

    import pytest

    import llmops_lab

    port = _free_port()
    proc = subprocess.Popen([str(BIN), "local-model", "serve", "--port", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=1).read()
                break
            except OSError:
                time.sleep(0.3)
        else:
            pytest.fail("the local model server did not start within 60 s")
        llmops_lab.get_settings().endpoints["lcpp"] = {"base_url": f"http://127.0.0.1:{port}/v1"}
        r = llmops_lab.run("Say hello to {{ who }}.", {"who": "Ada"}, model="lcpp:smollm2-135m", max_tokens=8,
                           temperature=0)
        assert r.text and 0 < r.usage["completion_tokens"] <= 8 and r.run_id
    finally:
        proc.terminate()
        proc.wait(10)
