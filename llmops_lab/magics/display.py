"""Display for the magics: the answer in its format (or as it streams in, :class:`LiveAnswer`), the live footer
under it, a results table, and paths as a saved notebook should keep them. What may be shown is decided by
:mod:`llmops_lab.trust.display`.
"""
from __future__ import annotations

import time
from typing import Any

UNATTENDED_FOOTER_WAIT_S = 30.0  # in a papermill run, how long a cell waits for its run id (see show)
STREAM_UPDATE_S = 0.1  # at most ten display updates a second: each re-renders the whole answer in the browser


class PlainText:
    """A text shown as text/plain (a streamed ``--format text`` answer: one display that is updated)."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return self.text


class MarkdownText(PlainText):
    """A Markdown text (a conversation's transcript): rendered in a notebook, as is in a terminal."""

    def _repr_markdown_(self) -> str:
        return self.text


class LiveAnswer:
    """A streamed answer in one display, updated as pieces arrive (throttled), masked for display with the
    unfinished tail held back (:class:`~llmops_lab.trust.display.StreamView`). It is the stream's ``on_text``
    (``begin`` gets the messages sent, so the prompt's secrets stay masked in any form the answer repeats them);
    ``finish`` shows the whole answer."""

    def __init__(self, fmt: str):
        self.fmt = fmt
        self.pieces: list[str] = []
        self.shown = ""
        self._handle: Any = None
        self._last_update = 0.0
        self._view: Any = None

    def begin(self, messages: list[dict[str, Any]]) -> None:
        from llmops_lab.trust.display import StreamView

        self._view = StreamView(m.get("content") for m in messages)

    def __call__(self, piece: str) -> None:
        self.pieces.append(piece)
        if time.monotonic() - self._last_update >= STREAM_UPDATE_S:
            self._show(self._stream_view()("".join(self.pieces)))

    add = __call__

    def finish(self, text: str) -> None:
        self._show(self._stream_view().final(text), force=True)

    def _stream_view(self) -> Any:
        if self._view is None:  # a caller that never said what was asked
            from llmops_lab.trust.display import StreamView

            self._view = StreamView()
        return self._view

    def _show(self, text: str, force: bool = False) -> None:
        if text == self.shown and not force:
            return
        from IPython.display import Markdown, display

        shown = Markdown(text) if self.fmt == "markdown" else PlainText(text)
        if self._handle is None:
            self._handle = display(shown, display_id=True)
        else:
            self._handle.update(shown)
        self.shown, self._last_update = text, time.monotonic()


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


def show(result: Any, fmt: str, shell: Any, live: LiveAnswer | None = None) -> None:
    """Display the answer in ``fmt`` (``live``: it was streamed there; now shown whole) and a live footer."""
    import os

    from IPython.display import display

    if live is not None:
        live.finish(result.text)
    else:
        _show_answer(result, fmt, shell)
    if result._ticket is not None and os.environ.get("LLMOPS_NOTEBOOK"):
        # A papermill run (execute_notebook, jobs, `llmops-lab demo`): nobody watches the cell and the saved
        # notebook is what counts, while an update from the writer after the cell ends never reaches the file.
        # Wait (bounded) for the run id so the footer is saved final, not "logging…".
        result._ticket.wait(UNATTENDED_FOOTER_WAIT_S)
    handle = display(Footer(result), display_id=True)
    if handle is not None and result._ticket is not None:
        result._ticket.on_change(lambda _ticket: handle.update(Footer(result)))


def _show_answer(result: Any, fmt: str, shell: Any) -> None:
    """The whole answer in ``fmt``, masked for display (or shaded by token probability with logprobs)."""
    import json

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
            if hasattr(data, "model_dump"):  # a schema's model instance
                data = data.model_dump(mode="json")
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


def show_frame(results: Any) -> None:
    """A batch's results table, masked for display (the variable keeps the real answers)."""
    from IPython.display import display

    from llmops_lab.evaluation.batch import TOKENS_COLUMN
    from llmops_lab.trust.display import frame_for_display

    shown = results.drop(columns=TOKENS_COLUMN) if TOKENS_COLUMN in results.columns else results
    # per-row token lists are not a table's job (explain.shade_html)
    display(frame_for_display(shown))
