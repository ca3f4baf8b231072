#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# tests/qemu/make-tiny-guest.sh CACHE_DIR - assembles tests/qemu/tiny-guest.S into a multiboot
# ELF32 (CACHE_DIR/tiny-guest.elf) with the host's gcc and ld (32-bit code needs no 32-bit
# libraries: nothing is linked in), rebuilt only when the source changed; prints its path.
set -euo pipefail

cache=${1:?usage: make-tiny-guest.sh CACHE_DIR}
here=$(cd "$(dirname "$0")" && pwd)
out=$cache/tiny-guest.elf
mkdir -p "$cache"
stamp=$(sha256sum "$here/tiny-guest.S" | cut -c1-16)
if [ ! -f "$out" ] || [ "$(cat "$out.stamp" 2>/dev/null)" != "$stamp" ]; then
	gcc -m32 -c "$here/tiny-guest.S" -o "$out.o"
	# -N: one segment at 1 MiB, none for the ELF headers below it (the BIOS lives there)
	ld -m elf_i386 -N --no-warn-rwx-segments -Ttext 0x100000 -e _start -o "$out.tmp" "$out.o"
	rm -f "$out.o"
	mv "$out.tmp" "$out"
	echo "$stamp" >"$out.stamp"
fi
echo "$out"
