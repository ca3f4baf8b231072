/* SPDX-License-Identifier: MIT */
/* bindings/qemu/qemu_vm.c - what rmig asks of a QEMU over QMP: run state, memory backends (found
 * with qom-list /objects, checked with qom-get), the capabilities that leave shared RAM to rmig,
 * and query-migrate. Guest RAM is mapped from the backend's own file, after checking that QEMU
 * maps that very file. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "bindings/qemu/qemu_vm.h"

#define QEMU_CAP_IGNORE_SHARED "x-ignore-shared"
#define QEMU_CAP_PAUSE "pause-before-switchover"

static int qemu_vm_fail(struct qemu_vm *vm, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int qemu_vm_fail(struct qemu_vm *vm, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(vm->error, sizeof(vm->error), fmt, ap);
	va_end(ap);
	return err;
}

int qemu_vm_open(const char *qmp_path, const char *name, int timeout_ms, struct qemu_vm **vm_p,
		 char *error)
{
	char why[QMP_ERROR_MAX];
	struct qemu_vm *vm;
	int ret;

	vm = calloc(1, sizeof(*vm));
	if (!vm) {
		snprintf(error, QEMU_VM_ERROR_MAX, "%s: out of memory", name);
		return -ENOMEM;
	}
	snprintf(vm->name, sizeof(vm->name), "%s", name);
	for (size_t i = 0; i < QEMU_RAM_MAX; i++)
		vm->ram[i].fd = -1;
	ret = qmp_open(qmp_path, name, timeout_ms, &vm->qmp, why);
	if (ret) {
		snprintf(error, QEMU_VM_ERROR_MAX, "%s", why);
		free(vm);
		return ret;
	}
	*vm_p = vm;
	return 0;
}

void qemu_vm_close(struct qemu_vm *vm)
{
	if (!vm)
		return;
	for (size_t i = 0; i < QEMU_RAM_MAX; i++) {
		if (vm->ram[i].addr)
			munmap(vm->ram[i].addr, vm->ram[i].size);
		if (vm->ram[i].fd >= 0)
			close(vm->ram[i].fd);
	}
	qmp_close(vm->qmp);
	free(vm);
}

int qemu_vm_command(struct qemu_vm *vm, const char *command, json_t *arguments, json_t **return_p)
{
	int ret = qmp_execute(vm->qmp, command, arguments, return_p);

	if (ret)
		qemu_vm_fail(vm, ret, "%s", qmp_error(vm->qmp));
	return ret;
}

int qemu_vm_status(struct qemu_vm *vm, char *status, size_t len, int *running_p)
{
	json_t *reply = NULL;
	const json_t *st, *running;
	int ret;

	ret = qemu_vm_command(vm, "query-status", NULL, &reply);
	if (ret)
		return ret;
	st = json_object_get(reply, "status");
	running = json_object_get(reply, "running");
	if (!json_is_string(st) || !json_is_boolean(running)) {
		json_decref(reply);
		return qemu_vm_fail(vm, -EPROTO, "%s answered query-status without a run state",
				    vm->name);
	}
	snprintf(status, len, "%s", json_string_value(st));
	if (running_p)
		*running_p = json_is_true(running);
	json_decref(reply);
	return 0;
}

static int64_t qemu_json_ms(const json_t *obj, const char *key)
{
	const json_t *v = json_object_get(obj, key);

	return json_is_integer(v) ? (int64_t)json_integer_value(v) : -1;
}

static uint64_t qemu_json_u64(const json_t *obj, const char *key)
{
	const json_t *v = json_object_get(obj, key);

	return json_is_integer(v) && json_integer_value(v) > 0 ? (uint64_t)json_integer_value(v)
							       : 0;
}

int qemu_vm_migration(struct qemu_vm *vm, struct qemu_migration *m)
{
	json_t *reply = NULL;
	const json_t *st, *ram, *desc;
	int ret;

	ret = qemu_vm_command(vm, "query-migrate", NULL, &reply);
	if (ret)
		return ret;
	if (!json_is_object(reply)) {
		json_decref(reply);
		return qemu_vm_fail(vm, -EPROTO, "%s answered query-migrate with a non-object",
				    vm->name);
	}
	memset(m, 0, sizeof(*m));
	st = json_object_get(reply, "status");
	snprintf(m->status, sizeof(m->status), "%s",
		 json_is_string(st) ? json_string_value(st) : "none");
	m->total_time_ms = qemu_json_ms(reply, "total-time");
	m->setup_time_ms = qemu_json_ms(reply, "setup-time");
	m->downtime_ms = qemu_json_ms(reply, "downtime");
	m->expected_downtime_ms = qemu_json_ms(reply, "expected-downtime");
	ram = json_object_get(reply, "ram");
	m->ram_transferred = qemu_json_u64(ram, "transferred");
	m->ram_total = qemu_json_u64(ram, "total");
	desc = json_object_get(reply, "error-desc");
	if (json_is_string(desc))
		snprintf(m->error_desc, sizeof(m->error_desc), "%s", json_string_value(desc));
	json_decref(reply);
	return 0;
}

static int qemu_vm_qom_get(struct qemu_vm *vm, const char *path, const char *property,
			   json_t **value_p)
{
	json_t *args = json_pack("{s:s, s:s}", "path", path, "property", property);

	if (!args)
		return qemu_vm_fail(vm, -ENOMEM, "out of memory");
	return qemu_vm_command(vm, "qom-get", args, value_p);
}

static const char qemu_backend_hint[] =
	"start QEMU with -object memory-backend-file,id=mem,size=SIZE,mem-path=FILE,share=on "
	"-machine memory-backend=mem";

/* Check one backend object and fill r. */
static int qemu_vm_backend(struct qemu_vm *vm, const char *id, const char *type, struct qemu_ram *r)
{
	char path[128];
	json_t *share = NULL, *size = NULL, *mem_path = NULL;
	struct stat st;
	int ret;

	if (strcmp(type, "memory-backend-file"))
		return qemu_vm_fail(vm, -ENOTSUP,
				    "%s: memory backend '%s' is a %s: rmig maps guest RAM only "
				    "from a file QEMU shares; %s",
				    vm->name, id, type, qemu_backend_hint);
	snprintf(path, sizeof(path), "/objects/%s", id);
	ret = qemu_vm_qom_get(vm, path, "share", &share);
	if (!ret)
		ret = qemu_vm_qom_get(vm, path, "size", &size);
	if (!ret)
		ret = qemu_vm_qom_get(vm, path, "mem-path", &mem_path);
	if (ret)
		goto out;
	if (!json_is_boolean(share) || !json_is_integer(size) || json_integer_value(size) <= 0 ||
	    !json_is_string(mem_path)) {
		ret = qemu_vm_fail(vm, -EPROTO,
				   "%s: memory backend '%s' reports no share, size or mem-path",
				   vm->name, id);
		goto out;
	}
	snprintf(r->id, sizeof(r->id), "%s", id);
	snprintf(r->path, sizeof(r->path), "%s", json_string_value(mem_path));
	r->size = (uint64_t)json_integer_value(size);
	if (!json_is_true(share)) {
		ret = qemu_vm_fail(vm, -ENOTSUP,
				   "%s: memory backend '%s' (%s) is not shared (share=off): the "
				   "guest's writes stay private to QEMU and rmig cannot see them; "
				   "add share=on",
				   vm->name, id, r->path);
		goto out;
	}
	if (r->size % QEMU_PAGE_SIZE) {
		ret = qemu_vm_fail(vm, -ENOTSUP,
				   "%s: memory backend '%s' has %" PRIu64 " bytes, not whole "
				   "%u-byte pages",
				   vm->name, id, r->size, QEMU_PAGE_SIZE);
		goto out;
	}
	if (stat(r->path, &st)) {
		ret = -errno;
		qemu_vm_fail(vm, ret,
			     "%s: memory backend '%s': mem-path %s: %s (rmig must run on the "
			     "host of this QEMU and see its files)",
			     vm->name, id, r->path, strerror(-ret));
		goto out;
	}
	if (S_ISDIR(st.st_mode)) {
		ret = qemu_vm_fail(vm, -EISDIR,
				   "%s: memory backend '%s': mem-path %s is a directory, so QEMU "
				   "keeps the RAM in a hidden file of its own; give mem-path a "
				   "file name",
				   vm->name, id, r->path);
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		ret = qemu_vm_fail(vm, -ENOTSUP,
				   "%s: memory backend '%s': mem-path %s is not a regular file",
				   vm->name, id, r->path);
		goto out;
	}
	ret = 0;
out:
	json_decref(share);
	json_decref(size);
	json_decref(mem_path);
	return ret;
}

