"""Static checks of the package recipe (packaging/nfpm.yaml) against systemd/ and config/.

The packages themselves are built, installed, upgraded and purged by
packaging/check-install.sh, which .ci/run runs after pytest; these checks only catch a
recipe that forgot a new unit file or lost a conffile flag, in a second.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from conftest import ROOT

PACKAGING = ROOT / "packaging"
NFPM = PACKAGING / "nfpm.yaml"
PACKAGERS = ("deb", "rpm")
CONFIGS = ("agent.toml", "collector.toml", "site.toml")


def _section(name: str) -> list[str]:
    """The lines of one top-level block of nfpm.yaml, without blank and comment lines."""
    lines = NFPM.read_text().splitlines()
    start = lines.index(f"{name}:")
    block: list[str] = []
    for line in lines[start + 1:]:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line.startswith(" "):
            break
        block.append(line)
    return block


def contents() -> list[dict[str, str]]:
    """The `contents:` entries of nfpm.yaml (src, dst, type, packager; file_info skipped)."""
    entries: list[dict[str, str]] = []
    for line in _section("contents"):
        m = re.fullmatch(r"  (- |  )(\w+):(?: (.*))?", line)
        if m is None:
            if line.startswith("      "):  # file_info's keys
                continue
            raise AssertionError(f"nfpm.yaml: a contents line this test cannot read: {line!r}")
        dash, key, value = m.groups()
        if dash == "- ":
            entries.append({})
        assert entries, f"nfpm.yaml: contents starts without an entry: {line!r}"
        entries[-1][key] = (value or "").strip()
    return entries


def installed_as(src: str, packager: str) -> list[str]:
    """Where the package built by `packager` installs the repository file `src`."""
    return [e["dst"] for e in contents()
            if e.get("src") == src and e.get("packager", packager) == packager]


def expected_dirs(name: str, packager: str) -> list[str]:
    """Where a file of systemd/ belongs, by its kind: the distribution's own directories."""
    lib = "/lib" if packager == "deb" else "/usr/lib"  # RPM distributions: /lib is a symlink
    if name.endswith((".service", ".socket", ".timer", ".path")):
        return [f"{lib}/systemd/system/{name}"]
    if name.endswith(".rules"):
        return [f"{lib}/udev/rules.d/{name}"]
    if name.endswith(".sysusers.conf"):
        return ["/usr/lib/sysusers.d/dcmeter.conf"]
    if name.endswith(".tmpfiles.conf"):
        return ["/usr/lib/tmpfiles.d/dcmeter.conf"]
    raise AssertionError(f"systemd/{name}: unknown kind of file; say where it installs in "
                         "packaging/nfpm.yaml and in this test")


def systemd_files() -> list[str]:
    """Every file of systemd/ that an installation needs (all but the docs)."""
    return sorted(p.name for p in (ROOT / "systemd").iterdir()
                  if p.is_file() and p.suffix != ".md")


def test_contents_parser_reads_every_entry() -> None:
    entries = contents()
    assert len(entries) >= 10
    assert all("dst" in e for e in entries), [e for e in entries if "dst" not in e]
    assert {"src": "/opt/dcmeter/bin/dcmeter", "dst": "/usr/bin/dcmeter",
            "type": "symlink"} in entries


@pytest.mark.parametrize("packager", PACKAGERS)
def test_every_systemd_file_is_packaged(packager: str) -> None:
    files = systemd_files()
    assert any(f.endswith(".service") for f in files), "systemd/ holds no unit"
    for name in files:
        assert installed_as(f"systemd/{name}", packager) == expected_dirs(name, packager), (
            f"systemd/{name} in the {packager}"
        )


def test_every_packaged_file_exists() -> None:
    for e in contents():
        src = e.get("src")
        if src is None or e.get("type") == "symlink" or src.startswith("build/packaging/stage/"):
            continue  # a link target, or the venv that build.sh stages
        assert (ROOT / src).is_file(), f"nfpm.yaml packages {src}, which does not exist"


def test_example_configs_are_noreplace_conffiles() -> None:
    for name in CONFIGS:
        for packager in PACKAGERS:
            assert installed_as(f"config/{name}", packager) == [f"/etc/dcmeter/{name}"]
    under_etc = [e for e in contents() if e["dst"].startswith("/etc/") and e.get("type") != "dir"]
    assert {e["dst"] for e in under_etc} == {f"/etc/dcmeter/{n}" for n in CONFIGS}
    for e in under_etc:
        assert e.get("type") == "config|noreplace", f"{e['dst']}: type {e.get('type')}"


def test_deb_depends_on_the_python_the_venv_was_built_for() -> None:
    # The venv is lib/python3.11 with cp311 extension modules over /usr/bin/python3.
    deb = _section("overrides")
    assert "      - python3 (>= 3.11~)" in deb and "      - python3 (<< 3.12)" in deb


@pytest.mark.parametrize("name", ["postinstall", "preremove", "postremove"])
def test_maintainer_scripts_exist_and_parse(name: str) -> None:
    scripts = dict(line.strip().split(": ", 1) for line in _section("scripts"))
    path = ROOT / scripts[name]
    assert path.is_file() and path.stat().st_mode & 0o111, f"{path} missing or not executable"
    sh = shutil.which("dash") or shutil.which("sh")
    assert sh is not None
    r = subprocess.run([sh, "-n", str(path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("name", ["build.sh", "check-install.sh", "check-nspawn.sh", "check-steps.sh"])
def test_packaging_commands_parse(name: str) -> None:
    r = subprocess.run(["bash", "-n", str(PACKAGING / name)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr

