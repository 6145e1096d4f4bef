#!/usr/bin/env bash
# bench/two-node.sh - pgbun vs PgBouncer in front of a primary and its streaming standby.
#
# Three throwaway clusters on loopback addresses: a primary (127.0.0.1:NODE_PORT), a
# streaming standby made with pg_basebackup -R (127.0.0.2, the same port, so that one
# host list with one port fits both poolers), and a third, otherwise idle cluster that
# only hosts pgbun (preloaded; clients log in against its pg_authid). PgBouncer (1.24 or
# later: host lists and load_balance_hosts) runs beside it with the same host list.
#
# 1. Reads: pgbench -S through pgbun's `ro` entry (target_session_attrs=standby, i.e. the
#    remote standby), through PgBouncer's `ro` entry (same host list; PgBouncer has no
#    target_session_attrs) and directly to the standby, alternating within every round;
#    median tps, latency, the pooler's CPU per transaction (/proc utime+stime) and, in a
#    separate run under strace -c, its system calls per transaction.
# 2. Failover: writers that commit one row per transaction run through pgbun (`rw`,
#    target_session_attrs=read-write), through PgBouncer (`rw`, load_balance_hosts=disable,
#    and `rw_rr`, its default round-robin) and directly with libpq's own host list and
#    target_session_attrs=read-write, all at once; the primary is stopped and the standby
#    promoted with pg_ctl; the report gives, per writer, the time from the last failed to
#    the first successful write, and from the last successful write before the stop to the
#    first one after it.
#
# A benchmark, not a test: any step that fails stops it with a non-zero exit. Takes about
# 3 minutes with the defaults. Environment (see bench/README.md, Two nodes):
#   ROUNDS=3 DURATION=8 CLIENTS=50 POOL=20 SCALE=10 SYSCALLS=1 FAILOVER=1 QUICK=1
#   FAILOVER_BEFORE=3 FAILOVER_AFTER=12 STOP_MODE=fast CHECK_DELAY=2 LOGIN_RETRY=1
#   NODE_PORT=5490 ROUTER_PORT=5491 PGBUN_PORT=6490 BOUNCER_PORT=6491 KEEP=1 PG_CONFIG PGBOUNCER
set -Eeuo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$BENCH_DIR/lib.sh"
REPO_DIR=$(cd "$BENCH_DIR/.." && pwd)
ME="bench two-node"

die() { echo "$ME: $*" >&2; exit 1; }
usage() {
	sed -n '2,/^set -E/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2
	exit "${1:-2}"
}
case ${1:-} in
'') ;;
-h | --help) usage 0 ;;
*) echo "$ME: takes no arguments (got '$*'); settings come from the environment (see --help)" >&2; exit 2 ;;
esac

if [ "${QUICK:-0}" = 1 ]; then
	ROUNDS=${ROUNDS:-1}
	DURATION=${DURATION:-3}
	SYSCALLS=${SYSCALLS:-0}
	FAILOVER_AFTER=${FAILOVER_AFTER:-8}
fi
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-8}
CLIENTS=${CLIENTS:-50}
POOL=${POOL:-20}
SCALE=${SCALE:-10}
SYSCALLS=${SYSCALLS:-1}
FAILOVER=${FAILOVER:-1}
FAILOVER_BEFORE=${FAILOVER_BEFORE:-3}
FAILOVER_AFTER=${FAILOVER_AFTER:-12}
STOP_MODE=${STOP_MODE:-fast}
CHECK_DELAY=${CHECK_DELAY:-2}
LOGIN_RETRY=${LOGIN_RETRY:-1}
KEEP=${KEEP:-0}
DB=bench
DBUSER=bench

for v in ROUNDS DURATION CLIENTS POOL SCALE FAILOVER_BEFORE FAILOVER_AFTER CHECK_DELAY LOGIN_RETRY; do
	case ${!v} in '' | *[!0-9]*) echo "$ME: $v must be a non-negative integer (got '${!v}')" >&2; exit 2 ;; esac
done
for v in ROUNDS DURATION CLIENTS POOL SCALE CHECK_DELAY FAILOVER_AFTER; do
	[ "${!v}" -ge 1 ] || { echo "$ME: $v must be >= 1" >&2; exit 2; }
done
for v in SYSCALLS FAILOVER KEEP QUICK; do
	case ${!v:-0} in 0 | 1) ;; *) echo "$ME: $v must be 0 or 1 (got '${!v}')" >&2; exit 2 ;; esac
done
case $STOP_MODE in fast | immediate) ;; *) echo "$ME: STOP_MODE must be fast or immediate (got '$STOP_MODE')" >&2; exit 2 ;; esac
[ "$CLIENTS" -le 1000 ] || { echo "$ME: CLIENTS must be <= 1000" >&2; exit 2; }
# pgbun may learn of the promotion only at the next check of an idle connection: wait long enough
if [ "$FAILOVER_AFTER" -lt $((CHECK_DELAY + 5)) ]; then FAILOVER_AFTER=$((CHECK_DELAY + 5)); fi

