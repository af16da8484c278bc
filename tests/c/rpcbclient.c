/*
 * rpcbclient: drives libtirpc's client-side rpcbind API, one call per run.
 * Output: one fact per line ("key value..."), errors as "error STAT TEXT".
 * Exit: 0 success, 1 the call failed, 64 usage.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <rpc/pmap_clnt.h>
#include <rpc/pmap_prot.h>
#include <rpc/rpc.h>
#include <rpc/rpcb_clnt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#define ECHO_PROC 1
#define DEFAULT_PROG 0x20000099UL

static void usage(void)
{
	fprintf(stderr,
		"usage: rpcbclient getaddr PROG VERS NETID HOST\n"
		"       rpcbclient getmaps HOST [NETID]\n"
		"       rpcbclient gettime HOST\n"
		"       rpcbclient uaddr2taddr NETID UADDR\n"
		"       rpcbclient taddr2uaddr NETID UADDR\n"
		"       rpcbclient call HOST PROG VERS NETID|netpath|visible|circuit_v|datagram_v\n"
		"       rpcbclient set PROG VERS NETID UADDR\n"
		"       rpcbclient unset PROG VERS NETID|all\n"
		"       rpcbclient pmap_set PROG VERS udp|tcp PORT\n"
		"       rpcbclient pmap_unset PROG VERS\n"
		"       rpcbclient pmap_getport HOST PROG VERS udp|tcp\n"
		"       rpcbclient pmap_getmaps HOST\n"
		"       rpcbclient pmap_callit HOST PROG VERS TEXT   (ECHO via CALLIT v2)\n"
		"       rpcbclient callit HOST PROG VERS NETID TEXT  (ECHO via rpcb_rmtcall)\n"
		"PROG may be decimal or 0x-hex; HOST of pmap_* is an IPv4 literal.\n");
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

static struct netconfig *netid_conf(const char *netid)
{
	struct netconfig *nc = getnetconfigent(netid);
	if (nc == NULL) {
		printf("error netid %s unknown\n", netid);
		exit(1);
	}
	return nc;
}

static int fail_createerr(void)
{
	printf("error %d %s\n", (int)rpc_createerr.cf_stat,
	       clnt_sperrno(rpc_createerr.cf_stat));
	return 1;
}

static void print_netbuf(const char *key, const struct netbuf *nb)
{
	printf("%s_len %u\n%s_maxlen %u\n%s_hex ", key, nb->len, key,
	       nb->maxlen, key);
	for (unsigned int i = 0; i < nb->len; i++)
		printf("%02x", ((unsigned char *)nb->buf)[i]);
	printf("\n");
}

/* Universal address of a socket address, computed here (RFC 1833 sec. 3). */
static void print_sockaddr_uaddr(const char *key, const struct sockaddr *sa)
{
	char host[INET6_ADDRSTRLEN];
	unsigned int port;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)sa;
		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		port = ntohs(in->sin_port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)sa;
		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		port = ntohs(in6->sin6_port);
	} else if (sa->sa_family == AF_LOCAL) {
		printf("%s %s\n", key, ((const struct sockaddr_un *)sa)->sun_path);
		return;
	} else {
		printf("%s family-%d\n", key, sa->sa_family);
		return;
	}
	printf("%s %s.%u.%u\n", key, host, port >> 8, port & 0xff);
}

static int cmd_getaddr(char **av)
{
	struct netconfig *nc = netid_conf(av[2]);
	struct sockaddr_storage ss;
	struct netbuf nb = { sizeof(ss), 0, &ss };
	if (!rpcb_getaddr(num(av[0]), num(av[1]), nc, &nb, av[3]))
		return fail_createerr();
	char *u = taddr2uaddr(nc, &nb);
	printf("uaddr %s\n", u ? u : "?");
	return 0;
}

static int cmd_getmaps(char *host, const char *netid)
{
	struct netconfig *nc = netid_conf(netid ? netid : "udp");
	rpc_createerr.cf_stat = RPC_SUCCESS;
	rpcblist *l = rpcb_getmaps(nc, host);
	if (l == NULL && rpc_createerr.cf_stat != RPC_SUCCESS)
		return fail_createerr();
	for (; l != NULL; l = l->rpcb_next)
		printf("map %lu %lu %s %s %s\n",
		       (unsigned long)l->rpcb_map.r_prog,
		       (unsigned long)l->rpcb_map.r_vers, l->rpcb_map.r_netid,
		       l->rpcb_map.r_addr, l->rpcb_map.r_owner);
	printf("end\n");
	return 0;
}

