/* SPDX-License-Identifier: MIT */
/* bindings/qemu/qemu_recv.c - `rmig qemu-recv`: the destination of `rmig qemu-send`. The
 * destination QEMU runs with the source's options plus -incoming defer; rmig maps the file of
 * its shared memory backend, sets the same capabilities as the source, starts QEMU's incoming
 * migration and receives the RAM into the file while QEMU waits. QEMU resumes the guest only
 * after the source has seen every page verified here and let its QEMU switch over. On any
 * failure after the incoming migration started, the destination QEMU is told to quit (it
 * would exit by itself once the source cancels): the guest keeps running on the source. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bindings/cli/cli.h"
#include "bindings/qemu/qemu_cli.h"
#include "bindings/qemu/qemu_vm.h"

struct qemu_recv {
	const struct qemu_cli_options *o;
	struct qemu_vm *vm;
	rmig_session_t *session;
	struct qemu_cli_progress progress;
	struct qemu_cli_signals sig;
	int incoming_started; /* migrate-incoming accepted */
	int ram_complete;     /* rmig's resume_vm: all RAM landed and verified */
	int qemu_gone;
	int resumed; /* the guest runs here */
	uint64_t start_us, ram_complete_us, resumed_us;
	uint64_t resume_event_us; /* QEMU's RESUME event (QEMU's clock) */
	struct qemu_migration qemu;
	char status[32];
	char error[QEMU_VM_ERROR_MAX];
};

