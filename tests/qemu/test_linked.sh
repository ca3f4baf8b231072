#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# tests/qemu/test_linked.sh RMIG CACHE [LIBDIR] [METHOD]
#
# QEMU with librmig linked in (bindings/qemu/patches/, built by scripts/build-qemu.sh, cached):
# a booted guest migrated between two network namespaces over tcp, RAM through the linked rmig
# (QEMU's own dirty log, zero-copy from its RAM blocks), device state through QEMU's stream.
# The destination QEMU has its rmig object on the command line (listen=), the source gets its
# own by QMP object-add (uri=), both with the same key; then QEMU's usual migrate-incoming and
# migrate with x-ignore-shared; METHOD (precopy, predict, auto, postcopy, hybrid or tsmc;
# default precopy) is the source object's method. The destination starts with -S so that the
# guest stays paused after the switchover. Checks:
# - the migration completes and rmig's stats (qom-get rmig0 stats) say completed, QEMU's dirty
#   log as the dirty source and none found stale by verification; with RMIG_LINKED_VERIFY=all
#   (the source object's verify=all) every page verified (the post-copy family: every page the
#   destination kept), with the object's default (verify=sample) the final round's pages and a
#   sample, under half the RAM for the pre-copy family;
# - QEMU's own stream carried far less than the guest RAM (only device state and ROMs);
# - every method but post-copy: with both guests paused and rmig done (hybrid and tsmc: their
#   post-copy tail too), the two RAM files are byte-identical;
# - post-copy: the link is slowed (tc tbf on the veth) and the destination guest is continued as
#   soon as QEMU has switched over, while rmig's tail still delivers all its RAM: it must fault
#   on pages not yet there (rmig's postcopy-faults > 0), and the tail must end with both
#   sessions completed;
# - after cont the destination guest goes on counting from where the source stopped (the
#   source's console followed by the destination's reads 1, 2, 3, ...), the source stays still;
# - METHOD postcopy-source-dies: post-copy as above with both objects' recovery-window-ms=3000,
#   and the source QEMU killed (SIGKILL) once the destination guest runs, mid-tail: the
#   destination's rmig (its log, RMIG_LOG=info) must pause the tail to recover, then give the
#   VM up when the window passes; the destination QEMU must stay up (its guest waits on the
#   pages it lacks, it never reads them as zeroes), and when its monitor answers (a vCPU that
#   faults while delivering an interrupt holds QEMU's BQL, and then it cannot) its rmig stats
#   must say lost and why;
# - `rmig qemu-recv` recognises the linked QEMU with its rmig object and refuses to drive it.
# RMIG_QEMU_SERIES (7.2 by default, or 10.0) picks the patch series and so the QEMU it runs
# (scripts/build-qemu.sh --series).
# Skips (77) without root or when the patched QEMU cannot be built here.
set -euo pipefail

RMIG=$(realpath "$1")
CACHE=$2
libdir=${3:-}
method=${4:-precopy}
rmig_method=$method fault= window_props= window_json=
if [ "$method" = postcopy-source-dies ]; then
	rmig_method=postcopy fault=source-dies
	window_props=,recovery-window-ms=3000 window_json=', "recovery-window-ms": 3000'
	export RMIG_LOG=info # librmig's log in each QEMU's stderr (WORK/NAME.err)
fi
series=${RMIG_QEMU_SERIES:-7.2}
verify=${RMIG_LINKED_VERIFY:-}
verify_json=${verify:+", \"verify\": \"$verify\""}
. "$(dirname "$0")/lib.sh"

qemu_require
root=$QEMU_ROOT
if ! QEMU_BIN=$(bash "$root/scripts/build-qemu.sh" --series "$series" --check 2>/dev/null | tail -n 1); then
	log "no cached patched QEMU $series; building it (scripts/build-qemu.sh --series $series)"
	QEMU_BIN=$(bash "$root/scripts/build-qemu.sh" --series "$series" | tail -n 1) ||
		skip "the patched QEMU cannot be built here (scripts/build-qemu.sh failed)"
fi
[ -x "$QEMU_BIN" ] || skip "no patched QEMU binary ($QEMU_BIN)"
# The binary finds the librmig it was built with by its rpath; LIBDIR (the build's librmig.so.1,
# the same ABI) goes first, so the test runs the library of this build.
if [ -n "$libdir" ]; then
	export LD_LIBRARY_PATH=$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
