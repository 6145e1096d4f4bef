#!/usr/bin/env bash
# bench/login.sh - the cost of a login: pgbench -C (a new connection, and a
# SCRAM-SHA-256 login, for every transaction) through pgbun and through
# PgBouncer, side by side in one run, transaction pooling.
#
# Reports per target the median tps and the pooler's own CPU (utime + stime of
# its process(es) from /proc) per connection over alternating rounds, and
# optionally the system calls per connection (STRACE=1, strace -c -f on a
# separate short run) and a perf profile of each pooler (PERF=1, perf record -g
# on a separate run; the report's top entries are printed, the perf.data files
# kept in the temp dir with KEEP=1).
#
# Environment:
#   PG_CONFIG=pg_config  PGBOUNCER=/path/to/pgbouncer (default: the one on PATH)
#   ROUNDS=3 DURATION=8 CLIENTS=20 POOL=20
#   STRACE=1 PERF=0 KEEP=0
#   BEFORE_PG_CONFIG=/path/to/pg_config   also run another pgbun build (a PostgreSQL
#                                  install holding it, e.g. one made by pgbun-test from the
#                                  commit before a change) on a cluster of its own, as
#                                  target pgbun_before, in the same alternating rounds
#   BEFORE_LABEL=text              what that build is, for the report
#   SERVER_PORT=5498 PGBUN_PORT=6498 BOUNCER_PORT=6499 (first ports tried)
# Works as root (the server and PgBouncer run as postgres via runuser) or as an
# ordinary user; loopback only.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-8}
CLIENTS=${CLIENTS:-20}
POOL=${POOL:-20}
STRACE=${STRACE:-1}
PERF=${PERF:-0}
KEEP=${KEEP:-0}
DB=bench
DBUSER=bench
PASSWORD=bench-login-pw
for v in ROUNDS DURATION CLIENTS POOL; do
	case ${!v} in '' | *[!0-9]* | 0) echo "login.sh: $v must be a positive integer" >&2; exit 2 ;; esac
done

PG_CONFIG=${PG_CONFIG:-pg_config}
PGBIN=$("$PG_CONFIG" --bindir)
PKGLIBDIR=$("$PG_CONFIG" --pkglibdir)
PGBOUNCER=${PGBOUNCER:-$(command -v pgbouncer || echo /usr/sbin/pgbouncer)}
for b in "$PGBIN/initdb" "$PGBIN/pg_ctl" "$PGBIN/pgbench" "$PGBIN/psql" "$PGBOUNCER"; do
	command -v "$b" >/dev/null || { echo "login.sh: $b not found" >&2; exit 1; }
done
[ -f "$PKGLIBDIR/pgbun.so" ] || { echo "login.sh: pgbun.so not installed in $PKGLIBDIR" >&2; exit 1; }

if [ "$(id -u)" = 0 ]; then
	OS_USER=${BENCH_OS_USER:-postgres}
	as_pg() { runuser -u "$OS_USER" -- "$@"; }
else
	OS_USER=$(id -un)
	as_pg() { "$@"; }
fi

TMPD=$(mktemp -d "${TMPDIR:-/tmp}/pgbun-login.XXXXXX")
chmod 755 "$TMPD"
[ "$(id -u)" = 0 ] && chown "$OS_USER" "$TMPD"
DATA=$TMPD/data
cleanup() {
	set +e
	[ -s "$TMPD/pgbouncer.pid" ] && kill "$(cat "$TMPD/pgbouncer.pid")" 2>/dev/null
	[ -s "$DATA/postmaster.pid" ] && as_pg "$PGBIN/pg_ctl" -D "$DATA" -m fast -w -t 30 stop >/dev/null 2>&1
	[ -s "$TMPD/before/data/postmaster.pid" ] &&
		as_pg "$("$BEFORE_PG_CONFIG" --bindir)/pg_ctl" -D "$TMPD/before/data" -m fast -w -t 30 stop >/dev/null 2>&1
	if [ "$KEEP" = 1 ]; then echo "login.sh: kept $TMPD" >&2; else rm -rf "$TMPD"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

SERVER_PORT=$(pick_port "${SERVER_PORT:-5498}")
PGBUN_PORT=$(pick_port "${PGBUN_PORT:-6498}" "$SERVER_PORT")
BOUNCER_PORT=$(pick_port "${BOUNCER_PORT:-6499}" "$SERVER_PORT" "$PGBUN_PORT")
port_of() { case $1 in pgbun) echo "$PGBUN_PORT" ;; pgbun_before) echo "$BEFORE_PGBUN_PORT" ;; pgbouncer) echo "$BOUNCER_PORT" ;; esac; }

