#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# tests/qemu/compare.sh [--rmig PATH] [--ram SIZE] [--files N] [--kib K] [--runs N]
#                       [--warmup TICKS] [--cache DIR] [--methods "M..."] [--qemu PATH]
#                       [--downtime-ms N] [--png FILE]
#
# The same guest and workload (tests/qemu/guest-init: N files of K KiB rewritten in a loop),
# migrated between two network namespaces joined by veth, six ways:
#   qemu          QEMU's own tcp migration, all RAM through QEMU, its default 128 MiB/s cap
#   qemu-nocap    the same with max-bandwidth raised out of the way
#   qemu-multifd  the same (no cap) with multifd, 2 channels
#   qemu+rmig     rmig qemu-send / qemu-recv: RAM through rmig (tcp), QEMU sends device state
#   linked        QEMU with librmig linked in (scripts/build-qemu.sh): an rmig object on both
#                 QEMUs and QEMU's own migrate with x-ignore-shared; RAM through rmig (tcp)
#                 tracked by QEMU's dirty log, device state through QEMU
#   linked-all    the same with verify=all: every page hashed at switchover (the default,
#                 verify=sample, compares the final round's pages and a random 16 MiB)
#   linked-noverify  the same with verify=off: no page compared at switchover
# Every row runs the same QEMU binary: --qemu PATH, by default the patched one when
# scripts/build-qemu.sh has it cached (else Debian's, and the linked row is left out).
# Each run boots a fresh source guest and lets it count to --warmup before migrating. Prints a
# table (median over --runs) of total time, downtime, the guest's STOP-to-RESUME interval and
# bytes on the wire, and the ratios of qemu+rmig and linked to qemu-nocap; a run counts only
# when the destination guest goes on counting (the table says how many did not). Needs root.
# --methods runs a subset (default: all seven), e.g. to repeat one row. --downtime-ms N sets
# every row's downtime target (QEMU's downtime-limit, rmig's downtime-ms; both 300 by default). --png FILE also plots
# the medians (total time; downtime and the guest's pause) with gnuplot.
# With RMIG_LOG=info in the environment, rmig's breakdown of its paused phase is printed too.
# Timings depend on the machine's load: compare rows from the same run only.
set -euo pipefail
# The linked QEMU's rmig objects authenticate each other with a shared key (both ends).
LINKED_KEY=rmig-compare-key

here=$(cd "$(dirname "$0")" && pwd)
RMIG=$here/../../build/rmig
CACHE=
runs=3
warmup=200
ram=256M
files=64
kib=64
methods="qemu qemu-nocap qemu-multifd qemu+rmig linked linked-all linked-noverify"
qemu_bin=
png=
downtime_ms=
while [ $# -gt 0 ]; do
	case "$1" in
	--rmig) RMIG=$2; shift 2 ;;
	--ram) ram=$2; shift 2 ;;
	--files) files=$2; shift 2 ;;
	--kib) kib=$2; shift 2 ;;
	--runs) runs=$2; shift 2 ;;
	--warmup) warmup=$2; shift 2 ;;
	--cache) CACHE=$2; shift 2 ;;
	--methods) methods=$2; shift 2 ;;
	--qemu) qemu_bin=$2; shift 2 ;;
	--png) png=$2; shift 2 ;;
	--downtime-ms) downtime_ms=$2; shift 2 ;;
	-h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
	*) echo "compare.sh: unknown option $1 (--help)" >&2; exit 2 ;;
	esac
done
for method in $methods; do
	case "$method" in
	qemu | qemu-nocap | qemu-multifd | qemu+rmig | linked | linked-all | linked-noverify) ;;
	*) echo "compare.sh: unknown method $method (qemu, qemu-nocap, qemu-multifd, qemu+rmig, linked, linked-all, linked-noverify)" >&2; exit 2 ;;
	esac
done
RMIG=$(realpath "$RMIG")
CACHE=${CACHE:-$(dirname "$RMIG")/tests/qemu/cache}
QEMU_RAM=$ram
QEMU_GUEST_ARGS="rmig.files=$files rmig.kib=$kib"
[ -n "$qemu_bin" ] || qemu_bin=$(bash "$here/../../scripts/build-qemu.sh" --check 2>/dev/null | tail -n 1) ||
	qemu_bin=qemu-system-x86_64
