#!/bin/sh
# Capture golden wire vectors from Debian's C rpcbind for the proto crate.
#
# usage: scripts/capture-golden.sh [OUTDIR]      (as root; default proto/tests/golden)
#
# For each session (rpcinfo, handmade, libtirpc, local): a fresh network +
# mount namespace (lo up, 192.0.2.1/24 on lo as a non-loopback local
# address, tmpfs on /run), a FRESH `/usr/sbin/rpcbind -f`, dumpcap on lo
# (port 111), a fixed sequence of clients, then the request/reply pairs in
# the order the daemon saw them are written to OUTDIR/<session>.txt
# (format: README.md there). The local session traces the daemon with
# strace instead (the local socket is invisible to dumpcap) and is written
# to OUTDIR/local/local.txt.
# Needs: rpcbind, rpcinfo, dumpcap (tshark package), strace, setpriv,
# python3, gcc + libtirpc-dev (for tests/c/rpcbclient.c, rpcserver.c).
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SESSIONS="rpcinfo handmade libtirpc local"

if [ "${1:-}" = "--inside" ]; then
    SESSION=$2 OUT=$3 WORK=$4
else
    OUT=$(cd "${1:-$ROOT/proto/tests/golden}" && pwd)
    [ "$(id -u)" = 0 ] || { echo "capture-golden: must run as root" >&2; exit 1; }
    for t in /usr/sbin/rpcbind rpcinfo dumpcap python3 gcc; do
        command -v "$t" >/dev/null || { echo "capture-golden: $t missing" >&2; exit 1; }
    done
    WORK=$(mktemp -d /tmp/capture-golden.XXXXXX)
    trap 'rm -rf "$WORK"' EXIT
    for p in rpcbclient rpcserver; do
        gcc -Wall -O1 -I/usr/include/tirpc -o "$WORK/$p" "$ROOT/tests/c/$p.c" -ltirpc
    done
    chmod 755 "$WORK" "$WORK/rpcserver" "$WORK/rpcbclient"
    for s in $SESSIONS; do
        echo "capture-golden: session $s" >&2
        timeout 120 unshare -n -m "$0" --inside "$s" "$OUT" "$WORK"
    done
    exit 0
fi

# ---- inside a fresh namespace ----------------------------------------------
ip link set lo up
ip addr add 192.0.2.1/24 dev lo
mount -t tmpfs none /run
PCAP=$WORK/$SESSION.pcap
CMDS=$WORK/$SESSION.cmds
: >"$CMDS"

dumpcap -q -P -i lo -f "port 111" -w "$PCAP" 2>"$WORK/dumpcap.err" &
DUMPCAP=$!
for _ in 1 2 3 4 5 6 7 8 9 10; do
    grep -q "Capturing on" "$WORK/dumpcap.err" 2>/dev/null && break
    sleep 0.3
done
sleep 0.5
if [ "$SESSION" = local ]; then
    # The local socket is invisible to dumpcap: trace the daemon's syscalls.
    strace -q -ttt -xx -s 65536 -o "$WORK/local.strace" \
        -e trace=accept,accept4,read,write,close,getsockopt,recvmsg,recvfrom \
        /usr/sbin/rpcbind -f &
else
    /usr/sbin/rpcbind -f &
fi
RPCBIND=$!
DAEMON=$RPCBIND
if [ "$SESSION" = local ]; then
    sleep 0.3
    DAEMON=$(pgrep -P "$RPCBIND" -x rpcbind)   # the tracee, not strace
fi
# whatever happens, leave nothing running behind this session
trap 'kill "$DAEMON" "$DUMPCAP" 2>/dev/null || true' EXIT
sleep 0.5

# run CMD...: record the command line and its output as provenance comments
run() {
    echo "# cmd: $*" | sed "s#$WORK/##" >>"$CMDS"
    "$@" 2>&1 | LC_ALL=C sed 's/[^[:print:]	]/?/g; s/^/#   | /' >>"$CMDS" || true
}

