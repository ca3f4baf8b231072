#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# tests/qemu/test_migration.sh RMIG CACHE [tcp|rdma] [--skip-final-round]
#
# Live-migrates an unmodified QEMU guest (Debian's kernel, busybox init that keeps writing to RAM
# and printing a counter) from a source QEMU in one network namespace to a destination QEMU in
# another, through `rmig qemu-send` / `rmig qemu-recv` over tcp (or rdma when a device exists),
# with QEMU's own migration channel across the same veth. Checks:
# - at switchover (both guests paused) the two guest RAM files are byte-identical (cmp, run as
#   qemu-send's switchover hook);
# - the destination guest goes on counting from where the source stopped: the source's console
#   followed by the destination's reads 1, 2, 3, ... with no gap and no repeat;
# - the source QEMU is left in postmigrate and its guest stops counting;
# - downtime and bytes are reported.
# With --skip-final-round (a test-only qemu-send option that switches QEMU over before rmig's
# final round) the same check must find the destination RAM stale: the migration is refused,
# the source guest keeps counting and the destination QEMU is discarded.
set -euo pipefail

RMIG=$(realpath "$1")
CACHE=$2
transport=${3:-tcp}
skip_final=${4:-}
. "$(dirname "$0")/lib.sh"

qemu_require
qemu_workdir
if [ "$transport" = rdma ]; then
	# Both hosts on this one, over its RDMA device (a NIC, or soft-RoCE where the kernel has
	# rdma_rxe): the namespaces' veth has none.
	rdma_ip=$(qemu_rdma_address) || skip "no RDMA device with an IPv4 address here"
	QEMU_SRC_IP=$rdma_ip
	QEMU_DST_IP=$rdma_ip
	NS_SRC=
	NS_DST=
else
	qemu_netns_setup
fi
qemu_guest_prepare

log "booting the source guest ($QEMU_RAM) in namespace $NS_SRC"
qemu_start src "$NS_SRC"
qemu_wait_ticks src 30 120
log "source guest counting ($(qemu_last_tick src)); starting the destination QEMU (-incoming defer)"
qemu_start dst "$NS_DST" -incoming defer

qemu_recv_start "$NS_DST" "$WORK/dst.qmp" "$transport://$QEMU_DST_IP:7000"

hook="cmp \"$WORK/src.ram\" \"$WORK/dst.ram\" >\"$WORK/cmp.out\" 2>&1 && echo identical >>\"$WORK/cmp.out\""
send_args=(--qmp "$WORK/src.qmp" --uri "$transport://$QEMU_DST_IP:7000" --json
	--switchover-hook "$hook")
[ "$skip_final" = --skip-final-round ] && send_args+=(--x-skip-final-round)
log "rmig qemu-send ${send_args[*]:4}"
send_status=0
in_ns "$NS_SRC" "$RMIG" qemu-send "${send_args[@]}" >"$WORK/send.out" \
	2>"$WORK/send.err" || send_status=$?
qemu_recv_wait
recv_status=$RECV_STATUS
cat "$WORK/send.err" >&2
[ -f "$WORK/cmp.out" ] || die "the switchover hook did not run"
log "switchover check: $(tr '\n' ' ' <"$WORK/cmp.out")"

if [ "$skip_final" = --skip-final-round ]; then
	# Control: without rmig's final round the destination must hold stale RAM, and the
	# migration must not go through.
	grep -q identical "$WORK/cmp.out" &&
		die "RAM files identical although rmig's final round was skipped: the check cannot see stale RAM"
	grep -q differ "$WORK/cmp.out" || die "cmp did not report a difference: $(cat "$WORK/cmp.out")"
	[ "$send_status" = 1 ] || die "qemu-send exited $send_status, expected 1"
	[ "$(qemu_json "$WORK/send.out" status)" = failed ] || die "qemu-send did not report failure"
	qemu_json "$WORK/send.out" error | grep -q "switchover hook" ||
		die "qemu-send's error does not name the switchover check"
	[ "$recv_status" = 1 ] || die "qemu-recv exited $recv_status, expected 1"
	for _ in $(seq 1 50); do
		qemu_pid_alive dst || break
		sleep 0.1
	done
	qemu_pid_alive dst && die "the destination QEMU was not discarded"
	before=$(qemu_last_tick src)
	qemu_wait_ticks src $((before + 20)) 60
	qemu_ticks_consecutive "$WORK/src.log"
	log "PASS: stale RAM detected (cmp: $(head -n 1 "$WORK/cmp.out")); migration refused;" \
		"the source guest counts on ($before -> $(qemu_last_tick src)); destination discarded"
	exit 0
fi

[ "$send_status" = 0 ] || die "qemu-send exited $send_status: $(qemu_json "$WORK/send.out" error 2>/dev/null)"
[ "$recv_status" = 0 ] || die "qemu-recv exited $recv_status: $(qemu_json "$WORK/recv.out" error 2>/dev/null)"
grep -q identical "$WORK/cmp.out" || die "guest RAM files differ at switchover"
[ "$(qemu_json "$WORK/send.out" status)" = completed ] || die "qemu-send did not report completed"
[ "$(qemu_json "$WORK/recv.out" status)" = completed ] || die "qemu-recv did not report completed"

# The destination counts on from where the source stopped.
src_last=$(qemu_last_tick src)
qemu_wait_ticks dst $((src_last + 30)) 60
qemu_ticks_consecutive "$WORK/src.log" "$WORK/dst.log"
src_size=$(stat -c %s "$WORK/src.log")
sleep 1
[ "$(stat -c %s "$WORK/src.log")" = "$src_size" ] || die "the source guest still runs after the migration"

# What was reported.
downtime=$(qemu_json "$WORK/send.out" downtime_ms)
bytes=$(qemu_json "$WORK/send.out" bytes)
rmig_bytes=$(qemu_json "$WORK/send.out" rmig bytes)
qemu_bytes=$(qemu_json "$WORK/send.out" qemu transferred)
total=$(qemu_json "$WORK/send.out" total_time_ms)
verified=$(qemu_json "$WORK/send.out" rmig pages_verified)
ram_pages=$(($(stat -c %s "$WORK/src.ram") / 4096))
[ "$downtime" -gt 0 ] || die "no downtime reported"
[ "$bytes" -gt 0 ] && [ "$rmig_bytes" -gt 0 ] && [ "$qemu_bytes" -gt 0 ] || die "bytes not reported"
[ "$bytes" = $((rmig_bytes + qemu_bytes)) ] || die "bytes $bytes != rmig $rmig_bytes + QEMU $qemu_bytes"
[ "$verified" = "$ram_pages" ] || die "$verified pages verified, the guest has $ram_pages"
stop_us=$(qemu_json "$WORK/send.out" qemu stop_timestamp_us)
resume_us=$(qemu_json "$WORK/recv.out" qemu resume_timestamp_us)
guest_ms=$(((resume_us - stop_us) / 1000))
[ "$stop_us" -gt 0 ] && [ "$resume_us" -gt "$stop_us" ] || die "no STOP/RESUME event times"
log "PASS over $transport: downtime ${downtime} ms (QEMU), ${guest_ms} ms guest STOP to RESUME;" \
	"total ${total} ms; ${bytes} bytes (rmig ${rmig_bytes} + QEMU ${qemu_bytes});" \
	"counter $src_last on the source, $(qemu_last_tick dst) on the destination"