static void recv_error(struct qemu_recv *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void recv_error(struct qemu_recv *r, const char *fmt, ...)
{
	va_list ap;

	if (r->error[0])
		return;
	va_start(ap, fmt);
	vsnprintf(r->error, sizeof(r->error), fmt, ap);
	va_end(ap);
}

/* A broken QMP connection means the destination QEMU exited: nothing can resume here. */
static int recv_watch(struct qemu_recv *r)
{
	json_t *event;
	int ret = 0;

	if (r->qemu_gone)
		return -ECONNRESET;
	if (qmp_poll(r->vm->qmp) == -ECONNRESET) {
		r->qemu_gone = 1;
		recv_error(r, "the destination QEMU went away (%s)", qmp_error(r->vm->qmp));
		ret = -ECONNRESET;
	}
	while (qmp_event_pop(r->vm->qmp, &event)) {
		const char *name = json_string_value(json_object_get(event, "event"));

		if (!strcmp(name, "RESUME"))
			r->resume_event_us = qmp_event_timestamp_us(event);
		json_decref(event);
	}
	return ret;
}

/* rmig: every page has landed and matches the source's hashes. The guest may run here once
 * the source's QEMU switches over; refuse if this QEMU is no longer waiting for it. */
static int recv_resume_vm(void *opaque)
{
	struct qemu_recv *r = opaque;
	struct qemu_migration m;
	int ret;

	ret = qemu_vm_migration(r->vm, &m);
	if (ret) {
		r->qemu_gone = ret == -ECONNRESET;
		recv_error(r, "%s", r->vm->error);
		return ret;
	}
	if (strcmp(m.status, "active") && strcmp(m.status, "setup")) {
		recv_error(r, "the destination QEMU's incoming migration is %s%s%s, not active",
			   m.status, m.error_desc[0] ? ": " : "", m.error_desc);
		return -EIO;
	}
	r->ram_complete = 1;
	r->ram_complete_us = qemu_cli_now_us();
	return 0;
}

static void recv_progress(void *opaque, uint32_t event, const struct rmig_stats *st)
{
	struct qemu_recv *r = opaque;

	qemu_cli_progress_event(&r->progress, event, st);
}

static int recv_wait_qemu(struct qemu_recv *r)
{
	uint64_t deadline = qemu_cli_now_us() + (uint64_t)r->o->mig.timeout_ms * 1000u;
	int running, ret;

	for (;;) {
		struct timespec ts = {.tv_nsec = 2 * 1000000L};

		ret = qemu_vm_migration(r->vm, &r->qemu);
		if (ret) {
			if (ret == -ECONNRESET) {
				r->qemu_gone = 1;
				recv_error(r, "the destination QEMU exited before its switchover "
					      "(its incoming migration failed, or the source "
					      "cancelled it)");
			} else {
				recv_error(r, "%s", r->vm->error);
			}
			return ret;
		}
		if (!strcmp(r->qemu.status, "completed"))
			break;
		if (qemu_cli_signals_received(&r->sig)) {
			recv_error(r, "interrupted (%s) while waiting for QEMU's switchover",
				   strsignal(qemu_cli_signals_received(&r->sig)));
			return -EINTR;
		}
		if (!strcmp(r->qemu.status, "failed") || !strcmp(r->qemu.status, "cancelled")) {
			recv_error(r, "the destination QEMU's incoming migration %s%s%s",
				   r->qemu.status, r->qemu.error_desc[0] ? ": " : "",
				   r->qemu.error_desc);
			return -EIO;
		}
		if (qemu_cli_now_us() > deadline) {
			recv_error(r,
				   "the source did not switch QEMU over within %u ms after rmig "
				   "finished (QEMU status %s)",
				   r->o->mig.timeout_ms, r->qemu.status);
			return -ETIMEDOUT;
		}
		nanosleep(&ts, NULL);
	}
	ret = qemu_vm_status(r->vm, r->status, sizeof(r->status), &running);
	if (ret) {
		recv_error(r, "%s", r->vm->error);
		return ret;
	}
	r->resumed_us = qemu_cli_now_us();
	r->resumed = running;
	recv_watch(r);
	return 0;
}

static int recv_check_destination(struct qemu_recv *r)
{
	struct qemu_migration m;
	int ret;

	ret = qemu_vm_status(r->vm, r->status, sizeof(r->status), NULL);
	if (ret)
		return ret;
	if (strcmp(r->status, "inmigrate"))
		return snprintf(r->vm->error, sizeof(r->vm->error),
				"the destination QEMU is in state %s: start it with the source's "
				"options plus -incoming defer",
				r->status),
		       -EINVAL;
	ret = qemu_vm_migration(r->vm, &m);
	if (ret)
		return ret;
	if (strcmp(m.status, "none"))
		return snprintf(r->vm->error, sizeof(r->vm->error),
				"the destination QEMU's incoming migration has already started "
				"(status %s): start it with -incoming defer, so that rmig sets the "
				"capabilities first",
				m.status),
		       -EBUSY;
	return 0;
}

static void recv_report(struct qemu_recv *r, int ok, const char *rmig_error)
{
	struct rmig_stats st = {.struct_size = sizeof(st)};
	const char *guest = ok ? "running on the destination"
			       : (r->incoming_started ? "discarded here (the source keeps it)"
						      : "never received");
	char b1[32];

	rmig_session_stats(r->session, &st);
	if (r->o->mig.json) {
		json_t *report = json_object(), *qemu = json_object();
		char *text;

		json_object_set_new(report, "command", json_string("qemu-recv"));
		json_object_set_new(report, "status", json_string(ok ? "completed" : "failed"));
		json_object_set_new(report, "error",
				    json_string(r->error[0] ? r->error : rmig_error));
		json_object_set_new(report, "guest", json_string(guest));
		qemu_cli_json_rmig(report, r->o, &st);
		json_object_set_new(qemu, "version", json_string(qmp_qemu_version(r->vm->qmp)));
		json_object_set_new(qemu, "uri", json_string(r->o->qemu_uri));
		json_object_set_new(qemu, "status",
				    json_string(r->qemu.status[0] ? r->qemu.status : "none"));
		json_object_set_new(qemu, "run_state", json_string(r->status));
		json_object_set_new(qemu, "resume_timestamp_us",
				    json_integer((json_int_t)r->resume_event_us));
		json_object_set_new(
			qemu, "ram_complete_to_resume_ms",
			json_real(r->resumed_us
					  ? (double)(r->resumed_us - r->ram_complete_us) / 1000.0
					  : -1.0));
		json_object_set_new(report, "qemu", qemu);
		text = json_dumps(report, JSON_COMPACT);
		if (text)
			printf("%s\n", text);
		free(text);
		json_decref(report);
		return;
	}
	printf("\nrmig qemu-recv: %s of guest RAM in %zu shared backend%s",
	       qemu_cli_bytes(st.ram_bytes, b1, sizeof(b1)), r->vm->nram,
	       r->vm->nram == 1 ? "" : "s");
	for (size_t i = 0; i < r->vm->nram; i++)
		printf("%s%s = %s", i ? ", " : " (", r->vm->ram[i].id, r->vm->ram[i].path);
	printf(")\n");
	printf("  %-30s %s\n", "result", ok ? "completed" : "failed");
	if (!ok)
		printf("  %-30s %s\n", "error", r->error[0] ? r->error : rmig_error);
	printf("  %-30s %s\n", "guest", guest);
	qemu_cli_report_rmig(r->o, &st, 0);
	printf("  %-30s QEMU %s on %s, status %s, run state %s\n", "QEMU incoming migration",
	       qmp_qemu_version(r->vm->qmp), r->o->qemu_uri,
	       r->qemu.status[0] ? r->qemu.status : "none", r->status);
	if (r->resumed_us)
		printf("  %-30s %.1f ms (rmig's last page to QEMU's resume)\n",
		       "switchover after the RAM",
		       (double)(r->resumed_us - r->ram_complete_us) / 1000.0);
}

int rmig_cli_qemu_recv(int argc, char **argv)
{
	struct qemu_cli_options o;
	struct qemu_recv r = {0};
	struct rmig_params params;
	struct rmig_callbacks cb = {
		.field_mask = RMIG_CB_RESUME_VM | RMIG_CB_PROGRESS,
		.resume_vm = recv_resume_vm,
		.progress = recv_progress,
	};
	char open_error[QEMU_VM_ERROR_MAX], uri[QEMU_CLI_URI_MAX], size[32];
	uint64_t ram_bytes = 0;
	int ret, ok = 0;

	ret = qemu_cli_parse(argc, argv, 0, &o);
	if (ret)
		return ret > 0 ? 0 : 2;
	r.o = &o;
	qemu_cli_progress_init(&r.progress, "qemu-recv", 0);
	qemu_cli_log_install(&r.progress);
	ret = qemu_cli_signals_start(&r.sig, &r.progress);
	if (ret) {
		fprintf(stderr, "rmig qemu-recv: cannot watch for signals: %s\n", strerror(-ret));
		return 1;
	}
	ret = qemu_vm_open(o.qmp, "destination QEMU", 30000, &r.vm, open_error);
	if (ret) {
		fprintf(stderr, "rmig qemu-recv: %s\n", open_error);
		qemu_cli_signals_stop(&r.sig);
		return 1;
	}
	ret = qemu_vm_detect_rmig(r.vm);
	if (ret >= 0)
		ret = recv_check_destination(&r);
	if (ret >= 0)
		ret = qemu_vm_ram_find(r.vm);
	if (ret >= 0)
		ret = qemu_vm_ram_map(r.vm, 1);
	if (ret >= 0)
		ret = qemu_vm_set_capabilities(r.vm);
	if (ret < 0) {
		fprintf(stderr, "rmig qemu-recv: %s\n", r.vm->error);
		goto out_vm;
	}

	qemu_cli_params(&o, &params);
	ret = rmig_session_create(RMIG_ROLE_DESTINATION, &r.session);
	if (ret) {
		fprintf(stderr, "rmig qemu-recv: %s\n", rmig_strerror(ret));
		goto out_vm;
	}
	qemu_cli_signals_session(&r.sig, r.session);
	ret = rmig_session_set_params(r.session, &params);
	if (!ret)
		ret = qemu_cli_session_apply(&o, r.session);
	if (!ret)
		ret = rmig_session_set_callbacks(r.session, &cb, &r);
	for (size_t i = 0; i < r.vm->nram && !ret; i++) {
		ret = rmig_region_add(r.session, (uint32_t)i, r.vm->ram[i].addr, r.vm->ram[i].size,
				      QEMU_PAGE_SIZE);
		ram_bytes += r.vm->ram[i].size;
	}
	if (ret) {
		fprintf(stderr, "rmig qemu-recv: session setup: %s\n", rmig_strerror(ret));
		goto out_session;
	}
	ret = rmig_session_listen(r.session, o.listen);
	if (!ret)
		ret = rmig_session_listen_uri(r.session, uri, sizeof(uri));
	if (ret) {
		fprintf(stderr, "rmig qemu-recv: listen on %s: %s\n", o.listen,
			rmig_last_error(r.session));
		goto out_session;
	}
	ret = qemu_vm_command(r.vm, "migrate-incoming", json_pack("{s:s}", "uri", o.qemu_uri),
			      NULL);
	if (ret) {
		fprintf(stderr, "rmig qemu-recv: %s%s\n", r.vm->error,
			strstr(r.vm->error, "already been started")
				? "; start it with -incoming defer, so that rmig sets the "
				  "capabilities first"
				: "");
		goto out_session;
	}
	r.incoming_started = 1;
	qemu_cli_note(&r.progress,
		      "waiting for rmig qemu-send on %s (%s of guest RAM for QEMU %s; QEMU waits "
		      "on %s)",
		      uri, qemu_cli_bytes(ram_bytes, size, sizeof(size)),
		      qmp_qemu_version(r.vm->qmp), o.qemu_uri);
	r.start_us = qemu_cli_now_us();
	ret = rmig_session_start(r.session);
	while (!ret) {
		ret = rmig_session_wait(r.session, 100);
		if (ret != -ETIMEDOUT)
			break;
		ret = 0;
		if (recv_watch(&r)) {
			rmig_session_cancel(r.session);
			ret = rmig_session_wait(r.session, -1);
			if (!ret)
				ret = -ECONNRESET;
			break;
		}
	}
	if (!ret) {
		qemu_cli_note(&r.progress, "all RAM is here and verified; waiting for QEMU's "
					   "switchover");
		ret = recv_wait_qemu(&r);
	}
	ok = !ret;
	/* librmig does not print the errors it returns: say why here. */
	if (!ok && rmig_last_error(r.session)[0])
		qemu_cli_note(&r.progress, "%s", rmig_last_error(r.session));
	if (!ok && r.incoming_started && !r.qemu_gone) {
		/* QEMU cannot take another incoming migration: discard it. QEMU may close the
		 * monitor on its way out before its answer is read: that is the quit done. */
		int quit = qemu_vm_command(r.vm, "quit", NULL, NULL);

		if (quit == 0 || quit == -ECONNRESET)
			qemu_cli_note(&r.progress,
				      "migration failed; the destination QEMU was told "
				      "to quit (the guest stays on the source)");
		else
			qemu_cli_note(&r.progress,
				      "migration failed (the guest stays on the source); the "
				      "destination QEMU did not take quit: %s; stop it yourself",
				      r.vm->error);
	} else if (!ok) {
		qemu_cli_note(&r.progress, "migration failed; the guest stays on the source");
	} else {
		qemu_cli_note(&r.progress, "the guest runs here (QEMU status %s)", r.status);
	}
	recv_report(&r, ok, ret ? rmig_last_error(r.session) : "");

out_session:
	qemu_cli_signals_session(&r.sig, NULL);
	rmig_session_destroy(r.session);
out_vm:
	qemu_vm_close(r.vm);
	qemu_cli_signals_stop(&r.sig);
	return ok ? 0 : 1;
}
