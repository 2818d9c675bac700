"""Job definitions: the :class:`Job` dataclass and ``llmops_jobs.toml`` (jobs as code, reviewable in git).

The file is read with ``tomllib`` and written here by a tiny writer with a stable layout: jobs sorted by
name, keys in a fixed order, parameters last. Writes are atomic (temp file + rename) and happen only
after validation passed. Comments other than the generated header are not kept when llmops-lab rewrites
the file. Light to import: no papermill, MLflow or nbformat.
"""
from __future__ import annotations

import difflib
import json
import math
import os
import re
import tempfile
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

from llmops_lab.exceptions import JobDefinitionError, JobNotFoundError

JOBS_FILE = "llmops_jobs.toml"
NAME_RE = re.compile(r"^[A-Za-z0-9_-]+$")
DEFAULT_TIMEZONE = "UTC"
DEFAULT_TIMEOUT = 3600.0  # seconds for one attempt of the whole notebook
MAX_RETRIES = 10
GATE_KEYS = ("metric", "min", "max", "max_drop", "baseline")
JOB_KEYS = ("notebook", "schedule", "timezone", "kernel", "timeout", "retries", "gate", "report_template",
            "parameters")
HEADER = """\
# llmops-lab jobs: notebooks promoted to scheduled evaluation jobs (jobs as code: review them in git).
# Written by `llmops-lab promote`; you may edit it by hand. `llmops-lab jobs list` shows the jobs.
# Keys: notebook (relative to this file), schedule (cron, in timezone), kernel, timeout (s per attempt),
# retries, gate = {metric, min, max, max_drop, baseline = "previous" | MLflow run id}, [jobs.NAME.parameters].
"""


