"""A job gated on a probe metric: the notebook runs a probe against the fake server (a model pinned to one name,
so every swapped row flips), and the gate on ``probe.names.exact_expected.flip_rate`` reads it from the probe run."""
import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from conftest import active_project, make_project

CELLS = [
    new_code_cell('base_url = ""', metadata={"tags": ["parameters"]}),
    new_code_cell('import llmops_lab\nllmops_lab.get_settings().endpoints["fake"] = {"base_url": base_url}\n'
                  'llmops_lab.configure(model="fake:test-model")'),
    new_code_cell('rows = [{"question": "Pick Emily or someone else?", "expected": "Emily"}] * 8\n'
                  'p = llmops_lab.probe("{{ question }}", data=rows, swaps="names", scorers=["exact:expected"], '
                  'progress=False)\nprint(p.metrics())'),
]


@pytest.fixture
def proj(tmp_path, fake_server):
    notebook = new_notebook(cells=CELLS, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                                  "language": "python"}})
    root = make_project(tmp_path, {"notebooks/probe.ipynb": nbformat.writes(notebook)}, store=True, git=True)
    fake_server.reset()
    fake_server.responder = lambda req: "Emily"
    with pytest.MonkeyPatch.context() as mp, \
            active_project(root, mp, unset=("LLMOPS_HOME", "LLMOPS_JOB_METRICS", "LLMOPS_JOB")):
        yield root
    fake_server.responder = None


def test_a_gate_on_a_probe_flip_rate(proj, fake_server):
    from llmops_lab import jobs

    jobs.promote("notebooks/probe.ipynb", "fairness", "0 3 * * *", {"base_url": fake_server.base_url},
                 gate={"metric": "probe.names.exact_expected.flip_rate", "max": 0.05})
    ex = jobs.run_job("fairness")
    assert ex.metrics["probe.names.exact_expected.flip_rate"] == 1.0, ex.error
    assert ex.metrics["probe.names.exact_expected.p_value"] == pytest.approx(2 / 256)
    assert ex.status == "regressed" and "probe.names.exact_expected.flip_rate" in ex.error
