"""The command line: bad configuration is one clear message and exit 2; examples stay valid."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

from dcmeter.agent import config as agent_config
from dcmeter.collectors import config as collector_config
from dcmeter.collectors.evaluation.site import load_site
from tests.peers.snmpd import start_snmpd


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
        ("[agent]\nintervall_s = 60\n", ["key agent.intervall_s", "unknown key", "interval_s, state_dir"]),
        ('[[sources]]\nid = "x"\ntype = "bacnet"\n', ["key sources[0].type", "'bacnet'", "host, ipmi, modbus, npu, nvml, redfish, snmp"]),
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
        "meter-total", "meter-it", "bmc-a01-01", "bmc-a01-02", "switch-a01", "gpus", "host"
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


FOUR_TYPOS = """\
[agent]
id = "a"
intervall_s = 60

[[sources]]
id = "meter"
type = "modbus"
host = "127.0.0.1"
prot = 502
profile = "eastron_sdm630"

[[sources]]
id = "meter-2"
type = "modbus"
host = "127.0.0.1"
profile = "eastron_sdm63"

[[sources]]
id = "switch"
type = "snmp"
host = "127.0.0.1"
version = "2d"
community = "Community-Secret-4411"
"""


def test_four_typos_in_three_sections_are_reported_in_one_run(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(FOUR_TYPOS)
    r = dcmeter("agent", "once", "-c", str(path))
    assert r.returncode == 2 and r.stdout == ""
    assert "Traceback" not in r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 4, r.stderr
    assert all(line.startswith(f"dcmeter: configuration error: {path}: key ") for line in lines)
    by_key = {line.split(": key ")[1].split(":")[0]: line for line in lines}
    assert set(by_key) == {
        "agent.intervall_s", "sources[0].prot", "sources[1].profile", "sources[2].version"
    }
    # each line: the bad value and what would be valid
    assert "bad value 60" in by_key["agent.intervall_s"]
    assert "batch_max_samples, buffer_max_mb, id, interval_s, state_dir" in by_key[
        "agent.intervall_s"
    ]
    assert "bad value 502" in by_key["sources[0].prot"]
    assert ", port, profile," in by_key["sources[0].prot"]  # the modbus keys, sorted
    assert "'eastron_sdm63'" in by_key["sources[1].profile"]
    assert "eastron_sdm630" in by_key["sources[1].profile"]
    assert "'2d'" in by_key["sources[2].version"] and "'2c' or '3'" in by_key["sources[2].version"]
    assert "Community-Secret-4411" not in r.stderr


def test_unknown_key_of_a_nested_table_lists_that_tables_keys(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(
        '[[sources]]\nid = "sw"\ntype = "snmp"\nhost = "h"\ncommunity = "c-Secret-1"\n'
        'interfaces = { if_nmes = ["lo"] }\n'
    )
    r = dcmeter("agent", "once", "-c", str(path))
    assert r.returncode == 2
    assert "key sources[0].interfaces.if_nmes: bad value ['lo']" not in r.stderr  # a list
    assert "key sources[0].interfaces.if_nmes: bad value (a list): unknown key" in r.stderr
    assert "if_alias_pattern, if_indexes, if_names" in r.stderr
    assert "c-Secret-1" not in r.stderr


def test_secret_with_a_bad_value_is_hidden(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    secret = "Bmc-Secret-" + "x" * 20
    path.write_text(
        f'[[sources]]\nid = "b"\ntype = "ipmi"\nhost = "h"\nusername = "u"\n'
        f'password = "{secret}"\n'
    )
    r = dcmeter("agent", "once", "-c", str(path))
    assert r.returncode == 2
    assert "key sources[0].password: bad value (hidden): IPMI passwords have at most 20" in r.stderr
    assert secret not in r.stderr


def test_collector_config_faults_all_at_once(tmp_path: Path) -> None:
    path = tmp_path / "collector.toml"
    path.write_text(
        '[collector]\nprot = 8470\n\n[[agents]]\nid = "a"\npublic_key = "ssh-rsa AAAA"\n'
    )
    r = dcmeter("collector", "serve", "-c", str(path))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "key collector.prot: bad value 8470: unknown key" in r.stderr
    assert ", port," in r.stderr
    assert "key agents[0].public_key" in r.stderr


def test_wrong_snmp_community_at_timeout_3_names_target_version_and_hint(tmp_path: Path) -> None:
    agent = start_snmpd(tmp_path / "snmpd")
    try:
        path = tmp_path / "agent.toml"
        path.write_text(
            f'[agent]\nid = "a"\n[[sources]]\nid = "sw"\ntype = "snmp"\nhost = "127.0.0.1"\n'
            f'port = {agent.port}\ncommunity = "Wrong-Community-5150"\ntimeout_s = 3\n'
            'interfaces = { if_names = ["lo"] }\n'
        )
        r = dcmeter("agent", "once", "--json", "-c", str(path))
    finally:
        agent.stop()
    assert r.returncode == 1 and r.stdout == ""
    failed = [line for line in r.stderr.splitlines() if "target failed" in line]
    assert len(failed) == 1, r.stderr
    assert f"127.0.0.1:{agent.port}" in failed[0]
    assert "v2c" in failed[0]
    assert "wrong community" in failed[0] and "ACL" in failed[0]
    assert "Wrong-Community-5150" not in r.stderr
