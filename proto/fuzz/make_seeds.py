#!/usr/bin/env python3
"""Writes the seed corpora under corpus/<target>/ from the golden captures
of Debian's rpcbind in ../tests/golden (see its README) plus a few
hand-made edge cases. Run from proto/fuzz; file names are SHA-1 of the
content, as libFuzzer names its finds."""
import hashlib, os, struct

GOLDEN = os.path.join(os.path.dirname(__file__), '..', 'tests', 'golden')

def exchanges():
    for f in ('rpcinfo', 'handmade', 'libtirpc'):
        req = None
        for line in open(os.path.join(GOLDEN, f + '.txt')):
            if line.startswith('> '):
                req = bytes.fromhex(line[2:].strip())
            elif line.startswith('< '):
                r = line[2:].strip()
                yield req, (bytes.fromhex(r) if r not in ('-', '?') else None)

def write(target, data):
    d = os.path.join('corpus', target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, hashlib.sha1(data).hexdigest()), 'wb') as fh:
        fh.write(data)

def mark(n, last):
    return struct.pack('>I', n | (0x80000000 if last else 0))

def opaque_auth_len(b, off):
    (n,) = struct.unpack('>I', b[off + 4:off + 8])
    return 8 + n + (-n % 4)

def args_of(req):
    off = 40 - 16  # xid..proc is 24 bytes
    off += opaque_auth_len(req, off)
    off += opaque_auth_len(req, off)
    return req[off:]

# arg_decode selectors, as in proto::fuzzing::arg_decode
ARGS = {(2, 1): 0, (2, 2): 0, (2, 3): 0, (2, 5): 2, (3, 5): 2, (4, 5): 2, (4, 10): 2,
        (3, 1): 4, (3, 2): 4, (3, 3): 4, (4, 1): 4, (4, 2): 4, (4, 3): 4, (4, 9): 4,
        (4, 11): 4, (3, 8): 9, (4, 8): 9}
RESULTS = {(2, 4): 1, (2, 5): 3, (3, 4): 5, (4, 4): 5, (4, 11): 7, (3, 5): 8, (4, 5): 8,
           (4, 10): 8, (3, 7): 9, (4, 7): 9, (3, 12): 11, (4, 12): 11}

calls = []
for req, rep in exchanges():
    write('rpc_call_decode', req)
    if rep:
        write('rpc_call_decode', rep)
    if len(req) < 24:
        continue
    xid, mtype, rpcvers, prog, vers, proc = struct.unpack('>6I', req[:24])
    if mtype != 0 or prog != 100000:
        continue
    calls.append(req)
    try:
        args = args_of(req)
    except struct.error:
        continue
    if (vers, proc) in ARGS:
        write('arg_decode', bytes([ARGS[(vers, proc)]]) + args)
    if (vers, proc) == (3, 7) or (vers, proc) == (4, 7):
        (n,) = struct.unpack('>I', args[:4])
        write('arg_decode', bytes([13]) + args[4:4 + n])
    cred_flavor, cred_len = struct.unpack('>II', req[24:32])
    if cred_flavor == 1:
        write('arg_decode', bytes([12]) + req[32:32 + cred_len])
    if rep and len(rep) >= 24 and rep[8:12] == b'\0\0\0\0' and rep[20:24] == b'\0\0\0\0':
        if (vers, proc) in RESULTS:
            write('arg_decode', bytes([RESULTS[(vers, proc)]]) + rep[24:])

for uaddr in (b'127.0.0.1.0.111', b'::1.0.111', b'::ffff:1.2.3.4.0.111', b'/run/rpcbind.sock',
              b'fe80::1%lo.0.111', b'127.0.0.1.-1.0x1'):
    write('arg_decode', bytes([13]) + uaddr)
write('arg_decode', bytes([9]) + struct.pack('>II', 0xffffffff, 0xfffffff0))
write('arg_decode', bytes([1]) + struct.pack('>I', 1) * 3)

# record_reassembly: [chunk size, cap / 16] + stream
a, b, c = calls[0], calls[5], calls[-1]
write('record_reassembly', bytes([255, 255]) + mark(len(a), True) + a)
write('record_reassembly', bytes([1, 64]) + mark(len(a), True) + a + mark(len(b), True) + b)
write('record_reassembly', bytes([7, 64]) + mark(12, False) + c[:12] + mark(0, False)
      + mark(len(c) - 12, True) + c[12:])
write('record_reassembly', bytes([3, 2]) + mark(len(c), True) + c)
write('record_reassembly', bytes([4, 200]) + b'\xff\xff\xff\xff' + a)
write('record_reassembly', bytes([5, 1]) + mark(0, True) + mark(16, False) + bytes(16)
      + mark(1, True) + b'x')
