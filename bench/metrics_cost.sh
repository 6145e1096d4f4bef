#!/usr/bin/env bash
# bench/metrics_cost.sh - what the metrics endpoint costs the pooler: pgbench -S
# through a pgbun transaction pool with pgbun.metrics_port off, then on and
# scraped every second (curl), alternating for ROUNDS rounds of DURATION s in
# one throwaway cluster, printing the worker's CPU time (utime + stime from
# /proc) per transaction for each run. A benchmark, not a test: compare the
# numbers, expect them within noise.
#
# Environment: ROUNDS=2 DURATION=15 CLIENTS=8 PG_CONFIG=pg_config
#   SERVER_PORT=25400 PGBUN_PORT=26400 METRICS_PORT=26401
# Run as an ordinary user (PostgreSQL refuses root) with pgbun installed.
set -euo pipefail

ROUNDS=${ROUNDS:-2}
DURATION=${DURATION:-15}
CLIENTS=${CLIENTS:-8}
SERVER_PORT=${SERVER_PORT:-25400}
PGBUN_PORT=${PGBUN_PORT:-26400}
METRICS_PORT=${METRICS_PORT:-26401}
BIN=$("${PG_CONFIG:-pg_config}" --bindir)
DIR=$(mktemp -d /tmp/pgbun-metrics-cost.XXXXXX)
SCRAPER=

cleanup() {
	[ -n "$SCRAPER" ] && kill "$SCRAPER" 2>/dev/null || true
	"$BIN/pg_ctl" -D "$DIR/data" -m immediate stop >/dev/null 2>&1 || true
	rm -rf "$DIR"
}
trap cleanup EXIT

"$BIN/initdb" -D "$DIR/data" -A trust >/dev/null
cat >>"$DIR/data/postgresql.conf" <<CONF
port = $SERVER_PORT
unix_socket_directories = '$DIR'
listen_addresses = ''
fsync = off
shared_preload_libraries = 'pgbun'
pgbun.port = $PGBUN_PORT
pgbun.listen_addresses = '127.0.0.1'
pgbun.pool_mode = transaction
pgbun.auth_type = trust
pgbun.log_connections = off
pgbun.log_disconnections = off
pgbun.stats_period = 0
CONF
"$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/log" -w start >/dev/null
"$BIN/pgbench" -h "$DIR" -p "$SERVER_PORT" -i -s 5 postgres >/dev/null 2>&1

sql() { "$BIN/psql" -h "$DIR" -p "$SERVER_PORT" -XAtq "$@" postgres; }
WORKER=$(sql -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pgbun worker'")
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$WORKER/stat"; }
hz=$(getconf CLK_TCK)

run() {
	local label=$1 c0 c1 out tx
	c0=$(cpu_ticks)
	out=$("$BIN/pgbench" -h 127.0.0.1 -p "$PGBUN_PORT" -c "$CLIENTS" -j 2 -T "$DURATION" -S -n postgres 2>&1)
	c1=$(cpu_ticks)
	tx=$(echo "$out" | awk '/number of transactions actually processed/ { split($NF, a, "/"); print a[1] }')
	awk -v l="$label" -v tx="$tx" -v t=$((c1 - c0)) -v hz="$hz" \
		'BEGIN { printf "%-22s %9d tx  %8.2f us pooler CPU per transaction\n", l, tx, t * 1e6 / hz / tx }'
}

set_port() {
	sql -c "ALTER SYSTEM SET pgbun.metrics_port = $1" -c "SELECT pg_reload_conf()" >/dev/null
	sleep 1
}

for round in $(seq "$ROUNDS"); do
	set_port 0
	run "round $round: off"
	set_port "$METRICS_PORT"
	(while true; do curl -s -o /dev/null "http://127.0.0.1:$METRICS_PORT/metrics"; sleep 1; done) &
	SCRAPER=$!
	run "round $round: on, scraped"
	kill "$SCRAPER"
	SCRAPER=
done
