#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# tests/qemu/testbed-migrate.sh - runs INSIDE the soft-RoCE testbed guest (tests/testbed/run
# --command, see test_linked_rdma.sh and compare-rdma.sh): two QEMUs in this guest migrate the
# multiboot guest (tiny-guest.S) over the rxe device, by one of two methods:
#   linked     QEMU linked with librmig: RAM by rmig over rdma://IP:7000 (the rmig object, same
#              key on both sides, x-ignore-shared), device state by QEMU's own stream over tcp
#              (verify=sample: the final round's pages and a random 16 MiB compared)
#   linked-all the same with verify=all: every page compared at switchover
#   linked-noverify  the same with the rmig objects' verify=off (no hash of every page at
#              switchover: QEMU's dirty log trusted)
#   linked-postcopy  linked, rmig's method=postcopy: QEMU switches over at rmig's resume, the
#              destination guest is continued at once and faults in what has not arrived
#              (RDMA READ of the source's RAM) while rmig's tail pushes the rest
#   qemu-rdma  QEMU's own RDMA migration (rdma:IP:4444, Debian's QEMU, built with RDMA),
#              max-bandwidth raised out of the way
# Every run is checked, whatever the method: QEMU reports completed; with both guests paused
# (the destination starts with -S) the two RAM files are byte-identical (linked-postcopy: the
# destination guest runs during the tail, so instead both rmig sessions must complete, the
# tail must still run when the guest is continued, and the guest's own check stands; how often
# it faulted is in the result line: 1 or 2 times here, as the push is quick); after cont the
# destination goes on counting from where the source stopped, no tick lost or repeated, and the
# guest's own check of its working set (rmig-bad) never fires; for linked, rmig's stats say
# completed, QEMU's dirty log as the dirty source, no page stale at verification, and QEMU's own
# stream carried less than 1/8 of the RAM. Each run prints one line:
#   result method=M run=N ram=BYTES total-ms=T downtime-ms=D bytes=B rmig-bytes=R qemu-bytes=Q
#          qemu-mbps=X ticks=A->B
# and exits 1 at the first failed check (with the logs' last lines). With --keep-going (for the
# comparisons) a failed run prints "result method=M run=N failed=REASON" instead and the next
# run follows; the exit status is then 1 when any run failed.
#
#   testbed-migrate.sh --linked-qemu BIN --stock-qemu BIN --guest ELF [--libdir DIR]
#                      [--methods "linked qemu-rdma"] [--runs N] [--ram SIZE] [--ip A]
#                      [--rmig-scheme rdma|tcp] [--keep-going] [--logs DIR]
# --logs DIR keeps each run's QEMU stderr (with librmig's log) and consoles in DIR/METHOD-N/.
# --rmig-scheme tcp runs the linked method over tcp:// instead (to try this script on a host
# without RDMA); --ip defaults to RMIG_TESTBED_IP, the testbed's rxe0 address.
set -euo pipefail

linked_qemu= stock_qemu= guest= libdir= methods=linked runs=1 ram=64M scheme=rdma keep_going=0
failure_file= logs= method= run=
ip=${RMIG_TESTBED_IP:-}
while [ $# -gt 0 ]; do
	case "$1" in
	--linked-qemu) linked_qemu=$2; shift ;;
	--stock-qemu) stock_qemu=$2; shift ;;
	--guest) guest=$2; shift ;;
	--libdir) libdir=$2; shift ;;
	--methods) methods=$2; shift ;;
	--runs) runs=$2; shift ;;
	--ram) ram=$2; shift ;;
	--ip) ip=$2; shift ;;
	--rmig-scheme) scheme=$2; shift ;;
	--keep-going) keep_going=1 ;;
	--logs) logs=$2; shift ;;
	*) echo "testbed-migrate: unknown argument $1" >&2; exit 2 ;;
	esac
	shift
done
[ -n "$ip" ] || { echo "testbed-migrate: no --ip and no RMIG_TESTBED_IP" >&2; exit 2; }
[ -f "$guest" ] || { echo "testbed-migrate: no guest kernel $guest" >&2; exit 2; }

