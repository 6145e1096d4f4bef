#!/usr/bin/env bash
# test/demo.sh - `make demo`: a throwaway cluster with pgbun, pgbench through it.
#
#   test/demo.sh [start]   install missing packages, build, install, (re)create the
#                          cluster, run pgbench through pgbun, leave it running
#   test/demo.sh stop      stop it (`make demo-stop`)
#
# The cluster lives in $PGBUN_DEMO_DIR (default /tmp/pgbun-demo), owned by an
# unprivileged user (as root: postgres, or a created pgbun user), the server on
# port $PGBUN_DEMO_PGPORT (5499) and pgbun on $PGBUN_DEMO_PORT (6432). Role and
# database `demo`, password $PGBUN_DEMO_PASSWORD (demo), stored as a SCRAM
# verifier. pg_hba.conf: trust only for the bootstrap superuser on the local
# socket, scram-sha-256 for everyone else, so pgbun's own server logins (as the
# client's role, SCRAM pass-through) work. Running start again starts afresh.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=test/lib.sh
. "$ROOT/test/lib.sh"

DEMO_DIR=${PGBUN_DEMO_DIR:-/tmp/pgbun-demo}
SERVER_PORT=${PGBUN_DEMO_PGPORT:-5499}
POOL_PORT=${PGBUN_DEMO_PORT:-6432}
DEMO_PASSWORD=${PGBUN_DEMO_PASSWORD:-demo}
BENCH_CLIENTS=${PGBUN_DEMO_CLIENTS:-20}
BENCH_SECONDS=${PGBUN_DEMO_SECONDS:-5}
DATA=$DEMO_DIR/data
MARKER=$DEMO_DIR/.pgbun-demo # only a directory carrying it is ever deleted

export LC_ALL=C.UTF-8 LANG=C.UTF-8
# Connection settings come from the command lines below, never the caller's environment.
unset PGHOST PGHOSTADDR PGPORT PGUSER PGDATABASE PGPASSWORD PGSERVICE PGOPTIONS PGSSLMODE

die() {
	pgbun_warn "$*"
	exit 1
}

# True when something accepts TCP connections on 127.0.0.1:$1.
port_in_use() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Run a command as the owner of the demo cluster ($DEMO_USER).
as_owner() {
	if pgbun_is_root && [ "$DEMO_USER" != root ]; then
		runuser -u "$DEMO_USER" -- "$@"
	else
		"$@"
	fi
}

# Stop the demo server if one is running; the files stay until the next start.
stop_demo() {
	local bindir
	[ -f "$DATA/postmaster.pid" ] || return 0
	DEMO_USER=$(stat -c %U "$DATA")
	if ! pgbun_is_root && [ "$DEMO_USER" != "$(id -un)" ]; then
		die "$DEMO_DIR belongs to $DEMO_USER: stop it as root or as $DEMO_USER"
	fi
	bindir=$("$(pgbun_pg_config)" --bindir)
	pgbun_say "stopping the demo server in $DATA"
	as_owner "$bindir/pg_ctl" -D "$DATA" -m fast -w -t 60 stop || true
}

if [ "${1:-start}" = stop ]; then
	if [ ! -f "$DATA/postmaster.pid" ]; then
		pgbun_say "no demo running in $DEMO_DIR"
	else
		stop_demo
		pgbun_say "stopped; files left in $DEMO_DIR (make demo starts afresh)"
	fi
	exit 0
elif [ "${1:-start}" != start ]; then
	die "usage: $0 [start|stop]"
fi

trap 'pgbun_warn "make demo failed; server log (if it got that far): $DEMO_DIR/server.log"' ERR

# --- packages, build, install ---------------------------------------------
pgbun_install_packages "${PGBUN_BUILD_PACKAGES[@]}" || die "could not install packages"
PG_CONFIG=$(pgbun_pg_config)
BINDIR=$("$PG_CONFIG" --bindir) || die "no pg_config: install postgresql-server-dev-$PGBUN_PG_MAJOR"
pgbun_say "building pgbun"
make PG_CONFIG="$PG_CONFIG"
pgbun_say "installing pgbun"
pgbun_as_root make install PG_CONFIG="$PG_CONFIG"

# --- a fresh cluster ---------------------------------------------------------
stop_demo
if [ -e "$DEMO_DIR" ]; then
	[ -f "$MARKER" ] || die "$DEMO_DIR exists and is not a pgbun demo: remove it or set PGBUN_DEMO_DIR"
	rm -rf "$DEMO_DIR" || die "cannot remove the old demo in $DEMO_DIR"
fi
for port in "$SERVER_PORT" "$POOL_PORT"; do
	if port_in_use "$port"; then
		die "port $port is in use (a system pgbouncer?): free it, or set PGBUN_DEMO_PGPORT / PGBUN_DEMO_PORT"
	fi
done

