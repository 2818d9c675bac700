"""IPython magics: ``%%llm`` (a cell is a prompt) and ``%llm`` (commands). Parsing and display only; the work is
done by the core API. Split by concern: :mod:`.parsing` (argparse, secrets refused), :mod:`.display` (answer,
footer, tables), :mod:`.llm` (the :class:`LlmMagics` subcommands), :mod:`.adapters` (magic arguments -> API).
"""
from __future__ import annotations

from typing import Any

from llmops_lab.magics.display import Footer, display_path, show
from llmops_lab.magics.llm import HELP, LlmMagics
from llmops_lab.magics.parsing import FORMATS, dataset_value, parse_cell_line

__all__ = ["load_ipython_extension", "LlmMagics", "HELP", "FORMATS", "parse_cell_line", "dataset_value", "Footer",
           "show", "display_path"]


def load_ipython_extension(shell: Any) -> None:
    """``%load_ext llmops_lab``: register the magics; replay an earlier kernel's spool in the background."""
    shell.register_magics(LlmMagics)
    from llmops_lab.tracking import replay_if_needed

    replay_if_needed()
