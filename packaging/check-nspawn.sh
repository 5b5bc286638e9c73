#!/usr/bin/env bash
# Boot Debian 12 with systemd as PID 1 in a systemd-nspawn container, install the built .deb
# in it and check the units under a real systemd: READY=1, the watchdog, SIGHUP reload,
# SIGTERM drain, the hardening (state directory, device policy) and the JSON journal.
#
#   bash packaging/check-nspawn.sh dist/dcmeter_<version>_amd64.deb
#
# Run as root on Debian 12 with systemd-container and debootstrap installed (.ci/run does).
# The root file system is made once with debootstrap and cached under
# /var/cache/dcmeter-nspawn/rootfs-<key> (key: suite, variant, package list and mirror); each
# run copies it to a scratch directory and deletes the copy and the container on any exit.
# The host's systemd is not needed: the container runs unregistered (--register=no
# --keep-unit) and shares the host's network (the collector listens on a free loopback
# port). What each check proves and what it cannot here: systemd/README.md, "Under systemd
# as PID 1".
set -euo pipefail

# shellcheck source=check-steps.sh
source "$(dirname "$0")/check-steps.sh"  # die, step

[ $# = 1 ] || die "usage: bash packaging/check-nspawn.sh DEB"
deb=$(readlink -f "$1")
[ -f "$deb" ] || die "$1: no such file"
[ "$(id -u)" = 0 ] || die "run as root: systemd-nspawn and debootstrap need it"
for c in systemd-nspawn debootstrap nsenter; do
    command -v "$c" >/dev/null || die "$c not found: apt-get install systemd-container debootstrap"
done

SUITE=bookworm
MIRROR=${DCMETER_NSPAWN_MIRROR:-http://deb.debian.org/debian}
PACKAGES=systemd,systemd-sysv,dbus,libpython3.11,python3
CACHE=/var/cache/dcmeter-nspawn
key=$(printf '%s\n' "$SUITE" minbase "$PACKAGES" "$MIRROR" | sha256sum | cut -c1-12)
cached=$CACHE/rootfs-$key
AGENT_ID=nspawn-a01

work=$(mktemp -d /var/tmp/dcmeter-nspawn.XXXXXX)
root=$work/root
nspawn_pid=""
cleanup() {
    local rc=$?
    if [ -n "$nspawn_pid" ] && kill -0 "$nspawn_pid" 2>/dev/null; then
        kill -TERM "$nspawn_pid" 2>/dev/null || true   # nspawn asks the container's systemd to power off
        for _ in $(seq 300); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$nspawn_pid" 2>/dev/null; then
            [ -n "${cpid:-}" ] && kill -KILL "$cpid" 2>/dev/null
            kill -KILL "$nspawn_pid" 2>/dev/null || true
        fi
        wait "$nspawn_pid" 2>/dev/null || true
    fi
    if [ $rc != 0 ] && [ -s "$work/console.log" ]; then
        echo "--- container console (last 40 lines)" >&2; tail -n 40 "$work/console.log" >&2
    fi
    rm -rf --one-file-system "$work"
    if [ $rc = 0 ]; then echo "packaging/check-nspawn.sh: OK"; fi
}
trap cleanup EXIT

# -- the root file system: debootstrap once, then a copy per run ---------------------------
if [ -x "$cached/usr/lib/systemd/systemd" ]; then
    step "rootfs: cached $cached"
else
    step "rootfs: debootstrap $SUITE ($PACKAGES) into $cached"
    mkdir -p "$CACHE"
    rm -rf "$cached.tmp"
    debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$cached.tmp" "$MIRROR" \
        >"$work/debootstrap.log" 2>&1 || { tail -n 30 "$work/debootstrap.log" >&2; die "debootstrap"; }
    mv "$cached.tmp" "$cached"   # only a complete root file system gets the cache's name
fi
step "rootfs: copy to $root"
cp -a --reflink=auto "$cached" "$root"

# -- boot --------------------------------------------------------------------------------
step "boot: systemd-nspawn -b (systemd as PID 1)"
# Where systemd is the host's init, nspawn registers the container with systemd-machined
# and runs it in a scope of its own with its cgroup delegated; elsewhere (a container
# build machine, this check's own development) it stays in the caller's cgroup.
boot() {  # boot the copy with nspawn options "$@"; sets nspawn_pid and cpid (the container's PID 1)
    systemd-nspawn -q -D "$root" -b "$@" --console=pipe \
        -M "dcmeter-ci-$$" --bind-ro="$deb:/root/dcmeter.deb" \
        </dev/null >"$work/console.log" 2>&1 &
    nspawn_pid=$!
    cpid=""
    for _ in $(seq 300); do
        cpid=$(ps -o pid= --ppid "$nspawn_pid" | head -n1 | tr -d " " || true)
        [ -n "$cpid" ] && [ "$(cat "/proc/$cpid/comm" 2>/dev/null)" = systemd ] && return 0
        kill -0 "$nspawn_pid" 2>/dev/null || { wait "$nspawn_pid" || true; nspawn_pid=""; return 1; }
        cpid=""; sleep 0.1
    done
    return 1
}
if [ -d /run/systemd/system ] && boot; then
    echo "container registered with systemd-machined"
elif [ -z "$nspawn_pid" ]; then
    [ ! -d /run/systemd/system ] || { echo "registered boot failed:" >&2; cat "$work/console.log" >&2; }
    boot --register=no --keep-unit || { cat "$work/console.log" >&2; die "systemd-nspawn exited"; }
fi
[ -n "$cpid" ] || die "no systemd process under systemd-nspawn within 30 s"
# Run a command in the container, with a clean environment.
cx() { nsenter --target "$cpid" --all env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/root LANG=C.UTF-8 SYSTEMD_PAGER= "$@"; }
# Until its manager's bus is up, systemctl fails; then "starting" until the boot is done.
state=""
for _ in $(seq 240); do
    state=$(cx systemctl is-system-running 2>/dev/null || true)
    case $state in running|degraded|maintenance|stopping) break;; esac
    sleep 0.5
done
echo "container PID 1 ($cpid on the host): $(cx cat /proc/1/comm) $(cx systemctl --version | head -n1); system $state"
case $state in running|degraded) ;; *) die "the container's system is '$state'";; esac
[ "$state" = running ] || cx systemctl --failed --no-legend >&2

