"""The team server speaking TLS itself: ``llmops-lab server start --tls-cert --tls-key`` (uvicorn's TLS through
MLflow's ``--uvicorn-opts``), a self-signed certificate made here, and a notebook call logged over https with
``MLFLOW_TRACKING_SERVER_CERT_PATH``; plain http gets no answer, and an unverified certificate is refused.

Slow (one real server start, 10-30 s on 2 cores), like tests/test_team_server.py."""
from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
from pathlib import Path

import pytest
from teamserver import ADMIN, Server, free_port

import llmops_lab
from llmops_lab import tracking

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def self_signed(folder: Path) -> tuple[Path, Path]:
    """cert.pem (for 127.0.0.1 and localhost, one day) and key.pem (0600), made with `cryptography`."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                        x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.touch(mode=0o600)
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tlsserver")
    (folder / "llmops.toml").write_text("")
    cert, key = self_signed(folder)
    srv = Server(folder, free_port(), args=("--tls-cert", str(cert), "--tls-key", str(key)), cert=cert)
    srv.cert = cert
    srv.start_s = srv.start()
    yield srv
    srv.kill()


def test_a_notebook_call_is_logged_over_https_and_plain_http_gets_nothing(tls_server, fake, project, monkeypatch):
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    assert "Uvicorn running on https://127.0.0.1" in tls_server.log()
    assert f"clients: MLFLOW_TRACKING_URI=https://127.0.0.1:{tls_server.port}" in tls_server.log()
    with socket.create_connection(("127.0.0.1", tls_server.port), timeout=5) as raw:  # plain http: no answer
        raw.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert not raw.recv(100).startswith(b"HTTP/1.1 200")
    with ssl.create_default_context(cafile=str(tls_server.cert)).wrap_socket(
            socket.create_connection(("127.0.0.1", tls_server.port), timeout=5), server_hostname="127.0.0.1") as tls:
        assert tls.version() in ("TLSv1.2", "TLSv1.3")

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", ADMIN[0])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", ADMIN[1])
    with pytest.raises(MlflowException, match="CERTIFICATE_VERIFY_FAILED|SSLError"):  # not trusted: refused
        MlflowClient(tracking_uri=tls_server.url).search_experiments()
    monkeypatch.setenv("MLFLOW_TRACKING_SERVER_CERT_PATH", str(tls_server.cert))
    llmops_lab.configure(tracking_uri=tls_server.url, experiment="notebooks/tls")
    result = llmops_lab.run("Over TLS for {{ who }}", {"who": "ada"}, name="tls-prompt")
    assert tracking.flush(60) == 0, tracking.get_tracker().last_error
    run = MlflowClient(tracking_uri=tls_server.url).get_run(result.run_id)
    assert run.data.tags["llmops.kind"] == "single" and run.info.status == "FINISHED"
    print(f"\nTLS server answered /health after {tls_server.start_s:.1f} s")