QEMU_BIN=$qemu_bin
# The linked rows run the librmig of the rmig given (its build's bindings/), not the one the
# QEMU binary was built with (its rpath, in build-qemu.sh's cache): what is measured is this
# checkout.
libdir=$(dirname "$RMIG")/bindings
[ ! -f "$libdir/librmig.so.1" ] || export LD_LIBRARY_PATH=$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
. "$here/lib.sh"
# A QEMU built from source looks for its firmware in its own prefix: point it at Debian's.
qemu_fw=()
[ "$(command -v "$QEMU_BIN")" = /usr/bin/qemu-system-x86_64 ] || qemu_fw=(-L /usr/share/qemu -L /usr/share/seabios)
if ! "$QEMU_BIN" -object help 2>/dev/null | grep -qE '^ *rmig$'; then
	case " $methods " in *" linked"*)
		echo "compare.sh: $QEMU_BIN does not link librmig: leaving out the linked rows (scripts/build-qemu.sh)" >&2
		methods=$(echo " $methods " | sed 's/ linked-noverify / /; s/ linked-all / /; s/ linked / /') ;;
	esac
fi

qemu_require
qemu_workdir
qemu_netns_setup
qemu_guest_prepare
results=$WORK/results.txt
: >"$results"

# QEMU's own migration from src.qmp to dst.qmp (both started already), MODE cap, nocap,
# multifd or linked (the destination has its rmig object; the source gets its own here); prints
# "total_ms downtime_ms guest_ms bytes" (linked: QEMU's bytes plus rmig's).
qemu_own_migration() {
	python3 - "$WORK/src.qmp" "$WORK/dst.qmp" "$1" "tcp:$QEMU_DST_IP:4444" "tcp://$QEMU_DST_IP:7000" \
		"$downtime_ms" <<'PY'
import json, os, socket, sys, time

class Qmp:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(120)
        self.sock.connect(path)
        self.file = self.sock.makefile("rw")
        self.events = []
        json.loads(self.file.readline())
        self.call("qmp_capabilities")
    def call(self, cmd, **args):
        msg = {"execute": cmd}
        if args:
            msg["arguments"] = args
        self.file.write(json.dumps(msg) + "\n")
        self.file.flush()
        while True:
            r = json.loads(self.file.readline())
            if "event" in r:
                self.events.append(r)
                continue
            if "error" in r:
                sys.exit("%s: %s" % (cmd, r["error"]["desc"]))
            return r["return"]
    def event_us(self, name):
        for e in self.events:
            if e["event"] == name:
                return e["timestamp"]["seconds"] * 1000000 + e["timestamp"]["microseconds"]
        return 0

src, dst = Qmp(sys.argv[1]), Qmp(sys.argv[2])
mode = sys.argv[3]
downtime_ms = int(sys.argv[6]) if sys.argv[6] else 0
if downtime_ms:
    src.call("migrate-set-parameters", **{"downtime-limit": downtime_ms})
if mode != "cap":
    src.call("migrate-set-parameters", **{"max-bandwidth": 100 << 30})
def caps(qmp, **c):
    qmp.call("migrate-set-capabilities",
             capabilities=[{"capability": k.replace("_", "-"), "state": v} for k, v in c.items()])
if mode == "multifd":
    for q in (src, dst):
        caps(q, multifd=True)
        q.call("migrate-set-parameters", **{"multifd-channels": 2})
if mode.startswith("linked"):
    for q in (src, dst):
        caps(q, x_ignore_shared=True)
    rmig = {"qom-type": "rmig", "id": "rmig0", "uri": sys.argv[5], "key": "rmig-compare-key",
            "verify": {"linked-noverify": "off", "linked-all": "all"}.get(mode, "sample")}
    if downtime_ms:
        rmig["downtime-ms"] = downtime_ms
    src.call("object-add", **rmig)
dst.call("migrate-incoming", uri=sys.argv[4])
src.call("migrate", uri=sys.argv[4])
# A migration that never converges (a downtime target the guest's writes never let it meet)
# is cancelled after two minutes and counted as failed.
give_up = time.time() + 120
while True:
    m = src.call("query-migrate")
    if m["status"] in ("completed", "failed", "cancelled"):
        break
    if time.time() > give_up:
        src.call("migrate_cancel")
        sys.exit("QEMU's migration did not end in 120 s (status %s)" % m["status"])
    time.sleep(0.005)
if m["status"] != "completed":
    sys.exit("QEMU's migration %s: %s" % (m["status"], m.get("error-desc", "")))
# Events trail the replies: read on until both ends have reported theirs.
deadline = time.time() + 30
while not (dst.event_us("RESUME") and src.event_us("STOP")) and time.time() < deadline:
    dst.call("query-status")
    src.call("query-status")
    time.sleep(0.005)
if not (dst.event_us("RESUME") and src.event_us("STOP")):
    sys.exit("no STOP event from the source or RESUME event from the destination (source: %s; "
             "destination: %s)" % ([e["event"] for e in src.events], [e["event"] for e in dst.events]))
guest_ms = (dst.event_us("RESUME") - src.event_us("STOP")) / 1000.0
sent = m["ram"]["transferred"]
if mode.startswith("linked"):
    stats = json.loads(src.call("qom-get", path="/objects/rmig0", property="stats"))
    if stats["status"] != "completed":
        sys.exit("rmig inside QEMU: %s" % stats)
    sent += stats["bytes"]
    if os.environ.get("RMIG_LOG"):
        print("rmig: rounds %s, each (setup, live rounds, final) ms: %s" %
              (stats["rounds"], stats["round-ms"]), file=sys.stderr)
print(m["total-time"], m["downtime"], "%.0f" % guest_ms, sent)
PY
}

