"""The docstring examples of every llmops_lab module run and print what they show (examples that need a model,
MLflow or a notebook are marked ``# doctest: +SKIP`` in the docstring). Each module must also import cleanly.

Runs in a fresh project without a store (an example that reached for files would find an empty project, not
this checkout). Docstrings whose examples continue from a skipped one (names it defined) are listed in
ILLUSTRATIVE until their remaining lines carry ``+SKIP`` too.
"""
from __future__ import annotations

import doctest
import importlib
import io
import pkgutil

import pytest

import llmops_lab

MODULES = sorted(m.name for m in pkgutil.walk_packages(llmops_lab.__path__, "llmops_lab.")
                 if not m.name.endswith("__main__"))  # running `python -m` code is not an example
ILLUSTRATIVE: dict[str, str] = {}  # docstring -> why it cannot run as it stands (none today)


def _docstrings(module_name: str) -> list[doctest.DocTest]:
    module = importlib.import_module(module_name)
    return [t for t in doctest.DocTestFinder().find(module, module_name) if t.examples]


@pytest.fixture
def registries():
    """Example scorers registered by a docstring are forgotten afterwards."""
    from llmops_lab.evaluation import scoring

    saved = dict(scoring.SCORERS), dict(scoring._FORMS)
    yield
    for registry, before in zip((scoring.SCORERS, scoring._FORMS), saved):
        registry.clear()
        registry.update(before)


@pytest.mark.parametrize("module_name", MODULES)
def test_module_imports_and_its_examples_run(module_name, bare_project, registries):
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    report = io.StringIO()
    for test in _docstrings(module_name):
        if test.name not in ILLUSTRATIVE:
            runner.run(test, out=report.write)
    assert runner.failures == 0, report.getvalue()


def test_examples_are_found_and_the_illustrative_list_is_current():
    """The examples really run (a change in discovery would pass every module silently), and every
    ILLUSTRATIVE entry still names a docstring with examples."""
    found = {t.name: t for name in MODULES for t in _docstrings(name)}
    assert set(ILLUSTRATIVE) <= set(found)
    run = [e for name, t in found.items() if name not in ILLUSTRATIVE for e in t.examples
           if not e.options.get(doctest.SKIP)]
    assert len(run) >= 40
    assert {"llmops_lab.evaluation.scoring", "llmops_lab.trust.redaction", "llmops_lab.core.explain.shade_html",
            "llmops_lab.analysis.paired.mcnemar_exact", "llmops_lab.core.durations.parse_since"} <= set(found)
