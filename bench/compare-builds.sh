#!/usr/bin/env bash
# bench/compare-builds.sh - two builds of pgbun side by side: the pooler's CPU
# per transaction and tps of an older build (a baseline) and a newer one,
# under the same pgbench workloads, alternating builds inside every round, so
# that "this change costs no CPU per transaction" is a measured statement.
#
# Usage: bench/compare-builds.sh OLD_BINDIR NEW_BINDIR
#   each a PostgreSQL bin directory (pg_ctl, initdb, pgbench) whose lib has a
#   pgbun build installed, e.g. a copy of PostgreSQL per build made with
#   `make install DESTDIR=...` (see bench/README.md, "Two builds").
# Environment:
#   ROUNDS=5 DURATION=6 POOL=20 SCALE=10
#   WORKLOADS="simple:50 extended:50 prepared:50 simple:1000"   protocol:clients;
#                         appnames:N is two pgbench runs of N/2 clients with
#                         different application_names (links that need a SET);
#                         churn:N is N clients running, per transaction, one
#                         of CHURN_STATEMENTS (400) distinct statements with
#                         -M prepared, more than pgbun.max_prepared_statements
#                         (200) keeps per server: about half the Binds evict one;
#                         tpcb:N is pgbench's default TPC-B-like script (simple
#                         protocol), seven statements per transaction
#   KEEP=1                keep the temp dir
#   OLD_CONF / NEW_CONF   extra postgresql.conf lines for that side, e.g.
#                         NEW_CONF="pgbun.server_sched_batch = off"; with the
#                         same BINDIR twice this compares two settings
# Transaction pooling, SCRAM logins, one pgbun worker per build unless a _CONF
# sets pgbun.workers; only the pgbun workers' own utime+stime (/proc, summed
# over the workers) counts as the pooler's CPU. Works as
# root (the servers run as BENCH_OS_USER, default postgres) or as a normal user.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[ $# -eq 2 ] || { echo "usage: $0 OLD_BINDIR NEW_BINDIR" >&2; exit 2; }
OLD_BIN=$1
NEW_BIN=$2
for b in "$OLD_BIN" "$NEW_BIN"; do
	for t in initdb pg_ctl pgbench psql; do
		[ -x "$b/$t" ] || { echo "compare-builds: $b/$t not found" >&2; exit 2; }
	done
done
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-6}
POOL=${POOL:-20}
SCALE=${SCALE:-10}
WORKLOADS=${WORKLOADS:-simple:50 extended:50 prepared:50 simple:1000}
CHURN_STATEMENTS=${CHURN_STATEMENTS:-400}
KEEP=${KEEP:-0}
for v in ROUNDS DURATION POOL SCALE CHURN_STATEMENTS; do
	case ${!v} in '' | *[!0-9]* | 0) echo "compare-builds: $v must be a positive integer" >&2; exit 2 ;; esac
done

OS_USER=$(id -un)
RUN=()
if [ "$(id -u)" = 0 ]; then
	OS_USER=${BENCH_OS_USER:-postgres}
	RUN=(runuser -u "$OS_USER" --)
fi
TMP=$(mktemp -d /tmp/pgbun-compare.XXXXXX)
chmod 755 "$TMP"
[ "$(id -u)" = 0 ] && chown "$OS_USER" "$TMP"
REPORT=$TMP/report.txt
ulimit -n 8192 2>/dev/null || true

cleanup() {
	for side in old new; do
		[ -d "$TMP/$side/data" ] && "${RUN[@]}" "$(bin_of $side)/pg_ctl" -D "$TMP/$side/data" stop -m immediate >/dev/null 2>&1 || true
	done
	if [ "$KEEP" = 1 ]; then echo "kept $TMP" >&2; else rm -rf "$TMP"; fi
}
trap cleanup EXIT

bin_of() { if [ "$1" = old ]; then echo "$OLD_BIN"; else echo "$NEW_BIN"; fi; }
say() { printf '%s\n' "$*" | tee -a "$REPORT"; }