# rmig qemu-send / qemu-recv; prints "total_ms downtime_ms guest_ms bytes".
rmig_migration() {
	qemu_recv_start "$NS_DST" "$WORK/dst.qmp" "tcp://$QEMU_DST_IP:7000"
	ip netns exec "$NS_SRC" "$RMIG" qemu-send --qmp "$WORK/src.qmp" \
		--uri "tcp://$QEMU_DST_IP:7000" ${downtime_ms:+--downtime-ms "$downtime_ms"} --json \
		>"$WORK/send.out" 2>"$WORK/send.err" ||
		die "qemu-send failed: $(cat "$WORK/send.err")"
	qemu_recv_wait
	[ "$RECV_STATUS" = 0 ] || die "qemu-recv failed: $(cat "$WORK/recv.err")"
	# With RMIG_LOG=info, where rmig's paused time went.
	grep -h -E "info: (source: final round|destination: resume)" "$WORK/send.err" \
		"$WORK/recv.err" >&2 || true
	python3 - "$WORK/send.out" "$WORK/recv.out" <<'PY'
import json, sys
s = json.loads(open(sys.argv[1]).read().splitlines()[-1])
r = json.loads(open(sys.argv[2]).read().splitlines()[-1])
guest_ms = (r["qemu"]["resume_timestamp_us"] - s["qemu"]["stop_timestamp_us"]) / 1000.0
print(s["total_time_ms"], s["downtime_ms"], "%.0f" % guest_ms, s["bytes"])
PY
}

# The destination guest goes on counting with its console intact; prints why not.
guest_survived() {
	local last want t0=$SECONDS bad
	last=$(qemu_last_tick src)
	want=$((last + 10))
	while [ "$(qemu_last_tick dst)" -lt "$want" ]; do
		if [ $((SECONDS - t0)) -ge 60 ]; then
			bad=$(tr -d '\r' <"$WORK/dst.log" | grep -m1 -E "Kernel panic|BUG:|Oops" || true)
			echo "the destination guest stopped counting at $(qemu_last_tick dst)${bad:+: $bad}"
			return 1
		fi
		sleep 0.2
	done
	bad=$(cat "$WORK/src.log" "$WORK/dst.log" | tr -d '\r' |
		sed -n 's/^rmig-tick \([0-9][0-9]*\)$/\1/p' |
		awk 'NR > 1 && $1 != prev + 1 { print "counter " prev " followed by " $1; exit } { prev = $1 }')
	[ -z "$bad" ] || { echo "the guest's counter broke: $bad"; return 1; }
}