static int qemu_ram_compare(const void *a, const void *b)
{
	return strcmp(((const struct qemu_ram *)a)->id, ((const struct qemu_ram *)b)->id);
}

int qemu_vm_detect_rmig(struct qemu_vm *vm)
{
	json_t *list = NULL, *entry;
	size_t index;
	int ret;

	vm->links_rmig = 0;
	ret = qemu_vm_command(vm, "qom-list-types",
			      json_pack("{s:s}", "implements", "user-creatable"), &list);
	if (ret)
		return ret;
	json_array_foreach(list, index, entry)
	{
		const char *name = json_string_value(json_object_get(entry, "name"));

		if (name && !strcmp(name, "rmig"))
			vm->links_rmig = 1;
	}
	json_decref(list);
	list = NULL;
	if (!vm->links_rmig)
		return 0;
	ret = qemu_vm_command(vm, "qom-list", json_pack("{s:s}", "path", "/objects"), &list);
	if (ret)
		return ret;
	json_array_foreach(list, index, entry)
	{
		const char *name = json_string_value(json_object_get(entry, "name"));
		const char *type = json_string_value(json_object_get(entry, "type"));

		if (name && type && !strcmp(type, "child<rmig>")) {
			ret = qemu_vm_fail(
				vm, -EBUSY,
				"%s links librmig and has its own rmig object '%s': it "
				"migrates its RAM itself (QEMU's migrate with x-ignore-shared; "
				"docs/qemu.md); object-del it to migrate from outside",
				vm->name, name);
			break;
		}
	}
	json_decref(list);
	return ret;
}

