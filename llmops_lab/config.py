"""Settings, layered: defaults < pyproject ``[tool.llmops-lab]`` (or ``llmops.toml``) < env ``LLMOPS_*``
< ``%llm config`` / :func:`configure` < per-call flags (which never change the settings).

Pure apart from reading the two files and the environment once per process.
"""
from __future__ import annotations

import dataclasses
import os
import threading
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmops_lab.exceptions import ConfigError

DEFAULT_MODEL = "local:smollm2-135m"
ROOT_MARKERS = ("pyproject.toml", ".git", "llmops.toml")

# Generation parameters a call accepts, with the type a string value is parsed to.
GENERATION_PARAMS: dict[str, type] = {
    "temperature": float,
    "max_tokens": int,
    "top_p": float,
    "seed": int,
    "stop": str,
}


@dataclass
class Settings:
    """The effective configuration of this process. Change it with :func:`configure`."""

    model: str = DEFAULT_MODEL
    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    seed: int | None = None
    tracking_uri: str | None = None  # None: sqlite under the project root (MLFLOW_TRACKING_URI is read at load)
    experiment: str | None = None  # None: one experiment per notebook
    timeout: float = 60.0  # seconds per request
    max_retries: int = 3  # retries after the first try (429, 5xx, connection errors, timeouts)
    max_cost: float | None = None  # USD per call or batch: refused before any request above it
    max_cost_day: float | None = None  # USD per UTC day, over every run in the store
    tracking: bool = True
    stream: bool = True  # %%llm shows text and markdown answers as they arrive (--no-stream for one cell)
    # Who writes the spool to MLflow: "thread" (a thread in this process, imports MLflow here) or "process"
    # (the project's writer process, tracking/writer_process.py; it exits after writer_idle_s s with nothing to do).
    writer: str = "thread"
    writer_idle_s: float = 120.0
    endpoints: dict[str, dict[str, str]] = field(default_factory=dict)
    prices: dict[str, dict[str, float]] = field(default_factory=dict)
    redaction: dict[str, Any] = field(default_factory=dict)  # [tool.llmops-lab.redaction]: see trust/policy.py
    max_prompt_chars: int = 1_000_000  # a rendered prompt longer than this is refused before any call
    chat_max_chars: int = 24_000  # a conversation's request past this drops its oldest turns, with a note
    # Credentials (MLflow, provider keys) over plain http:// to a non-loopback host are refused unless this is
    # set (trust/transport.py).
    allow_insecure_transport: bool = False
    # Batch rows to OpenAI-compatible endpoints: "lean" (providers/lean_http.py, aiohttp) or "sdk" (AsyncOpenAI).
    batch_transport: str = "lean"
    retention: dict[str, str] = field(default_factory=dict)  # [tool.llmops-lab.retention]: see core/retention.py
    project_root: Path = field(default_factory=Path.cwd)

    @property
    def home(self) -> Path:
        """Where llmops-lab keeps its local state (spool, default MLflow store, cache)."""
        return Path(os.environ.get("LLMOPS_HOME") or self.project_root / ".llmops")

    def resolved_tracking_uri(self) -> str:
        if self.tracking_uri:
            return self.tracking_uri
        return f"sqlite:///{self.home / 'mlflow.db'}"

    def generation_defaults(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in GENERATION_PARAMS if getattr(self, k, None) is not None}

    def public_view(self) -> dict[str, Any]:
        """What `%llm config` shows: never a secret (endpoints only name their key variable)."""
        view = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "prices"}
        from llmops_lab.trust.redactor import mask_secrets  # the pure redactor: trust never imports config back

        view["tracking_uri"] = mask_secrets(self.resolved_tracking_uri())  # a password from the env is not shown
        view["project_root"] = str(self.project_root)
        return view


# Keys settable by configure()/env/toml, with their parsers.
_SCALARS: dict[str, type] = {
    "model": str, "temperature": float, "max_tokens": int, "top_p": float, "seed": int,
    "tracking_uri": str, "experiment": str, "timeout": float, "max_retries": int, "tracking": bool,
    "max_cost": float, "max_cost_day": float, "max_prompt_chars": int, "allow_insecure_transport": bool,
    "stream": bool, "chat_max_chars": int, "batch_transport": str, "writer": str, "writer_idle_s": float,
}
# Names that look like credentials: refused as settings (keys come from the environment, never a notebook).
_SECRET_WORDS = ("key", "token", "secret", "password", "passwd", "credential")