# ---- servers with pgbun (transaction pooling, SCRAM), PgBouncer with the same settings
# start_cluster DIR PG_CONFIG SERVER_PORT PGBUN_PORT: one server with pgbun preloaded,
# its bench database and role (the same password).
start_cluster() {
	local dir=$1 bin port=$3 pport=$4
	bin=$("$2" --bindir)
	mkdir -p "$dir"
	chown "$OS_USER" "$dir" 2>/dev/null || true
	log "initdb in $dir/data ($("$2" --pkglibdir)/pgbun.so)"
	as_pg "$bin/initdb" -D "$dir/data" -U "$DBUSER" -A trust -E UTF8 --no-sync >"$dir/initdb.log" 2>&1
	cat >"$dir/data/pg_hba.conf" <<EOF
local all all trust
host  all all 127.0.0.1/32 trust
EOF
	cat >>"$dir/data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
max_connections = $((2 * POOL + 30))
fsync = off
synchronous_commit = off
password_encryption = 'scram-sha-256'
shared_preload_libraries = 'pgbun'
pgbun.listen_addresses = '127.0.0.1'
pgbun.port = $pport
pgbun.unix_socket_directories = '$dir'
pgbun.pool_mode = transaction
pgbun.default_pool_size = $POOL
pgbun.max_client_conn = 1000
pgbun.auth_type = scram-sha-256
pgbun.server_reset_query = 'DISCARD ALL'
pgbun.log_connections = off
pgbun.log_disconnections = off
EOF
	chown "$OS_USER" "$dir/data/pg_hba.conf" "$dir/data/postgresql.conf" 2>/dev/null || true
	as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null
	"$bin/psql" -X -q -At -h "$dir" -p "$port" -U "$DBUSER" -d postgres -c "create database $DB"
	"$bin/psql" -X -q -At -h "$dir" -p "$port" -U "$DBUSER" -d postgres -c "alter role $DBUSER password '$PASSWORD'"
	"$bin/pgbench" -i -s 1 -q -h "$dir" -p "$port" -U "$DBUSER" "$DB" >"$dir/init.log" 2>&1
}
start_cluster "$TMPD" "$PG_CONFIG" "$SERVER_PORT" "$PGBUN_PORT"
direct_sql() { "$PGBIN/psql" -X -q -At -h "$TMPD" -p "$SERVER_PORT" -U "$DBUSER" -d "${2:-postgres}" -c "$1"; }
TARGETS=(pgbun pgbouncer)
if [ -n "${BEFORE_PG_CONFIG:-}" ]; then
	# another pgbun build (e.g. the commit before a change), on a cluster of its own
	BEFORE_SERVER_PORT=$(pick_port $((SERVER_PORT + 10)) "$SERVER_PORT" "$PGBUN_PORT" "$BOUNCER_PORT")
	BEFORE_PGBUN_PORT=$(pick_port $((PGBUN_PORT + 10)) "$SERVER_PORT" "$PGBUN_PORT" "$BOUNCER_PORT" "$BEFORE_SERVER_PORT")
	start_cluster "$TMPD/before" "$BEFORE_PG_CONFIG" "$BEFORE_SERVER_PORT" "$BEFORE_PGBUN_PORT"
	TARGETS=(pgbun pgbun_before pgbouncer)