pgbun_setup_user
DEMO_USER=$PGBUN_USER
mkdir -p "$DEMO_DIR"
touch "$MARKER"
chown "$DEMO_USER": "$DEMO_DIR" "$MARKER"
pgbun_say "creating a cluster in $DATA (owner $DEMO_USER)"
as_owner "$BINDIR/initdb" -D "$DATA" --locale=C.UTF-8 -E UTF8 --no-sync \
	--auth-local=trust --auth-host=scram-sha-256 >"$DEMO_DIR/initdb.log" ||
	{ cat "$DEMO_DIR/initdb.log"; die "initdb failed"; }

as_owner tee -a "$DATA/postgresql.conf" >/dev/null <<EOF

# --- pgbun demo ---
port = $SERVER_PORT
listen_addresses = 'localhost'
unix_socket_directories = '$DEMO_DIR'
password_encryption = 'scram-sha-256'
shared_preload_libraries = 'pgbun'
pgbun.port = $POOL_PORT
pgbun.listen_addresses = 'localhost'
pgbun.default_pool_size = 20
pgbun.max_client_conn = 200
EOF

# pgbun logs in to this server over its Unix socket as the client's role: those
# logins need scram-sha-256 (or md5) on `local`, not peer. Trust is kept for the
# bootstrap superuser on the socket only, for administration.
as_owner tee "$DATA/pg_hba.conf" >/dev/null <<EOF
# TYPE  DATABASE  USER          ADDRESS        METHOD
local   all       $DEMO_USER                   trust
local   all       all                          scram-sha-256
host    all       all           127.0.0.1/32   scram-sha-256
host    all       all           ::1/128        scram-sha-256
EOF

pgbun_say "starting the server on port $SERVER_PORT, pgbun on $POOL_PORT"
if ! as_owner "$BINDIR/pg_ctl" -D "$DATA" -l "$DEMO_DIR/server.log" -w -t 60 start >/dev/null; then
	tail -n 40 "$DEMO_DIR/server.log" >&2 || true
	die "the server did not start (log: $DEMO_DIR/server.log)"
fi

# The postmaster starts pgbun's worker just after it accepts connections: wait
# (bounded) for pgbun's port.
for _ in $(seq 1 100); do
	port_in_use "$POOL_PORT" && break
	sleep 0.1
done
if ! port_in_use "$POOL_PORT"; then
	tail -n 40 "$DEMO_DIR/server.log" >&2 || true
	die "pgbun is not listening on port $POOL_PORT (log: $DEMO_DIR/server.log)"
fi

# Administration: the bootstrap superuser, straight to the server's socket.
admin_psql() {
	"$BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -h "$DEMO_DIR" -p "$SERVER_PORT" -U "$DEMO_USER" "$@"
}

pgbun_say "creating role demo (SCRAM password) and database demo"
admin_psql -d postgres -v pw="$DEMO_PASSWORD" <<'EOF'
CREATE ROLE demo LOGIN PASSWORD :'pw';
CREATE DATABASE demo OWNER demo;
EOF
admin_psql -d demo -c 'CREATE EXTENSION pgbun'

# --- pgbench through pgbun ---------------------------------------------------
export PGPASSWORD=$DEMO_PASSWORD
pgbun_say "pgbench -i through pgbun (127.0.0.1:$POOL_PORT)"
"$BINDIR/pgbench" -h 127.0.0.1 -p "$POOL_PORT" -U demo -i -q demo
pgbun_say "pgbench -S -c $BENCH_CLIENTS -T $BENCH_SECONDS through pgbun"
# A failed run is reported at the end, after the views show what pgbun saw.
BENCH_OK=1
"$BINDIR/pgbench" -h 127.0.0.1 -p "$POOL_PORT" -U demo -n -S \
	-c "$BENCH_CLIENTS" -j 2 -T "$BENCH_SECONDS" demo || BENCH_OK=0
unset PGPASSWORD

pgbun_say "SELECT * FROM pgbun.pools"
admin_psql -d demo -P pager=off -c 'SELECT * FROM pgbun.pools'
pgbun_say "SELECT * FROM pgbun.stats"
admin_psql -d demo -P pager=off -x -c 'SELECT * FROM pgbun.stats'

cat <<EOF

pgbun demo is running (files in $DEMO_DIR, server log $DEMO_DIR/server.log).

  Through pgbun (port $POOL_PORT):
    psql "host=127.0.0.1 port=$POOL_PORT user=demo password=$DEMO_PASSWORD dbname=demo"

  Pool state, as the superuser straight to the server (port $SERVER_PORT):
    psql -h $DEMO_DIR -p $SERVER_PORT -U $DEMO_USER -d demo -c 'SELECT * FROM pgbun.pools'

  Stop it:   make demo-stop
  Again:     make demo
EOF

if [ "$BENCH_OK" -ne 1 ]; then
	pgbun_warn "pgbench through pgbun reported errors (above); server log: $DEMO_DIR/server.log"
	exit 1
fi
