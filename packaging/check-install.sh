#!/usr/bin/env bash
# Install, use, upgrade, remove and purge the dcmeter .deb on this machine, as an operator
# would, and fail on the first step that does not do what packaging/README.md says.
#
#   bash packaging/check-install.sh dist/dcmeter_<version>_amd64.deb
#
# Run as root on Debian 12 (CI does, on a fresh machine). It refuses to run where dcmeter is
# installed already or where /opt/dcmeter, /etc/dcmeter, /var/lib/dcmeter or
# /var/log/dcmeter exist, since the purge at the end deletes them; on any exit it purges
# what it installed and deletes the dcmeter user if it created it. When `rpm` is installed
# the .rpm next to the .deb has its file list, conffiles and scriptlets checked too.
set -euo pipefail

# shellcheck source=check-steps.sh
source "$(dirname "$0")/check-steps.sh"  # die, step

[ $# = 1 ] || die "usage: bash packaging/check-install.sh DEB"
deb=$(readlink -f "$1")
[ -f "$deb" ] || die "$1: no such file"
[ "$(id -u)" = 0 ] || die "run as root: it installs and purges the package"
command -v dpkg >/dev/null || die "dpkg not found: this check runs on Debian"
version=$(dpkg-deb -f "$deb" Version)
[ "$(dpkg-deb -f "$deb" Package)" = dcmeter ] || die "$deb is not the dcmeter package"

# -- safety: never touch an installation or data that this check did not make ------------
state=$(dpkg-query -W -f='${db:Status-Status}' dcmeter 2>/dev/null || true)
if [ -n "$state" ] && [ "$state" != not-installed ]; then
    die "dcmeter is already on this machine (dpkg status '$state'): this check purges it at the end; remove it yourself first, or run on a scratch machine"
fi
for d in /opt/dcmeter /etc/dcmeter /var/lib/dcmeter /var/log/dcmeter /usr/bin/dcmeter; do
    if [ -e "$d" ] || [ -L "$d" ]; then
        die "$d exists: this check would install over it and delete it at the end; move it away first"
    fi
done
user_existed=no
getent passwd dcmeter >/dev/null && user_existed=yes

work=$(mktemp -d /tmp/dcmeter-check.XXXXXX)
chmod 0755 "$work"   # the agent runs below as user dcmeter and reads its config here
sim_pid=""
installed_by_us=no
cleanup() {
    local rc=$?
    if [ -n "$sim_pid" ] && kill -0 "$sim_pid" 2>/dev/null; then
        kill "$sim_pid" 2>/dev/null || true
        wait "$sim_pid" 2>/dev/null || true
    fi
    if [ "$installed_by_us" = yes ] && dpkg-query -W dcmeter >/dev/null 2>&1 \
        && [ "$(dpkg-query -W -f='${db:Status-Status}' dcmeter)" != not-installed ]; then
        echo "cleanup: dpkg --purge dcmeter" >&2
        dpkg --purge dcmeter >/dev/null 2>&1 || true
    fi
    if [ "$user_existed" = no ] && getent passwd dcmeter >/dev/null; then
        userdel dcmeter 2>/dev/null || true
    fi
    if [ "$user_existed" = no ] && getent group dcmeter >/dev/null; then
        groupdel dcmeter 2>/dev/null || true
    fi
    rm -rf "$work"
    if [ $rc = 0 ]; then echo "packaging/check-install.sh: OK (dcmeter $version)"; fi
}
trap cleanup EXIT

# Debconf or a conffile prompt must fail the check rather than hang it.
export DEBIAN_FRONTEND=noninteractive
dpkg_i() { dpkg -i "$1" </dev/null >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log" >&2; die "dpkg -i $1"; }; }

# -- install ------------------------------------------------------------------------------
step "dpkg -i $(basename "$deb")"
installed_by_us=yes
dpkg_i "$deb"
[ "$(dpkg-query -W -f='${db:Status-Status} ${Version}' dcmeter)" = "installed $version" ] \
    || die "after dpkg -i: $(dpkg-query -W -f='${db:Status-Status} ${Version}' dcmeter)"

step "installed files, user and permissions"
[ "$(readlink /usr/bin/dcmeter)" = /opt/dcmeter/bin/dcmeter ] || die "/usr/bin/dcmeter is not a link to /opt/dcmeter/bin/dcmeter"
[ "$(readlink /opt/dcmeter/bin/python3)" = /usr/bin/python3 ] || die "/opt/dcmeter/bin/python3 does not point at /usr/bin/python3"
if grep -rIl --fixed-strings "build/packaging/stage" /opt/dcmeter/bin /opt/dcmeter/pyvenv.cfg; then
    die "the build machine's stage path is left in the files above"
fi
for f in dcmeter-agent.service dcmeter-collector.service; do
    [ -f "/lib/systemd/system/$f" ] || die "/lib/systemd/system/$f missing"
done
[ -f /usr/lib/sysusers.d/dcmeter.conf ] || die "/usr/lib/sysusers.d/dcmeter.conf missing"
getent passwd dcmeter >/dev/null || die "postinst did not create user dcmeter"
[ "$(stat -c '%U:%G %a' /var/lib/dcmeter)" = "dcmeter:dcmeter 750" ] \
    || die "/var/lib/dcmeter is $(stat -c '%U:%G %a' /var/lib/dcmeter), expected dcmeter:dcmeter 750"
for f in agent.toml collector.toml; do
    [ "$(stat -c '%U:%G %a' "/etc/dcmeter/$f")" = "root:dcmeter 640" ] \
        || die "/etc/dcmeter/$f is $(stat -c '%U:%G %a' "/etc/dcmeter/$f"), expected root:dcmeter 640"
done
if systemctl is-enabled dcmeter-agent.service >/dev/null 2>&1; then
    die "dcmeter-agent.service got enabled by the install: the operator enables it after configuring"
fi

step "/usr/bin/dcmeter --version (as root and as user dcmeter)"
dist_version=$(sed -n 's/^Version: //p' /opt/dcmeter/lib/python3.11/site-packages/dcmeter-*.dist-info/METADATA)
out=$(/usr/bin/dcmeter --version)
[ "$out" = "dcmeter $dist_version" ] || die "dcmeter --version printed '$out', expected 'dcmeter $dist_version'"
out=$(runuser -u dcmeter -- /usr/bin/dcmeter --version)
[ "$out" = "dcmeter $dist_version" ] || die "as user dcmeter, --version printed '$out'"
echo "dcmeter --version: $out (package version $version)"

step "one top-level import name: dcmeter, with its agent and collector inside"
site=/opt/dcmeter/lib/python3.11/site-packages
for d in agent collectors; do
    [ ! -e "$site/$d" ] || die "$site/$d is installed beside dcmeter (docs/architecture.md)"
    [ -f "$site/dcmeter/$d/__init__.py" ] && [ ! -L "$site/dcmeter/$d" ] \
        || die "$site/dcmeter/$d is missing or a link, not the package's copy"
done
/opt/dcmeter/bin/python -c 'import dcmeter.collectors.web.api, dcmeter.agent.daemon' \
    || die "the installed venv cannot import dcmeter.collectors.web.api and dcmeter.agent.daemon"
# /docs offline (collectors/web/docs_ui.py): the vendored Swagger UI is package data.
/opt/dcmeter/bin/python -c 'from dcmeter.collectors.web.docs_ui import FILES, asset
assert all(len(asset(n)[0]) > 0 for n in FILES)' \
    || die "the installed venv lacks /docs' vendored Swagger UI (package-data in pyproject.toml)"
# The console (collectors/web/console/): its templates and vendored htmx and uPlot.
/opt/dcmeter/bin/python -c 'from dcmeter.collectors.web.console.assets import FILES, asset
from importlib.resources import files
assert all(len(asset(n)[0]) > 0 for n in FILES)
pages = files("dcmeter.collectors.web.console") / "templates"
assert all((pages / p).is_file() for p in ("base.html", "login.html", "window.html"))' \
    || die "the installed venv lacks the console's assets or templates (package-data)"

# -- the installed agent reads the installed simulator -------------------------------------
step "dcmeter simulate (installed) in the background"
cat >"$work/sim.toml" <<'EOF'
[simulate]
host = "127.0.0.1"

[site]
servers = 2
switches = 1
ports_per_switch = 2
storage = 1
EOF
/usr/bin/dcmeter simulate -c "$work/sim.toml" --agent-config "$work/agent.toml" \
    --ports-file "$work/ports.json" >"$work/sim.log" 2>&1 &
sim_pid=$!
for _ in $(seq 600); do
    grep -q "dcmeter simulate:" "$work/sim.log" 2>/dev/null && break
    kill -0 "$sim_pid" 2>/dev/null || { cat "$work/sim.log" >&2; die "dcmeter simulate exited"; }
    sleep 0.1
done
grep -q "dcmeter simulate:" "$work/sim.log" || { cat "$work/sim.log" >&2; die "dcmeter simulate did not come up in 60 s"; }
chmod 0644 "$work/agent.toml"

step "dcmeter agent once --json (installed, as user dcmeter)"
runuser -u dcmeter -- /usr/bin/dcmeter agent once -c "$work/agent.toml" --json \
    >"$work/samples.jsonl" 2>"$work/once.err" \
    || { cat "$work/once.err" >&2; die "dcmeter agent once failed"; }
/opt/dcmeter/bin/python - "$work/ports.json" "$work/samples.jsonl" <<'EOF' || die "agent once: not every simulated device was read"
import json, sys
devices = {d["name"] for d in json.load(open(sys.argv[1]))}
seen: dict[str, int] = {}
for line in open(sys.argv[2]):
    s = json.loads(line)
    if isinstance(s.get("value"), float | int):
        seen[s["source"]] = seen.get(s["source"], 0) + 1
missing = sorted(devices - set(seen))
print(f"{sum(seen.values())} samples from {len(seen)} sources; simulated devices: {len(devices)}")
if missing or not devices:
    print(f"no samples from: {missing or 'any device (no devices?)'}", file=sys.stderr)
    sys.exit(1)
EOF
kill "$sim_pid"; wait "$sim_pid" 2>/dev/null || true; sim_pid=""

step "no file under /opt/dcmeter that the package does not own (byte code)"
dpkg -L dcmeter | grep '^/opt/dcmeter' | sort >"$work/owned"
find /opt/dcmeter | sort >"$work/found"
if extra=$(comm -13 "$work/owned" "$work/found" | grep .); then
    die "files written under /opt/dcmeter at run time: $(echo "$extra" | head -5)"
fi

# -- upgrades keep the operator's config -------------------------------------------------
marker="# check-install marker $$-$RANDOM"
echo "$marker" >>/etc/dcmeter/agent.toml
step "dpkg -i the same .deb over itself"
dpkg_i "$deb"
grep -qxF "$marker" /etc/dcmeter/agent.toml || die "reinstall lost the edit of /etc/dcmeter/agent.toml"
[ ! -e /etc/dcmeter/agent.toml.dpkg-new ] || die "reinstall left agent.toml.dpkg-new"

step "upgrade to a newer version (the same .deb, repacked as $version+checkupgrade)"
up="$work/dcmeter_${version}+checkupgrade_amd64.deb"
dpkg-deb -R "$deb" "$work/unpacked"
sed -i "s/^Version: .*/Version: $version+checkupgrade/" "$work/unpacked/DEBIAN/control"
dpkg-deb -Znone -b "$work/unpacked" "$up" >/dev/null
rm -rf "$work/unpacked"
dpkg_i "$up"
[ "$(dpkg-query -W -f='${Version}' dcmeter)" = "$version+checkupgrade" ] || die "upgrade did not change the version"
grep -qxF "$marker" /etc/dcmeter/agent.toml || die "upgrade lost the edit of /etc/dcmeter/agent.toml"
/usr/bin/dcmeter --version >/dev/null || die "dcmeter --version fails after the upgrade"
rm -f "$up"

# -- remove keeps config and data; purge deletes them --------------------------------------
step "dpkg -r dcmeter (config and data stay)"
dpkg -r dcmeter </dev/null >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log" >&2; die "dpkg -r"; }
for p in /opt/dcmeter /usr/bin/dcmeter /lib/systemd/system/dcmeter-agent.service; do
    { [ -e "$p" ] || [ -L "$p" ]; } && die "$p still there after dpkg -r"
done
grep -qxF "$marker" /etc/dcmeter/agent.toml || die "dpkg -r removed the operator's /etc/dcmeter/agent.toml"
[ -d /var/lib/dcmeter ] || die "dpkg -r removed /var/lib/dcmeter"

step "dpkg --purge dcmeter"
dpkg --purge dcmeter </dev/null >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log" >&2; die "dpkg --purge"; }
for p in /opt/dcmeter /usr/bin/dcmeter /etc/dcmeter /var/lib/dcmeter /var/log/dcmeter; do
    { [ -e "$p" ] || [ -L "$p" ]; } && die "$p still there after dpkg --purge"
done
state=$(dpkg-query -W -f='${db:Status-Status}' dcmeter 2>/dev/null || true)
[ -z "$state" ] || [ "$state" = not-installed ] || die "dpkg status after purge: $state"

# -- the .rpm: contents only (no rpm-based machine here) -------------------------------------
rpm_file="$(dirname "$deb")/dcmeter-$version.x86_64.rpm"
if ! command -v rpm >/dev/null; then
    step "rpm: skipped (no rpm command: apt-get install rpm to check the .rpm's contents)"
elif [ ! -f "$rpm_file" ]; then
    step "rpm: skipped ($rpm_file not found)"
else
    step "rpm -qp: files, conffiles, requires and scriptlets of $(basename "$rpm_file")"
    rpm -qpl "$rpm_file" >"$work/rpm.files"
    for p in /opt/dcmeter/bin/dcmeter /opt/dcmeter/bin/python3 /usr/bin/dcmeter \
        /usr/lib/systemd/system/dcmeter-agent.service \
        /usr/lib/systemd/system/dcmeter-collector.service \
        /usr/lib/sysusers.d/dcmeter.conf /usr/lib/udev/rules.d/60-dcmeter-ipmi.rules \
        /etc/dcmeter/agent.toml /etc/dcmeter/collector.toml /etc/dcmeter/site.toml; do
        grep -qxF "$p" "$work/rpm.files" || die "$p not in $rpm_file"
    done
    if grep -q '^/lib/' "$work/rpm.files"; then die "$rpm_file has files under /lib (a symlink on RPM distributions)"; fi
    [ "$(rpm -qpc "$rpm_file" | sort | tr '\n' ' ')" = "/etc/dcmeter/agent.toml /etc/dcmeter/collector.toml /etc/dcmeter/site.toml " ] \
        || die "config files of $rpm_file: $(rpm -qpc "$rpm_file" | tr '\n' ' ')"
    rpm -qp --qf '[%{FILENAMES} %{FILEFLAGS:fflags}\n]' "$rpm_file" | grep '^/etc/dcmeter/.*\.toml ' \
        | grep -v ' cn$' && die "a config file of $rpm_file is not %config(noreplace)"
    rpm -qp --requires "$rpm_file" | grep -qx 'python3 < 3.12' || die "$rpm_file does not require python3 < 3.12"
    [ "$(rpm -qp --scripts "$rpm_file" | grep -c 'scriptlet (using /bin/sh)')" = 3 ] \
        || die "$rpm_file: expected 3 scriptlets"
fi
step "done"
