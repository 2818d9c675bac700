"""Jobs: promote a notebook into a scheduled evaluation job with a report and a regression gate.

>>> from llmops_lab import jobs
>>> jobs.promote("notebooks/04_nightly_eval.ipynb", "nightly", "0 2 * * *", {"threshold": 0.8},
...              retries=1, gate={"metric": "accuracy", "min": 0.8})                  # doctest: +SKIP
>>> execution = jobs.run_job("nightly")  # as the scheduler would; .status, .metrics  # doctest: +SKIP
>>> jobs.list_jobs(), jobs.history("nightly")                                         # doctest: +SKIP
>>> print(jobs.export("nightly", "github-actions"))                                   # doctest: +SKIP
>>> jobs.Scheduler().run()                       # what `llmops-lab scheduler` does       # doctest: +SKIP

Inside a job notebook, ``llmops_lab.record("accuracy", 0.91)`` makes a metric of the job's run.
Importing this package is light: papermill, nbconvert and MLflow load when a job runs.
"""
from __future__ import annotations

import importlib
from typing import Any

from llmops_lab.jobs.record import record, recorded

_LAZY = {
    "promote": ".promotion", "remove": ".promotion", "Promotion": ".promotion",
    "export": ".exports",
    "run_job": ".execute", "JobExecutor": ".execute", "JobCancelled": "llmops_lab.exceptions", "JobTimedOut": "llmops_lab.exceptions",
    "list_jobs": ".listing", "history": ".listing", "JobStatus": ".listing",
    "render_report": ".report", "report_data": ".report",
    "Scheduler": ".scheduler",
    "Job": ".definition", "Gate": ".definition", "load_jobs": ".definition", "get_job": ".definition",
    "Execution": ".store",
    "JobError": "llmops_lab.exceptions", "JobNotFoundError": "llmops_lab.exceptions", "JobBusyError": "llmops_lab.exceptions",
    "JobDefinitionError": "llmops_lab.exceptions", "NotebookError": "llmops_lab.exceptions",
}
__all__ = ["record", "recorded", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
