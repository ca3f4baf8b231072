/* SPDX-License-Identifier: MIT */
/* Post-copy recovery: the connection of a post-copy migration is cut (both ends' sockets shut
 * down, as a reset would) while the VM already runs on the destination and most of its pages are
 * still on the source. Neither end gives up: both enter "recovering" (the source's progress
 * callback hears RMIG_EVENT_RECOVERING, then RMIG_EVENT_RECOVERED), a guest thread on the
 * destination that reads every page waits through the cut, a new connection carries the tail on
 * (the destination listening on its first URI again, the source connecting to it again; or both
 * on a new port the operator names with rmig_session_recover(), which the source's new
 * connection then goes to), and the destination's RAM ends
 * identical to the source's. Cut at the resume itself, the destination's acknowledgement of the
 * resume is lost with the connection: the source, which cannot know whether the VM runs there,
 * recovers too and learns it from the recovery. tcp only: the cut is a real one on the
 * sockets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "engine/session.h"
#include "integration/engine_harness.h"
#include "transport/transport.h"

#define RAM (64u << 20)
/* The tail takes about 4 s at this rate: long enough to cut it in the middle. */
#define BANDWIDTH (16u << 20)
/* Three cases in one ctest run of at most 240 s. */
#define RECOVERY_WINDOW_MS 45000u

struct recovery_test {
	struct harness *h;
	int new_path;	   /* point both ends at another port before the cut */
	int cut_at_resume; /* cut inside the destination's resume_vm, before it acknowledges */
	pthread_t cutter;
	pthread_t reader;
	int reader_started;
	atomic_int recovering_events;
	atomic_int recovered_events;
	atomic_int cut;
	atomic_ullong reader_pages;
	/* Signalled whenever the guest on the destination read a page after the resume (every
	 * page comes with the tail: post-copy sends nothing before it) and when the migration
	 * ended: what the cutter waits on. */
	pthread_mutex_t lock;
	pthread_cond_t changed;
	int page_read;
	int ended;
	char new_uri[64];
	char recovered_over[TRANSPORT_URI_MAX]; /* the source's peer once recovered */
};

static struct recovery_test *current;

static uint32_t status_of(rmig_session_t *s, struct rmig_stats *st)
{
	st->struct_size = sizeof(*st);
	assert_int_equal(rmig_session_stats(s, st), 0);
	return st->status;
}

static void signal_change(struct recovery_test *t, int *flag)
{
	pthread_mutex_lock(&t->lock);
	*flag = 1;
	pthread_cond_broadcast(&t->changed);
	pthread_mutex_unlock(&t->lock);
}

/* The migration's tcp connections are the only connected sockets of this process. */
static int cut_connections(void)
{
	DIR *dir = opendir("/proc/self/fd");
	struct dirent *e;
	int cut = 0;

	assert_non_null(dir);
	while ((e = readdir(dir))) {
		struct sockaddr_in peer;
		socklen_t len = sizeof(peer);
		int fd = atoi(e->d_name), listening = 0;
		socklen_t olen = sizeof(listening);
		struct stat st;

		if (fd <= 2 || fstat(fd, &st) || !S_ISSOCK(st.st_mode))
			continue;
		if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &olen) || listening)
			continue;
		if (getpeername(fd, (struct sockaddr *)&peer, &len) || peer.sin_family != AF_INET)
			continue;
		shutdown(fd, SHUT_RDWR);
		cut++;
	}
	closedir(dir);
	return cut;
}

/* A port nobody listens on now. */
static uint16_t free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	close(fd);
	return ntohs(a.sin_port);
}

/* The guest on the destination after its resume: reads every page (each missing one faults
 * and waits, through the cut). */
static void *reader_main(void *arg)
{
	struct recovery_test *t = arg;
	struct harness *h = t->h;
	volatile unsigned char sink = 0;

	for (size_t p = harness_pages(h); p-- > 0;) {
		sink ^= h->dst_ram[p * HARNESS_PAGE + 8];
		atomic_fetch_add(&t->reader_pages, 1);
		signal_change(t, &t->page_read);
	}
	(void)sink;
	return NULL;
}

static void on_dst_resume(struct harness *h)
{
	struct recovery_test *t = current;

	(void)h;
	assert_int_equal(pthread_create(&t->reader, NULL, reader_main, t), 0);
	t->reader_started = 1;
	if (t->cut_at_resume) {
		assert_true(cut_connections() >= 1);
		atomic_store(&t->cut, 1);
	}
}

static void on_progress(struct harness *h, uint32_t event, const struct rmig_stats *st)
{
	if (event == RMIG_EVENT_DONE)
		signal_change(current, &current->ended);
	if (event == RMIG_EVENT_RECOVERING) {
		assert_int_equal(st->status, RMIG_STATUS_RECOVERING);
		atomic_fetch_add(&current->recovering_events, 1);
	}
	if (event == RMIG_EVENT_RECOVERED) {
		assert_int_equal(st->status, RMIG_STATUS_POSTCOPY);
		/* On the migration thread: the new connection is the session's now. */
		snprintf(current->recovered_over, sizeof(current->recovered_over), "%s",
			 h->src->conn->peer);
		atomic_fetch_add(&current->recovered_events, 1);
	}
}

/* Once the tail runs and some pages arrived (not all), cut the connection: woken by each page
 * the destination's guest reads after the resume, or by the end of the migration (then it is
 * too late). The deadline only bounds a failing run. */
