# Captures proto/tests/engine_vectors/local.txt from a fresh C rpcbind. Run as root:
#   unshare -n -m sh -c 'ip link set lo up; mount -t tmpfs none /run;
#     /usr/sbin/rpcbind -f & sleep 0.3; python3 capture.py > local.txt; kill $!'
# and for insecure.txt: add 192.0.2.1/24 to lo, run rpcbind -f -i, and
#   python3 capture.py insecure > insecure.txt
# and for udp_size.txt as for local.txt with: python3 capture.py udp_size
import socket, struct, os, sys
def call(xid, prog, vers, proc, args=b'', rpcvers=2, cred=(0, b''), mtype=0):
    h = struct.pack('>IIIIII', xid, mtype, rpcvers, prog, vers, proc)
    h += struct.pack('>II', cred[0], len(cred[1])) + cred[1] + b'\0' * ((4 - len(cred[1]) % 4) % 4)
    h += struct.pack('>II', 0, 0)
    return h + args
def s(x):
    b = x.encode(); return struct.pack('>I', len(b)) + b + b'\0' * ((4 - len(b) % 4) % 4)
P = 100000
out = []
def rpcb(prog, vers, netid, addr, owner=''):
    return struct.pack('>II', prog, vers) + s(netid) + s(addr) + s(owner)
def pmap(prog, vers, prot, port):
    return struct.pack('>IIII', prog, vers, prot, port)
def recv_exact(so, n):
    d = b''
    while len(d) < n:
        chunk = so.recv(n - len(d))
        if not chunk:
            raise EOFError
        d += chunk
    return d
def read_record(so):
    """One RPC record, reassembled from its fragments (RFC 5531 section 11)."""
    data = b''
    while True:
        mark = struct.unpack('>I', recv_exact(so, 4))[0]
        data += recv_exact(so, mark & 0x7fffffff)
        if mark & 0x80000000:
            return data
def local_send(msg, uid):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        if uid != 0:
            os.setgid(uid); os.setuid(uid)
        so = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); so.settimeout(0.5)
        so.connect('/run/rpcbind.sock')
        so.sendall(struct.pack('>I', 0x80000000 | len(msg)) + msg)
        try:
            res = read_record(so).hex()
        except Exception:
            res = '-'
        os.write(w, res.encode()); os._exit(0)
    os.close(w)
    data = b''
    while True:
        c = os.read(r, 65536)
        if not c: break
        data += c
    os.waitpid(pid, 0)
    return data.decode()
def ip_send(t, msg):
    fam = socket.AF_INET6 if t.endswith('6') else socket.AF_INET
    host = '::1' if fam == socket.AF_INET6 else '127.0.0.1'
    src = '::1' if fam == socket.AF_INET6 else SRC4
    typ = socket.SOCK_DGRAM if t.startswith('udp') else socket.SOCK_STREAM
    so = socket.socket(fam, typ); so.settimeout(0.5)
    so.bind((src, 0))
    if typ == socket.SOCK_DGRAM:
        so.sendto(msg, (host, 111))
    else:
        so.connect((host, 111)); so.sendall(struct.pack('>I', 0x80000000 | len(msg)) + msg)
    peer = so.getsockname()
    try:
        if typ == socket.SOCK_DGRAM:
            res = so.recv(65536).hex()
        else:
            res = read_record(so).hex()
    except Exception:
        res = '-'
    fmt = (lambda a: '[%s]:%d' % (a[0], a[1])) if fam == socket.AF_INET6 else (lambda a: '%s:%d' % a)
    return fmt(peer[:2]), fmt((host, 111)), res
def step(comment, t, msg, uid=0):
    out.append('# ' + comment)
    if t == 'local':
        res = local_send(msg, uid)
        out.append('@ transport=local uid=%d' % uid)
    else:
        peer, local, res = ip_send(t, msg)
        out.append('@ transport=%s peer=%s local=%s' % (t, peer, local))
    out.append('> ' + msg.hex()); out.append('< ' + res)

