/* SPDX-License-Identifier: MIT */
/* bindings/qemu/qemu_send.c - `rmig qemu-send`: live-migrate the guest of an unmodified QEMU.
 *
 * rmig reads the guest RAM from the file behind QEMU's shared memory backend and carries it
 * while the guest runs (dirty pages found by content hashes). QEMU, with x-ignore-shared, sends
 * only the device state and the little RAM outside the shared backends. The order decides the
 * downtime: with x-ignore-shared QEMU's own migration converges at once and stops the guest, so
 * `migrate` is issued only when rmig's stop decision falls (the pause_vm callback), and
 * pause-before-switchover holds QEMU, guest paused, in `pre-switchover` while rmig sends the
 * last dirty pages and verifies them against hashes the destination computes. Only then does
 * `migrate-continue` let QEMU finish; the guest resumes on the destination.
 *
 * On any failure before that point the guest keeps running here: QEMU's migration is
 * cancelled (QEMU restarts the vCPUs it stopped; `cont` if they are still stopped), the
 * capabilities are put back as they were, and the destination, which never saw QEMU's
 * switchover, is discarded. */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bindings/cli/cli.h"
#include "bindings/qemu/qemu_cli.h"
#include "bindings/qemu/qemu_vm.h"

struct qemu_send {
	const struct qemu_cli_options *o;
	struct qemu_vm *vm;
	rmig_session_t *session;
	struct qemu_cli_progress progress;
	struct qemu_cli_signals sig;
	char status_at_start[32];
	int running_at_start;
	int running_at_pause;  /* the vCPUs ran when `migrate` was issued */
	int migration_started; /* our `migrate` is in flight (not cancelled) */
	int switched_over;     /* `migrate-continue` issued */
	int completed;	       /* QEMU reported completed: the guest is the destination's */
	int qemu_gone;	       /* the QMP connection broke */
	int hook_status;       /* -1: not run */
	uint64_t start_us, migrate_us, paused_us, continue_us, completed_us;
	uint64_t hook_us;
	uint64_t stop_event_us; /* QEMU's STOP event after `migrate` (QEMU's clock) */
	struct qemu_migration qemu;
	char error[QEMU_VM_ERROR_MAX]; /* the first error on the QEMU side */
};

