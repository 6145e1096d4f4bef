#!/usr/bin/env bash
# test/run_all.sh - `make test`: set up a Debian 12 machine and run every suite.
#
# Steps: install missing Debian packages (test/lib.sh lists them), the npm
# packages of the client-library and ORM tests (npm ci in test/node and
# test/orm), build, install
# the extension, then the suites: unit (pure C, `make unit`), fuzz (libFuzzer
# targets, `make fuzz`, 30 s each unless FUZZ_SECONDS says), regress (pg_regress
# on a temp instance, `make installcheck` without TAP), tap (prove over t/*.pl,
# `make installcheck` without REGRESS) and tap-w2 (a list of them again with two
# workers). PostgreSQL refuses to run as root, so as
# root the server suites run as an unprivileged user in a copy of the tree that it
# owns. Ends with a summary and a last line `N passed, N failed` counting suites;
# exits non-zero if any failed. On a failure the relevant logs are printed.
#
# Environment: PG_CONFIG (default: PostgreSQL 15's), PGBUN_SUITE_TIMEOUT (seconds
# per suite, default 900), PGBUN_KEEP_TMP=1 keeps the staged copy after success.
# To add a suite, add a run_suite line near the end.

set -uo pipefail # no -e: a failing step must not skip the summary

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 1
# shellcheck source=test/lib.sh
. "$ROOT/test/lib.sh"

# A locale that always exists, so initdb and perl never trip over the caller's.
export LC_ALL=C.UTF-8 LANG=C.UTF-8
SUITE_TIMEOUT=${PGBUN_SUITE_TIMEOUT:-900}
START=$SECONDS

SUMMARY=()   # lines of the summary table
PASSED=0
FAILED=0
SKIPPED=0
STAGE=""     # directory the server suites run in
OUT_DIR=$(mktemp -d "${TMPDIR:-/tmp}/pgbun-out.XXXXXX") || exit 1 # each suite's output
BUILD_OK=1   # 0 once setup, build or install failed: server suites cannot run

# Record one summary line: record NAME STATUS SECONDS [NOTE].
record() {
	SUMMARY+=("$(printf '  %-9s %-5s %5ss%s' "$1" "$2" "$3" "${4:+  $4}")")
}

# Print the last lines of a file under a header, if it exists and is not empty.
show_tail() {
	local file=$1 lines=${2:-80}
	[ -s "$file" ] || return 0
	printf '\n----- %s (last %s lines) -----\n' "$file" "$lines"
	tail -n "$lines" "$file"
}

