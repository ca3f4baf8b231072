#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Builds Debian's QEMU with rmig's patch series (bindings/qemu/patches/<series>/) and this
# checkout's librmig linked in: qemu-system-x86_64 only. Run as root (installs build packages,
# adds a deb-src line, writes the cache). Prints the binary's path as its last line.
#
#   scripts/build-qemu.sh [--series 7.2|10.0] [--cache DIR] [--check]
#
# --series 7.2 (default): bookworm's own QEMU source (the system's deb-src lines).
# --series 10.0: the forward port to trixie's QEMU 10.0, fetched with an isolated apt
# configuration (/etc/rmig/trixie-src.list, lists in /var/lib/rmig/apt-trixie) that leaves the
# system's sources alone; QEMU 10.0 needs meson >= 1.5, so trixie's meson .deb (arch all) is
# unpacked into CACHE/tools/meson-<version>/ and put first on PYTHONPATH and PATH for the build
# only (the system's meson, which the 7.2 build uses, stays).
#
# The result is cached outside the checkout, in CACHE/<key>/ (default /var/cache/rmig/qemu),
# the key made from the QEMU source version, the patch files' hash and the configure flags; a
# second run with the same key prints the cached path at once. --check prints the cached path
# if there is one and exits 1 otherwise (builds nothing). One build tree per QEMU version and
# flags (CACHE/work/) is kept, so a patch change rebuilds only what it touches.
# librmig: this checkout's is built and installed into CACHE/work/<version>/rmig/ (pkg-config
# rmig), where the binary finds it by its rpath; LD_LIBRARY_PATH may point it at another
# librmig.so.1 of the same ABI (tests/qemu/test_linked.sh points it at the build's).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
series=7.2
cache=${RMIG_QEMU_CACHE:-/var/cache/rmig/qemu}
check=0
while [ $# -gt 0 ]; do
	case "$1" in
	--series) series=$2; shift 2 ;;
	--cache) cache=$2; shift 2 ;;
	--check) check=1; shift ;;
	*) echo "build-qemu: unknown option $1" >&2; exit 2 ;;
	esac
done
patchdir=$root/bindings/qemu/patches/$series
flags=(--target-list=x86_64-softmmu --without-default-features --enable-tcg --enable-kvm
	--enable-fdt=system --disable-docs)
case "$series" in
7.2) apt_opts=() ;;
10.0)
	# Debian's +ds tarball has no vendored wheels and no firmware blobs: configure must not try to
	# download the former nor install the latter (QEMU runs with -L /usr/share/qemu ...).
	flags+=(--disable-download --disable-install-blobs)
	trixie_lists=/var/lib/rmig/apt-trixie
	apt_opts=(-o Dir::Etc::SourceList=/etc/rmig/trixie-src.list -o Dir::Etc::SourceParts=/nonexistent
		-o Dir::State::Lists=$trixie_lists/lists)
	apt_bin_opts=(-o Dir::Etc::SourceList=/etc/rmig/trixie-bin.list -o Dir::Etc::SourceParts=/nonexistent
		-o Dir::State::Lists=$trixie_lists-bin/lists)
	;;
*) echo "build-qemu: unknown series $series (7.2 or 10.0)" >&2; exit 2 ;;
esac
say() { echo "build-qemu: [$(date +%H:%M:%S)] $*" >&2; }
jobs=${RMIG_QEMU_JOBS:-2}

build_packages=(dpkg-dev meson ninja-build python3 libglib2.0-dev libpixman-1-dev flex bison
	libfdt-dev zlib1g-dev pkg-config cmake)

# The QEMU source version apt would fetch (needs deb-src).
ensure_deb_src() {
	if [ "$series" = 10.0 ]; then
		ensure_trixie_lists
		return
	fi
	if ! apt-cache showsrc qemu 2>/dev/null | grep -c '^Version:' >/dev/null; then
		say "adding deb-src lines for bookworm"
		cat >/etc/apt/sources.list.d/rmig-deb-src.sources <<-'EOF'
			Types: deb-src
			URIs: http://deb.debian.org/debian
			Suites: bookworm bookworm-updates
			Components: main
			Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

			Types: deb-src
			URIs: http://deb.debian.org/debian-security
			Suites: bookworm-security
			Components: main
			Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
		EOF
		apt-get update -qq
	fi
}

