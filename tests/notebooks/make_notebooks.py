"""Writes the job fixture notebooks in this folder: `python tests/notebooks/make_notebooks.py`."""
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).parent
KERNEL = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
          "language_info": {"name": "python"}}


def params(source: str):
    return new_code_cell(source, metadata={"tags": ["parameters"]})


NOTEBOOKS = {
    # runs and records nothing special: the happy path
    "success.ipynb": [
        new_markdown_cell("# A job that succeeds"),
        params('greeting = "hello"\nrepeat = 2'),
        new_code_cell('import llmops_lab\nmessage = " ".join([greeting] * repeat)\nprint(message)'),
        new_code_cell('llmops_lab.record("words", len(message.split()))'),
    ],
    # the second cell raises: the execution is failed, the partial notebook kept
    "failing.ipynb": [
        params("divisor = 0"),
        new_code_cell('print("before the failure")'),
        new_code_cell("result = 1 / divisor"),
        new_code_cell('print("never printed")'),
    ],
    # no cell tagged 'parameters': promote refuses it unless --add-parameters-cell
    "no_params.ipynb": [
        new_code_cell('import math\nmodel = "local:smollm2-135m"\nthreshold = 0.5'),
        new_code_cell('import llmops_lab\nllmops_lab.record("threshold", threshold)\nprint(model, math.pi > 3)'),
    ],
    # sleeps longer than the job's timeout
    "slow.ipynb": [
        params("seconds = 60"),
        new_code_cell('import time\nprint("sleeping", flush=True)\ntime.sleep(seconds)'),
        new_code_cell('print("woke up")'),
    ],
    # ignores the interrupt (like a long C call): the kernel has to be killed at the timeout
    "stubborn.ipynb": [
        params("seconds = 60"),
        new_code_cell("import signal\nimport time\n\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
                      'print("not listening", flush=True)\ntime.sleep(seconds)'),
    ],
    # records several metrics, one of them over steps
    "metrics.ipynb": [
        params("accuracy = 0.91\nlatency_ms = 120.0"),
        new_code_cell('import llmops_lab\nfor step, loss in enumerate([0.9, 0.5, 0.3]):\n'
                      '    llmops_lab.record("loss", loss, step=step)'),
        new_code_cell('llmops_lab.record("accuracy", accuracy)\nllmops_lab.record("latency_ms", latency_ms)'),
    ],
    # fails on its first attempt only (a marker file beside it), to exercise retries
    "flaky.ipynb": [
        params('marker = "flaky.marker"'),
        new_code_cell("from pathlib import Path\nimport llmops_lab\n"
                      "if not Path(marker).exists():\n"
                      '    Path(marker).write_text("first attempt")\n'
                      '    raise RuntimeError("flaky: the first attempt fails")\n'
                      'llmops_lab.record("accuracy", 1.0)'),
    ],
}


def main() -> None:
    for name, cells in NOTEBOOKS.items():
        nb = new_notebook(cells=cells, metadata=KERNEL)
        for index, cell in enumerate(nb.cells):
            cell.id = f"{Path(name).stem}-{index}"  # stable ids: regenerating gives the same files
        nbformat.validate(nb)
        nbformat.write(nb, str(HERE / name))
    # a notebook cut off mid-write
    text = (HERE / "success.ipynb").read_text()
    (HERE / "corrupted.ipynb").write_text(text[: len(text) // 2])


if __name__ == "__main__":
    main()
