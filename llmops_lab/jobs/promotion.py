"""Promote a notebook into a job: validate everything first, then write ``llmops_jobs.toml`` atomically.

Checks, cheapest first: job name, cron expression (croniter; shown back in words with the next three
run times), timezone, timeout/retries, gate; then the notebook: inside the project (symlinks resolved),
a readable .ipynb, its kernel installed, a cell tagged ``parameters`` (papermill's convention; with
``add_parameters_cell`` one is made from the first code cell's literal assignments), and every given
parameter exists there (``papermill.inspect_notebook``) and is typed by its default (``threshold=0.8``
is a float). Nothing is written unless all checks pass.
"""
from __future__ import annotations

import ast
import difflib
import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Mapping, Sequence

from llmops_lab.config import Settings, get_settings
from llmops_lab.jobs import cron
from llmops_lab.jobs.definition import (DEFAULT_TIMEOUT, DEFAULT_TIMEZONE, Gate, Job, check_name, check_retries, check_schedule,
                         check_timeout, check_timezone, check_value, load_jobs, make_gate, save_jobs)
from llmops_lab.exceptions import JobDefinitionError, NotebookError

PARAMETERS_TAG = "parameters"
_TYPES: dict[str, type] = {"int": int, "float": float, "str": str, "bool": bool, "list": list, "dict": dict}
_UNKNOWN = object()


@dataclass
class Promotion:
    """What :func:`promote` did."""

    job: Job
    path: Path  # llmops_jobs.toml
    description: str | None  # the schedule in words
    next_runs: list[datetime] = field(default_factory=list)
    added_parameters: list[str] | None = None  # names moved into a new parameters cell, when one was added
    replaced: bool = False

    def summary(self) -> str:
        job = self.job
        lines = [f"{'replaced' if self.replaced else 'promoted'} job {job.name}: {job.notebook} (kernel {job.kernel})"]
        if job.schedule:
            lines.append(f"  schedule: {job.schedule} = {self.description} ({job.timezone})")
            lines.append("  next runs: " + ", ".join(t.strftime("%Y-%m-%d %H:%M %Z") for t in self.next_runs))
        else:
            lines.append("  schedule: none (run it with llmops-lab jobs run " + job.name + ")")
        params = ", ".join(f"{k}={v!r}" for k, v in job.parameters.items()) or "notebook defaults"
        lines.append(f"  parameters: {params}")
        lines.append(f"  timeout: {job.timeout:g} s per attempt, retries: {job.retries}")
        for gate in job.gates:
            lines.append(f"  gate: {gate.describe()}")
        if self.added_parameters:
            lines.append(f"  added a 'parameters' cell to {job.notebook} with: {', '.join(self.added_parameters)}")
        lines.append(f"  written to {self.path.name}")
        return "\n".join(lines)


# -- notebook checks --------------------------------------------------------------------------------

def resolve_notebook(path: str | os.PathLike, root: Path) -> tuple[Path, str]:
    """The notebook's real path and its path relative to the project root; refuses anything outside."""
    given = Path(path)
    absolute = (given if given.is_absolute() else Path.cwd() / given).resolve()
    root = Path(root).resolve()
    try:
        relative = absolute.relative_to(root)
    except ValueError:
        raise NotebookError(f"notebook {path} is outside the project {root}: move or copy it into the project "
                            "(jobs only run notebooks under version control with the project)") from None
    if absolute.suffix != ".ipynb":
        raise NotebookError(f"{path} is not a notebook: give an .ipynb file")
    if not absolute.is_file():
        raise NotebookError(f"notebook {path} not found")
    return absolute, relative.as_posix()


def read_notebook(path: Path) -> Any:
    """Read and validate an .ipynb; a corrupted file is a one-line NotebookError."""
    import nbformat

    try:
        text = path.read_text(encoding="utf-8")
        nb = nbformat.reads(text, as_version=4)
        nbformat.validate(nb)
    except Exception as err:  # noqa: BLE001 - any unreadable notebook is the same user error
        detail = str(err).strip().splitlines()[0][:200] if str(err).strip() else ""
        raise NotebookError(f"{path.name} is not a valid notebook ({type(err).__name__}"
                            f"{': ' + detail if detail else ''}): fix or re-save it in Jupyter") from None
    return nb


def notebook_digest(nb: Any) -> str:
    """sha256 of the cells' types and sources (outputs and metadata excluded): changes when the code does."""
    import hashlib

    payload = json.dumps([[c.get("cell_type"), c.get("source", "")] for c in nb.get("cells", [])],
                         ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def parameters_cell(nb: Any) -> int | None:
    for index, cell in enumerate(nb.cells):
        if PARAMETERS_TAG in (cell.get("metadata", {}).get("tags") or []):
            return index
    return None


def _python_lines(source: str) -> str:
    """Blank out IPython-only lines (magics, shell escapes) so ``ast`` can parse the rest, lines kept."""
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())


