"""Run a notebook with papermill, tagged so its calls land in that notebook's experiment."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

from llmops_lab.config import Settings
from llmops_lab.exceptions import ConfigError, LlmopsError


def execute_notebook(source: Path, output: Path, settings: Settings, parameters: dict[str, Any] | None = None,
                     timeout: float | None = 600, kernel_name: str | None = None,
                     env: Mapping[str, str] | None = None, **papermill_kwargs: Any) -> Path:
    """Execute ``source`` into ``output``. The kernel learns its notebook path through ``LLMOPS_NOTEBOOK``.

    ``env``: extra environment variables for the kernel (set for the call, then restored).
    ``papermill_kwargs`` go to ``papermill.execute_notebook`` (e.g. ``engine_name`` and engine options).
    The kernel's sockets are encrypted where jupyter_client and the kernel support it (:func:`kernel_config`).
    """
    if not source.is_file():
        raise ConfigError(f"notebook {source} not found")
    import nbformat
    import papermill

    try:
        metadata = nbformat.read(source, as_version=4).metadata
    except Exception as err:  # noqa: BLE001 - any unreadable file is the same user error
        raise ConfigError(f"{source} is not a readable notebook ({type(err).__name__}): fix or re-save it") from None
    kernel_name = kernel_name or metadata.get("kernelspec", {}).get("name") or "python3"
    output.parent.mkdir(parents=True, exist_ok=True)
    papermill_kwargs["config"] = kernel_config(papermill_kwargs.get("config"))
    kernel_env = {**(env or {}), "LLMOPS_NOTEBOOK": str(source.resolve())}
    env_before = {key: os.environ.get(key) for key in kernel_env}
    os.environ.update(kernel_env)  # the kernel inherits our environment
    try:
        papermill.execute_notebook(str(source), str(output), parameters=parameters or {},
                                   cwd=str(source.parent), execution_timeout=timeout, progress_bar=False,
                                   kernel_name=kernel_name, **papermill_kwargs)
    except papermill.PapermillExecutionError as err:
        raise LlmopsError(f"{source.name} failed in cell {err.exec_count}: {_failure_reason(output, err)} "
                          f"(partial output in {output})") from None
    finally:
        for key, value in env_before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    coalesce_streams(output)
    return output


def coalesce_streams(path: Path) -> None:
    """Merge each cell's consecutive outputs to the same stream into one. A streamed answer is printed piece by
    piece, and a saved notebook would otherwise show every piece on a line of its own."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    changed = False
    for cell in nb.cells:
        merged: list[Any] = []
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            last = merged[-1] if merged else None
            if out.output_type == "stream" and last is not None and last.output_type == "stream" \
                    and last.name == out.name:
                last.text += out.text
                changed = True
            else:
                merged.append(out)
        if cell.cell_type == "code":
            cell.outputs = merged
    if changed:
        nbformat.write(nb, path)


def kernel_config(config: Any = None) -> Any:
    """nbclient's traitlets config, asking the kernel manager for CurveZMQ keys (``transport_encryption =
    "auto"``: only for a kernelspec that declares ``supported_encryption``, as ipykernel >= 7 does).

    papermill's kernel then talks encrypted over localhost TCP instead of in plain text, and ipykernel no
    longer warns "Kernel is running over TCP without encryption" on every run. An older jupyter_client (no
    such setting; its ipykernel does not warn) or a pyzmq without Curve: the config is left as it was.
    """
    from traitlets.config import Config

    merged = Config()
    try:
        import zmq
        from jupyter_client.manager import KernelManager

        if "transport_encryption" in KernelManager.class_trait_names() and zmq.has("curve"):
            merged.KernelManager.transport_encryption = "auto"
    except ImportError:
        pass
    if config:
        merged.merge(config)  # the caller's settings win
    return merged


def _failure_reason(output: Path, err: Any) -> str:
    """``ename: evalue``; for a UsageError (shown on stderr, not as an error output) its stderr line."""
    if err.ename != "CellExecutionError" or err.evalue:
        return f"{err.ename}: {err.evalue}"
    import nbformat

    try:
        cells = nbformat.read(output, as_version=4).cells
    except Exception:  # noqa: BLE001 - fall back to what papermill said
        return err.ename
    for cell in cells:
        if cell.get("execution_count") == err.exec_count:
            lines = [line for o in cell.get("outputs", []) if o.get("name") == "stderr"
                     for line in o.get("text", "").splitlines() if line.strip()]
            if lines:
                return lines[-1]
    return err.ename
