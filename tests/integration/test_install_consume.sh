#!/bin/sh
# SPDX-License-Identifier: MIT
# tests/integration/test_install_consume.sh BUILD_DIR - install rmig into a temporary prefix,
# then build and run a small consumer twice: with pkg-config and with find_package(rmig).
# FLAGS (optional second argument): compiler flags the consumer needs too (a sanitized build's
# library needs its runtime linked first into the program that loads it).
set -eu
build=$1
flags=${2:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null

cat >"$tmp/consumer.c" <<'C'
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <rmig.h>

int main(void)
{
	rmig_session_t *s;
	int ret;

	if (rmig_session_create(RMIG_ROLE_SOURCE, &s))
		return 1;
	ret = rmig_session_run(s); /* no region added: refused */
	printf("rmig %s: run without regions: %s (%s)\n", rmig_version(), rmig_strerror(ret),
	       rmig_last_error(s));
	rmig_session_destroy(s);
	return strcmp(rmig_version(), "1.4.0") != 0 || ret != -EINVAL;
}
C

pcdir=$(dirname "$(find "$tmp/prefix" -name rmig.pc | head -n 1)")
libdir=$(dirname "$(find "$tmp/prefix" -name 'librmig.so.1' | head -n 1)")
PKG_CONFIG_PATH=$pcdir
export PKG_CONFIG_PATH
# shellcheck disable=SC2046
cc $flags -o "$tmp/consumer_pc" "$tmp/consumer.c" $(pkg-config --cflags --libs rmig)
LD_LIBRARY_PATH=$libdir "$tmp/consumer_pc"

mkdir "$tmp/cmake_consumer"
cp "$tmp/consumer.c" "$tmp/cmake_consumer/"
cat >"$tmp/cmake_consumer/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.16)
project(rmig_consumer C)
find_package(rmig 1.0 REQUIRED)
add_executable(consumer consumer.c)
target_link_libraries(consumer PRIVATE rmig::rmig)
CM
cmake -S "$tmp/cmake_consumer" -B "$tmp/cmake_consumer/build" -DCMAKE_PREFIX_PATH="$tmp/prefix" \
	-DCMAKE_C_FLAGS="$flags" >/dev/null
cmake --build "$tmp/cmake_consumer/build" >/dev/null
"$tmp/cmake_consumer/build/consumer"
echo "install then consume: pkg-config and find_package(rmig) consumers ran"