# ---------------------------------------------------------------- tools
PG_CONFIG=${PG_CONFIG:-pg_config}
command -v "$PG_CONFIG" >/dev/null || die "pg_config not found (set PG_CONFIG)"
PGBIN=$("$PG_CONFIG" --bindir)
PKGLIBDIR=$("$PG_CONFIG" --pkglibdir)
PGBENCH=$PGBIN/pgbench
PSQL=$PGBIN/psql
if [ -z "${PGBOUNCER:-}" ]; then
	if [ -x /opt/pgbouncer-1.25/bin/pgbouncer ]; then PGBOUNCER=/opt/pgbouncer-1.25/bin/pgbouncer; else PGBOUNCER=$(command -v pgbouncer || echo /usr/sbin/pgbouncer); fi
fi
PY=/usr/bin/python3
for b in "$PGBIN/initdb" "$PGBIN/pg_ctl" "$PGBIN/pg_basebackup" "$PGBENCH" "$PSQL" "$PGBOUNCER" "$PY" timeout; do
	command -v "$b" >/dev/null || die "$b not found"
done
"$PY" -c 'import psycopg' 2>/dev/null || die "python3 psycopg 3 is missing (Debian: apt-get install python3-psycopg)"
[ -f "$PKGLIBDIR/pgbun.so" ] || die "pgbun.so not installed in $PKGLIBDIR (make && make install, or set PG_CONFIG)"
BOUNCER_VERSION=$("$PGBOUNCER" --version 2>/dev/null | sed -n 's/^[Pp][Gg][Bb]ouncer \([0-9.]*\).*/\1/p' | head -1)
if [ -z "$BOUNCER_VERSION" ] || ! printf '1.24\n%s\n' "$BOUNCER_VERSION" | sort -V -C; then
	die "PgBouncer ${BOUNCER_VERSION:-?} at $PGBOUNCER: the two-node case needs 1.24 or later (host lists with load_balance_hosts); build 1.25.2 with ../shared/peers/build-pgbouncer.sh and set PGBOUNCER"
fi
[ "$SYSCALLS" = 0 ] || command -v strace >/dev/null || die "strace not found (apt-get install strace, or SYSCALLS=0)"

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(id -u)" = 0 ]; then
	OS_USER=${BENCH_OS_USER:-postgres}
	id "$OS_USER" >/dev/null 2>&1 || die "running as root needs an unprivileged user '$OS_USER' (set BENCH_OS_USER)"
	# shellcheck disable=SC2016 # expanded by the inner sh
	as_pg() { runuser -u "$OS_USER" -- sh -c 'ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$@"' sh "$@"; }
else
	OS_USER=$(id -un)
	as_pg() { "$@"; }
fi

# ---------------------------------------------------------------- temp dir, cleanup
TMPD=$(mktemp -d "${TMPDIR:-/tmp}/pgbun-bench2.XXXXXX")
chmod 755 "$TMPD"
LOGS=$TMPD/logs
mkdir -p "$LOGS" "$TMPD/sock1" "$TMPD/sock2" "$TMPD/sock3" "$TMPD/sockb"
[ "$(id -u)" = 0 ] && chown "$OS_USER" "$TMPD" "$TMPD"/sock* "$LOGS"
N1=$TMPD/node1 N2=$TMPD/node2 N3=$TMPD/router
WRITER_PIDS=()