# trixie's deb-src and deb lists, in files of their own: the system's apt configuration (and so
# apt-cache showsrc qemu, the 7.2 key) does not change. bookworm's debian-archive-keyring
# verifies trixie's Release files.
ensure_trixie_lists() {
	mkdir -p /etc/rmig "$trixie_lists/lists/partial" "$trixie_lists-bin/lists/partial"
	local k=/usr/share/keyrings/debian-archive-keyring.gpg
	[ -f /etc/rmig/trixie-src.list ] || cat >/etc/rmig/trixie-src.list <<-EOF
		deb-src [signed-by=$k] http://deb.debian.org/debian trixie main
		deb-src [signed-by=$k] http://deb.debian.org/debian-security trixie-security main
	EOF
	[ -f /etc/rmig/trixie-bin.list ] || cat >/etc/rmig/trixie-bin.list <<-EOF
		deb [signed-by=$k] http://deb.debian.org/debian trixie main
	EOF
	if ! apt-cache "${apt_opts[@]}" showsrc qemu 2>/dev/null | grep -c "^Version:" >/dev/null; then
		say "fetching trixie's source lists (isolated apt configuration)"
		apt-get "${apt_opts[@]}" update -qq
	fi
	# The lists themselves: apt-cache show would also find the meson dpkg installed from
	# bookworm and so never fetch them.
	if ! compgen -G "$trixie_lists-bin/lists/*_Packages*" >/dev/null; then
		say "fetching trixie's package lists (isolated apt configuration)"
		apt-get "${apt_bin_opts[@]}" update -qq
	fi
}

