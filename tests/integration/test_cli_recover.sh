#!/bin/sh
# SPDX-License-Identifier: MIT
# tests/integration/test_cli_recover.sh RMIG - `rmig recover` steers a running rmig recv through
# its --control socket:
#  - without a running rmig there is nothing to talk to: exit 1;
#  - --status answers the session's status; a malformed URI is refused with the reason (exit 1);
#    a good one is taken ("ok") and --cancel stops a receiver still waiting for its source;
#  - post-copy, the source host dies after the destination resumed: the receiver waits in
#    "recovering" (its window, 500 s: long, and not the default), --status says so, and
#    --cancel declares the VM lost at once (status "lost", the error says the recovery was
#    cancelled).
# Every wait is on a line the other process writes (through a FIFO) or on its exit.
set -eu
rmig=$1
. "$(dirname "$0")/cli_lib.sh"

# 1. Nothing listens on the control path.
if "$rmig" recover --control "$tmp/nobody" --status >"$tmp/none.out" 2>&1; then
	fail "recover without a running rmig succeeded"
fi

# A recovery window out of range is refused with the reason, before anything listens.
if "$rmig" recv --listen tcp://127.0.0.1:0 --ram 8M --recovery-window 0 >"$tmp/window.out" 2>&1; then
	fail "--recovery-window 0 was taken"
fi
grep -q -- '--recovery-window 0: seconds, 1 to 86400' "$tmp/window.out" ||
	fail "--recovery-window 0: $(cat "$tmp/window.out")"

# 2. A receiver waiting for its source.
cli_recv_start r1 4 --ram 8M --control "$tmp/ctl1" --json
cli_drain 4
"$rmig" recover --control "$tmp/ctl1" --status >"$tmp/status1.out" || fail "--status failed"
grep -q '^setup recoveries=0 recovering_ms=0$' "$tmp/status1.out" || fail "--status: $(cat "$tmp/status1.out")"
if "$rmig" recover --control "$tmp/ctl1" 'not a uri' >"$tmp/bad.out"; then
	fail "a malformed uri was taken"
fi
grep -q '^error: .*not a uri rmig can use' "$tmp/bad.out" || fail "bad uri: $(cat "$tmp/bad.out")"
"$rmig" recover --control "$tmp/ctl1" tcp://127.0.0.1:9 >"$tmp/ok.out" || fail "a good uri was refused"
grep -q '^ok$' "$tmp/ok.out" || fail "good uri: $(cat "$tmp/ok.out")"
"$rmig" recover --control "$tmp/ctl1" --cancel >"$tmp/cancel1.out" || fail "--cancel failed"
if wait "$rpid"; then fail "a cancelled rmig recv succeeded"; fi
grep -q '"status": "cancelled"' "$tmp/r1-recv.out" || fail "the receiver was not cancelled"
[ ! -e "$tmp/ctl1" ] || fail "the control socket stayed after rmig recv ended"

# 3. Post-copy; the source host dies after the destination resumed.
cli_recv_start r2 5 --ram 32M --control "$tmp/ctl2" --json --recovery-window 500
"$rmig" send --uri "$uri" --ram 32M --method postcopy --bandwidth 4M >"$tmp/s2.out" 2>&1 &
spid=$!
cli_track "$spid"
wait_line 5 "resume after" || fail "the destination never resumed"
kill -9 "$spid"
wait "$spid" 2>/dev/null || :
wait_line 5 "post-copy paused" || fail "the destination did not start recovering"
# --recovery-window reached the session: the wait it announces is the one given.
case "$line" in *"waiting up to 500 s"*) ;; *) fail "recovery window not applied: $line" ;; esac
cli_drain 5
"$rmig" recover --control "$tmp/ctl2" --status >"$tmp/status2.out" || fail "--status failed"
grep -q '^recovering recoveries=0 ' "$tmp/status2.out" || fail "--status: $(cat "$tmp/status2.out")"
"$rmig" recover --control "$tmp/ctl2" --cancel >"$tmp/cancel2.out" || fail "--cancel failed"
if wait "$rpid"; then fail "rmig recv succeeded after its source died"; fi
grep -q '"status": "lost"' "$tmp/r2-recv.out" || fail "the VM was not declared lost"
grep -q 'recovery cancelled' "$tmp/r2-recv.out" || fail "the error does not say the recovery was cancelled"
echo "rmig recover steers a running rmig recv"
