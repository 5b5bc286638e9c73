#!/bin/sh
# dcmeter preremove, shared by the .deb (prerm: $1 = remove, upgrade, deconfigure, …) and
# the .rpm (%preun: $1 = 0 on erase, 1 on upgrade). On removal stops the services while
# their files are still there; an upgrade leaves them running (postinstall restarts them).
set -e

case "$1" in
    remove|deconfigure|0) ;;
    *) exit 0 ;;
esac

for unit in dcmeter-agent.service dcmeter-collector.service; do
    if [ -d /run/systemd/system ] && systemctl is-active --quiet "$unit"; then
        systemctl stop "$unit" || true
    fi
    # Drop the operator's enablement (links in /etc/systemd/system), which would dangle
    # once the unit files are gone; a reinstall starts from "disabled" again.
    if command -v systemctl >/dev/null 2>&1; then
        systemctl --no-reload disable --quiet "$unit" 2>/dev/null || true
    fi
done
exit 0
