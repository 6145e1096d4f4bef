#!/usr/bin/env bash
# bench/run.sh - pgbench through pgbun vs PgBouncer vs the server directly.
#
# Starts a throwaway cluster (pgbun preloaded), a PgBouncer with the same pool
# settings, measures the memory one idle, logged-in client costs pgbun's worker
# and PgBouncer, then runs the same pgbench workloads against all three,
# alternating targets inside every round, first in session mode and then (after
# a reload of both poolers) in transaction mode, and prints the median tps /
# mean latency per workload with the pgbun/PgBouncer and pgbun/direct ratios.
# Everything lives in a temp dir that is removed on exit (KEEP=1 keeps it).
#
# Environment:
#   ROUNDS=3 DURATION=10 POOL=20   rounds per workload, seconds per pgbench run, pool size
#   MODES="session transaction tls"  what to run, in this order (both poolers switch by reload);
#                                  tls: session pooling over TLS with SCRAM-SHA-256 (same
#                                  self-signed certificate for pgbun, PgBouncer and the server)
#   TX_DURATION=8                  seconds per pgbench run in transaction mode (default: min(DURATION, 8))
#   QUICK=1                        smoke test: 1 round of 3 s, 500 idle clients
#   SCALE=10                       pgbench -i scale
#   IDLE_CLIENTS=5000              idle clients for the memory measurement (0: skip)
#   BENCH_HOST=127.0.0.1           client connections: an address, or 'unix' for Unix sockets
#   SERVER_PORT=5488 PGBUN_PORT=6488 BOUNCER_PORT=6489   first ports tried (next free one is used)
#   MAX_CONNECTIONS=150            the server's max_connections
#   KEEP=1                         keep the temp dir (logs, data dir) for inspection
#   CASE=two-node                  run bench/two-node.sh instead (primary + standby, failover)
# Works as root (server, PgBouncer run as BENCH_OS_USER, default postgres, via
# runuser) or as an ordinary user. Only loopback addresses are used.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$BENCH_DIR/.." && pwd)
. "$BENCH_DIR/lib.sh"

# CASE=two-node: a primary and a streaming standby, pgbun vs PgBouncer with one host list,
# and a failover (bench/two-node.sh, its own settings).
case ${CASE:-one-node} in
one-node) ;;
two-node) exec "$BENCH_DIR/two-node.sh" "$@" ;;
*) echo "bench: CASE must be one-node or two-node (got '$CASE')" >&2; exit 2 ;;
esac

if [ "${QUICK:-0}" = 1 ]; then
	ROUNDS=${ROUNDS:-1}
	DURATION=${DURATION:-3}
	IDLE_CLIENTS=${IDLE_CLIENTS:-500}
fi
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
if [ -z "${TX_DURATION:-}" ]; then
	TX_DURATION=8
	case $DURATION in '' | *[!0-9]*) ;; *) [ "$DURATION" -lt 8 ] && TX_DURATION=$DURATION ;; esac
fi
MODES=${MODES:-session transaction tls}
POOL=${POOL:-20}
SCALE=${SCALE:-10}
IDLE_CLIENTS=${IDLE_CLIENTS:-5000}
BENCH_HOST=${BENCH_HOST:-127.0.0.1}
MAX_CONNECTIONS=${MAX_CONNECTIONS:-150}
PGBUN_WORKERS=${PGBUN_WORKERS:-}  # pgbun.workers; empty: pgbun's default (1); -1: one per CPU
KEEP=${KEEP:-0}
DB=bench
DBUSER=bench
MAX_CLIENT_CONN=6000

for v in ROUNDS DURATION TX_DURATION POOL SCALE IDLE_CLIENTS MAX_CONNECTIONS; do
	case ${!v} in '' | *[!0-9]*)
		echo "bench: $v must be a non-negative integer (got '${!v}')" >&2
		exit 2
		;;
	esac
done
if [ "$ROUNDS" -lt 1 ] || [ "$DURATION" -lt 1 ] || [ "$TX_DURATION" -lt 1 ] || [ "$POOL" -lt 1 ]; then
	echo "bench: ROUNDS, DURATION, TX_DURATION and POOL must be >= 1" >&2
	exit 2
fi
read -r -a MODE_LIST <<<"$MODES"
[ "${#MODE_LIST[@]}" -gt 0 ] || { echo "bench: MODES is empty" >&2; exit 2; }
seen_modes=" "
for m in "${MODE_LIST[@]}"; do
	case $m in session | transaction | tls) ;;
	*) echo "bench: MODES: '$m' is not session, transaction or tls" >&2; exit 2 ;;
	esac
	[[ $seen_modes != *" $m "* ]] || { echo "bench: MODES: '$m' given twice" >&2; exit 2; }
	seen_modes="$seen_modes$m "
done
FIRST_MODE=${MODE_LIST[0]}
if [ "$FIRST_MODE" = tls ]; then
	echo "bench: MODES: tls cannot come first (the poolers switch to it by a reload; e.g. MODES='session tls')" >&2
	exit 2
fi
# The poolers keep up to POOL idle server connections each; leave room for 50 direct clients.
if [ "$MAX_CONNECTIONS" -lt $((2 * POOL + 60)) ]; then
	MAX_CONNECTIONS=$((2 * POOL + 60))
fi

# ---------------------------------------------------------------- tools
PG_CONFIG=${PG_CONFIG:-pg_config}
command -v "$PG_CONFIG" >/dev/null || {
	echo "bench: pg_config not found (set PG_CONFIG)" >&2
	exit 1
}
PGBIN=$("$PG_CONFIG" --bindir)
PKGLIBDIR=$("$PG_CONFIG" --pkglibdir)
PGBENCH=$PGBIN/pgbench
PSQL=$PGBIN/psql
# PGBOUNCER=/path/to/pgbouncer picks the PgBouncer to compare with (e.g. 1.25.2 from
# ../shared/peers/build-pgbouncer.sh); default: Debian's package.
PGBOUNCER=${PGBOUNCER:-$(command -v pgbouncer || echo /usr/sbin/pgbouncer)}
for b in "$PGBIN/initdb" "$PGBIN/pg_ctl" "$PGBENCH" "$PSQL" "$PGBOUNCER" perl timeout; do
	command -v "$b" >/dev/null || {
		echo "bench: $b not found (Debian: apt-get install postgresql-15 postgresql-contrib pgbouncer)" >&2
		exit 1
	}
done

# Enough descriptors for 5,000 idle clients, pgbench's 1,000 clients and the poolers' sockets
# (root may raise the hard limit).
raise_nofile() {
	ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
}
raise_nofile

if [ "$(id -u)" = 0 ]; then
	OS_USER=${BENCH_OS_USER:-postgres}
	id "$OS_USER" >/dev/null 2>&1 || {
		echo "bench: running as root needs an unprivileged user '$OS_USER' (set BENCH_OS_USER)" >&2
		exit 1
	}
	# runuser's PAM session resets the soft fd limit: raise it again inside.
	as_pg() {
		# shellcheck disable=SC2016 # expanded by the inner sh
		runuser -u "$OS_USER" -- sh -c 'ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$@"' sh "$@"
	}