key=rmig-testbed-linked-key
# rmig's dead-peer deadline (both objects' peer-timeout-ms), which also bounds connecting: 10 s
# by default, and setting up an RDMA connection in the loaded testbed once took longer (the
# destination gave up waiting for RDMA_CM_EVENT_ESTABLISHED at load 15). Like the engine tests'
# harness there, the test allows a minute.
peer_timeout_ms=${RMIG_TESTBED_PEER_TIMEOUT_MS:-60000}
firmware=(-L /usr/share/qemu -L /usr/share/seabios)
qmp_port_src=4450
qmp_port_dst=4451
pids=()
W=

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
cleanup() {
	local pid
	if [ -n "$logs" ] && [ -n "$W" ] && [ -d "$W" ]; then
		mkdir -p "$logs/$method-$run"
		cp "$W"/*.err "$W"/*.log "$logs/$method-$run/" 2>/dev/null || true
	fi
	for pid in "${pids[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${pids[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	pids=()
	[ -z "$W" ] || rm -rf "$W"
}
trap cleanup EXIT
die() {
	local f
	log "FAIL: $*"
	[ -z "$failure_file" ] || echo "$*" >"$failure_file"
	for f in "$W"/*.log "$W"/*.err; do
		[ -s "$f" ] || continue
		echo "---- $(basename "$f") (last lines)" >&2
		tail -n 15 "$f" | tr -d '\r' | cut -c1-300 >&2
	done
	exit 1
}

# qmp PORT COMMAND [ARGUMENTS-JSON]: one QMP command over QEMU's tcp monitor (bash's /dev/tcp:
# this guest has no python); prints the reply's line, fails on an error reply.
qmp() {
	local port=$1 cmd=$2 args=${3:-} fd line
	exec {fd}<>"/dev/tcp/127.0.0.1/$port" || return 1
	read -r -t 30 line <&"$fd" || { exec {fd}>&-; return 1; } # greeting
	printf '{"execute": "qmp_capabilities"}\n' >&"$fd"
	printf '{"execute": "%s"%s}\n' "$cmd" "${args:+, \"arguments\": $args}" >&"$fd"
	local replies=0
	while read -r -t 60 line <&"$fd"; do
		case "$line" in
		*'"event"'*) continue ;;
		*'"error"'*) exec {fd}>&-; echo "QMP $cmd: $line" >&2; return 1 ;;
		*'"return"'*)
			replies=$((replies + 1))
			[ "$replies" = 2 ] || continue
			exec {fd}>&-
			echo "$line"
			return 0
			;;
		esac
	done
	exec {fd}>&-
	echo "QMP $cmd: no reply" >&2
	return 1
}

# jget KEY < JSON: the first value of KEY (a number or a string) in one line of JSON.
jget() {
	sed 's/\\"/"/g' | grep -o "\"$1\": *\(\"[^\"]*\"\|[-0-9.]*\)" | head -n 1 |
		sed 's/^"[^"]*": *//; s/"//g'
}

last_tick() {
	tr -d '\r' <"$W/$1.log" 2>/dev/null | sed -n 's/^rmig-tick \([0-9][0-9]*\)$/\1/p' |
		tail -n 1 | grep . || echo 0
}
wait_ticks() { # NAME N TIMEOUT_S
	local t0=$SECONDS
	while [ "$(last_tick "$1")" -lt "$2" ]; do
		grep -q rmig-bad "$W/$1.log" 2>/dev/null && die "the $1 guest found a page it did not write: $(grep rmig-bad "$W/$1.log")"
		[ $((SECONDS - t0)) -lt "$3" ] ||
			die "the $1 guest counted to $(last_tick "$1") of $2 in $3 s"
		sleep 0.5
	done
}

