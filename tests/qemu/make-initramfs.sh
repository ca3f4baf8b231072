#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# tests/qemu/make-initramfs.sh OUT.cpio.gz - the guest's initramfs: busybox-static and
# tests/qemu/guest-init as /init. Rebuilt only when busybox or the init script changed.
set -euo pipefail

out=${1:?usage: make-initramfs.sh OUT.cpio.gz}
here=$(cd "$(dirname "$0")" && pwd)
busybox=$(command -v busybox || true)
if [ -z "$busybox" ] || ldd "$busybox" >/dev/null 2>&1; then
	echo "make-initramfs: a static busybox is needed (apt-get install busybox-static)" >&2
	exit 1
fi
stamp="$(sha256sum "$busybox" "$here/guest-init" | sha256sum | cut -c1-16)"
if [ -f "$out" ] && [ "$(cat "$out.stamp" 2>/dev/null)" = "$stamp" ]; then
	exit 0
fi
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,dev,proc,sys,tmp}
cp "$busybox" "$root/bin/busybox"
cp "$here/guest-init" "$root/init"
chmod 755 "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$out.tmp"
mv "$out.tmp" "$out"
echo "$stamp" >"$out.stamp"