write_sender() {
cat >"$WORK/sender.py" <<'PY'
"""Hand-made requests, each sent once, in a fixed order (xids are fixed)."""
import socket, struct, sys

def u32(*v): return b''.join(struct.pack('>I', x & 0xffffffff) for x in v)
def s(x):
    b = x.encode() if isinstance(x, str) else x
    return u32(len(b)) + b + b'\0' * ((4 - len(b) % 4) % 4)
XID = [0x60d00000]
def call(prog, vers, proc, args=b'', rpcvers=2, cred=u32(0, 0), mtype=0):
    XID[0] += 1
    return u32(XID[0], mtype, rpcvers, prog, vers, proc) + cred + u32(0, 0) + args
def auth_sys(uid, gid):
    body = u32(1234) + s('golden') + u32(uid, gid, 1, gid)
    return u32(1) + s(body)
def rpcb(p, v, n, a, o): return u32(p, v) + s(n) + s(a) + s(o)
def netbuf(b): return u32(len(b)) + s(b)
def sin(ip, port):
    return struct.pack('<H', 2) + struct.pack('>H', port) + socket.inet_aton(ip) + b'\0' * 8
def sin6(ip, port):
    return (struct.pack('<H', 10) + struct.pack('>HI', port, 0)
            + socket.inet_pton(socket.AF_INET6, ip) + u32(0))

def udp(msg, dst='127.0.0.1', src=None, sport=0):
    fam = socket.AF_INET6 if ':' in dst else socket.AF_INET
    so = socket.socket(fam, socket.SOCK_DGRAM)
    so.bind((src or dst, sport))
    so.settimeout(0.5)
    so.sendto(msg, (dst, 111))
    try: so.recv(65536)
    except socket.timeout: pass
    so.close()

def tcp(records, dst='127.0.0.1', sport=0):
    """records: list of lists of fragments; each record gets one reply."""
    fam = socket.AF_INET6 if ':' in dst else socket.AF_INET
    so = socket.socket(fam, socket.SOCK_STREAM)
    so.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
    so.bind((dst, sport))
    so.settimeout(1)
    so.connect((dst, 111))
    for frags in records:
        try:
            for i, f in enumerate(frags):
                last = 0x80000000 if i == len(frags) - 1 else 0
                so.sendall(u32(last | len(f)) + f)
            hdr = so.recv(4)
            n = struct.unpack('>I', hdr)[0] & 0x7fffffff
            got = b''
            while len(got) < n:
                got += so.recv(n - len(got))
        except (OSError, struct.error):
            print('tcp: connection ended by the daemon', file=sys.stderr)
            break
    so.close()

P, R = 100000, 100000
T = 0x20000500
steps = [
    # well-formed basics, AUTH_SYS credentials
    lambda: udp(call(P, 2, 0, cred=auth_sys(0, 0))),
    lambda: udp(call(P, 4, 0, cred=auth_sys(1000, 1000))),
    # unknown procedures: PMAP v2 has 0..5, RPCBIND v3 0..8, v4 0..12
    lambda: udp(call(P, 2, 6)),
    lambda: udp(call(P, 3, 9)),
    lambda: udp(call(P, 4, 13)),
    lambda: udp(call(P, 3, 12)),
    # wrong program version, unknown program
    lambda: udp(call(P, 1, 0)),
    lambda: udp(call(P, 5, 3, rpcb(P, 2, 'udp', '', ''))),
    lambda: udp(call(100099, 1, 0)),
    # RPC version 3, a reply sent to the daemon, a truncated header
    lambda: udp(call(P, 2, 0, rpcvers=3)),
    lambda: udp(call(P, 2, 0, mtype=1)),
    lambda: udp(u32(0x60d0ffff, 0, 2)),
    # garbage arguments: truncated GETPORT, absurd string length in GETADDR
    lambda: udp(call(P, 2, 3, u32(P, 2))),
    lambda: udp(call(P, 4, 3, u32(P, 4, 0xffffffff))),
    lambda: udp(call(P, 3, 3, u32(P, 3) + s('udp'))),
    # SET/UNSET over UDP from a loopback address: unprivileged and privileged port
    lambda: udp(call(P, 2, 1, u32(T, 1, 17, 2000))),
    lambda: udp(call(P, 2, 1, u32(T, 1, 17, 2000))),
    lambda: udp(call(P, 2, 1, u32(T, 1, 17, 2001))),
    lambda: udp(call(P, 2, 1, u32(T, 2, 6, 2002)), sport=700),
    lambda: udp(call(P, 4, 1, rpcb(T + 1, 1, 'udp6', '::1.8.1', 'ignored')), sport=701),
    lambda: udp(call(P, 3, 1, rpcb(T + 1, 2, 'tcp', '0.0.0.0.8.2', 'ignored'))),
    lambda: udp(call(P, 4, 1, rpcb(T + 1, 1, 'udp6', '::1.8.1', 'x')), dst='::1', sport=702),
    # SET/UNSET from a non-loopback address: AUTH_TOOWEAK
    lambda: udp(call(P, 4, 1, rpcb(T + 2, 1, 'udp', '192.0.2.1.8.3', 'x')), dst='192.0.2.1'),
    lambda: udp(call(P, 2, 1, u32(T + 2, 1, 17, 2003)), dst='192.0.2.1', sport=703),
    lambda: udp(call(P, 2, 2, u32(T, 1, 17, 0)), dst='192.0.2.1'),
    # lookups
    lambda: udp(call(P, 2, 3, u32(T, 1, 17, 0))),
    lambda: udp(call(P, 2, 3, u32(T, 7, 17, 0))),
    lambda: udp(call(P, 2, 3, u32(T, 2, 17, 0))),
    lambda: udp(call(P, 2, 3, u32(T, 2, 6, 0))),
    lambda: udp(call(P, 3, 3, rpcb(T + 1, 2, 'tcp', '', ''))),
    lambda: udp(call(P, 4, 3, rpcb(T + 1, 2, 'tcp', '', ''))),
    lambda: udp(call(P, 4, 9, rpcb(T + 1, 2, 'udp', '', ''))),
    lambda: udp(call(P, 4, 9, rpcb(T + 1, 7, 'udp', '', ''))),
    lambda: udp(call(P, 4, 11, rpcb(T + 1, 1, 'udp', '', ''))),
    lambda: udp(call(P, 4, 11, rpcb(P, 4, 'udp', '', ''))),
    lambda: udp(call(P, 4, 3, rpcb(T + 1, 1, 'udp6', '', '')), dst='192.0.2.1'),
    lambda: udp(call(P, 4, 3, rpcb(P, 4, 'tcp', '', '')), dst='192.0.2.1'),
    lambda: udp(call(P, 4, 3, rpcb(P, 4, 'udp', '', '')), dst='::1'),
    lambda: udp(call(P, 2, 3, u32(P, 2, 17, 0)), dst='::1'),
    lambda: udp(call(P, 2, 4)),
    lambda: udp(call(P, 3, 4)),
    lambda: udp(call(P, 4, 4)),
    # time and address conversion
    lambda: udp(call(P, 3, 6)),
    lambda: udp(call(P, 4, 6)),
    lambda: udp(call(P, 3, 7, s('127.0.0.1.3.232'))),
    lambda: udp(call(P, 4, 7, s('::1.3.232')), dst='::1'),
    lambda: udp(call(P, 4, 7, s('not-an-address'))),
    lambda: udp(call(P, 3, 8, netbuf(sin('127.0.0.1', 1000)))),
    lambda: udp(call(P, 4, 8, netbuf(sin6('::1', 1000))), dst='::1'),
    lambda: udp(call(P, 4, 8, netbuf(b'\x02\x00\x03'))),
    # remote calls (the daemon runs without -r)
    lambda: udp(call(P, 2, 5, u32(T, 1, 0) + s(b''))),
    lambda: udp(call(P, 2, 5, u32(100099, 1, 0) + s(b''))),
    lambda: udp(call(P, 3, 5, u32(T + 1, 1, 0) + s(b''))),
    lambda: udp(call(P, 4, 5, u32(T + 1, 1, 0) + s(b''))),
    lambda: udp(call(P, 4, 10, u32(T + 1, 1, 0) + s(b''))),
    # TCP: one connection, several records (multi-fragment records are left
    # out: the C daemon closes the connection on them, see README.md)
    lambda: tcp([[call(P, 2, 0)],
                 [call(P, 2, 3, u32(T, 1, 17, 0))],
                 [call(P, 4, 3, rpcb(T + 1, 2, 'tcp', '', ''))],
                 [call(P, 4, 4)],
                 [call(P, 2, 99)]]),
    lambda: tcp([[call(P, 4, 1, rpcb(T + 3, 1, 'tcp', '127.0.0.1.8.4', 'x'))],
                 [call(P, 4, 2, rpcb(T, 1, '', '', ''))],
                 [call(P, 2, 2, u32(T + 1, 2, 0, 0))]], sport=704),
    lambda: tcp([[call(P, 4, 3, rpcb(T + 1, 1, 'udp6', '', ''))],
                 [call(P, 3, 4)]], dst='::1'),
    lambda: tcp([[call(P, 2, 0, rpcvers=3)]], dst='192.0.2.1'),
    # UNSET by a non-owner (unprivileged port, owner "unknown" vs "superuser")
    lambda: udp(call(P, 4, 2, rpcb(T + 3, 1, '', '', 'x'))),
    lambda: udp(call(P, 4, 4)),
    # counters last
    lambda: udp(call(P, 4, 12)),
    lambda: tcp([[call(P, 4, 12)]], dst='::1'),
]
for f in steps:
    f()
PY
}