def insecure_session():
    """The session of insecure.txt: rpcbind -f -i, callers at 192.0.2.1."""
    global SRC4
    SRC4 = '192.0.2.1'
    step('v3 SET from 192.0.2.1 with -i: allowed, owner unknown', 'udp', c(P,3,1, rpcb(300200,1,'udp','0.0.0.0.20.1')))
    step('PMAP SET from 192.0.2.1 with -i', 'tcp', c(P,2,1, pmap(300201,1,6,5000)))
    step('v4 UNSET from 192.0.2.1 of an unknown-owned entry: TRUE (same owner string)', 'udp', c(P,4,2, rpcb(300200,1,'udp','')))
    step('INDIRECT to rpcbind GETPORT with -i: allowed, then SYSTEM_ERR (no forwarding)', 'udp', c(P,4,10, struct.pack('>IIII',100000,2,3,0)))
    step('PMAP CALLIT to rpcbind DUMP with -i: silent', 'udp', c(P,2,5, struct.pack('>IIII',100000,2,4,0)))
    step('v3 DUMP', 'tcp', c(P,3,4))
    step('v4 GETSTAT', 'udp', c(P,4,12))
    print('# session: engine_vectors/insecure.txt, captured by proto/tests/engine_vectors/capture.py')
    print('# insecure, from a fresh /usr/sbin/rpcbind -f -i (Debian rpcbind 1.2.6-6+b1, libtirpc3')
    print('# 1.3.3+ds-1) in a private network and mount namespace with lo up and 192.0.2.1/24')
    print('# added to lo, 2026-11-23. IPv4 requests come from 192.0.2.1 to 127.0.0.1.')
    print('# engine-config: insecure')
    print('\n'.join(out))

def udp_size_session():
    """The session of udp_size.txt: replies over 8800 bytes on UDP."""
    for i in range(450):
        step('v3 SET filler %d' % i, 'local', c(P,3,1, rpcb(300300 + i,1,'udp','0.0.0.0.30.%d' % (i % 256))))
    step('v3 DUMP over udp: over 8800 bytes', 'udp', c(P,3,4))
    step('v4 DUMP over udp: over 8800 bytes', 'udp', c(P,4,4))
    step('PMAP DUMP over udp', 'udp', c(P,2,4))
    step('v3 DUMP over tcp: whole', 'tcp', c(P,3,4))
    for i in range(330):
        step('v4 GETADDR filler %d' % i, 'udp', c(P,4,3, rpcb(300600 + i,1,'','')))
    step('v4 GETSTAT over udp: over 8800 bytes', 'udp', c(P,4,12))
    step('v4 GETSTAT over tcp', 'tcp', c(P,4,12))
    print('# session: engine_vectors/udp_size.txt, captured by proto/tests/engine_vectors/capture.py')
    print('# udp_size, from a fresh /usr/sbin/rpcbind -f (Debian rpcbind 1.2.6-6+b1, libtirpc3')
    print('# 1.3.3+ds-1) in a private network and mount namespace with only lo up, 2026-11-23.')
    print('# What C does with a UDP reply over its 8800-byte buffer.')
    print('\n'.join(out))

SRC4 = '127.0.0.1'
x = [0x7e570000]
def c(*a, **k):
    x[0] += 1
    return call(x[0], *a, **k)
if len(sys.argv) > 1 and sys.argv[1] == 'insecure':
    insecure_session()
    sys.exit(0)
if len(sys.argv) > 1 and sys.argv[1] == 'udp_size':
    udp_size_session()
    sys.exit(0)
