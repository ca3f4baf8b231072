#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# tests/qemu/test_linked_rdma.sh BUILD_DIR CACHE LIBDIR [testbed-migrate.sh options...]
#
# QEMU linked with librmig migrating a running guest over rdma:// on a real verbs stack: the
# soft-RoCE testbed (tests/testbed/run) boots Debian's kernel with rdma_rxe under TCG, and inside
# it two patched QEMUs (scripts/build-qemu.sh's, cached) migrate the multiboot guest
# tests/qemu/tiny-guest.S (nested TCG is too slow for a Linux guest) from one to the other,
# RAM by rmig over rdma:// on rxe0, device state by QEMU's stream.
# testbed-migrate.sh runs in the testbed guest and checks the run (see there): completed, RAM
# files identical with both guests paused, the guest counting on at the destination without a
# gap and finding every page of its working set as it left it, rmig's stats (QEMU's dirty log,
# nothing stale, QEMU's own stream under 1/8 of the RAM).
# The patched QEMU, Debian's QEMU (for compare-rdma.sh) and their firmware go into the testbed
# image with tests/testbed/run --add; the guest kernel is built into CACHE.
# Skips (77) when the patched QEMU cannot be built here.
set -euo pipefail

build_dir=$(cd "$1" && pwd)
mkdir -p "$2"
cache=$(cd "$2" && pwd)
libdir=$3
shift 3
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
series=${RMIG_QEMU_SERIES:-7.2}
log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
skip() {
	log "SKIP: $*"
	exit 77
}

if ! qemu_bin=$(bash "$root/scripts/build-qemu.sh" --series "$series" --check 2>/dev/null | tail -n 1); then
	[ "$(id -u)" = 0 ] || skip "no cached patched QEMU $series, and building one needs root"
	log "no cached patched QEMU $series; building it (scripts/build-qemu.sh --series $series)"
	qemu_bin=$(bash "$root/scripts/build-qemu.sh" --series "$series" | tail -n 1) ||
		skip "the patched QEMU cannot be built here (scripts/build-qemu.sh failed)"
fi
[ -x "$qemu_bin" ] || skip "no patched QEMU binary ($qemu_bin)"

guest=$(bash "$here/make-tiny-guest.sh" "$cache") || exit 1

# What the two QEMUs inside the testbed guest need: the binaries, Debian's TCG module (its
# QEMU loads TCG as a module) and the firmware a multiboot boot on q35 reads (SeaBIOS, the
# multiboot option ROM).
stock_qemu=$(readlink -f "$(command -v qemu-system-x86_64)")
adds=()
for path in "$qemu_bin" "$stock_qemu" /usr/lib/x86_64-linux-gnu/qemu/accel-tcg-x86_64.so \
	/usr/share/seabios/bios-256k.bin /usr/share/qemu/multiboot_dma.bin \
	/usr/share/qemu/linuxboot_dma.bin /usr/share/qemu/kvmvapic.bin; do
	[ -f "$path" ] || { log "FAIL: $path is missing (bash scripts/setup.sh)"; exit 1; }
	adds+=(--add "$path")
done
command=$(printf '%q ' bash "$here/testbed-migrate.sh" --linked-qemu "$qemu_bin" \
	--stock-qemu "$stock_qemu" --guest "$guest" --libdir "$libdir" "$@")
log "testbed: $command"
exec bash "$root/tests/testbed/run" --build-dir "$build_dir" -R '^verbs$' --timeout "${RMIG_TESTBED_MIGRATE_TIMEOUT:-1500}" \
	"${adds[@]}" --command "$command"