# start NAME BIN [QEMU options...]: NAME.ram, NAME.log (its serial console), NAME.err
start() {
	local name=$1 bin=$2 port
	shift 2
	[ "$name" = src ] && port=$qmp_port_src || port=$qmp_port_dst
	truncate -s "$ram" "$W/$name.ram"
	# RMIG_LOG=info: librmig says where the paused time went (its "final round:" line)
	RMIG_LOG=info "$bin" -machine q35,memory-backend=mem -m "$ram" -accel tcg "${firmware[@]}" \
		-object "memory-backend-file,id=mem,size=$ram,mem-path=$W/$name.ram,share=on" \
		-nodefaults -display none -serial "file:$W/$name.log" -no-reboot \
		-qmp "tcp:127.0.0.1:$port,server=on,wait=off" -kernel "$guest" \
		"$@" >"$W/$name.err" 2>&1 &
	pids+=($!)
	local i
	for i in $(seq 1 600); do
		qmp "$port" query-status >/dev/null 2>&1 && return 0
		kill -0 "${pids[-1]}" 2>/dev/null || die "QEMU $name exited: $(cat "$W/$name.err")"
		sleep 0.2
	done
	die "QEMU $name does not answer on its QMP port $port"
}

# one_run METHOD N
one_run() {
	method=$1 run=$2
	local bin
	W=$(mktemp -d /dev/shm/rmig-testbed-migrate.XXXXXX)
	local verify=sample rmig_method=precopy
	case "$method" in
	linked) bin=$linked_qemu ;;
	linked-all) bin=$linked_qemu verify=all ;;
	linked-noverify) bin=$linked_qemu verify=off ;;
	linked-postcopy) bin=$linked_qemu rmig_method=postcopy ;;
	qemu-rdma) bin=$stock_qemu ;;
	*) die "unknown method $method" ;;
	esac
	[ -x "$bin" ] || die "no QEMU binary for $method ($bin)"
	log "$method run $run: booting the source guest ($ram) on $bin"
	start src "$bin"
	wait_ticks src 10 300
	if [ "$bin" = "$linked_qemu" ]; then
		start dst "$bin" -S -incoming defer \
			-object "rmig,id=rmig0,listen=$scheme://$ip:7000,key=$key,verify=$verify,peer-timeout-ms=$peer_timeout_ms"
		for port in $qmp_port_src $qmp_port_dst; do
			qmp "$port" migrate-set-capabilities \
				'{"capabilities": [{"capability": "x-ignore-shared", "state": true}]}' >/dev/null
		done
		qmp $qmp_port_dst migrate-incoming '{"uri": "tcp:127.0.0.1:4444"}' >/dev/null
		qmp $qmp_port_src object-add "{\"qom-type\": \"rmig\", \"id\": \"rmig0\", \"uri\": \"$scheme://$ip:7000\", \"key\": \"$key\", \"verify\": \"$verify\", \"peer-timeout-ms\": $peer_timeout_ms, \"method\": \"$rmig_method\"}" >/dev/null
		uri=tcp:127.0.0.1:4444
	else
		start dst "$bin" -S -incoming defer
		qmp $qmp_port_src migrate-set-parameters '{"max-bandwidth": 107374182400}' >/dev/null
		qmp $qmp_port_dst migrate-incoming "{\"uri\": \"rdma:$ip:4444\"}" >/dev/null
		uri=rdma:$ip:4444
	fi
	local tick_before t0 reply status
	tick_before=$(last_tick src)
	log "$method run $run: migrate to $uri (counter $tick_before)"
	qmp $qmp_port_src migrate "{\"uri\": \"$uri\"}" >/dev/null || die "migrate refused"
	t0=$SECONDS
	while :; do
		reply=$(qmp $qmp_port_src query-migrate) || die "query-migrate failed"
		status=$(jget status <<<"$reply")
		case "$status" in
		completed) break ;;
		failed | cancelled) die "QEMU's migration $status: $reply" ;;
		esac
		[ $((SECONDS - t0)) -lt 600 ] || die "the migration still runs after 600 s: $reply"
		sleep 0.5
	done
	local dst_state
	t0=$SECONDS
	while :; do
		dst_state=$(qmp $qmp_port_dst query-status | jget status)
		[ "$dst_state" = inmigrate ] || break
		[ $((SECONDS - t0)) -lt 120 ] || break
		sleep 0.2
	done
	[ "$dst_state" = paused ] || [ "$dst_state" = prelaunch ] ||
		die "the destination QEMU is $dst_state after the migration, expected paused"
	local tail_status= src_status dst_status
	if [ "$rmig_method" = postcopy ]; then
		# The guest runs on the destination while rmig's tail still delivers its RAM; both
		# sessions end with the tail.
		tail_status=$(qmp $qmp_port_dst qom-get '{"path": "/objects/rmig0", "property": "stats"}' | jget status)
		qmp $qmp_port_dst cont >/dev/null
		log "$method run $run: destination continued with rmig's session $tail_status"
		t0=$SECONDS
		while :; do
			src_status=$(qmp $qmp_port_src qom-get '{"path": "/objects/rmig0", "property": "stats"}' | jget status)
			dst_status=$(qmp $qmp_port_dst qom-get '{"path": "/objects/rmig0", "property": "stats"}' | jget status)
			[ "$src_status" != completed ] || [ "$dst_status" != completed ] || break
			case "$src_status $dst_status" in
			*failed* | *lost* | *cancelled*) die "rmig's tail ended $src_status (source), $dst_status (destination)" ;;
			esac
			grep -q rmig-bad "$W/dst.log" 2>/dev/null && die "the destination guest found a page it did not write: $(grep rmig-bad "$W/dst.log")"
			[ $((SECONDS - t0)) -lt 600 ] || die "rmig's tail is $src_status, $dst_status 600 s after QEMU completed"
			sleep 0.5
		done
	fi

	local ram_bytes total setup downtime qemu_bytes mbps rmig_bytes=0 bytes stats=
	ram_bytes=$(stat -c %s "$W/src.ram")
	total=$(jget total-time <<<"$reply")
	setup=$(jget setup-time <<<"$reply")
	downtime=$(jget downtime <<<"$reply")
	qemu_bytes=$(jget transferred <<<"$reply")
	mbps=$(jget mbps <<<"$reply")
	if [ "$bin" = "$linked_qemu" ]; then
		stats=$(qmp $qmp_port_src qom-get '{"path": "/objects/rmig0", "property": "stats"}')
		log "source rmig: $stats"
		[ "$(jget status <<<"$stats")" = completed ] || die "rmig's source session did not complete: $stats"
		[ "$(qmp $qmp_port_dst qom-get '{"path": "/objects/rmig0", "property": "stats"}' | jget status)" = completed ] ||
			die "rmig's destination session did not complete"
		if [ "$rmig_method" = postcopy ]; then
			[ "$tail_status" = postcopy ] ||
				die "rmig's tail had ended ($tail_status) before the destination guest ran"
		else
			[ "$(jget dirty-source <<<"$stats")" = 1 ] || die "rmig did not track through QEMU's dirty log"
		fi
		[ "$(jget ram-bytes <<<"$stats")" = "$ram_bytes" ] || die "rmig carried another RAM size"
		[ "$(jget pages-mismatched <<<"$stats")" = 0 ] ||
			die "verification found pages QEMU's dirty log did not report: $stats"
		local verified
		verified=$(jget pages-verified <<<"$stats")
		case "$verify:$rmig_method" in
		*:postcopy | off:*) ;;
		all:*)
			[ "$verified" = $((ram_bytes / 4096)) ] || die "not every page verified: $stats" ;;
		*)
			# verify=sample: the final round's pages and a random 16 MiB, every page only
			# when one differed (and then pages-mismatched is not 0, checked above).
			[ "$verified" -gt 0 ] && [ "$verified" -lt $((ram_bytes / 4096)) ] ||
				die "verify=sample compared $verified of $((ram_bytes / 4096)) pages: $stats" ;;
		esac
		[ "$qemu_bytes" -lt $((ram_bytes / 8)) ] || die "QEMU's own stream carried $qemu_bytes bytes"
		rmig_bytes=$(jget bytes <<<"$stats")
		if [ "$rmig_method" = postcopy ]; then
			# QEMU's total time ends at its switchover; the migration ends with rmig's tail
			# (its last round).
			local tail_ms
			tail_ms=$(sed 's/\\"/"/g' <<<"$stats" | grep -o '"round-ms": \[[^]]*\]' | sed 's/.*[[ ,]\([0-9.]*\)\]$/\1/')
			total=$((total + ${tail_ms%.*}))
		fi
	fi
	bytes=$((rmig_bytes + qemu_bytes))
	[ "$bytes" -ge $((ram_bytes / 2)) ] || die "only $bytes bytes moved for $ram_bytes of filled RAM"

	# Both paused: the files must be the same. When they are not, say how many pages differ and
	# let the destination run first: its own check shows whether the guest sees the difference.
	local differ=0
	if [ "$rmig_method" = postcopy ]; then
		: # the destination guest has run since the switchover: its own check stands
	elif ! cmp "$W/src.ram" "$W/dst.ram" >/dev/null 2>&1; then
		differ=$( (cmp -l "$W/src.ram" "$W/dst.ram" 2>/dev/null || true) |
			awk '{print int(($1 - 1) / 4096)}' | uniq | wc -l)
		log "the RAM files differ in $differ pages (first: $(cmp "$W/src.ram" "$W/dst.ram" 2>&1 | head -n 1))"
	fi
	[ "$rmig_method" = postcopy ] || qmp $qmp_port_dst cont >/dev/null
	local src_last
	src_last=$(last_tick src)
	[ "$src_last" -gt "$tick_before" ] || die "the source guest did not run during the migration"
	wait_ticks dst $((src_last + 10)) 300 # fails at once should the guest find a page wrong
	[ "$differ" = 0 ] ||
		die "guest RAM differed after the switchover in $differ pages (the guest's working set was intact)"
	local bad
	bad=$(cat "$W/src.log" "$W/dst.log" | tr -d '\r' | sed -n 's/^rmig-tick \([0-9][0-9]*\)$/\1/p' |
		awk 'NR == 1 && $1 != 1 { print "first counter " $1; exit }
		     NR > 1 && $1 != prev + 1 { print "counter " prev " followed by " $1; exit }
		     { prev = $1 }')
	[ -z "$bad" ] || die "the guest's counter is broken: $bad"
	! grep -q rmig-bad "$W/src.log" "$W/dst.log" || die "the guest found a page it did not write"
	[ "$(last_tick src)" = "$src_last" ] || die "the source guest still runs after the migration"
	local final
	final=$(grep -a -m 1 "source: final round:" "$W/src.err" | sed 's/.*final round: //; s/[ ;,]\{1,\}/_/g' || true)
	echo "result method=$method run=$run ram=$ram_bytes total-ms=$total setup-ms=$setup downtime-ms=$downtime" \
		"bytes=$bytes rmig-bytes=$rmig_bytes qemu-bytes=$qemu_bytes qemu-mbps=$mbps" \
		"rmig-rounds=$(jget rounds <<<"${stats:-}") rmig-round-ms=$(sed 's/\\"/"/g' <<<"${stats:-}" | grep -o '"round-ms": \[[^]]*\]' | sed 's/.*\[//; s/[] ]//g')" \
		"ticks=$src_last->$(last_tick dst) rmig-final=${final:--}" \
		"rmig-faults=$(jget postcopy-faults <<<"${stats:-}") rmig-stall-us=$(jget postcopy-stall-us <<<"${stats:-}")"
	cleanup
	W=
}

[ -z "$libdir" ] || export LD_LIBRARY_PATH=$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
status=0
for run in $(seq 1 "$runs"); do
	for method in $methods; do
		if [ "$keep_going" = 0 ]; then
			one_run "$method" "$run"
			continue
		fi
		failure_file=$(mktemp)
		if ! (trap cleanup EXIT; one_run "$method" "$run"); then
			status=1
			echo "result method=$method run=$run failed=$(head -n 1 "$failure_file" | cut -c1-160 | tr ' ' _)"
		fi
		rm -f "$failure_file"
	done
done
exit $status