static void send_error(struct qemu_send *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void send_error(struct qemu_send *s, const char *fmt, ...)
{
	va_list ap;

	if (s->error[0])
		return;
	va_start(ap, fmt);
	vsnprintf(s->error, sizeof(s->error), fmt, ap);
	va_end(ap);
}

/* A signal asked to cancel: refuse to go further (until QEMU was told to switch over). */
static int send_interrupted(struct qemu_send *s)
{
	int signo = qemu_cli_signals_received(&s->sig);

	if (!signo)
		return 0;
	send_error(s, "interrupted (%s)", strsignal(signo));
	return -EINTR;
}

static void send_sleep_ms(unsigned ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

/* Read what QEMU sent meanwhile: a broken QMP connection or a guest that shut down ends the
 * migration. Returns 0 or -errno (after cancelling the session). */
static int send_watch(struct qemu_send *s)
{
	json_t *event;
	int ret = 0;

	if (s->qemu_gone)
		return -ECONNRESET;
	if (qmp_poll(s->vm->qmp) == -ECONNRESET) {
		s->qemu_gone = 1;
		send_error(s, "the source QEMU went away during the migration (%s)",
			   qmp_error(s->vm->qmp));
		ret = -ECONNRESET;
	}
	while (qmp_event_pop(s->vm->qmp, &event)) {
		const char *name = json_string_value(json_object_get(event, "event"));

		if (!strcmp(name, "STOP") && s->migration_started) {
			s->stop_event_us = qmp_event_timestamp_us(event);
		} else if (!strcmp(name, "SHUTDOWN") || !strcmp(name, "GUEST_PANICKED")) {
			send_error(s, "the source QEMU reported %s during the migration", name);
			ret = -ESHUTDOWN;
		}
		json_decref(event);
	}
	if (ret && s->session)
		rmig_session_cancel(s->session);
	return ret;
}

/* Poll query-migrate until QEMU's migration reaches `want`. */
static int send_wait_status(struct qemu_send *s, const char *want)
{
	uint64_t deadline = qemu_cli_now_us() + (uint64_t)s->o->mig.timeout_ms * 1000u;
	int ret;

	for (;;) {
		ret = qemu_vm_migration(s->vm, &s->qemu);
		if (ret) {
			if (ret == -ECONNRESET)
				s->qemu_gone = 1;
			send_error(s, "%s", s->vm->error);
			return ret;
		}
		if (!strcmp(s->qemu.status, want))
			return 0;
		if (!s->switched_over && send_interrupted(s))
			return -EINTR;
		if (!strcmp(s->qemu.status, "failed") || !strcmp(s->qemu.status, "cancelled") ||
		    !strcmp(s->qemu.status, "completed") || !strcmp(s->qemu.status, "none")) {
			send_error(s,
				   "QEMU's own migration to %s ended %s instead of reaching %s%s%s",
				   s->o->qemu_uri, s->qemu.status, want,
				   s->qemu.error_desc[0] ? ": " : "", s->qemu.error_desc);
			if (strcmp(s->qemu.status, "completed"))
				s->migration_started = 0;
			else
				s->completed = 1;
			return -EIO;
		}
		if (qemu_cli_now_us() > deadline) {
			send_error(s,
				   "QEMU's own migration did not reach %s within %u ms (status %s)",
				   want, s->o->mig.timeout_ms, s->qemu.status);
			return -ETIMEDOUT;
		}
		send_sleep_ms(1);
	}
}

/* Run the switchover hook: both guests paused, all RAM on the destination. */
static int send_hook(struct qemu_send *s)
{
	char files[4096] = "";
	uint64_t t0 = qemu_cli_now_us();
	int status;
	pid_t pid;

	for (size_t i = 0; i < s->vm->nram; i++)
		snprintf(files + strlen(files), sizeof(files) - strlen(files), "%s%s", i ? " " : "",
			 s->vm->ram[i].path);
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0) {
		send_error(s, "cannot start the switchover hook: %s", strerror(errno));
		return -errno;
	}
	if (pid == 0) {
		/* stdout carries the report: the hook writes to stderr. */
		qemu_cli_signals_child(&s->sig);
		dup2(STDERR_FILENO, STDOUT_FILENO);
		setenv("RMIG_QEMU_RAM_FILES", files, 1);
		execl("/bin/sh", "sh", "-c", s->o->hook, (char *)NULL);
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			send_error(s, "waiting for the switchover hook: %s", strerror(errno));
			return -errno;
		}
	}
	s->hook_us = qemu_cli_now_us() - t0;
	s->hook_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	if (s->hook_status) {
		send_error(s, "the switchover hook `%s` exited with status %d: migration cancelled",
			   s->o->hook, s->hook_status);
		return -ECANCELED;
	}
	return 0;
}

/* Both guests paused, RAM final on the destination: let QEMU send the device state and
 * resume the guest there. */
static int send_switchover(struct qemu_send *s)
{
	json_t *args;
	int ret;

	if (send_interrupted(s))
		return -EINTR;
	if (s->o->hook) {
		ret = send_hook(s);
		if (ret)
			return ret;
		qemu_cli_note(&s->progress, "switchover hook passed (%.1f ms)",
			      (double)s->hook_us / 1000.0);
		if (send_interrupted(s))
			return -EINTR;
	}
	args = json_pack("{s:s}", "state", "pre-switchover");
	s->continue_us = qemu_cli_now_us();
	ret = qemu_vm_command(s->vm, "migrate-continue", args, NULL);
	if (ret) {
		if (ret == -ECONNRESET)
			s->qemu_gone = 1;
		send_error(s, "%s", s->vm->error);
		return ret;
	}
	s->switched_over = 1;
	ret = send_wait_status(s, "completed");
	if (ret)
		return ret;
	s->completed = 1;
	s->migration_started = 0;
	s->completed_us = qemu_cli_now_us();
	return 0;
}

