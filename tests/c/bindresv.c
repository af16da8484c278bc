/*
 * bindresv: calls libtirpc's bindresvport() / bindresvport_sa() on fresh
 * sockets, or binds server sockets to port 0, and prints what it got.
 * Used with and without the LD_PRELOAD shim (libportpolicy_preload.so).
 *
 * Built with -ltirpc the calls are libtirpc's; built with -DGLIBC_ONLY and
 * without libtirpc, bindresvport() is glibc's (resv_sa then fails ENOSYS).
 *
 * usage: bindresv resv|resv_sa|bind0 N udp|tcp 4|6 [options]
 *   resv     bindresvport(fd, sin)        (sin NULL unless -a; IPv4 only with -a)
 *   resv_sa  bindresvport_sa(fd, sa)      (sa NULL unless -a)
 *   bind0    bind(fd, {ADDR or wildcard, port 0}), then listen() for tcp
 *            unless -L: a server socket, as statd's listeners
 * options:
 *   -a ADDR  numeric address to pass (sin/sa filled with it, port 0)
 *   -k       create the sockets with SOCK_NONBLOCK|SOCK_CLOEXEC
 *   -L       bind0: do not listen()
 *   -v       IPv6 sockets get IPV6_V6ONLY=1 before binding
 *   -c       close each socket before the next call (default: keep all
 *            open, so N calls hold N distinct ports)
 *   -t T     run the N calls in each of T threads at once (T*N calls)
 *
 * Output, one line per call:
 *   proto=udp|tcp family=4|6 addr=A port=P fd=F nonblock=0|1 cloexec=0|1 sin_port=P listening=0|1
 * where A and P are the address and port getsockname() reports on the caller's descriptor
 * (the shim replaces the socket behind that number), sin_port is what the call wrote into the caller's
 * address (-1 without -a), or "error ERRNO TEXT" when the call failed.
 * Exit: 0 every call succeeded, 1 some failed, 64 usage.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <netinet/in.h>
#ifdef GLIBC_ONLY
/* Built without libtirpc (gcc -DGLIBC_ONLY, no -ltirpc): glibc's own
 * bindresvport(), which glibc still exports; no bindresvport_sa(). */
extern int bindresvport(int, struct sockaddr_in *);
#else
#include <rpc/rpc.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct opts {
	const char *mode;
	int count;
	int type;
	int family;
	const char *addr;
	int flags;
	int no_listen;
	int v6only;
	int close_each;
	int threads;
};

static void usage(void)
{
	fprintf(stderr,
		"usage: bindresv resv|resv_sa|bind0 N udp|tcp 4|6 [-a ADDR] [-k] [-L] [-v] [-c]\n");
	exit(64);
}

static void parse(int argc, char **argv, struct opts *o)
{
	int i;

	if (argc < 5)
		usage();
	memset(o, 0, sizeof *o);
	o->mode = argv[1];
	if (strcmp(o->mode, "resv") && strcmp(o->mode, "resv_sa") && strcmp(o->mode, "bind0"))
		usage();
	o->count = atoi(argv[2]);
	if (o->count <= 0)
		usage();
	if (!strcmp(argv[3], "udp"))
		o->type = SOCK_DGRAM;
	else if (!strcmp(argv[3], "tcp"))
		o->type = SOCK_STREAM;
	else
		usage();
	if (!strcmp(argv[4], "4"))
		o->family = AF_INET;
	else if (!strcmp(argv[4], "6"))
		o->family = AF_INET6;
	else
		usage();
	for (i = 5; i < argc; i++) {
		if (!strcmp(argv[i], "-a") && i + 1 < argc)
			o->addr = argv[++i];
		else if (!strcmp(argv[i], "-k"))
			o->flags = SOCK_NONBLOCK | SOCK_CLOEXEC;
		else if (!strcmp(argv[i], "-L"))
			o->no_listen = 1;
		else if (!strcmp(argv[i], "-v"))
			o->v6only = 1;
		else if (!strcmp(argv[i], "-c"))
			o->close_each = 1;
		else if (!strcmp(argv[i], "-t") && i + 1 < argc && atoi(argv[i + 1]) > 0)
			o->threads = atoi(argv[++i]);
		else
			usage();
	}
}