# -- install the .deb with systemd running (the maintainer scripts' systemd branches) ------
# apt-get, as an operator would: it installs the Depends the minimal system lacks (procps,
# whose /bin/kill is the agent's ExecReload) from the mirror.
step "apt-get install $(basename "$deb") inside the booted container"
cx env DEBIAN_FRONTEND=noninteractive apt-get -q update </dev/null >"$work/apt.log" 2>&1 \
    || { cat "$work/apt.log" >&2; die "apt-get update (in the container, mirror $MIRROR)"; }
cx env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    /root/dcmeter.deb </dev/null >"$work/apt.log" 2>&1 \
    || { cat "$work/apt.log" >&2; die "apt-get install /root/dcmeter.deb"; }
grep -E '^(Setting up|Unpacking) ' "$work/apt.log" | sed 's/^/  /' | head -n 10
for u in dcmeter-agent dcmeter-collector; do
    [ "$(cx systemctl show -P LoadState "$u")" = loaded ] || die "$u.service not loaded after the install"
    [ "$(cx systemctl is-enabled "$u" 2>/dev/null || true)" = disabled ] || die "$u got enabled by the install"
done

# -- configuration: a collector on a free port, a simulated site, an agent reading it -------
step "configure: collector, simulated site (transient unit), agent, enrolment"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
sed -i "s/^port = 8470$/port = $port/" "$root/etc/dcmeter/collector.toml"
grep -qx "port = $port" "$root/etc/dcmeter/collector.toml" || die "could not set the collector's port"
cat >"$root/etc/dcmeter/sim.toml" <<'EOF'
[simulate]
host = "127.0.0.1"

[site]
servers = 2
switches = 1
ports_per_switch = 2
storage = 1
EOF
cx systemd-run -q --unit=dcmeter-sim /usr/bin/dcmeter simulate -c /etc/dcmeter/sim.toml \
    --agent-config /run/dcmeter-sim.toml --ports-file /run/dcmeter-sim.json
