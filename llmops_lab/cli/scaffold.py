"""Project set-up for ``llmops-lab init`` and ``llmops-lab demo``: files are written once, never overwritten.

Everything is checked before anything is written; a file that exists is left as it was (a pyproject.toml
or .gitignore only gains what it lacks, at its end).
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from llmops_lab.config import DEFAULT_MODEL, ROOT_MARKERS
from llmops_lab.exceptions import ConfigError

QUICKSTART = "01_quickstart.ipynb"
MARKER = "llmops.toml"
EVAL_NOTEBOOK = Path("notebooks") / "eval.ipynb"
IGNORE_LINE = ".llmops/"
_IGNORED = {".llmops", ".llmops/", "/.llmops", "/.llmops/", ".llmops/*", "/.llmops/*", "**/.llmops", "**/.llmops/"}

MARKER_TEXT = """\
# This folder is an llmops-lab project: its runs, spool and cache live in .llmops/ here.
# Settings go in this file, as in [tool.llmops-lab] of a pyproject.toml, e.g. model = "openai:gpt-4o-mini".
"""

SETTINGS_SECTION = f"""\
[tool.llmops-lab]
# Settings for every notebook of this project; LLMOPS_* variables and `%llm config` override them.
model = "{DEFAULT_MODEL}"
# temperature = 0
# max_cost_day = 5.0                      # USD per UTC day over every run, checked before each request
# [tool.llmops-lab.endpoints.vllm]        # any OpenAI-compatible server, then model = "vllm:<its model>"
# base_url = "http://127.0.0.1:8000/v1"
"""


@dataclass(frozen=True)
class Step:
    """One file of the scaffold: what ``init`` did (``created``, ``added`` or ``left``) and why."""

    path: Path
    action: str
    detail: str
    text: str | None = None  # what to write (create) or append; None when the file is left


def ensure_project(folder: Path) -> Path | None:
    """Make ``folder`` a project root (an ``llmops.toml`` marker) unless it or a parent already is one."""
    folder = folder.resolve()
    if any((f / marker).exists() for f in (folder, *folder.parents) for marker in ROOT_MARKERS):
        return None
    marker = folder / MARKER
    _write(marker, MARKER_TEXT, "x")
    return marker


def copy_quickstart(dest: Path) -> bool:
    """Copy the packaged quickstart notebook to ``dest`` unless something is there; True if copied."""
    if dest.exists():
        return False
    data = _quickstart().read_bytes()
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(dest, "xb") as handle:
            handle.write(data)
    except FileExistsError:
        return False
    return True


def _quickstart():
    """The quickstart in the wheel (``llmops_lab/examples``), else the checkout's ``notebooks/`` (editable)."""
    for candidate in (resources.files("llmops_lab") / "examples" / QUICKSTART,
                      Path(__file__).resolve().parents[2] / "notebooks" / QUICKSTART):
        if candidate.is_file():
            return candidate
    raise ConfigError("the quickstart notebook is not installed with llmops-lab: reinstall it "
                      "(pip install --force-reinstall llmops-lab)")


def init_project(folder: Path) -> list[Step]:
    """Scaffold ``folder``: ``[tool.llmops-lab]`` in pyproject.toml, ``notebooks/eval.ipynb``, ``.llmops/``
    in .gitignore. Returns the steps, in order; files that exist are never overwritten."""
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{folder} is a file, not a folder: give llmops-lab init a folder")
    steps = [_pyproject_step(folder), _notebook_step(folder), _gitignore_step(folder)]
    for step in steps:
        if step.text is not None:
            step.path.parent.mkdir(parents=True, exist_ok=True)
            _write(step.path, step.text, "x" if step.action == "created" else "a")
    return steps


def _pyproject_step(folder: Path) -> Step:
    path = folder / "pyproject.toml"
    if not path.exists():
        return Step(path, "created", "with [tool.llmops-lab] settings", _new_pyproject(folder))
    try:
        text = path.read_text(encoding="utf-8")
        table = tomllib.loads(text)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise ConfigError(f"cannot read {path} ({err}): fix it first; nothing was written") from None
    if "llmops-lab" in table.get("tool", {}):
        return Step(path, "left", "it already has [tool.llmops-lab]")
    addition = ("\n" if text and not text.endswith("\n") else "") + ("\n" if text.strip() else "") + SETTINGS_SECTION
    try:
        tomllib.loads(text + addition)
    except tomllib.TOMLDecodeError as err:  # e.g. a [tool] table defined with dotted keys only
        raise ConfigError(f"cannot add [tool.llmops-lab] to {path} ({err}): add it by hand; "
                          "nothing was written") from None
    return Step(path, "added", "[tool.llmops-lab] at its end", addition)


def _new_pyproject(folder: Path) -> str:
    from llmops_lab import __version__

    name = re.sub(r"[^A-Za-z0-9._-]+", "-", folder.resolve().name).strip("._-") or "llmops-project"
    return (f'[project]\nname = "{name}"\nversion = "0.1.0"\nrequires-python = ">=3.11"\n'
            f'dependencies = ["llmops-lab[local,lab]>={__version__}"]\n\n{SETTINGS_SECTION}')