fi
firmware=(-L /usr/share/qemu -L /usr/share/seabios)
key=rmig-linked-test-key

qemu_workdir
qemu_netns_setup
qemu_guest_prepare

log "booting the source guest ($QEMU_RAM) on $QEMU_BIN in namespace $NS_SRC"
qemu_start src "$NS_SRC" "${firmware[@]}"
qemu_wait_ticks src 30 120
log "source guest counting ($(qemu_last_tick src)); destination QEMU with -object rmig,listen=..."
qemu_start dst "$NS_DST" "${firmware[@]}" -S -incoming defer \
	-object "rmig,id=rmig0,listen=tcp://$QEMU_DST_IP:7000,key=$key$window_props"

# rmig recognises a QEMU that links librmig and will not drive one that has its own rmig object.
detect_status=0
in_ns "$NS_DST" "$RMIG" qemu-recv --qmp "$WORK/dst.qmp" --listen "tcp://$QEMU_DST_IP:7001" \
	--timeout-ms 10000 >"$WORK/detect.out" 2>"$WORK/detect.err" || detect_status=$?
[ "$detect_status" != 0 ] || die "rmig qemu-recv drove a QEMU that has its own rmig object"
grep -q "links librmig and has its own rmig object 'rmig0'" "$WORK/detect.err" ||
	die "qemu-recv did not recognise the linked QEMU: $(cat "$WORK/detect.err")"
[ "$(qemu_capability "$WORK/dst.qmp" x-ignore-shared)" = false ] ||
	die "qemu-recv changed the capabilities of a QEMU it refused"

for side in src dst; do
	qemu_qmp "$WORK/$side.qmp" migrate-set-capabilities \
		'{"capabilities": [{"capability": "x-ignore-shared", "state": true}]}' >/dev/null
done
qemu_qmp "$WORK/dst.qmp" migrate-incoming "{\"uri\": \"tcp:$QEMU_DST_IP:4444\"}" >/dev/null
# post-copy: the destination guest runs during the tail (all RAM), which a slowed link makes
# last long enough (seconds) for the guest to fault on pages that have not arrived.
early_cont=0
case "$rmig_method" in
postcopy)
	early_cont=1
	tc -n "$NS_SRC" qdisc add dev "$VETH_SRC" root tbf rate 48mbit burst 64kb latency 500ms ||
		die "cannot slow the link with tc"
	;;
esac
qemu_qmp "$WORK/src.qmp" object-add \
	"{\"qom-type\": \"rmig\", \"id\": \"rmig0\", \"uri\": \"tcp://$QEMU_DST_IP:7000\", \"key\": \"$key\", \"method\": \"$rmig_method\"$window_json$verify_json}" >/dev/null
tick_before=$(qemu_last_tick src)
log "migrate (counter $tick_before)"
qemu_qmp "$WORK/src.qmp" migrate "{\"uri\": \"tcp:$QEMU_DST_IP:4444\"}" >/dev/null

t0=$SECONDS
while :; do
	qemu_qmp "$WORK/src.qmp" query-migrate >"$WORK/migrate.out"
	status=$(qemu_json "$WORK/migrate.out" status)
	case "$status" in
	completed) break ;;
	failed | cancelled) die "QEMU's migration $status: $(cat "$WORK/migrate.out")" ;;
	esac
	[ $((SECONDS - t0)) -lt 120 ] || die "the migration still runs after 120 s: $status"
	sleep 0.1
done
# rmig_stats SIDE: rmig's stats of that side's QEMU into $WORK/SIDE-stats.out
rmig_stats() {
	qemu_qmp "$WORK/$1.qmp" qom-get '{"path": "/objects/rmig0", "property": "stats"}' |
		python3 -c 'import json,sys; print(json.load(sys.stdin))' >"$WORK/$1-stats.out"
}
rmig_stats src
log "source rmig at QEMU's completion: $(cat "$WORK/src-stats.out")"
used=$(qemu_json "$WORK/src-stats.out" method-used)
family=pre
case "$used" in
postcopy | hybrid | tsmc) family=post ;;
esac
case "$rmig_method:$used" in
precopy:precopy | predict:predict | postcopy:postcopy | hybrid:hybrid | tsmc:tsmc) ;;
auto:precopy | auto:predict | auto:postcopy | auto:hybrid | auto:tsmc) ;;
*) die "method $method ran as $used" ;;
esac
if [ "$family" = pre ] && [ "$(qemu_json "$WORK/src-stats.out" status)" != completed ]; then
	die "QEMU completed before rmig's $used session: $(qemu_json "$WORK/src-stats.out" status)"