def find_project_root(start: Path | None = None) -> Path:
    """Nearest folder upwards with pyproject.toml, .git or llmops.toml; else the start folder."""
    start = (start or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        if any((folder / marker).exists() for marker in ROOT_MARKERS):
            return folder
    return start


def parse_value(key: str, value: Any) -> Any:
    """Parse one setting (strings come from magics and env) or raise a one-line ConfigError."""
    if key not in _SCALARS:
        import difflib

        if key.lower().removeprefix("llmops_") == "data_key":
            raise ConfigError("data_key is never a setting, refused: export LLMOPS_DATA_KEY in the shell that starts "
                              "Jupyter (a key in a file or notebook would sit beside the data it protects); "
                              "nothing was stored")

        if any(word in key.lower() for word in _SECRET_WORDS) and not difflib.get_close_matches(key, _SCALARS, 1, 0.8):
            raise ConfigError(f"unknown setting {key!r}, refused: API keys and passwords are never settings; export them in the shell "
                              "that starts Jupyter (e.g. OPENAI_API_KEY, or the endpoint's api_key_env), never in a "
                              "notebook; nothing was stored")
        raise ConfigError(f"unknown setting {key!r}: use one of {', '.join(sorted(_SCALARS))}")
    kind = _SCALARS[key]
    if value is None or (isinstance(value, str) and value.lower() in ("none", "")):
        if key in ("model", "timeout", "max_retries", "tracking", "stream", "writer", "writer_idle_s", "batch_transport"):
            raise ConfigError(f"{key} needs a value")
        return None
    try:
        if kind is bool:
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
                    raise ValueError
                return value.lower() in ("true", "1", "yes", "on")
            return bool(value)
        parsed = kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key}={value!r} is not a valid {kind.__name__}") from None
    _check_range(key, parsed)
    return parsed


def _check_range(key: str, value: Any) -> None:
    if key == "temperature" and not 0 <= value <= 2:
        raise ConfigError(f"temperature={value} is out of range: use 0 to 2")
    if key == "top_p" and not 0 < value <= 1:
        raise ConfigError(f"top_p={value} is out of range: use a number in (0, 1]")
    if key in ("max_tokens",) and value < 1:
        raise ConfigError(f"max_tokens={value} must be at least 1")
    if key in ("timeout",) and value <= 0:
        raise ConfigError(f"timeout={value} must be positive (seconds)")
    if key in ("max_cost", "max_cost_day") and value < 0:
        raise ConfigError(f"{key}={value} must be a positive amount of USD")
    if key == "max_retries" and not 0 <= value <= 20:
        raise ConfigError(f"max_retries={value} is out of range: use 0 to 20")
    if key in ("max_prompt_chars", "chat_max_chars") and value < 1:
        raise ConfigError(f"{key}={value} must be at least 1")
    if key == "tracking_uri" and _has_password(value):
        raise ConfigError("tracking_uri refused: it contains a password; set MLFLOW_TRACKING_USERNAME and "
                          "MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN) in the environment instead")
    if key == "batch_transport" and value not in ("lean", "sdk"):
        raise ConfigError(f"batch_transport={value!r}: use lean (the fast default) or sdk (the openai SDK)")
    if key == "writer" and value not in ("thread", "process"):
        raise ConfigError(f"writer={value!r}: use thread (in this process) or process (the project's writer process)")
    if key == "writer_idle_s" and value <= 0:
        raise ConfigError(f"writer_idle_s={value} must be positive (seconds)")
    if key == "model" and ":" not in value:
        raise ConfigError(f"model {value!r} is not provider:model (for example {DEFAULT_MODEL} or openai:gpt-4o-mini)")