def _notebook_step(folder: Path) -> Step:
    path = folder / EVAL_NOTEBOOK
    if path.exists():
        return Step(path, "left", "the file exists")
    if path.parent.exists() and not path.parent.is_dir():
        raise ConfigError(f"{path.parent} is a file, not a folder: move it away first; nothing was written")
    return Step(path, "created", "an evaluation: parameters cell, a scored %%llm batch, a recorded metric",
                eval_notebook())


def _gitignore_step(folder: Path) -> Step:
    path = folder / ".gitignore"
    if not path.exists():
        return Step(path, "created", f"ignores {IGNORE_LINE}", f"{IGNORE_LINE}\n")
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as err:
        raise ConfigError(f"cannot read {path} ({err.strerror}): nothing was written") from None
    if _IGNORED & {line.strip() for line in text.splitlines()}:
        return Step(path, "left", f"it already ignores {IGNORE_LINE}")
    prefix = "\n" if text and not text.endswith("\n") else ""
    return Step(path, "added", IGNORE_LINE, f"{prefix}# llmops-lab: local runs, spool and cache\n{IGNORE_LINE}\n")


def _write(path: Path, text: str, mode: str) -> None:
    """``x``: create (never overwrite); ``a``: append. An unwritable file is a one-line error."""
    try:
        with open(path, mode, encoding="utf-8") as handle:
            handle.write(text)
    except FileExistsError:
        raise ConfigError(f"{path} appeared while writing it: nothing overwritten, run again") from None
    except OSError as err:
        raise ConfigError(f"cannot write {path}: {err.strerror}") from None


_EVAL_INTRO = """\
# Evaluation: one prompt over a labelled dataset, scored and tracked

Each run is one MLflow batch run (dataset digest, results table, scores) in this notebook's experiment, and
`accuracy` is recorded with `llmops_lab.record`. Run it cell by cell, with papermill
(`papermill notebooks/eval.ipynb out.ipynb -p model openai:gpt-4o-mini`), or as a job:

```
llmops-lab promote notebooks/eval.ipynb --name eval --gate accuracy --min 0.5
llmops-lab jobs run eval     # exit 1 if a cell fails or accuracy is under the gate
```"""

_EVAL_PARAMETERS = f"""\
# Parameters (papermill and `llmops-lab jobs run eval -p NAME=VALUE` override them)
model = "{DEFAULT_MODEL}"
dataset = ""     # a .csv or .jsonl file with columns text and label (relative to this folder); "": the examples below
threshold = 0.5  # the accuracy this prompt should reach"""

_EVAL_SETUP = """\
%load_ext llmops_lab
import pandas as pd

import llmops_lab

llmops_lab.configure(model=model, temperature=0)
examples = dataset or pd.DataFrame({
    "text": ["I loved this film, the acting was wonderful.", "Terrible service, I will never come back.",
             "Great value and fast delivery, very happy!", "The battery died after two days. Awful.",
             "Absolutely delightful evening, thank you!", "Cold food and a rude waiter."],
    "label": ["positive", "negative", "positive", "negative", "positive", "negative"],
})"""

_EVAL_BATCH_NOTE = """\
The prompt runs over every row; `contains:label` scores 1 where the answer contains the row's label.
`--no-cache` asks the model again on each run (an evaluation should notice when the model changes); drop it
while you iterate on the prompt, and a re-run costs nothing."""

_EVAL_BATCH = """\
%%llm --name eval-sentiment --dataset examples --scorer contains:label --max-tokens 5 --concurrency 2 --no-cache --out results
Classify the sentiment of the review as positive or negative. Answer with one word.

Review: {{ text }}"""

_EVAL_RECORD = """\
accuracy = float(results["contains_label"].mean())
llmops_lab.record("accuracy", accuracy)
llmops_lab.record("above_threshold", accuracy >= threshold)
left = llmops_lab.flush(60)  # write the batch run to MLflow before the kernel exits
print(f"tracking: {'all written' if not left else f'{left} record(s) still queued'}")"""


def eval_notebook() -> str:
    """The text of ``notebooks/eval.ipynb``."""
    import nbformat

    v4 = nbformat.v4
    nb = v4.new_notebook(metadata={"kernelspec": {"display_name": "Python 3", "language": "python",
                                                  "name": "python3"},
                                   "language_info": {"name": "python"}})
    nb.cells = [v4.new_markdown_cell(_EVAL_INTRO),
                v4.new_code_cell(_EVAL_PARAMETERS, metadata={"tags": ["parameters"]}),
                v4.new_code_cell(_EVAL_SETUP),
                v4.new_markdown_cell(_EVAL_BATCH_NOTE),
                v4.new_code_cell(_EVAL_BATCH),
                v4.new_markdown_cell("The number that matters (a job's regression gate reads it):"),
                v4.new_code_cell(_EVAL_RECORD)]
    return nbformat.writes(nb) + "\n"
