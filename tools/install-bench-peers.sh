#!/bin/sh
# Install the peers the benchmark compares umlpy with (run as root on Debian 12):
#   user-mode-linux  linux.uml, booted with the host's / as a hostfs root
#   runsc            gVisor (`runsc --rootless do`; Debian's build has the ptrace platform)
#   proot            PRoot
#   util-linux       taskset, to pin the peers to one CPU
#   busybox-static   poweroff -f for UML's init script
set -eu
PACKAGES="user-mode-linux runsc proot util-linux busybox-static"
missing=""
for p in $PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "install-bench-peers: need root to install:$missing" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null || {
        apt-get update -qq
        # shellcheck disable=SC2086
        apt-get install -y -qq --no-install-recommends $missing >/dev/null
    }
fi
