/* SPDX-License-Identifier: MIT */
/* A destination whose RAM userfaultfd cannot fill (here a private mapping of a regular file on a
 * disk filesystem) refuses post-copy at the handshake, before any page moves and before the VM
 * pauses: the source fails with -EOPNOTSUPP and a reason, its VM never stopped, the destination
 * never resumed. auto on the same pair falls back to the pre-copy family and completes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <linux/magic.h>

#include "integration/engine_harness.h"

#define RAM (16u << 20)

/* The file behind the destination's RAM; removed by the teardown, whatever the test did. */
static char dst_file[4096];

/* userfaultfd's missing mode takes anonymous memory, shared memory (tmpfs, memfd) and hugetlbfs,
 * never a private mapping of a file on any other filesystem. tmpfs (often /tmp), ramfs and
 * hugetlbfs files are shared memory it accepts, so the file goes where the filesystem keeps it on
 * disk: the first of $TMPDIR, /tmp, /var/tmp and the working directory (ctest's: the build tree)
 * that is not memory-backed. Returns the open file's descriptor, its path in dst_file, or -ENOENT
 * when every one of them is memory-backed. */
static int disk_backed_file(void)
{
	const char *candidates[] = {getenv("TMPDIR"), "/tmp", "/var/tmp", "."};

	for (size_t i = 0; i < sizeof(candidates) / sizeof(candidates[0]); i++) {
		struct statfs fs;
		int fd;

		if (!candidates[i] || !*candidates[i] || statfs(candidates[i], &fs))
			continue;
		if (fs.f_type == TMPFS_MAGIC || fs.f_type == RAMFS_MAGIC ||
		    fs.f_type == HUGETLBFS_MAGIC)
			continue;
		snprintf(dst_file, sizeof(dst_file), "%s/rmig-test-dst-XXXXXX", candidates[i]);
		fd = mkstemp(dst_file);
		if (fd >= 0)
			return fd;
		dst_file[0] = '\0';
	}
	return -ENOENT;
}

/* The destination's RAM as a private mapping of that file. The file stays until the teardown
 * (a network filesystem may lose a file that is open but unlinked). */
static void file_backed_destination(struct harness *h)
{
	int fd = disk_backed_file();

	if (fd < 0) {
		print_message("no disk-backed directory among $TMPDIR, /tmp, /var/tmp and the "
			      "working directory, and a private mapping of a file there is what "
			      "userfaultfd refuses\n");
		harness_fini(h);
		skip();
	}
	print_message("destination RAM: a private mapping of %s\n", dst_file);
	assert_int_equal(ftruncate(fd, RAM), 0);
	munmap(h->dst_ram, h->dst_length);
	h->dst_ram = mmap(NULL, RAM, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	assert_true(h->dst_ram != MAP_FAILED);
	close(fd);
}

static int remove_dst_file(void **state)
{
	(void)state;
	if (dst_file[0])
		unlink(dst_file);
	dst_file[0] = '\0';
	return 0;
}

static void test_postcopy_refused_keeps_source_running(void **state)
{
	struct rmig_stats st = {.struct_size = sizeof(st)};
	struct harness h;

	(void)state;
	HARNESS_SKIP_UNLESS_USABLE();
	harness_init(&h, harness_transport, RAM, 0);
	file_backed_destination(&h);
	h.params.field_mask = RMIG_PARAM_METHOD;
	h.params.method = RMIG_METHOD_POSTCOPY;
	harness_sessions(&h);
	harness_writer_start(&h);
	harness_run(&h);

	assert_int_equal(h.src_ret, -EOPNOTSUPP);
	assert_int_equal(h.dst_ret, -EOPNOTSUPP);
	assert_non_null(strstr(rmig_last_error(h.src), "fill its RAM after resume"));
	assert_false(atomic_load(&h.src_paused));
	assert_false(atomic_load(&h.dst_resumed));
	assert_int_equal(rmig_session_stats(h.src, &st), 0);
	assert_int_equal(st.status, RMIG_STATUS_FAILED);
	assert_int_equal(st.pages_sent, 0);
	harness_fini(&h);
}

static void test_auto_stays_precopy_when_destination_cannot_postcopy(void **state)
{
	struct rmig_stats st = {.struct_size = sizeof(st)};
	struct harness h;

	(void)state;
	HARNESS_SKIP_UNLESS_USABLE();
	harness_init(&h, harness_transport, RAM, 0);
	file_backed_destination(&h);
	h.params.field_mask = RMIG_PARAM_METHOD | RMIG_PARAM_BANDWIDTH_LIMIT;
	h.params.method = RMIG_METHOD_AUTO;
	/* a guest that would send auto to the post-copy family on a capable destination */
	h.params.bandwidth_limit = 8u << 20;
	harness_sessions(&h);
	harness_writer_start(&h);
	harness_run(&h);

	assert_int_equal(h.src_ret, 0);
	assert_int_equal(h.dst_ret, 0);
	assert_int_equal(rmig_session_stats(h.src, &st), 0);
	print_message("%s\n", rmig_session_method_reason(h.src));
	assert_true(st.method_used == RMIG_METHOD_PRECOPY || st.method_used == RMIG_METHOD_PREDICT);
	assert_non_null(strstr(rmig_session_method_reason(h.src), "(destination cannot)"));
	/* no test pulls from a destination that cannot post-copy */
	assert_int_equal(st.auto_fault_latency_us, 0);
	assert_memory_equal(h.src_ram, h.dst_ram, RAM);
	harness_fini(&h);
}

HARNESS_MAIN(cmocka_unit_test_teardown(test_postcopy_refused_keeps_source_running, remove_dst_file),
	     cmocka_unit_test_teardown(test_auto_stays_precopy_when_destination_cannot_postcopy,
				       remove_dst_file))