static int cmd_gettime(char *host)
{
	time_t t;
	if (!rpcb_gettime(host, &t))
		return fail_createerr();
	printf("time %lld\nlocal %lld\n", (long long)t, (long long)time(NULL));
	return 0;
}

static int cmd_uaddr2taddr(char **av)
{
	struct netconfig *nc = netid_conf(av[0]);
	struct netbuf *nb = rpcb_uaddr2taddr(nc, av[1]);
	if (nb == NULL) {
		printf("taddr null\n");
		return 1;
	}
	print_netbuf("taddr", nb);
	return 0;
}

static int cmd_taddr2uaddr(char **av)
{
	struct netconfig *nc = netid_conf(av[0]);
	struct netbuf *nb = uaddr2taddr(nc, av[1]);
	if (nb == NULL) {
		printf("error local uaddr2taddr refused %s\n", av[1]);
		return 1;
	}
	print_netbuf("sent", nb);
	char *u = rpcb_taddr2uaddr(nc, nb);
	if (u == NULL) {
		printf("uaddr null\n");
		return 1;
	}
	/* The C daemon answers garbage over the local transport: keep it exact. */
	printf("uaddr %s\nuaddr_hex ", u);
	for (const char *p = u; *p; p++)
		printf("%02x", (unsigned char)*p);
	printf("\n");
	return 0;
}

static int is_nettype(const char *s)
{
	static const char *types[] = { "netpath", "visible", "circuit_v",
				       "datagram_v", "circuit_n", "datagram_n" };
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (strcmp(s, types[i]) == 0)
			return 1;
	return 0;
}

static int cmd_call(char **av)
{
	CLIENT *cl;
	if (is_nettype(av[3])) {
		cl = clnt_create(av[0], num(av[1]), num(av[2]), av[3]);
		printf("via clnt_create\n");
	} else {
		cl = clnt_tp_create(av[0], num(av[1]), num(av[2]),
				    netid_conf(av[3]));
		printf("via clnt_tp_create\n");
	}
	if (cl == NULL)
		return fail_createerr();
	struct netbuf sa;
	if (clnt_control(cl, CLGET_SVC_ADDR, (char *)&sa))
		print_sockaddr_uaddr("server", (struct sockaddr *)sa.buf);
	struct timeval tv = { 5, 0 };
	enum clnt_stat st = clnt_call(cl, NULLPROC, (xdrproc_t)xdr_void, NULL,
				      (xdrproc_t)xdr_void, NULL, tv);
	if (st != RPC_SUCCESS) {
		printf("error %d %s\n", (int)st, clnt_sperrno(st));
		return 1;
	}
	printf("null ok\n");
	char *arg = "hello-from-rpcbclient", *res = NULL;
	st = clnt_call(cl, ECHO_PROC, (xdrproc_t)xdr_wrapstring, (char *)&arg,
		       (xdrproc_t)xdr_wrapstring, (char *)&res, tv);
	if (st != RPC_SUCCESS) {
		printf("error %d %s\n", (int)st, clnt_sperrno(st));
		return 1;
	}
	printf("echo %s\n", res);
	clnt_destroy(cl);
	return 0;
}

/* rpcb_rmtcall: CALLIT (v3) / BCAST (v4) of ECHO through rpcbind. */
static int cmd_callit(char **av)
{
	char *arg = av[4], *res = NULL;
	struct netbuf addr;
	struct sockaddr_storage ss;
	addr.buf = &ss;
	addr.maxlen = sizeof(ss);
	addr.len = 0;
	struct timeval tv = { 3, 0 };
	enum clnt_stat st = rpcb_rmtcall(netid_conf(av[3]), av[0], num(av[1]),
			num(av[2]), ECHO_PROC, (xdrproc_t)xdr_wrapstring,
			(caddr_t)&arg, (xdrproc_t)xdr_wrapstring, (caddr_t)&res,
			tv, &addr);
	if (st != RPC_SUCCESS) {
		printf("error %d %s\n", (int)st, clnt_sperrno(st));
		return 1;
	}
	if (addr.len > 0)
		print_sockaddr_uaddr("server", (struct sockaddr *)addr.buf);
	printf("echo %s\n", res);
	return 0;
}

static int cmd_set(char **av)
{
	struct netconfig *nc = netid_conf(av[2]);
	struct netbuf *nb = uaddr2taddr(nc, av[3]);
	if (nb == NULL) {
		printf("error local uaddr2taddr refused %s\n", av[3]);
		return 1;
	}
	bool_t ok = rpcb_set(num(av[0]), num(av[1]), nc, nb);
	printf("set %s\n", ok ? "true" : "false");
	return ok ? 0 : 1;
}