@dataclass(frozen=True)
class Gate:
    """A regression gate on one recorded metric (higher is better for ``max_drop``)."""

    metric: str
    min: float | None = None
    max: float | None = None
    max_drop: float | None = None  # absolute drop allowed vs the baseline
    baseline: str = "previous"  # "previous" (last completed execution) or a pinned MLflow run id

    def to_toml(self) -> dict[str, Any]:
        out: dict[str, Any] = {"metric": self.metric}
        for key in ("min", "max", "max_drop"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.baseline != "previous":
            out["baseline"] = self.baseline
        return out

    def describe(self) -> str:
        parts = []
        if self.min is not None:
            parts.append(f"{self.metric} >= {self.min:g}")
        if self.max is not None:
            parts.append(f"{self.metric} <= {self.max:g}")
        if self.max_drop is not None:
            base = "the previous completed execution" if self.baseline == "previous" else f"run {self.baseline}"
            parts.append(f"{self.metric} drops at most {self.max_drop:g} vs {base}")
        return " and ".join(parts)


@dataclass(frozen=True)
class Job:
    """One promoted notebook. ``notebook`` is relative to the project root (POSIX separators)."""

    name: str
    notebook: str
    schedule: str | None = None  # None: run only on demand (`jobs run`, CI)
    timezone: str = DEFAULT_TIMEZONE
    kernel: str = "python3"
    timeout: float = DEFAULT_TIMEOUT
    retries: int = 0
    parameters: Mapping[str, Any] = field(default_factory=dict)
    gates: tuple[Gate, ...] = ()
    report_template: str | None = None  # None: the template shipped with llmops-lab

    def notebook_path(self, root: Path) -> Path:
        return root / self.notebook

    def with_parameters(self, overrides: Mapping[str, Any]) -> "Job":
        return replace(self, parameters={**self.parameters, **overrides})

    def to_toml(self) -> dict[str, Any]:
        out: dict[str, Any] = {"notebook": self.notebook}
        if self.schedule:
            out["schedule"] = self.schedule
        out["timezone"] = self.timezone
        out["kernel"] = self.kernel
        out["timeout"] = int(self.timeout) if float(self.timeout).is_integer() else self.timeout
        out["retries"] = self.retries
        if self.gates:
            out["gate"] = self.gates[0].to_toml() if len(self.gates) == 1 else [g.to_toml() for g in self.gates]
        if self.report_template:
            out["report_template"] = self.report_template
        out["parameters"] = dict(self.parameters)
        return out


# -- validation (pure) ------------------------------------------------------------------------------

def check_name(name: Any) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise JobDefinitionError(f"job name {name!r} is not valid: use letters, digits, '_' and '-' only")
    return name


def check_schedule(schedule: Any) -> str | None:
    """A standard 5-field cron expression (or @hourly, @daily, @weekly, @monthly, @yearly); None: on demand."""
    if schedule is None or schedule == "":
        return None
    if not isinstance(schedule, str):
        raise JobDefinitionError(f"schedule {schedule!r} is not a cron expression (a string like \"0 2 * * *\")")
    expr = " ".join(schedule.split())
    from croniter import croniter

    fields = expr.split()
    ok = (len(fields) == 5 or (len(fields) == 1 and expr.startswith("@"))) and croniter.is_valid(expr)
    if not ok:
        raise JobDefinitionError(f"schedule {schedule!r} is not a valid cron expression: use 5 fields "
                                 "'minute hour day-of-month month day-of-week', e.g. \"0 2 * * *\" for 02:00 daily")
    return expr


def check_timezone(tz: Any) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if not isinstance(tz, str) or not tz:
        raise JobDefinitionError(f"timezone {tz!r} is not valid: use an IANA name such as UTC or Europe/Paris")
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise JobDefinitionError(f"timezone {tz!r} is unknown: use an IANA name such as UTC or Europe/Paris") from None
    return tz


def check_timeout(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise JobDefinitionError(f"timeout {value!r} is not valid: use a positive number of seconds")
    return float(value)


def check_retries(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_RETRIES:
        raise JobDefinitionError(f"retries {value!r} is not valid: use a whole number from 0 to {MAX_RETRIES}")
    return value


def _number(value: Any, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise JobDefinitionError(f"gate {what} {value!r} is not a number")
    return float(value)


def make_gate(spec: Mapping[str, Any]) -> Gate:
    if not isinstance(spec, Mapping):
        raise JobDefinitionError(f"gate {spec!r} is not a table: use gate = {{metric = \"accuracy\", min = 0.8}}")
    unknown = [k for k in spec if k not in GATE_KEYS]
    if unknown:
        raise JobDefinitionError(f"gate has unknown key {unknown[0]!r}: use {', '.join(GATE_KEYS)}")
    metric = spec.get("metric")
    if not isinstance(metric, str) or not metric:
        raise JobDefinitionError("gate needs metric = \"NAME\" (a metric the notebook records with llmops_lab.record)")
    gate = Gate(metric, _number(spec.get("min"), "min"), _number(spec.get("max"), "max"),
                _number(spec.get("max_drop"), "max_drop"), spec.get("baseline") or "previous")
    if gate.min is None and gate.max is None and gate.max_drop is None:
        raise JobDefinitionError(f"gate on {metric} needs min, max or max_drop")
    if gate.max_drop is not None and gate.max_drop < 0:
        raise JobDefinitionError(f"gate max_drop {gate.max_drop:g} must be >= 0")
    if not isinstance(gate.baseline, str) or not re.match(r"^(previous|[0-9a-f]{32})$", gate.baseline):
        raise JobDefinitionError(f"gate baseline {gate.baseline!r} is not valid: use \"previous\" or an MLflow run id")
    return gate


def check_value(name: str, value: Any) -> Any:
    """A parameter value TOML can store (no None, no NaN)."""
    if value is None:
        raise JobDefinitionError(f"parameter {name}=None cannot be stored: give it a value")
    if isinstance(value, float) and not math.isfinite(value):
        raise JobDefinitionError(f"parameter {name}={value!r} is not a finite number")
    if isinstance(value, (list, tuple)):
        return [check_value(name, v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): check_value(name, v) for k, v in value.items()}
    if not isinstance(value, (str, int, float, bool)):
        raise JobDefinitionError(f"parameter {name}={value!r} has type {type(value).__name__}: use a string, "
                                 "number, boolean, list or table")
    return value


def job_from_toml(name: str, table: Any) -> Job:
    """Validate one ``[jobs.NAME]`` table (light checks: no notebook inspection)."""
    check_name(name)
    if not isinstance(table, Mapping):
        raise JobDefinitionError(f"job {name}: [jobs.{name}] must be a table")
    unknown = [k for k in table if k not in JOB_KEYS]
    if unknown:
        close = difflib.get_close_matches(unknown[0], JOB_KEYS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise JobDefinitionError(f"job {name}: unknown key {unknown[0]!r}{hint}")
    notebook = table.get("notebook")
    if not isinstance(notebook, str) or not notebook.endswith(".ipynb"):
        raise JobDefinitionError(f"job {name}: notebook must be the path of an .ipynb file")
    gate_spec = table.get("gate")
    gates: tuple[Gate, ...] = ()
    if gate_spec is not None:
        specs = gate_spec if isinstance(gate_spec, list) else [gate_spec]
        gates = tuple(make_gate(s) for s in specs)
    parameters = table.get("parameters", {})
    if not isinstance(parameters, Mapping):
        raise JobDefinitionError(f"job {name}: parameters must be a table")
    kernel = table.get("kernel", "python3")
    if not isinstance(kernel, str) or not kernel:
        raise JobDefinitionError(f"job {name}: kernel must be a kernel name such as python3")
    template = table.get("report_template")
    if template is not None and not isinstance(template, str):
        raise JobDefinitionError(f"job {name}: report_template must be a notebook path")
    try:
        return Job(name=name, notebook=notebook, schedule=check_schedule(table.get("schedule")),
                   timezone=check_timezone(table.get("timezone", DEFAULT_TIMEZONE)), kernel=kernel,
                   timeout=check_timeout(table.get("timeout", DEFAULT_TIMEOUT)),
                   retries=check_retries(table.get("retries", 0)),
                   parameters={k: check_value(k, v) for k, v in parameters.items()}, gates=gates,
                   report_template=template)
    except JobDefinitionError as err:
        raise JobDefinitionError(f"job {name}: {err}") from None


# -- the file ---------------------------------------------------------------------------------------

def jobs_file(root: Path) -> Path:
    return Path(root) / JOBS_FILE


def load_jobs(root: Path) -> dict[str, Job]:
    """All jobs of the project, validated; an empty dict when the file does not exist."""
    path = jobs_file(root)
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise JobDefinitionError(f"{path.name} is not valid TOML ({err}): fix the file") from None
    unknown = [k for k in data if k != "jobs"]
    if unknown:
        raise JobDefinitionError(f"{path.name}: unknown top-level key {unknown[0]!r}: jobs go in [jobs.NAME] tables")
    jobs = data.get("jobs", {})
    if not isinstance(jobs, Mapping):
        raise JobDefinitionError(f"{path.name}: jobs must be tables [jobs.NAME]")
    try:
        return {name: job_from_toml(name, table) for name, table in jobs.items()}
    except JobDefinitionError as err:
        raise JobDefinitionError(f"{path.name}: {err}") from None


def get_job(root: Path, name: str) -> Job:
    jobs = load_jobs(root)
    if name not in jobs:
        known = ", ".join(sorted(jobs)) or "none yet"
        close = difflib.get_close_matches(name, list(jobs), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise JobNotFoundError(f"no job named {name!r} in {JOBS_FILE}: {hint}known jobs: {known} "
                               "(create one with llmops-lab promote)")
    return jobs[name]


def save_jobs(root: Path, jobs: Mapping[str, Job]) -> Path:
    """Write all jobs atomically (temp file in the same folder, then rename)."""
    path = jobs_file(root)
    text = dumps(jobs)
    tomllib.loads(text)  # the writer is ours: never write a file we cannot read back
    fd, tmp = tempfile.mkstemp(prefix=f".{JOBS_FILE}.", suffix=".tmp", dir=str(path.parent))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o777)
        else:
            os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


# -- a small TOML writer (stable output) ------------------------------------------------------------

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else json.dumps(key, ensure_ascii=False)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise JobDefinitionError(f"{value!r} cannot be written to TOML")
        text = repr(value)
        return text if any(c in text for c in ".en") else text + ".0"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # JSON escapes are valid TOML basic-string escapes
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_key(str(k))} = {_value(v)}" for k, v in value.items()) + "}"
    raise JobDefinitionError(f"{value!r} ({type(value).__name__}) cannot be written to TOML")


def dumps(jobs: Mapping[str, Job]) -> str:
    lines = [HEADER]
    for name in sorted(jobs):
        table = jobs[name].to_toml()
        parameters = table.pop("parameters")
        lines.append(f"[jobs.{_key(name)}]")
        lines += [f"{_key(k)} = {_value(v)}" for k, v in table.items()]
        lines.append("")
        lines.append(f"[jobs.{_key(name)}.parameters]")
        lines += [f"{_key(k)} = {_value(v)}" for k, v in parameters.items()]
        lines.append("")
    return "\n".join(lines)