else
	OS_USER=$(id -un)
	as_pg() { "$@"; }
fi

# ---------------------------------------------------------------- temp dir, cleanup
TMPD=$(mktemp -d "${TMPDIR:-/tmp}/pgbun-bench.XXXXXX")
chmod 755 "$TMPD"
[ "$(id -u)" = 0 ] && chown "$OS_USER" "$TMPD"
DATA=$TMPD/data
LOGS=$TMPD/logs
mkdir -p "$LOGS"
[ "$(id -u)" = 0 ] && chown "$OS_USER" "$LOGS"
IDLE_PID=

cleanup() {
	set +e
	if [ -n "$IDLE_PID" ]; then
		kill "$IDLE_PID" 2>/dev/null
		wait "$IDLE_PID" 2>/dev/null
	fi
	if [ -s "$TMPD/pgbouncer.pid" ]; then
		local bp
		bp=$(cat "$TMPD/pgbouncer.pid")
		kill "$bp" 2>/dev/null
		for _ in $(seq 50); do kill -0 "$bp" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$bp" 2>/dev/null
	fi
	if [ -s "$DATA/postmaster.pid" ]; then
		as_pg "$PGBIN/pg_ctl" -D "$DATA" -m fast -w -t 30 stop >/dev/null 2>&1 ||
			as_pg "$PGBIN/pg_ctl" -D "$DATA" -m immediate -w -t 10 stop >/dev/null 2>&1
		if [ -s "$DATA/postmaster.pid" ]; then
			local pp
			pp=$(head -1 "$DATA/postmaster.pid")
			kill -0 "$pp" 2>/dev/null && kill -9 "$pp" 2>/dev/null
		fi
	fi
	if [ "$KEEP" = 1 ]; then
		echo "bench: kept $TMPD"
	else
		rm -rf "$TMPD"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# ---------------------------------------------------------------- ports
SERVER_PORT=$(pick_port "${SERVER_PORT:-5488}")
PGBUN_PORT=$(pick_port "${PGBUN_PORT:-6488}" "$SERVER_PORT")
BOUNCER_PORT=$(pick_port "${BOUNCER_PORT:-6489}" "$SERVER_PORT" "$PGBUN_PORT")

if [ "$BENCH_HOST" = unix ]; then CLIENT_HOST=$TMPD; else CLIENT_HOST=$BENCH_HOST; fi
case $BENCH_HOST in
unix | 127.* | localhost | ::1) ;;
*) echo "bench: BENCH_HOST must be a loopback address or 'unix'" >&2; exit 2 ;;
esac

port_of() {
	case $1 in
	direct) echo "$SERVER_PORT" ;;
	pgbun) echo "$PGBUN_PORT" ;;
	pgbouncer) echo "$BOUNCER_PORT" ;;
	esac
}

# psql_at TARGET SQL [DB]: one value, or non-zero exit.
psql_at() {
	PGCONNECT_TIMEOUT=5 timeout -k 2 15 "$PSQL" -X -q -At \
		-h "$CLIENT_HOST" -p "$(port_of "$1")" -U "$DBUSER" -d "${3:-$DB}" -c "$2" 2>>"$LOGS/psql.err"
}

# ---------------------------------------------------------------- machine info
REPORT=$TMPD/report.txt
: >"$REPORT"
say() { printf '%s\n' "$*" | tee -a "$REPORT"; }

cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
mem_total=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
commit=$(git -C "$REPO_DIR" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git -C "$REPO_DIR" status --porcelain --untracked-files=no 2>/dev/null)" ]; then commit="$commit+dirty"; fi
say "# pgbun benchmark"
say ""
say "date:      $(date -u '+%Y-%m-%d %H:%M UTC')"
say "machine:   $(nproc) CPUs, ${cpu_model:-unknown CPU}, $mem_total RAM, $(uname -sr)"
so_id=n/a
[ -f "$PKGLIBDIR/pgbun.so" ] && so_id="sha256 $(sha256sum "$PKGLIBDIR/pgbun.so" | cut -c1-12), installed $(date -u -r "$PKGLIBDIR/pgbun.so" '+%Y-%m-%d %H:%M:%S UTC')"
say "software:  $("$PGBIN/postgres" --version), $("$PGBOUNCER" --version | head -1), pgbun $commit"
say "pgbun.so:  $PKGLIBDIR/pgbun.so, $so_id"
say "settings:  ROUNDS=$ROUNDS DURATION=${DURATION}s TX_DURATION=${TX_DURATION}s POOL=$POOL SCALE=$SCALE MODES='${MODE_LIST[*]}' auth=trust (tls: scram-sha-256)" \
	"max_connections=$MAX_CONNECTIONS clients via $([ "$BENCH_HOST" = unix ] && echo 'Unix socket' || echo "TCP $BENCH_HOST")"
say "ports:     server $SERVER_PORT, pgbun $PGBUN_PORT, pgbouncer $BOUNCER_PORT"
say ""

# ---------------------------------------------------------------- server + pgbun
PGBUN_STATUS=ok # or a reason why pgbun is n/a
if [ ! -f "$PKGLIBDIR/pgbun.so" ]; then
	PGBUN_STATUS="pgbun.so not installed in $PKGLIBDIR (run make && make install)"
fi

log "initdb in $DATA"
as_pg "$PGBIN/initdb" -D "$DATA" -U "$DBUSER" -A trust -E UTF8 --no-sync >"$LOGS/initdb.log" 2>&1 || {
	cat "$LOGS/initdb.log" >&2
	exit 1
}
cat >"$DATA/pg_hba.conf" <<EOF
local all all trust
host  all all 127.0.0.1/32 trust
host  all all ::1/128 trust
EOF
cp "$DATA/postgresql.conf" "$TMPD/postgresql.conf.orig"

write_conf() { # write_conf with-pgbun|without-pgbun [POOL_MODE]
	cp "$TMPD/postgresql.conf.orig" "$DATA/postgresql.conf"
	cat >>"$DATA/postgresql.conf" <<EOF

# bench/run.sh
listen_addresses = '127.0.0.1'
port = $SERVER_PORT
unix_socket_directories = '$TMPD'
max_connections = $MAX_CONNECTIONS
shared_buffers = 256MB
fsync = off
synchronous_commit = off
full_page_writes = off
logging_collector = off
EOF
	if [ "$1" = with-pgbun ]; then
		cat >>"$DATA/postgresql.conf" <<EOF
shared_preload_libraries = 'pgbun'
pgbun.listen_addresses = '127.0.0.1'
pgbun.port = $PGBUN_PORT
pgbun.unix_socket_directories = '$TMPD'
pgbun.pool_mode = $(pool_mode_of "${2:-session}")
pgbun.default_pool_size = $POOL
pgbun.max_client_conn = $MAX_CLIENT_CONN
pgbun.auth_type = $([ "${2:-}" = tls ] && echo scram-sha-256 || echo trust)
pgbun.server_reset_query = 'DISCARD ALL'
pgbun.log_connections = off
pgbun.log_disconnections = off
${PGBUN_WORKERS:+pgbun.workers = $PGBUN_WORKERS}
EOF
	fi
	if [ "${2:-}" = tls ]; then
		# the server itself speaks TLS too (direct target), with the same certificate
		cat >>"$DATA/postgresql.conf" <<EOF
ssl = on
ssl_cert_file = '$TMPD/tls.crt'
ssl_key_file = '$TMPD/tls.key'
pgbun.client_tls_sslmode = require
pgbun.client_tls_cert_file = '$TMPD/tls.crt'
pgbun.client_tls_key_file = '$TMPD/tls.key'
EOF
	fi
	chown "$OS_USER" "$DATA/postgresql.conf" 2>/dev/null || true
}