# ---- the local session: every client talks over /run/rpcbind.sock --------
# Each client runs in a time window (recorded with its uid) so that the
# extractor can give every accepted connection its peer uid.
now() { date +%s.%N; }
as_uid() {
    if [ "$1" = 0 ]; then shift; "$@"; else
        u=$1; shift; setpriv --reuid="$u" --regid="$u" --clear-groups "$@"; fi
}
lrun() {
    uid=$1; shift
    echo "# cmd (uid $uid): $*" | sed "s#$WORK/##" >>"$CMDS"
    s=$(now)
    as_uid "$uid" "$@" 2>&1 | LC_ALL=C sed 's/[^[:print:]	]/?/g; s/^/#   | /' >>"$CMDS" || true
    echo "$s $(now) $uid" >>"$WORK/local.windows"
}
# lserver UID NAME ARGS...: start rpcserver, wait until it has registered
lserver() {
    uid=$1 name=$2; shift 2
    echo "# start (uid $uid): rpcserver $* &" >>"$CMDS"
    : >"$WORK/$name.out"
    s=$(now)
    # no shell function here: $! must be the server itself
    setpriv --reuid="$uid" --regid="$uid" --clear-groups \
        "$WORK/rpcserver" "$@" >"$WORK/$name.out" 2>&1 &
    echo $! >"$WORK/$name.pid"
    for _ in $(seq 100); do grep -q '^ready' "$WORK/$name.out" && break; sleep 0.05; done
    echo "$s $(now) $uid" >>"$WORK/local.windows"
}
lstop() {
    uid=$1 name=$2
    s=$(now)
    kill "$(cat "$WORK/$name.pid")"; wait "$(cat "$WORK/$name.pid")" || true
    echo "$s $(now) $uid" >>"$WORK/local.windows"
    echo "# SIGTERM (uid $uid) to $name, its whole output:" >>"$CMDS"
    LC_ALL=C sed 's/[^[:print:]	]/?/g; s/^/#   | /' "$WORK/$name.out" >>"$CMDS"
}
local_session() {
    C=$WORK/rpcbclient
    : >"$WORK/local.windows"
    lrun 0 rpcinfo
    lrun 0 rpcinfo -s
    lrun 0 rpcinfo -m
    lserver 0 srv-root create netpath 0x20000099 2
    lserver 65534 srv-nobody tp udp 0x2000009a 1
    lrun 0 rpcinfo
    lrun 65534 "$C" unset 0x20000099 1 all
    lrun 65534 "$C" set 0x20000099 3 udp 127.0.0.1.8.1
    lrun 65534 "$C" set 0x2000009b 1 tcp6 ::1.8.2
    lrun 1000 "$C" unset 0x2000009b 1 tcp6
    lrun 0 "$C" unset 0x2000009b 1 tcp6
    lrun 0 "$C" uaddr2taddr udp 127.0.0.1.3.232
    lrun 0 "$C" uaddr2taddr tcp6 ::1.3.232
    lrun 0 "$C" uaddr2taddr udp not-an-address
    lrun 0 "$C" taddr2uaddr udp 127.0.0.1.3.232
    lrun 0 "$C" taddr2uaddr local /run/rpcbind.sock
    lrun 0 "$C" pmap_set 0x20000101 1 tcp 2000
    lrun 65534 "$C" pmap_unset 0x20000101 1
    lrun 0 rpcinfo -s
    lrun 65534 rpcinfo -d 536871169 1
    lrun 0 rpcinfo -d 536871169 1
    lstop 0 srv-root
    lstop 65534 srv-nobody
    lrun 0 rpcinfo
    lrun 0 rpcinfo -m
}

