"""The site file: the shipped example loads, and every mistake names file, key and fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from dcmeter.base.configfile import ConfigError
from dcmeter.collectors.evaluation.site import load_site

EXAMPLE = Path(__file__).resolve().parents[3] / "config" / "site.toml"

MINIMAL = """
[site]
name = "dc"
{factor}

[energy]
total = ["meter-total"]
{it}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "site.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_example_site_file_loads() -> None:
    site = load_site(EXAMPLE)
    assert site.site.name == "demo-dc"
    assert site.site.region == "east-2023"
    assert site.energy.total == ["meter-total"]
    assert site.energy.it == ["meter-it"]
    assert site.energy.green == []
    assert site.energy.it_point == "it_pdu"  # the simulator's IT meter (issue 14)
    assert site.energy.metrics.counter == "energy_import_kwh"
    assert site.energy.metrics.power == "power_w"
    assert site.pue_levels is None
    assert site.quality.max_gap_s == 900.0


def test_defaults_of_a_minimal_file(tmp_path: Path) -> None:
    site = load_site(
        write(tmp_path, MINIMAL.format(factor="region = 'north-2023'", it="it = ['x']"))
    )
    assert site.energy.green == [] and site.energy.it_point == "it_input"
    assert site.quality.max_gap_s == 900.0


def test_configured_factor_and_pue_levels(tmp_path: Path) -> None:
    text = MINIMAL.format(factor="grid_factor_kg_per_kwh = 0.42", it="it = ['x']")
    text += "\n[pue_levels]\nlevel1 = 1.25\nlevel2 = 1.35\nlevel3 = 1.6\n"
    site = load_site(write(tmp_path, text))
    assert site.site.grid_factor_kg_per_kwh == 0.42
    assert site.pue_levels is not None
    assert site.pue_levels.thresholds().level3 == 1.6


def test_missing_it_names_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.format(factor="region = 'east-2023'", it=""))
    with pytest.raises(ConfigError) as err:
        load_site(path)
    message = str(err.value)
    assert str(path) in message
    assert "key energy.it" in message and "Field required" in message


def test_empty_it_list_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.format(factor="region = 'east-2023'", it="it = []"))
    with pytest.raises(ConfigError, match=r"key energy\.it: .*at least 1 item"):
        load_site(path)


def test_both_region_and_factor_are_rejected(tmp_path: Path) -> None:
    factor = "region = 'east-2023'\ngrid_factor_kg_per_kwh = 0.5"
    path = write(tmp_path, MINIMAL.format(factor=factor, it="it = ['x']"))
    with pytest.raises(ConfigError) as err:
        load_site(path)
    message = str(err.value)
    assert str(path) in message and "key site:" in message
    assert "exactly one of site.region" in message and "both were given" in message
    assert "east-2023" in message and "national-2023" in message  # the valid regions


def test_neither_region_nor_factor_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.format(factor="", it="it = ['x']"))
    with pytest.raises(ConfigError, match="neither was given"):
        load_site(path)


def test_unknown_region_lists_the_valid_ones(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.format(factor="region = 'mars-2023'", it="it = ['x']"))
    with pytest.raises(ConfigError) as err:
        load_site(path)
    message = str(err.value)
    assert str(path) in message and "key site.region" in message and "'mars-2023'" in message
    assert "valid: national-2022, national-2023, north-2023" in message


@pytest.mark.parametrize(
    ("extra", "key", "hint"),
    [
        ("it_point = 'it_rack'", "energy.it_point", "'it_ups', 'it_pdu' or 'it_input'"),
        ("colour = 'blue'", "energy.colour", "unknown key; the keys of energy are: green, it,"),
        ("green = ['pv', 'pv']", "energy.green", "source ids listed twice: pv"),
    ],
)
def test_bad_energy_keys(tmp_path: Path, extra: str, key: str, hint: str) -> None:
    path = write(tmp_path, MINIMAL.format(factor="region = 'east-2023'", it="it = ['x']\n" + extra))
    with pytest.raises(ConfigError) as err:
        load_site(path)
    assert f"key {key}" in str(err.value) and hint in str(err.value)


def test_descending_pue_levels_are_rejected(tmp_path: Path) -> None:
    text = MINIMAL.format(factor="region = 'east-2023'", it="it = ['x']")
    text += "\n[pue_levels]\nlevel1 = 1.4\nlevel2 = 1.3\n"
    with pytest.raises(ConfigError, match=r"key pue_levels: .*level1 <= level2 <= level3"):
        load_site(write(tmp_path, text))


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_site(tmp_path / "absent.toml")
