/*
 * rpcserver: a real libtirpc server of a test program, versions 1..N.
 * Procedures: 0 NULL, 1 ECHO (string in, same string out).
 *   rpcserver create NETTYPE [PROG [NVERS]]   svc_create on a nettype
 *                                             (netpath, visible, ...)
 *   rpcserver tp NETID [PROG [NVERS]]         svc_tp_create on one netid
 * Prints "transport NETID UADDR" per transport it listens on, then "ready".
 * On SIGTERM/SIGINT: svc_unreg every version (or, with RPCSERVER_UNSET=rpcb,
 * rpcb_unset(prog, vers, NULL)), prints "unregistered", exits 0.
 * Exit: 0 success, 1 registration failed, 64 usage.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <rpc/rpc.h>
#include <rpc/rpcb_clnt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define ECHO_PROC 1

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void usage(void)
{
	fprintf(stderr, "usage: rpcserver create NETTYPE [PROG [NVERS]]\n"
			"       rpcserver tp NETID [PROG [NVERS]]\n"
			"defaults: PROG 0x20000099, NVERS 1\n");
	exit(64);
}

static unsigned long num(const char *s)
{
	char *end;
	unsigned long v = strtoul(s, &end, 0);
	if (*s == '\0' || *end != '\0')
		usage();
	return v;
}

static void dispatch(struct svc_req *rq, SVCXPRT *xprt)
{
	char *s = NULL;
	switch (rq->rq_proc) {
	case NULLPROC:
		svc_sendreply(xprt, (xdrproc_t)xdr_void, NULL);
		return;
	case ECHO_PROC:
		if (!svc_getargs(xprt, (xdrproc_t)xdr_wrapstring, (char *)&s)) {
			svcerr_decode(xprt);
			return;
		}
		svc_sendreply(xprt, (xdrproc_t)xdr_wrapstring, (char *)&s);
		svc_freeargs(xprt, (xdrproc_t)xdr_wrapstring, (char *)&s);
		return;
	default:
		svcerr_noproc(xprt);
	}
}

/* The netid of a listening socket, from its family and type. */
static const char *fd_netid(int fd, struct sockaddr_storage *ss)
{
	socklen_t len = sizeof(*ss);
	int type;
	socklen_t tlen = sizeof(type);
	if (getsockname(fd, (struct sockaddr *)ss, &len) != 0 ||
	    getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) != 0)
		return NULL;
	int dgram = type == SOCK_DGRAM;
	switch (ss->ss_family) {
	case AF_INET:
		return dgram ? "udp" : "tcp";
	case AF_INET6:
		return dgram ? "udp6" : "tcp6";
	case AF_LOCAL:
		return "local";
	}
	return NULL;
}

static void print_transports(void)
{
	for (int i = 0; i < svc_max_pollfd; i++) {
		struct sockaddr_storage ss;
		int fd = svc_pollfd[i].fd;
		if (fd < 0)
			continue;
		const char *netid = fd_netid(fd, &ss);
		if (netid == NULL)
			continue;
		struct netconfig *nc = getnetconfigent(netid);
		struct netbuf nb = { sizeof(ss), sizeof(ss), &ss };
		if (ss.ss_family == AF_INET)
			nb.len = sizeof(struct sockaddr_in);
		else if (ss.ss_family == AF_INET6)
			nb.len = sizeof(struct sockaddr_in6);
		char *u = nc ? taddr2uaddr(nc, &nb) : NULL;
		printf("transport %s %s\n", netid, u ? u : "?");
	}
}

static int serve(unsigned long prog, unsigned long nvers)
{
	while (!stop) {
		int n = poll(svc_pollfd, svc_max_pollfd, 500);
		if (n < 0 && errno != EINTR) {
			perror("poll");
			return 1;
		}
		if (n > 0)
			svc_getreq_poll(svc_pollfd, n);
	}
	int rpcb = getenv("RPCSERVER_UNSET") &&
		   strcmp(getenv("RPCSERVER_UNSET"), "rpcb") == 0;
	for (unsigned long v = 1; v <= nvers; v++) {
		if (rpcb)
			printf("rpcb_unset %lu %s\n", v,
			       rpcb_unset(prog, v, NULL) ? "true" : "false");
		else
			svc_unreg(prog, v);
	}
	printf("unregistered\n");
	return 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 3 || argc > 5)
		usage();
	unsigned long prog = argc > 3 ? num(argv[3]) : 0x20000099UL;
	unsigned long nvers = argc > 4 ? num(argv[4]) : 1;
	if (nvers < 1)
		usage();
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal; /* no SA_RESTART: poll returns EINTR */
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	for (unsigned long v = 1; v <= nvers; v++) {
		if (strcmp(argv[1], "create") == 0) {
			int n = svc_create(dispatch, prog, v, argv[2]);
			printf("svc_create %lu %d\n", v, n);
			if (n == 0)
				return 1;
		} else if (strcmp(argv[1], "tp") == 0) {
			struct netconfig *nc = getnetconfigent(argv[2]);
			if (nc == NULL) {
				printf("error netid %s unknown\n", argv[2]);
				return 1;
			}
			/* one transport for all versions: register the rest on it */
			static SVCXPRT *x;
			if (x == NULL)
				x = svc_tp_create(dispatch, prog, v, nc);
			else if (!svc_reg(x, prog, v, dispatch, nc))
				x = NULL;
			printf("svc_tp_create %lu %s\n", v, x ? "ok" : "failed");
			if (x == NULL)
				return 1;
		} else {
			usage();
		}
	}
	print_transports();
	printf("ready\n");
	return serve(prog, nvers);
}