stop_node() { # stop_node DATADIR [MODE]
	[ -s "$1/postmaster.pid" ] || return 0
	as_pg "$PGBIN/pg_ctl" -D "$1" -m "${2:-fast}" -w -t 30 stop >>"$LOGS/pg_ctl.log" 2>&1 ||
		as_pg "$PGBIN/pg_ctl" -D "$1" -m immediate -w -t 10 stop >>"$LOGS/pg_ctl.log" 2>&1
}
cleanup() {
	local rc=$? p
	set +e
	trap - ERR
	for p in "${WRITER_PIDS[@]}"; do kill "$p" 2>/dev/null; done
	if [ -s "$TMPD/pgbouncer.pid" ]; then
		p=$(cat "$TMPD/pgbouncer.pid")
		kill "$p" 2>/dev/null
		for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$p" 2>/dev/null
	fi
	for d in "$N3" "$N2" "$N1"; do stop_node "$d"; done
	if [ "$rc" != 0 ]; then
		echo "$ME: FAILED (exit $rc); last lines of the logs:" >&2
		for f in "$LOGS/pg_ctl.log" "$LOGS/psql.err" "$N1.log" "$N2.log" "$N3.log" "$TMPD/pgbouncer.log" "$LOGS/pgbouncer.start" "$LOGS"/writer-*.err; do
			[ -s "$f" ] && { echo "----- $f" >&2; tail -n 8 "$f" >&2; }
		done
	fi
	if [ "$KEEP" = 1 ]; then
		echo "$ME: kept $TMPD" >&2
	else
		[ "$rc" = 0 ] || echo "$ME: removing $TMPD (KEEP=1 keeps it)" >&2
		rm -rf "$TMPD"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'echo "$ME: step failed (line $LINENO): $BASH_COMMAND" >&2' ERR
trap 'exit 130' INT TERM

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# ---------------------------------------------------------------- ports
BENCH_ADDRS="127.0.0.1 127.0.0.2" # both nodes' addresses (pick_port, lib.sh)
NODE_PORT=$(pick_port "${NODE_PORT:-5490}")
ROUTER_PORT=$(pick_port "${ROUTER_PORT:-5491}" "$NODE_PORT")
PGBUN_PORT=$(pick_port "${PGBUN_PORT:-6490}" "$NODE_PORT" "$ROUTER_PORT")
BOUNCER_PORT=$(pick_port "${BOUNCER_PORT:-6491}" "$NODE_PORT" "$ROUTER_PORT" "$PGBUN_PORT")
HOSTS=127.0.0.1,127.0.0.2

# q HOST PORT DB SQL: one value (or rows, |-separated), non-zero exit on error
q() {
	PGCONNECT_TIMEOUT=5 timeout -k 2 20 "$PSQL" -X -q -At -F'|' -h "$1" -p "$2" -U "$DBUSER" -d "$3" -c "$4" 2>>"$LOGS/psql.err"
}
wait_sql() { # wait_sql SECONDS EXPECTED HOST PORT DB SQL
	local i
	for i in $(seq $(($1 * 4))); do
		[ "$(q "$3" "$4" "$5" "$6" 2>/dev/null || true)" = "$2" ] && return 0
		sleep 0.25
	done
	return 1
}

# ---------------------------------------------------------------- report header
REPORT=$TMPD/report.txt
: >"$REPORT"
say() { printf '%s\n' "$*" | tee -a "$REPORT"; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
LOAD_START=$(loadavg)
cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
commit=$(git -C "$REPO_DIR" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git -C "$REPO_DIR" status --porcelain --untracked-files=no 2>/dev/null)" ]; then commit="$commit+dirty"; fi
so_id="sha256 $(sha256sum "$PKGLIBDIR/pgbun.so" | cut -c1-12), installed $(date -u -r "$PKGLIBDIR/pgbun.so" '+%Y-%m-%d %H:%M:%S UTC')"
say "# pgbun benchmark: two nodes (primary + streaming standby)"
say ""
say "date:      $(date -u '+%Y-%m-%d %H:%M UTC')"
say "machine:   $(nproc) CPUs, ${cpu_model:-unknown CPU}, $(uname -sr); load average at start $LOAD_START"
say "software:  $("$PGBIN/postgres" --version), PgBouncer $BOUNCER_VERSION ($PGBOUNCER), pgbun $commit"
say "pgbun.so:  $PKGLIBDIR/pgbun.so, $so_id"
say "settings:  ROUNDS=$ROUNDS DURATION=${DURATION}s CLIENTS=$CLIENTS POOL=$POOL SCALE=$SCALE transaction pooling, auth trust," \
	"server_login_retry=${LOGIN_RETRY}s server_check_delay=${CHECK_DELAY}s (both poolers), STOP_MODE=$STOP_MODE"
say "nodes:     primary 127.0.0.1:$NODE_PORT, standby 127.0.0.2:$NODE_PORT, pgbun $PGBUN_PORT (in a third cluster on $ROUTER_PORT), PgBouncer $BOUNCER_PORT"
if [ "$(nproc)" -le 2 ]; then
	say "noise:     $(nproc) cores shared by pgbench, both servers, the poolers and whatever else runs (load average above):"
	say "           single runs vary by 20 % or more; compare the ratios of one run, not absolute numbers."
fi
say ""

# ---------------------------------------------------------------- clusters
hba() {
	cat >"$1/pg_hba.conf" <<EOF
local all all trust
host  all all 127.0.0.0/8 trust
local replication all trust
host  replication all 127.0.0.0/8 trust
EOF
}
common_conf() { # common_conf MAX_CONNECTIONS SHARED_BUFFERS
	cat <<EOF

# bench/two-node.sh
max_connections = $1
shared_buffers = $2
fsync = off
synchronous_commit = off
full_page_writes = off
logging_collector = off
wal_level = replica
max_wal_senders = 5
hot_standby = on
log_timezone = 'UTC'
EOF
}
start_node() { # start_node DATADIR
	as_pg "$PGBIN/pg_ctl" -D "$1" -l "$1.log" -w -t 60 start >>"$LOGS/pg_ctl.log" 2>&1 || die "server in $1 did not start (log: $1.log)"
}

log "primary: initdb, 127.0.0.1:$NODE_PORT"
as_pg "$PGBIN/initdb" -D "$N1" -U "$DBUSER" -A trust -E UTF8 --no-sync >"$LOGS/initdb1.log" 2>&1 || die "initdb failed (see $LOGS/initdb1.log)"
hba "$N1"
{
	common_conf $((2 * POOL + CLIENTS + 30)) 128MB
	echo "listen_addresses = '127.0.0.1'"
	echo "port = $NODE_PORT"
	echo "unix_socket_directories = '$TMPD/sock1'"
} >>"$N1/postgresql.conf"
start_node "$N1"
q 127.0.0.1 "$NODE_PORT" postgres "create database $DB" >/dev/null
log "pgbench -i -s $SCALE"
"$PGBENCH" -i -s "$SCALE" -q -h 127.0.0.1 -p "$NODE_PORT" -U "$DBUSER" "$DB" >"$LOGS/init.log" 2>&1 || die "pgbench -i failed (see $LOGS/init.log)"
q 127.0.0.1 "$NODE_PORT" "$DB" "create table failover_log (via text not null, seq bigint not null, client_ts timestamptz not null, server_ts timestamptz not null default clock_timestamp())" >/dev/null

log "standby: pg_basebackup -R, 127.0.0.2:$NODE_PORT"
as_pg "$PGBIN/pg_basebackup" -h 127.0.0.1 -p "$NODE_PORT" -U "$DBUSER" -D "$N2" -R -X stream -c fast >"$LOGS/basebackup.log" 2>&1 ||
	die "pg_basebackup failed (see $LOGS/basebackup.log)"
{
	echo ""
	echo "# the standby of bench/two-node.sh"
	echo "listen_addresses = '127.0.0.2'"
	echo "unix_socket_directories = '$TMPD/sock2'"
} >>"$N2/postgresql.conf"
start_node "$N2"
wait_sql 30 t 127.0.0.2 "$NODE_PORT" "$DB" "select pg_is_in_recovery()" || die "the standby is not in recovery"
wait_sql 30 streaming 127.0.0.1 "$NODE_PORT" postgres "select state from pg_stat_replication" || die "the standby does not stream from the primary"

log "pgbun's cluster: 127.0.0.1:$ROUTER_PORT, pgbun on $PGBUN_PORT"
as_pg "$PGBIN/initdb" -D "$N3" -U "$DBUSER" -A trust -E UTF8 --no-sync >"$LOGS/initdb3.log" 2>&1 || die "initdb failed (see $LOGS/initdb3.log)"
hba "$N3"
{
	common_conf 20 32MB
	cat <<EOF
listen_addresses = '127.0.0.1'
port = $ROUTER_PORT
unix_socket_directories = '$TMPD/sock3'
shared_preload_libraries = 'pgbun'
pgbun.listen_addresses = '127.0.0.1'
pgbun.port = $PGBUN_PORT
pgbun.unix_socket_directories = '$TMPD/sock3'
pgbun.pool_mode = transaction
pgbun.default_pool_size = $POOL
pgbun.max_client_conn = 2000
pgbun.auth_type = trust
pgbun.log_connections = off
pgbun.log_disconnections = off
pgbun.server_tls_sslmode = disable
pgbun.server_login_retry = '${LOGIN_RETRY}s'
pgbun.server_check_delay = '${CHECK_DELAY}s'
pgbun.databases = 'ro = host=$HOSTS port=$NODE_PORT dbname=$DB target_session_attrs=standby; rw = host=$HOSTS port=$NODE_PORT dbname=$DB target_session_attrs=read-write'
EOF
} >>"$N3/postgresql.conf"
start_node "$N3"
wait_sql 20 1 127.0.0.1 "$PGBUN_PORT" ro "select 1" || die "pgbun does not answer on $PGBUN_PORT (log: $N3.log)"
q 127.0.0.1 "$ROUTER_PORT" postgres "create extension pgbun" >/dev/null
pgbun_pids() { q 127.0.0.1 "$ROUTER_PORT" postgres "select string_agg(pid::text, ' ' order by pid) from pg_stat_activity where backend_type ilike '%pgbun%'"; }
PGBUN_PIDS=$(pgbun_pids)
[ -n "$PGBUN_PIDS" ] || die "no pgbun worker in pg_stat_activity of the cluster on $ROUTER_PORT"

log "PgBouncer $BOUNCER_VERSION on $BOUNCER_PORT"
echo "\"$DBUSER\" \"\"" >"$TMPD/userlist.txt"
cat >"$TMPD/pgbouncer.ini" <<EOF
[databases]
ro = host=$HOSTS port=$NODE_PORT dbname=$DB
rw = host=$HOSTS port=$NODE_PORT dbname=$DB load_balance_hosts=disable
rw_rr = host=$HOSTS port=$NODE_PORT dbname=$DB

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $BOUNCER_PORT
unix_socket_dir = $TMPD/sockb
auth_type = trust
auth_file = $TMPD/userlist.txt
pool_mode = transaction
default_pool_size = $POOL
max_client_conn = 2000
max_prepared_statements = 200
logfile = $TMPD/pgbouncer.log
pidfile = $TMPD/pgbouncer.pid
log_connections = 0
log_disconnections = 0
admin_users = $DBUSER
server_login_retry = $LOGIN_RETRY
server_check_delay = $CHECK_DELAY
EOF
[ "$(id -u)" = 0 ] && chown "$OS_USER" "$TMPD/userlist.txt" "$TMPD/pgbouncer.ini"
as_pg "$PGBOUNCER" -d "$TMPD/pgbouncer.ini" >"$LOGS/pgbouncer.start" 2>&1 || die "PgBouncer did not start (see $TMPD/pgbouncer.log)"
wait_sql 20 1 127.0.0.1 "$BOUNCER_PORT" ro "select 1" || die "PgBouncer does not answer on $BOUNCER_PORT (log: $TMPD/pgbouncer.log)"
BOUNCER_PID=$(cat "$TMPD/pgbouncer.pid")

# ---------------------------------------------------------------- CPU accounting
CLK_TCK=$(getconf CLK_TCK)
proc_ticks() { # proc_ticks FIELDS PIDS...: sum of utime+stime (FIELDS=2) or with the children's (4)
	local n=$1 p v sum=0
	shift
	for p in "$@"; do
		v=$(awk -v n="$n" '{ sub(/^.*\) /, ""); s = $12 + $13; if (n == 4) s += $14 + $15; print s }' "/proc/$p/stat" 2>/dev/null || true)
		sum=$((sum + ${v:-0}))
	done
	echo "$sum"
}
pooler_ticks() { # pooler_ticks TARGET: the pooler's own CPU ticks
	case $1 in
	pgbun)
		local -a pp
		read -r -a pp <<<"$PGBUN_PIDS"
		proc_ticks 2 "${pp[@]}"
		;;
	pgbouncer) proc_ticks 2 "$BOUNCER_PID" ;;
	*) echo 0 ;;
	esac
}
# Busy and total ticks of the machine, and those of this benchmark (this shell with its waited-for
# children, the three postmasters with their backends, PgBouncer): the rest is other jobs.
cpu_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9; exit }' /proc/stat; }
own_ticks() {
	local -a pids=("$$" "$BOUNCER_PID")
	local d pm
	for d in "$N1" "$N2" "$N3"; do
		[ -s "$d/postmaster.pid" ] || continue
		pm=$(head -1 "$d/postmaster.pid")
		pids+=("$pm")
		# shellcheck disable=SC2207 # one pid per word
		pids+=($(ps -o pid= --ppid "$pm" 2>/dev/null || true))
	done
	proc_ticks 4 "${pids[@]}"
}

