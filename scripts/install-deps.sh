#!/usr/bin/env bash
# Installs what the test suite needs on Debian 12. Run as root; idempotent.
# Debian's rpcbind package is only wanted for rpcinfo and as the reference
# daemon: /usr/sbin/policy-rc.d keeps its service (and any other) from
# starting when the package is installed.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps.sh: run as root (apt-get, network namespaces)" >&2
    exit 1
fi

# 1. No package service may start on this host (policy-rc.d: 101 = action forbidden).
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\n# installed by rpcbind-rs scripts/install-deps.sh: no service starts on install\nexit 101\n' \
        > /usr/sbin/policy-rc.d
    chmod 0755 /usr/sbin/policy-rc.d
    echo "install-deps.sh: wrote /usr/sbin/policy-rc.d (exit 101)"
fi

# 2. Packages: install only what is missing.
packages=(rpcbind libtirpc-dev gcc pkg-config nfs-common tshark iproute2 util-linux procps strace)
missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "install-deps.sh: installing ${missing[*]}"
    # tshark asks whether non-root users may capture; answer no, non-interactively.
    echo 'wireshark-common wireshark-common/install-setuid boolean false' | debconf-set-selections
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
else
    echo "install-deps.sh: all packages present (${packages[*]})"
fi

# 3. No rpcbind may run in the host's network namespace (tests use their own).
host_netns=$(readlink /proc/$$/ns/net)
for pid in $(pgrep -x rpcbind || true); do
    if [ "$(readlink "/proc/$pid/ns/net" 2>/dev/null || true)" = "$host_netns" ]; then
        echo "install-deps.sh: an rpcbind (pid $pid) runs on the host; stopping its service" >&2
        if [ -d /run/systemd/system ]; then
            systemctl stop rpcbind.socket rpcbind.service || true
        else
            echo "install-deps.sh: stop it by hand (systemd is not running here): kill $pid" >&2
            exit 1
        fi
    fi
done
exit 0
