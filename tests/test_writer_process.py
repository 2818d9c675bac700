"""The writer process (``writer = "process"``): the spool's guarantees again, with the real process.

Each test runs the real ``python -m llmops_lab.tracking.writer_process`` started on demand by a submit, a
real sqlite store (or a real ``mlflow server``), and child python processes as kernels. The writers a test
started are stopped at its end (``stop_writers``), and their idle timeout is short.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

import llmops_lab
from conftest import copy_store, mlflow_client, spool_files
from llmops_lab import tracking
from llmops_lab.config import reset_settings
from llmops_lab.tracking.writer_ident import WriterPaths, lock_is_free, stop_writers, writer_pid

IDLE_S = "3"


@pytest.fixture
def proc_project(fake, project, monkeypatch):
    """``project`` with the fake endpoint in its llmops.toml (child processes read it) and the process writer."""
    monkeypatch.setenv("LLMOPS_WRITER", "process")
    monkeypatch.setenv("LLMOPS_WRITER_IDLE_S", IDLE_S)
    (project / "llmops.toml").write_text(f'model = "fake:m"\n[endpoints.fake]\nbase_url = "{fake.base_url}"\n')
    tracking.shutdown(0)
    reset_settings(project)
    yield project
    tracking.shutdown(0)
    stop_writers(project / ".llmops")


def _singles(client=None) -> Counter:
    client = client or mlflow_client()
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id], max_results=1000)]
    return Counter(r.data.tags.get("llmops.record_id") for r in runs if r.data.tags.get("llmops.kind") == "single")


def _child(code: str, project: Path, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=project, env={**os.environ},
                          capture_output=True, text=True, timeout=300, **kw)


def test_record_is_spooled_before_return_then_logged_by_the_writer_process(proc_project, monkeypatch):
    secret = "tok-Secret-4711-abcdef"
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", secret)  # unused by sqlite; it must travel like real credentials
    r = llmops_lab.run("hello {{ x }}", {"x": 1}, name="proc")
    tracker = tracking.get_tracker()
    assert type(tracker).__name__ == "WriterClient"
    assert r.record_id in tracker.spool.path.read_text()  # durable before run() returned
    assert "-w" + tracker.writer_id in tracker.spool.path.name
    assert r.run_id and r.tracking_status == "logged" and f"run {r.run_id[:8]}" in r.footer()
    assert tracking.flush(30) == 0
    pid = writer_pid(tracker.paths)
    assert pid and pid != os.getpid()
    # The credentials reach the writer through its environment only: not its command line, not a file.
    assert secret.encode() in Path(f"/proc/{pid}/environ").read_bytes()
    assert secret.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes()
    home = proc_project / ".llmops"
    assert not [p for p in home.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]
    ack = tracker.spool.path.with_name(tracker.spool.path.name + ".acked").read_text()
    assert ack.startswith(f"{r.record_id}\t{r.run_id}\tprompts:/proc/1")
    assert _singles() == Counter({r.record_id: 1})
    assert tracker.written == 1


KERNEL = """
    import json, sys
    from IPython.core.interactiveshell import InteractiveShell
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "llmops_lab")
    import llmops_lab
    runs = []
    for i in range(20):
        ip.user_ns["i"] = i
        ip.run_cell_magic("llm", "--name mem --no-stream --format text", "call {{ i }}")
        runs.append(ip.user_ns["_"])
    left = llmops_lab.flush(120)
    heavy = sorted({m.split(".")[0] for m in sys.modules} & {"mlflow", "sqlalchemy", "alembic"})
    print(json.dumps({"left": left, "heavy": heavy, "run_ids": [r.run_id for r in runs]}))
