#!/bin/sh
# Install what the test suite needs on a fresh Debian 12 machine (run as root).
# Idempotent: apt is touched only for packages that are missing.
#   busybox-static   the static guest shell (/bin/busybox) of the busybox guest root
#   python3.11 bash  Debian's own, copied into the dynamic guest root
#   gcc libc6-dev    tiny static test programs (a real segfault)
#   libc-bin         ldd, to find the libraries of the dynamic guest root
#   coreutils procps the host userland the VFS tests compare natively and in the guest (ps)
#   e2fsprogs        mke2fs, e2fsck and debugfs: images made and checked by the real tools
#   uml-utilities    uml_mkcow, uml_moo, uml_mconsole: UML's own clients, for compatibility
#   gdb strace       real debugger and tracer clients (the gdb stub, ptrace in the guest, --trace)
#   iproute2         ip, to check the guest's interface list against the host's
#   util-linux mount unshare and mount: mounts in the guest, and the host's runs that
#                    compare with them (in a private mount namespace)
set -eu

cd "$(dirname "$0")/.."

PACKAGES="busybox-static python3.11 bash gcc libc6-dev libc-bin coreutils procps e2fsprogs uml-utilities gdb strace iproute2 util-linux mount"

missing=""
for p in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done

if [ -n "$missing" ]; then
    echo "install-test-deps: installing$missing" >&2
    if [ "$(id -u)" -ne 0 ]; then
        echo "install-test-deps: need root to install:$missing" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    # Update the package lists only when there are none, or when the install fails
    # because they are stale.
    if [ -z "$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v -e '^lock$' -e '^partial$' -e '^auxfiles$')" ]; then
        apt-get update -qq
    fi
    # shellcheck disable=SC2086
    if ! apt-get install -y -qq --no-install-recommends $missing >/dev/null; then
        apt-get update -qq
        # shellcheck disable=SC2086
        apt-get install -y -qq --no-install-recommends $missing >/dev/null
    fi
fi

if [ ! -x /bin/busybox ]; then
    echo "install-test-deps: /bin/busybox missing after installing busybox-static" >&2
    exit 1
fi

python3 -m pip install -q --disable-pip-version-check -e '.[test]'