fi
printf '"%s" "%s"\n' "$DBUSER" "$(direct_sql "select rolpassword from pg_authid where rolname = '$DBUSER'")" >"$TMPD/userlist.txt"
cat >"$TMPD/pgbouncer.ini" <<EOF
[databases]
* = host=$TMPD port=$SERVER_PORT

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $BOUNCER_PORT
unix_socket_dir = $TMPD
auth_type = scram-sha-256
auth_file = $TMPD/userlist.txt
pool_mode = transaction
default_pool_size = $POOL
max_client_conn = 1000
server_reset_query = DISCARD ALL
logfile = $TMPD/pgbouncer.log
pidfile = $TMPD/pgbouncer.pid
log_connections = 0
log_disconnections = 0
EOF
chown "$OS_USER" "$TMPD/userlist.txt" "$TMPD/pgbouncer.ini" 2>/dev/null || true
as_pg "$PGBOUNCER" -d "$TMPD/pgbouncer.ini" >"$TMPD/pgbouncer.start" 2>&1
export PGPASSWORD=$PASSWORD
for t in "${TARGETS[@]}"; do
	for _ in $(seq 30); do
		"$PGBIN/psql" -X -q -At -h 127.0.0.1 -p "$(port_of $t)" -U "$DBUSER" -d "$DB" -c 'select 1' >/dev/null 2>&1 && break
		sleep 1
	done
done