"""


def test_a_kernel_never_imports_mlflow_and_its_footer_gets_the_run_id(proc_project):
    proc = _child(KERNEL, proc_project)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["left"] == 0 and out["heavy"] == []
    assert len(out["run_ids"]) == 20 and all(out["run_ids"])
    assert "· run " in proc.stdout  # the footer re-rendered with the run id (a terminal shows both states)
    client = mlflow_client()
    assert sorted(r.info.run_id for r in client.search_runs(
        [client.get_experiment_by_name("llmops-lab").experiment_id], max_results=100)) == sorted(out["run_ids"])


KILLED = """
    import os, signal, sys
    import llmops_lab
    from llmops_lab.tracking.writer_client import WriterClient
    {patch}
    for i in range(3):
        r = llmops_lab.run("kill test {{{{ i }}}}", {{"i": i}}, name="killed")
        print(r.record_id, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_sigkill_of_the_kernel_before_any_writer_ran_loses_nothing(proc_project):
    # The killed kernel never started a writer: the next flush (another process) starts one that replays.
    proc = _child(KILLED.format(patch="WriterClient.ensure_writer = lambda self, *a, **k: False"), proc_project)
    assert proc.returncode == -signal.SIGKILL
    ids = proc.stdout.split()
    assert len(ids) == 3 and len(spool_files(proc_project)) == 1
    tracking.replay_if_needed()
    assert tracking.flush(120) == 0
    assert tracking.get_tracker().replayed == 3
    assert _singles() == Counter({rid: 1 for rid in ids})
    deadline = time.monotonic() + 10  # the dead kernel's file goes once fully acknowledged
    while spool_files(proc_project) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert spool_files(proc_project) == []


def test_a_script_exits_at_once_and_the_writer_outlives_it(proc_project):
    started = time.monotonic()
    heavy = ('print("HEAVY", sorted({m.split(".")[0] for m in sys.modules} & '
             '{"mlflow", "papermill", "matplotlib", "pandas"}), file=sys.stderr)')
    proc = _child(KILLED.format(patch="").replace("os.kill(os.getpid(), signal.SIGKILL)", heavy), proc_project)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert time.monotonic() - started < 30  # it did not wait for MLflow (the writer imports it, not the script)
    assert "HEAVY []" in proc.stderr  # none of them on a 1-row script's path
    ids = proc.stdout.split()
    paths = WriterPaths(proc_project / ".llmops", next(p for p in spool_files(proc_project)).name.split("-w")[1][:12])
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and sum(_singles().values()) < 3:
        time.sleep(0.5)
    assert _singles() == Counter({rid: 1 for rid in ids})
    # Then it exits by itself once idle, and leaves no spool file behind.
    deadline = time.monotonic() + 30 + float(IDLE_S)
    while not lock_is_free(paths.lock) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert lock_is_free(paths.lock) and spool_files(proc_project) == []


def test_sigkill_of_the_writer_mid_batch_then_restarted_by_flush(proc_project):
    results = [llmops_lab.run("many {{ i }}", {"i": i}, name="many") for i in range(40)]
    tracker = tracking.get_tracker()
    acked = tracker.spool.path.with_name(tracker.spool.path.name + ".acked")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not acked.exists() or len(acked.read_text().splitlines()) < 3):
        time.sleep(0.02)
    pid = writer_pid(tracker.paths)
    assert pid, "no writer ran"
    os.kill(pid, signal.SIGKILL)
    done_before = len(acked.read_text().splitlines())
    assert done_before < 40, "the writer finished before it was killed: the test proves nothing"
    assert tracking.flush(180) == 0  # a new writer started by the flush writes the rest
    assert writer_pid(tracker.paths) not in (None, pid)
    assert all(r.run_id for r in results)
    assert _singles() == Counter({r.record_id: 1 for r in results})  # 0 lost, none twice


def test_the_writer_exits_when_idle_and_the_next_submit_starts_another(proc_project):
    first = llmops_lab.run("idle {{ x }}", {"x": 1}, name="idle")
    assert first.run_id
    tracker = tracking.get_tracker()
    pid = writer_pid(tracker.paths)
    deadline = time.monotonic() + float(IDLE_S) + 20
    while not lock_is_free(tracker.paths.lock) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert lock_is_free(tracker.paths.lock), "the writer did not exit when idle"
    second = llmops_lab.run("idle {{ x }}", {"x": 2}, name="idle")
    assert second.run_id and writer_pid(tracker.paths) not in (None, pid)
    assert _singles() == Counter({first.record_id: 1, second.record_id: 1})