# /run is a tmpfs inside the container: look there, not under $root.
for _ in $(seq 600); do cx test -s /run/dcmeter-sim.json && break; sleep 0.1; done
cx test -s /run/dcmeter-sim.json || { cx journalctl -u dcmeter-sim --no-pager >&2; die "dcmeter simulate did not come up in 60 s"; }
devices=$(cx python3 -c 'import json; print(len(json.load(open("/run/dcmeter-sim.json"))))')
{
    printf '[agent]\nid = "%s"\ninterval_s = 2\nstate_dir = "/var/lib/dcmeter"\n\n' "$AGENT_ID"
    printf '[collector]\nurl = "http://127.0.0.1:%s"\ntimeout_s = 5\nbackoff_initial_s = 1\nbackoff_max_s = 2\n\n' "$port"
    # The simulator's [[sources]] (only those, whatever else it may write around them).
    cx cat /run/dcmeter-sim.toml | awk '/^\[\[sources\]\]/ {on = 1} /^\[[^[]/ && !/^\[sources\./ {on = 0} on'
} >"$root/etc/dcmeter/agent.toml"   # keeps the packaged file's owner and mode (root:dcmeter 0640)
cx sh -c "runuser -u dcmeter -- dcmeter agent key -c /etc/dcmeter/agent.toml >/run/agent.pub"
cx dcmeter collector enroll -c /etc/dcmeter/collector.toml --agent "$AGENT_ID" --key-file /run/agent.pub
echo "collector on 127.0.0.1:$port; $devices simulated devices"

# Helpers reading the units' state and the services' files inside the container.
prop() { cx systemctl show -P "$2" "$1"; }
wait_for() {  # wait_for SECONDS WHAT COMMAND...: poll COMMAND until it succeeds
    local deadline=$((SECONDS + $1)) what=$2; shift 2
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt $deadline ] || die "$what: not within the deadline"
        sleep 0.5
    done
}
pyc() { cx python3 -c "$@"; }
stored() {  # samples the collector stored for this agent with batch seq in $1 (comma list), or all
    pyc "
import sqlite3, sys
db = sqlite3.connect('file:/var/lib/dcmeter/collector.sqlite?mode=ro', uri=True, timeout=30)
# One sample_blocks row per stored batch, n its samples (schema 13: docs/postgresql.md).
q = 'SELECT COALESCE(SUM(n), 0) FROM sample_blocks WHERE agent = ?'
args = ['$AGENT_ID']
seqs = [int(s) for s in '${1:-}'.split(',') if s]
if seqs:
    q += ' AND seq IN (%s)' % ','.join('?' * len(seqs)); args += seqs
print(db.execute(q, args).fetchone()[0])"
}
stored_positive() { [ "$(stored)" -gt 0 ]; }

# -- (a) Type=notify: active only after READY=1 ----------------------------------------------
step "(a) systemctl start dcmeter-collector dcmeter-agent: active via READY=1"
for u in dcmeter-collector dcmeter-agent; do
    timeout 120 nsenter --target "$cpid" --all systemctl start "$u" \
        || { cx journalctl -u "$u" --no-pager | tail -n 20 >&2; die "systemctl start $u"; }
    [ "$(cx systemctl is-active "$u")" = active ] || die "$u is not active"
    [ "$(prop "$u" Type)" = notify ] || die "$u is not Type=notify"
    # `start` of a Type=notify unit returns only after READY=1; StatusText= is the STATUS=
    # the service sent (sd_notify from its main process, NotifyAccess=main).
    echo "$u: active, MainPID $(prop "$u" MainPID), status: $(prop "$u" StatusText)"
done
[ -n "$(prop dcmeter-agent StatusText)" ] || die "the agent sent no STATUS="
wait_for 60 "the collector stores the agent's samples" stored_positive
echo "collector holds $(stored) samples of $AGENT_ID"

# -- (f) the journal holds the services' JSON lines ------------------------------------------
step "(f) journalctl -o json: every line of the services is a JSON object"
for u in dcmeter-collector dcmeter-agent; do
    cx journalctl -o json -u "$u" --no-pager _PID="$(prop "$u" MainPID)" >"$work/journal.json"
    python3 - "$work/journal.json" "$u" <<'EOF' || die "$u: journal lines are not structured"
import json, sys
n = 0
for line in open(sys.argv[1]):
    msg = json.loads(line)["MESSAGE"]
    if isinstance(msg, list):  # journald gives non-UTF-8 messages as byte lists
        msg = bytes(msg).decode()
    rec = json.loads(msg)
    assert {"event", "level", "timestamp"} <= rec.keys(), rec
    n += 1
assert n >= 1, "no line"
print(f"{sys.argv[2]}: {n} journal lines, each a JSON object with event, level, timestamp; last: {rec['event']!r}")
EOF
done