fmt() { if [ -z "$1" ]; then echo n/a; else printf "%.${2}f" "$1"; fi; }

# ---------------------------------------------------------------- reads
TARGETS=(direct pgbun pgbouncer)
addr_of() { case $1 in direct) echo "127.0.0.2 $NODE_PORT $DB" ;; pgbun) echo "127.0.0.1 $PGBUN_PORT ro" ;; pgbouncer) echo "127.0.0.1 $BOUNCER_PORT ro" ;; esac; }
declare -A TPS LAT PCPU SYSC SPREAD
OTHER=

# Where the pooler's server connections of `ro` are: "primary N, standby M".
spread() {
	local rows
	case $1 in
	pgbun) rows=$(q 127.0.0.1 "$ROUTER_PORT" postgres "select addr from pgbun.servers where database = 'ro'") ;;
	pgbouncer) rows=$(q 127.0.0.1 "$BOUNCER_PORT" pgbouncer "SHOW SERVERS" | awk -F'|' '$3 == "ro" { print $6 }') ;;
	*) return 0 ;;
	esac
	echo "primary $(grep -c '^127\.0\.0\.1$' <<<"$rows" || true), standby $(grep -c '^127\.0\.0\.2$' <<<"$rows" || true)"
}

run_one() { # run_one TARGET ROUND
	local t=$1 r=$2 logf="$LOGS/read-$1-$2.log" host port db p0 p1 c0 c1 o0 o1 tps lat ntx other
	read -r host port db <<<"$(addr_of "$t")"
	p0=$(pooler_ticks "$t")
	c0=$(cpu_ticks)
	o0=$(own_ticks)
	PGCONNECT_TIMEOUT=10 timeout -k 5 $((DURATION * 2 + 60)) "$PGBENCH" -n -S -M simple -T "$DURATION" -c "$CLIENTS" -j 2 \
		-h "$host" -p "$port" -U "$DBUSER" "$db" >"$logf" 2>&1 || die "pgbench through $t failed (round $r): $(grep -m1 -iE 'error|fatal|abort' "$logf" || tail -n 1 "$logf")"
	o1=$(own_ticks)
	c1=$(cpu_ticks)
	p1=$(pooler_ticks "$t")
	tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' "$logf" | head -1)
	lat=$(sed -n 's/^latency average = \([0-9.]*\) ms.*/\1/p' "$logf" | head -1)
	ntx=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$logf" | head -1)
	if [ -z "$tps" ] || [ -z "$ntx" ] || [ "$ntx" -eq 0 ]; then die "pgbench through $t (round $r) reported no transactions (see $logf)"; fi
	TPS[$t]="${TPS[$t]:-} $tps"
	LAT[$t]="${LAT[$t]:-} $lat"
	[ "$t" = direct ] || PCPU[$t]="${PCPU[$t]:-} $(awk -v d=$((p1 - p0)) -v n="$ntx" -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", d * 1e6 / hz / n }')"
	other=$(awk -v b0="${c0% *}" -v t0="${c0#* }" -v o0="$o0" -v b1="${c1% *}" -v t1="${c1#* }" -v o1="$o1" 'BEGIN {
		t = t1 - t0; x = (b1 - b0) - (o1 - o0); if (t <= 0) { print 0; exit } if (x < 0) x = 0; printf "%.0f", 100 * x / t }')
	OTHER="$OTHER $other"
	[ "$t" = direct ] || SPREAD[$t]=$(spread "$t")
	log "  round $r $t: tps $tps, latency $lat ms${SPREAD[$t]:+, server connections: ${SPREAD[$t]}}, other processes' CPU $other %"
}

