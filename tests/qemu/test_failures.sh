#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# tests/qemu/test_failures.sh RMIG CACHE - a migration that fails at any step leaves the guest
# running on the source (its counter goes on with no gap and no repeat) and the destination
# discarded, and the source QEMU can still be migrated afterwards. One guest, one failure after
# another:
#   1. the destination QEMU dies while rmig copies RAM (QMP breaks on the destination);
#   2. QEMU's own migration channel is unreachable (QEMU's `migrate` fails at the pause);
#   3. the switchover hook refuses, after rmig's final round, with the guest paused, and
#      SIGINT reaches qemu-send at that point;
#   4. rmig qemu-recv dies while rmig copies RAM (the rmig connection breaks);
#   5. a migration that succeeds, after all that;
#   6. the source QEMU dies while rmig copies the guest back (QMP breaks on the source).
set -euo pipefail

RMIG=$(realpath "$1")
CACHE=$2
. "$(dirname "$0")/lib.sh"

qemu_require
qemu_workdir
qemu_netns_setup
qemu_guest_prepare

# send_run NETNS [qemu-send options...]: SEND_STATUS, report in $WORK/send.out.
send_run() {
	local ns=$1
	shift
	SEND_STATUS=0
	ip netns exec "$ns" "$RMIG" qemu-send --json --timeout-ms 20000 "$@" >"$WORK/send.out" \
		2>"$WORK/send.err" || SEND_STATUS=$?
}

# source_keeps_running: qemu-send failed, the destination was discarded, and the source guest
# counts on with its console intact, its capabilities put back.
source_keeps_running() {
	local case=$1 pattern=$2 before
	[ "$SEND_STATUS" = 1 ] || die "$case: qemu-send exited $SEND_STATUS, expected 1"
	qemu_json "$WORK/send.out" error | grep -q -- "$pattern" ||
		die "$case: qemu-send's error does not say '$pattern': $(qemu_json "$WORK/send.out" error)"
	qemu_json "$WORK/send.out" guest | grep -q "running on the source" ||
		die "$case: qemu-send reports the guest $(qemu_json "$WORK/send.out" guest)"
	[ "$RECV_STATUS" = 1 ] || die "$case: qemu-recv exited $RECV_STATUS, expected 1"
	qemu_wait_gone dst
	[ "$(qemu_capability "$WORK/src.qmp" x-ignore-shared)" = false ] ||
		die "$case: x-ignore-shared left on in the source QEMU"
	before=$(qemu_last_tick src)
	qemu_wait_ticks src $((before + 20)) 60
	qemu_ticks_consecutive "$WORK/src.log"
	log "ok: $case: $(qemu_json "$WORK/send.out" error | cut -c1-160); the source guest counts on ($before -> $(qemu_last_tick src))"
}

log "booting the source guest ($QEMU_RAM)"
qemu_start src "$NS_SRC"
qemu_wait_ticks src 30 120
dst_uri=tcp://$QEMU_DST_IP:7000

# 1. The destination QEMU dies while the RAM is on its way (slow link: --bandwidth).
qemu_start dst "$NS_DST" -incoming defer
qemu_recv_start "$NS_DST" "$WORK/dst.qmp" "$dst_uri"
(sleep 2 && kill -9 "$PID_dst") &
send_run "$NS_SRC" --qmp "$WORK/src.qmp" --uri "$dst_uri" --bandwidth 8M
qemu_recv_wait
grep -q "destination QEMU went away" "$WORK/recv.err" "$WORK/recv.out" ||
	die "qemu-recv did not notice its QEMU going away: $(cat "$WORK/recv.err")"
source_keeps_running "destination QEMU killed during the copy" "destination"

# 2. QEMU's own channel leads nowhere: QEMU's migrate fails when rmig pauses the guest.
qemu_start dst "$NS_DST" -incoming defer
qemu_recv_start "$NS_DST" "$WORK/dst.qmp" "$dst_uri"
send_run "$NS_SRC" --qmp "$WORK/src.qmp" --uri "$dst_uri" --qemu-uri "tcp:$QEMU_DST_IP:4999"
qemu_recv_wait
source_keeps_running "QEMU's migration channel unreachable" "QEMU's own migration to tcp:$QEMU_DST_IP:4999 ended failed"