step('v3 SET tcp as root: owner superuser', 'local', c(P,3,1, rpcb(300100,1,'tcp','0.0.0.0.8.1')))
step('v3 SET udp as uid 1000: owner "1000"', 'local', c(P,3,1, rpcb(300101,1,'udp','0.0.0.0.8.2')), 1000)
step('v3 SET again, same address: TRUE', 'local', c(P,3,1, rpcb(300101,1,'udp','0.0.0.0.8.2')), 1000)
step('v3 SET again, other address: FALSE (never overwrites)', 'local', c(P,3,1, rpcb(300101,1,'udp','0.0.0.0.9.9')))
step('v4 UNSET by uid 1001, not the owner: FALSE', 'local', c(P,4,2, rpcb(300101,1,'','')), 1001)
step('v4 UNSET of a superuser entry by uid 1000: FALSE', 'local', c(P,4,2, rpcb(300100,1,'tcp','')), 1000)
step('v4 UNSET netid "UDP" by the owner: TRUE (netid compared case-insensitively)', 'local', c(P,4,2, rpcb(300101,1,'UDP','')), 1000)
step('v4 UNSET of nothing: TRUE', 'local', c(P,4,2, rpcb(300199,1,'udp','')), 1000)
step('PMAP DUMP: the udp mapping of 300101 stays (del_pmaplist compares "UDP" exactly)', 'local', c(P,2,4))
step('v3 DUMP', 'local', c(P,3,4))
step('v3 SET 300102 v2 udp', 'local', c(P,3,1, rpcb(300102,2,'udp','0.0.0.0.8.3')))
step('v3 SET 300102 v4 udp', 'local', c(P,3,1, rpcb(300102,4,'udp','0.0.0.0.8.4')))
step('v3 SET 300102 v3 tcp', 'local', c(P,3,1, rpcb(300102,3,'tcp','127.0.0.1.8.5')))
step('v3 SET 300103 v1 local', 'local', c(P,3,1, rpcb(300103,1,'local','/run/foo.sock')))
step('v4 GETADDR 300102 v3 over local: keyed on netid local: empty', 'local', c(P,4,3, rpcb(300102,3,'udp','')))
step('v3 GETADDR 300103 over local: unmerged path', 'local', c(P,3,3, rpcb(300103,1,'tcp','')))
step('v4 GETADDR 300102 v3 over udp: another version (last registered) merged', 'udp', c(P,4,3, rpcb(300102,3,'tcp','')))
step('v4 GETVERSADDR 300102 v3 over udp: exact version only: empty', 'udp', c(P,4,9, rpcb(300102,3,'udp','')))
step('v4 GETVERSADDR 300102 v3 over tcp: exact', 'tcp', c(P,4,9, rpcb(300102,3,'udp','')))
step('PMAP GETPORT 300102 v3 udp: version fallback to the last', 'udp', c(P,2,3, pmap(300102,3,17,0)))
step('PMAP GETPORT 300102 v9 tcp: fallback', 'tcp', c(P,2,3, pmap(300102,9,6,0)))
step('PMAP GETPORT 300102 v2 prot 99: 0', 'udp', c(P,2,3, pmap(300102,2,99,0)))
step('v4 GETADDRLIST 300102 v4 over udp', 'udp', c(P,4,11, rpcb(300102,4,'','')))
step('v4 GETADDRLIST 300103 v1 over local: local entries never merge', 'local', c(P,4,11, rpcb(300103,1,'','')))
step('v3 SET 300104 v1 on netid foo', 'local', c(P,3,1, rpcb(300104,1,'foo','1.2.3.4.5.6')))
step('v4 GETADDRLIST 300104 v1: unknown netid: C sends no reply', 'udp', c(P,4,11, rpcb(300104,1,'','')))
step('v4 GETADDR 300104 over udp: nothing on udp', 'udp', c(P,4,3, rpcb(300104,1,'foo','')))
step('v3 UADDR2TADDR over local', 'local', c(P,3,7, s('/run/x')))
step('v3 TADDR2UADDR over local', 'local', c(P,3,8, struct.pack('>II',110,8)+bytes.fromhex('01002f72756e2f78')))
step('v4 UADDR2TADDR over udp6', 'udp6', c(P,4,7, s('::1.3.4')))
step('v4 UADDR2TADDR v4 address over udp6: empty netbuf', 'udp6', c(P,4,7, s('127.0.0.1.3.4')))
step('v4 TADDR2UADDR over tcp6', 'tcp6', c(P,4,8, struct.pack('>II',28,28)+bytes.fromhex('0a00006f00000000000000000000000000000000000000010000000000')[:28]))
step('PMAP SET prot 99 over local: FALSE', 'local', c(P,2,1, pmap(300105,1,99,700)))
step('PMAP SET over local as uid 1000', 'local', c(P,2,1, pmap(300106,1,6,701)), 1000)
step('PMAP UNSET of a superuser entry by uid 1000: FALSE', 'local', c(P,2,2, pmap(300100,1,0,0)), 1000)
step('PMAP UNSET by the owner: TRUE', 'local', c(P,2,2, pmap(300106,1,0,0)), 1000)
step('v3 SET truncated over local (stream): GARBAGE_ARGS', 'local', c(P,3,1, struct.pack('>II',300107,1)))
step('AUTH_SYS with 17 groups: AUTH_BADCRED', 'local', c(P,3,0, cred=(1, struct.pack('>I',1)+s('h')+struct.pack('>III',0,0,17)+b'\0'*68)))
step('INDIRECT 300102 v3 proc 1 over udp: PROG_MISMATCH low/high', 'udp', c(P,4,10, struct.pack('>IIII',300102,1,1,0)))
step('INDIRECT 300102 v4 over udp: SYSTEM_ERR (no forwarding)', 'udp', c(P,4,10, struct.pack('>IIII',300102,4,1,0)))
step('INDIRECT 300999 over udp: PROG_UNAVAIL', 'udp', c(P,4,10, struct.pack('>IIII',300999,1,1,0)))
step('INDIRECT to rpcbind SET: AUTH_TOOWEAK', 'udp', c(P,4,10, struct.pack('>IIII',100000,2,1,0)))
step('PMAP CALLIT to MOUNT MNT: AUTH_TOOWEAK', 'udp', c(P,2,5, struct.pack('>IIII',100005,1,1,0)))
step('PMAP CALLIT to 300102 v4: silent', 'udp', c(P,2,5, struct.pack('>IIII',300102,4,1,0)))
step('BCAST to 300102 v4: silent', 'udp', c(P,4,5, struct.pack('>IIII',300102,4,1,0)))
step('INDIRECT over tcp: silent', 'tcp', c(P,4,10, struct.pack('>IIII',300102,4,1,0)))
step('v3 CALLIT garbage: silent', 'udp6', c(P,3,5, struct.pack('>III',300102,4,1)+bytes.fromhex('ffffffff')))
step('v3 SET 300110 udp as uid 1000', 'local', c(P,3,1, rpcb(300110,1,'udp','0.0.0.0.11.1')), 1000)
step('v3 SET 300110 tcp as uid 1001', 'local', c(P,3,1, rpcb(300110,1,'tcp','0.0.0.0.11.2')), 1001)
step('v3 UNSET 300110 all netids as uid 1000: FALSE at the tcp entry, the udp one already gone', 'local', c(P,3,2, rpcb(300110,1,'','')), 1000)
step('v3 DUMP: only the tcp entry of 300110 is left', 'local', c(P,3,4))
step('PMAP DUMP: both mappings of 300110 are left (del_pmaplist skipped)', 'local', c(P,2,4))
step('v3 SET 300111 udp6 wildcard over tcp6 from ::1', 'tcp6', c(P,3,1, rpcb(300111,1,'udp6','::.11.3')))
step('v4 GETADDR 300111 over udp6: merged to ::1', 'udp6', c(P,4,3, rpcb(300111,1,'','')))
step('v4 GETADDRLIST 300111 over udp6', 'udp6', c(P,4,11, rpcb(300111,1,'','')))
step('PMAP SET over udp6 from ::1 (unprivileged port): owner unknown', 'udp6', c(P,2,1, pmap(300112,1,17,1200)))
step('v4 DUMP over tcp', 'tcp', c(P,4,4))
step('v4 GETSTAT over local', 'local', c(P,4,12))
print('# session: engine_vectors/local.txt, captured by a Python client of the engine helper')
print('# (proto/tests/engine_vectors/capture.py) from a fresh /usr/sbin/rpcbind -f')
print('# (Debian rpcbind 1.2.6-6+b1, libtirpc3 1.3.3+ds-1) in a private network and mount')
print('# namespace with only lo up (127.0.0.1/8, ::1/128), 2026-11-23. Local-socket requests')
print('# were sent by forked children as uid 0, 1000 or 1001 (uid=N is SO_PEERCRED).')
print('# Every UDP request is complete (no truncated datagrams: see golden_replay.rs).')
print('\n'.join(out))
