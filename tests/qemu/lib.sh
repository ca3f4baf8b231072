# SPDX-License-Identifier: MIT
# tests/qemu/lib.sh - sourced by the QEMU end-to-end tests and tests/qemu/compare.sh: two network
# namespaces joined by veth (TEST-NET 192.0.2.0/24) standing for two hosts, a source QEMU that
# boots Debian's kernel with tests/qemu/guest-init, a destination QEMU with -incoming defer,
# and checks on the guest's serial console. Every process started here is killed by its pid
# at exit.
#
# The caller sets: RMIG (the rmig binary), CACHE (kernel and initramfs cache directory).

QEMU_SRC_IP=192.0.2.1
QEMU_DST_IP=192.0.2.2
QEMU_RAM=${QEMU_RAM:-256M}
QEMU_GUEST_ARGS=${QEMU_GUEST_ARGS:-}
# The QEMU binary: Debian's, or the one scripts/build-qemu.sh built with librmig linked in.
QEMU_BIN=${QEMU_BIN:-qemu-system-x86_64}
QEMU_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
QEMU_ROOT=$(cd "$QEMU_HERE/../.." && pwd)
qemu_pids=()
qemu_netns=()

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
die() {
	log "FAIL: $*"
	qemu_dump_logs
	exit 1
}
skip() {
	log "SKIP: $*"
	exit 77
}