/* rmig's stop decision fell: start QEMU's migration and wait until it has stopped the guest. */
static int send_pause_vm(void *opaque)
{
	struct qemu_send *s = opaque;
	char status[32];
	int ret;

	if (send_interrupted(s))
		return -EINTR;
	ret = qemu_vm_status(s->vm, status, sizeof(status), &s->running_at_pause);
	if (ret) {
		send_error(s, "%s", s->vm->error);
		return ret;
	}
	s->migrate_us = qemu_cli_now_us();
	ret = qemu_vm_command(s->vm, "migrate", json_pack("{s:s}", "uri", s->o->qemu_uri), NULL);
	if (ret) {
		send_error(s, "%s", s->vm->error);
		return ret;
	}
	s->migration_started = 1;
	ret = send_wait_status(s, "pre-switchover");
	if (ret)
		return ret;
	s->paused_us = qemu_cli_now_us();
	send_watch(s);
	qemu_cli_note(&s->progress,
		      "QEMU stopped the guest %.1f ms after migrate (its own migration sent "
		      "%" PRIu64 " bytes: RAM outside the shared backends)",
		      (double)(s->paused_us - s->migrate_us) / 1000.0, s->qemu.ram_transferred);
	if (s->o->skip_final_round) {
		/* Test only: QEMU switches over now, before rmig's final round. */
		qemu_cli_note(&s->progress, "test mode: switching over before rmig's final round");
		return send_switchover(s);
	}
	return 0;
}

/* Put the guest back to running here: cancel QEMU's migration (QEMU restarts the vCPUs it
 * stopped) and `cont` if they are still stopped. */
static int send_restore(struct qemu_send *s)
{
	uint64_t deadline;
	char status[32];
	int running, ret;

	if (s->qemu_gone)
		return -ECONNRESET;
	if (s->completed)
		return -EALREADY;
	if (s->migration_started) {
		ret = qemu_vm_command(s->vm, "migrate_cancel", NULL, NULL);
		if (ret == -ECONNRESET) {
			s->qemu_gone = 1;
			return ret;
		}
		deadline = qemu_cli_now_us() + (uint64_t)s->o->mig.timeout_ms * 1000u;
		for (;;) {
			ret = qemu_vm_migration(s->vm, &s->qemu);
			if (ret) {
				s->qemu_gone = ret == -ECONNRESET;
				return ret;
			}
			if (!strcmp(s->qemu.status, "completed")) {
				/* QEMU finished the switchover before the cancel: the guest is
				 * the destination's now. */
				s->completed = 1;
				s->migration_started = 0;
				return -EALREADY;
			}
			if (!strcmp(s->qemu.status, "cancelled") ||
			    !strcmp(s->qemu.status, "failed") || !strcmp(s->qemu.status, "none"))
				break;
			if (qemu_cli_now_us() > deadline)
				return -ETIMEDOUT;
			send_sleep_ms(2);
		}
		s->migration_started = 0;
	}
	ret = qemu_vm_status(s->vm, status, sizeof(status), &running);
	if (ret)
		return ret;
	if (!running && s->running_at_pause) {
		ret = qemu_vm_command(s->vm, "cont", NULL, NULL);
		if (ret)
			return ret;
	}
	return 0;
}

static int send_resume_vm(void *opaque)
{
	return send_restore(opaque);
}

static void send_progress(void *opaque, uint32_t event, const struct rmig_stats *st)
{
	struct qemu_send *s = opaque;

	qemu_cli_progress_event(&s->progress, event, st);
	if (event != RMIG_EVENT_DONE)
		send_watch(s);
}

