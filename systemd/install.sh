#!/bin/sh
# Install Outpost's systemd pieces: the units, the service user (sysusers.d) and the
# directories (tmpfiles.d); optionally create the venv and install the agent into it.
#
#   sudo systemd/install.sh                      # units + user + dirs, enable, no start
#   sudo systemd/install.sh --venv --start       # also build /opt/outpost/venv from this checkout
#   DESTDIR=/tmp/root systemd/install.sh         # stage into a root tree (image builds, tests)
#
# With DESTDIR set nothing is run against the live system (no sysusers, no systemctl).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
DESTDIR=${DESTDIR:-}
PREFIX_VENV=${OUTPOST_VENV:-/opt/outpost/venv}
UNITDIR=${UNITDIR:-/etc/systemd/system}
SYSUSERSDIR=${SYSUSERSDIR:-/usr/lib/sysusers.d}
TMPFILESDIR=${TMPFILESDIR:-/usr/lib/tmpfiles.d}
make_venv=no
start=no

for arg in "$@"; do
    case "$arg" in
        --venv) make_venv=yes ;;
        --start) start=yes ;;
        -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
        *) echo "install.sh: unknown option $arg" >&2; exit 2 ;;
    esac
done

install -d -m 0755 "$DESTDIR$UNITDIR" "$DESTDIR$SYSUSERSDIR" "$DESTDIR$TMPFILESDIR"
install -m 0644 "$here/outpost.service" "$DESTDIR$UNITDIR/outpost.service"
install -m 0644 "$here/outpost-enrol.service" "$DESTDIR$UNITDIR/outpost-enrol.service"
install -m 0644 "$here/outpost.sysusers" "$DESTDIR$SYSUSERSDIR/outpost.conf"
install -m 0644 "$here/outpost.tmpfiles" "$DESTDIR$TMPFILESDIR/outpost.conf"
install -d -m 0755 "$DESTDIR/opt/outpost/docs"
if [ -f "$repo/docs/operations.md" ]; then
    install -m 0644 "$repo/docs/operations.md" "$DESTDIR/opt/outpost/docs/operations.md"
fi

if [ "$make_venv" = yes ]; then
    python3 -m venv "$DESTDIR$PREFIX_VENV"
    "$DESTDIR$PREFIX_VENV/bin/pip" install --quiet "$repo"
    ln -sf "$PREFIX_VENV/bin/outpost" "$DESTDIR/usr/local/bin/outpost"
    ln -sf "$PREFIX_VENV/bin/outpost-provision" "$DESTDIR/usr/local/bin/outpost-provision"
fi

if [ -n "$DESTDIR" ]; then
    # Staged install: create the directories the live tmpfiles run would create, so the
    # tree is complete for an image; ownership is applied on the target's first boot.
    install -d -m 0750 "$DESTDIR/etc/outpost" "$DESTDIR/etc/outpost/pki" "$DESTDIR/var/lib/outpost"
    echo "staged Outpost systemd files under $DESTDIR"
    exit 0
fi

systemd-sysusers "$SYSUSERSDIR/outpost.conf"
systemd-tmpfiles --create "$TMPFILESDIR/outpost.conf"
systemctl daemon-reload
systemctl enable outpost.service outpost-enrol.service
if [ "$start" = yes ]; then
    systemctl restart outpost.service
fi
echo "installed outpost.service (user outpost, groups gpio dialout video)"