def _has_password(uri: str) -> bool:
    """``scheme://user:password@host``: credentials that would be stored with the setting."""
    from urllib.parse import urlsplit

    try:
        return "://" in uri and urlsplit(uri).password is not None
    except ValueError:
        return False


def _read_toml(root: Path) -> dict[str, Any]:
    table: dict[str, Any] = {}
    pyproject = root / "pyproject.toml"
    try:
        if pyproject.is_file():
            table.update(tomllib.loads(pyproject.read_text()).get("tool", {}).get("llmops-lab", {}))
        extra = root / "llmops.toml"
        if extra.is_file():
            table.update(tomllib.loads(extra.read_text()))
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"cannot read llmops-lab settings under {root}: {err}") from None
    return table


def load_settings(start: Path | None = None, environ: dict[str, str] | None = None) -> Settings:
    """Build Settings from defaults, the project's toml and the environment."""
    environ = os.environ if environ is None else environ
    root = find_project_root(start)
    settings = Settings(project_root=root)
    table = _read_toml(root)
    settings.endpoints = {name: dict(spec) for name, spec in table.pop("endpoints", {}).items()}
    settings.prices = {name: dict(p) for name, p in table.pop("prices", {}).items()}
    settings.redaction = dict(table.pop("redaction", {}))
    settings.retention = dict(table.pop("retention", {}))
    if settings.retention:
        from llmops_lab.core.retention import parse_retention  # pure, like parse_policy

        parse_retention(settings.retention)  # a bad table fails at load, in one line
    if settings.redaction:
        from llmops_lab.trust.policy import parse_policy  # pure: the import goes one way, config -> trust

        parse_policy(settings.redaction, environ)  # a bad policy is a one-line error at load, not at a call
    for key, value in table.items():
        setattr(settings, key.replace("-", "_"), parse_value(key.replace("-", "_"), value))
    # Read once here: MLflow's own set_tracking_uri() writes this variable later in the process.
    if environ.get("MLFLOW_TRACKING_URI"):
        settings.tracking_uri = environ["MLFLOW_TRACKING_URI"]
    for key in _SCALARS:
        env_value = environ.get(f"LLMOPS_{key.upper()}")
        if env_value is not None:
            setattr(settings, key, parse_value(key, env_value))
    for name, spec in settings.endpoints.items():
        if "base_url" not in spec:
            raise ConfigError(f"endpoint {name!r} needs base_url in [tool.llmops-lab.endpoints.{name}]")
    return settings


_lock = threading.Lock()
_settings: Settings | None = None


def get_settings() -> Settings:
    """The process-wide settings, loaded on first use."""
    global _settings
    with _lock:
        if _settings is None:
            _settings = load_settings()
        return _settings


def configure(**values: Any) -> Settings:
    """Change settings for this process, e.g. ``configure(model="openai:gpt-4o-mini", temperature=0)``.

    Values are validated first; on any error nothing changes.
    """
    parsed = {key: parse_value(key, value) for key, value in values.items()}
    settings = get_settings()
    for key, value in parsed.items():
        setattr(settings, key, value)
    return settings


def reset_settings(start: Path | None = None) -> Settings:
    """Reload settings from files and environment (tests, or after editing pyproject.toml)."""
    global _settings
    with _lock:
        _settings = load_settings(start)
        return _settings


def validate_params(params: dict[str, Any]) -> dict[str, Any]:
    """Check generation parameters by name, type and range; None values are dropped."""
    import difflib

    out: dict[str, Any] = {}
    for key, value in params.items():
        if key not in GENERATION_PARAMS:
            close = difflib.get_close_matches(key, list(GENERATION_PARAMS), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ConfigError(f"unknown parameter {key!r}: {hint}use {', '.join(GENERATION_PARAMS)}")
        if value is None:
            continue
        kind = GENERATION_PARAMS[key]
        if kind is str:
            out[key] = str(value)
            continue
        if isinstance(value, bool) or (kind is int and isinstance(value, float) and not value.is_integer()):
            raise ConfigError(f"{key}={value!r} is not a valid {kind.__name__}")
        try:
            out[key] = kind(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}={value!r} is not a valid {kind.__name__}") from None
        _check_range(key, out[key])
    return out