# The pool mode a MODES entry runs in (tls: session pooling, over TLS).
pool_mode_of() { if [ "$1" = tls ]; then echo session; else echo "$1"; fi; }

start_server() {
	as_pg "$PGBIN/pg_ctl" -D "$DATA" -l "$TMPD/server.log" -w -t 60 start >"$LOGS/pg_ctl.log" 2>&1
}
stop_server() {
	as_pg "$PGBIN/pg_ctl" -D "$DATA" -m fast -w -t 30 stop >>"$LOGS/pg_ctl.log" 2>&1 ||
		as_pg "$PGBIN/pg_ctl" -D "$DATA" -m immediate -w -t 10 stop >>"$LOGS/pg_ctl.log" 2>&1
}

wait_for() { # wait_for TARGET SECONDS [DB]
	local i
	for i in $(seq "$2"); do
		[ "$(psql_at "$1" 'select 1' "${3:-}")" = 1 ] && return 0
		sleep 1
	done
	return 1
}

# Server up, database there (created on first start).
server_ready() {
	wait_for direct 30 postgres || return 1
	if [ "$(psql_at direct "select count(*) from pg_database where datname = '$DB'" postgres)" != 1 ]; then
		psql_at direct "create database $DB" postgres >/dev/null || return 1
	fi
}

# ", worker crashed N times (signal S)" when the server log says so.
pgbun_crashes() {
	local n sig
	n=$(grep -c 'background worker "pgbun[^"]*" (PID [0-9]*) was terminated by signal' "$TMPD/server.log" 2>/dev/null || true)
	[ "${n:-0}" -gt 0 ] || return 0
	sig=$(grep -o 'background worker "pgbun[^"]*" (PID [0-9]*) was terminated by signal [0-9]*: [A-Za-z ]*' "$TMPD/server.log" |
		tail -n 1 | sed 's/.*terminated by //')
	printf ', worker crashed %s time(s) (%s), each crash restarting the server' "$n" "$sig"
}

server_up=0
if [ "$PGBUN_STATUS" = ok ]; then
	write_conf with-pgbun "$FIRST_MODE"
	if start_server && server_ready; then
		server_up=1
		if ! wait_for pgbun 15; then
			PGBUN_STATUS="not answering on port $PGBUN_PORT within 15 s after server start$(pgbun_crashes)"
			log "pgbun: $PGBUN_STATUS; last psql error and server log tail:"
			grep '^psql' "$LOGS/psql.err" | tail -n 1 >&2 || true
			tail -n 15 "$TMPD/server.log" >&2 || true
			log "restarting the server without pgbun so direct/PgBouncer still run"
			stop_server || true
			server_up=0
		fi
	else
		PGBUN_STATUS="server did not start with shared_preload_libraries='pgbun'"
		log "pgbun: $PGBUN_STATUS; server log tail:"
		tail -n 15 "$TMPD/server.log" >&2 || true
		stop_server || true
	fi
fi
if [ "$server_up" = 0 ]; then
	write_conf without-pgbun
	if ! start_server || ! server_ready; then
		cat "$LOGS/pg_ctl.log" >&2
		tail -n 30 "$TMPD/server.log" >&2
		echo "bench: server not reachable on port $SERVER_PORT" >&2
		exit 1
	fi
fi
log "server up on $SERVER_PORT; pgbun: $PGBUN_STATUS"

# pgbun worker pid(s); more than one with pgbun.workers > 1.
pgbun_pids() {
	local pids
	pids=$(psql_at direct "select string_agg(pid::text, ' ' order by pid) from pg_stat_activity where backend_type ilike '%pgbun%'" || true)
	if [ -z "$pids" ] && [ -s "$DATA/postmaster.pid" ]; then
		local pm c
		pm=$(head -1 "$DATA/postmaster.pid")
		for c in $(ps -o pid= --ppid "$pm"); do
			tr '\0' ' ' <"/proc/$c/cmdline" 2>/dev/null | grep -q pgbun && pids="$pids $c"
		done
	fi
	# shellcheck disable=SC2086 # word-split on purpose: one line of pids
	echo $pids
}
PGBUN_PIDS_START=
[ "$PGBUN_STATUS" = ok ] && PGBUN_PIDS_START=$(pgbun_pids)
[ "$PGBUN_STATUS" = ok ] && say "pgbun:     $(wc -w <<<"$PGBUN_PIDS_START") worker(s) (pgbun.workers = ${PGBUN_WORKERS:-default})" && say ""

# ---------------------------------------------------------------- PgBouncer
cat >"$TMPD/userlist.txt" <<EOF
"$DBUSER" ""
EOF
# PgBouncer 1.21 and later track protocol-level prepared statements (max_prepared_statements);
# with one of those the -M prepared workloads run through it too.
BOUNCER_VERSION=$("$PGBOUNCER" --version 2>/dev/null | sed -n 's/^[Pp][Gg][Bb]ouncer \([0-9.]*\).*/\1/p' | head -1)
BOUNCER_PREPARED=0
if [ -n "$BOUNCER_VERSION" ] && printf '1.21\n%s\n' "$BOUNCER_VERSION" | sort -V -C; then BOUNCER_PREPARED=1; fi
write_bouncer_ini() { # write_bouncer_ini MODE
	local tls_lines=''
	local prep_line=''
	[ "$BOUNCER_PREPARED" = 1 ] && prep_line="max_prepared_statements = 200"
	[ "$1" = tls ] && tls_lines="client_tls_sslmode = require
client_tls_cert_file = $TMPD/tls.crt
client_tls_key_file = $TMPD/tls.key"
	cat >"$TMPD/pgbouncer.ini" <<EOF
[databases]
* = host=$TMPD port=$SERVER_PORT

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $BOUNCER_PORT
unix_socket_dir = $TMPD
auth_type = $([ "$1" = tls ] && echo scram-sha-256 || echo trust)
auth_file = $TMPD/userlist.txt
pool_mode = $(pool_mode_of "$1")
default_pool_size = $POOL
max_client_conn = $MAX_CLIENT_CONN
server_reset_query = DISCARD ALL
logfile = $TMPD/pgbouncer.log
pidfile = $TMPD/pgbouncer.pid
log_connections = 0
log_disconnections = 0
admin_users = $DBUSER
$prep_line
$tls_lines
EOF
	[ "$(id -u)" = 0 ] && chown "$OS_USER" "$TMPD/userlist.txt" "$TMPD/pgbouncer.ini"
	return 0
}
write_bouncer_ini "$FIRST_MODE"
BOUNCER_STATUS=ok
if ! as_pg "$PGBOUNCER" -d "$TMPD/pgbouncer.ini" >"$LOGS/pgbouncer.start" 2>&1 || ! wait_for pgbouncer 15; then
	BOUNCER_STATUS="PgBouncer did not start (see its log)"
	log "$BOUNCER_STATUS"
	tail -n 15 "$TMPD/pgbouncer.log" "$LOGS/pgbouncer.start" >&2 2>/dev/null || true