int qemu_vm_ram_find(struct qemu_vm *vm)
{
	static const char prefix[] = "child<memory-backend-";
	json_t *objects = NULL, *entry;
	size_t index;
	int ret;

	vm->nram = 0;
	ret = qemu_vm_command(vm, "qom-list", json_pack("{s:s}", "path", "/objects"), &objects);
	if (ret)
		return ret;
	if (!json_is_array(objects)) {
		json_decref(objects);
		return qemu_vm_fail(vm, -EPROTO, "%s answered qom-list with a non-list", vm->name);
	}
	json_array_foreach(objects, index, entry)
	{
		const char *name = json_string_value(json_object_get(entry, "name"));
		const char *type = json_string_value(json_object_get(entry, "type"));
		char backend[64];
		size_t len;

		if (!name || !type || strncmp(type, prefix, strlen(prefix)))
			continue;
		len = strlen(type);
		if (type[len - 1] != '>' || len - 7 >= sizeof(backend))
			continue;
		/* "child<memory-backend-file>" -> "memory-backend-file" */
		memcpy(backend, type + 6, len - 7);
		backend[len - 7] = 0;
		if (vm->nram == QEMU_RAM_MAX) {
			ret = qemu_vm_fail(vm, -E2BIG, "%s has more than %u memory backends",
					   vm->name, QEMU_RAM_MAX);
			goto out;
		}
		ret = qemu_vm_backend(vm, name, backend, &vm->ram[vm->nram]);
		if (ret)
			goto out;
		vm->nram++;
	}
	if (!vm->nram) {
		ret = qemu_vm_fail(vm, -ENOTSUP, "%s has no memory backend object; %s", vm->name,
				   qemu_backend_hint);
		goto out;
	}
	/* Both hosts number the regions alike: by backend id. */
	qsort(vm->ram, vm->nram, sizeof(vm->ram[0]), qemu_ram_compare);
	ret = (int)vm->nram;
out:
	json_decref(objects);
	return ret;
}

/* 1 when QEMU (pid) maps the file st describes, 0 when it does not, -errno when its mappings
 * cannot be read. */
static int qemu_pid_maps_file(pid_t pid, const struct stat *st)
{
	char path[64], line[PATH_MAX + 128];
	int found = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%ld/maps", (long)pid);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		unsigned int major, minor;
		unsigned long inode;

		if (sscanf(line, "%*x-%*x %*s %*x %x:%x %lu", &major, &minor, &inode) == 3 &&
		    inode == (unsigned long)st->st_ino && makedev(major, minor) == st->st_dev) {
			found = 1;
			break;
		}
	}
	fclose(f);
	return found;
}