/* Where the guest runs now, from the source QEMU's run state. */
static const char *send_guest_state(struct qemu_send *s, char *buf, size_t len)
{
	char status[32];
	int running;

	if (s->qemu_gone)
		return "unknown: the source QEMU went away";
	if (qemu_vm_status(s->vm, status, sizeof(status), &running))
		return "unknown: the source QEMU does not answer";
	if (!strcmp(status, "postmigrate") || s->completed)
		snprintf(buf, len, "running on the destination (the source QEMU is in %s)", status);
	else if (running)
		snprintf(buf, len, "running on the source");
	else
		snprintf(buf, len, "on the source, not running (QEMU state %s, as before)", status);
	return buf;
}

/* The record of rmig's final round (guest paused), 0 when there was none. */
static int send_final_round(struct qemu_send *s, const struct rmig_stats *st,
			    struct rmig_round_stats *final)
{
	for (uint32_t round = st->round + 1; round-- > 0;) {
		*final = (struct rmig_round_stats){.struct_size = sizeof(*final)};
		if (rmig_session_round_stats(s->session, round, final) == 0 && final->paused)
			return 1;
	}
	return 0;
}

static void send_report(struct qemu_send *s, int ok, const char *rmig_error)
{
	struct rmig_round_stats final;
	int has_final;
	struct rmig_stats st = {.struct_size = sizeof(st)};
	char guest_buf[160], b1[32], b2[32], b3[32];
	const char *guest;
	uint64_t total_ms = s->completed_us ? (s->completed_us - s->start_us) / 1000u : 0;

	rmig_session_stats(s->session, &st);
	has_final = send_final_round(s, &st, &final);
	if (!s->qemu_gone)
		qemu_vm_migration(s->vm, &s->qemu);
	guest = send_guest_state(s, guest_buf, sizeof(guest_buf));
	if (guest != guest_buf)
		snprintf(guest_buf, sizeof(guest_buf), "%s", guest);
	if (s->o->mig.json) {
		json_t *report = json_object(), *qemu = json_object(), *ram = json_array();
		char *text;

		for (size_t i = 0; i < s->vm->nram; i++)
			json_array_append_new(ram,
					      json_pack("{s:s, s:s, s:I}", "id", s->vm->ram[i].id,
							"path", s->vm->ram[i].path, "size",
							(json_int_t)s->vm->ram[i].size));
		json_object_set_new(report, "command", json_string("qemu-send"));
		json_object_set_new(report, "status", json_string(ok ? "completed" : "failed"));
		json_object_set_new(report, "error",
				    json_string(s->error[0] ? s->error : rmig_error));
		json_object_set_new(report, "guest", json_string(guest_buf));
		json_object_set_new(report, "total_time_ms", json_integer((json_int_t)total_ms));
		json_object_set_new(report, "downtime_ms",
				    json_integer(ok ? s->qemu.downtime_ms : -1));
		json_object_set_new(report, "bytes",
				    json_integer((json_int_t)(st.bytes + s->qemu.ram_transferred)));
		json_object_set_new(report, "ram", ram);
		qemu_cli_json_rmig(report, s->o, &st);
		json_object_set_new(qemu, "version", json_string(qmp_qemu_version(s->vm->qmp)));
		json_object_set_new(qemu, "uri", json_string(s->o->qemu_uri));
		json_object_set_new(qemu, "status", json_string(s->qemu.status));
		json_object_set_new(qemu, "total_time_ms", json_integer(s->qemu.total_time_ms));
		json_object_set_new(qemu, "setup_time_ms", json_integer(s->qemu.setup_time_ms));
		json_object_set_new(qemu, "downtime_ms", json_integer(s->qemu.downtime_ms));
		json_object_set_new(qemu, "transferred",
				    json_integer((json_int_t)s->qemu.ram_transferred));
		json_object_set_new(
			qemu, "pause_latency_ms",
			json_real(s->paused_us ? (double)(s->paused_us - s->migrate_us) / 1000.0
					       : -1.0));
		json_object_set_new(
			qemu, "switchover_ms",
			json_real(s->completed_us
					  ? (double)(s->completed_us - s->continue_us) / 1000.0
					  : -1.0));
		json_object_set_new(qemu, "stop_timestamp_us",
				    json_integer((json_int_t)s->stop_event_us));
		json_object_set_new(report, "qemu", qemu);
		if (has_final)
			json_object_set_new(report, "final_round",
					    json_pack("{s:I, s:I, s:I, s:I, s:f}", "dirty_pages",
						      (json_int_t) final.dirty_pages, "pages",
						      (json_int_t) final.pages, "bytes",
						      (json_int_t) final.bytes, "zero_pages",
						      (json_int_t) final.zero_pages, "ms",
						      (double) final.duration_us / 1000.0));
		if (s->o->hook)
			json_object_set_new(report, "hook",
					    json_pack("{s:s, s:i, s:f}", "command", s->o->hook,
						      "status", s->hook_status, "ms",
						      (double)s->hook_us / 1000.0));
		text = json_dumps(report, JSON_COMPACT);
		if (text)
			printf("%s\n", text);
		free(text);
		json_decref(report);
		return;
	}
	printf("\nrmig qemu-send: %s of guest RAM in %zu shared backend%s",
	       qemu_cli_bytes(st.ram_bytes, b1, sizeof(b1)), s->vm->nram,
	       s->vm->nram == 1 ? "" : "s");
	for (size_t i = 0; i < s->vm->nram; i++)
		printf("%s%s = %s", i ? ", " : " (", s->vm->ram[i].id, s->vm->ram[i].path);
	printf(")\n");
	printf("  %-30s %s\n", "result", ok ? "completed" : "failed");
	if (!ok)
		printf("  %-30s %s\n", "error", s->error[0] ? s->error : rmig_error);
	printf("  %-30s %s\n", "guest", guest_buf);
	if (ok) {
		printf("  %-30s %" PRId64 " ms (QEMU: vCPUs stopped until its switchover ended; "
		       "rmig's final round and verification inside)\n",
		       "downtime", s->qemu.downtime_ms);
		printf("  %-30s %.2f s\n", "total time", (double)total_ms / 1000.0);
		printf("  %-30s %s (rmig %s + QEMU %s)\n", "bytes on the wire",
		       qemu_cli_bytes(st.bytes + s->qemu.ram_transferred, b1, sizeof(b1)),
		       qemu_cli_bytes(st.bytes, b2, sizeof(b2)),
		       qemu_cli_bytes(s->qemu.ram_transferred, b3, sizeof(b3)));
	}
	qemu_cli_report_rmig(s->o, &st, 1);
	if (has_final)
		printf("  %-30s %" PRIu64 " dirty pages, %s, %.1f ms (after the last hash sync: "
		       "pages, device state, verification of every page, resume)\n",
		       "rmig final round (paused)", final.dirty_pages,
		       qemu_cli_bytes(final.bytes, b1, sizeof(b1)),
		       (double) final.duration_us / 1000.0);
	printf("  %-30s QEMU %s over %s, status %s\n", "QEMU migration",
	       qmp_qemu_version(s->vm->qmp), s->o->qemu_uri, s->qemu.status);
	if (s->paused_us)
		printf("  %-30s %.1f ms (migrate to pre-switchover)\n", "QEMU pause latency",
		       (double)(s->paused_us - s->migrate_us) / 1000.0);
	if (s->qemu.downtime_ms >= 0)
		printf("  %-30s %" PRId64 " ms\n", "QEMU downtime", s->qemu.downtime_ms);
	if (s->qemu.total_time_ms >= 0)
		printf("  %-30s %" PRId64 " ms (setup %" PRId64 " ms)\n", "QEMU total time",
		       s->qemu.total_time_ms, s->qemu.setup_time_ms);
	printf("  %-30s %s\n", "QEMU transferred",
	       qemu_cli_bytes(s->qemu.ram_transferred, b1, sizeof(b1)));
	if (s->completed_us)
		printf("  %-30s %.1f ms (migrate-continue to completed)\n", "QEMU switchover",
		       (double)(s->completed_us - s->continue_us) / 1000.0);
	if (s->o->hook && s->hook_status >= 0)
		printf("  %-30s exit %d after %.1f ms\n", "switchover hook", s->hook_status,
		       (double)s->hook_us / 1000.0);
}

