#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# tests/qemu/compare-rdma.sh [--build-dir DIR] [--runs N] [--ram SIZE] [--methods "..."]
#
# QEMU's own RDMA migration against QEMU linked with librmig over rdma://, on the same soft-RoCE
# device (rxe0 inside one testbed guest), the same guest (tests/qemu/tiny-guest.S: RAM filled,
# 2 MiB rewritten per tick) and the same QEMU version (Debian's 7.2 for rdma:, the patched 7.2
# from scripts/build-qemu.sh for the linked rows). One testbed boot; inside it every run of every
# method in turn (testbed-migrate.sh, which checks each run as the test does). Prints the table
# of docs/qemu.md: medians (min-max) of total time, downtime, bytes on the wire and throughput
# (bytes on the wire / total time), and how many runs failed a check (RAM files different after
# the switchover, the guest finding a stale page, ...; each reason is listed under the table).
# Methods: qemu-rdma, linked, linked-all, linked-noverify, linked-postcopy (default: all). For
# linked-postcopy the total time runs to the end of rmig's tail, and the faults' summed stall is
# listed under the table.
# Each run's QEMU stderr (librmig's log at info) and consoles: BUILD/testbed/compare-rdma-logs/.
# Not a test: nothing here asserts performance.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
build_dir=$root/build
runs=3
ram=64M
methods="qemu-rdma linked linked-all linked-noverify linked-postcopy"
while [ $# -gt 0 ]; do
	case "$1" in
	--build-dir) build_dir=$2; shift ;;
	--runs) runs=$2; shift ;;
	--ram) ram=$2; shift ;;
	--methods) methods=$2; shift ;;
	*) echo "compare-rdma: unknown argument $1" >&2; exit 2 ;;
	esac
	shift
done
build_dir=$(cd "$build_dir" && pwd)
libdir=$build_dir/bindings
[ -f "$libdir/librmig.so.1" ] || { echo "compare-rdma: build first ($libdir/librmig.so.1)" >&2; exit 2; }

echo "compare-rdma: $runs runs of $methods, $ram guest, in one testbed boot (progress below)" >&2
status=0
rm -rf "$build_dir/testbed/compare-rdma-logs"
bash "$here/test_linked_rdma.sh" "$build_dir" "$build_dir/tests/qemu/cache" "$libdir" \
	--methods "$methods" --runs "$runs" --ram "$ram" --keep-going \
	--logs "$build_dir/testbed/compare-rdma-logs" >&2 || status=$?
log=$build_dir/testbed/run-loopback/results/command.log
[ -f "$log" ] || { echo "compare-rdma: no results ($log)" >&2; exit 1; }
python3 - "$log" "$methods" <<'EOF'
import statistics, sys
names = {"qemu-rdma": "QEMU rdma: (QEMU 7.2's own RDMA migration, no bandwidth cap)",
         "linked": "QEMU linked with rmig, rdma://",
         "linked-all": "QEMU linked with rmig, rdma://, verify=all",
         "linked-noverify": "QEMU linked with rmig, rdma://, verify=off",
         "linked-postcopy": "QEMU linked with rmig, rdma://, method postcopy (to the tail's end)"}
rows, failed = {}, {}
for line in open(sys.argv[1]):
    if not line.startswith("result "):
        continue
    r = dict(w.split("=", 1) for w in line.split()[1:])
    if "failed" in r:
        failed.setdefault(r["method"], []).append(r)
    else:
        rows.setdefault(r["method"], []).append(r)
def cell(values, fmt="%.0f"):
    if not values:
        return "-"
    m = statistics.median(values)
    return (fmt + " (" + fmt + "-" + fmt + ")") % (m, min(values), max(values))
ram = None
print("| method | runs | total time (ms) | downtime (ms) | bytes on the wire (MiB) | throughput (Mb/s) | failed runs |")
print("|---|---:|---:|---:|---:|---:|---:|")
med = {}
for m in sys.argv[2].split():
    rs = rows.get(m, [])
    if rs:
        ram = int(rs[0]["ram"])
    total = [float(r["total-ms"]) for r in rs]
    down = [float(r["downtime-ms"]) for r in rs]
    mib = [int(r["bytes"]) / 2**20 for r in rs]
    mbps = [int(r["bytes"]) * 8 / 1e6 / (float(r["total-ms"]) / 1000) for r in rs]
    med[m] = (total, down, mib, mbps)
    nfail = len(failed.get(m, []))
    print("| %s | %d | %s | %s | %s | %s | %d of %d |" % (
        names.get(m, m), len(rs), cell(total), cell(down), cell(mib, "%.1f"), cell(mbps, "%.0f"),
        nfail, nfail + len(rs)))
if ram:
    print("\nguest RAM %d MiB; medians (min-max) of the runs that completed and passed every check" % (ram >> 20))
for r in rows.get("linked-postcopy", []):
    print("linked-postcopy run %s: %s faults on the destination, %.0f ms of vCPU stall in all"
          % (r["run"], r.get("rmig-faults", "-"), int(r.get("rmig-stall-us", "0") or 0) / 1000))
for m, fs in failed.items():
    for r in fs:
        print("failed: %s run %s: %s" % (m, r["run"], r["failed"].replace("_", " ")))
if "qemu-rdma" in med and med["qemu-rdma"][0]:
    base = [statistics.median(v) for v in med["qemu-rdma"]]
    for m in ("linked", "linked-all", "linked-noverify", "linked-postcopy"):
        if m in med and med[m][0]:
            mine = [statistics.median(v) for v in med[m]]
            print("%s vs QEMU rdma:: total time x%.2f, downtime x%.2f, bytes x%.2f, throughput x%.2f"
                  % (m, mine[0] / base[0], mine[1] / max(base[1], 1), mine[2] / base[2], mine[3] / base[3]))
EOF
exit $status