# trixie's meson, unpacked into the cache (10.0 needs >= 1.5, bookworm has 1.0.1). Sets
# meson_dir; the caller exports its python path and bin for configure and ninja's regeneration.
ensure_meson_tool() {
	local ver
	ver=$(apt-cache "${apt_bin_opts[@]}" show meson 2>/dev/null | awk '/^Version:/ {print $2}' | sort -V | tail -1)
	if [ -z "$ver" ] || dpkg --compare-versions "$ver" lt 1.5; then
		echo "build-qemu: trixie's lists offer no meson >= 1.5 (found '${ver:-none}')" >&2
		exit 1
	fi
	meson_dir=$cache/tools/meson-${ver//[:~]/_}
	if [ ! -f "$meson_dir/.rmig-extracted" ]; then
		say "unpacking trixie's meson $ver into $meson_dir"
		rm -rf "$meson_dir" "$cache/tools/dl"
		mkdir -p "$cache/tools/dl"
		(cd "$cache/tools/dl" && apt-get "${apt_bin_opts[@]}" download -qq "meson=$ver" 2>/dev/null)
		dpkg -x "$cache/tools/dl"/meson_*_all.deb "$meson_dir"
		rm -rf "$cache/tools/dl"
		touch "$meson_dir/.rmig-extracted"
	fi
}

patches=()
if [ -d "$patchdir" ]; then
	while IFS= read -r p; do patches+=("$p"); done < <(find "$patchdir" -maxdepth 1 -name '*.patch' | sort)
fi
[ ${#patches[@]} -gt 0 ] || { echo "build-qemu: no patches in $patchdir" >&2; exit 1; }

# The key: the source version apt offers, the patches' content, the flags. Without apt's deb-src
# (a --check on a machine that never built), fall back to the cached version record.
qver=""
if [ "$check" = 1 ] && [ -f "$cache/qemu-version-$series" ]; then
	qver=$(cat "$cache/qemu-version-$series")
else
	[ "$check" = 1 ] || ensure_deb_src
	qver=$(apt-cache ${apt_opts[@]+"${apt_opts[@]}"} showsrc qemu 2>/dev/null | awk '/^Version:/ {print $2}' | sort -V | tail -1)
fi
[ -n "$qver" ] || { echo "build-qemu: no QEMU source version known" >&2; exit 1; }
phash=$(cat "${patches[@]}" | sha256sum | cut -c1-16)
fhash=$(printf '%s\n' "${flags[@]}" | sha256sum | cut -c1-8)
key="${qver//[:~]/_}-$phash-$fhash"
out=$cache/$key
if [ -x "$out/qemu-system-x86_64" ]; then
	say "cached: QEMU $qver, patches $phash, flags $fhash"
	echo "$out/qemu-system-x86_64"
	exit 0
fi
if [ "$check" = 1 ]; then
	say "no cached build for key $key"
	exit 1
fi
[ "$(id -u)" = 0 ] || { echo "build-qemu: run as root" >&2; exit 1; }

# One build at a time per cache: a second run (another checkout, a test started while a build
# runs) waits for the first, then takes its result.
mkdir -p "$cache"
exec 9>"$cache/.lock"
if ! flock -n 9; then
	say "another build into $cache is running: waiting for it"
	flock 9
	if [ -x "$out/qemu-system-x86_64" ]; then
		say "cached: QEMU $qver, patches $phash, flags $fhash"
		echo "$out/qemu-system-x86_64"
		exit 0
	fi
fi

missing=()
for pkg in "${build_packages[@]}"; do
	dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
	say "installing ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

mkdir -p "$cache"
echo "$qver" >"$cache/qemu-version-$series"
work=$cache/work/${qver//[:~]/_}-$fhash
pristine=$work/pristine
if [ ! -f "$pristine/.rmig-extracted" ]; then
	say "fetching QEMU $qver source (apt-get source)"
	rm -rf "$work/dl" "$pristine"
	mkdir -p "$work/dl"
	(cd "$work/dl" && apt-get ${apt_opts[@]+"${apt_opts[@]}"} source -qq "qemu=$qver" >/dev/null)
	dir=$(find "$work/dl" -mindepth 1 -maxdepth 1 -type d -name 'qemu-*' | head -1)
	mv "$dir" "$pristine"
	rm -rf "$work/dl"
	touch "$pristine/.rmig-extracted"
fi

# librmig from this checkout, installed where pkg-config finds it: one prefix per build tree, so
# the path QEMU's build recorded stays valid when the patches change (the ABI is stable).
prefix=$work/rmig
say "building librmig into $prefix"
rm -rf "$out"
# One librmig build tree per checkout: CMake refuses a tree made from another source directory
# (a clone elsewhere, another worktree), and two checkouts must not build into the same one.
rmig_build=$work/rmig-build-$(printf '%s' "$root" | sha256sum | cut -c1-12)
cmake -S "$root" -B "$rmig_build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_LIBDIR=lib >/dev/null
cmake --build "$rmig_build" --target rmig -j"$jobs" >/dev/null
# The library's files only, not the rmig command's install rules (not built here).
rm -rf "$prefix"
mkdir -p "$prefix/lib/pkgconfig" "$prefix/include"
cp -a "$(dirname "$(find "$rmig_build" -name 'librmig.so.1' | head -1)")"/librmig.so* "$prefix/lib/"
cp "$root/bindings/include/rmig.h" "$prefix/include/"
sed 's|^libdir=.*|libdir=${prefix}/lib|' "$rmig_build/bindings/rmig.pc" >"$prefix/lib/pkgconfig/rmig.pc"
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
pkg-config --exists rmig || { echo "build-qemu: pkg-config finds no rmig in $PKG_CONFIG_PATH" >&2; exit 1; }
# A build tree configured by an earlier version of this script records another prefix (under
# an old key's directory): QEMU compiles and links against what that path holds, so it gets
# this librmig and rmig.h too, or a new librmig function in the patches fails to link.
if [ -f "$work/build/build.ninja" ]; then
	recorded=$(grep -o '/[^ ]*/lib/pkgconfig/\.\./\.\./lib/librmig\.so' "$work/build/build.ninja" | head -n 1 || true)
	recorded=${recorded%/lib/pkgconfig/../../lib/librmig.so}
	if [ -n "$recorded" ] && [ "$recorded" != "$prefix" ] && [ -d "$recorded/lib" ]; then
		say "the build tree links librmig from $recorded: installing it there as well"
		cp -a "$prefix"/lib/librmig.so* "$recorded/lib/"
		mkdir -p "$recorded/include"
		cp "$prefix/include/rmig.h" "$recorded/include/"
	fi
fi

# The source tree: pristine hard-linked, the series applied (patch replaces the files it
# changes, so the pristine copy stays intact). Files whose content differs from the previous
# tree get a new mtime so the build sees them, whichever way they changed.
say "applying ${#patches[@]} patch(es) from $patchdir"
src=$work/src
rm -rf "$src.new"
cp -al "$pristine" "$src.new"
touched=()
for p in "${patches[@]}"; do
	patch -d "$src.new" -p1 -s -f --no-backup-if-mismatch <"$p" ||
		{ echo "build-qemu: $(basename "$p") does not apply to QEMU $qver" >&2; exit 1; }
	while IFS= read -r f; do touched+=("$f"); done < <(sed -n 's|^+++ b/\([^\t]*\).*|\1|p' "$p")
done
if [ -f "$src/.rmig-touched" ]; then
	while IFS= read -r f; do touched+=("$f"); done <"$src/.rmig-touched"
fi
for f in "${touched[@]}"; do
	if ! cmp -s "$src/$f" "$src.new/$f"; then
		[ -e "$src.new/$f" ] && { cp "$src.new/$f" "$src.new/$f.tmp" && mv "$src.new/$f.tmp" "$src.new/$f"; }
	fi
done
printf '%s\n' "${touched[@]}" | sort -u >"$src.new/.rmig-touched"
rm -rf "$src.old"
[ -d "$src" ] && mv "$src" "$src.old"
mv "$src.new" "$src"
rm -rf "$src.old"

if [ "$series" = 10.0 ]; then
	ensure_meson_tool
	export PYTHONPATH=$meson_dir/usr/lib/python3/dist-packages${PYTHONPATH:+:$PYTHONPATH}
	export PATH=$meson_dir/usr/bin:$PATH
fi
bld=$work/build
if [ ! -f "$bld/build.ninja" ]; then
	say "configuring: ${flags[*]}"
	rm -rf "$bld"
	mkdir -p "$bld"
	(cd "$bld" && "$src/configure" "${flags[@]}" >configure.log 2>&1) ||
		{ tail -30 "$bld/configure.log" >&2; exit 1; }
fi
say "building qemu-system-x86_64 (-j$jobs; about 40 min cold on a loaded 2-core machine, seconds after a patch change)"
start=$(date +%s)
# One progress line a minute: ninja's [done/total].
progress() {
	local line last=0 now
	while IFS= read -r line; do
		echo "$line" >>"$bld/build.log"
		case "$line" in \[*/*\]*)
			now=$(date +%s)
			if [ $((now - last)) -ge 60 ]; then
				last=$now
				say "${line%% *} ($((now - start)) s)"
			fi
			;;
		esac
	done
}
: >"$bld/build.log"
(cd "$bld" && nice -n "${RMIG_QEMU_NICE:-10}" ninja -j"$jobs" qemu-system-x86_64 2>&1) | progress || { tail -40 "$bld/build.log" >&2; exit 1; }
say "built in $(($(date +%s) - start)) s"
mkdir -p "$out"
cp "$bld/qemu-system-x86_64" "$out/qemu-system-x86_64.tmp"
mv "$out/qemu-system-x86_64.tmp" "$out/qemu-system-x86_64"
echo "$out/qemu-system-x86_64"