/* The source QEMU must hold a guest (running or paused) and no migration of its own. */
static int send_check_source(struct qemu_send *s)
{
	struct qemu_migration m;
	int running, ret;

	ret = qemu_vm_status(s->vm, s->status_at_start, sizeof(s->status_at_start), &running);
	s->running_at_start = running;
	if (ret)
		return ret;
	if (!strcmp(s->status_at_start, "inmigrate"))
		return snprintf(s->vm->error, sizeof(s->vm->error),
				"the source QEMU waits for an incoming migration (status "
				"inmigrate): give qemu-send the QMP socket of the QEMU that runs "
				"the guest"),
		       -EINVAL;
	if (!strcmp(s->status_at_start, "postmigrate"))
		return snprintf(s->vm->error, sizeof(s->vm->error),
				"the source QEMU's guest was already migrated away (status "
				"postmigrate)"),
		       -EINVAL;
	if (strcmp(s->status_at_start, "running") && strcmp(s->status_at_start, "paused") &&
	    strcmp(s->status_at_start, "prelaunch"))
		return snprintf(s->vm->error, sizeof(s->vm->error),
				"the source QEMU's guest is in state %s, not running or paused",
				s->status_at_start),
		       -EINVAL;
	ret = qemu_vm_migration(s->vm, &m);
	if (ret)
		return ret;
	if (strcmp(m.status, "none") && strcmp(m.status, "completed") &&
	    strcmp(m.status, "failed") && strcmp(m.status, "cancelled"))
		return snprintf(s->vm->error, sizeof(s->vm->error),
				"the source QEMU is already migrating (status %s)", m.status),
		       -EBUSY;
	return 0;
}