# -- (c) SIGHUP reloads -----------------------------------------------------------------------
step "(c) systemctl reload dcmeter-agent (SIGHUP): the agent logs its reload"
pid=$(prop dcmeter-agent MainPID)
since=$(cx date '+%Y-%m-%d %H:%M:%S')
sed -i 's/^interval_s = 2$/interval_s = 3/' "$root/etc/dcmeter/agent.toml"
cx systemctl reload dcmeter-agent
reloaded() { cx journalctl -u dcmeter-agent -o cat --no-pager --since "$since" _PID="$pid" | grep -q '"configuration reloaded"'; }
wait_for 60 "the agent's reload line" reloaded
[ "$(prop dcmeter-agent MainPID)" = "$pid" ] || die "reload restarted the agent"
[ "$(cx systemctl is-active dcmeter-agent)" = active ] || die "agent not active after reload"
cx journalctl -u dcmeter-agent -o cat --no-pager --since "$since" _PID="$pid" | grep '"configuration reloaded"' | tail -n1

# -- (b) the watchdog restarts a hung agent ---------------------------------------------------
step "(b) SIGSTOP the agent: the watchdog (WatchdogSec=30) restarts it"
pid=$(prop dcmeter-agent MainPID)
restarts=$(prop dcmeter-agent NRestarts)
since=$(cx date '+%Y-%m-%d %H:%M:%S')
cx kill -STOP "$pid"
restarted() {
    [ "$(prop dcmeter-agent NRestarts)" -gt "$restarts" ] \
        && [ "$(cx systemctl is-active dcmeter-agent)" = active ] \
        && [ "$(prop dcmeter-agent MainPID)" != "$pid" ]
}
wait_for 150 "watchdog restart of the stopped agent" restarted
cx journalctl -u dcmeter-agent --no-pager --since "$since" -o cat >"$work/watchdog.log"
grep -q 'Watchdog timeout' "$work/watchdog.log" || die "no watchdog line in the journal"
# systemd's own lines: the timeout, the signal it killed with, how the process ended.
grep -E 'Watchdog timeout|Killing process|Main process exited|Failed with result|Scheduled restart' \
    "$work/watchdog.log" | sed 's/^/  /'
echo "NRestarts $restarts -> $(prop dcmeter-agent NRestarts), MainPID $pid -> $(prop dcmeter-agent MainPID)"

# -- (d) SIGTERM drains: every buffered sample reaches the collector -------------------------
step "(d) collector stopped; agent buffers; systemctl stop dcmeter-agent (SIGTERM) drains"
cx systemctl stop dcmeter-collector
buffer() {  # the agent's buffer: "<unsealed samples> <seq:samples,...>"
    pyc "
import sqlite3
db = sqlite3.connect('file:/var/lib/dcmeter/buffer.sqlite?mode=ro', uri=True, timeout=30)
loose = db.execute('SELECT count(*) FROM samples').fetchone()[0]
print(loose, ','.join(f'{s}:{n}' for s, n in db.execute('SELECT seq, samples FROM batches ORDER BY seq')))"
}
buffering() { set -- $(buffer); [[ ${2:-} == *,* ]]; }  # two sealed batches or more
wait_for 90 "the agent buffers while the collector is down" buffering
t_stop=$SECONDS
cx systemctl stop dcmeter-agent
echo "stop took $((SECONDS - t_stop)) s (TimeoutStopSec=15)"
[ "$(prop dcmeter-agent Result)" = success ] || die "agent stop result: $(prop dcmeter-agent Result)"
[ "$(prop dcmeter-agent ExecMainStatus)" = 0 ] || die "agent exit status $(prop dcmeter-agent ExecMainStatus)"
read -r loose pending <<<"$(buffer)"
[ "$loose" = 0 ] || die "$loose samples left unsealed in the buffer after SIGTERM"
seqs=$(tr ',' '\n' <<<"$pending" | cut -d: -f1 | paste -sd,)
want=$(( $(tr "," "\n" <<<"$pending" | cut -d: -f2 | paste -sd+) ))
echo "after SIGTERM: batches $pending waiting (seq:samples), $want samples, 0 unsealed"
[ "$(stored "$seqs")" = 0 ] || die "the collector had these batches before it was down?"
cx systemctl start dcmeter-collector
cx systemctl start dcmeter-agent
shipped() { [ "$(stored "$seqs")" -ge "$want" ]; }
wait_for 90 "the drained batches reach the collector" shipped
got=$(stored "$seqs")
[ "$got" = "$want" ] || die "the collector stored $got samples of batches $seqs, the agent sealed $want"
echo "the collector stored all $got samples of batches $seqs: nothing lost, nothing doubled"