fi
log "pgbouncer on $BOUNCER_PORT: $BOUNCER_STATUS"

# ---------------------------------------------------------------- data
log "pgbench -i -s $SCALE"
"$PGBENCH" -i -s "$SCALE" -q -h "$CLIENT_HOST" -p "$SERVER_PORT" -U "$DBUSER" "$DB" >"$LOGS/init.log" 2>&1 || {
	cat "$LOGS/init.log" >&2
	exit 1
}

# ---------------------------------------------------------------- idle clients
# Measured first, on poolers that have only served a few psql logins, so neither
# has free lists left over from the 500-client runs that would hide the growth.
# VmRSS / RssAnon / RssShmem in kB, summed over pids.
rss_kb() { # rss_kb FIELD PIDS...
	local f=$1 sum=0 p v
	shift
	for p in "$@"; do
		v=$(awk -v f="$f:" '$1 == f { print $2 }' "/proc/$p/status" 2>/dev/null)
		sum=$((sum + ${v:-0}))
	done
	echo "$sum"
}

declare -A IDLE
# idle_test TARGET PIDS...
idle_test() {
	local t=$1
	shift
	local out=$LOGS/idle-$t.out
	local b_rss b_anon b_shm a_rss a_anon a_shm
	b_rss=$(rss_kb VmRSS "$@")
	b_anon=$(rss_kb RssAnon "$@")
	b_shm=$(rss_kb RssShmem "$@")
	perl "$BENCH_DIR/idle_clients.pl" --host 127.0.0.1 --port "$(port_of "$t")" \
		--user "$DBUSER" --dbname "$DB" -n "$IDLE_CLIENTS" --hold 600 >"$out" 2>&1 &
	IDLE_PID=$!
	local i
	for i in $(seq 300); do
		grep -q '^READY' "$out" 2>/dev/null && break
		kill -0 "$IDLE_PID" 2>/dev/null || break
		sleep 1
	done
	sleep 2 # let the pooler finish whatever it does after the last login
	a_rss=$(rss_kb VmRSS "$@")
	a_anon=$(rss_kb RssAnon "$@")
	a_shm=$(rss_kb RssShmem "$@")
	# Cross-check: connections the pooler still holds open (not closed behind the client's back).
	local held=n/a
	if command -v ss >/dev/null; then
		held=$(ss -Htn state established "( sport = :$(port_of "$t") )" 2>/dev/null | wc -l)
	fi
	local ready
	ready=$(grep -m1 '^READY' "$out" || echo "READY ok=0 (no report: $(tail -n 1 "$out"))")
	# Still serving with 5,000 idle clients held?
	local alive=no
	[ "$(psql_at "$t" 'select 1')" = 1 ] && alive=yes
	kill "$IDLE_PID" 2>/dev/null || true
	wait "$IDLE_PID" 2>/dev/null || true
	IDLE_PID=
	local ok
	ok=$(sed -n 's/.*ok=\([0-9]*\).*/\1/p' <<<"$ready")
	ok=${ok:-0}
	local per=n/a
	[ "$ok" -gt 0 ] && per=$(((a_rss - b_rss) * 1024 / ok))
	IDLE[$t]="$per|$ok / $held|$b_rss|$a_rss|$((a_anon - b_anon))|$((a_shm - b_shm))|$alive|${ready#READY }"
	log "  idle $t: $ready; VmRSS $b_rss -> $a_rss kB; $per bytes/client"
}

if [ "$IDLE_CLIENTS" -gt 0 ]; then
	log "idle clients: $IDLE_CLIENTS"
	PGBUN_PIDS=
	if [ "$PGBUN_STATUS" = ok ]; then PGBUN_PIDS=$(pgbun_pids); fi
	if [ "$PGBUN_STATUS" = ok ] && [ -n "$PGBUN_PIDS" ]; then
		# shellcheck disable=SC2086 # one word per pid
		idle_test pgbun $PGBUN_PIDS
	fi
	if [ "$BOUNCER_STATUS" = ok ]; then idle_test pgbouncer "$(cat "$TMPD/pgbouncer.pid")"; fi
	sleep 2 # let both poolers tidy up after the mass disconnect
fi


# ---------------------------------------------------------------- workloads
# mode|id|label|clients|pgbench options|poolers (empty: run them all; prepared: not PgBouncer, see the notes)
WORKLOADS=(
	"session|s1|select-only, 1 client|1|-S -M simple|"
	"session|s50|select-only, 50 clients|50|-S -M simple|"
	"session|s500|select-only, 500 clients|500|-S -M simple|"
	"session|c20|connect storm -C, 20 clients|20|-S -M simple -C|"
	"transaction|ts50|-S -M simple, 50 clients|50|-S -M simple|"
	"transaction|ts1000|-S -M simple, 1000 clients|1000|-S -M simple|"
	"transaction|te50|-S -M extended, 50 clients|50|-S -M extended|"
	"transaction|te1000|-S -M extended, 1000 clients|1000|-S -M extended|"
	"transaction|tp50|-S -M prepared, 50 clients|50|-S -M prepared|prepared"
	"transaction|tp1000|-S -M prepared, 1000 clients|1000|-S -M prepared|prepared"
	"transaction|tb50|TPC-B (default script) -M simple, 50 clients|50|-M simple|"
	"tls|l20|connect storm -C over TLS + SCRAM, 20 clients|20|-S -M simple -C|"
	"tls|l50|select-only over TLS, 50 clients|50|-S -M simple|"
)
TARGETS=(direct pgbun pgbouncer)
declare -A TPS LAT ERRS NOTE PROBE MODE_CHECK OTHER PCPU MCPU MBUSY

# CPU used by processes outside this benchmark while a pgbench run lasts (other jobs on the
# machine disturb the numbers). /proc/stat gives the machine's busy (user, nice, system, steal;
# not irq/softirq, which the kernel charges to no process) and total clock ticks; this
# script's processes are this shell (its cutime/cstime hold pgbench's and psql's ticks once they
# are waited for), the postmaster with its live children (exited backends are in its cutime/cstime)
# and PgBouncer. All in USER_HZ ticks.
cpu_ticks() { # "busy total" for the whole machine
	awk '/^cpu / { print $2 + $3 + $4 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9; exit }' /proc/stat
}
# "busy total" again, busy now with irq and softirq and without steal: the CPU time the machine
# spent on anything (the loopback TCP stack runs largely in softirq).
machine_ticks() {
	awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9; exit }' /proc/stat
}
own_ticks() {
	local -a pids=("$$")
	local pm c
	if [ -s "$DATA/postmaster.pid" ]; then
		pm=$(head -1 "$DATA/postmaster.pid")
		pids+=("$pm")
		for c in $(ps -o pid= --ppid "$pm" 2>/dev/null); do pids+=("$c"); done
	fi
	[ -s "$TMPD/pgbouncer.pid" ] && pids+=("$(cat "$TMPD/pgbouncer.pid")")
	local p v sum=0
	for p in "${pids[@]}"; do
		# fields after "pid (comm) ": $12..$15 are utime stime cutime cstime
		v=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 + $14 + $15 }' "/proc/$p/stat" 2>/dev/null || true)
		sum=$((sum + ${v:-0}))
	done
	echo "$sum"
}
# other_cpu BUSY0 TOTAL0 OWN0 BUSY1 TOTAL1 OWN1: percent of the machine's CPU used by others.
other_cpu() {
	awk -v b0="$1" -v t0="$2" -v o0="$3" -v b1="$4" -v t1="$5" -v o1="$6" 'BEGIN {
		t = t1 - t0; x = (b1 - b0) - (o1 - o0)
		if (t <= 0) { print "n/a"; exit }
		if (x < 0) x = 0
		printf "%.0f", 100 * x / t }'
}

