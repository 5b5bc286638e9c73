#!/bin/sh
# dcmeter postremove, shared by the .deb (postrm: $1 = remove, purge, upgrade, …) and the
# .rpm (%postun: $1 = 0 on erase, 1 on upgrade).
#   remove (deb) / erase (rpm): the program is gone; /etc/dcmeter (the operator's configs,
#       agent keys, TLS files), /var/lib/dcmeter (the agent's key and unsent buffer, the
#       collector's database) and /var/log/dcmeter are kept.
#   purge (deb only): those three are deleted too. The dcmeter user and group are kept
#       (files elsewhere may still belong to them; Debian does not reuse a system uid).
set -e

action="$1"
case "$action" in
    remove|purge|0) ;;
    [0-9]*)
        # rpm upgrade: the old files are gone now; restart the running services on the new ones.
        if [ -d /run/systemd/system ]; then
            systemctl daemon-reload || true
            systemctl try-restart dcmeter-agent.service dcmeter-collector.service || true
        fi
        exit 0 ;;
    *) exit 0 ;;
esac

# Byte code that Python wrote at run time (a module imported from a path that the package
# did not compile) is no file of the package: remove what is left of the venv.
rm -rf /opt/dcmeter

if [ "$action" = purge ]; then
    rm -rf /etc/dcmeter /var/lib/dcmeter /var/log/dcmeter
fi

if [ -d /run/systemd/system ]; then
    systemctl daemon-reload || true
fi
if [ -S /run/udev/control ] && command -v udevadm >/dev/null 2>&1; then
    udevadm control --reload-rules || true
fi
exit 0
