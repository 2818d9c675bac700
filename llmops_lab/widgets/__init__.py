"""Notebook widgets (ipywidgets): state in traitlets, views render state, testable without a kernel.

``CompareGrid`` is imported lazily so ``import llmops_lab.widgets`` stays cheap.
"""
from __future__ import annotations

__all__ = ["CompareGrid"]


def __getattr__(name: str):
    if name == "CompareGrid":
        from llmops_lab.widgets.compare_grid import CompareGrid

        return CompareGrid
    raise AttributeError(f"module 'llmops_lab.widgets' has no attribute {name!r}")
