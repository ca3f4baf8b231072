/* SPDX-License-Identifier: MIT */
/* A destination facing a source that breaks the rules (a bare transport peer speaking the
 * engine protocol by hand) refuses, says why, and never resumes the VM: a run that is not whole
 * pages, a resume before every page arrived, device state damaged on the way, a message out
 * of place, and page runs to hash outside its RAM. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <xxhash.h>

#include "engine/protocol.h"
#include "integration/engine_harness.h"
#include "transport/transport.h"

static unsigned char msg[TRANSPORT_CTRL_MAX];

/* The destination's next message that is not a heartbeat. */
static void broken_source_recv(struct transport_conn *conn, struct transport_msg *in, int expected)
{
	const void *payload;
	size_t len;
	int type;

	do {
		assert_int_equal(transport_recv(conn, in, 10000), 0);
		type = protocol_parse(in->data, in->len, &payload, &len, NULL, 0);
	} while (type == PROTOCOL_HEARTBEAT);
	assert_int_equal(type, expected);
}

/* Connect to h's destination and get through hello and the region table by hand. */
static struct transport_conn *broken_source_connect(struct harness *h)
{
	struct protocol_region table = {
		.id = HARNESS_REGION_ID, .page_shift = 12, .length = h->dst_length};
	struct protocol_hello hello = {.protocol_version = PROTOCOL_VERSION, .region_count = 1};
	struct transport_conn *conn;
	struct transport_msg in;
	char uri[256];

	assert_int_equal(rmig_session_listen_uri(h->dst, uri, sizeof(uri)), 0);
	assert_int_equal(rmig_session_start(h->dst), 0);
	assert_int_equal(transport_connect(uri, NULL, &conn), 0);
	assert_int_equal(transport_ctrl_send(conn, msg, protocol_hello_to_wire(&hello, msg)), 0);
	broken_source_recv(conn, &in, PROTOCOL_HELLO_ACK);
	assert_int_equal(transport_region_register(conn, HARNESS_REGION_ID, h->src_ram,
						   h->src_length, TRANSPORT_ACCESS_LOCAL),
			 0);
	assert_int_equal(
		transport_ctrl_send(conn, msg, protocol_region_table_to_wire(&table, 1, msg)), 0);
	broken_source_recv(conn, &in, PROTOCOL_REGION_ACK);
	return conn;
}

static void broken_source_setup(struct harness *h)
{
	struct rmig_callbacks dst_cb = {0};

	harness_init(h, harness_transport, 1u << 20, 0);
	assert_int_equal(rmig_session_create(RMIG_ROLE_DESTINATION, &h->dst), 0);
	assert_int_equal(rmig_session_set_callbacks(h->dst, &dst_cb, h), 0);
	/* The hand-made source proves no key and sends no heartbeats. */
	assert_int_equal(rmig_session_set_insecure(h->dst, 1), 0);
	assert_int_equal(rmig_session_set_peer_timeout(h->dst, HARNESS_PEER_TIMEOUT_MS), 0);
	assert_int_equal(
		rmig_region_add(h->dst, HARNESS_REGION_ID, h->dst_ram, h->dst_length, HARNESS_PAGE),
		0);
	assert_int_equal(rmig_session_listen(h->dst, h->listen_uri), 0);
}

static void test_dest_refuses_run_that_is_not_whole_pages(void **state)
{
	const struct transport_run run = {
		.region_id = HARNESS_REGION_ID, .offset = 100, .length = HARNESS_PAGE};
	struct transport_conn *conn;
	struct harness h;

	(void)state;
	HARNESS_SKIP_UNLESS_USABLE();
	broken_source_setup(&h);
	conn = broken_source_connect(&h);
	assert_int_equal(transport_batch_post(conn, 1, &run, 1), 0);
	assert_int_equal(rmig_session_wait(h.dst, 20000), -EPROTO);
	assert_non_null(strstr(rmig_last_error(h.dst), "offset 100"));
	assert_non_null(strstr(rmig_last_error(h.dst), "not whole pages"));
	transport_close(conn);
	harness_fini(&h);
}

static void test_dest_refuses_resume_before_every_page_arrived(void **state)
{
	const struct transport_run run = {
		.region_id = HARNESS_REGION_ID, .offset = 0, .length = HARNESS_PAGE};
	struct protocol_device_state device = {.last = 1};
	struct protocol_resume resume = {0};
	struct rmig_stats st = {.struct_size = sizeof(st)};
	struct transport_conn *conn;
	struct harness h;

	(void)state;
	HARNESS_SKIP_UNLESS_USABLE();
	broken_source_setup(&h);
	conn = broken_source_connect(&h);
	device.digest = XXH64(NULL, 0, 0); /* no device state: the digest of nothing */
	assert_int_equal(transport_batch_post(conn, 1, &run, 1), 0);
	assert_int_equal(
		transport_ctrl_send(conn, msg, protocol_device_state_to_wire(&device, msg)), 0);
	assert_int_equal(transport_ctrl_send(conn, msg, protocol_resume_to_wire(&resume, msg)), 0);
	assert_int_equal(rmig_session_wait(h.dst, 20000), -EIO);
	assert_non_null(strstr(rmig_last_error(h.dst), "255 of 256 pages"));
	assert_int_equal(rmig_session_stats(h.dst, &st), 0);
	assert_int_equal(st.pages_received, 1);
	assert_int_equal(st.status, RMIG_STATUS_FAILED);
	transport_close(conn);
	harness_fini(&h);
}

