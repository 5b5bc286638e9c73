"""The command line: bad configuration is one clear message and exit 2; examples stay valid."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

from agent import config as agent_config
from collectors import config as collector_config
from collectors.evaluation.site import load_site


def dcmeter(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a child process."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "dcmeter", *args], capture_output=True, text=True, env=env,
        cwd=cwd, timeout=60,
    )


GOOD_SOURCE = '[[sources]]\nid = "m"\ntype = "modbus"\nhost = "127.0.0.1"\nprofile = "eastron_sdm630"\n'


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[agent]\ninterval_s = 0.5\n", ["key agent.interval_s", "bad value 0.5", "greater than or equal to 1"]),
        ("[agent]\ninterval_s = 901\n", ["key agent.interval_s", "bad value 901", "less than or equal to 900"]),
        ("[agent]\nintervall_s = 60\n", ["key agent.intervall_s", "Extra inputs are not permitted"]),
        ('[[sources]]\nid = "x"\ntype = "bacnet"\n', ["key sources[0].type", "'bacnet'", "host, ipmi, modbus, nvml, snmp"]),
        (GOOD_SOURCE.replace("eastron_sdm630", "nope"), ["key sources[0].profile", "'nope'", "eastron_sdm630"]),
        (GOOD_SOURCE + GOOD_SOURCE, ["key sources[1].id", "'m'", "unique"]),
        (GOOD_SOURCE + 'labels = { point = "roof" }\n', ["key sources[0].labels", "it_input"]),
        (GOOD_SOURCE.replace('host = "127.0.0.1"\n', ""), ["key sources[0].host", "(missing)"]),
        ("[agent\n", ["not valid TOML"]),
        ('[collector]\nurl = "ftp://x"\n', ["key collector.url", "'ftp://x'"]),
    ],
)
def test_bad_agent_config_is_one_message_and_exit_2(
    tmp_path: Path, text: str, expected: list[str]
) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(text)
    r = dcmeter("agent", "once", "-c", str(path))
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    assert str(path) in r.stderr
    for part in expected:
        assert part in r.stderr, (part, r.stderr)
    assert r.stdout == ""


def test_missing_config_file_and_bad_collector_config(tmp_path: Path) -> None:
    r = dcmeter("agent", "run", "-c", str(tmp_path / "absent.toml"))
    assert r.returncode == 2 and "absent.toml: no such file" in r.stderr
    bad = tmp_path / "collector.toml"
    bad.write_text('[[agents]]\nid = "a"\npublic_key = "ssh-rsa AAAA"\n')
    r = dcmeter("collector", "serve", "-c", str(bad))
    assert r.returncode == 2 and "key agents[0].public_key" in r.stderr
    assert "Traceback" not in r.stderr


def test_example_configs_load() -> None:
    cfg = agent_config.load(ROOT / "config" / "agent.toml")
    assert [s.id for s in cfg.sources] == [
        "meter-total", "meter-it", "bmc-a01-01", "switch-a01", "gpus", "host"
    ]
    assert cfg.agent.interval_s == 60
    ccfg = collector_config.load(ROOT / "config" / "collector.toml")
    assert ccfg.collector.port == 8470
    site = load_site(ROOT / "config" / "site.toml")
    assert site.energy.total and site.energy.it


def test_agent_key_is_created_once_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(f'[agent]\nid = "a"\nstate_dir = "{tmp_path / "state"}"\n')
    first = dcmeter("agent", "key", "-c", str(path))
    second = dcmeter("agent", "key", "-c", str(path))
    assert first.returncode == 0 and first.stdout.startswith("ed25519:")
    assert first.stdout == second.stdout
    mode = stat.S_IMODE((tmp_path / "state" / "agent.key").stat().st_mode)
    assert mode == 0o600