fi

# The destination finishes loading after the source completes: wait for it to be paused there.
t0=$SECONDS
while :; do
	dst_state=$(qemu_qmp "$WORK/dst.qmp" query-status | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')
	[ "$dst_state" = inmigrate ] || break
	[ $((SECONDS - t0)) -lt 120 ] || break
	sleep 0.1
done
[ "$dst_state" = paused ] || [ "$dst_state" = prelaunch ] ||
	die "the destination QEMU is $dst_state after the migration, expected paused"
if [ "$early_cont" = 1 ]; then
	# The guest runs on the destination while rmig's tail still delivers its RAM.
	rmig_stats dst
	tail_status=$(qemu_json "$WORK/dst-stats.out" status)
	qemu_qmp "$WORK/dst.qmp" cont >/dev/null
	log "destination continued with rmig's session $tail_status"
	[ "$tail_status" = postcopy ] ||
		die "rmig's tail had ended before the destination guest ran ($tail_status): nothing was left to fault on"
fi
if [ "$fault" = source-dies ]; then
	kill -9 "$PID_src"
	log "killed the source QEMU mid-tail"
	t0=$SECONDS
	# wait_log PATTERN WHAT: until the destination's librmig logs PATTERN (60 s at most).
	wait_log() {
		until grep -a -q "$1" "$WORK/dst.err"; do
			qemu_pid_alive dst || die "the destination QEMU died with the source"
			[ $((SECONDS - t0)) -lt 60 ] || die "the destination's rmig never logged $2 in 60 s"
			sleep 0.2
		done
	}
	wait_log "post-copy paused, the connection is lost" "that it recovers"
	wait_log "no new connection within the recovery window of 3 s" "that the VM is lost"
	log "the destination's rmig gave the VM up after $((SECONDS - t0)) s:" \
		"$(grep -a -m 1 'no new connection within the recovery window' "$WORK/dst.err" | cut -c1-200)"
	qemu_pid_alive dst || die "the destination QEMU died with the source"
	if qemu_qmp "$WORK/dst.qmp" qom-get '{"path": "/objects/rmig0", "property": "stats"}' \
		>"$WORK/dst-stats.raw" 2>/dev/null; then
		python3 -c 'import json,sys; print(json.load(sys.stdin))' <"$WORK/dst-stats.raw" >"$WORK/dst-stats.out"
		[ "$(qemu_json "$WORK/dst-stats.out" status)" = lost ] ||
			die "the destination's rmig stats say $(qemu_json "$WORK/dst-stats.out" status), not lost"
		error=$(qemu_json "$WORK/dst-stats.out" error)
		case "$error" in *"recovery window"*) ;; *) die "the destination's stats do not say why: '$error'" ;; esac
		log "destination stats: lost, \"$error\""
	else
		log "the destination's monitor does not answer: a vCPU waits on a missing page with QEMU's BQL held"
	fi
	# The VM is lost: stop its QEMU, as a management layer must (SIGKILL: a QEMU whose vCPU
	# holds the BQL cannot run its main loop to quit).
	kill -9 "$PID_dst"
	log "PASS: linked rmig (QEMU $series), post-copy, source QEMU killed mid-tail: recovering, then lost"
	exit 0
fi

# rmig's sessions end after QEMU's migration for the post-copy family (the tail).
t0=$SECONDS
while :; do
	rmig_stats src
	rmig_stats dst
	src_status=$(qemu_json "$WORK/src-stats.out" status)
	dst_status=$(qemu_json "$WORK/dst-stats.out" status)
	[ "$src_status" != completed ] || [ "$dst_status" != completed ] || break
	case "$src_status $dst_status" in
	*failed* | *lost* | *cancelled*) die "rmig ended $src_status (source), $dst_status (destination): $(cat "$WORK/src-stats.out") $(cat "$WORK/dst-stats.out")" ;;
	esac
	[ $((SECONDS - t0)) -lt 180 ] || die "rmig's sessions are $src_status and $dst_status 180 s after QEMU completed"
	sleep 0.2
