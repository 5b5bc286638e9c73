"""The `redfish` source against real peers: sushy-tools' sushy-static serving the mockup in
tests/peers/redfish_mockup/ (HTTP and HTTPS), a session-keeping service on a socket
(tests/peers/redfish.py), and curl as the independent second client."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import structlog
from conftest import serve
from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from dcmeter.agent.samples import Reading
from dcmeter.agent.sources import DeviceError, SourceError, TargetUnreachable, config_class
from dcmeter.agent.sources.redfish import RedfishConfig, RedfishSource
from tests.peers.redfish import SUSHY_STATIC, SessionService, sushy_static
from tests.test_tls import make_ca, make_leaf

pytestmark = pytest.mark.skipif(not SUSHY_STATIC.exists(), reason="sushy-tools not installed")

USER, PASSWORD = "metering", "s3cret-Redfish!"


def config(url: str, **extra: Any) -> RedfishConfig:
    """A validated config, as the agent loads it from its TOML."""
    cls = config_class("redfish")
    raw = {"type": "redfish", "id": "bmc-1", "url": url, "username": USER,
           "password": PASSWORD, "timeout_s": 6.0, **extra}
    cfg = cls.model_validate(raw)
    assert isinstance(cfg, RedfishConfig)
    return cfg


def read_and_close(source: RedfishSource, times: int = 1) -> list[list[Reading]]:
    async def scenario() -> list[list[Reading]]:
        try:
            return [await source.read() for _ in range(times)]
        finally:
            await source.close()
    return asyncio.run(scenario())


def failure(source: RedfishSource) -> SourceError:
    with pytest.raises(SourceError) as info:
        read_and_close(source)
    return info.value


def curl_json(url: str, *args: str) -> dict[str, Any]:
    """The resource as curl (the independent client) fetches it."""
    curl = shutil.which("curl")
    assert curl is not None, "curl (Debian package curl) is needed"
    out = subprocess.run([curl, "-sSf", *args, url], check=True, capture_output=True,
                         timeout=30).stdout
    body: dict[str, Any] = json.loads(out)
    return body


def values(readings: list[Reading]) -> dict[str, float]:
    return {r.metric.name: r.value for r in readings}


def test_environment_metrics_preferred_and_equal_to_curl() -> None:
    with sushy_static() as url:
        source = config(url, auth="basic").build()
        [readings] = read_and_close(source)
        env = curl_json(f"{url}/redfish/v1/Chassis/1U/EnvironmentMetrics")
        # The first chassis (1U) links both EnvironmentMetrics and Power: the former is read.
        assert values(readings) == {"power_w": env["PowerWatts"]["Reading"],
                                    "energy_import_kwh": env["EnergykWh"]["Reading"]}
        assert values(readings) == {"power_w": 374.5, "energy_import_kwh": 36166.25}
        energy = next(r for r in readings if r.metric.name == "energy_import_kwh")
        assert (energy.metric.kind, energy.metric.unit, energy.metric.modulus) == (
            "counter", "kWh", None)
        chassis = curl_json(f"{url}/redfish/v1/Chassis/1U")
        manager = curl_json(f"{url}/redfish/v1/Managers/BMC")
        assert source.info.device == {
            "make": chassis["Manufacturer"], "model": chassis["Model"],
            "serial": chassis["SerialNumber"], "part_number": chassis["PartNumber"],
            "firmware": manager["FirmwareVersion"], "profile": "EnvironmentMetrics"}
        assert source.info.labels["point"] == "it_input"
        assert source.info.protocol == "redfish" and source.info.address == url


def test_power_resource_on_an_older_chassis_and_when_forced() -> None:
    with sushy_static() as url:
        legacy = config(url, auth="basic", chassis="Legacy").build()
        [readings] = read_and_close(legacy)
        power = curl_json(f"{url}/redfish/v1/Chassis/Legacy/Power")
        assert values(readings) == {"power_w": power["PowerControl"][0]["PowerConsumedWatts"]}
        assert values(readings) == {"power_w": 281.5}
        assert legacy.info.device["profile"] == "Power"
        assert legacy.info.device["serial"] == "2M220100SL"

        forced = config(url, auth="basic", chassis="1U", resource="power").build()
        [readings] = read_and_close(forced)
        power = curl_json(f"{url}/redfish/v1/Chassis/1U/Power")
        assert values(readings) == {"power_w": power["PowerControl"][0]["PowerConsumedWatts"]}
        assert values(readings) == {"power_w": 344.0}


def test_missing_power_resource_and_unknown_chassis_are_one_line_each() -> None:
    with sushy_static() as url:
        err = failure(config(url, auth="basic", chassis="NoPower").build())
        assert isinstance(err, DeviceError)
        assert str(err) == (f"{url}: chassis 'NoPower' has no EnvironmentMetrics or Power "
                            "resource: the BMC reports no chassis power over Redfish (check "
                            "chassis and resource)")
        err = failure(config(url, auth="basic", chassis="Legacy",
                             resource="environment_metrics").build())
        assert "chassis 'Legacy' has no EnvironmentMetrics resource" in str(err)
        err = failure(config(url, auth="basic", chassis="9U").build())
        assert str(err) == f"{url}: no chassis '9U' in /redfish/v1/Chassis"


def test_session_kept_renewed_on_401_and_deleted_at_close() -> None:
    peer = SessionService(USER, PASSWORD)
    with serve(peer.app) as url:
        source = config(url).build()

        async def scenario() -> list[list[Reading]]:
            out = [await source.read(), await source.read()]
            assert peer.logins == 1 and len(peer.tokens) == 1  # one session, reused
            peer.expire_all()  # the BMC forgets it: the next GET gets 401
            out.append(await source.read())
            assert peer.logins == 2
            await source.close()
            return out

        reads = asyncio.run(scenario())
    assert [values(r)["power_w"] for r in reads] == [374.5, 374.5, 374.5]
    assert source.sessions_opened == 2
    assert peer.deleted == ["2"] and peer.tokens == {}
    # Every GET but the (unauthenticated) service root carried a token; never basic auth.
    gets = [how for method, path, how in peer.requests if method == "GET"]
    assert set(gets) == {"root", "token", "refused"} and gets.count("refused") == 1


def test_basic_auth_fallback() -> None:
    peer = SessionService(USER, PASSWORD)
    with serve(peer.app) as url:
        [readings] = read_and_close(config(url, auth="basic").build())
    assert values(readings)["power_w"] == 374.5
    assert peer.logins == 0
    assert {how for m, _, how in peer.requests if m == "GET"} == {"root", "basic"}


def test_bad_credentials_one_line_without_the_password() -> None:
    peer = SessionService(USER, "another-password")
    with serve(peer.app) as url:
        err = failure(config(url).build())
        assert isinstance(err, DeviceError)
        assert str(err) == (f"{url}: login refused (HTTP 401 from POST "
                            "/redfish/v1/SessionService/Sessions): check username and password")
        err = failure(config(url, auth="basic").build())
        assert "refused (HTTP 401): check username and password" in str(err)
        assert PASSWORD not in str(err) and "\n" not in str(err)


def test_a_server_that_is_not_redfish() -> None:
    app = FastAPI()

    @app.get("/{path:path}")
    async def page(path: str) -> HTMLResponse:
        return HTMLResponse("<html><body>Welcome to nginx!</body></html>")

    with serve(app) as url:
        err = failure(config(url).build())
    assert isinstance(err, DeviceError)
    assert str(err) == (f"{url}: not a Redfish service: GET /redfish/v1/ answered HTTP 200 "
                        "(text/html) without a service root (no RedfishVersion): check url "
                        "and port")


def test_nothing_listening_is_unreachable() -> None:
    from conftest import free_port

    url = f"http://127.0.0.1:{free_port()}"
    err = failure(config(url).build())
    assert isinstance(err, TargetUnreachable)
    assert str(err).startswith(f"{url}: cannot connect: ")


def test_tls_with_the_site_ca_and_with_a_wrong_one(tmp_path: Path) -> None:
    ca = make_ca(tmp_path / "ca", "site CA")
    make_leaf(tmp_path / "bmc", ca, "bmc-1", server=True)
    make_ca(tmp_path / "other-ca", "somebody else")
    with sushy_static(cert=tmp_path / "bmc.pem", key=tmp_path / "bmc.key") as url:
        [readings] = read_and_close(
            config(url, auth="basic", ca_file=str(tmp_path / "ca.pem")).build())
        assert values(readings)["power_w"] == 374.5
        env = curl_json(f"{url}/redfish/v1/Chassis/1U/EnvironmentMetrics",
                        "--cacert", str(tmp_path / "ca.pem"))
        assert values(readings)["power_w"] == env["PowerWatts"]["Reading"]

        wrong = tmp_path / "other-ca.pem"
        err = failure(config(url, auth="basic", ca_file=str(wrong)).build())
        assert isinstance(err, TargetUnreachable)
        assert str(err) == (f"{url}: certificate does not verify against {wrong}: "
                            "unable to get local issuer certificate")

        with structlog.testing.capture_logs() as logs:
            source = config(url, auth="basic", verify=False).build()
            read_and_close(source, times=2)
        warned = [e for e in logs if "verification is off" in e["event"]]
        assert len(warned) == 1 and warned[0]["log_level"] == "warning"


def test_config_errors_are_clear() -> None:
    cls = config_class("redfish")
    base = {"type": "redfish", "id": "b", "url": "https://bmc1", "username": "u"}
    with pytest.raises(ValueError, match="exactly one of password, password_file"):
        cls.model_validate(base)
    with pytest.raises(ValueError, match=r"url must be http\(s\)://host"):
        cls.model_validate({**base, "password": "p", "url": "bmc1"})
    with pytest.raises(ValueError, match="without a path"):
        cls.model_validate({**base, "password": "p", "url": "https://bmc1/redfish/v1"})
    with pytest.raises(ValueError, match="ca_file is not used with verify = false"):
        cls.model_validate({**base, "password": "p", "ca_file": "ca.pem", "verify": False})


def test_environment_metrics_without_power_falls_back_to_power() -> None:
    with sushy_static() as url:
        source = config(url, auth="basic", chassis="Blade").build()
        first, second = read_and_close(source, times=2)
        power = curl_json(f"{url}/redfish/v1/Chassis/Blade/Power")
        watts = power["PowerControl"][0]["PowerConsumedWatts"]
        assert values(first) == values(second) == {"power_w": watts} == {"power_w": 198.25}
        assert source.info.device["profile"] == "Power"
        # Forced to EnvironmentMetrics, the missing reading is a failure, not 0 W.
        err = failure(config(url, auth="basic", chassis="Blade",
                             resource="environment_metrics").build())
        assert str(err) == (f"{url}: /redfish/v1/Chassis/Blade/EnvironmentMetrics has no "
                            "PowerWatts.Reading")


def test_a_silent_service_times_out_in_one_line() -> None:
    import socket

    with socket.socket() as silent:  # accepts connections (backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        err = failure(config(url, timeout_s=1.5).build())
    assert isinstance(err, TargetUnreachable)
    assert str(err) == f"{url}: no answer to GET /redfish/v1/ within 0.5 s"
