/* SPDX-License-Identifier: MIT */
/* bindings/qemu/qemu_vm.h - one unmodified QEMU as rmig sees it through QMP: its run state, its
 * guest RAM (memory-backend-file objects with share=on, mapped here from the same files), its
 * migration capabilities and the state of its own migration. */
#ifndef RMIG_QEMU_VM_H
#define RMIG_QEMU_VM_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "bindings/qemu/qmp.h"

#define QEMU_RAM_MAX 16u
#define QEMU_VM_ERROR_MAX 1024u
#define QEMU_PAGE_SIZE 4096u

/* One memory backend: a file QEMU maps shared, mapped here too. */
struct qemu_ram {
	char id[64]; /* the backend's object id ("mem") */
	char path[PATH_MAX];
	uint64_t size;
	int fd;
	void *addr; /* NULL until qemu_vm_ram_map() */
};

struct qemu_vm {
	struct qmp *qmp;
	char name[32]; /* "source QEMU", "destination QEMU" */
	char error[QEMU_VM_ERROR_MAX];
	struct qemu_ram ram[QEMU_RAM_MAX];
	size_t nram;
	/* Capabilities as they were before rmig set its own, restored by
	 * qemu_vm_restore_capabilities(). */
	int caps_saved;
	int saved_ignore_shared, saved_pause_before_switchover;
	int links_rmig; /* set by qemu_vm_detect_rmig(): the QEMU has the object type "rmig" */
};

/* QEMU's query-migrate: times in ms (-1 when QEMU did not report them). */
struct qemu_migration {
	char status[32]; /* "none" when no migration ran */
	int64_t total_time_ms;
	int64_t setup_time_ms;
	int64_t downtime_ms;
	int64_t expected_downtime_ms;
	uint64_t ram_transferred; /* bytes QEMU itself sent: RAM outside the shared backends */
	uint64_t ram_total;
	char error_desc[512];
};

/**
 * qemu_vm_open() - connect to a QEMU's QMP socket.
 * @qmp_path: the socket.
 * @name: "source QEMU" or "destination QEMU", for messages.
 * @timeout_ms: longest wait for any QMP answer.
 * @vm_p: set on success.
 * @error: receives why it failed (QEMU_VM_ERROR_MAX bytes).
 *
 * Return: 0 or -errno as for qmp_open().
 */
int qemu_vm_open(const char *qmp_path, const char *name, int timeout_ms, struct qemu_vm **vm_p,
		 char *error);

/* Unmap the RAM, close the files and the QMP connection. @vm may be NULL. */
void qemu_vm_close(struct qemu_vm *vm);

/* Run a QMP command (arguments stolen); on failure vm->error says why. */
int qemu_vm_command(struct qemu_vm *vm, const char *command, json_t *arguments, json_t **return_p);

/**
 * qemu_vm_status() - query-status.
 * @status: receives the run state ("running", "paused", "inmigrate", "postmigrate", ...).
 * @running_p: set to whether the vCPUs run.
 *
 * Return: 0 or -errno (vm->error).
 */
int qemu_vm_status(struct qemu_vm *vm, char *status, size_t len, int *running_p);

/* query-migrate into @m. Return: 0 or -errno (vm->error). */
int qemu_vm_migration(struct qemu_vm *vm, struct qemu_migration *m);

/**
 * qemu_vm_ram_find() - list the memory backends and check each is a shared file rmig can map.
 *
 * Return: the number of backends; -ENOTSUP for a backend that is not memory-backend-file with
 * share=on, or none at all; -ENOENT / -EISDIR for a mem-path rmig cannot open as QEMU's file;
 * QMP errors. vm->error says which backend and how to start QEMU instead.
 */
int qemu_vm_ram_find(struct qemu_vm *vm);

/**
 * qemu_vm_detect_rmig() - is this QEMU one that links librmig (bindings/qemu/patches/)?
 * @vm: an open QEMU.
 *
 * Sets vm->links_rmig when QEMU knows the user-creatable object type "rmig" (qom-list-types).
 *
 * Return: 0; -EBUSY when such a QEMU already has an rmig object, which migrates its RAM from
 * inside QEMU (vm->error says so); QMP errors.
 */
int qemu_vm_detect_rmig(struct qemu_vm *vm);

/**
 * qemu_vm_ram_map() - map every backend's file here (MAP_SHARED).
 * @writable: 1 on the destination (rmig writes the pages), 0 on the source (read only).
 *
 * Checks that each file is at least as long as its backend and, where /proc shows QEMU's
 * mappings, that QEMU maps this very file (not one replaced since QEMU started).
 *
 * Return: 0; -EINVAL (file shorter than the backend), -ESTALE (QEMU maps another file), -errno
 * from open/mmap. vm->error says why.
 */
int qemu_vm_ram_map(struct qemu_vm *vm, int writable);

/**
 * qemu_vm_set_capabilities() - turn on x-ignore-shared (QEMU leaves shared RAM to rmig) and
 * pause-before-switchover (QEMU waits with the guest paused until rmig's final round is done),
 * remembering what was set before.
 *
 * Return: 0; -EREMOTEIO when QEMU refuses (vm->error has QEMU's reason); -EPROTO when QEMU
 * accepts but does not report them set.
 */
int qemu_vm_set_capabilities(struct qemu_vm *vm);

/* Put the two capabilities back as they were before qemu_vm_set_capabilities(), so that a
 * later migration without rmig sends all RAM again. Return: 0 or -errno (vm->error). */
int qemu_vm_restore_capabilities(struct qemu_vm *vm);

#endif /* RMIG_QEMU_VM_H */
