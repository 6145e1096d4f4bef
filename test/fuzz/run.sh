#!/usr/bin/env bash
# test/fuzz/run.sh - run pgbun's libFuzzer targets (built by `make fuzz`).
#
# Usage: run.sh SECONDS TARGET...  Each test/fuzz/bin/fuzz_TARGET runs for
# SECONDS (-max_total_time) over a scratch corpus tmp_fuzz/TARGET/corpus
# (where it keeps what it finds) plus the committed seeds in
# test/fuzz/corpus/TARGET (read only). Its output goes to tmp_fuzz/TARGET.log;
# on a crash, sanitizer report or invariant failure the end of that log and
# the reproducer's path are printed (re-run it with
# `test/fuzz/bin/fuzz_TARGET FILE`). Last line: `N passed, N failed`.

set -u
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 1
seconds=$1
shift
passed=0
failed=0
for t in "$@"; do
	work=tmp_fuzz/$t
	mkdir -p "$work/corpus"
	# abort_on_error: a UBSan/ASan report fails the run like a crash does
	if ASAN_OPTIONS=abort_on_error=1:detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		"test/fuzz/bin/fuzz_$t" -max_total_time="$seconds" -timeout=10 -print_final_stats=1 \
		-artifact_prefix="$work/" "$work/corpus" "test/fuzz/corpus/$t" >"$work.log" 2>&1; then
		runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work.log")
		printf 'ok   fuzz_%s (%s runs in %ss)\n' "$t" "${runs:-?}" "$seconds"
		passed=$((passed + 1))
	else
		printf 'FAIL fuzz_%s; end of %s:\n' "$t" "$work.log"
		tail -n 40 "$work.log"
		for a in "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-*; do
			[ -e "$a" ] && printf '  reproducer: %s\n' "$a"
		done
		failed=$((failed + 1))
	fi
done
printf '%d passed, %d failed\n' "$passed" "$failed"
[ "$failed" -eq 0 ]