case $SESSION in
rpcinfo)
    run rpcinfo -T udp 127.0.0.1 100000 2
    run rpcinfo -T udp 127.0.0.1 100000 3
    run rpcinfo -T udp 127.0.0.1 100000 4
    run rpcinfo -T tcp 127.0.0.1 100000 2
    run rpcinfo -T tcp 127.0.0.1 100000 3
    run rpcinfo -T tcp 127.0.0.1 100000 4
    run rpcinfo -T udp6 ::1 100000 3
    run rpcinfo -T tcp6 ::1 100000 4
    run rpcinfo -T udp 127.0.0.1 100000 7
    run rpcinfo -T tcp6 ::1 100000 7
    run rpcinfo -T udp 127.0.0.1 100099 1
    run rpcinfo -T tcp 127.0.0.1 100003
    run rpcinfo -u 127.0.0.1 100000 2
    run rpcinfo -t 127.0.0.1 100000
    run rpcinfo -u 127.0.0.1 100099
    run rpcinfo -n 111 -u 127.0.0.1 100000 2
    run rpcinfo -a 127.0.0.1.0.111 -T udp 100000 4
    run rpcinfo -p 127.0.0.1
    run rpcinfo -s 127.0.0.1
    run rpcinfo 127.0.0.1
    run rpcinfo -T udp6 ::1
    run rpcinfo -s -T tcp6 ::1
    run rpcinfo -l 127.0.0.1 100000 4
    run rpcinfo -l -T udp6 ::1 100000 3
    run rpcinfo -m 127.0.0.1
    run rpcinfo -m -T tcp6 ::1
    ;;