# -- (e) hardening: state directory, devices ---------------------------------------------------
step "(e) hardening: /var/lib/dcmeter written by dcmeter; device policy of the agent"
for f in /var/lib/dcmeter /var/lib/dcmeter/agent.key /var/lib/dcmeter/buffer.sqlite \
    /var/lib/dcmeter/collector.sqlite; do
    owner=$(cx stat -c '%U:%G' "$f") || die "$f missing"
    [ "$owner" = dcmeter:dcmeter ] || die "$f is $owner, expected dcmeter:dcmeter"
done
echo "/var/lib/dcmeter: $(cx stat -c '%U:%G %a' /var/lib/dcmeter); agent.key, buffer.sqlite, collector.sqlite: dcmeter:dcmeter"
[ "$(prop dcmeter-agent DevicePolicy)" = closed ] || die "agent DevicePolicy is not closed"
allow=$(prop dcmeter-agent DeviceAllow)
for c in char-ipmidev char-nvidia-frontend char-nvidia; do
    grep -q "$c rw" <<<"$allow" || die "agent DeviceAllow lacks $c: $allow"
done
echo "agent DevicePolicy=closed, DeviceAllow: $(paste -sd, <<<"$allow")"
agent_pid=$(prop dcmeter-agent MainPID)
# Whether the kernel enforces the policy: a probe with the agent's user and device
# properties opens /dev/null (allowed) and /dev/net/tun (0666, class "misc": not allowed,
# so EPERM where the policy is enforced). On cgroup v1 the policy is the devices
# controller's list of the unit's own cgroup; nspawn does not delegate that controller
# to the container, and then the agent sits in the container's root devices cgroup.
cgline=$(cx grep ':devices:' "/proc/$agent_pid/cgroup" || true)
cg=${cgline##*:devices:}
enforced=unknown
if [ -n "$cgline" ] && [ "$cg" != / ] && cx test -r "/sys/fs/cgroup/devices$cg/devices.list"; then
    list=$(cx cat "/sys/fs/cgroup/devices$cg/devices.list")
    echo "agent's devices.list ($cg): $(tr '\n' ' ' <<<"$list")"
    grep -qx 'a \*:\* rwm' <<<"$list" && die "the agent's device cgroup allows every device"
    grep -qx 'c 1:3 rwm' <<<"$list" || die "the agent's device cgroup lacks /dev/null"
    enforced=yes
elif [ -n "$cgline" ]; then
    enforced=no
    echo "NOT ENFORCED HERE: the agent's devices cgroup is '$cg' (/proc/$agent_pid/cgroup: '$cgline'):" \
        "the cgroup v1 devices controller is not delegated to the container's systemd"
fi
if cx test -c /dev/net/tun; then
    props=(-p User=dcmeter -p Group=dcmeter -p DevicePolicy=closed)
    while read -r a; do [ -n "$a" ] && props+=(-p "DeviceAllow=$a"); done \
        < <(prop dcmeter-agent DeviceAllow)
    probe=$(cx systemd-run -q --wait --pipe "${props[@]}" /usr/bin/python3 -c '
for dev in ("/dev/null", "/dev/net/tun"):
    try:
        open(dev, "rb").close()
        print(dev, "opened")
    except OSError as e:
        print(dev, "refused:", e.strerror)' 2>&1) || die "device probe: $probe"
    echo "probe with the agent's user and device properties: $(tr '\n' ';' <<<"$probe")"
    grep -q '^/dev/null opened' <<<"$probe" || die "the agent could not open /dev/null"
    if grep -q '^/dev/net/tun opened' <<<"$probe"; then
        [ "$enforced" != yes ] || die "DevicePolicy=closed let the agent open /dev/net/tun"
        echo "NOT ENFORCED HERE: /dev/net/tun opened despite DevicePolicy=closed"
    else
        echo "DevicePolicy=closed enforced: /dev/net/tun refused, /dev/null opened"
    fi
fi
ipmi_major=$(awk '$2 == "ipmidev" {print $1}' /proc/devices)
if [ -n "$ipmi_major" ] && [ "$enforced" = yes ]; then
    grep -q "^c $ipmi_major:\* rw" <<<"$list" || die "ipmidev (major $ipmi_major) not in the agent's devices.list"
    echo "ipmidev (major $ipmi_major) allowed in the agent's devices.list"
elif [ -z "$ipmi_major" ]; then
    echo "no ipmidev in this kernel's /proc/devices (ipmi_devintf not loaded): no /dev/ipmi0 can be opened here"
fi
cx systemctl stop dcmeter-agent dcmeter-collector dcmeter-sim
step "done"