done
log "source rmig: $(cat "$WORK/src-stats.out")"
log "destination rmig: $(cat "$WORK/dst-stats.out")"

# What rmig and QEMU each carried.
# Every method but post-copy tracks writes while the guest runs: through QEMU's dirty log (auto
# does, to measure, whatever it chooses then).
dirty_source=$(qemu_json "$WORK/src-stats.out" dirty-source)
if [ "$rmig_method" = postcopy ]; then
	[ "$dirty_source" = 0 ] || die "post-copy tracked writes (dirty source $dirty_source)"
else
	[ "$dirty_source" = 1 ] || die "rmig did not track through QEMU's dirty log (dirty source $dirty_source)"
fi
ram_bytes=$(stat -c %s "$WORK/src.ram")
[ "$(qemu_json "$WORK/src-stats.out" ram-bytes)" = "$ram_bytes" ] || die "rmig carried another RAM size"
verified=$(qemu_json "$WORK/src-stats.out" pages-verified)
mismatched=$(qemu_json "$WORK/src-stats.out" pages-mismatched)
if [ "$family" = pre ] && [ "$verify" = all ]; then
	[ "$verified" = $((ram_bytes / 4096)) ] || die "$verified pages verified of $((ram_bytes / 4096))"
elif [ "$family" = pre ]; then
	# verify=sample: the final round's pages and 16 MiB (every page only if one differed).
	[ "$verified" -gt 0 ] && [ "$verified" -lt $((ram_bytes / 4096 / 2)) ] ||
		die "$verified pages verified of $((ram_bytes / 4096)) with verify=sample"
else
	# The post-copy family verifies what the destination keeps; the rest comes after resume.
	postcopy_pages=$(qemu_json "$WORK/src-stats.out" postcopy-pages)
	[ "$postcopy_pages" -gt 0 ] || die "the $used tail delivered no page"
	[ "$verified" -le $((ram_bytes / 4096)) ] || die "$verified pages verified of $((ram_bytes / 4096))"
fi
[ "$mismatched" = 0 ] || die "verification found $mismatched pages QEMU's dirty log did not report"
rmig_bytes=$(qemu_json "$WORK/src-stats.out" bytes)
qemu_bytes=$(qemu_json "$WORK/migrate.out" ram transferred)
pages_sent=$(qemu_json "$WORK/src-stats.out" pages-sent)
[ "$pages_sent" -ge $((ram_bytes / 4096)) ] || die "rmig sent $pages_sent pages for $((ram_bytes / 4096)) of RAM"
[ "$qemu_bytes" -lt $((ram_bytes / 8)) ] || die "QEMU's own stream carried $qemu_bytes bytes of RAM"

if [ "$early_cont" = 1 ]; then
	faults=$(qemu_json "$WORK/dst-stats.out" postcopy-faults)
	[ "$faults" -gt 0 ] || die "the destination guest ran during the tail but never faulted"
else
	# Both guests paused and rmig done: the RAM files must be identical.
	cmp "$WORK/src.ram" "$WORK/dst.ram" >"$WORK/cmp.out" 2>&1 ||
		die "guest RAM differs after the switchover: $(cat "$WORK/cmp.out")"
	qemu_qmp "$WORK/dst.qmp" cont >/dev/null
fi
src_last=$(qemu_last_tick src)
[ "$src_last" -gt "$tick_before" ] || die "the source guest did not run during the migration"
qemu_wait_ticks dst $((src_last + 30)) 60
qemu_ticks_consecutive "$WORK/src.log" "$WORK/dst.log"
[ "$(qemu_last_tick src)" = "$src_last" ] || die "the source guest still runs after the migration"
log "PASS: linked rmig (QEMU $series) over tcp, method $method (ran $used); QEMU downtime $(qemu_json "$WORK/migrate.out" downtime) ms," \
	"total $(qemu_json "$WORK/migrate.out" total-time) ms; rmig $rmig_bytes bytes, QEMU $qemu_bytes;" \
	"$verified pages verified, $mismatched stale; post-copy faults on the destination" \
	"$(qemu_json "$WORK/dst-stats.out" postcopy-faults); counter $src_last -> $(qemu_last_tick dst)"
