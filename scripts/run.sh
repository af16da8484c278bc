#!/usr/bin/env bash
# Builds the daemon and starts it in the foreground on this host's port 111.
# Run as root on Debian 12. Extra arguments go to rpcbind (e.g. -l to log calls).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "run.sh: run as root (rpcbind binds port 111 and /run/rpcbind.sock)" >&2
    exit 1
fi
if ! command -v cargo >/dev/null 2>&1; then
    echo "run.sh: cargo not found; installing Debian's toolchain" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq cargo gcc
fi
cargo build --release -p rpcbind

# A host rpcbind holds port 111 and /run/rpcbind.lock: stop it the way an admin would.
if pgrep -x rpcbind >/dev/null 2>&1 || ss -Hlntu 'sport = :111' | grep -q .; then
    cat >&2 <<'MSG'
run.sh: another rpcbind is running on this host. Stop it first:
    systemctl stop rpcbind.socket rpcbind.service
(and `systemctl disable rpcbind.socket rpcbind.service` to keep it from coming back),
then run this command again.
MSG
    exit 1
fi
exec ./target/release/rpcbind -f "$@"