def literal_assignments(source: str) -> list[tuple[str, int, int]]:
    """Top-level ``name = <literal>`` statements: (name, first line, last line), 1-based."""
    if source.lstrip().startswith("%%"):
        return []
    try:
        tree = ast.parse(_python_lines(source))
    except SyntaxError:
        return []
    found = []
    for node in tree.body:
        target = None
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            target = node.targets[0].id
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            target = node.target.id
        if target is None:
            continue
        try:
            ast.literal_eval(node.value)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            continue
        found.append((target, node.lineno, node.end_lineno or node.lineno))
    return found


def with_parameters_cell(nb: Any, notebook: str) -> tuple[Any, list[str]]:
    """A copy of ``nb`` with a cell tagged ``parameters`` made from the first code cell's literal assignments:
    the cell itself is tagged when it holds nothing else, otherwise the assignments move into a new cell
    placed before it (literals depend on nothing, so the order of execution is unchanged)."""
    import copy

    import nbformat

    nb = copy.deepcopy(nb)
    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    if not code:
        raise NotebookError(f"{notebook} has no code cell to make a 'parameters' cell from")
    index = code[0]
    cell = nb.cells[index]
    found = literal_assignments(cell.source)
    if not found:
        raise NotebookError(f"{notebook}: the first code cell has no `name = value` assignments to turn into "
                            "parameters; tag a cell 'parameters' in Jupyter (Property Inspector > Cell Tags)")
    lines = cell.source.splitlines()
    taken = {n for _, start, end in found for n in range(start, end + 1)}
    rest = [line for n, line in enumerate(lines, 1) if n not in taken]
    if all(not line.strip() or line.lstrip().startswith("#") for line in rest):
        cell.setdefault("metadata", {}).setdefault("tags", []).append(PARAMETERS_TAG)
    else:
        params_source = "\n".join(line for _, start, end in found for line in lines[start - 1:end])
        new = nbformat.v4.new_code_cell("# Parameters (papermill can override them)\n" + params_source,
                                        metadata={"tags": [PARAMETERS_TAG]})
        cell.source = "\n".join(rest).strip("\n")
        nb.cells.insert(index, new)
    return nb, [name for name, _, _ in found]


def inspect_parameters(nb: Any) -> dict[str, dict[str, Any]]:
    """papermill's ``inspect_notebook`` on the notebook as it will run (name -> name, default, type)."""
    import nbformat
    import papermill

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "inspect.ipynb"
        nbformat.write(nb, str(path))
        return papermill.inspect_notebook(str(path))


def check_kernel(name: str) -> str:
    from jupyter_client.kernelspec import KernelSpecManager

    specs = KernelSpecManager().find_kernel_specs()
    if name not in specs:
        raise NotebookError(f"kernel {name!r} is not installed (installed: {', '.join(sorted(specs)) or 'none'}): "
                            "install it or choose another with --kernel")
    return name


# -- parameters -------------------------------------------------------------------------------------

def parse_assignments(items: Sequence[str]) -> dict[str, str]:
    """``["model=openai:gpt-4o-mini", "threshold=0.8"]`` -> dict of strings (typed later)."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier():
            raise JobDefinitionError(f"parameter {item!r} is not NAME=VALUE (for example -p threshold=0.8)")
        out[name] = value
    return out


def _default(info: Mapping[str, Any]) -> Any:
    try:
        return ast.literal_eval(info.get("default") or "")
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return _UNKNOWN


def expected_type(info: Mapping[str, Any]) -> type | None:
    """The type a parameter must have: its annotation, else the type of its literal default."""
    declared = _TYPES.get(str(info.get("inferred_type_name") or ""))
    if declared is not None:
        return declared
    default = _default(info)
    if default is _UNKNOWN or default is None:
        return None
    return {tuple: list}.get(type(default), type(default))


def _from_text(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return text


def coerce(name: str, value: Any, info: Mapping[str, Any]) -> Any:
    """``value`` (a string from the command line, or a Python value) as the type of the notebook's default."""
    kind = expected_type(info)
    shown = info.get("default")

    def wrong() -> JobDefinitionError:
        return JobDefinitionError(f"parameter {name}={value!r} is not a valid {kind.__name__}: "
                                  f"the notebook's default is {shown}")

    if kind is None:
        return check_value(name, _from_text(value) if isinstance(value, str) else value)
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.strip().lower() in ("true", "1", "yes")
        raise wrong()
    if kind is int:
        if isinstance(value, bool):
            raise wrong()
        if isinstance(value, int):
            return value
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                raise wrong() from None
        raise wrong()
    if kind is float:
        if isinstance(value, bool):
            raise wrong()
        try:
            number = float(value.strip()) if isinstance(value, str) else float(value) \
                if isinstance(value, (int, float)) else None
        except ValueError:
            number = None
        if number is None or not math.isfinite(number):
            raise wrong()
        return number
    if kind is str:
        if not isinstance(value, str):
            raise wrong()
        return value
    parsed = _from_text(value) if isinstance(value, str) else value
    if isinstance(parsed, tuple):
        parsed = list(parsed)
    if not isinstance(parsed, kind):
        raise wrong()
    return check_value(name, parsed)