/* Fills ss with ADDR (or the wildcard) and port 0; returns its length. */
static socklen_t make_addr(const struct opts *o, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof *ss);
	if (o->family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;
		sin->sin_family = AF_INET;
		if (o->addr && inet_pton(AF_INET, o->addr, &sin->sin_addr) != 1) {
			fprintf(stderr, "bad IPv4 address %s\n", o->addr);
			exit(64);
		}
		return sizeof *sin;
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
		sin6->sin6_family = AF_INET6;
		if (o->addr && inet_pton(AF_INET6, o->addr, &sin6->sin6_addr) != 1) {
			fprintf(stderr, "bad IPv6 address %s\n", o->addr);
			exit(64);
		}
		return sizeof *sin6;
	}
}

static const char *addr_text(const struct sockaddr_storage *ss, char *buf, socklen_t len)
{
	const void *a = ss->ss_family == AF_INET
		? (const void *)&((const struct sockaddr_in *)ss)->sin_addr
		: (const void *)&((const struct sockaddr_in6 *)ss)->sin6_addr;
	return inet_ntop(ss->ss_family, a, buf, len) ? buf : "?";
}

static int addr_port(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)ss)->sin_port);
	return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
}

/* Runs the mode's call on fd; returns its result (errno set on -1). */
static int call(const struct opts *o, int fd, struct sockaddr_storage *ss, int *given)
{
	socklen_t len = make_addr(o, ss);

	*given = o->addr != NULL;
	if (!strcmp(o->mode, "resv"))
		return bindresvport(fd, o->addr ? (struct sockaddr_in *)ss : NULL);
	if (!strcmp(o->mode, "resv_sa")) {
#ifdef GLIBC_ONLY
		errno = ENOSYS;
		return -1;
#else
		return bindresvport_sa(fd, o->addr ? (struct sockaddr *)ss : NULL);
#endif
	}
	*given = 0;
	if (bind(fd, (struct sockaddr *)ss, len) < 0)
		return -1;
	if (o->type == SOCK_STREAM && !o->no_listen)
		return listen(fd, 16);
	return 0;
}

static void report(const struct opts *o, int fd, const struct sockaddr_storage *ss, int given)
{
	struct sockaddr_storage bound;
	socklen_t len = sizeof bound;
	int fl = fcntl(fd, F_GETFL), fdfl = fcntl(fd, F_GETFD);
	int acc = 0;
	char text[INET6_ADDRSTRLEN];
	socklen_t alen = sizeof acc;

	if (getsockname(fd, (struct sockaddr *)&bound, &len) < 0) {
		printf("error %d getsockname: %s\n", errno, strerror(errno));
		return;
	}
	getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &alen);
	printf("proto=%s family=%d addr=%s port=%d fd=%d nonblock=%d cloexec=%d sin_port=%d listening=%d\n",
	       o->type == SOCK_STREAM ? "tcp" : "udp", o->family == AF_INET ? 4 : 6,
	       addr_text(&bound, text, sizeof text), addr_port(&bound), fd, (fl & O_NONBLOCK) != 0, (fdfl & FD_CLOEXEC) != 0,
	       given ? addr_port(ss) : -1, acc != 0);
}

/* The N calls of one thread; returns 1 when any failed. */
static int run_calls(const struct opts *o)
{
	int i, failed = 0;

	for (i = 0; i < o->count; i++) {
		struct sockaddr_storage ss;
		int given, one = 1;
		int fd = socket(o->family, o->type | o->flags, 0);

		if (fd < 0) {
			printf("error %d socket: %s\n", errno, strerror(errno));
			failed = 1;
			continue;
		}
		if (o->v6only && o->family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
		if (call(o, fd, &ss, &given) < 0) {
			printf("error %d %s\n", errno, strerror(errno));
			failed = 1;
		} else {
			report(o, fd, &ss, given);
		}
		if (o->close_each)
			close(fd);
	}
	return failed;
}

static void *worker(void *arg)
{
	return run_calls(arg) ? (void *)1 : NULL;
}

int main(int argc, char **argv)
{
	struct opts o;
	pthread_t tids[64];
	int i, failed = 0;

	parse(argc, argv, &o);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (o.threads <= 1)
		return run_calls(&o);
	if (o.threads > 64)
		usage();
	for (i = 0; i < o.threads; i++)
		if (pthread_create(&tids[i], NULL, worker, &o) != 0) {
			fprintf(stderr, "pthread_create failed\n");
			return 1;
		}
	for (i = 0; i < o.threads; i++) {
		void *r;
		pthread_join(tids[i], &r);
		failed |= r != NULL;
	}
	return failed;
}