# Print what explains a failed suite: diffs and server logs for regress; for
# tap the logs of the test files prove reported as failed (all of them if it
# did not get as far as its summary). $OUT_DIR/NAME.out holds the suite's output.
show_logs() {
	local suite=$1 dir=$2 f t tests
	case $suite in
	regress)
		show_tail "$dir/regression.diffs" 400
		for f in "$dir"/log/*.log "$dir"/tmp_check_regress/log/*.log; do
			show_tail "$f" 100
		done
		;;
	tap | tap-w2)
		mapfile -t tests < <(sed -n 's|^t/\([^ ]*\)\.pl (Wstat.*|\1|p' "$OUT_DIR/$suite.out")
		if [ "${#tests[@]}" -eq 0 ]; then
			for f in "$dir"/tmp_check/log/*; do
				show_tail "$f" 80
			done
		fi
		for t in "${tests[@]}"; do
			show_tail "$dir/tmp_check/log/regress_log_$t" 150
			for f in "$dir/tmp_check/log/${t}"_*.log; do
				show_tail "$f" 80
			done
		done
		;;
	esac
}

# Run and record a setup step (not a suite): run_step NAME COMMAND... Its status.
run_step() {
	local name=$1 t0=$SECONDS rc
	shift
	pgbun_say "$name: $*"
	"$@"
	rc=$?
	if [ "$rc" -eq 0 ]; then
		record "$name" ok $((SECONDS - t0))
	else
		record "$name" FAIL $((SECONDS - t0)) "exit $rc"
	fi
	return "$rc"
}

# A setup step the build needs: step NAME COMMAND... Failure clears BUILD_OK.
step() {
	run_step "$@" || BUILD_OK=0
}

# Run one suite with a time limit: run_suite NAME LOGDIR COMMAND...
run_suite() {
	local name=$1 dir=$2 t0=$SECONDS rc
	shift 2
	pgbun_say "suite $name: $*"
	timeout --kill-after=30 "$SUITE_TIMEOUT" "$@" 2>&1 | tee "$OUT_DIR/$name.out"
	rc=${PIPESTATUS[0]}
	if [ "$rc" -eq 0 ]; then
		record "$name" PASS $((SECONDS - t0))
		PASSED=$((PASSED + 1))
		return 0
	fi
	if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
		record "$name" FAIL $((SECONDS - t0)) "timed out after ${SUITE_TIMEOUT}s"
	else
		record "$name" FAIL $((SECONDS - t0)) "exit $rc"
	fi
	FAILED=$((FAILED + 1))
	pgbun_say "suite $name failed; logs follow"
	show_logs "$name" "$dir"
	return 1
}

# A suite that could not run counts as failed: not_run NAME REASON.
not_run() {
	record "$1" FAIL 0 "not run: $2"
	FAILED=$((FAILED + 1))
}

# A suite with nothing to run: skip NAME REASON.
skip() {
	record "$1" SKIP 0 "$2"
	SKIPPED=$((SKIPPED + 1))
}

# Stop servers a killed test left behind; drop the staged copy unless needed.
# Runs before the summary (whose last line must stay last) or on an early exit.
cleanup() {
	local d
	rm -rf "$OUT_DIR"
	[ -n "$STAGE" ] || return 0
	for d in "$STAGE/tmp_check" "$STAGE/tmp_check_regress"; do
		pgbun_stop_servers_under "$d"
	done
	if [ "$STAGE" != "$ROOT" ]; then
		if [ "$FAILED" -eq 0 ] && [ -z "${PGBUN_KEEP_TMP:-}" ]; then
			rm -rf "$STAGE"
		else
			pgbun_say "test tree kept in $STAGE"
		fi
	fi
}
trap cleanup EXIT

# --- setup ---------------------------------------------------------------
step packages pgbun_install_packages "${PGBUN_BUILD_PACKAGES[@]}" "${PGBUN_TEST_PACKAGES[@]}"
# The client libraries of t/140 (npm ci in test/node), before the tree is staged.
# Without them t/140 fails and says why; the other suites still run.
run_step npm pgbun_install_node_clients "$ROOT/test/node" ||
	pgbun_warn "npm ci in test/node failed: t/140 (client libraries) will fail"
# The ORMs of t/360 (npm ci in test/orm). No install scripts: the only ones
# are Prisma's, which would download engines the tests do not use.
run_step npm-orm pgbun_install_node_clients "$ROOT/test/orm" --ignore-scripts ||
	pgbun_warn "npm ci in test/orm failed: t/360 (ORM matrix) will fail"
PG_CONFIG=$(pgbun_pg_config)
export PG_CONFIG
MAKEVARS=("PG_CONFIG=$PG_CONFIG")
if [ "$BUILD_OK" -eq 1 ]; then
	step build make "${MAKEVARS[@]}"
fi
if [ "$BUILD_OK" -eq 1 ]; then
	step install pgbun_as_root make install "${MAKEVARS[@]}"
fi
if [ "$BUILD_OK" -eq 1 ]; then
	if ! pgbun_setup_user; then
		record user FAIL 0 "could not create an unprivileged user"
		BUILD_OK=0
	elif pgbun_is_root; then
		# root's TMPDIR may be out of $PGBUN_USER's reach; the tests make temp dirs too.
		export TMPDIR=/tmp
		if STAGE=$(pgbun_stage_tree "$ROOT"); then
			pgbun_say "running server suites as $PGBUN_USER in $STAGE"
		else
			record stage FAIL 0 "could not copy the tree for $PGBUN_USER"
			STAGE=""
			BUILD_OK=0
		fi
	else
		STAGE=$ROOT
	fi
fi

# --- suites ----------------------------------------------------------------
# unit: pure C, needs no server and no install; `make unit` prints N passed, N failed.
run_suite unit "$ROOT" make unit "${MAKEVARS[@]}"

# fuzz: the libFuzzer targets (clang), each for FUZZ_SECONDS (default 30); no server.
run_suite fuzz "$ROOT" make fuzz "${MAKEVARS[@]}"

# regress: pg_regress on its own temp instance (REGRESS_OPTS), TAP left out.
if [ "$BUILD_OK" -eq 1 ]; then
	run_suite regress "$STAGE" "${PGBUN_AS_USER[@]}" \
		make -C "$STAGE" installcheck TAP_TESTS= "${MAKEVARS[@]}"
else
	not_run regress "setup, build or install failed"
fi

# tap: prove over t/*.pl (PostgreSQL::Test::Cluster), pg_regress left out.
if [ "$BUILD_OK" -ne 1 ]; then
	not_run tap "setup, build or install failed"
elif ! compgen -G "$ROOT/t/*.pl" >/dev/null; then
	skip tap "no t/*.pl yet"
else
	run_suite tap "$STAGE" "${PGBUN_AS_USER[@]}" \
		make -C "$STAGE" installcheck REGRESS= "${MAKEVARS[@]}"
fi

# tap-w2: the protocol, release-safety and real-client files again with two
# workers (PGBUN_TEST_WORKERS=2; pgbun.workers = -1 gives that on 2 cores):
# each worker has its own servers and pools, handed between them, which is
# where single-worker runs cannot look. Only files that assume nothing about
# which worker a client lands on (most others check that two clients share
# one backend, or a per-worker count); those choosing their worker count
# already run with several in tap.
W2_TESTS=(t/110_statement_mode.pl t/135_fuzz_tx.pl t/180_release_safety.pl t/186_client_hangup.pl
	t/210_asyncpg.pl t/211_psycopg.pl t/212_jdbc.pl t/231_server_errors.pl t/280_login_burst.pl
	t/301_views.pl t/360_orm_matrix.pl t/187_clock_step.pl t/041_cancel_late.pl)
if [ "$BUILD_OK" -ne 1 ]; then
	not_run tap-w2 "setup, build or install failed"
elif ! compgen -G "$ROOT/t/*.pl" >/dev/null; then
	skip tap-w2 "no t/*.pl yet"
else
	# installcheck starts with an empty tmp_check: keep tap's logs beside it
	rm -rf "$STAGE/tmp_check_tap" && { [ ! -d "$STAGE/tmp_check" ] || mv "$STAGE/tmp_check" "$STAGE/tmp_check_tap"; }
	run_suite tap-w2 "$STAGE" "${PGBUN_AS_USER[@]}" env PGBUN_TEST_WORKERS=2 \
		make -C "$STAGE" installcheck REGRESS= PROVE_TESTS="${W2_TESTS[*]}" "${MAKEVARS[@]}"
fi

# --- summary ---------------------------------------------------------------
cleanup
trap - EXIT
printf '\n==> summary (%ss in all)\n' $((SECONDS - START))
printf '%s\n' "${SUMMARY[@]}"
if [ "$SKIPPED" -gt 0 ]; then
	printf '%s suite(s) skipped\n' "$SKIPPED"
fi
printf '%d passed, %d failed\n' "$PASSED" "$FAILED"
[ "$FAILED" -eq 0 ] && [ "$BUILD_OK" -eq 1 ]
