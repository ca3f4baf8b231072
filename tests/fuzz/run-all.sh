#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# tests/fuzz/run-all.sh BUILD_DIR [SECONDS] - runs every libFuzzer target of a clang build made
# with -DRMIG_BUILD_FUZZ=ON (`cmake --build BUILD_DIR --target fuzz`) for SECONDS each (default
# 45), starting from a copy of its seed corpus (tests/fuzz/corpus/NAME) with its dictionary
# (tests/fuzz/dict/NAME.dict) when there is one. Any crash, leak, timeout or out-of-memory
# fails the run, after the reproducer is printed with the command that replays it. Each run's
# corpus, log and artifacts stay in BUILD_DIR/fuzz-runs/NAME.
set -euo pipefail

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
	echo "usage: $0 BUILD_DIR [SECONDS]" >&2
	exit 2
fi
build=$(cd "$1" && pwd)
seconds=${2:-45}
here=$(cd "$(dirname "$0")" && pwd)
list="$build/tests/fuzz/fuzz-targets.txt"
if [ ! -f "$list" ]; then
	echo "run-all: $list missing: configure $1 with CC=clang -DRMIG_BUILD_FUZZ=ON" >&2
	exit 2
fi
mapfile -t targets < <(grep -v '^$' "$list")

# Every harness in tests/fuzz must be a built target: a new one cannot be left out of CI.
for harness in "$here"/fuzz_*.c; do
	grep -qE '^int LLVMFuzzerTestOneInput\(.*\)$' "$harness" || continue
	name=$(basename "$harness" .c)
	name=${name#fuzz_}
	if ! printf '%s\n' "${targets[@]}" | grep -qx "$name"; then
		echo "run-all: $harness is not registered with rmig_add_fuzz_target" >&2
		exit 1
	fi
done

failed=()
summary=()
for name in "${targets[@]}"; do
	bin="$build/tests/fuzz/fuzz_$name"
	work="$build/fuzz-runs/$name"
	if [ ! -x "$bin" ]; then
		echo "run-all: $bin not built (cmake --build $1 --target fuzz)" >&2
		exit 1
	fi
	rm -rf "$work"
	mkdir -p "$work/corpus" "$work/artifacts"
	args=(-max_total_time="$seconds" -timeout=60 -rss_limit_mb=2048 -print_final_stats=1
		-artifact_prefix="$work/artifacts/")
	if [ -f "$here/dict/$name.dict" ]; then
		args+=(-dict="$here/dict/$name.dict")
	fi
	echo "run-all: fuzz_$name for ${seconds} s"
	status=0
	# New inputs go to the first directory, so the checked-in seeds stay untouched.
	"$bin" "${args[@]}" "$work/corpus" "$here/corpus/$name" >"$work/log" 2>&1 || status=$?
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" | tail -1)
	found=$(find "$work/corpus" -type f | wc -l)
	mapfile -t artifacts < <(find "$work/artifacts" -type f | sort)
	if [ "$status" -ne 0 ] || [ ${#artifacts[@]} -gt 0 ]; then
		failed+=("$name")
		summary+=("$(printf '%-12s %10s runs  %5s new inputs  FAILED (exit %s)' "$name" \
			"${runs:-?}" "$found" "$status")")
		echo "run-all: fuzz_$name FAILED (exit $status); the end of its log:"
		grep -v '^#[0-9]' "$work/log" | tail -60
		for artifact in "${artifacts[@]}"; do
			echo "run-all: reproducer $artifact ($(stat -c %s "$artifact") bytes):"
			od -A x -t x1z -v "$artifact" | head -40
			echo "run-all: replay with: $bin $artifact"
			echo "run-all: keep it: cp $artifact $here/corpus/$name/<what-it-is>"
		done
	else
		summary+=("$(printf '%-12s %10s runs  %5s new inputs  ok' "$name" "${runs:-?}" \
			"$found")")
	fi
done

echo
echo "run-all: ${#targets[@]} targets, ${seconds} s each"
printf '  %s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
	echo "run-all: failed: ${failed[*]}" >&2
	exit 1
fi
