"""Credentials only over safe transport (trust/transport.py): an API key or MLflow credentials are refused, in one
line and before any connection, for plain http:// to another machine; loopback and https stay allowed, and
``allow_insecure_transport = true`` lifts the refusal. Real parts: a listening socket on a non-loopback address
of this machine that must see no connection, the fake OpenAI server bound there, the real CLI."""
from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
from fake_openai import FakeOpenAI

import llmops_lab
from llmops_lab import tracking
from llmops_lab.exceptions import ConfigError, InsecureTransportError
from llmops_lab.trust.transport import (
    check_tracking,
    check_transport,
    is_insecure,
    is_loopback,
    server_warning,
)

UNROUTABLE = "http://192.0.2.1:9/v1"  # TEST-NET-1: a refusal must come before any attempt to reach it


def local_address() -> str | None:
    """A non-loopback address of this machine (the route's source address), or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # UDP: picks the interface, sends nothing
            address = s.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") or address == "0.0.0.0" else address


class Listener:
    """A TCP socket on a non-loopback address of this machine: :meth:`accepted` says whether anyone connected."""

    def __init__(self, address: str):
        self.sock = socket.socket()
        self.sock.bind((address, 0))
        self.sock.listen(8)
        self.sock.setblocking(False)
        self.url = f"http://{address}:{self.sock.getsockname()[1]}/v1"

    def accepted(self) -> bool:
        try:
            conn, _ = self.sock.accept()
        except BlockingIOError:
            return False
        conn.close()
        return True


@pytest.fixture
def listener():
    address = local_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address")
    found = Listener(address)
    yield found
    found.sock.close()


@pytest.mark.parametrize("url", ["http://127.0.0.1:5000", "http://127.9.9.9", "http://localhost:8000/v1",
                                 "http://[::ffff:127.0.0.1]:5000",
                                 "http://[::1]:5000", "https://mlflow.example.com", "https://10.0.0.5/v1",
                                 "sqlite:///x/mlflow.db", "http://app.localhost/v1", None, ""])
def test_loopback_https_and_local_stores_are_allowed(url):
    check_transport(url, "MLflow credentials")


@pytest.mark.parametrize("url", ["http://10.0.0.5:5000", "http://192.0.2.1:9/v1", "http://mlflow.internal",
                                 "HTTP://Example.COM/v1", "http://[fd00::2]:8000", "http://127.0.0.1.nip.io/v1",
                                 "http://0.0.0.0:5000"])
def test_http_to_another_host_is_refused_in_one_line_saying_how(url):
    with pytest.raises(InsecureTransportError) as info:
        check_transport(url, "the serve key")
    message = str(info.value)
    assert "\n" not in message and message.startswith("the serve key would be sent in clear text to ")
    assert "use https://" in message and "allow_insecure_transport = true" in message
    assert isinstance(info.value, ConfigError) and is_insecure(url)
    check_transport(url, "the serve key", allow_insecure=True)


def test_only_mlflow_credentials_in_the_environment_trigger_the_tracking_check():
    check_tracking("http://10.0.0.5:5000", {"OPENAI_API_KEY": "x"})
    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"):
        with pytest.raises(InsecureTransportError, match=name):
            check_tracking("http://10.0.0.5:5000", {name: "v"})
    check_tracking("http://10.0.0.5:5000", {"MLFLOW_TRACKING_TOKEN": "t"}, allow_insecure=True)
    assert not is_loopback("") and not is_loopback(None) and is_loopback("LOCALHOST.")


def test_api_key_to_a_plain_http_endpoint_is_refused_before_any_connection(fake, listener, monkeypatch, shell,
                                                                            capsys):
    monkeypatch.setenv("REMOTE_KEY", "sk-test-remote-0123456789")
    llmops_lab.get_settings().endpoints["remote"] = {"base_url": listener.url, "api_key_env": "REMOTE_KEY"}
    with pytest.raises(InsecureTransportError, match="the API key of endpoint 'remote' .REMOTE_KEY."):
        llmops_lab.run("hello", model="remote:m")
    assert not shell.run_cell("%%llm remote:m\nhello").success
    err = capsys.readouterr().err
    assert "InsecureTransportError" in err or "clear text" in err
    assert "Traceback" not in err and "sk-test-remote" not in err
    with pytest.raises(InsecureTransportError):  # a batch is refused at its plan: no row is sent
        llmops_lab.batch("{{ q }}", [{"q": "a"}, {"q": "b"}], model="remote:m", progress=False)
    assert not listener.accepted()  # nothing ever connected
    # An endpoint without a key sends nothing secret: its client is built (and nothing is sent here)
    llmops_lab.get_settings().endpoints["open"] = {"base_url": UNROUTABLE}
    from llmops_lab import providers
    from llmops_lab.providers.base import ModelId

    assert providers.resolve(ModelId.parse("open:m"), llmops_lab.get_settings()).base_url == UNROUTABLE


def test_allow_insecure_transport_lifts_the_refusal_for_a_real_call(fake, monkeypatch):
    address = local_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address")
    monkeypatch.setenv("REMOTE_KEY", "sk-test-remote-0123456789")
    with FakeOpenAI(host=address, api_key="sk-test-remote-0123456789") as server:
        llmops_lab.get_settings().endpoints["remote"] = {"base_url": server.base_url, "api_key_env": "REMOTE_KEY"}
        with pytest.raises(InsecureTransportError):
            llmops_lab.run("hello", model="remote:m")
        assert server.request_count == 0
        monkeypatch.setenv("LLMOPS_ALLOW_INSECURE_TRANSPORT", "true")  # the env form of the setting
        llmops_lab.config.reset_settings(llmops_lab.get_settings().project_root)
        llmops_lab.get_settings().endpoints["remote"] = {"base_url": server.base_url, "api_key_env": "REMOTE_KEY"}
        assert llmops_lab.get_settings().allow_insecure_transport is True
        result = llmops_lab.run("hello", model="remote:m")
        assert result.text and server.request_count == 1


def test_openai_base_url_over_http_with_the_key_is_refused(fake, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-openai-0123456789")
    monkeypatch.setenv("OPENAI_BASE_URL", UNROUTABLE)
    with pytest.raises(InsecureTransportError, match="endpoint 'openai' .OPENAI_API_KEY."):
        llmops_lab.run("hello", model="openai:gpt-4o-mini")
    monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)  # loopback: the fake server answers
    assert llmops_lab.run("hello", model="openai:gpt-4o-mini").text


def test_mlflow_credentials_to_a_plain_http_store_are_refused_before_the_model_call(fake, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "ada")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "ada-password-0123")
    llmops_lab.configure(tracking_uri=UNROUTABLE.removesuffix("/v1"))
    with pytest.raises(InsecureTransportError, match=r"MLflow credentials \(MLFLOW_TRACKING_USERNAME, "
                                                     r"MLFLOW_TRACKING_PASSWORD\) would be sent in clear text"):
        llmops_lab.run("hello")
    assert fake.request_count == 0  # refused at the plan: nothing paid for, nothing spooled
    from llmops_lab.tracking.clients import client_for

    with pytest.raises(InsecureTransportError):  # readers, the writer and the server build clients here
        client_for(UNROUTABLE.removesuffix("/v1"))
    llmops_lab.configure(tracking=False)  # not tracked: the credentials are not used
    assert llmops_lab.run("hello").text
    llmops_lab.configure(tracking=True, allow_insecure_transport=True)
    client_for(UNROUTABLE.removesuffix("/v1"))  # allowed now (the client connects lazily)
    llmops_lab.configure(tracking_uri=None, allow_insecure_transport=False)
    tracking.shutdown(5)


def test_server_start_warns_about_basic_auth_without_tls_and_serves_tls_when_given_a_cert(tmp_path):
    from llmops_lab.trust.team import plan_server

    env = {"MLFLOW_AUTH_ADMIN_PASSWORD": "admin-password-0123"}
    assert plan_server(tmp_path, environ=env).warnings == []  # 127.0.0.1
    plan = plan_server(tmp_path, host="0.0.0.0", environ=env)
    assert plan.scheme == "http" and "without TLS" in plan.warnings[0] and "Transport and encryption" in plan.warnings[0]
    assert plan_server(tmp_path, host="0.0.0.0", auth=False, environ=env).warnings == []
    cert, key = tmp_path / "cert.pem", tmp_path / "key pem"
    cert.write_text("x")
    key.write_text("x")
    key.chmod(0o644)
    plan = plan_server(tmp_path, host="0.0.0.0", tls_cert=str(cert), tls_key=str(key), environ=env)
    opts = plan.argv[plan.argv.index("--uvicorn-opts") + 1]
    assert opts == f"--ssl-certfile {cert} --ssl-keyfile '{key}'" and plan.scheme == "https"
    assert plan.warnings == [f"warning: the TLS key {key} is readable by other users: chmod 600 it"]
    with pytest.raises(ConfigError, match="go together"):
        plan_server(tmp_path, tls_cert=str(cert), environ=env)
    with pytest.raises(ConfigError, match="--tls-key /nope.pem: no such file"):
        plan_server(tmp_path, tls_cert=str(cert), tls_key="/nope.pem", environ=env)
    assert server_warning("::1", auth=True, tls=False) is None
    assert server_warning("10.0.0.5", auth=True, tls=False, what="a serve key", secrets="the key").startswith(
        "warning: a serve key on 10.0.0.5 without TLS: the key would cross")


def test_cli_dry_run_prints_the_warning_and_the_tls_command(tmp_path):
    (tmp_path / "llmops.toml").write_text("")
    env = {**os.environ, "MLFLOW_AUTH_ADMIN_PASSWORD": "admin-password-0123"}
    out = subprocess.run([sys.executable, "-m", "llmops_lab.cli", "server", "start", "--dry-run", "--host", "0.0.0.0",
                          "--allowed-hosts", "*"], check=False, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "warning: basic auth on 0.0.0.0 without TLS" in out.stderr
