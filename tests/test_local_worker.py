"""The embedded model runs in a worker process: a crash there fails one call, never the kernel.

Real processes throughout: the worker is a real llama.cpp process on the real SmolLM2 model, killed with
real signals mid-generation while a real IPython shell waits on it.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from importlib import metadata
from pathlib import Path

import pytest

import llmops_lab
from llmops_lab.providers import local

pytestmark = pytest.mark.slow

LONG_PROMPT = "Write a long story, at least ten paragraphs, about a lighthouse keeper and a storm."


def _kill_when_generating(provider: local.LocalProvider, sig: int, after_s: float) -> threading.Thread:
    """Send ``sig`` to the worker ``after_s`` into the next generation (the worker is started by then)."""

    def kill() -> None:
        deadline = time.time() + 30
        while time.time() < deadline and not provider._lock.locked():
            time.sleep(0.005)
        time.sleep(after_s)
        pid = provider.worker_pid
        if pid:
            os.kill(pid, sig)

    thread = threading.Thread(target=kill, daemon=True)
    thread.start()
    return thread


def _interrupt_when_generating(provider: local.LocalProvider, after_s: float) -> None:
    """A kernel interrupt (SIGINT to the main thread) ``after_s`` into the next generation."""

    def interrupt() -> None:
        while not provider._lock.locked():
            time.sleep(0.005)
        time.sleep(after_s)
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)

    threading.Thread(target=interrupt, daemon=True).start()


def test_worker_is_reused_and_not_the_kernel(project):
    llmops_lab.configure(model="local:smollm2-135m", tracking=False)
    provider = local.provider()
    a = llmops_lab.run("Say OK.", max_tokens=4, temperature=0)
    pid = provider.worker_pid
    b = llmops_lab.run("Say OK.", max_tokens=4, temperature=0)
    assert pid and pid != os.getpid() and provider.worker_pid == pid
    assert a.text == b.text and a.text
    assert "smollm2-135m" in provider.loaded


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSEGV])
def test_worker_killed_mid_generation_spares_the_kernel(shell, capsys, sig):
    import llmops_lab.tracking as tracking

    from conftest import mlflow_client

    llmops_lab.configure(model="local:smollm2-135m")
    provider = local.provider()
    shell.run_cell("%%llm --name before-crash --temperature 0 --max-tokens 4 --out first\nSay OK.")
    assert shell.user_ns["first"].text
    shell.user_ns["precious"] = {"kept": 42}
    old_pid = provider.worker_pid
    capsys.readouterr()

    killer = _kill_when_generating(provider, sig, after_s=0.3)
    result = shell.run_cell(f"%%llm --name crash --temperature 0 --max-tokens 400\n{LONG_PROMPT}")
    killer.join(5)
    err = capsys.readouterr().err
    assert result.error_in_exec is not None
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    name = signal.Signals(sig).name
    assert f"worker crashed ({name})" in lines[0] if sig == signal.SIGSEGV else f"stopped by {name}" in lines[0]
    if sig == signal.SIGSEGV:
        assert "GGML_NATIVE=OFF" in lines[0] and "pip install --force-reinstall" in lines[0]
    assert "earlier runs are intact" in lines[0]

    assert shell.user_ns["precious"] == {"kept": 42}
    shell.run_cell("%%llm --name after-crash --temperature 0 --max-tokens 4 --out after\nSay OK.")
    assert shell.user_ns["after"].text == shell.user_ns["first"].text
    assert provider.worker_pid not in (None, old_pid)

    assert tracking.flush(30) == 0
    client = mlflow_client()
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    by_prompt = {r.data.params.get("prompt_name"): r for r in runs}
    assert {"before-crash", "after-crash"} <= set(by_prompt), sorted(by_prompt)
    assert by_prompt["crash"].info.status == "FAILED"


def test_interrupt_stops_generation_and_the_next_call_works(project):
    llmops_lab.configure(model="local:smollm2-135m", tracking=False)
    provider = local.provider()
    llmops_lab.run("Say OK.", max_tokens=4, temperature=0)
    old_pid = provider.worker_pid
    _interrupt_when_generating(provider, after_s=0.3)
    with pytest.raises(KeyboardInterrupt):
        llmops_lab.run(LONG_PROMPT, max_tokens=400, temperature=0)
    assert provider.worker_pid is None  # the generation stopped with its worker
    assert llmops_lab.run("Say OK.", max_tokens=4, temperature=0).text
    assert provider.worker_pid != old_pid


def test_status_shows_build_and_answers(project):
    out = subprocess.run([str(Path(os.sys.executable).parent / "llmops-lab"), "local-model", "status"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "local:smollm2-135m  ready" in out.stdout
    assert "AVX2 = 1" in out.stdout  # llama.cpp's system info: the CPU features of this build
    assert "worker pid" in out.stdout and "answers" in out.stdout


def test_runtime_is_the_portable_build():
    """make installs llama-cpp-python from its own portable wheelhouse, never pip's (possibly native) cache."""
    direct = json.loads(metadata.distribution("llama-cpp-python").read_text("direct_url.json") or "{}")
    assert "/llmops-lab/wheelhouse/llama-cpp-python-" in direct.get("url", ""), direct
    if os.uname().machine != "x86_64":
        return
    assert "-x86-64-v3/" in direct["url"]
    import llama_cpp

    lib = next(Path(llama_cpp.__file__).parent.glob("lib/libggml-cpu.so*"))
    disassembly = subprocess.run(["objdump", "-d", "--no-show-raw-insn", str(lib)], capture_output=True,
                                 text=True, check=True).stdout
    assert "ymm" in disassembly  # AVX2 code is there
    assert "zmm" not in disassembly, "AVX-512 instructions: this build only runs on AVX-512 CPUs"


def test_interrupted_batch_leaves_the_model_free(project):
    """A cancelled batch ends the generation in progress and drops the queued rows (not left to run on)."""
    import pandas as pd

    llmops_lab.configure(model="local:smollm2-135m", tracking=False)
    provider = local.provider()
    rows = pd.DataFrame({"topic": [f"a lighthouse keeper number {i}" for i in range(6)]})
    epoch_before = provider._epoch
    _interrupt_when_generating(provider, after_s=0.3)
    with pytest.raises(KeyboardInterrupt):
        llmops_lab.batch("Write a long story about {{ topic }}.", rows, max_tokens=400, temperature=0,
                         concurrency=4, cache=False)
    deadline = time.time() + 5
    while provider._lock.locked() and time.time() < deadline:
        time.sleep(0.05)
    assert not provider._lock.locked(), "abandoned rows still hold the model"
    assert len(provider.worker_pids) <= 1  # the batch's extra workers exited with it
    assert provider._epoch > epoch_before  # queued rows were dropped, not sent
    assert llmops_lab.run("Say OK.", max_tokens=4, temperature=0).text