static void *cutter_main(void *arg)
{
	struct recovery_test *t = arg;
	struct harness *h = t->h;
	struct timespec deadline;
	struct rmig_stats st;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += 120;
	pthread_mutex_lock(&t->lock);
	while (!t->ended) {
		if (t->page_read && status_of(h->dst, &st) == RMIG_STATUS_POSTCOPY)
			break;
		t->page_read = 0;
		if (pthread_cond_timedwait(&t->changed, &t->lock, &deadline))
			break;
	}
	pthread_mutex_unlock(&t->lock);
	if (status_of(h->dst, &st) != RMIG_STATUS_POSTCOPY ||
	    st.postcopy_pages * HARNESS_PAGE >= RAM)
		return NULL; /* too late: the test fails on cut == 0 */
	if (t->new_path) {
		uint16_t port = free_port();

		snprintf(t->new_uri, sizeof(t->new_uri), "tcp://127.0.0.1:%u", port);
		/* Before the cut: kept for the recovery, on both ends. */
		assert_int_equal(rmig_session_recover(h->dst, t->new_uri), 0);
		assert_int_equal(rmig_session_recover(h->src, t->new_uri), 0);
	}
	/* One end's socket is enough; the other end may close its own as soon as it sees the
	 * first one go, before this gets to it. */
	assert_true(cut_connections() >= 1);
	atomic_store(&t->cut, 1);
	return NULL;
}

static void migrate_and_cut(int new_path, int cut_at_resume)
{
	struct rmig_stats src = {.struct_size = sizeof(src)};
	struct rmig_stats dst = {.struct_size = sizeof(dst)};
	struct recovery_test t = {.new_path = new_path, .cut_at_resume = cut_at_resume};
	struct harness h;

	pthread_mutex_init(&t.lock, NULL);
	pthread_cond_init(&t.changed, NULL);
	harness_init(&h, harness_transport, RAM, 5);
	t.h = &h;
	current = &t;
	h.params.field_mask = RMIG_PARAM_METHOD | RMIG_PARAM_BANDWIDTH_LIMIT;
	h.params.method = RMIG_METHOD_POSTCOPY;
	h.params.bandwidth_limit = BANDWIDTH;
	h.on_dst_resume = on_dst_resume;
	h.on_progress = on_progress;
	/* A recovery that never comes must fail this test, not outlast ctest's timeout: each end
	 * gives up (the VM lost) after 45 s, far beyond a reconnection over loopback. */
	h.recovery_window_ms = RECOVERY_WINDOW_MS;
	harness_sessions(&h);
	if (!cut_at_resume)
		assert_int_equal(pthread_create(&t.cutter, NULL, cutter_main, &t), 0);
	harness_run(&h);
	if (!cut_at_resume)
		pthread_join(t.cutter, NULL);
	/* Before joining the guest's reader: a lost VM leaves it waiting on a page for good. */
	assert_true(atomic_load(&t.cut));
	assert_int_equal(h.src_ret, 0);
	assert_int_equal(h.dst_ret, 0);
	if (t.reader_started)
		pthread_join(t.reader, NULL);

	assert_int_equal(atomic_load(&h.dst_resumed), 1);
	assert_int_equal(atomic_load(&h.src_resumed), 0);
	assert_int_equal(atomic_load(&t.reader_pages), harness_pages(&h));
	assert_memory_equal(h.src_ram, h.dst_ram, h.src_length);
	assert_int_equal(status_of(h.src, &src), RMIG_STATUS_COMPLETED);
	assert_int_equal(status_of(h.dst, &dst), RMIG_STATUS_COMPLETED);
	assert_true(src.recoveries >= 1);
	assert_true(dst.recoveries >= 1);
	assert_true(atomic_load(&t.recovering_events) >= 1);
	assert_int_equal(atomic_load(&t.recovering_events), atomic_load(&t.recovered_events));
	/* Every page was delivered after the resume, by push or pull, some twice (in flight at
	 * the cut). */
	assert_int_equal(src.postcopy_pages, harness_pages(&h));
	assert_int_equal(dst.postcopy_pages, harness_pages(&h));
	assert_string_equal(rmig_last_error(h.src), "");
	/* The tail went on over the path the operator named, or over the first one. */
	if (new_path)
		assert_string_equal(t.recovered_over, t.new_uri);
	else
		assert_string_equal(t.recovered_over, h.src->peer_uri);
	harness_fini(&h);
	pthread_cond_destroy(&t.changed);
	pthread_mutex_destroy(&t.lock);
}

static void test_postcopy_recovers_on_the_same_path_after_connection_cut(void **state)
{
	(void)state;
	HARNESS_SKIP_UNLESS_USABLE();
	migrate_and_cut(0, 0);
}

static void test_postcopy_recovers_on_a_new_path_the_operator_names(void **state)
{
	(void)state;
	HARNESS_SKIP_UNLESS_USABLE();
	migrate_and_cut(1, 0);
}

static void test_postcopy_recovers_when_the_resume_acknowledgement_is_lost(void **state)
{
	(void)state;
	HARNESS_SKIP_UNLESS_USABLE();
	migrate_and_cut(0, 1);
}

HARNESS_MAIN(cmocka_unit_test(test_postcopy_recovers_on_the_same_path_after_connection_cut),
	     cmocka_unit_test(test_postcopy_recovers_on_a_new_path_the_operator_names),
	     cmocka_unit_test(test_postcopy_recovers_when_the_resume_acknowledgement_is_lost))
