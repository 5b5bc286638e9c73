#!/bin/sh
# dcmeter postinstall, shared by the .deb (postinst: $1 = configure, $2 = the version
# replaced, empty on a first install) and the .rpm (%post: $1 = 1 on install, 2 on upgrade).
# Creates the service user and the state directory, lets the dcmeter group read the
# configs, and tells systemd and udev about the new files. It never enables or starts a
# service: the operator edits /etc/dcmeter first (see packaging/README.md).
set -e

case "$1" in
    configure) upgrade=${2:+yes} ;;
    1) upgrade="" ;;
    [0-9]*) upgrade=yes ;;
    *) exit 0 ;;  # abort-upgrade, abort-remove, …: nothing was changed, nothing to undo
esac

# The user and group from the sysusers.d snippet; adduser where systemd-sysusers is missing
# (a container without systemd), with the same name, home and shell.
if command -v systemd-sysusers >/dev/null 2>&1; then
    systemd-sysusers /usr/lib/sysusers.d/dcmeter.conf
elif ! getent passwd dcmeter >/dev/null; then
    if command -v adduser >/dev/null 2>&1 && adduser --help 2>&1 | grep -q -- --group; then
        adduser --system --group --home /var/lib/dcmeter --no-create-home \
            --shell /usr/sbin/nologin --gecos "dcmeter energy measurement services" dcmeter
    else
        getent group dcmeter >/dev/null || groupadd --system dcmeter
        useradd --system --gid dcmeter --home-dir /var/lib/dcmeter --no-create-home \
            --shell /usr/sbin/nologin --comment "dcmeter energy measurement services" dcmeter
    fi
fi

# /var/lib/dcmeter from the tmpfiles.d snippet, so that `sudo -u dcmeter dcmeter agent key`
# works before a unit has ever started.
if command -v systemd-tmpfiles >/dev/null 2>&1; then
    systemd-tmpfiles --create /usr/lib/tmpfiles.d/dcmeter.conf
else
    install -d -m 0750 -o dcmeter -g dcmeter /var/lib/dcmeter
fi

# The agent and collector configs may hold passwords: readable by root and group dcmeter
# only. Left alone once the operator has given them another group.
for f in /etc/dcmeter/agent.toml /etc/dcmeter/collector.toml; do
    if [ -f "$f" ] && [ "$(stat -c %G "$f")" = root ]; then
        chgrp dcmeter "$f"
        chmod 0640 "$f"
    fi
done

# udev: apply the IPMI device rule (group dcmeter on /dev/ipmi*) without a reboot.
if [ -S /run/udev/control ] && command -v udevadm >/dev/null 2>&1; then
    udevadm control --reload-rules || true
    udevadm trigger --subsystem-match=ipmi || true
fi

# systemd: only when it is the running init (not in a chroot or a plain container).
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload || true
    if [ -n "$upgrade" ]; then
        # An upgrade restarts the services that were running, on the new code; stopped or
        # never-enabled services stay as they are.
        systemctl try-restart dcmeter-agent.service dcmeter-collector.service || true
    fi
fi
exit 0