pids_of() {
	case $1 in
	pgbun) direct_sql "select string_agg(pid::text, ' ') from pg_stat_activity where backend_type ilike '%pgbun%'" ;;
	pgbun_before) "$("$BEFORE_PG_CONFIG" --bindir)/psql" -X -q -At -h "$TMPD/before" -p "$BEFORE_SERVER_PORT" -U "$DBUSER" -d postgres \
		-c "select string_agg(pid::text, ' ') from pg_stat_activity where backend_type ilike '%pgbun%'" ;;
	pgbouncer) cat "$TMPD/pgbouncer.pid" ;;
	esac
}
ticks_of() { # "utime stime" of the pooler's processes, USER_HZ ticks
	local p u=0 s=0 v
	for p in $(pids_of "$1"); do
		v=$(awk '{ sub(/^.*\) /, ""); print $12, $13 }' "/proc/$p/stat")
		u=$((u + ${v% *}))
		s=$((s + ${v#* }))
	done
	echo "$u $s"
}
CLK_TCK=$(getconf CLK_TCK)
pgbench_c() { # pgbench_c TARGET SECONDS LOGFILE
	PGCONNECT_TIMEOUT=10 timeout -k 5 $(($2 * 2 + 60)) "$PGBIN/pgbench" -n -S -M simple -C -T "$2" \
		-c "$CLIENTS" -j 2 -h 127.0.0.1 -p "$(port_of "$1")" -U "$DBUSER" "$DB" >"$3" 2>&1 || true
}
ntx_of() { sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$1" | head -1; }

# ---- measured rounds, alternating which pooler goes first
declare -A TPS CPU UCPU
NT=${#TARGETS[@]}
for r in $(seq "$ROUNDS"); do
	for i in $(seq 0 $((NT - 1))); do
		t=${TARGETS[$(((i + r - 1) % NT))]}
		f=$TMPD/$t-$r.log
		t0=$(ticks_of "$t")
		pgbench_c "$t" "$DURATION" "$f"
		t1=$(ticks_of "$t")
		n=$(ntx_of "$f")
		tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' "$f" | head -1)
		if [ -z "$n" ] || [ "$n" = 0 ]; then
			log "  $t round $r: failed: $(grep -m1 -iE 'error|fatal' "$f" || tail -n 1 "$f")"
			continue
		fi
		du=$((${t1% *} - ${t0% *}))
		ds=$((${t1#* } - ${t0#* }))
		us=$(awk -v d=$((du + ds)) -v n="$n" -v hz="$CLK_TCK" 'BEGIN { printf "%.1f", d * 1e6 / hz / n }')
		uu=$(awk -v d=$du -v n="$n" -v hz="$CLK_TCK" 'BEGIN { printf "%.1f", d * 1e6 / hz / n }')
		TPS[$t]="${TPS[$t]:-} $tps"
		CPU[$t]="${CPU[$t]:-} $us"
		UCPU[$t]="${UCPU[$t]:-} $uu"
		log "  $t round $r: $n connections, tps $tps, pooler CPU $us us per connection ($uu us user)"
	done
done

# ---- system calls per connection (separate short runs under strace)
declare -A SYSC
if [ "$STRACE" = 1 ] && command -v strace >/dev/null; then
	for t in "${TARGETS[@]}"; do
		sp=()
		for p in $(pids_of "$t"); do sp+=(-p "$p"); done
		strace -c -f -o "$TMPD/strace-$t.txt" "${sp[@]}" 2>/dev/null &
		st=$!
		sleep 1
		pgbench_c "$t" 3 "$TMPD/strace-run-$t.log"
		kill -INT "$st" 2>/dev/null
		wait "$st" 2>/dev/null || true
		n=$(ntx_of "$TMPD/strace-run-$t.log")
		calls=$(awk '$NF == "total" { print $(NF-2) }' "$TMPD/strace-$t.txt")
		[ -n "$n" ] && [ "$n" -gt 0 ] && [ -n "$calls" ] &&
			SYSC[$t]=$(awk -v c="$calls" -v n="$n" 'BEGIN { printf "%.1f", c / n }')
		log "  $t: ${SYSC[$t]:-n/a} system calls per connection"
	done
fi

# ---- perf profiles (separate runs)
if [ "$PERF" = 1 ] && command -v perf >/dev/null; then
	for t in "${TARGETS[@]}"; do
		pl=$(pids_of "$t" | tr ' ' ',')
		perf record -q -F 10000 -g -o "$TMPD/perf-$t.data" -p "$pl" -- sleep "$DURATION" >/dev/null 2>&1 &
		pp=$!
		pgbench_c "$t" "$DURATION" "$TMPD/perf-run-$t.log"
		wait "$pp" 2>/dev/null || true
		perf report -i "$TMPD/perf-$t.data" --no-children --sort dso,symbol --stdio -g none --percent-limit 0.7 2>/dev/null |
			grep -E '^ +[0-9]' | sed 's/ *$//' | head -40 >"$TMPD/perf-$t.txt" || true
	done
fi

# ---- report
declare -A MT MC MU
for t in "${TARGETS[@]}"; do
	MT[$t]=$(median <<<"${TPS[$t]:-}")
	MC[$t]=$(median <<<"${CPU[$t]:-}")
	MU[$t]=$(median <<<"${UCPU[$t]:-}")
done
pgbun_id() { # the commit a pgbun.so was built from is not recorded: its checksum and time
	local so
	so="$("$1" --pkglibdir)/pgbun.so"
	echo "sha256 $(sha256sum "$so" | cut -c1-12), installed $(date -u -r "$so" '+%H:%M:%S UTC')"
}
row() { # row LABEL ARRAY-NAME
	local -n v=$2
	local line="| $1" t
	for t in "${TARGETS[@]}"; do line="$line | ${v[$t]:-n/a}"; done
	for t in "${TARGETS[@]}"; do
		[ "$t" = pgbouncer ] || line="$line | $(ratio "${v[$t]:-}" "${v[pgbouncer]:-}")"
	done
	echo "$line |"
}
echo "# pgbench -C -S -M simple, $CLIENTS clients, transaction pooling (pool $POOL), SCRAM-SHA-256, median of $ROUNDS x ${DURATION}s"
echo ""
echo "software: $("$PGBIN/postgres" --version), $("$PGBOUNCER" --version | head -1)"
echo "pgbun: worktree $(git -C "$(dirname "$0")" rev-parse --short HEAD 2>/dev/null || echo '?'), pgbun.so $(pgbun_id "$PG_CONFIG")"
[ -z "${BEFORE_PG_CONFIG:-}" ] || echo "pgbun_before: pgbun.so $(pgbun_id "$BEFORE_PG_CONFIG") (${BEFORE_LABEL:-BEFORE_PG_CONFIG=$BEFORE_PG_CONFIG})"
echo ""
head="| |"
sep="|---|"
for t in "${TARGETS[@]}"; do head="$head $t |"; sep="$sep---:|"; done
for t in "${TARGETS[@]}"; do [ "$t" = pgbouncer ] || { head="$head $t/pgbouncer |"; sep="$sep---:|"; }; done
echo "$head"
echo "$sep"
row "tps (connections/s)" MT
row "pooler CPU us per connection" MC
row "of which user space" MU
[ "$STRACE" = 1 ] && row "system calls per connection" SYSC
echo ""
for t in "${TARGETS[@]}"; do echo "per round, $t: CPU us${CPU[$t]:-}; tps${TPS[$t]:-}"; done
if [ "$PERF" = 1 ]; then
	for t in "${TARGETS[@]}"; do
		echo ""
		echo "perf, $t (self time, symbols above 0.7 %):"
		cat "$TMPD/perf-$t.txt" 2>/dev/null || echo "(no profile)"
	done
fi