# CPU ticks (utime + stime, USER_HZ) of one target's pooler processes: pgbun's worker(s),
# PgBouncer's process; empty for direct. Sampled around each pgbench run, so the
# pooler's own CPU per transaction can be compared (the goal of issue 12).
pooler_ticks() { # pooler_ticks TARGET
	local -a pids=()
	case $1 in
	pgbun) read -r -a pids <<<"$(pgbun_pids)" ;;
	pgbouncer) [ -s "$TMPD/pgbouncer.pid" ] && pids=("$(cat "$TMPD/pgbouncer.pid")") ;;
	*) return 0 ;;
	esac
	local p v sum=0
	for p in "${pids[@]}"; do
		v=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$p/stat" 2>/dev/null || true)
		sum=$((sum + ${v:-0}))
	done
	echo "$sum"
}
CLK_TCK=$(getconf CLK_TCK)

mode_duration() { if [ "$1" = transaction ]; then echo "$TX_DURATION"; else echo "$DURATION"; fi; }

# tls mode: a self-signed certificate for localhost / 127.0.0.1, the role's SCRAM
# password (in pg_authid for pgbun, its verifier in PgBouncer's auth_file), and
# every client of the bench (pgbench, psql) made to use TLS and that password.
TLS_PASSWORD=bench-tls-pw
prepare_tls() {
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=localhost" \
		-addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
		-keyout "$TMPD/tls.key" -out "$TMPD/tls.crt" >"$LOGS/openssl.log" 2>&1 || return 1
	chmod 600 "$TMPD/tls.key"
	[ "$(id -u)" = 0 ] && chown "$OS_USER" "$TMPD/tls.key" "$TMPD/tls.crt"
	psql_at direct "set password_encryption = 'scram-sha-256'; alter role $DBUSER password '$TLS_PASSWORD'" >/dev/null || return 1
	printf '"%s" "%s"\n' "$DBUSER" "$(psql_at direct "select rolpassword from pg_authid where rolname = '$DBUSER'")" >"$TMPD/userlist.txt"
	[ "$(id -u)" = 0 ] && chown "$OS_USER" "$TMPD/userlist.txt"
	export PGSSLMODE=require PGPASSWORD=$TLS_PASSWORD
}

# run_one WID CLIENTS OPTIONS DURATION TARGET ROUND
run_one() {
	local wid=$1 clients=$2 options=$3 dur=$4 t=$5 r=$6
	local key="$wid,$t" logf="$LOGS/$wid-$t-$r.log" jobs=2 rc=0
	[ "$clients" -lt 2 ] && jobs=1
	local -a wopts
	read -r -a wopts <<<"$options"
	local -a opts=(-n "${wopts[@]}" -T "$dur" -c "$clients" -j "$jobs")
	local c0 o0 c1 o1 other
	local p0 p1 m0 m1
	p0=$(pooler_ticks "$t")
	m0=$(machine_ticks)
	c0=$(cpu_ticks)
	o0=$(own_ticks)
	PGCONNECT_TIMEOUT=10 timeout -k 5 $((dur * 2 + 60)) \
		"$PGBENCH" "${opts[@]}" -h "$CLIENT_HOST" -p "$(port_of "$t")" -U "$DBUSER" "$DB" >"$logf" 2>&1 || rc=$?
	o1=$(own_ticks)
	c1=$(cpu_ticks)
	m1=$(machine_ticks)
	p1=$(pooler_ticks "$t")
	other=$(other_cpu "${c0% *}" "${c0#* }" "$o0" "${c1% *}" "${c1#* }" "$o1")
	OTHER[$wid]="${OTHER[$wid]:-} $other"
	local tps lat
	tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' "$logf" | head -1)
	lat=$(sed -n 's/^latency average = \([0-9.]*\) ms.*/\1/p' "$logf" | head -1)
	if [ "$rc" = 0 ] && [ -n "$tps" ]; then
		TPS[$key]="${TPS[$key]:-} $tps"
		LAT[$key]="${LAT[$key]:-} $lat"
		local ntx
		ntx=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$logf" | head -1)
		if [ -n "$p0" ] && [ -n "$p1" ] && [ -n "$ntx" ] && [ "$ntx" -gt 0 ]; then
			# pooler CPU microseconds per transaction (per connection with -C)
			PCPU[$key]="${PCPU[$key]:-} $(awk -v d=$((p1 - p0)) -v n="$ntx" -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", d * 1e6 / hz / n }')"
		fi
		if [ -n "$ntx" ] && [ "$ntx" -gt 0 ]; then
			# the whole machine's CPU microseconds per transaction, and how busy it was
			MCPU[$key]="${MCPU[$key]:-} $(awk -v d=$((${m1% *} - ${m0% *})) -v n="$ntx" -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", d * 1e6 / hz / n }')"
			MBUSY[$key]="${MBUSY[$key]:-} $(awk -v b=$((${m1% *} - ${m0% *})) -v t=$((${m1#* } - ${m0#* })) 'BEGIN { if (t > 0) printf "%.0f", 100 * b / t }')"
		fi
		log "  $wid $t round $r: tps $tps, latency $lat ms, other processes' CPU ${other} %"
	else
		ERRS[$key]=$((${ERRS[$key]:-0} + 1))
		local why
		if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
			why="pgbench killed after $((dur * 2 + 60)) s (hung)"
		else
			why=$(grep -m1 -iE 'error|fatal|abort|could not|failed' "$logf" || tail -n 1 "$logf")
		fi
		[ -n "${NOTE[$key]:-}" ] || NOTE[$key]="$t: ${why:0:200}"
		log "  $wid $t round $r: FAILED (exit $rc): ${why:0:200}"
	fi
}

# The mode pgbun's worker applies to the bench pool (pgbun.pools), else the GUC as a backend sees it.
PGBUN_VIEW=0
if [ "$PGBUN_STATUS" = ok ] && psql_at direct "create extension if not exists pgbun" >/dev/null; then PGBUN_VIEW=1; fi
pgbun_mode() {
	if [ "$PGBUN_VIEW" = 1 ]; then
		psql_at pgbun 'select 1' >/dev/null # makes sure the pool exists
		psql_at direct "select pool_mode from pgbun.pools where database = '$DB' and \"user\" = '$DBUSER'" | head -1
	else
		psql_at direct 'show pgbun.pool_mode'
	fi
}
bouncer_mode() {
	psql_at pgbouncer 'SHOW CONFIG' pgbouncer | awk -F'|' '$1 == "pool_mode" { print $2 }'
}