log "reads: pgbench -S -M simple -c $CLIENTS, $ROUNDS round(s) x ${DURATION}s"
for r in $(seq "$ROUNDS"); do
	for i in 0 1 2; do run_one "${TARGETS[$(((i + r - 1) % 3))]}" "$r"; done
done

syscalls_per_txn() { # a separate 3-second run with strace -c -f attached to the pooler
	local t=$1 logf="$LOGS/syscalls-$1.log" slog="$LOGS/strace-$1.log" host port db st ntx calls p
	local -a sp=()
	read -r host port db <<<"$(addr_of "$t")"
	if [ "$t" = pgbun ]; then for p in $PGBUN_PIDS; do sp+=(-p "$p"); done; else sp=(-p "$BOUNCER_PID"); fi
	strace -c -f -o "$slog" "${sp[@]}" 2>/dev/null &
	st=$!
	sleep 1
	PGCONNECT_TIMEOUT=10 timeout -k 5 60 "$PGBENCH" -n -S -M simple -T 3 -c "$CLIENTS" -j 2 -h "$host" -p "$port" -U "$DBUSER" "$db" >"$logf" 2>&1 ||
		die "pgbench through $t under strace failed (see $logf)"
	kill -INT "$st" 2>/dev/null || true
	wait "$st" 2>/dev/null || true
	ntx=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$logf" | head -1)
	calls=$(awk '$NF == "total" { print $(NF-2) }' "$slog" 2>/dev/null || true)
	if [ -z "$ntx" ] || [ "$ntx" -eq 0 ] || [ -z "$calls" ]; then die "no system call count for $t (see $slog)"; fi
	SYSC[$t]=$(awk -v c="$calls" -v n="$ntx" 'BEGIN { printf "%.2f", c / n }')
	log "  $t: ${SYSC[$t]} system calls per transaction"
}
if [ "$SYSCALLS" = 1 ]; then
	log "system calls per transaction (strace -c, separate 3 s runs)"
	for t in pgbun pgbouncer; do syscalls_per_txn "$t"; done