qemu_dump_logs() {
	local f
	for f in "$WORK"/*.log "$WORK"/*.err "$WORK"/*.out; do
		[ -s "$f" ] || continue
		echo "---- $(basename "$f") (last lines)" >&2
		tail -n 15 "$f" | tr -d '\r' | cut -c1-300 >&2
	done
}

# QEMU quits on SIGTERM from its main loop; one whose main loop cannot run (a vCPU holding the
# BQL waits on a post-copy page that will never come) gets SIGKILL after 10 s.
qemu_cleanup() {
	local pid ns alive t0=$SECONDS
	for pid in "${qemu_pids[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	while :; do
		alive=
		for pid in "${qemu_pids[@]}"; do
			! kill -0 "$pid" 2>/dev/null || alive="$alive $pid"
		done
		[ -n "$alive" ] && [ $((SECONDS - t0)) -lt 10 ] || break
		sleep 0.2
	done
	for pid in $alive; do
		kill -9 "$pid" 2>/dev/null || true
	done
	for pid in "${qemu_pids[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	for ns in "${qemu_netns[@]}"; do
		ip netns del "$ns" 2>/dev/null || true
	done
	if [ -n "${WORK:-}" ] && [ -d "$WORK" ]; then
		if [ -n "${KEEP_LOGS:-}" ]; then
			mkdir -p "$KEEP_LOGS"
			cp "$WORK"/*.log "$WORK"/*.err "$WORK"/*.out "$KEEP_LOGS"/ 2>/dev/null || true
		fi
		rm -rf "$WORK"
	fi
}

# What the tests need from the host; skip (77) when it is not there.
qemu_require() {
	[ "$(id -u)" = 0 ] || skip "needs root (network namespaces)"
	command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 missing (bash scripts/setup.sh)"
	command -v ip >/dev/null || skip "iproute2 missing"
	command -v cpio >/dev/null || skip "cpio missing"
	[ -x "$RMIG" ] || die "no rmig binary at $RMIG"
}

# Guest RAM files live in tmpfs, like the hugetlbfs or tmpfs files a real host would use.
# Should this shell die without its EXIT trap (SIGKILL at a timeout), a watchdog kills what it
# started and removes the namespaces and files.
qemu_workdir() {
	WORK=$(mktemp -d /dev/shm/rmig-qemu.XXXXXX)
	trap qemu_cleanup EXIT
	# Every rmig qemu-send / qemu-recv of the tests authenticates with this key (RMIG_KEY_FILE
	# stands in for --key-file).
	head -c 32 /dev/urandom >"$WORK/key"
	export RMIG_KEY_FILE=$WORK/key
	local parent=$$ work=$WORK
	(
		while kill -0 "$parent" 2>/dev/null && [ -d "$work" ]; do
			sleep 1
		done
		if [ -d "$work" ]; then
			# shellcheck disable=SC2046
			kill $(cat "$work/pids" 2>/dev/null) 2>/dev/null
			for ns in $(cat "$work/netns" 2>/dev/null); do
				ip netns del "$ns" 2>/dev/null
			done
			rm -rf "$work"
		fi
	) </dev/null >/dev/null 2>&1 &
}

# qemu_track PID: kill PID at exit.
qemu_track() {
	qemu_pids+=("$1")
	echo "$1" >>"$WORK/pids"
}

# The kernel (Debian's, as the soft-RoCE testbed uses) and the initramfs.
qemu_guest_prepare() {
	local line
	mkdir -p "$CACHE"
	line=$(flock "$CACHE/.lock" bash "$QEMU_ROOT/scripts/guest-kernel.sh" "$CACHE/kernel") ||
		die "cannot fetch the guest kernel"
	KERNEL="${line%% *}/vmlinuz"
	flock "$CACHE/.lock" bash "$QEMU_HERE/make-initramfs.sh" "$CACHE/initramfs.cpio.gz" ||
		die "cannot build the initramfs"
	INITRD="$CACHE/initramfs.cpio.gz"
}

# Two namespaces, "src" and "dst", one veth pair between them.
qemu_netns_setup() {
	local tag=$$
	NS_SRC=rmigq-src-$tag
	NS_DST=rmigq-dst-$tag
	ip netns add "$NS_SRC" || skip "cannot create network namespaces"
	qemu_netns+=("$NS_SRC")
	echo "$NS_SRC" >>"$WORK/netns"
	ip netns add "$NS_DST" || die "cannot create a second network namespace"
	qemu_netns+=("$NS_DST")
	echo "$NS_DST" >>"$WORK/netns"
	ip link add "rqs$tag" netns "$NS_SRC" type veth peer name "rqd$tag" netns "$NS_DST" ||
		skip "cannot create a veth pair"
	ip -n "$NS_SRC" addr add "$QEMU_SRC_IP/24" dev "rqs$tag"
	ip -n "$NS_DST" addr add "$QEMU_DST_IP/24" dev "rqd$tag"
	ip -n "$NS_SRC" link set "rqs$tag" up
	ip -n "$NS_DST" link set "rqd$tag" up
	ip -n "$NS_SRC" link set lo up
	ip -n "$NS_DST" link set lo up
	VETH_SRC=rqs$tag
	VETH_DST=rqd$tag
}

# in_ns NETNS command...: run in the namespace, or here when NETNS is empty.
in_ns() {
	local ns=$1
	shift
	if [ -n "$ns" ]; then
		ip netns exec "$ns" "$@"
	else
		"$@"
	fi
}

# exec_in_ns NETNS command...: the same, replacing the shell: for `exec_in_ns ... &`, so that
# $! is the command's own pid (ip netns exec execs it too) and killing it kills the command.
exec_in_ns() {
	local ns=$1
	shift
	if [ -n "$ns" ]; then
		exec ip netns exec "$ns" "$@"
	fi
	exec "$@"
}

# An IPv4 address on the network device under an RDMA device of this host (rdma link show:
# "link rxe0/1 state ACTIVE ... netdev eth0"); fails when there is none.
qemu_rdma_address() {
	local dev addr
	command -v rdma >/dev/null || return 1
	for dev in $(rdma link show 2>/dev/null | sed -n 's/.*state ACTIVE.* netdev \([^ ]*\).*/\1/p'); do
		addr=$(ip -4 -o addr show dev "$dev" 2>/dev/null | awk '{print $4}' | cut -d/ -f1 | head -n 1)
		if [ -n "$addr" ]; then
			echo "$addr"
			return 0
		fi
	done
	return 1
}

# qemu_start NAME NETNS [extra QEMU options...]: NAME.ram, NAME.qmp, NAME.log in $WORK.
qemu_start() {
	local name=$1 ns=$2
	shift 2
	rm -f "$WORK/$name.qmp"
	[ -f "$WORK/$name.ram" ] || truncate -s "$QEMU_RAM" "$WORK/$name.ram"
	exec_in_ns "$ns" "$QEMU_BIN" -machine q35,memory-backend=mem -m "$QEMU_RAM" \
		-object "memory-backend-file,id=mem,size=$QEMU_RAM,mem-path=$WORK/$name.ram,share=on" \
		-nodefaults -nographic -display none -serial "file:$WORK/$name.log" \
		-qmp "unix:$WORK/$name.qmp,server=on,wait=off" \
		-kernel "$KERNEL" -initrd "$INITRD" \
		-append "console=ttyS0 quiet panic=-1 $QEMU_GUEST_ARGS" -no-reboot \
		"$@" >"$WORK/$name.err" 2>&1 &
	eval "PID_$name=$!"
	qemu_track $!
	local i
	for i in $(seq 1 100); do
		[ -S "$WORK/$name.qmp" ] && return 0
		sleep 0.1
	done
	die "QEMU $name did not open its QMP socket"
}

