#!/bin/sh
# SPDX-License-Identifier: MIT
# tests/integration/test_cli_reports_where_the_guest_is.sh RMIG - `rmig send` and `rmig recv`
# say where the guest is after a run that went wrong, and the receiver names the method that
# ran:
#  - post-copy, the source host dies after the destination resumed: recv reports "lost" (once
#    its recovery window of 2 s passed), the method post-copy (not pre-copy, its own default) and
#    never "discarded (never resumed)";
#  - post-copy, the destination host dies after it resumed: send reports "lost" (likewise) and
#    never "the guest keeps running here";
#  - pre-copy, the destination host dies while the guest is paused: send resumes the guest,
#    says so, and reports the time it sat paused as downtime (not 0 ms);
#  - pre-copy, the source host dies while the guest is paused: recv says the guest was
#    discarded, never resumed.
# Every wait is on a line the other process writes (through a FIFO) or on its exit.
set -eu
rmig=$1
# Both ends authenticate with a key both read from RMIG_KEY_FILE.
. "$(dirname "$0")/cli_lib.sh"

# start_pair NAME RECV_ARGS -- SEND_ARGS: rmig recv (stderr on fd 4), then rmig send to it
# (stderr on fd 5); sets rpid and spid.
start_pair() {
	name=$1
	recv_args=$2
	send_args=$3
	cli_recv_start "$name" 4 --ram 32M $recv_args
	rm -f "$tmp/send.err"
	mkfifo "$tmp/send.err"
	"$rmig" send --uri "$uri" --ram 32M $send_args >"$tmp/$name-send.out" 2>"$tmp/send.err" &
	spid=$!
	cli_track "$spid"
	exec 5<"$tmp/send.err"
}

# drain: keep reading both stderr FIFOs so that neither process blocks on them.
drain() {
	cli_drain 4
	cli_drain 5
}

# 1. Post-copy; the source host dies after the destination resumed.
start_pair lost-recv "--json --recovery-window 2" "--method postcopy --bandwidth 4M"
wait_line 4 "resume after" || fail "lost-recv: the destination never resumed"
kill -9 "$spid"
drain
wait "$spid" 2>/dev/null || :
if wait "$rpid"; then fail "lost-recv: rmig recv succeeded"; fi
out=$tmp/lost-recv-recv.out
grep -q '"status": "lost"' "$out" || fail "lost-recv: status is not lost"
grep -q '"method": "postcopy", "method_used": "postcopy"' "$out" ||
	fail "lost-recv: the receiver does not report the method that ran"
grep -q '"ram_check": "LOST' "$out" || fail "lost-recv: not reported lost"
if grep -q 'never resumed' "$out"; then fail "lost-recv: a resumed guest reported never resumed"; fi

# 2. Post-copy; the destination host dies after it resumed.
start_pair lost-send "" "--method postcopy --bandwidth 4M --recovery-window 2"
wait_line 4 "resume after" || fail "lost-send: the destination never resumed"
kill -9 "$rpid"
drain
wait "$rpid" 2>/dev/null || :
if wait "$spid"; then fail "lost-send: rmig send succeeded"; fi
out=$tmp/lost-send-send.out
grep -q 'result  *lost' "$out" || fail "lost-send: result is not lost"
grep -q 'destination RAM  *LOST' "$out" || fail "lost-send: not reported lost"
if grep -q 'keeps running here' "$out"; then fail "lost-send: a lost guest said to keep running"; fi

# 3. Pre-copy; the destination host dies while the guest is paused (one round at 4 MB/s leaves
# seconds of dirty pages for the paused round). The guest sat paused at least while the source
# hashed its RAM for the device state (before the "VM paused" line) and until the failure.
start_pair paused-send "" "--max-rounds 1 --downtime-ms 1 --bandwidth 4M --write-rate 200000"
wait_line 5 "VM paused" || fail "paused-send: the source never paused"
kill -9 "$rpid"
drain
wait "$rpid" 2>/dev/null || :
if wait "$spid"; then fail "paused-send: rmig send succeeded"; fi
out=$tmp/paused-send-send.out
grep -q 'result  *failed' "$out" || fail "paused-send: result is not failed"
grep -q 'resumed here after the failure: the guest keeps running here' "$out" ||
	fail "paused-send: the source does not say it resumed the guest"
downtime=$(sed -n 's/^  downtime  *\([0-9]*\) ms$/\1/p' "$out")
[ -n "$downtime" ] && [ "$downtime" -ge 1 ] ||
	fail "paused-send: downtime '$downtime' ms for a guest that sat paused"

# 4. Pre-copy; the source host dies while the guest is paused.
start_pair paused-recv "" "--max-rounds 1 --downtime-ms 1 --bandwidth 4M --write-rate 200000"
wait_line 5 "VM paused" || fail "paused-recv: the source never paused"
kill -9 "$spid"
drain
wait "$spid" 2>/dev/null || :
if wait "$rpid"; then fail "paused-recv: rmig recv succeeded"; fi
out=$tmp/paused-recv-recv.out
grep -q 'destination RAM  *discarded (never resumed)' "$out" ||
	fail "paused-recv: the receiver does not say the guest was discarded"
if grep -q 'result  *lost' "$out"; then fail "paused-recv: a guest never resumed reported lost"; fi
echo "every report says where the guest is"