fi

# ---------------------------------------------------------------- failover
WRITERS=(pgbun pgbouncer pgbouncer_rr direct)
writer_dsn() {
	case $1 in
	pgbun) echo "host=127.0.0.1 port=$PGBUN_PORT dbname=rw user=$DBUSER" ;;
	pgbouncer) echo "host=127.0.0.1 port=$BOUNCER_PORT dbname=rw user=$DBUSER" ;;
	pgbouncer_rr) echo "host=127.0.0.1 port=$BOUNCER_PORT dbname=rw_rr user=$DBUSER" ;;
	direct) echo "host=$HOSTS port=$NODE_PORT dbname=$DB user=$DBUSER target_session_attrs=read-write" ;;
	esac
}
writer_path() {
	case $1 in
	pgbun) echo "pgbun \`rw\`: host=$HOSTS target_session_attrs=read-write" ;;
	pgbouncer) echo "PgBouncer \`rw\`: host=$HOSTS load_balance_hosts=disable" ;;
	pgbouncer_rr) echo "PgBouncer \`rw_rr\`: host=$HOSTS (round-robin, its default)" ;;
	direct) echo "direct, libpq host=$HOSTS target_session_attrs=read-write (reconnects after an error)" ;;
	esac
}
now() { date +%s.%N; }
FO_ROWS=()
if [ "$FAILOVER" = 1 ]; then
	log "failover: writers through pgbun, PgBouncer (disable, round-robin) and libpq; primary stopped ($STOP_MODE) and standby promoted"
	rm -f "$TMPD/writers.stop"
	for w in "${WRITERS[@]}"; do
		"$PY" "$BENCH_DIR/failover_writer.py" write --dsn "$(writer_dsn "$w")" --label "$w" \
			--out "$LOGS/writer-$w.log" --stop "$TMPD/writers.stop" 2>"$LOGS/writer-$w.err" &
		WRITER_PIDS+=($!)
	done
	sleep "$FAILOVER_BEFORE"
	for w in "${WRITERS[@]}"; do
		grep -q ' ok ' "$LOGS/writer-$w.log" 2>/dev/null || [ "$w" = pgbouncer_rr ] ||
			die "writer $w has not written a row in ${FAILOVER_BEFORE}s before the failover (see $LOGS/writer-$w.log, $LOGS/writer-$w.err)"
	done
	T_STOP=$(now)
	as_pg "$PGBIN/pg_ctl" -D "$N1" -m "$STOP_MODE" -w -t 60 stop >>"$LOGS/pg_ctl.log" 2>&1 || die "pg_ctl stop of the primary failed"
	T_DOWN=$(now)
	T_PROM=$(now)
	as_pg "$PGBIN/pg_ctl" -D "$N2" -w -t 60 promote >>"$LOGS/pg_ctl.log" 2>&1 || die "pg_ctl promote of the standby failed"
	T_PROM_DONE=$(now)
	[ "$(q 127.0.0.2 "$NODE_PORT" "$DB" "select pg_is_in_recovery()")" = f ] || die "the standby is still in recovery after pg_ctl promote"
	log "  primary stopped in $(awk -v a="$T_STOP" -v b="$T_DOWN" 'BEGIN { printf "%.3f", b - a }') s, standby promoted in $(awk -v a="$T_PROM" -v b="$T_PROM_DONE" 'BEGIN { printf "%.3f", b - a }') s"
	sleep "$FAILOVER_AFTER"
	T_END=$(now)
	touch "$TMPD/writers.stop"
	for p in "${WRITER_PIDS[@]}"; do wait "$p" || die "a writer exited with an error (see $LOGS/writer-*.err)"; done
	WRITER_PIDS=()
	specs=()
	for w in "${WRITERS[@]}"; do
		found=$(q 127.0.0.2 "$NODE_PORT" "$DB" "select count(*) from failover_log where via = '$w'")
		specs+=("$w=$LOGS/writer-$w.log=$found")
	done
	mapfile -t FO_ROWS < <("$PY" "$BENCH_DIR/failover_writer.py" summarize --times "$T_STOP" "$T_DOWN" "$T_PROM" "$T_PROM_DONE" "$T_END" "${specs[@]}")
	[ "${#FO_ROWS[@]}" = "${#WRITERS[@]}" ] || die "the failover summary has ${#FO_ROWS[@]} rows for ${#WRITERS[@]} writers"
	# when pgbun's worker saw the promoted standby report itself as a primary (its log)
	T_SEEN=
	seen=$(grep -m1 "pgbun: host 127.0.0.2 port $NODE_PORT is now a primary" "$N3.log" | cut -d' ' -f1-3 || true)
	[ -z "$seen" ] || T_SEEN=$(date -d "$seen" +%s.%N)
	HOSTS_AFTER=$(q 127.0.0.1 "$ROUTER_PORT" postgres "select host || ':' || port || ' ' || role || ' ' || state from pgbun.hosts where database = 'rw' order by host_index" | paste -sd ';' | sed 's/;/; /g')
