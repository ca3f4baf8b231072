/* SPDX-License-Identifier: MIT */
/* bench/guest/guest.h - the in-process guest that `rmig demo`/`send`/`recv`, rmig-bench and the
 * tests migrate: RAM in this process, a workload (bench/workloads) standing in for its vCPUs,
 * a device-state blob, and the rmig callbacks (pause, resume, device state) that drive them.
 * Uses only the public ABI's types (rmig.h); calls no rmig function, so it links with either
 * librmig.so.1 or the static core. */
#ifndef RMIG_BENCH_GUEST_H
#define RMIG_BENCH_GUEST_H

#include <stddef.h>
#include <stdint.h>

#include "bench/workloads/workload.h"
#include "rmig.h"

#define GUEST_PAGE_SIZE 4096u
#define GUEST_REGION_ID 0u
#define GUEST_DEVICE_STATE_BYTES (160u * 1024u) /* vCPU and device state stand-in */
/* With a RAM hash, the device state starts with this tag and 16 hex digits. */
#define GUEST_HASH_TAG "rmig-demo ram-hash "

struct guest {
	void *ram;
	size_t length;
	const char *workload_name;
	struct workload_params params;
	struct workload *workload; /* source: the guest's vCPUs */
	struct workload *reader;   /* destination, after resume: the guest running on, reading */
	int running;		   /* source: the workload runs */
	int paused;		   /* source: pause_vm was called */
	int resumed;		   /* resume_vm was called */
	int destination;	   /* this guest resumes here after the migration */
	int with_hash; /* the device state carries an XXH3 hash of the RAM taken at pause */
	uint64_t seed;
	unsigned char *device_state;
	size_t device_state_len;
	size_t device_state_pos;
};

/**
 * guest_init() - a guest of @length bytes of RAM (whole GUEST_PAGE_SIZE pages).
 * @workload: a name from workload_names(); @params: its parameters (page_size is forced to
 * GUEST_PAGE_SIZE). A source guest gets a memory image (most pages hold data, one in eight is
 * zero) and its workload laid out, not started; a destination guest gets zeroed RAM.
 *
 * Return: 0 or -errno (-ENOMEM, or the workload's error); on error nothing is left to free.
 */
int guest_init(struct guest *g, const char *workload, size_t length,
	       const struct workload_params *params, int destination);
void guest_fini(struct guest *g);

/* Source: start / stop the workload (the guest runs / is stopped). 0 or -errno. */
int guest_start(struct guest *g);
void guest_stop(struct guest *g);

/* Destination: stop the guest that runs on after the resume; its page reads, and in *errors_p
 * the records that failed their check. 0 when none ran. */
uint64_t guest_reader_stop(struct guest *g, uint64_t *errors_p);

/* 1 when @dst's RAM and device state equal @src's byte for byte. */
int guest_identical(const struct guest *src, const struct guest *dst);

/* The RAM hash the source put in the device state, 16 hex digits and a NUL, or "" without. */
void guest_sent_hash(const struct guest *g, char hash[17]);
/* The hash of this guest's RAM now, 16 hex digits and a NUL. */
void guest_ram_hash(const struct guest *g, char hash[17]);

/* The rmig callbacks for @role (RMIG_ROLE_SOURCE: pause, device state read, resume;
 * destination: device state write, resume) into @cb, @g as their opaque. Fields already set in
 * @cb (progress, log) are kept. */
void guest_callbacks(uint32_t role, struct rmig_callbacks *cb);

/* The callbacks themselves, for a caller that wraps them. */
int guest_pause_vm(void *guest);
int guest_resume_vm(void *guest);
int guest_device_state_read(void *guest, void *buf, size_t len);
int guest_device_state_write(void *guest, const void *buf, size_t len);

#endif /* RMIG_BENCH_GUEST_H */
