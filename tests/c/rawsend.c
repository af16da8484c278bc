/*
 * rawsend: sends raw RPC messages over one stream connection to a local
 * (AF_UNIX) socket, with RFC 5531 record marking, and prints the replies.
 *   rawsend PATH     (stdin: one "TIMEOUT_MS HEX" line per message)
 * Output: one line per message: the reply as lowercase hex, or "-" when
 * none came within TIMEOUT_MS (or the daemon closed the connection).
 * Exit: 0 when every line was handled, 1 on connect/I/O errors, 64 usage.
 * Run it under setpriv to give the daemon a chosen SO_PEERCRED uid.
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_MSG (1 << 20)

static int read_full(int fd, unsigned char *buf, size_t n, int timeout_ms)
{
	size_t got = 0;
	while (got < n) {
		struct pollfd p = { fd, POLLIN, 0 };
		if (poll(&p, 1, timeout_ms) <= 0)
			return -1;
		ssize_t r = read(fd, buf + got, n - got);
		if (r <= 0)
			return -1;
		got += (size_t)r;
	}
	return 0;
}

/* One reply record (all fragments), printed as hex; "-" if none. */
static void print_reply(int fd, int timeout_ms, unsigned char *buf)
{
	size_t len = 0;
	for (;;) {
		unsigned char h[4];
		if (read_full(fd, h, 4, timeout_ms) != 0)
			break;
		unsigned int mark = (unsigned)h[0] << 24 | h[1] << 16 | h[2] << 8 | h[3];
		size_t n = mark & 0x7fffffffU;
		if (len + n > MAX_MSG || read_full(fd, buf + len, n, timeout_ms) != 0)
			break;
		len += n;
		if (mark & 0x80000000U) {
			for (size_t i = 0; i < len; i++)
				printf("%02x", buf[i]);
			printf("\n");
			return;
		}
	}
	printf("-\n");
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: rawsend PATH < 'TIMEOUT_MS HEX' lines\n");
		return 64;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	strncpy(sun.sun_path, argv[1], sizeof(sun.sun_path) - 1);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
		perror("rawsend: connect");
		return 1;
	}
	static char line[2 * MAX_MSG + 32];
	static unsigned char msg[MAX_MSG + 4], reply[MAX_MSG];
	while (fgets(line, sizeof(line), stdin)) {
		char *hex;
		int timeout_ms = (int)strtol(line, &hex, 10);
		while (*hex == ' ')
			hex++;
		size_t n = 0;
		while (n < MAX_MSG && sscanf(hex + 2 * n, "%2hhx", &msg[4 + n]) == 1)
			n++;
		msg[0] = 0x80 | (unsigned char)(n >> 24);
		msg[1] = (unsigned char)(n >> 16);
		msg[2] = (unsigned char)(n >> 8);
		msg[3] = (unsigned char)n;
		if (write(fd, msg, n + 4) != (ssize_t)(n + 4)) {
			printf("-\n");
			continue;
		}
		print_reply(fd, timeout_ms, reply);
	}
	return 0;
}