# switch_mode MODE: rewrite both poolers' configurations, reload both (nothing is restarted)
# and check that the new pool_mode is in force.
switch_mode() {
	local mode=$1 got='' i
	log "pool_mode -> $mode (reload of both poolers)"
	if [ "$mode" = tls ] && ! prepare_tls; then
		log "tls: could not make the certificate or set the password (see $LOGS/openssl.log)"
		PGBUN_STATUS="tls set-up failed"
		BOUNCER_STATUS="tls set-up failed"
		return
	fi
	if [ "$PGBUN_STATUS" = ok ]; then
		write_conf with-pgbun "$mode"
		as_pg "$PGBIN/pg_ctl" -D "$DATA" reload >>"$LOGS/pg_ctl.log" 2>&1 || true
		for i in $(seq 20); do
			got=$(pgbun_mode || true)
			[ "$got" = "$(pool_mode_of "$mode")" ] && break
			sleep 0.5
		done
		if [ "$got" = "$(pool_mode_of "$mode")" ]; then
			MODE_CHECK[pgbun]="pgbun $([ "$PGBUN_VIEW" = 1 ] && echo "pgbun.pools.pool_mode" || echo "SHOW pgbun.pool_mode") = $got"
		else
			PGBUN_STATUS="pool_mode still '${got:-unknown}' after the reload to $mode$(pgbun_crashes)"
			log "pgbun: $PGBUN_STATUS"
		fi
	fi
	if [ "$BOUNCER_STATUS" = ok ]; then
		write_bouncer_ini "$mode"
		if [ "$mode" = tls ]; then
			# PgBouncer 1.18 does not turn client TLS on at RELOAD: restart it
			as_pg kill -TERM "$(cat "$TMPD/pgbouncer.pid")" 2>/dev/null || true
			for i in $(seq 50); do [ -s "$TMPD/pgbouncer.pid" ] || break; sleep 0.2; done
			as_pg "$PGBOUNCER" -d "$TMPD/pgbouncer.ini" >>"$LOGS/pgbouncer.start" 2>&1 || true
			wait_for pgbouncer 15 || true
		else
			psql_at pgbouncer RELOAD pgbouncer >/dev/null || true
		fi
		for i in $(seq 20); do
			got=$(bouncer_mode || true)
			[ "$got" = "$(pool_mode_of "$mode")" ] && break
			sleep 0.5
		done
		if [ "$got" = "$(pool_mode_of "$mode")" ]; then
			MODE_CHECK[pgbouncer]="PgBouncer SHOW CONFIG pool_mode = $got"
		else
			BOUNCER_STATUS="pool_mode still '${got:-unknown}' after RELOAD to $mode"
			log "pgbouncer: $BOUNCER_STATUS"
		fi
	fi
	log "  ${MODE_CHECK[pgbun]:-pgbun n/a}; ${MODE_CHECK[pgbouncer]:-pgbouncer n/a}"
}

# syscalls_per_txn TARGET: the pooler's system calls per transaction, counted by strace -c -f
# attached to its process(es) during a separate 3-second pgbench -S -c 50 (strace slows the
# pooler, so this run's tps is not reported; the count per transaction is what matters).
declare -A SYSC
syscalls_per_txn() {
	local t=$1 logf="$LOGS/syscalls-$1.log" slog="$LOGS/strace-$1.log" p ntx calls
	local -a pids=() sp=()
	command -v strace >/dev/null || { SYSC[$t]="n/a (no strace)"; return 0; }
	case $t in
	pgbun) read -r -a pids <<<"$(pgbun_pids)" ;;
	pgbouncer) [ -s "$TMPD/pgbouncer.pid" ] && pids=("$(cat "$TMPD/pgbouncer.pid")") ;;
	esac
	[ "${#pids[@]}" -gt 0 ] || { SYSC[$t]="n/a"; return 0; }
	for p in "${pids[@]}"; do sp+=(-p "$p"); done
	strace -c -f -o "$slog" "${sp[@]}" 2>/dev/null &
	local st=$!
	sleep 1
	PGCONNECT_TIMEOUT=10 timeout -k 5 60 "$PGBENCH" -n -S -M simple -T 3 -c 50 -j 2 \
		-h "$CLIENT_HOST" -p "$(port_of "$t")" -U "$DBUSER" "$DB" >"$logf" 2>&1 || true
	kill -INT "$st" 2>/dev/null
	wait "$st" 2>/dev/null || true
	ntx=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$logf" | head -1)
	calls=$(awk '$NF == "total" { print $(NF-2) }' "$slog" 2>/dev/null)
	if [ -n "$ntx" ] && [ "$ntx" -gt 0 ] && [ -n "$calls" ]; then
		SYSC[$t]=$(awk -v c="$calls" -v n="$ntx" 'BEGIN { printf "%.2f", c / n }')
	else
		SYSC[$t]="n/a"
	fi
	log "  $t: ${SYSC[$t]} syscalls per transaction ($calls calls, $ntx transactions)"
}

# probe_prepared TARGET: what -M prepared does through a pooler in transaction mode (a short run).
probe_prepared() {
	local t=$1 logf="$LOGS/probe-prepared-$1.log" rc=0 tps first
	PGCONNECT_TIMEOUT=10 timeout -k 5 60 "$PGBENCH" -n -S -M prepared -T 2 -c 50 -j 2 \
		-h "$CLIENT_HOST" -p "$(port_of "$t")" -U "$DBUSER" "$DB" >"$logf" 2>&1 || rc=$?
	tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' "$logf" | head -1)
	first=$(grep -m1 -iE 'error|fatal|abort|could not|failed' "$logf" | sed 's/^pgbench: //' || true)
	if [ -n "$first" ]; then
		PROBE[$t]="exit $rc, ${first:0:220}"
	else
		PROBE[$t]="exit $rc, no error, tps ${tps:-n/a}"
	fi
	log "  prepared probe $t: ${PROBE[$t]}"
}