def test_another_store_gets_its_own_writer_and_records_stay_apart(proc_project):
    a = llmops_lab.run("apart {{ x }}", {"x": 1}, name="apart")
    tracker = tracking.get_tracker()
    first_id = tracker.writer_id
    other = proc_project / "other"
    copy_store(other)
    llmops_lab.configure(tracking_uri=f"sqlite:///{other / 'mlflow.db'}")
    b = llmops_lab.run("apart {{ x }}", {"x": 2}, name="apart")
    assert tracker.writer_id != first_id
    assert tracking.flush(120) == 0 and a.run_id and b.run_id
    assert _singles() == Counter({b.record_id: 1})  # the store configured now
    llmops_lab.configure(tracking_uri=None)
    assert _singles() == Counter({a.record_id: 1})  # the project's default store


WRITER = """
    import sys
    import llmops_lab
    for i in range({n}):
        r = llmops_lab.run("writer {{{{ w }}}} call {{{{ i }}}}", {{"w": {w!r}, "i": i}}, name="concurrent")
        print(r.record_id, flush=True)
    sys.exit(0)
"""


def test_two_kernels_and_a_job_kernel_write_at_once_through_one_writer(proc_project):
    kernels = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(WRITER.format(n=15, w=w))],
                                cwd=proc_project, env={**os.environ}, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for w in ("a", "b", "job")]
    mine = [llmops_lab.run("main {{ i }}", {"i": i}, name="concurrent-main").record_id for i in range(10)]
    outputs = [k.communicate(timeout=300) for k in kernels]
    assert [k.returncode for k in kernels] == [0, 0, 0], [err[-2000:] for _, err in outputs]
    written = [line for out, _ in outputs for line in out.split()] + mine
    assert len(written) == 55
    assert tracking.flush(180) == 0  # ours, and the exited kernels' records
    assert _singles() == Counter({rid: 1 for rid in written})
    locks = list((proc_project / ".llmops").glob("writer-*.lock"))
    assert len(locks) == 1  # one writer identity served all four processes


# -- the store down, then back: a real mlflow server stopped and restarted ------------------------------------
class MlflowServer:
    def __init__(self, folder: Path, port: int):
        self.folder, self.port, self.proc = folder, port, None
        self.url = f"http://127.0.0.1:{port}"
        copy_store(folder)

    def start(self, timeout: float = 180) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_TRACKING_", "LLMOPS_"))}
        self.proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(self.port),
             "--backend-store-uri", f"sqlite:///{self.folder / 'mlflow.db'}", "--workers", "1",
             "--default-artifact-root", str(self.folder / "artifacts")],
            cwd=self.folder, env=env, stdout=open(self.folder / "server.log", "ab"), stderr=subprocess.STDOUT,
            start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.3)
        pytest.fail(f"mlflow server did not start: {(self.folder / 'server.log').read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


def test_the_store_down_then_back_loses_nothing(proc_project, caplog):
    from teamserver import free_port

    server = MlflowServer(proc_project / "server", free_port())
    server.start()
    try:
        llmops_lab.configure(tracking_uri=server.url)
        before = [llmops_lab.run("up {{ i }}", {"i": i}, name="updown") for i in range(3)]
        assert tracking.flush(120) == 0 and all(r.run_id for r in before)  # a cold server may time out once
        caplog.clear()
        server.stop()
        during = [llmops_lab.run("down {{ i }}", {"i": i}, name="updown") for i in range(3)]
        assert tracking.flush(8) == 3
        assert during[0].tracking_status == "queued" and "queued (MLflow unreachable" in during[0].footer()
        failures = [r for r in caplog.records if "MLflow write failed" in r.getMessage()]
        assert len(failures) == 1, [r.getMessage() for r in failures]  # one line per distinct error
        server.start()
        assert tracking.flush(120) == 0
        assert all(r.run_id and r.tracking_status == "logged" for r in during)
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=server.url)
        assert _singles(client) == Counter({r.record_id: 1 for r in before + during})
    finally:
        tracking.shutdown(0)
        stop_writers(proc_project / ".llmops")
        server.stop()