one_run() {
	local method=$1 run=$2 line why
	rm -f "$WORK/src.ram" "$WORK/dst.ram"
	local dst_args=(-incoming defer)
	case "$method" in
	linked) dst_args+=(-object "rmig,id=rmig0,listen=tcp://$QEMU_DST_IP:7000,key=$LINKED_KEY") ;;
	linked-all) dst_args+=(-object "rmig,id=rmig0,listen=tcp://$QEMU_DST_IP:7000,verify=all,key=$LINKED_KEY") ;;
	linked-noverify) dst_args+=(-object "rmig,id=rmig0,listen=tcp://$QEMU_DST_IP:7000,verify=off,key=$LINKED_KEY") ;;
	esac
	qemu_start src "$NS_SRC" "${qemu_fw[@]}"
	qemu_wait_ticks src "$warmup" 180
	qemu_start dst "$NS_DST" "${qemu_fw[@]}" "${dst_args[@]}"
	local status=0
	case "$method" in
	qemu) line=$(qemu_own_migration cap) || status=$? ;;
	qemu-nocap) line=$(qemu_own_migration nocap) || status=$? ;;
	qemu-multifd) line=$(qemu_own_migration multifd) || status=$? ;;
	linked | linked-all | linked-noverify) line=$(qemu_own_migration "$method") || status=$? ;;
	qemu+rmig) line=$(rmig_migration) || status=$? ;;
	esac
	# A migration counts only when it reports its numbers and the destination guest goes on
	# counting; a failed one is counted as such and the runs go on.
	if [ "$status" != 0 ]; then
		echo "$method FAILED" >>"$results"
		log "run $run $method: FAILED: the migration did not report (exit $status; its error above)"
	elif why=$(guest_survived); then
		echo "$method $line" >>"$results"
		log "run $run $method: total, downtime, guest STOP->RESUME (ms), bytes: $line"
	else
		echo "$method FAILED" >>"$results"
		log "run $run $method: FAILED after the migration: $why"
		cp "$WORK/dst.log" "$WORK/failed-$run-$method.console"
	fi
	# The linked rows' librmig logs inside QEMU: its lines (RMIG_LOG=info: the paused phase's
	# breakdown) from the two QEMUs' stderr.
	case "$method" in
	linked*) [ -z "${RMIG_LOG:-}" ] || grep -h '^rmig: ' "$WORK/src.err" "$WORK/dst.err" >&2 || true ;;
	esac
	kill "$PID_src" "$PID_dst" 2>/dev/null || true
	wait "$PID_src" "$PID_dst" 2>/dev/null || true
}

log "guest: $ram RAM, $files files x $kib KiB rewritten in a loop; $runs run(s) of each method${downtime_ms:+; downtime target $downtime_ms ms}"
if [ -f "$libdir/librmig.so.1" ]; then
	log "QEMU: $QEMU_BIN; the linked rows load librmig from $libdir"
else
	log "QEMU: $QEMU_BIN; the linked rows load the librmig it was built with (none in $libdir)"
fi
for run in $(seq 1 "$runs"); do
	for method in $methods; do
		one_run "$method" "$run"
	done
done

python3 - "$results" "$ram" "$png" "$runs" <<'PY'
import os, statistics, subprocess, sys, tempfile
rows, failed = {}, {}
for line in open(sys.argv[1]):
    m, *v = line.split()
    if v == ["FAILED"]:
        failed[m] = failed.get(m, 0) + 1
        continue
    rows.setdefault(m, []).append([float(x) for x in v])
size = sys.argv[2]
mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(size[-1].upper(), 1)
ram = float(size[:-1] if size[-1].isalpha() else size) * mult
med = {m: [statistics.median(c) for c in zip(*v)] for m, v in rows.items()}
lo = {m: [min(c) for c in zip(*v)] for m, v in rows.items()}
hi = {m: [max(c) for c in zip(*v)] for m, v in rows.items()}
def cell(m, i, fmt):
    if len(rows[m]) == 1:
        return fmt % med[m][i]
    return (fmt + " (" + fmt + "-" + fmt + ")") % (med[m][i], lo[m][i], hi[m][i])