# The highest counter the guest printed on NAME's console (0 before the first).
qemu_last_tick() {
	tr -d '\r' <"$WORK/$1.log" 2>/dev/null | sed -n 's/^rmig-tick \([0-9][0-9]*\)$/\1/p' |
		tail -n 1 | grep . || echo 0
}

# qemu_wait_ticks NAME N TIMEOUT_S: until NAME's guest has counted to N.
qemu_wait_ticks() {
	local name=$1 want=$2 timeout=$3 t0=$SECONDS
	while [ "$(qemu_last_tick "$name")" -lt "$want" ]; do
		[ $((SECONDS - t0)) -lt "$timeout" ] ||
			die "the $name guest counted to $(qemu_last_tick "$name") of $want in ${timeout}s"
		sleep 0.2
	done
}

# The counters printed by the logs given, in order, must run 1, 2, 3, ... with no gap and no
# repeat: the serial byte stream of the source followed by the destination's, joined.
qemu_ticks_consecutive() {
	local bad
	bad=$(cat "$@" | tr -d '\r' | sed -n 's/^rmig-tick \([0-9][0-9]*\)$/\1/p' |
		awk 'NR == 1 && $1 != 1 { print "first counter " $1; exit }
		     NR > 1 && $1 != prev + 1 { print "counter " prev " followed by " $1; exit }
		     { prev = $1 }')
	[ -z "$bad" ] || die "the guest's counter is broken: $bad"
}

# qemu_pid_alive NAME
qemu_pid_alive() {
	local pid
	eval "pid=\$PID_$1"
	kill -0 "$pid" 2>/dev/null
}

# qemu_json FILE KEY...: a value from a JSON report (python3 is in scripts/setup.sh's list).
qemu_json() {
	local file=$1
	shift
	python3 -c '
import json, sys
v = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
for k in sys.argv[2:]:
    v = v[k]
print(v)' "$file" "$@"
}

# qemu_qmp SOCKET COMMAND [ARGUMENTS-JSON]: run one QMP command from the test (QEMU serves one
# client at a time: only while rmig is not connected) and print its "return" as JSON.
qemu_qmp() {
	python3 - "$@" <<'PY'
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(10)
s.connect(sys.argv[1])
f = s.makefile("rw")
def call(cmd, args=None):
    msg = {"execute": cmd}
    if args is not None:
        msg["arguments"] = args
    f.write(json.dumps(msg) + "\n")
    f.flush()
    while True:
        r = json.loads(f.readline())
        if "event" in r:
            continue
        if "error" in r:
            sys.exit("QMP %s: %s" % (cmd, r["error"]["desc"]))
        return r["return"]
json.loads(f.readline())
call("qmp_capabilities")
print(json.dumps(call(sys.argv[2], json.loads(sys.argv[3]) if len(sys.argv) > 3 else None)))
PY
}

# qemu_capability SOCKET NAME: "true" or "false".
qemu_capability() {
	qemu_qmp "$1" query-migrate-capabilities |
		python3 -c 'import json,sys; print(str([c["state"] for c in json.load(sys.stdin) if c["capability"] == sys.argv[1]][0]).lower())' "$2"
}

# qemu_recv_start NETNS QMP LISTEN-URI [qemu-recv options...]: rmig qemu-recv in the background
# (RECV_PID), its report in $WORK/recv.out, progress in $WORK/recv.err; returns once it listens.
qemu_recv_start() {
	local ns=$1 qmp=$2 uri=$3
	shift 3
	: >"$WORK/recv.err"
	exec_in_ns "$ns" "$RMIG" qemu-recv --qmp "$qmp" --listen "$uri" --timeout-ms 60000 \
		--json "$@" >"$WORK/recv.out" 2>"$WORK/recv.err" &
	RECV_PID=$!
	qemu_track "$RECV_PID"
	for _ in $(seq 1 100); do
		grep -q "waiting for rmig qemu-send" "$WORK/recv.err" && return 0
		kill -0 "$RECV_PID" 2>/dev/null || die "rmig qemu-recv exited early: $(cat "$WORK/recv.err")"
		sleep 0.1
	done
	die "rmig qemu-recv does not listen"
}

# qemu_recv_wait: RECV_STATUS = its exit status.
qemu_recv_wait() {
	RECV_STATUS=0
	wait "$RECV_PID" || RECV_STATUS=$?
}

# qemu_wait_gone NAME: the QEMU process NAME exits within 10 s.
qemu_wait_gone() {
	for _ in $(seq 1 100); do
		qemu_pid_alive "$1" || return 0
		sleep 0.1
	done
	die "QEMU $1 still runs"
}