def type_parameters(given: Mapping[str, Any], declared: Mapping[str, Mapping[str, Any]],
                    notebook: str) -> dict[str, Any]:
    """Check names against the notebook's parameters cell and type the values."""
    out = {}
    for name, value in given.items():
        if name not in declared:
            close = difflib.get_close_matches(name, list(declared), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            have = ", ".join(declared) or "none"
            raise JobDefinitionError(f"parameter {name!r} is not in the parameters cell of {notebook}{hint}: "
                                     f"it defines {have}")
        out[name] = coerce(name, value, declared[name])
    return out


# -- promote ----------------------------------------------------------------------------------------

def promote(notebook: str | os.PathLike, name: str, schedule: str | None = None,
            parameters: Mapping[str, Any] | None = None, *, timezone: str = DEFAULT_TIMEZONE,
            kernel: str | None = None, timeout: float = DEFAULT_TIMEOUT, retries: int = 0,
            gate: Mapping[str, Any] | Sequence[Mapping[str, Any]] | Gate | None = None,
            add_parameters_cell: bool = False, replace: bool = False, settings: Settings | None = None,
            now: datetime | None = None) -> Promotion:
    """Validate ``notebook`` as a job and write it to ``llmops_jobs.toml``; see the module docstring.

    >>> promote("notebooks/04_nightly_eval.ipynb", "nightly", "0 2 * * *",
    ...         {"model": "openai:gpt-4o-mini", "threshold": 0.8}, retries=1,
    ...         gate={"metric": "accuracy", "min": 0.8, "max_drop": 0.05})                 # doctest: +SKIP
    """
    settings = settings or get_settings()
    root = settings.project_root
    check_name(name)
    jobs = load_jobs(root)  # an invalid file stops here: it is never overwritten blindly
    if name in jobs and not replace:
        raise JobDefinitionError(f"job {name!r} already exists in llmops_jobs.toml: pass --replace to redefine it")
    schedule = check_schedule(schedule)
    check_timezone(timezone)
    timeout = check_timeout(timeout)
    retries = check_retries(retries)
    gates: tuple[Gate, ...] = ()
    if gate is not None:
        specs = [gate] if isinstance(gate, (Mapping, Gate)) else list(gate)
        gates = tuple(g if isinstance(g, Gate) else make_gate(g) for g in specs)
    if kernel is not None:
        check_kernel(kernel)
    path, relative = resolve_notebook(notebook, root)
    nb = read_notebook(path)
    kernel = check_kernel(kernel or (nb.metadata.get("kernelspec") or {}).get("name") or "python3")
    added: list[str] | None = None
    if parameters_cell(nb) is None:
        if not add_parameters_cell:
            found = [n for n, _, _ in literal_assignments(next((c.source for c in nb.cells if c.cell_type == "code"),
                                                                ""))]
            hint = (f"; or pass --add-parameters-cell to make one from the first cell's assignments "
                    f"({', '.join(found)})") if found else ""
            raise NotebookError(f"{relative} has no cell tagged 'parameters': papermill injects job parameters "
                                f"after that cell; tag one in Jupyter (Property Inspector > Cell Tags){hint}")
        nb, added = with_parameters_cell(nb, relative)
    given = dict(parameters or {})
    typed = type_parameters(given, inspect_parameters(nb), relative) if given else {}
    job = Job(name=name, notebook=relative, schedule=schedule, timezone=timezone, kernel=kernel, timeout=timeout,
              retries=retries, parameters=typed, gates=gates,
              report_template=jobs[name].report_template if name in jobs else None)
    description, upcoming = None, []
    if schedule:
        description = cron.describe(schedule)
        from llmops_lab.jobs.store import utcnow

        upcoming = cron.next_runs(schedule, timezone, now or utcnow(), 3)
    # every check passed: write the notebook (if a parameters cell was added), then the jobs file
    if added is not None:
        _write_notebook(nb, path)
    target = save_jobs(root, {**jobs, name: job})
    return Promotion(job, target, description, upcoming, added, replaced=name in jobs)


def _write_notebook(nb: Any, path: Path) -> None:
    import nbformat

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent))
    os.close(fd)
    try:
        nbformat.write(nb, tmp)
        os.chmod(tmp, path.stat().st_mode & 0o777)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove(name: str, settings: Settings | None = None) -> Job:
    """Delete a job from ``llmops_jobs.toml`` (its history stays)."""
    from llmops_lab.jobs.definition import get_job

    settings = settings or get_settings()
    job = get_job(settings.project_root, name)
    jobs = load_jobs(settings.project_root)
    del jobs[name]
    save_jobs(settings.project_root, jobs)
    return job