print()
print("| method | total time (ms) | downtime (ms) | guest STOP to RESUME (ms) | bytes on the wire (MiB) | bytes / RAM | failed, or guest broken after migration |")
print("|---|---:|---:|---:|---:|---:|---:|")
names = {"qemu": "QEMU tcp (default 128 MiB/s cap)", "qemu-nocap": "QEMU tcp (no cap)",
         "qemu-multifd": "QEMU tcp multifd, 2 channels (no cap)",
         "qemu+rmig": "QEMU + rmig unmodified (tcp)", "linked": "QEMU linked with rmig (tcp)",
         "linked-all": "QEMU linked with rmig (tcp), verify=all",
         "linked-noverify": "QEMU linked with rmig (tcp), verify=off"}
for m in ("qemu", "qemu-nocap", "qemu-multifd", "qemu+rmig", "linked", "linked-all", "linked-noverify"):
    if m not in rows and m not in failed:
        continue  # not among --methods
    if m not in rows:
        print("| %s | - | - | - | - | - | %d of %d |" % (names[m], failed.get(m, 0), failed.get(m, 0)))
        continue
    b = [x / 2**20 for x in (med[m][3], lo[m][3], hi[m][3])]
    bytes_cell = "%.1f" % b[0] if len(rows[m]) == 1 else "%.1f (%.1f-%.1f)" % tuple(b)
    runs = len(rows[m]) + failed.get(m, 0)
    print("| %s | %s | %s | %s | %s | %.2f | %d of %d |" % (names[m], cell(m, 0, "%.0f"),
          cell(m, 1, "%.0f"), cell(m, 2, "%.0f"), bytes_cell, med[m][3] / ram,
          failed.get(m, 0), runs))
def plot(path):
    order = [m for m in ("qemu", "qemu-nocap", "qemu-multifd", "qemu+rmig", "linked",
                         "linked-all", "linked-noverify") if m in rows]
    short = {"qemu": "QEMU (cap)", "qemu-nocap": "QEMU", "qemu-multifd": "QEMU multifd",
             "qemu+rmig": "rmig unmodified", "linked": "rmig linked",
             "linked-all": "linked verify=all", "linked-noverify": "linked verify=off"}
    fd, data = tempfile.mkstemp(suffix=".dat")
    with os.fdopen(fd, "w") as f:
        for m in order:
            f.write('"%s" %.1f %.1f %.1f\n' % (short[m], med[m][0], med[m][1], med[m][2]))
    script = """
set terminal pngcairo size 1200,480 font ",10"
set output "%s"
set multiplot layout 1,2 title "QEMU and rmig, %s guest, tcp between two namespaces (medians of %s runs)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set xtics rotate by -30 nomirror
set grid ytics
set yrange [0:*]
set offsets 0, 0, graph 0.25, 0
set key top left
set title "total migration time (ms)"
plot "%s" using 2:xtic(1) title "total" lc rgb "#4477aa"
set title "paused time (ms)"
plot "%s" using 3:xtic(1) title "downtime (QEMU's figure)" lc rgb "#ee6677", \\
     "" using 4 title "guest STOP to RESUME" lc rgb "#228833"
unset multiplot
""" % (path, sys.argv[2], sys.argv[4], data, data)
    try:
        subprocess.run(["gnuplot"], input=script, text=True, check=True)
        print("plot: %s" % path, file=sys.stderr)
    except (OSError, subprocess.CalledProcessError) as e:
        print("compare.sh: no plot (%s)" % e, file=sys.stderr)
    finally:
        os.unlink(data)
if len(sys.argv) > 3 and sys.argv[3] and rows:
    plot(sys.argv[3])
if "qemu-nocap" not in rows:
    sys.exit(0)
t0, d0, g0, b0 = med["qemu-nocap"]
print()
print("medians (min-max) of the runs whose guest survived.")
for m in ("qemu+rmig", "linked", "linked-all", "linked-noverify"):
    if m in rows:
        t1, d1, g1, b1 = med[m]
        print("%s vs QEMU (no cap): total time x%.2f, downtime x%.2f, guest pause x%.2f, bytes x%.2f"
              % (names[m], t1 / t0, d1 / d0, g1 / g0, b1 / b0))
PY