# 3. Everything is on the destination, the guest is paused, and the hook says no.
qemu_start dst "$NS_DST" -incoming defer
qemu_recv_start "$NS_DST" "$WORK/dst.qmp" "$dst_uri"
send_run "$NS_SRC" --qmp "$WORK/src.qmp" --uri "$dst_uri" --switchover-hook 'exit 3'
qemu_recv_wait
[ "$(qemu_json "$WORK/send.out" rmig pages_verified)" -gt 0 ] ||
	die "the hook ran before rmig verified the RAM"
source_keeps_running "switchover hook refuses with the guest paused" "switchover hook \`exit 3\` exited with status 3"

# 3b. Ctrl-C (SIGINT) reaches qemu-send while the guest is paused: the hook sends it.
qemu_start dst "$NS_DST" -incoming defer
qemu_recv_start "$NS_DST" "$WORK/dst.qmp" "$dst_uri"
send_run "$NS_SRC" --qmp "$WORK/src.qmp" --uri "$dst_uri" --switchover-hook 'kill -INT $PPID; sleep 0.5'
qemu_recv_wait
source_keeps_running "SIGINT with the guest paused" "interrupted (Interrupt)"

# 4. rmig qemu-recv dies: the rmig connection breaks mid-copy. Its QEMU is left waiting; the
# test discards it, as an operator would.
qemu_start dst "$NS_DST" -incoming defer
qemu_recv_start "$NS_DST" "$WORK/dst.qmp" "$dst_uri"
(sleep 2 && kill -9 "$RECV_PID") &
send_run "$NS_SRC" --qmp "$WORK/src.qmp" --uri "$dst_uri" --bandwidth 8M
qemu_recv_wait
kill "$PID_dst"
RECV_STATUS=1
source_keeps_running "rmig qemu-recv killed during the copy" "source"

# 5. After all that, the guest still migrates.
qemu_start dst "$NS_DST" -incoming defer
qemu_recv_start "$NS_DST" "$WORK/dst.qmp" "$dst_uri"
send_run "$NS_SRC" --qmp "$WORK/src.qmp" --uri "$dst_uri"
qemu_recv_wait
[ "$SEND_STATUS" = 0 ] && [ "$RECV_STATUS" = 0 ] ||
	die "migration after the failures: qemu-send $SEND_STATUS, qemu-recv $RECV_STATUS: $(qemu_json "$WORK/send.out" error)"
src_last=$(qemu_last_tick src)
qemu_wait_ticks dst $((src_last + 20)) 60
qemu_ticks_consecutive "$WORK/src.log" "$WORK/dst.log"
log "ok: migrated after the failures (counter $src_last on the source, $(qemu_last_tick dst) on the destination)"

# 6. Back the other way, and the source QEMU (now dst) dies mid-copy.
qemu_start back "$NS_SRC" -incoming defer
qemu_recv_start "$NS_SRC" "$WORK/back.qmp" "tcp://$QEMU_SRC_IP:7000"
(sleep 2 && kill -9 "$PID_dst") &
send_run "$NS_DST" --qmp "$WORK/dst.qmp" --uri "tcp://$QEMU_SRC_IP:7000" --bandwidth 8M
qemu_recv_wait
[ "$SEND_STATUS" = 1 ] || die "qemu-send exited $SEND_STATUS after its QEMU died"
qemu_json "$WORK/send.out" error | grep -q "source QEMU went away" ||
	die "qemu-send does not say its QEMU went away: $(qemu_json "$WORK/send.out" error)"
[ "$RECV_STATUS" = 1 ] || die "qemu-recv exited $RECV_STATUS after the source QEMU died"
qemu_wait_gone back
log "ok: source QEMU killed during the copy: $(qemu_json "$WORK/send.out" error | cut -c1-120); destination discarded"
log "PASS: every failure left the guest running on the source and the destination discarded"