handmade)
    write_sender
    echo "# cmd: python3 sender (the 'steps' list in scripts/capture-golden.sh)" >>"$CMDS"
    python3 "$WORK/sender.py" 2>&1 | LC_ALL=C sed 's/[^[:print:]	]/?/g; s/^/#   | /' >>"$CMDS"
    ;;
libtirpc)
    C=$WORK/rpcbclient
    run "$C" gettime 127.0.0.1
    run "$C" getaddr 100000 4 udp 127.0.0.1
    run "$C" getaddr 100000 3 tcp 127.0.0.1
    run "$C" getaddr 100000 4 udp6 ::1
    run "$C" getaddr 100000 3 tcp6 ::1
    run "$C" getaddr 100099 1 udp 127.0.0.1
    run "$C" getmaps 127.0.0.1 udp
    run "$C" getmaps 127.0.0.1 tcp
    run "$C" getmaps ::1 udp6
    run "$C" getmaps ::1 tcp6
    run "$C" pmap_getport 127.0.0.1 100000 2 udp
    run "$C" pmap_getport 127.0.0.1 100000 2 tcp
    run "$C" pmap_getport 127.0.0.1 100099 1 udp
    run "$C" pmap_getmaps 127.0.0.1
    run "$C" call 127.0.0.1 100099 1 udp
    run "$C" call ::1 100000 9 tcp6
    run rpcinfo -m 127.0.0.1
    ;;
local)
    local_session
    ;;
*) echo "unknown session $SESSION" >&2; exit 1 ;;
esac

sleep 0.5
kill "$DUMPCAP"; wait "$DUMPCAP" || true
kill "$DAEMON"; wait "$RPCBIND" || true

cat >"$WORK/extract.py" <<'PY'
"""Pair requests to port 111 with the daemon's replies, in arrival order."""
import struct, sys, ipaddress

def packets(path):
    data = open(path, 'rb').read()
    magic = struct.unpack('<I', data[:4])[0]
    e = '<' if magic in (0xa1b2c3d4, 0xa1b23c4d) else '>'
    linktype = struct.unpack(e + 'I', data[20:24])[0]
    if linktype != 1:
        sys.exit('unexpected link type %d' % linktype)
    off = 24
    while off + 16 <= len(data):
        incl = struct.unpack(e + 'I', data[off + 8:off + 12])[0]
        yield data[off + 16 + 14:off + 16 + incl]  # skip Ethernet header
        off += 16 + incl

