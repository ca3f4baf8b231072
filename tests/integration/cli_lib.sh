# SPDX-License-Identifier: MIT
# tests/integration/cli_lib.sh - what the rmig send/recv shell tests share, sourced (POSIX sh)
# after `rmig=...` is set: a scratch directory removed at exit with every process started
# through it killed, a key both ends read from RMIG_KEY_FILE, waits on lines another process
# writes (through a FIFO, never a sleep), and an rmig recv that is known to listen.
#   . "$(dirname "$0")/cli_lib.sh"
# Sets tmp, pids, RMIG_KEY_FILE; cli_recv_start sets rpid, uri and line.

tmp=$(mktemp -d)
pids=""
cli_cleanup() {
	for p in $pids; do kill -9 "$p" 2>/dev/null || :; done
	rm -rf "$tmp"
}
trap cli_cleanup EXIT
head -c 32 /dev/urandom >"$tmp/key"
export RMIG_KEY_FILE="$tmp/key"

# wait_line FD TEXT: read lines from FD until one contains TEXT (it is left in $line); 1 at the
# end of the file (the writer ended without it).
wait_line() {
	while IFS= read -r line <&"$1"; do
		case "$line" in *"$2"*) return 0 ;; esac
	done
	return 1
}

# fail WHY: say why, show every report and log of the run, exit 1.
fail() {
	echo "FAIL: $*" >&2
	for f in "$tmp"/*.out "$tmp"/*.log; do
		[ -f "$f" ] && { echo "== $f" >&2; cat "$f" >&2; }
	done
	exit 1
}

# cli_track PID: killed at exit if still running.
cli_track() {
	pids="$pids $1"
}

# cli_recv_start NAME FD ARGS...: `rmig recv --listen tcp://127.0.0.1:0 ARGS` in the background
# (RMIG_LOG=info), its report in $tmp/NAME-recv.out, its stderr through a FIFO read on FD.
# Returns once it listens, with rpid and uri (where it listens) set.
cli_recv_start() {
	cli_name=$1
	cli_fd=$2
	shift 2
	rm -f "$tmp/$cli_name-recv.err"
	mkfifo "$tmp/$cli_name-recv.err"
	RMIG_LOG=info "$rmig" recv --listen tcp://127.0.0.1:0 "$@" >"$tmp/$cli_name-recv.out" \
		2>"$tmp/$cli_name-recv.err" &
	rpid=$!
	cli_track "$rpid"
	eval "exec $cli_fd<\"\$tmp/\$cli_name-recv.err\""
	wait_line "$cli_fd" "waiting for rmig send on " || fail "$cli_name: rmig recv did not listen"
	uri=$(printf '%s\n' "$line" | sed -n 's/.*waiting for rmig send on \([^ ]*\).*/\1/p')
}

# cli_drain FD [FILE]: keep reading FD (into FILE, else nowhere) in the background, so that its
# writer never blocks on a full FIFO.
cli_drain() {
	cat <&"$1" >"${2:-/dev/null}" &
}