CUR_MODE=$FIRST_MODE
for mode in "${MODE_LIST[@]}"; do
	[ "$mode" = "$CUR_MODE" ] || switch_mode "$mode"
	CUR_MODE=$mode
	dur=$(mode_duration "$mode")
	for w in "${WORKLOADS[@]}"; do
		IFS='|' read -r wmode wid label clients options poolers <<<"$w"
		[ "$wmode" = "$mode" ] || continue
		log "workload ($mode mode, ${dur}s): $label"
		for r in $(seq "$ROUNDS"); do
			# Rotate the starting target each round so none always runs first.
			for i in 0 1 2; do
				t=${TARGETS[$(((i + r - 1) % 3))]}
				if [ "$t" = direct ] && [ "$clients" -gt $((MAX_CONNECTIONS - 2 * POOL - 5)) ]; then
					NOTE[$wid,$t]="direct: n/a, $clients clients > max_connections=$MAX_CONNECTIONS minus the poolers' $((2 * POOL)) server connections"
					continue
				fi
				if [ "$t" = pgbouncer ] && [ -n "$poolers" ] && [ "$BOUNCER_PREPARED" != 1 ]; then continue; fi
				if [ "$t" = pgbun ]; then
					if [ "$PGBUN_STATUS" = ok ] && ! wait_for pgbun 5; then
						PGBUN_STATUS="stopped answering on port $PGBUN_PORT during the run (at $label, $mode mode, round $r)$(pgbun_crashes)"
						log "pgbun: $PGBUN_STATUS"
					fi
					[ "$PGBUN_STATUS" = ok ] || continue
				fi
				if [ "$t" = pgbouncer ] && [ "$BOUNCER_STATUS" != ok ]; then continue; fi
				run_one "$wid" "$clients" "$options" "$dur" "$t" "$r"
			done
		done
	done
	if [ "$mode" = transaction ] && [ "${SYSCALLS:-1}" = 1 ]; then
		log "syscalls per transaction (strace -c on a separate short run)"
		for t in pgbun pgbouncer; do syscalls_per_txn "$t"; done
	fi
	if [ "$mode" = transaction ]; then
		# After the measured runs, so nothing a probe leaves on a server connection can affect them.
		log "probe: pgbench -M prepared through PgBouncer in transaction mode"
		[ "$BOUNCER_STATUS" = ok ] && [ "$BOUNCER_PREPARED" != 1 ] && probe_prepared pgbouncer
	fi
done

# ---------------------------------------------------------------- report
fmt_num() { # one decimal for tps, 3 for ms; n/a when empty
	if [ -z "$1" ]; then echo n/a; else printf "%.${2}f" "$1"; fi
}
for mode in "${MODE_LIST[@]}"; do
	dur=$(mode_duration "$mode")
	if [ "$mode" = session ]; then
		say "## pgbench -S -M simple, median of $ROUNDS round(s) x ${dur}s (session mode, pool $POOL)"
	elif [ "$mode" = tls ]; then
		say "## pgbench over TLS, median of $ROUNDS round(s) x ${dur}s (session mode, pool $POOL)"
	else
		say "## pgbench, median of $ROUNDS round(s) x ${dur}s (transaction mode, pool $POOL)"
	fi
	say ""
	say "| workload | direct tps | pgbun tps | pgbouncer tps | pgbun/pgbouncer | pgbun/direct | latency ms direct / pgbun / pgbouncer | pooler CPU us/txn pgbun / pgbouncer | CPU pgbun/pgbouncer |"
	say "|---|---:|---:|---:|---:|---:|---|---|---:|"
	for w in "${WORKLOADS[@]}"; do
		IFS='|' read -r wmode wid label _ _ _ <<<"$w"
		[ "$wmode" = "$mode" ] || continue
		declare -A mt ml mc
		for t in "${TARGETS[@]}"; do
			mt[$t]=$(median <<<"${TPS[$wid,$t]:-}")
			ml[$t]=$(median <<<"${LAT[$wid,$t]:-}")
			mc[$t]=$(median <<<"${PCPU[$wid,$t]:-}")
		done
		say "| $label | $(fmt_num "${mt[direct]}" 1) | $(fmt_num "${mt[pgbun]}" 1) | $(fmt_num "${mt[pgbouncer]}" 1) |" \
			"$(ratio "${mt[pgbun]}" "${mt[pgbouncer]}") | $(ratio "${mt[pgbun]}" "${mt[direct]}") |" \
			"$(fmt_num "${ml[direct]}" 3) / $(fmt_num "${ml[pgbun]}" 3) / $(fmt_num "${ml[pgbouncer]}" 3) |" \
			"$(fmt_num "${mc[pgbun]}" 1) / $(fmt_num "${mc[pgbouncer]}" 1) | $(ratio "${mc[pgbun]}" "${mc[pgbouncer]}") |"
		unset mt ml mc
	done
	say ""

	if [ "$mode" = transaction ]; then
		say "Where the machine's CPU goes (all processes and the kernel, /proc/stat, per transaction):"
		say ""
		say "| workload | machine CPU us/txn direct / pgbun / pgbouncer | machine busy % direct / pgbun / pgbouncer | PgBouncer's own share | tps ceiling of a pooler using no CPU, x PgBouncer |"
		say "|---|---|---|---:|---:|"
		for w in "${WORKLOADS[@]}"; do
			IFS='|' read -r wmode wid label _ _ _ <<<"$w"
			[ "$wmode" = "$mode" ] || continue
			declare -A mm mb
			for t in "${TARGETS[@]}"; do
				mm[$t]=$(median <<<"${MCPU[$wid,$t]:-}")
				mb[$t]=$(median <<<"${MBUSY[$wid,$t]:-}")
			done
			pb=$(median <<<"${PCPU[$wid,pgbouncer]:-}")
			share=n/a
			ceiling=n/a
			if [ -n "${mm[pgbouncer]}" ] && [ -n "$pb" ]; then
				share=$(awk -v p="$pb" -v m="${mm[pgbouncer]}" 'BEGIN { if (m > 0) printf "%.0f %%", 100 * p / m; else print "n/a" }')
				ceiling=$(awk -v p="$pb" -v m="${mm[pgbouncer]}" 'BEGIN { if (m > p) printf "%.2f", m / (m - p); else print "n/a" }')
			fi
			say "| $label | $(fmt_num "${mm[direct]}" 1) / $(fmt_num "${mm[pgbun]}" 1) / $(fmt_num "${mm[pgbouncer]}" 1) |" \
				"$(fmt_num "${mb[direct]}" 0) / $(fmt_num "${mb[pgbun]}" 0) / $(fmt_num "${mb[pgbouncer]}" 0) | $share | $ceiling |"
			unset mm mb
		done
		say ""
		say "On a machine that is busy all the time (busy % near 100), tps is the machine's CPU divided by the CPU"
		say "a transaction costs it; a pooler changes only its own part of that. So even a pooler that used no CPU at"
		say "all would reach at most (machine CPU per transaction through PgBouncer) / (that minus PgBouncer's own):"
		say "the last column. A tps ratio above it can come only from making the other processes cheaper (the"
		say "server's backends, the client)."
		say ""
	fi

	say "Notes:"
	for w in "${WORKLOADS[@]}"; do
		IFS='|' read -r wmode wid label _ _ _ <<<"$w"
		[ "$wmode" = "$mode" ] || continue
		for t in "${TARGETS[@]}"; do
			if [ -n "${ERRS[$wid,$t]:-}" ]; then
				say "- $label: $t failed ${ERRS[$wid,$t]}/$ROUNDS round(s): ${NOTE[$wid,$t]#*: }"
			elif [ "$t" = direct ] && [ -n "${NOTE[$wid,$t]:-}" ]; then
				say "- $label: ${NOTE[$wid,$t]}."
			fi
		done
	done
	if [ "$mode" = session ]; then
		say "- 500 clients in session mode: a client keeps its server connection for its whole session, so only"
		say "  $POOL clients run at a time and the rest queue until a session ends (here: the end of the run)."
		say "  The tps is that of $POOL active clients; pgbench's latency average (clients x duration / transactions)"
		say "  charges the queueing to every transaction. Transaction pooling is what makes this workload meaningful."
		say "- connect storm: every transaction opens a new connection (-C); with the poolers the server"
		say "  connection is reused and DISCARD ALL runs on every client disconnect (server_reset_query, both poolers)."
	elif [ "$mode" = tls ]; then
		say "- Clients connect with sslmode=require. pgbun and PgBouncer present the same self-signed RSA-2048"
		say "  certificate and ask for SCRAM-SHA-256 (pgbun checks pg_authid, PgBouncer the same verifier in its"
		say "  auth_file); the server, reached directly, uses that certificate too but trusts the client (no SCRAM),"
		say "  so the direct column is a reference for TLS cost, not an equal comparison. Both poolers reach the"
		say "  server over its Unix socket (no TLS there). Each -C connection pays a TLS handshake and a SCRAM"
		say "  exchange, whose 4096 PBKDF2 iterations run in pgbench's libpq on the same 2 cores."
	else
		if [ "$FIRST_MODE" != transaction ]; then
			say "- Both poolers were switched to transaction mode by a reload, not a restart, after the session-mode runs"
			say "  (checked: ${MODE_CHECK[pgbun]:-pgbun n/a}; ${MODE_CHECK[pgbouncer]:-pgbouncer n/a})."
		fi
		say "- -M prepared: pgbench parses each statement once per connection under a fixed name (P_0) and from"
		say "  then on sends only Bind/Execute. pgbun keeps each client's names and prepares the statement on"
		say "  whichever server connection a transaction gets (README: Prepared statements)."
		if [ "$BOUNCER_PREPARED" = 1 ]; then
			say "  PgBouncer $BOUNCER_VERSION tracks them too (max_prepared_statements = 200 in its configuration)."
		else
			say "  PgBouncer ${BOUNCER_VERSION:-?} (before 1.21) passes the Parse through without tracking it, so its clients"
			say "  fail on the server: n/a. Probe after the runs (pgbench -S -M prepared -c 50 -T 2): pgbouncer: ${PROBE[pgbouncer]:-not run}."
		fi
		say "- 1000 clients, pool $POOL: at most $POOL transactions run at once; a client waits for a free server"
		say "  connection before each transaction, and pgbench's latency average (clients x duration / transactions)"
		say "  counts that wait."
		say "- TPC-B: pgbench's default script (BEGIN; 3 UPDATEs, 1 SELECT, 1 INSERT; END), 7 statements per"
		say "  transaction. At scale $SCALE there are $SCALE pgbench_branches rows, so clients queue on their row locks;"
		say "  through a pooler only $POOL transactions run at once, against 50 backends direct."
		say "- Neither pooler runs server_reset_query in transaction mode."
		[ -z "${SYSC[pgbun]:-}" ] || say "- System calls per transaction (-S -M simple, 50 clients, strace -c -f on the pooler, separate 3 s run): pgbun ${SYSC[pgbun]}, pgbouncer ${SYSC[pgbouncer]:-n/a}."
		say "- Pooler CPU us/txn: utime + stime of the pooler's own process(es) (pgbun's worker(s), PgBouncer) from /proc over each run,"
		say "  divided by pgbench's transactions (per connection for -C); the median over rounds."
	fi
	others=
	for w in "${WORKLOADS[@]}"; do
		IFS='|' read -r wmode wid _ _ _ _ <<<"$w"
		[ "$wmode" = "$mode" ] && others="$others ${OTHER[$wid]:-}"
	done
	others=$(tr ' ' '\n' <<<"$others" | grep -E '^[0-9]+$' || true)
	if [ -n "$others" ]; then
		o_med=$(median <<<"$others")
		o_max=$(sort -n <<<"$others" | tail -n 1)
		say "- CPU used by processes outside this benchmark during these pgbench runs: median $(fmt_num "$o_med" 0) %," \
			"max $o_max % of the machine's $(nproc) CPUs$([ "$o_max" -gt 5 ] && echo ' (other jobs were running: treat the affected rounds with care)')."
	fi
	say ""
