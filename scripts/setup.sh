#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs everything rmig needs to build, test and benchmark on Debian 12 (run as root).
# Idempotent: packages already present are left alone.
set -euo pipefail

packages=(
	# build
	build-essential cmake pkg-config
	# libraries rmig links
	libibverbs-dev librdmacm-dev libnuma-dev libhugetlbfs-dev libxxhash-dev libjansson-dev
	libcmocka-dev
	# libssl (tcp TLS 1.3) and libcrypto (the engine's HMAC); the openssl CLI makes test certificates
	libssl-dev openssl
	# verbs userspace for the soft-RoCE testbed (rxe provider, rdma tool, perftest)
	rdma-core ibverbs-providers ibverbs-utils rdmacm-utils perftest iproute2
	# rmig-xen-save (docs/xen.md, depth 2): Xen 4.17's toolstack libraries and headers
	libxen-dev
	# testbed and QEMU end-to-end tests
	qemu-system-x86 qemu-utils busybox-static cpio kmod
	# benchmarks and plots
	iperf3 gnuplot-nox python3
	# scripts/build-qemu.sh: Debian's QEMU source built with librmig linked in
	dpkg-dev meson ninja-build libglib2.0-dev libpixman-1-dev flex bison libfdt-dev zlib1g-dev
	# fuzzing and sanitizers
	clang libclang-rt-14-dev
)

root=$(cd "$(dirname "$0")/.." && pwd)
if [ -f "$root/tests/testbed/packages.txt" ]; then
	while read -r pkg; do
		case "$pkg" in "" | \#*) continue ;; esac
		packages+=("$pkg")
	done <"$root/tests/testbed/packages.txt"
fi

missing=()
for pkg in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' ||
		missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ]; then
	echo "setup: all ${#packages[@]} packages present"
	exit 0
fi
if [ "$(id -u)" != 0 ]; then
	echo "setup: missing packages: ${missing[*]}; run as root or: sudo apt-get install ${missing[*]}" >&2
	exit 1
fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup: done"
