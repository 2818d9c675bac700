"""``prompt:NAME@ALIAS`` -> the prompt version to serve, re-read from the registry at most every few seconds.

An alias moved in the notebook (widget, sidebar, ``promote``) is served within ``ttl_s`` (5 s) without a
restart. Each version read is also written to ``<home>/serve/prompts/``: when the registry cannot be reached,
the last version known for that reference keeps serving and ``/healthz`` reports ``degraded``.
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
import time
import urllib.request
from dataclasses import asdict
from pathlib import Path

from llmops_lab.core.prompts import LoadedPrompt, load_prompt
from llmops_lab.exceptions import ConfigError, LlmopsError

TTL_S = 5.0
RETRY_DOWN_S = 2.0  # while the registry is down, how often a request tries it again


class RegistryUnavailable(LlmopsError):
    """The registry cannot be reached and no copy of this prompt was ever served here."""


class PromptResolver:
    def __init__(self, home: Path, tracking_uri: str, ttl_s: float = TTL_S):
        self.folder = Path(home) / "serve" / "prompts"
        self.tracking_uri = tracking_uri
        self.ttl_s = ttl_s
        self._cache: dict[str, tuple[LoadedPrompt, float]] = {}  # ref -> (prompt, monotonic time to re-read)
        self.degraded: set[str] = set()
        self._lock = threading.Lock()

    def get(self, ref: str) -> LoadedPrompt:
        now = time.monotonic()
        cached = self._cache.get(ref)
        if cached is not None and now < cached[1]:
            return cached[0]
        try:
            prompt = load_prompt(ref)
        except ConfigError:
            if self._reachable():
                raise  # the registry answered: the prompt or alias does not exist (any more)
            return self._fallback(ref, cached)
        except Exception:  # noqa: BLE001 - unreachable store, timeouts: serve the last known version
            return self._fallback(ref, cached)
        with self._lock:
            self._cache[ref] = (prompt, now + self.ttl_s)
            self.degraded.discard(ref)
        self._save(ref, prompt)
        return prompt

    def _fallback(self, ref: str, cached: tuple[LoadedPrompt, float] | None) -> LoadedPrompt:
        prompt = cached[0] if cached is not None else self._load(ref)
        if prompt is None:
            raise RegistryUnavailable(f"the prompt registry at {_where(self.tracking_uri)} cannot be reached and "
                                      f"{ref} was never served here: try again when it is back")
        with self._lock:
            self._cache[ref] = (prompt, time.monotonic() + RETRY_DOWN_S)
            self.degraded.add(ref)
        return prompt

    def _reachable(self) -> bool:
        uri = self.tracking_uri
        if not uri.startswith(("http://", "https://")):
            return True  # a local store: ``load_prompt`` reached it
        try:
            with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=2) as answer:  # noqa: S310 - http(s) only
                return answer.status == 200
        except OSError:
            return False

    def _path(self, ref: str) -> Path:
        return self.folder / (hashlib.sha256(ref.encode("utf-8")).hexdigest()[:32] + ".json")

    def _save(self, ref: str, prompt: LoadedPrompt) -> None:
        path = self._path(ref)
        data = json.dumps({"ref": ref, **asdict(prompt)}, sort_keys=True, default=str)
        try:
            if path.exists() and path.read_text(encoding="utf-8") == data:
                return
            self.folder.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(f".{os.getpid()}.partial")
            partial.write_text(data, encoding="utf-8")
            os.replace(partial, path)  # another worker reading it sees the old copy or the new, never half
        except OSError:
            pass  # the copy is a fallback; serving goes on without it

    def _load(self, ref: str) -> LoadedPrompt | None:
        try:
            data = json.loads(self._path(ref).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        data.pop("ref", None)
        return LoadedPrompt(**data)


def _where(uri: str) -> str:
    from urllib.parse import urlparse

    parsed = urlparse(uri)
    return parsed.netloc or parsed.scheme or "the store"