def parse(pkt):
    """-> (proto, src, dst, sport, dport, payload, tcp_flags, seq)"""
    if pkt[0] >> 4 == 4:
        ihl = (pkt[0] & 15) * 4
        total = struct.unpack('>H', pkt[2:4])[0]
        proto, src, dst = pkt[9], pkt[12:16], pkt[16:20]
        body, v6 = pkt[ihl:total], False
    else:
        plen = struct.unpack('>H', pkt[4:6])[0]
        proto, src, dst = pkt[6], pkt[8:24], pkt[24:40]
        body, v6 = pkt[40:40 + plen], True
    sport, dport = struct.unpack('>HH', body[:4])
    a = lambda b: str(ipaddress.ip_address(bytes(b)))
    if proto == 17:
        return ('udp6' if v6 else 'udp', a(src), a(dst), sport, dport, body[8:], 0, 0)
    seq = struct.unpack('>I', body[4:8])[0]
    doff = (body[12] >> 4) * 4
    return ('tcp6' if v6 else 'tcp', a(src), a(dst), sport, dport, body[doff:], body[13], seq)

def ep(ip, port): return ('[%s]:%d' if ':' in ip else '%s:%d') % (ip, port)

events = []          # (kind, transport, peer, local, message)
streams = {}         # (transport, src, sport, dst, dport) -> [next_seq, buffer, record]
for pkt in packets(sys.argv[1]):
    t, src, dst, sp, dp, payload, flags, seq = parse(pkt)
    if dp == 111:
        kind, peer, local = '>', ep(src, sp), ep(dst, dp)
    elif sp == 111:
        kind, peer, local = '<', ep(dst, dp), ep(src, sp)
    else:
        continue
    if t.startswith('udp'):
        events.append((kind, t, peer, local, payload))
        continue
    key = (t, src, sp, dst, dp)
    if flags & 0x02:                      # SYN: sequence starts after it
        streams[key] = [seq + 1, b'', b'']
        continue
    st = streams.get(key)
    if st is None or not payload:
        continue
    if seq != st[0]:                      # retransmission or gap: ignore
        continue
    st[0] = (seq + len(payload)) & 0xffffffff
    st[1] += payload
    while len(st[1]) >= 4:                # RFC 5531 sec. 11 record marking
        hdr = struct.unpack('>I', st[1][:4])[0]
        n = hdr & 0x7fffffff
        if len(st[1]) < 4 + n:
            break
        st[2] += st[1][4:4 + n]
        st[1] = st[1][4 + n:]
        if hdr & 0x80000000:
            events.append((kind, t, peer, local, st[2]))
            st[2] = b''

out, ctx, used = [], None, set()
for i, (kind, t, peer, local, msg) in enumerate(events):
    if kind != '>':
        continue
    reply = None
    for j in range(i + 1, len(events)):
        k2, t2, p2, l2, m2 = events[j]
        if k2 == '<' and j not in used and (t2, p2, l2) == (t, peer, local) and m2[:4] == msg[:4]:
            reply, _ = m2, used.add(j)
            break
    if (t, peer, local) != ctx:
        ctx = (t, peer, local)
        out.append('@ transport=%s peer=%s local=%s' % ctx)
    out.append('> ' + msg.hex())
    head = struct.unpack('>6I', msg[:24]) if len(msg) >= 24 else None
    gettime = head is not None and head[1] == 0 and head[3] == 100000 and head[4] in (3, 4) and head[5] == 6
    if reply is None:
        out.append('< -')
    elif gettime:
        out.append('< ?')
    else:
        out.append('< ' + reply.hex())
orphans = [e for j, e in enumerate(events) if e[0] == '<' and j not in used]
if orphans:
    sys.exit('replies without a request: %d' % len(orphans))
print('\n'.join(out))
PY

cat >"$WORK/extract-local.py" <<'PY'
"""Requests and replies on the daemon's local socket, from its strace."""
import re, struct, sys