int rmig_cli_qemu_send(int argc, char **argv)
{
	struct qemu_cli_options o;
	struct qemu_send s = {.hook_status = -1};
	struct rmig_params params;
	struct rmig_callbacks cb = {
		.field_mask = RMIG_CB_PAUSE_VM | RMIG_CB_RESUME_VM | RMIG_CB_PROGRESS,
		.pause_vm = send_pause_vm,
		.resume_vm = send_resume_vm,
		.progress = send_progress,
	};
	char open_error[QEMU_VM_ERROR_MAX], size[32];
	uint64_t ram_bytes = 0;
	int ret, ok = 0;

	ret = qemu_cli_parse(argc, argv, 1, &o);
	if (ret)
		return ret > 0 ? 0 : 2;
	s.o = &o;
	qemu_cli_progress_init(&s.progress, "qemu-send", 0);
	qemu_cli_log_install(&s.progress);
	ret = qemu_cli_signals_start(&s.sig, &s.progress);
	if (ret) {
		fprintf(stderr, "rmig qemu-send: cannot watch for signals: %s\n", strerror(-ret));
		return 1;
	}
	ret = qemu_vm_open(o.qmp, "source QEMU", (int)o.mig.timeout_ms, &s.vm, open_error);
	if (ret) {
		fprintf(stderr, "rmig qemu-send: %s\n", open_error);
		qemu_cli_signals_stop(&s.sig);
		return 1;
	}
	ret = qemu_vm_detect_rmig(s.vm);
	if (ret >= 0)
		ret = send_check_source(&s);
	if (ret >= 0)
		ret = qemu_vm_ram_find(s.vm);
	if (ret >= 0)
		ret = qemu_vm_ram_map(s.vm, 0);
	if (ret >= 0)
		ret = qemu_vm_set_capabilities(s.vm);
	if (ret < 0) {
		fprintf(stderr, "rmig qemu-send: %s\n", s.vm->error);
		goto out_restore_caps;
	}

	qemu_cli_params(&o, &params);
	ret = rmig_session_create(RMIG_ROLE_SOURCE, &s.session);
	if (ret) {
		fprintf(stderr, "rmig qemu-send: %s\n", rmig_strerror(ret));
		goto out_restore_caps;
	}
	qemu_cli_signals_session(&s.sig, s.session);
	ret = rmig_session_set_params(s.session, &params);
	if (!ret)
		ret = qemu_cli_session_apply(&o, s.session);
	if (!ret)
		ret = rmig_session_set_callbacks(s.session, &cb, &s);
	for (size_t i = 0; i < s.vm->nram && !ret; i++) {
		ret = rmig_region_add(s.session, (uint32_t)i, s.vm->ram[i].addr, s.vm->ram[i].size,
				      QEMU_PAGE_SIZE);
		ram_bytes += s.vm->ram[i].size;
	}
	if (ret) {
		fprintf(stderr, "rmig qemu-send: session setup: %s\n", rmig_strerror(ret));
		goto out_session;
	}
	qemu_cli_note(&s.progress,
		      "migrating the guest of QEMU %s (%s of RAM, %s) to %s; QEMU's own channel "
		      "%s",
		      qmp_qemu_version(s.vm->qmp), qemu_cli_bytes(ram_bytes, size, sizeof(size)),
		      s.status_at_start, o.uri, o.qemu_uri);
	if (s.vm->links_rmig)
		qemu_cli_note(&s.progress,
			      "this QEMU links librmig: its own rmig object tracks dirty "
			      "pages by QEMU's dirty log, not by hashing RAM (docs/qemu.md)");
	s.start_us = qemu_cli_now_us();
	ret = send_interrupted(&s);
	if (!ret)
		ret = rmig_session_connect(s.session, o.uri);
	if (!ret)
		ret = rmig_session_run(s.session);
	if (!ret && !o.skip_final_round) {
		qemu_cli_note(&s.progress, "all RAM verified on the destination; QEMU continues");
		ret = send_switchover(&s);
	}
	if (!ret && !s.completed) {
		send_error(&s, "QEMU did not complete its migration");
		ret = -EIO;
	}
	ok = !ret;
	if (!ok) {
		int restored = send_restore(&s);

		/* librmig does not print the errors it returns: say why here. */
		if (rmig_last_error(s.session)[0])
			qemu_cli_note(&s.progress, "%s", rmig_last_error(s.session));

		if (!restored)
			qemu_cli_note(&s.progress,
				      "migration failed; the guest stays on the "
				      "source, %s as before",
				      s.running_at_start ? "running" : "not running");
		else if (restored == -EALREADY)
			qemu_cli_note(&s.progress, "migration failed after QEMU's switchover: the "
						   "guest runs on the destination");
		else
			qemu_cli_note(&s.progress,
				      "migration failed and the source guest could not be resumed "
				      "(%s): check the source QEMU",
				      s.qemu_gone ? "QEMU went away" : s.vm->error);
	}
	if (!s.qemu_gone && qemu_vm_restore_capabilities(s.vm))
		qemu_cli_note(&s.progress, "cannot restore the capabilities: %s", s.vm->error);
	s.vm->caps_saved = 0;
	send_report(&s, ok, ret ? rmig_last_error(s.session) : "");

out_session:
	qemu_cli_signals_session(&s.sig, NULL);
	rmig_session_destroy(s.session);
out_restore_caps:
	if (s.vm->caps_saved && !s.qemu_gone)
		qemu_vm_restore_capabilities(s.vm);
	qemu_vm_close(s.vm);
	qemu_cli_signals_stop(&s.sig);
	return ok ? 0 : 1;
}
