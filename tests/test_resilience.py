"""Nothing lost under faults: concurrent writers (two kernels and a job) on one project's spool and sqlite
store, and a papermill job whose kernel is SIGKILLed mid-run. (Store down / SIGKILL after calls / provider
faults are in test_tracking.py and test_batch.py; a real mlflow server killed mid-writes in test_team_server.py.)
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from pathlib import Path

import nbformat
import pytest

import llmops_lab
from conftest import REPO, assert_spool_delivered, mlflow_client
from llmops_lab import tracking

BIN = Path(sys.executable).parent / "llmops-lab"
KERNEL = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}

WRITER = textwrap.dedent("""
    import sys
    import llmops_lab
    for i in range({n}):
        r = llmops_lab.run("writer {{{{ w }}}} call {{{{ i }}}}", {{"w": {w!r}, "i": i}}, name="concurrent")
        print(r.record_id, flush=True)
    left = llmops_lab.flush(120)
    sys.exit(1 if left else 0)
""")


def _project_with_fake_endpoint(project: Path, fake) -> None:
    (project / "llmops.toml").write_text(f'model = "fake:m"\n[endpoints.fake]\nbase_url = "{fake.base_url}"\n')
    from llmops_lab.config import reset_settings

    reset_settings(project)


def _notebook(path: Path, cells: list[str]) -> None:
    nb = nbformat.v4.new_notebook(metadata=KERNEL)
    nb.cells = [nbformat.v4.new_code_cell(cells[0], metadata={"tags": ["parameters"]})]
    nb.cells += [nbformat.v4.new_code_cell(c) for c in cells[1:]]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)


def test_two_kernels_and_a_job_write_concurrently_without_loss_or_duplicates(fake, project):
    from llmops_lab import jobs

    _project_with_fake_endpoint(project, fake)
    _notebook(project / "notebooks" / "writer.ipynb",
              ["n = 5", "%load_ext llmops_lab",
               "for i in range(n):\n    llmops_lab.run('job call {{ i }}', {'i': i}, name='concurrent-job')"])
    _notebook_import(project)
    jobs.promote("notebooks/writer.ipynb", "writer")
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    kernels = [subprocess.Popen([sys.executable, "-c", WRITER.format(n=15, w=w)], cwd=project, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for w in ("a", "b")]
    job = subprocess.Popen([str(BIN), "jobs", "run", "writer"], cwd=project, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    mine = [llmops_lab.run("main {{ i }}", {"i": i}, name="concurrent-main").record_id for i in range(10)]
    outputs = [k.communicate(timeout=300) for k in kernels]
    job_out, _ = job.communicate(timeout=300)
    assert [k.returncode for k in kernels] == [0, 0], outputs
    assert job.returncode == 0, job_out
    assert tracking.flush(60) == 0
    written = [line for out, _ in outputs for line in out.split()] + mine
    assert len(written) == 40

    client = mlflow_client()
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id], max_results=1000)]
    counts = Counter(r.data.tags.get("llmops.record_id") for r in runs if r.data.tags.get("llmops.kind") == "single")
    assert all(counts[rid] == 1 for rid in written), "a record was lost or written twice"
    job_calls = [r for r in runs if r.data.tags.get("llmops.prompt", "").startswith("concurrent-job@")]
    assert len(job_calls) == 5 and len(counts) == 45
    assert all(r.info.status == "FINISHED" for r in runs)
    assert_spool_delivered(project)  # the writers that exited removed theirs; ours is fully acked


def _notebook_import(project: Path) -> None:
    """The job notebook's cells use ``llmops_lab``: the extension import is what %load_ext gives them."""
    path = project / "notebooks" / "writer.ipynb"
    nb = nbformat.read(path, as_version=4)
    nb.cells[1].source = "%load_ext llmops_lab\nimport llmops_lab"
    nbformat.write(nb, path)


def test_job_whose_kernel_is_killed_mid_run_fails_keeps_its_notebook_and_loses_no_record(fake, project):
    from llmops_lab import jobs

    _project_with_fake_endpoint(project, fake)
    pid_file = project / "kernel.pid"
    _notebook(project / "notebooks" / "victim.ipynb",
              ["hang = 1", "%load_ext llmops_lab\nimport llmops_lab",
               "r = llmops_lab.run('before the kill {{ hang }}', {'hang': hang}, name='victim')\nprint('called', r.record_id)",
               f"import os, time\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\nif hang:\n    time.sleep(120)",
               "print('finished')"])
    jobs.promote("notebooks/victim.ipynb", "victim")
    result = {}
    runner = threading.Thread(target=lambda: result.update(ex=jobs.run_job("victim")))
    started = time.monotonic()
    runner.start()
    while not pid_file.exists():
        assert time.monotonic() - started < 120, "the job's kernel never reached the sleeping cell"
        time.sleep(0.2)
    time.sleep(0.3)
    os.kill(int(pid_file.read_text()), signal.SIGKILL)  # the kernel dies mid-cell, as on OOM or `kill -9`
    runner.join(120)
    ex = result["ex"]
    assert ex.status == "failed" and ex.error, ex
    cells = nbformat.read(ex.output_path, as_version=4).cells
    printed = ["".join(o.get("text", "") for o in c.get("outputs", [])) for c in cells]
    assert printed[2].startswith("called ") and not printed[4]  # outputs up to the kill are kept
    record_id = printed[2].split()[1]

    # The killed kernel's call was spooled before it died: the next load replays it, once.
    tracking.replay_if_needed()
    assert tracking.flush(60) == 0
    client = mlflow_client()
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    assert [r.data.tags.get("llmops.record_id") for r in runs].count(record_id) == 1

    # The next run of the job is unaffected.
    pid_file.unlink()
    again = jobs.run_job("victim", {"hang": "0"})
    assert again.status == "completed", again.error
    assert "finished" in Path(again.output_path).read_text()
    assert [e.status for e in jobs.history("victim")][:2] == ["completed", "failed"]