declare -A SERVER_PORT PGBUN_PORT
next=5620
for side in old new; do
	SERVER_PORT[$side]=$(pick_port $next)
	PGBUN_PORT[$side]=$(pick_port $((SERVER_PORT[$side] + 1000)))
	next=$((SERVER_PORT[$side] + 1))
	dir=$TMP/$side
	"${RUN[@]}" mkdir -p "$dir"
	echo bench-pw >"$TMP/pwfile"
	chmod 644 "$TMP/pwfile"
	"${RUN[@]}" "$(bin_of $side)/initdb" -D "$dir/data" -A scram-sha-256 --pwfile="$TMP/pwfile" -U bench >/dev/null
	cat >>"$dir/data/postgresql.conf" <<EOF
port = ${SERVER_PORT[$side]}
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
max_connections = 150
shared_buffers = 256MB
shared_preload_libraries = 'pgbun'
pgbun.port = ${PGBUN_PORT[$side]}
pgbun.listen_addresses = '127.0.0.1'
pgbun.unix_socket_directories = ''
pgbun.pool_mode = 'transaction'
pgbun.default_pool_size = $POOL
pgbun.max_client_conn = 2000
pgbun.workers = 1
EOF
	if [ "$side" = old ]; then printf '%s\n' "${OLD_CONF:-}"; else printf '%s\n' "${NEW_CONF:-}"; fi >>"$dir/data/postgresql.conf"
	"${RUN[@]}" "$(bin_of $side)/pg_ctl" -D "$dir/data" -l "$dir/log" -w start >/dev/null
	PGPASSWORD=bench-pw "${RUN[@]}" "$(bin_of $side)/pgbench" -h 127.0.0.1 -p "${SERVER_PORT[$side]}" -U bench -i -q -s "$SCALE" postgres >/dev/null 2>&1
done

