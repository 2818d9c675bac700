"""Credentials only over safe transport: a password, token or API key is never sent over plain ``http://`` to
a host that is not this machine, unless the project says so (``allow_insecure_transport = true``).

>>> check_transport("https://mlflow.example.com", "MLflow credentials")
>>> check_transport("http://127.0.0.1:5000", "MLflow credentials")
>>> check_transport("http://mlflow.example.com", "MLflow credentials")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
llmops_lab.exceptions.InsecureTransportError: MLflow credentials would be sent in clear text to \
http://mlflow.example.com: use https://mlflow.example.com (a TLS proxy in front of the server, ...), or set \
allow_insecure_transport = true in [tool.llmops-lab] for a network you trust
>>> check_transport("http://mlflow.example.com", "MLflow credentials", allow_insecure=True)

Pure: the callers pass the URL, what it would carry and the setting. They are
:func:`llmops_lab.tracking.clients.client_for` and the call planner (MLflow credentials from the environment),
:func:`llmops_lab.providers.resolve` (an endpoint's API key), and ``llmops-lab server start`` (basic auth on a
network interface without TLS: :func:`server_warning`). A future ``llmops-lab serve`` checks its serve key
the same way: ``check_transport(url, "the serve key")``.
"""
from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from urllib.parse import urlsplit

from llmops_lab.exceptions import InsecureTransportError

# What MLflow's REST client sends with every request when these are in its environment.
MLFLOW_CREDENTIALS = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN")
TLS_DOC = 'docs/security.md "Transport and encryption"'


def is_loopback(host: str | None) -> bool:
    """``localhost``, 127.0.0.0/8 and ``::1``: traffic that never leaves this machine.

    >>> [is_loopback(h) for h in ("localhost", "127.0.0.2", "::1", "10.0.0.1", "mlflow.internal")]
    [True, True, True, False, False]
    """
    if not host:
        return False
    host = host.strip("[]").lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):  # RFC 6761: always this machine
        return True
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])  # fe80::1%eth0: the zone is not the address
    except ValueError:
        return False  # a name: it may resolve anywhere
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1 is IPv4 loopback
    return address.is_loopback or bool(mapped and mapped.is_loopback)


def is_insecure(url: str) -> bool:
    """Plain ``http://`` to a host that is not this machine (https, sqlite, file paths: False)."""
    try:
        parts = urlsplit(url)
        return parts.scheme.lower() == "http" and not is_loopback(parts.hostname)
    except ValueError:
        return False


def check_transport(url: str | None, carries: str, *, allow_insecure: bool = False) -> None:
    """Raise a one-line :class:`InsecureTransportError` if ``carries`` (what the request holds, e.g. ``"MLflow
    credentials"`` or ``"the API key of endpoint 'vllm' (VLLM_KEY)"``) would go to ``url`` in clear text."""
    if allow_insecure or not url or not is_insecure(url):
        return
    parts = urlsplit(url)
    origin = f"{parts.scheme}://{parts.netloc}"
    safe = "https://" + parts.netloc
    raise InsecureTransportError(f"{carries} would be sent in clear text to {origin}: use {safe} (a TLS proxy in "
                                 f"front of the server, {TLS_DOC}), or set allow_insecure_transport = true in "
                                 "[tool.llmops-lab] for a network you trust")


def mlflow_credentials(environ: Mapping[str, str]) -> bool:
    """Whether MLflow's REST client would send credentials (any of :data:`MLFLOW_CREDENTIALS` set)."""
    return any(environ.get(name) for name in MLFLOW_CREDENTIALS)


def check_tracking(uri: str | None, environ: Mapping[str, str], *, allow_insecure: bool = False) -> None:
    """:func:`check_transport` for a tracking URI, when MLflow credentials are in ``environ``.

    >>> check_tracking("http://10.1.2.3:5000", {})           # no credentials: nothing to protect
    >>> check_tracking("http://10.1.2.3:5000", {"MLFLOW_TRACKING_TOKEN": "t"})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    llmops_lab.exceptions.InsecureTransportError: MLflow credentials (MLFLOW_TRACKING_TOKEN) would be sent in ...
    """
    if not uri or uri[:5].lower() != "http:":  # sqlite:, https:, databricks: ... (the cheap, common case)
        return
    present = [name for name in MLFLOW_CREDENTIALS if environ.get(name)]
    if present:
        check_transport(uri, f"MLflow credentials ({', '.join(present)})", allow_insecure=allow_insecure)


def server_warning(host: str, *, auth: bool, tls: bool, what: str = "basic auth",
                   secrets: str = "passwords") -> str | None:
    """The line ``llmops-lab server start`` prints when passwords would reach it in clear text: basic auth on
    an interface other than loopback, without ``--tls-cert`` (a TLS proxy on another host may be intended, so
    it warns; the clients refuse such a URL unless ``allow_insecure_transport`` is set). A future
    ``llmops-lab serve`` calls it with ``what="a serve key", secrets="the key"``.

    >>> server_warning("127.0.0.1", auth=True, tls=False) is None
    True
    >>> server_warning("0.0.0.0", auth=True, tls=False)[:60]
    'warning: basic auth on 0.0.0.0 without TLS: passwords would '
    """
    if not auth or tls or is_loopback(host):
        return None
    return (f"warning: {what} on {host} without TLS: {secrets} would cross the network in clear text; pass "
            f"--tls-cert/--tls-key or put a TLS proxy in front ({TLS_DOC})")