/* Device state whose digest does not match what arrived (a byte changed after the source read
 * it, by anything on the way) is refused at its last message, before a resume could be asked
 * for, and the error names the source's digest. */
static void test_dest_refuses_device_state_damaged_on_the_way(void **state)
{
	static const char sent[] = "device state as the source read it";
	static const char arrived[] = "device state as the sourcE read it";
	struct protocol_device_state chunk = {.length = sizeof(arrived), .data = arrived};
	struct protocol_device_state last = {
		.offset = sizeof(arrived), .last = 1, .digest = XXH64(sent, sizeof(sent), 0)};
	struct rmig_stats st = {.struct_size = sizeof(st)};
	struct transport_conn *conn;
	struct harness h;
	char hex[17];

	(void)state;
	HARNESS_SKIP_UNLESS_USABLE();
	broken_source_setup(&h);
	conn = broken_source_connect(&h);
	assert_int_equal(transport_ctrl_send(conn, msg, protocol_device_state_to_wire(&chunk, msg)),
			 0);
	assert_int_equal(transport_ctrl_send(conn, msg, protocol_device_state_to_wire(&last, msg)),
			 0);
	assert_int_equal(rmig_session_wait(h.dst, 20000), -EBADMSG);
	assert_non_null(strstr(rmig_last_error(h.dst), "device state damaged on the way"));
	snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)last.digest);
	assert_non_null(strstr(rmig_last_error(h.dst), hex));
	assert_int_equal(rmig_session_stats(h.dst, &st), 0);
	assert_int_equal(st.status, RMIG_STATUS_FAILED);
	transport_close(conn);
	harness_fini(&h);
}

static void test_dest_refuses_message_out_of_place(void **state)
{
	struct protocol_hello hello = {.protocol_version = PROTOCOL_VERSION, .region_count = 1};
	struct transport_conn *conn;
	struct harness h;

	(void)state;
	HARNESS_SKIP_UNLESS_USABLE();
	broken_source_setup(&h);
	conn = broken_source_connect(&h);
	/* A second hello in the middle of the migration. */
	assert_int_equal(transport_ctrl_send(conn, msg, protocol_hello_to_wire(&hello, msg)), 0);
	assert_int_equal(rmig_session_wait(h.dst, 20000), -EPROTO);
	assert_non_null(strstr(rmig_last_error(h.dst), "hello during the migration"));
	transport_close(conn);
	harness_fini(&h);
}

/* A VERIFY_RUNS is answered with the hashes of exactly the pages it names, in one message; one
 * whose last run goes past the end of the region is refused, and the error says so. */
static void test_dest_answers_verify_runs_and_refuses_runs_outside_the_region(void **state)
{
	const struct protocol_page_run inside[2] = {{.first_page = 3, .npages = 2},
						    {.first_page = 250, .npages = 6}};
	const struct protocol_page_run outside[2] = {{.first_page = 3, .npages = 2},
						     {.first_page = 250, .npages = 7}};
	struct protocol_verify_hashes hashes;
	struct transport_conn *conn;
	struct transport_msg in;
	const void *payload;
	size_t len;
	struct harness h;

	(void)state;
	HARNESS_SKIP_UNLESS_USABLE();
	broken_source_setup(&h);
	conn = broken_source_connect(&h);
	assert_int_equal(
		transport_ctrl_send(
			conn, msg, protocol_verify_runs_to_wire(HARNESS_REGION_ID, inside, 2, msg)),
		0);
	broken_source_recv(conn, &in, PROTOCOL_VERIFY_HASHES);
	assert_int_equal(protocol_parse(in.data, in.len, &payload, &len, NULL, 0),
			 PROTOCOL_VERIFY_HASHES);
	assert_int_equal(protocol_verify_hashes_from_wire(payload, len, &hashes, NULL, 0), 0);
	assert_int_equal(hashes.region_id, HARNESS_REGION_ID);
	assert_int_equal(hashes.first_page, 3);
	assert_int_equal(hashes.count, 2 + 6);
	assert_int_equal(transport_ctrl_send(
				 conn, msg,
				 protocol_verify_runs_to_wire(HARNESS_REGION_ID, outside, 2, msg)),
			 0);
	assert_int_equal(rmig_session_wait(h.dst, 20000), -EPROTO);
	assert_non_null(strstr(rmig_last_error(h.dst), "outside the regions"));
	transport_close(conn);
	harness_fini(&h);
}

HARNESS_MAIN(cmocka_unit_test(test_dest_refuses_run_that_is_not_whole_pages),
	     cmocka_unit_test(test_dest_refuses_resume_before_every_page_arrived),
	     cmocka_unit_test(test_dest_refuses_device_state_damaged_on_the_way),
	     cmocka_unit_test(test_dest_refuses_message_out_of_place),
	     cmocka_unit_test(test_dest_answers_verify_runs_and_refuses_runs_outside_the_region))
