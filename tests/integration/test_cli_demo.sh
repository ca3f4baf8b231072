#!/bin/sh
# SPDX-License-Identifier: MIT
# tests/integration/test_cli_demo.sh RMIG TRANSPORT - `rmig demo` migrates a 256 MiB guest,
# exits 0 and prints the report (downtime, total time, bytes, identical destination RAM).
set -eu
rmig=$1
transport=$2
out=$(mktemp)
trap 'rm -f "$out"' EXIT
"$rmig" version | grep -q '^rmig 1\.4\.0$'
"$rmig" demo --ram 256M --transport "$transport" >"$out" ||
	{ cat "$out"; echo "rmig demo --ram 256M failed" >&2; exit 1; }
cat "$out"
for line in 'result  *completed' 'downtime  *[0-9][0-9]* ms' 'total time  *[0-9.]* s' \
	'bytes on the wire  *[0-9.]* [KMG]iB sent' 'pages sent more than once' \
	'verified / mismatched pages  *65536 / 0' 'destination RAM  *identical to the source'; do
	if ! grep -q "$line" "$out"; then
		echo "rmig demo report lacks: $line" >&2
		exit 1
	fi
done
"$rmig" demo --ram 64M --transport "$transport" --json >"$out" ||
	{ cat "$out"; echo "rmig demo --json failed" >&2; exit 1; }
grep -q '"status": "completed"' "$out" || { cat "$out"; exit 1; }
# Every method by name; post-copy and auto report what they did.
for method in predict tsmc postcopy hybrid auto; do
	"$rmig" demo --ram 64M --transport "$transport" --method "$method" >"$out" ||
		{ cat "$out"; echo "--method $method failed" >&2; exit 1; }
	grep -q 'result  *completed' "$out" || { cat "$out"; echo "--method $method failed" >&2; exit 1; }
	grep -q 'destination RAM  *identical to the source' "$out" || { cat "$out"; exit 1; }
done
"$rmig" demo --ram 64M --transport "$transport" --method postcopy >"$out" ||
	{ cat "$out"; echo "--method postcopy failed" >&2; exit 1; }
grep -q 'post-copy  *16384 pages after resume' "$out" || { cat "$out"; exit 1; }
"$rmig" demo --ram 64M --transport "$transport" --method auto --json >"$out" ||
	{ cat "$out"; echo "--method auto --json failed" >&2; exit 1; }
grep -q '"method": "auto", "method_used": "[a-z]*", "method_reason": "auto chose' "$out" ||
	{ cat "$out"; echo "auto did not say what it chose" >&2; exit 1; }
# send / recv: two processes, as on two hosts; recv checks the RAM hash the sender took.
# The receiver's stderr comes through a FIFO: the test waits for its "waiting" line.
fifo_dir=$(mktemp -d)
recv_out=$(mktemp)
key=$(mktemp)
err=$(mktemp)
trap 'rm -f "$out" "$recv_out" "$key" "$err"; rm -rf "$fifo_dir"' EXIT
head -c 32 /dev/urandom >"$key"
# Without a credential both ends refuse before touching the network, naming both ways out.
for cmd in "recv --listen $transport://127.0.0.1:0" "send --uri $transport://127.0.0.1:9"; do
	status=0
	# shellcheck disable=SC2086
	"$rmig" $cmd --ram 64M 2>"$err" || status=$?
	[ "$status" = 2 ] || { cat "$err"; echo "rmig $cmd without a key: exit $status" >&2; exit 1; }
	grep -q -- '--key-file' "$err" && grep -q -- '--insecure' "$err" ||
		{ cat "$err"; echo "rmig $cmd: the refusal does not name both ways out" >&2; exit 1; }
done
start_recv() {
	rm -f "$fifo_dir/recv.err"
	mkfifo "$fifo_dir/recv.err"
	"$rmig" recv --listen "$transport://127.0.0.1:0" --ram 64M --key-file "$key" >"$recv_out" \
		2>"$fifo_dir/recv.err" &
	recv_pid=$!
	exec 4<"$fifo_dir/recv.err"
	uri=
	while IFS= read -r line <&4; do
		uri=$(printf '%s\n' "$line" | sed -n 's/.*waiting for rmig send on \([^ ]*\).*/\1/p')
		[ -n "$uri" ] && break
	done
	[ -n "$uri" ] || { echo "rmig recv did not start listening" >&2; exit 1; }
	# Keep reading its stderr, so that it never blocks on it.
	cat <&4 >/dev/null &
}
start_recv
"$rmig" send --uri "$uri" --ram 64M --key-file "$key"
wait "$recv_pid"
cat "$recv_out"
grep -q "RAM hash equals the sender's at pause, resumed" "$recv_out"
# The same across two processes with post-copy: the receiver's RAM fills after its resume.
start_recv
"$rmig" send --uri "$uri" --ram 64M --key-file "$key" --method postcopy
wait "$recv_pid"
grep -q "RAM hash equals the sender's at pause, resumed" "$recv_out"
# A bad option is refused with a usage message and exit status 2.
if "$rmig" demo --policy nonsense 2>/dev/null; then
	echo "rmig demo accepted --policy nonsense" >&2
	exit 1
fi
if "$rmig" demo --method nonsense 2>/dev/null; then
	echo "rmig demo accepted --method nonsense" >&2
	exit 1
fi