fi
LOAD_END=$(loadavg)

# ---------------------------------------------------------------- report
declare -A MT ML MC
for t in "${TARGETS[@]}"; do
	MT[$t]=$(median <<<"${TPS[$t]}")
	ML[$t]=$(median <<<"${LAT[$t]}")
	MC[$t]=$(median <<<"${PCPU[$t]:-}")
done
say "## Reads: pgbench -S -M simple through a remote standby, $CLIENTS clients, median of $ROUNDS round(s) x ${DURATION}s"
say ""
say "| target | tps | latency ms | pooler CPU us/txn | syscalls/txn | pooler's server connections at the end |"
say "|---|---:|---:|---:|---:|---|"
say "| direct to the standby | $(fmt "${MT[direct]}" 1) | $(fmt "${ML[direct]}" 3) | - | - | - |"
say "| pgbun \`ro\` (target_session_attrs=standby) | $(fmt "${MT[pgbun]}" 1) | $(fmt "${ML[pgbun]}" 3) | $(fmt "${MC[pgbun]}" 1) | ${SYSC[pgbun]:-n/a} | ${SPREAD[pgbun]} |"
say "| PgBouncer \`ro\` (same host list, round-robin) | $(fmt "${MT[pgbouncer]}" 1) | $(fmt "${ML[pgbouncer]}" 3) | $(fmt "${MC[pgbouncer]}" 1) | ${SYSC[pgbouncer]:-n/a} | ${SPREAD[pgbouncer]} |"
say ""
line="Ratios: tps pgbun/PgBouncer $(ratio "${MT[pgbun]}" "${MT[pgbouncer]}"), pgbun/direct $(ratio "${MT[pgbun]}" "${MT[direct]}");"
line="$line latency pgbun/PgBouncer $(ratio "${ML[pgbun]}" "${ML[pgbouncer]}"); pooler CPU per transaction pgbun/PgBouncer $(ratio "${MC[pgbun]}" "${MC[pgbouncer]}")"
[ -z "${SYSC[pgbun]:-}" ] || line="$line; system calls per transaction pgbun/PgBouncer $(ratio "${SYSC[pgbun]}" "${SYSC[pgbouncer]}")"
say "$line."
line="Per round (tps):"
for t in "${TARGETS[@]}"; do line="$line $t$(for v in ${TPS[$t]}; do printf ' %.0f' "$v"; done);"; done
say "${line%;}."
say "CPU used by processes outside the benchmark during the runs (% of $(nproc) CPUs, run order):$OTHER."
say "Both poolers reach the nodes over TCP on loopback; PgBouncer has no target_session_attrs, so its"
say "\`ro\` entry sends new server connections to both hosts in turn (the last column); pgbun's goes to the standby only."
say ""
if [ "$FAILOVER" = 1 ]; then
	say "## Failover: primary stopped (pg_ctl stop -m $STOP_MODE), standby promoted (pg_ctl promote)"
	say ""
	say "Writers commit one row per transaction (autocommit INSERT, 5 ms pause, 20 ms after an error; an attempt"
	say "is cancelled after 5 s), all four at once through the same failover; times are seconds."
	say "The primary took $(awk -v a="$T_STOP" -v b="$T_DOWN" 'BEGIN { printf "%.3f", b - a }') s to stop," \
		"the promotion $(awk -v a="$T_PROM" -v b="$T_PROM_DONE" 'BEGIN { printf "%.3f", b - a }') s (pg_ctl promote -w); writers ran ${FAILOVER_BEFORE} s before and ${FAILOVER_AFTER} s after."
	say ""
	say "| writer | writes ok / failed | failed before the stop | failed in the outage | failed after recovery | last failed -> first ok | last ok before stop -> first ok after | first ok after pg_ctl promote | rows on the new primary | first errors in the outage |"
	say "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"
	for row in "${FO_ROWS[@]}"; do
		IFS='|' read -r w nok nfail fbefore fwin fafter gfail gok gprom none errs found <<<"$row"
		say "| $(writer_path "$w") | $nok / $nfail | $fbefore | $fwin | $fafter | $gfail | $gok | $gprom${none:+ ($none)} | $found | ${errs//|//} |"
	done
	say ""
	say "- \"first ok\" is the first write whose attempt began after the old primary was down, so it was"
	say "  committed on the promoted standby; \"failed after recovery\" counts errors after that first success."
	say "- \"rows on the new primary\" counts the writer's rows there, against its successful writes (clean"
	say "  stop: all of them replicated)."
	say "- pgbun's view of the \`rw\` hosts afterwards (pgbun.hosts): ${HOSTS_AFTER:-n/a}."
	if [ -n "$T_SEEN" ]; then
		say "- pgbun logged \"host 127.0.0.2 port $NODE_PORT is now a primary\" $(awk -v a="$T_PROM_DONE" -v b="$T_SEEN" 'BEGIN { printf "%.3f", b - a }') s after"
		say "  pg_ctl promote returned (with no primary, pgbun asks the standby for its role once per server_login_retry = ${LOGIN_RETRY}s)."
	fi
	say "- PgBouncer has no target_session_attrs and cannot tell a primary from a standby. With"
	say "  \`load_balance_hosts=disable\` it keeps the first host until a connection to it fails, then takes the"
	say "  next one; that follows this promotion because the next host is the one promoted (with a third node"
	say "  or the other order it would not). With round-robin, its default, a new server connection may go to"
	say "  the standby at any time, and the writes it carries fail with 25006 (read-only transaction), before"
	say "  a failover as well as during it (\"failed before the stop\" depends on where its first connection went)."
	say ""
fi
say "load average at the end: $LOAD_END"

if mkdir -p "$BENCH_DIR/results" 2>/dev/null && cp "$REPORT" "$BENCH_DIR/results/two-node-latest.txt" 2>/dev/null; then
	log "report written to bench/results/two-node-latest.txt"
fi