static int cmd_unset(char **av)
{
	struct netconfig *nc = strcmp(av[2], "all") ? netid_conf(av[2]) : NULL;
	bool_t ok = rpcb_unset(num(av[0]), num(av[1]), nc);
	printf("unset %s\n", ok ? "true" : "false");
	return ok ? 0 : 1;
}

static int proto_num(const char *s)
{
	if (strcmp(s, "udp") == 0)
		return IPPROTO_UDP;
	if (strcmp(s, "tcp") == 0)
		return IPPROTO_TCP;
	usage();
	return 0;
}

static void ipv4(const char *host, struct sockaddr_in *sin)
{
	memset(sin, 0, sizeof(*sin));
	sin->sin_family = AF_INET;
	sin->sin_port = htons(PMAPPORT);
	if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
		usage();
}

static int cmd_pmap(int ac, char **av)
{
	struct sockaddr_in sin;
	if (strcmp(av[0], "pmap_set") == 0 && ac == 5) {
		bool_t ok = pmap_set(num(av[1]), num(av[2]), proto_num(av[3]),
				     (int)num(av[4]));
		printf("pmap_set %s\n", ok ? "true" : "false");
		return ok ? 0 : 1;
	}
	if (strcmp(av[0], "pmap_unset") == 0 && ac == 3) {
		bool_t ok = pmap_unset(num(av[1]), num(av[2]));
		printf("pmap_unset %s\n", ok ? "true" : "false");
		return ok ? 0 : 1;
	}
	if (strcmp(av[0], "pmap_getport") == 0 && ac == 5) {
		ipv4(av[1], &sin);
		rpc_createerr.cf_stat = RPC_SUCCESS;
		u_short p = pmap_getport(&sin, num(av[2]), num(av[3]),
					 proto_num(av[4]));
		printf("port %u\n", p);
		if (p == 0)
			return fail_createerr();
		return 0;
	}
	if (strcmp(av[0], "pmap_callit") == 0 && ac == 5) {
		ipv4(av[1], &sin);
		char *arg = av[4], *res = NULL;
		u_long port = 0;
		struct timeval tv = { 3, 0 };
		enum clnt_stat st = pmap_rmtcall(&sin, num(av[2]), num(av[3]),
				ECHO_PROC, (xdrproc_t)xdr_wrapstring, (caddr_t)&arg,
				(xdrproc_t)xdr_wrapstring, (caddr_t)&res, tv, &port);
		if (st != RPC_SUCCESS) {
			printf("error %d %s\n", (int)st, clnt_sperrno(st));
			return 1;
		}
		printf("port %lu\necho %s\n", port, res);
		return 0;
	}
	if (strcmp(av[0], "pmap_getmaps") == 0 && ac == 2) {
		ipv4(av[1], &sin);
		for (struct pmaplist *l = pmap_getmaps(&sin); l; l = l->pml_next)
			printf("map %lu %lu %s %lu\n", l->pml_map.pm_prog,
			       l->pml_map.pm_vers,
			       l->pml_map.pm_prot == IPPROTO_UDP ? "udp" :
			       l->pml_map.pm_prot == IPPROTO_TCP ? "tcp" : "?",
			       l->pml_map.pm_port);
		printf("end\n");
		return 0;
	}
	usage();
	return 64;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 2)
		usage();
	const char *c = argv[1];
	int n = argc - 2;
	char **a = argv + 2;
	if (strcmp(c, "getaddr") == 0 && n == 4)
		return cmd_getaddr(a);
	if (strcmp(c, "getmaps") == 0 && (n == 1 || n == 2))
		return cmd_getmaps(a[0], n == 2 ? a[1] : NULL);
	if (strcmp(c, "gettime") == 0 && n == 1)
		return cmd_gettime(a[0]);
	if (strcmp(c, "uaddr2taddr") == 0 && n == 2)
		return cmd_uaddr2taddr(a);
	if (strcmp(c, "taddr2uaddr") == 0 && n == 2)
		return cmd_taddr2uaddr(a);
	if (strcmp(c, "call") == 0 && n == 4)
		return cmd_call(a);
	if (strcmp(c, "callit") == 0 && n == 5)
		return cmd_callit(a);
	if (strcmp(c, "set") == 0 && n == 4)
		return cmd_set(a);
	if (strcmp(c, "unset") == 0 && n == 3)
		return cmd_unset(a);
	if (strncmp(c, "pmap_", 5) == 0)
		return cmd_pmap(argc - 1, argv + 1);
	(void)DEFAULT_PROG;
	usage();
	return 64;
}