int qemu_vm_ram_map(struct qemu_vm *vm, int writable)
{
	pid_t pid = qmp_peer_pid(vm->qmp);

	for (size_t i = 0; i < vm->nram; i++) {
		struct qemu_ram *r = &vm->ram[i];
		struct stat st;
		int ret;

		r->fd = open(r->path, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC);
		if (r->fd < 0)
			return qemu_vm_fail(vm, -errno, "%s: cannot open guest RAM file %s: %s",
					    vm->name, r->path, strerror(errno));
		if (fstat(r->fd, &st))
			return qemu_vm_fail(vm, -errno, "%s: fstat %s: %s", vm->name, r->path,
					    strerror(errno));
		if ((uint64_t)st.st_size < r->size)
			return qemu_vm_fail(vm, -EINVAL,
					    "%s: guest RAM file %s has %llu bytes, its memory "
					    "backend '%s' %" PRIu64 " (was it truncated?)",
					    vm->name, r->path, (unsigned long long)st.st_size,
					    r->id, r->size);
		if (pid > 0) {
			ret = qemu_pid_maps_file(pid, &st);
			if (ret == 0)
				return qemu_vm_fail(
					vm, -ESTALE,
					"%s (pid %ld) does not map %s: the file was replaced "
					"after QEMU started, and the guest's RAM is in the old one",
					vm->name, (long)pid, r->path);
		}
		r->addr = mmap(NULL, r->size, PROT_READ | (writable ? PROT_WRITE : 0), MAP_SHARED,
			       r->fd, 0);
		if (r->addr == MAP_FAILED) {
			r->addr = NULL;
			return qemu_vm_fail(vm, -errno, "%s: cannot map %s (%" PRIu64 " bytes): %s",
					    vm->name, r->path, r->size, strerror(errno));
		}
	}
	return 0;
}

/* The states of x-ignore-shared and pause-before-switchover. */
static int qemu_vm_capabilities(struct qemu_vm *vm, int *ignore_shared_p, int *pause_p)
{
	json_t *caps = NULL, *entry;
	size_t index;
	int ret;

	*ignore_shared_p = -1;
	*pause_p = -1;
	ret = qemu_vm_command(vm, "query-migrate-capabilities", NULL, &caps);
	if (ret)
		return ret;
	json_array_foreach(caps, index, entry)
	{
		const char *name = json_string_value(json_object_get(entry, "capability"));
		const json_t *state = json_object_get(entry, "state");

		if (!name || !json_is_boolean(state))
			continue;
		if (!strcmp(name, QEMU_CAP_IGNORE_SHARED))
			*ignore_shared_p = json_is_true(state);
		else if (!strcmp(name, QEMU_CAP_PAUSE))
			*pause_p = json_is_true(state);
	}
	json_decref(caps);
	if (*ignore_shared_p < 0 || *pause_p < 0)
		return qemu_vm_fail(vm, -ENOTSUP,
				    "%s (QEMU %s) lacks the migration capability %s: rmig needs "
				    "QEMU 4.0 or later",
				    vm->name, qmp_qemu_version(vm->qmp),
				    *ignore_shared_p < 0 ? QEMU_CAP_IGNORE_SHARED : QEMU_CAP_PAUSE);
	return 0;
}

static int qemu_vm_capabilities_set(struct qemu_vm *vm, int ignore_shared, int pause)
{
	json_t *args = json_pack("{s:[{s:s, s:b}, {s:s, s:b}]}", "capabilities", "capability",
				 QEMU_CAP_IGNORE_SHARED, "state", ignore_shared, "capability",
				 QEMU_CAP_PAUSE, "state", pause);

	if (!args)
		return qemu_vm_fail(vm, -ENOMEM, "out of memory");
	return qemu_vm_command(vm, "migrate-set-capabilities", args, NULL);
}

int qemu_vm_set_capabilities(struct qemu_vm *vm)
{
	int ignore_shared, pause, ret;

	ret = qemu_vm_capabilities(vm, &vm->saved_ignore_shared,
				   &vm->saved_pause_before_switchover);
	if (ret)
		return ret;
	vm->caps_saved = 1;
	ret = qemu_vm_capabilities_set(vm, 1, 1);
	if (ret)
		return qemu_vm_fail(vm, ret,
				    "%s refused the migration capabilities " QEMU_CAP_IGNORE_SHARED
				    " and " QEMU_CAP_PAUSE ": %s",
				    vm->name, qmp_error(vm->qmp));
	ret = qemu_vm_capabilities(vm, &ignore_shared, &pause);
	if (ret)
		return ret;
	if (!ignore_shared || !pause)
		return qemu_vm_fail(vm, -EPROTO,
				    "%s accepted " QEMU_CAP_IGNORE_SHARED " and " QEMU_CAP_PAUSE
				    " but reports %s off",
				    vm->name,
				    !ignore_shared ? QEMU_CAP_IGNORE_SHARED : QEMU_CAP_PAUSE);
	return 0;
}

int qemu_vm_restore_capabilities(struct qemu_vm *vm)
{
	if (!vm->caps_saved)
		return 0;
	return qemu_vm_capabilities_set(vm, vm->saved_ignore_shared,
					vm->saved_pause_before_switchover);
}
