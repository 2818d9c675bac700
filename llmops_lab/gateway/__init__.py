"""``llmops-lab serve``: promoted prompts as an OpenAI-compatible HTTP API for applications.

A front end, like ``magics/`` and ``server/``: it parses requests and calls the one call core
(``core/call.py``), so a served request is planned, redacted, budgeted, recorded and spooled exactly as a
notebook cell is, with ``llmops.kind=serve`` and the key's name (never the key). Modules:

- ``keys.py``: API keys: created once, stored as SHA-256 digests, scoped to prompts, with rate and budget limits.
- ``limits.py``: the per-key requests-per-minute window and the day's spend.
- ``resolver.py``: ``prompt:NAME@ALIAS`` to a prompt version, re-read every few seconds, with an on-disk
  last-known copy for when the registry is unreachable.
- ``shapes.py``: OpenAI-shaped responses, stream chunks and errors.
- ``app.py``: the Starlette application (routes, auth, body limit) run by uvicorn.
"""