done

run_notes=()
[ "$PGBUN_STATUS" = ok ] || run_notes+=("pgbun: n/a from where it failed on: $PGBUN_STATUS.")
[ "$BOUNCER_STATUS" = ok ] || run_notes+=("pgbouncer: n/a from where it failed on: $BOUNCER_STATUS.")
if [ "$PGBUN_STATUS" = ok ] && [ -n "$PGBUN_PIDS_START" ]; then
	now_pids=$(pgbun_pids)
	[ "$now_pids" = "$PGBUN_PIDS_START" ] || run_notes+=("pgbun worker pid(s) changed during the run ($PGBUN_PIDS_START -> ${now_pids:-none}): it restarted$(pgbun_crashes).")
fi
if [ "${#run_notes[@]}" -gt 0 ]; then
	say "Run notes:"
	for n in "${run_notes[@]}"; do say "- $n"; done
	say ""
fi

if [ "$IDLE_CLIENTS" -gt 0 ]; then
	say "## Memory per idle client ($IDLE_CLIENTS logged-in idle clients, RSS delta of the pooler process, $FIRST_MODE mode)"
	say ""
	say "| pooler | clients logged in / open at measurement | VmRSS before kB | VmRSS after kB | bytes per idle client | of which anon / shmem kB | still serving |"
	say "|---|---:|---:|---:|---:|---|---|"
	for t in pgbun pgbouncer; do
		if [ -z "${IDLE[$t]:-}" ]; then
			say "| $t | n/a | n/a | n/a | n/a | n/a | n/a |"
			continue
		fi
		IFS='|' read -r per ok b a da ds alive ready <<<"${IDLE[$t]}"
		say "| $t | $ok | $b | $a | $per | $da / $ds | $alive |"
		case $ready in *failed=0\ timeout=0*) ;; *) say "|  | ($ready) | | | | | |" ;; esac
	done
	say ""
	say "VmRSS of the pgbun worker includes the shared-memory pages it touches (RssShmem); RssAnon is its private heap."
	say "Kernel socket buffers are not in RSS for either pooler."
	say ""
fi

say "Per-round tps (rounds 1..$ROUNDS):"
for w in "${WORKLOADS[@]}"; do
	IFS='|' read -r wmode wid label _ _ _ <<<"$w"
	[[ " ${MODE_LIST[*]} " == *" $wmode "* ]] || continue
	line="- $wmode, $label:"
	for t in "${TARGETS[@]}"; do
		vals=$(for v in ${TPS[$wid,$t]:-}; do printf ' %.0f' "$v"; done)
		line="$line $t${vals:- n/a};"
	done
	[ -z "${OTHER[$wid]:-}" ] || line="$line other processes' CPU %, in run order:${OTHER[$wid]};"
	say "${line%;}"
done
say ""

if mkdir -p "$BENCH_DIR/results" 2>/dev/null && cp "$REPORT" "$BENCH_DIR/results/latest.txt" 2>/dev/null; then
	log "report written to bench/results/latest.txt"
else
	log "could not write $BENCH_DIR/results/latest.txt"
fi
