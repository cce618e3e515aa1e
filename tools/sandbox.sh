#!/usr/bin/env bash
# Run a command where a file-system bug cannot hurt the machine.
#
# The command runs in a private mount namespace in which every mount (/, /dev,
# /dev/shm, /sys, ...; /proc excepted) is read-only and one fresh work directory (a
# tmpfs private to the namespace) is the only writable place. A store that escapes its root -- writing /etc/passwd,
# shutil.rmtree("/") -- then hits EROFS instead of the system. Used by
# tests/sandboxed/sandbox_runner.py, which feeds hostile keys to every store (unless
# the tests already run somewhere read-only: see tests/sandboxed/sandbox_probe.py).
#
# Usage:   tools/sandbox.sh CMD [ARG...]
#          e.g. tools/sandbox.sh "$(which python)" -m pytest "$PWD/tests/sandboxed"
# Inside:  the working directory, HOME and TMPDIR are in the fresh work directory
#          (so give paths absolute); AIOSTORE_SANDBOX=1 is set, and
#          AIOSTORE_SANDBOX_WORK names the work directory.
# Exit:    the command's status; 77 if no sandbox can be made here (no unshare, not
#          root and no password-less sudo, no mount namespaces, no writable temp
#          directory to hold the work directory's mount point); 3 if the namespace
#          was made but some probed place is still writable -- the command is then
#          never run.
# Needs root (directly or through `sudo -n`) for unshare --mount.
set -euo pipefail

if [ "$#" -eq 0 ]; then
    echo "usage: $0 CMD [ARG...]" >&2
    exit 2
fi
if ! command -v unshare >/dev/null 2>&1; then
    echo "sandbox: unshare (util-linux) is not installed" >&2
    exit 77
fi
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        exec sudo -n -E "$0" "$@"
    fi
    echo "sandbox: needs root (or password-less sudo) for a private mount namespace" >&2
    exit 77
fi
if ! unshare --mount --propagation private true 2>/dev/null; then
    echo "sandbox: cannot create a mount namespace here (unshare --mount failed)" >&2
    exit 77
fi

# The work directory's mount point is made outside the namespace: where even the
# temp directory is read-only (a read-only container), there is no place for it.
if ! work=$(mktemp -d "${TMPDIR:-/tmp}/aiostore-sandbox.XXXXXX" 2>/dev/null); then
    echo "sandbox: cannot make a work directory in ${TMPDIR:-/tmp} (read-only?)" >&2
    exit 77
fi
trap 'rm -rf -- "$work"' EXIT

set +e
unshare --mount --propagation private -- env AIOSTORE_SANDBOX_WORK="$work" bash -c '
set -eu
work=$AIOSTORE_SANDBOX_WORK
# Every writable mount read-only (mountinfo: field 5 is the mount point, field 6 its
# options); /proc stays as it is.
for target in $(awk "\$6 !~ /^ro/ {print \$5}" /proc/self/mountinfo | sort -u); do
    case "$target" in /proc|/proc/*) continue ;; esac
    mount -o remount,bind,ro "$target" 2>/dev/null || true
done
# ... but the work directory: a fresh tmpfs, private to this namespace (fast, and
# whatever the command leaves there is gone when it ends).
mount -t tmpfs -o size=1g,mode=0700 aiostore-sandbox "$work"
mkdir -p "$work/home" "$work/tmp"
# Refuse to run unless the places that matter really are read-only.
for place in / /etc /usr /root /tmp /var/tmp /dev /dev/shm "$(dirname "$work")"; do
    [ -d "$place" ] || continue
    probe="$place/.aiostore-sandbox-probe.$$"
    if ( : >"$probe" ) 2>/dev/null; then
        rm -f -- "$probe"
        echo "sandbox: $place is still writable, refusing to run" >&2
        exit 3
    fi
done
if ! ( : >"$work/.probe" ) 2>/dev/null; then
    echo "sandbox: the work directory is not writable" >&2
    exit 3
fi
rm -f -- "$work/.probe"
cd "$work"
export HOME="$work/home" TMPDIR="$work/tmp" AIOSTORE_SANDBOX=1 AIOSTORE_SANDBOX_WORK="$work"
exec "$@"
' aiostore-sandbox "$@"
status=$?
set -e
exit "$status"
