"""Display for the magics: the answer in its format, the live footer under it, a results table, and paths as a
saved notebook should keep them. What may be shown is decided by :mod:`llmops_lab.trust.display`.
"""
from __future__ import annotations

from typing import Any

UNATTENDED_FOOTER_WAIT_S = 30.0  # in a papermill run, how long a cell waits for its run id (see show)


class Footer:
    """The one-line footer under an answer; re-rendered when the run id arrives."""

    def __init__(self, result: Any):
        self.text = result.footer()

    def _repr_html_(self) -> str:
        import html

        return f'<div style="color:#777;font-size:0.85em">{html.escape(self.text)}</div>'

    def __repr__(self) -> str:
        return self.text


def display_path(text: str, project_root: Any) -> str:
    """Paths as a notebook should keep them: the project root as ``<project>`` (``<project>/.llmops/mlflow.db``),
    the home folder as ``~``. A saved notebook then shows no machine's folders, and says the same everywhere."""
    import os
    from pathlib import Path

    root = str(Path(project_root).resolve())
    home = os.path.expanduser("~")
    text = text.replace(root, "<project>")
    if home not in ("", "/") and home != root:
        text = text.replace(home + os.sep, "~" + os.sep)
    return text


def show(result: Any, fmt: str, shell: Any) -> None:
    """Display the answer in ``fmt`` and a live footer."""
    import json
    import os

    from IPython.display import JSON, Markdown, display

    from llmops_lab.core.results import strip_fences
    from llmops_lab.trust.display import for_display  # on first display: %load_ext stays light

    asked = [m["content"] for m in result.messages or () if isinstance(m.get("content"), str)]
    text = for_display(result.text, asked)  # also the prompt's secrets the answer repeats in another form
    shaded = result.logprobs_requested
    if shaded:  # the answer shaded by token probability replaces the markdown/text view
        from IPython.display import HTML

        from llmops_lab.core.explain import result_html

        display(HTML(result_html(result.text, result.tokens)))  # masked for display inside
    if fmt == "markdown":
        if not shaded:
            display(Markdown(text))
    elif fmt == "json":
        try:
            data = result.data if text == result.text else json.loads(strip_fences(text))
        except json.JSONDecodeError:
            data = None
        if data is None:
            display(Markdown(text))
            print("(the answer is not valid JSON; .data is None)")
        else:
            display(JSON(data, expanded=True))
    elif fmt == "code":
        code = strip_fences(text)
        display(Markdown(f"```\n{code}\n```"))
        shell.set_next_input(code, replace=False)
    elif not shaded:
        print(text)
    if result._ticket is not None and os.environ.get("LLMOPS_NOTEBOOK"):
        # A papermill run (execute_notebook, jobs, `llmops-lab demo`): nobody watches the cell and the saved
        # notebook is what counts, while an update from the writer after the cell ends never reaches the file.
        # Wait (bounded) for the run id so the footer is saved final, not "logging…".
        result._ticket.wait(UNATTENDED_FOOTER_WAIT_S)
    handle = display(Footer(result), display_id=True)
    if handle is not None and result._ticket is not None:
        result._ticket.on_change(lambda _ticket: handle.update(Footer(result)))


def show_frame(results: Any) -> None:
    """A batch's results table, masked for display (the variable keeps the real answers)."""
    from IPython.display import display

    from llmops_lab.evaluation.batch import TOKENS_COLUMN
    from llmops_lab.trust.display import frame_for_display

    shown = results.drop(columns=TOKENS_COLUMN) if TOKENS_COLUMN in results.columns else results
    # per-row token lists are not a table's job (explain.shade_html)
    display(frame_for_display(shown))
