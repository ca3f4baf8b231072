#!/bin/sh
# SPDX-License-Identifier: MIT
# bench/tls-cost.sh - what TLS costs on tcp, in one run: rmig-bw over loopback with --tls none,
# psk and x509 in turn (alternating, so load on the machine hits all three alike), REPEAT times
# per size, then the median Gb/s of each and its ratio to plaintext. x509 credentials are made
# for the run (scripts/tls-creds.sh) and removed after.
#   bench/tls-cost.sh [--build DIR] [--repeat N] [--duration S] [--sizes 64K,1M] [--batch N]
set -eu
build=build repeat=5 duration=2 sizes=64K,1M batch=16
while [ $# -gt 0 ]; do
	case $1 in
	--build) build=$2; shift 2 ;;
	--repeat) repeat=$2; shift 2 ;;
	--duration) duration=$2; shift 2 ;;
	--sizes) sizes=$2; shift 2 ;;
	--batch) batch=$2; shift 2 ;;
	*) echo "usage: tls-cost.sh [--build DIR] [--repeat N] [--duration S] [--sizes LIST] [--batch N]" >&2; exit 2 ;;
	esac
done
here=$(cd "$(dirname "$0")/.." && pwd)
bw=$build/bench/rmig-bw
[ -x "$bw" ] || { echo "tls-cost.sh: no $bw (build first)" >&2; exit 2; }
work=$(mktemp -d /tmp/rmig-tls-cost-XXXXXX)
trap 'rm -rf "$work"' EXIT
sh "$here/scripts/tls-creds.sh" "$work/creds" 2>/dev/null
for i in $(seq 1 "$repeat"); do
	for mode in none psk x509; do
		echo "tls-cost: run $i of $repeat, --tls $mode" >&2
		"$bw" --loopback --uri tcp://127.0.0.1:0 --size "$sizes" --batch "$batch" \
			--duration "$duration" --lat-iters 0 --tls $mode --tls-creds "$work/creds" \
			--json >"$work/$mode.$i.json"
	done
done
python3 - "$work" "$repeat" <<'PY'
import json, statistics, sys
work, repeat = sys.argv[1], int(sys.argv[2])
rates = {}
for mode in ("none", "psk", "x509"):
    for i in range(1, repeat + 1):
        for r in json.load(open(f"{work}/{mode}.{i}.json"))["results"]:
            rates.setdefault((r["size"], mode), []).append(r["gbps"])
sizes = sorted({s for s, _ in rates})
print(f"{'size':>8} {'plain Gb/s':>11} {'psk Gb/s':>9} {'x509 Gb/s':>10} {'psk/plain':>10} {'x509/plain':>11}   (median of {repeat})")
for s in sizes:
    m = {mode: statistics.median(rates[(s, mode)]) for mode in ("none", "psk", "x509")}
    label = f"{s >> 20} MiB" if s >= 1 << 20 else f"{s >> 10} KiB"
    print(f"{label:>8} {m['none']:11.2f} {m['psk']:9.2f} {m['x509']:10.2f} {m['psk'] / m['none']:10.2f} {m['x509'] / m['none']:11.2f}")
    for mode in ("none", "psk", "x509"):
        print(f"{'':8} {mode:>5} runs: " + " ".join(f"{v:.2f}" for v in rates[(s, mode)]))
PY
