# A fake systemd for tests/tests/fdstore.rs, run inside the test's
# namespace: it owns the NOTIFY_SOCKET (/run/notify.sock), keeps every
# descriptor sent with FDSTORE=1 (by FDNAME), forgets it on FDSTOREREMOVE=1,
# and starts the daemon (argv) again with the kept descriptors as
# LISTEN_FDS/LISTEN_FDNAMES/LISTEN_PID, as systemd does after a restart.
#
# usage: fakesd.py [--stale] DAEMON ARGS...
#   --stale: before the first start, store two sockets the daemon must
#            refuse: resv.gone.tcp (no such reservation, 127.0.0.1:901)
#            and resv.svc.udp (the right name, the wrong port: 902).
# Steps, driven by files the test creates in /run:
#   start the daemon, report until READY=1; wait for /run/restart (the
#   test kills the daemon meanwhile), reap it, start it again with the
#   store, report until READY=1; keep reporting until /run/stop, then
#   SIGTERM the daemon and exit.
# Output lines: "pid P", "stored NAME INODE", "removed NAME", "ready",
# "timeout".

import array
import fcntl
import os
import signal
import socket
import sys
import time

NOTIFY = "/run/notify.sock"
store = {}


def say(*words):
    print(*words, flush=True)


def received_fds(ancillary):
    fds = []
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            a = array.array("i")
            a.frombytes(data[: len(data) - len(data) % a.itemsize])
            fds.extend(a)
    return fds


def keep(name, fd):
    if name in store:
        os.close(store[name])
    store[name] = fd
    say("stored", name, os.fstat(fd).st_ino)


def handle(msg, fds):
    kv = dict(l.split("=", 1) for l in msg.decode().splitlines() if "=" in l)
    name = kv.get("FDNAME")
    if kv.get("FDSTORE") == "1" and name and len(fds) == 1:
        keep(name, fds.pop())
    for fd in fds:
        os.close(fd)
    if kv.get("FDSTOREREMOVE") == "1" and name:
        if name in store:
            os.close(store.pop(name))
        say("removed", name)
    if kv.get("READY") == "1":
        say("ready")
    return kv


def pump(sock, stop, timeout):
    end = time.time() + timeout
    while time.time() < end:
        try:
            msg, anc, _flags, _addr = sock.recvmsg(
                4096, socket.CMSG_SPACE(64 * 4), socket.MSG_CMSG_CLOEXEC
            )
        except socket.timeout:
            continue
        if stop(handle(msg, received_fds(anc))):
            return True
    return False


def spawn(daemon):
    names = list(store)
    pid = os.fork()
    if pid == 0:
        try:
            # Out of the way of 3.. first, then into place (inheritable).
            high = [fcntl.fcntl(store[n], fcntl.F_DUPFD_CLOEXEC, 200) for n in names]
            for i, fd in enumerate(high):
                os.dup2(fd, 3 + i, inheritable=True)
            os.closerange(3 + len(names), 4096)
            env = dict(os.environ, NOTIFY_SOCKET=NOTIFY)
            if names:
                env["LISTEN_FDS"] = str(len(names))
                env["LISTEN_FDNAMES"] = ":".join(names)
                env["LISTEN_PID"] = str(os.getpid())
            os.execve(daemon[0], daemon, env)
        finally:
            os._exit(127)
    say("pid", pid)
    return pid


def stale_sockets():
    gone = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    gone.bind(("127.0.0.1", 901))
    keep("resv.gone.tcp", gone.detach())
    wrong = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    wrong.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    wrong.bind(("::", 902))
    keep("resv.svc.udp", wrong.detach())


def wait_file(path):
    while not os.path.exists(path):
        time.sleep(0.05)


def main():
    args = sys.argv[1:]
    if args and args[0] == "--stale":
        args = args[1:]
        stale_sockets()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(NOTIFY)
    sock.settimeout(0.1)
    ready = lambda kv: kv.get("READY") == "1"
    pid = spawn(args)
    if not pump(sock, ready, 10):
        say("timeout")
    while not os.path.exists("/run/restart"):
        pump(sock, lambda kv: False, 0.2)
    os.waitpid(pid, 0)
    pid = spawn(args)
    if not pump(sock, ready, 10):
        say("timeout")
    while not os.path.exists("/run/stop"):
        pump(sock, lambda kv: False, 0.2)
    os.kill(pid, signal.SIGTERM)
    os.waitpid(pid, 0)


main()
