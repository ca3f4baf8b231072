#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# tests/qemu/test_refusals.sh RMIG CACHE - qemu-send and qemu-recv refuse setups they cannot
# migrate, each with an error that says what is wrong and how to start QEMU instead, and leave
# the source QEMU as they found it (run state, no migration, capabilities off). The QEMUs here
# start stopped (-S) and boot nothing: the checks happen before any guest code would run.
set -euo pipefail

RMIG=$(realpath "$1")
CACHE=$2
. "$(dirname "$0")/lib.sh"

qemu_require
qemu_workdir
qemu_netns_setup

# bare NAME NETNS [QEMU options...]: a stopped QEMU with a QMP socket, no guest.
bare() {
	local name=$1 ns=$2
	shift 2
	rm -f "$WORK/$name.qmp"
	ip netns exec "$ns" qemu-system-x86_64 -machine q35 -nodefaults -nographic -display none \
		-S -qmp "unix:$WORK/$name.qmp,server=on,wait=off" "$@" >"$WORK/$name.err" 2>&1 &
	eval "PID_$name=$!"
	qemu_track $!
	for _ in $(seq 1 100); do
		[ -S "$WORK/$name.qmp" ] && return 0
		sleep 0.05
	done
	die "QEMU $name did not start: $(cat "$WORK/$name.err")"
}

stop() {
	local pid
	eval "pid=\$PID_$1"
	kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

shared() { # shared NAME SIZE: a memory backend rmig can use
	[ -f "$WORK/$1.ram" ] || truncate -s "$2" "$WORK/$1.ram"
	echo "-m $2 -object memory-backend-file,id=mem,size=$2,mem-path=$WORK/$1.ram,share=on -machine memory-backend=mem"
}

# expect CASE STATUS PATTERN command...: the command exits STATUS and says PATTERN.
expect() {
	local case=$1 want=$2 pattern=$3 status=0
	shift 3
	"$@" >"$WORK/case.out" 2>"$WORK/case.err" </dev/null || status=$?
	[ "$status" = "$want" ] || die "$case: exit status $status, expected $want: $(cat "$WORK/case.err")"
	grep -q -- "$pattern" "$WORK/case.err" ||
		die "$case: the error does not say '$pattern': $(cat "$WORK/case.err")"
	log "ok: $case: $(grep -m1 -- "$pattern" "$WORK/case.err" | cut -c1-200)"
}

# untouched NAME STATUS: the source QEMU still has run state STATUS, no migration, and both
# capabilities off, as before rmig connected.
untouched() {
	local st
	st=$(qemu_qmp "$WORK/$1.qmp" query-status | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')
	[ "$st" = "$2" ] || die "$1 QEMU left in state $st, was $2"
	[ "$(qemu_capability "$WORK/$1.qmp" x-ignore-shared)" = false ] ||
		die "$1 QEMU left with x-ignore-shared on: a later plain migration would skip its RAM"
	[ "$(qemu_capability "$WORK/$1.qmp" pause-before-switchover)" = false ] ||
		die "$1 QEMU left with pause-before-switchover on"
}

send() { ip netns exec "$NS_SRC" "$RMIG" qemu-send --qmp "$WORK/src.qmp" --uri "tcp://$QEMU_DST_IP:7000" --timeout-ms 10000 "$@"; }
recv() { ip netns exec "$NS_DST" "$RMIG" qemu-recv --qmp "$WORK/dst.qmp" --listen "tcp://$QEMU_DST_IP:7000" --timeout-ms 10000 "$@"; }

expect "no QMP socket" 1 "no QMP socket there (start QEMU with -qmp unix:" send

# shellcheck disable=SC2046
bare src "$NS_SRC" -m 64M -object "memory-backend-file,id=mem,size=64M,mem-path=$WORK/private.ram,share=off" -machine memory-backend=mem
expect "memory backend not shared" 1 "is not shared (share=off)" send
untouched src prelaunch
stop src

bare src "$NS_SRC" -m 64M
expect "guest RAM in anonymous memory" 1 "memory backend 'pc.ram' is a memory-backend-ram" send
stop src

mkdir -p "$WORK/ramdir"
bare src "$NS_SRC" -m 64M -object "memory-backend-file,id=mem,size=64M,mem-path=$WORK/ramdir,share=on" -machine memory-backend=mem
expect "mem-path a directory" 1 "is a directory, so QEMU keeps the RAM in a hidden file" send
stop src

# shellcheck disable=SC2046
bare src "$NS_SRC" $(shared src 64M) -global migration.x-background-snapshot=on
expect "capability refused" 1 "refused the migration capabilities x-ignore-shared and pause-before-switchover" send
stop src

# shellcheck disable=SC2046
bare src "$NS_SRC" $(shared src 64M)
mv "$WORK/src.ram" "$WORK/src.old.ram"
truncate -s 64M "$WORK/src.ram"
expect "RAM file replaced under QEMU" 1 "does not map $WORK/src.ram: the file was replaced" send
untouched src prelaunch
stop src
rm -f "$WORK/src.ram" "$WORK/src.old.ram"

expect "a method that resumes before the RAM is there" 2 "use precopy or predict" send --method postcopy
expect "dirty tracking QEMU's writes cannot reach" 2 "only content hashes can follow" send --dirty uffd-async

# shellcheck disable=SC2046
bare dst "$NS_DST" $(shared dst 64M)
expect "destination without -incoming defer" 1 "plus -incoming defer" recv
stop dst

# shellcheck disable=SC2046
bare dst "$NS_DST" $(shared dst 64M) -incoming "tcp:$QEMU_DST_IP:4444"
expect "destination already listening" 1 "start it with -incoming defer" recv
stop dst

# RAM sizes differ: the destination refuses the region table, the source QEMU is left as it was
# (capabilities restored) and the destination QEMU is discarded.
# shellcheck disable=SC2046
bare src "$NS_SRC" $(shared src 64M)
# shellcheck disable=SC2046
bare dst "$NS_DST" $(shared dst 32M) -incoming defer
recv >"$WORK/recv.out" 2>"$WORK/recv.err" &
recv_pid=$!
qemu_track "$recv_pid"
for _ in $(seq 1 100); do
	grep -q "waiting for rmig qemu-send" "$WORK/recv.err" && break
	sleep 0.05
done
expect "RAM sizes differ" 1 "region 0 length mismatch: 67108864 bytes on the source, 33554432 on the destination" send
recv_status=0
wait "$recv_pid" || recv_status=$?
[ "$recv_status" = 1 ] || die "qemu-recv exited $recv_status after a size mismatch"
grep -q "destination QEMU was told to quit" "$WORK/recv.err" || die "the destination was not discarded"
for _ in $(seq 1 50); do
	qemu_pid_alive dst || break
	sleep 0.1
done
qemu_pid_alive dst && die "the destination QEMU still runs"
untouched src prelaunch
stop src
log "PASS: every unusable setup refused with its reason; the source QEMU left as it was"
