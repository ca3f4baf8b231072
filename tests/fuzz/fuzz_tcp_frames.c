/* SPDX-License-Identifier: MIT */
/* tests/fuzz/fuzz_tcp_frames.c - arbitrary bytes, after a valid hello, into a real tcp
 * connection's receive path. Whatever arrives, the connection must end (no hang), say why,
 * and leave every byte outside its REMOTE_WRITE region alone: the region sits between
 * inaccessible pages, with canary bytes in the pages next to it. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz.h"
#include "transport/log.h"
#include "transport/transport.h"
#include "transport/wire.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FUZZ_PAGE 4096u
#define FUZZ_REGION (16u * FUZZ_PAGE)
#define FUZZ_CANARY 0x5a

static struct transport_listener *listener;
static struct sockaddr_in listener_addr;
static unsigned char *fence; /* guard, canary page, region, canary page, guard */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char uri[TRANSPORT_URI_MAX];
	struct transport_uri parsed;

	(void)argc;
	(void)argv;
	signal(SIGPIPE, SIG_IGN);
	rmig_log_handler_set(fuzz_quiet_log, NULL, RMIG_LOG_LEVEL_ERROR);
	FUZZ_CHECK(transport_listen("tcp://127.0.0.1:0", NULL, &listener) == 0);
	FUZZ_CHECK(transport_listener_uri(listener, uri, sizeof(uri)) == 0);
	FUZZ_CHECK(transport_uri_parse(uri, &parsed) == 0);
	listener_addr.sin_family = AF_INET;
	listener_addr.sin_port = htons(parsed.port);
	listener_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fence = mmap(NULL, FUZZ_REGION + 4 * FUZZ_PAGE, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	FUZZ_CHECK(fence != MAP_FAILED);
	memset(fence, FUZZ_CANARY, FUZZ_REGION + 4 * FUZZ_PAGE);
	FUZZ_CHECK(mprotect(fence, FUZZ_PAGE, PROT_NONE) == 0);
	FUZZ_CHECK(mprotect(fence + FUZZ_REGION + 3 * FUZZ_PAGE, FUZZ_PAGE, PROT_NONE) == 0);
	return 0;
}

/* The harness's own socket. Thousands of connections a second would soon meet old ones
 * still in TIME_WAIT, so each comes from another loopback address. */
static int fuzz_connect(void)
{
	static unsigned next_source;

	for (int attempt = 0;; attempt++) {
		struct sockaddr_in source = {.sin_family = AF_INET};
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

		FUZZ_CHECK(fd >= 0);
		source.sin_addr.s_addr = htonl(0x7f000000u | (2 + next_source++ % 60000));
		FUZZ_CHECK(bind(fd, (struct sockaddr *)&source, sizeof(source)) == 0);
		if (!connect(fd, (struct sockaddr *)&listener_addr, sizeof(listener_addr)))
			return fd;
		if (attempt == 100 ||
		    (errno != EADDRNOTAVAIL && errno != EAGAIN && errno != EINTR)) {
			fprintf(stderr, "fuzz_tcp_frames: connect: %s\n", strerror(errno));
			abort();
		}
		close(fd);
		usleep(10000);
	}
}

static void send_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n <= 0)
			return; /* the connection already gave up on us: fine */
		p += n;
		len -= (size_t)n;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct {
		struct wire_hdr hdr;
		struct wire_hello hello;
	} __attribute__((packed)) hello;
	unsigned char *region = fence + 2 * FUZZ_PAGE;
	struct transport_conn *conn;
	struct transport_msg msg;
	int fd, ret;

	fd = fuzz_connect();
	wire_hdr_to_wire(&hello.hdr, WIRE_HELLO, sizeof(hello.hello), 0);
	wire_hello_to_wire(&hello.hello, 1, TRANSPORT_CTRL_MAX, 0, 0x100); /* stream index 0 */
	send_all(fd, &hello, sizeof(hello));
	ret = transport_accept(listener, 5000, &conn);
	if (ret) {
		fprintf(stderr, "fuzz_tcp_frames: accept: %s\n", strerror(-ret));
		abort();
	}
	FUZZ_CHECK(transport_region_register(conn, 1, region, FUZZ_REGION,
					     TRANSPORT_ACCESS_REMOTE_WRITE |
						     TRANSPORT_ACCESS_REMOTE_READ) == 0);

	send_all(fd, data, size);
	shutdown(fd, SHUT_WR);
	do
		ret = transport_recv(conn, &msg, 10000);
	while (ret == 0);
	FUZZ_CHECK(ret != -ETIMEDOUT); /* the peer is gone: the connection must notice */
	FUZZ_CHECK(transport_error(conn)[0] != '\0');
	/* Reset rather than linger in TIME_WAIT: thousands of runs a second would otherwise use
	 * up the local ports. The connection under test has ended already. */
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &(struct linger){.l_onoff = 1, .l_linger = 0},
		   sizeof(struct linger));
	close(fd);
	transport_close(conn);

	for (size_t i = FUZZ_PAGE; i < 2 * FUZZ_PAGE; i++)
		FUZZ_CHECK(fence[i] == FUZZ_CANARY);
	for (size_t i = 2 * FUZZ_PAGE + FUZZ_REGION; i < 3 * FUZZ_PAGE + FUZZ_REGION; i++)
		FUZZ_CHECK(fence[i] == FUZZ_CANARY);
	memset(region, 0, FUZZ_REGION);
	return 0;
}