LINE = re.compile(r'^(\d+\.\d+) (\w+)\((.*)\) += (-?\d+)')
DATA = re.compile(r'^(\d+), "((?:\\x[0-9a-f]{2})*)"')
CRED = re.compile(r'SO_PEERCRED, \{pid=\d+, uid=(\d+)')
windows = [tuple(float(x) for x in l.split()) for l in open(sys.argv[2]) if l.strip()]

def uid_at(t):
    for start, end, uid in windows:
        if start <= t <= end:
            return int(uid)
    sys.exit('connection at %.6f outside every client window' % t)

conns = {}    # fd -> dict(uid, buf in/out, events)
events = []   # (kind, uid, message)
for line in open(sys.argv[1]):
    m = LINE.match(line)
    if not m:
        continue
    t, call, args, ret = float(m.group(1)), m.group(2), m.group(3), int(m.group(4))
    if call in ('recvmsg', 'recvfrom') and ret >= 0 and 'sa_family=AF_INET' in args:
        sys.exit('IP traffic in the local session: ' + line)
    if call.startswith('accept') and ret >= 0:
        if 'AF_UNIX' not in args:
            sys.exit('non-local connection in the local session: ' + line)
        conns[ret] = {'uid': uid_at(t), '>': b'', '<': b'', 'msg': {'>': b'', '<': b''}}
        continue
    fd = int(args.split(',')[0]) if args[:1].isdigit() else -1
    c = conns.get(fd)
    if c is None:
        continue
    if call == 'close':
        del conns[fd]
    elif call == 'getsockopt':
        cred = CRED.search(args)
        if cred and int(cred.group(1)) != c['uid']:
            sys.exit('uid %s from SO_PEERCRED, window says %d' % (cred.group(1), c['uid']))
    elif call in ('read', 'write') and ret > 0:
        d = DATA.match(args)
        kind = '>' if call == 'read' else '<'
        c[kind] += bytes.fromhex(d.group(2).replace('\\x', ''))[:ret]
        while len(c[kind]) >= 4:            # RFC 5531 sec. 11 record marking
            hdr = struct.unpack('>I', c[kind][:4])[0]
            n = hdr & 0x7fffffff
            if len(c[kind]) < 4 + n:
                break
            c['msg'][kind] += c[kind][4:4 + n]
            c[kind] = c[kind][4 + n:]
            if hdr & 0x80000000:
                events.append((kind, c['uid'], fd, c['msg'][kind]))
                c['msg'][kind] = b''

out, ctx, used = [], None, set()
for i, (kind, uid, fd, msg) in enumerate(events):
    if kind != '>':
        continue
    reply = None
    for j in range(i + 1, len(events)):
        k2, u2, f2, m2 = events[j]
        if k2 == '<' and j not in used and f2 == fd and m2[:4] == msg[:4]:
            reply = m2
            used.add(j)
            break
    if uid != ctx:
        ctx = uid
        out.append('@ transport=local uid=%d' % uid)
    out.append('> ' + msg.hex())
    out.append('< ' + (reply.hex() if reply is not None else '-'))
print('\n'.join(out))
PY

if [ "$SESSION" = local ]; then
    [ -z "$(python3 "$WORK/extract.py" "$PCAP")" ] ||
        { echo "capture-golden: IP traffic in the local session" >&2; exit 1; }
    mkdir -p "$OUT/local"
    TXT=$OUT/local/local.txt
    EXTRACT="python3 $WORK/extract-local.py $WORK/local.strace $WORK/local.windows"
else
    TXT=$OUT/$SESSION.txt
    EXTRACT="python3 $WORK/extract.py $PCAP"
fi
{
    echo "# session: $SESSION -- captured by scripts/capture-golden.sh from a fresh"
    echo "# /usr/sbin/rpcbind -f ($(dpkg-query -W -f='${Package} ${Version}' rpcbind),"
    echo "# $(dpkg-query -W -f='${Package} ${Version}' libtirpc3), $(date -u +%Y-%m-%d), kernel $(uname -r))."
    echo "# Clients, in order, with their output:"
    cat "$CMDS"
    $EXTRACT
} >"$TXT"
echo "capture-golden: $TXT: $(grep -c '^>' "$TXT") exchanges" >&2