# The pgbun workers' pids (several with pgbun.workers > 1): the processes
# listening on pgbun's port, else the workers whose cwd is that side's data dir.
worker_pids() {
	local pids
	pids=$(ss -ltnpH "sport = :${PGBUN_PORT[$1]}" 2>/dev/null | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u)
	[ -n "$pids" ] || pids=$(pgrep -f "pgbun worker" | while read -r p; do
		[ "$(readlink /proc/"$p"/cwd)" = "$TMP/$1/data" ] && echo "$p"; done)
	echo $pids
}
ticks() { local p n=0; for p in "$@"; do n=$((n + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo "$n"; }

# The churn script: one of CHURN_STATEMENTS distinct statements per transaction.
{
	echo '\set r random(1, '"$CHURN_STATEMENTS"')'
	for k in $(seq 1 "$CHURN_STATEMENTS"); do
		if [ "$k" = 1 ]; then echo '\if :r = 1'; else echo "\\elif :r = $k"; fi
		echo "SELECT $k AS churn;"
	done
	echo '\endif'
} >"$TMP/churn.sql"
chmod 644 "$TMP/churn.sql"

# pgbench_side SIDE PROTOCOL CLIENTS [APPNAME]: pgbench -S through that side's
# pgbun (PROTOCOL churn: the churn script with -M prepared; tpcb: the default script)
pgbench_side() {
	local what=(-S -M "$2")
	[ "$2" = churn ] && what=(-f "$TMP/churn.sql" -M prepared)
	[ "$2" = tpcb ] && what=(-M simple)
	PGPASSWORD=bench-pw PGAPPNAME=${4:-pgbench} "${RUN[@]}" bash -c "ulimit -n 8192 2>/dev/null; exec \"\$0\" \"\$@\"" \
		"$(bin_of "$1")/pgbench" -h 127.0.0.1 -p "${PGBUN_PORT[$1]}" -U bench "${what[@]}" \
		-c "$3" -j 2 -T "$DURATION" postgres 2>&1
}

# run SIDE PROTOCOL CLIENTS -> "tps cpu_us_per_txn". PROTOCOL appnames: two pgbench
# runs of CLIENTS/2 each (simple protocol) with different application_names at once,
# so that most links need a SET.
run() {
	local side=$1 proto=$2 clients=$3 pids t0 t1 out txns tps
	pids=$(worker_pids "$side")
	[ -n "$pids" ] || { echo "compare-builds: no pgbun worker for $side" >&2; exit 1; }
	t0=$(ticks $pids)
	if [ "$proto" = appnames ]; then
		pgbench_side "$side" simple $((clients / 2)) app_a >"$TMP/a.out" &
		local pa=$!
		pgbench_side "$side" simple $((clients / 2)) app_b >"$TMP/b.out" || { cat "$TMP/b.out" >&2; exit 1; }
		wait "$pa" || { cat "$TMP/a.out" >&2; exit 1; }
		out=$(cat "$TMP/a.out" "$TMP/b.out")
	else
		out=$(pgbench_side "$side" "$proto" "$clients") || { echo "$out" >&2; exit 1; }
	fi
	t1=$(ticks $pids)
	txns=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' <<<"$out" | awk '{ n += $1 } END { print n }')
	tps=$(sed -n 's/^tps = \([0-9.]*\) (without.*/\1/p' <<<"$out" | awk '{ n += $1 } END { print n }')
	[ -n "$txns" ] && [ "$txns" -gt 0 ] || { echo "$out" >&2; exit 1; }
	awk -v t="$((t1 - t0))" -v hz="$(getconf CLK_TCK)" -v n="$txns" -v tps="$tps" \
		'BEGIN { printf "%.0f %.2f\n", tps, t * 1e6 / hz / n }'
}


say "pgbun, two builds side by side ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg))"
say "old: $OLD_BIN   new: $NEW_BIN"
[ -n "${OLD_CONF:-}${NEW_CONF:-}" ] && say "old conf: ${OLD_CONF:-(none)}   new conf: ${NEW_CONF:-(none)}"
say "transaction pooling, pool $POOL, SCRAM, pgbench -S (churn and tpcb: their own scripts), $ROUNDS rounds of ${DURATION}s, builds alternating"
say "(the worker's CPU includes each client's one SCRAM login per run; noticeable at 1,000 clients)"
declare -A RES
for r in $(seq 1 "$ROUNDS"); do
	for w in $WORKLOADS; do
		proto=${w%%:*}
		clients=${w##*:}
		order="old new"
		[ $((r % 2)) = 0 ] && order="new old"
		for side in $order; do
			res=$(run "$side" "$proto" "$clients")
			RES[$side,$w]+="$res"$'\n'
			printf 'round %d %-14s %s: tps %s, pooler CPU %s us/txn\n' "$r" "$w" "$side" ${res} >&2
		done
	done
done
say ""
# round_ratios W FIELD: new/old of FIELD (1 tps, 2 CPU) in each round, one per line
round_ratios() {
	paste <(printf '%s' "${RES[old,$1]}" | awk 'NF') <(printf '%s' "${RES[new,$1]}" | awk 'NF') |
		awk -v f="$2" '{ printf "%.4f\n", $(f + 2) / $f }'
}
say "$(printf '%-16s %10s %10s %8s %8s %12s %12s %8s %8s' workload 'old tps' 'new tps' ratio rounds 'old us/txn' 'new us/txn' ratio rounds)"
for w in $WORKLOADS; do
	ot=$(printf '%s' "${RES[old,$w]}" | awk 'NF {print $1}' | median)
	nt=$(printf '%s' "${RES[new,$w]}" | awk 'NF {print $1}' | median)
	oc=$(printf '%s' "${RES[old,$w]}" | awk 'NF {print $2}' | median)
	nc=$(printf '%s' "${RES[new,$w]}" | awk 'NF {print $2}' | median)
	rt=$(round_ratios "$w" 1 | median)
	rc=$(round_ratios "$w" 2 | median)
	say "$(awk -v w="$w" -v ot="$ot" -v nt="$nt" -v oc="$oc" -v nc="$nc" -v rt="$rt" -v rc="$rc" 'BEGIN {
		printf "%-16s %10.0f %10.0f %7.2fx %7.2fx %12.2f %12.2f %7.2fx %7.2fx", w, ot, nt, nt / ot, rt, oc, nc, nc / oc, rc }')"
	say "$(printf '%-16s new faster in %d of %d rounds, cheaper in %d' '' \
		"$(round_ratios "$w" 1 | awk '$1 > 1' | wc -l)" "$ROUNDS" "$(round_ratios "$w" 2 | awk '$1 < 1' | wc -l)")"
done
say "(ratio = new / old of the medians; rounds = median of each round's new / old, the"
say "two builds ran back to back there; CPU is the pgbun workers' utime+stime per transaction)"
mkdir -p "$(dirname "$0")/results"
cp "$REPORT" "$(dirname "$0")/results/compare-latest.txt"
