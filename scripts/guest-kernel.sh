#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# scripts/guest-kernel.sh CACHE_DIR - fetch and unpack the Debian kernel that linux-image-amd64
# depends on, for the guests rmig boots under QEMU (the soft-RoCE testbed, the QEMU end-to-end
# test). Leaves CACHE_DIR/KVER/{vmlinuz,lib/modules/KVER} with modules.dep built, and prints
# the directory and KVER on stdout ("DIR KVER"). Idempotent: a finished unpack is reused.
set -euo pipefail

cache=${1:?usage: guest-kernel.sh CACHE_DIR}
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)

# The package the meta-package points at today (linux-image-6.1.0-NN-amd64): ask apt, which
# knows the archive's current index; fall back to what is already unpacked when offline.
pkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
	awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
if [ -z "$pkg" ]; then
	done_dir=$(find "$cache" -maxdepth 2 -name .done -printf '%h\n' 2>/dev/null | sort | tail -n 1)
	if [ -n "$done_dir" ]; then
		echo "$done_dir $(basename "$done_dir")"
		exit 0
	fi
	echo "guest-kernel: apt-cache cannot resolve linux-image-amd64 (run apt-get update?)" >&2
	exit 1
fi
kver=${pkg#linux-image-}
dir=$cache/$kver
if [ -f "$dir/.done" ]; then
	echo "$dir $kver"
	exit 0
fi

rm -rf "$dir" "$cache/download"
mkdir -p "$cache/download"
echo "guest-kernel: downloading $pkg" >&2
if ! (cd "$cache/download" && apt-get download "$pkg" >/dev/null 2>&1); then
	apt-get update -qq >/dev/null 2>&1 || true
	(cd "$cache/download" && apt-get download "$pkg" >/dev/null) || {
		echo "guest-kernel: apt-get download $pkg failed" >&2
		exit 1
	}
fi
mkdir -p "$dir/root"
dpkg -x "$cache"/download/"$pkg"_*.deb "$dir/root"
mv "$dir/root/boot/vmlinuz-$kver" "$dir/vmlinuz"
mkdir -p "$dir/lib/modules"
mv "$dir/root/lib/modules/$kver" "$dir/lib/modules/$kver"
rm -rf "$dir/root" "$cache/download"
# The .deb ships no modules.dep: build it so modprobe inside the guest resolves dependencies.
depmod -b "$dir" "$kver"
touch "$dir/.done"
echo "guest-kernel: $kver ready in $dir" >&2
echo "$dir $kver"
