"""TLS between agent, clients and collector: certificates made here, real servers on sockets."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
from contextlib import AbstractContextManager
from pathlib import Path

import httpx
import pytest
import structlog
import uvicorn
from conftest import SITE_TOML, free_port, running
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from dcmeter.agent import config as agent_config
from dcmeter.agent import pubkey, wire
from dcmeter.agent.buffer import Buffer
from dcmeter.agent.daemon import make_shipper
from dcmeter.agent.samples import MetricSpec, Reading, SourceInfo
from dcmeter.agent.wire import ClockStatus
from dcmeter.base.configfile import ConfigError
from dcmeter.base.tls import client_context
from dcmeter.cli.main import main
from dcmeter.collectors.commands import cli as collector_cli

SRC = SourceInfo("meter-total", "modbus", "127.0.0.1:502/1", {"point": "total"})
POWER = MetricSpec("power_w", "W")


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
    path.with_suffix(".pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    path.with_suffix(".key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))


def make_ca(path: Path, cn: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A self-signed CA written to path.pem / path.key."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn))
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                       critical=True)
        .sign(key, hashes.SHA256())
    )
    _write(path, cert, key)
    return cert, key


def make_leaf(
    path: Path, ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey], cn: str, server: bool
) -> None:
    """A certificate signed by `ca`: a server one for 127.0.0.1 (IP SAN) or a client one."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    b = (
        x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(ca[0].subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(
            [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False)
    )
    if server:
        b = b.add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    _write(path, b.sign(ca[1], hashes.SHA256()), key)


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    """ca.pem, server.pem/.key (127.0.0.1), client.pem/.key, and an unrelated other-ca.pem."""
    ca = make_ca(tmp_path / "ca", "dcmeter test CA")
    make_leaf(tmp_path / "server", ca, "collector", server=True)
    make_leaf(tmp_path / "client", ca, "rack-a01", server=False)
    make_ca(tmp_path / "other-ca", "somebody else")
    return tmp_path


def https(server: uvicorn.Server) -> AbstractContextManager[str]:
    """Run a built collector in a thread (conftest.running); yield its https base URL."""
    return running(server, "https")


def collector_config(d: Path, key: Ed25519PrivateKey, mutual: bool = False) -> Path:
    (d / "site.toml").write_text(SITE_TOML)
    cfg = d / "collector.toml"
    cfg.write_text(
        f'[collector]\nport = {free_port()}\nstore = "c.sqlite"\nsite = "site.toml"\n'
        f"auth = false\n[collector.tls]\ncert_file = \"server.pem\"\nkey_file = \"server.key\"\n"
        + ('client_ca_file = "ca.pem"\n' if mutual else "")
        + f'[[agents]]\nid = "agent-1"\npublic_key = "{pubkey.public_text(key.public_key())}"\n'
    )
    return cfg


def agent_config_file(d: Path, url: str, key: Ed25519PrivateKey, extra: str) -> Path:
    state = d / "state"
    state.mkdir(exist_ok=True)
    cfg = d / "agent.toml"
    cfg.write_text(f'[agent]\nid = "agent-1"\nstate_dir = "{state}"\n[collector]\n'
                   f'url = "{url}"\nbackoff_initial_s = 0.05\n{extra}')
    return cfg


def fill(buffer: Buffer, key: Ed25519PrivateKey, n: int) -> None:
    for t in range(n):
        buffer.append([(SRC, Reading(POWER, float(t), (t + 1) * 10**9))])
        buffer.seal(lambda body: wire.envelope(body, key), ClockStatus(), 1)


def ship_with(cfg_path: Path, buffer: Buffer, attempts: int = 1) -> list[bool]:
    """Load the agent config as `agent run` does and ship `attempts` times with its shipper."""
    cfg = agent_config.load(cfg_path)

    async def go() -> list[bool]:
        shipper = make_shipper(buffer, cfg)
        assert shipper is not None
        try:
            return [await shipper.ship_pending() for _ in range(attempts)]
        finally:
            await shipper.close()

    return asyncio.run(go())


def test_agent_refuses_a_collector_it_cannot_verify_and_keeps_its_batches(pki: Path) -> None:
    key = Ed25519PrivateKey.generate()
    server, store = collector_cli.build(collector_config(pki, key))
    buffer = Buffer(pki / "state" / "buffer.sqlite", "agent-1")
    fill(buffer, key, 4)
    try:
        with https(server) as url:
            wrong = agent_config_file(pki, url, key, 'ca_file = "other-ca.pem"\n')
            with structlog.testing.capture_logs() as logs:
                assert ship_with(wrong, buffer, attempts=3) == [False, False, False]
            tls_lines = [e for e in logs if "certificate does not verify" in e["event"]]
            assert len(tls_lines) == 1, logs  # once per outage, not once per attempt
            line = tls_lines[0]["event"]
            assert url in line and str(pki / "other-ca.pem") in line
            assert "batches stay buffered" in line and tls_lines[0]["log_level"] == "error"
            assert buffer.counts()["batches"] == 4 and store.counts()["batches"] == 0
            # Without ca_file the system store is used: it does not know the test CA either.
            with structlog.testing.capture_logs() as logs:
                assert ship_with(agent_config_file(pki, url, key, ""), buffer) == [False]
            assert "against the system CA store" in logs[0]["event"]
            # The operator fixes the CA: everything buffered ships, in order.
            right = agent_config_file(pki, url, key, 'ca_file = "ca.pem"\n')
            assert ship_with(right, buffer) == [True]
            assert buffer.counts()["batches"] == 0
            assert [b["seq"] for b in store.batches("agent-1")] == [1, 2, 3, 4]
    finally:
        buffer.close()
        store.close()


def test_mutual_tls_refuses_clients_without_a_certificate(pki: Path) -> None:
    key = Ed25519PrivateKey.generate()
    server, store = collector_cli.build(collector_config(pki, key, mutual=True))
    buffer = Buffer(pki / "state" / "buffer.sqlite", "agent-1")
    fill(buffer, key, 2)
    ca = pki / "ca.pem"
    try:
        with https(server) as url:
            anonymous_ctx = client_context(ca)
            with httpx.Client(verify=anonymous_ctx) as anonymous, pytest.raises(httpx.HTTPError):
                anonymous.get(f"{url}/api/v1/health")
            known_ctx = client_context(ca, pki / "client.pem", pki / "client.key")
            with httpx.Client(verify=known_ctx) as known:
                assert known.get(f"{url}/api/v1/health").status_code == 200
            no_cert = agent_config_file(pki, url, key, 'ca_file = "ca.pem"\n')
            with structlog.testing.capture_logs() as logs:
                assert ship_with(no_cert, buffer) == [False]
            assert "client_cert_file" in logs[0]["reason"], logs
            assert buffer.counts()["batches"] == 2 and store.counts()["batches"] == 0
            with_cert = agent_config_file(
                pki, url, key, 'ca_file = "ca.pem"\nclient_cert_file = "client.pem"\n'
                'client_key_file = "client.key"\n')
            assert ship_with(with_cert, buffer) == [True]
            assert store.counts()["batches"] == 2
    finally:
        buffer.close()
        store.close()


def test_window_cli_over_https_with_a_ca_file(
    pki: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, store = collector_cli.build(collector_config(pki, Ed25519PrivateKey.generate()))
    try:
        with https(server) as url:
            capsys.readouterr()  # the collector's start line
            base = ["window", "list", "--collector", url, "--json"]
            assert main([*base, "--ca-file", str(pki / "ca.pem")]) == 0
            assert capsys.readouterr().out.strip().splitlines()[-1] == "[]"
            monkeypatch.setenv("DCMETER_CA", str(pki / "other-ca.pem"))
            assert main(base) == 1
            err = capsys.readouterr().err
            assert "certificate does not verify against" in err and "other-ca.pem" in err
            monkeypatch.setenv("DCMETER_CA", str(pki / "ca.pem"))
            assert main(base) == 0
    finally:
        store.close()


@pytest.mark.parametrize(
    ("tls", "message"),
    [
        ('cert_file = "missing.pem"\nkey_file = "server.key"\n',
         "key collector.tls.cert_file: bad value 'missing.pem': cannot read"),
        ('cert_file = "server.pem"\nkey_file = "client.key"\n',
         "key collector.tls.cert_file: bad value"),
        ('cert_file = "server.pem"\nkey_file = "server.key"\nclient_ca_file = "server.key"\n',
         "key collector.tls.client_ca_file"),
    ],
)
def test_collector_tls_config_faults_name_the_key(pki: Path, tls: str, message: str) -> None:
    (pki / "site.toml").write_text(SITE_TOML)
    cfg = pki / "collector.toml"
    cfg.write_text(f'[collector]\nsite = "site.toml"\n[collector.tls]\n{tls}')
    from dcmeter.collectors import config

    with pytest.raises(ConfigError, match=message):
        config.load(cfg)


def test_agent_tls_config_faults_name_the_key(pki: Path) -> None:
    key = Ed25519PrivateKey.generate()
    url = "https://127.0.0.1:1"
    bad: list[tuple[str, str]] = [
        ('ca_file = "nope.pem"\n', "key collector.ca_file: bad value 'nope.pem': cannot read"),
        ('client_cert_file = "client.pem"\n', "needs both client_cert_file and client_key_file"),
        ('ca_file = "client.key"\n', "not usable PEM"),
    ]
    for extra, message in bad:
        with pytest.raises(ConfigError, match=message):
            agent_config.load(agent_config_file(pki, url, key, extra))


