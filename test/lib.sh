# shellcheck shell=bash disable=SC2034
# test/lib.sh - shell helpers shared by test/run_all.sh, test/demo.sh and .ci/run.
#
# Sourced, never run. Owns: the Debian package lists the project needs, installing
# the missing ones (apt-get as root, sudo apt-get otherwise), finding pg_config,
# running commands as root (install) or as an unprivileged user (PostgreSQL
# refuses to run as root), and staging a copy of the tree that such a user owns.
# bash only; callers choose their own `set` options.

# Debian packages, by purpose. Extend these lists (not the scripts) when a suite
# needs more, e.g. PGBUN_TEST_PACKAGES+=(nodejs npm) for the client suite.
# Building and running pgbun (make demo needs only these):
# libkrb5-dev: PostgreSQL 15's libpq-be.h includes gssapi/gssapi.h (Debian builds the
# server with GSSAPI), and postgresql-server-dev-15 does not depend on it.
# libc-ares-dev: DNS for server host names inside the worker's loop (src/dns.c).
PGBUN_BUILD_PACKAGES=(postgresql-15 postgresql-server-dev-15 libssl-dev libkrb5-dev libc-ares-dev make gcc)
# Running the test suites (TAP needs IPC::Run; pgbouncer for comparisons/bench;
# clang with its libFuzzer/sanitizer runtimes for `make fuzz`):
# prometheus: promtool check metrics (t/300) and a real Prometheus server (t/302).
# chromium: the status page rendered headless (t/304; runs with --no-sandbox, as
# root or not). valgrind: the whole cluster under memcheck (t/380).
PGBUN_TEST_PACKAGES=(libipc-run-perl pgbouncer libpq-dev clang libclang-rt-14-dev prometheus chromium valgrind)
# Client libraries of t/210-t/212 (test/python, test/java): asyncpg, psycopg 3
# (for /usr/bin/python3), pgjdbc and a JDK to compile its workload with.
PGBUN_TEST_PACKAGES+=(python3 python3-asyncpg python3-psycopg libpostgresql-jdbc-java default-jdk-headless)
# A real failover manager for t/325 (test/ha: one etcd, three Patroni nodes).
PGBUN_TEST_PACKAGES+=(patroni etcd-server etcd-client curl procps)
# Node.js and npm for the client-library test (t/140, test/node): the machine's
# own if it has them (from any source; Debian's npm would clash with a Node.js
# that bundles npm), else Debian's.
if ! command -v node >/dev/null 2>&1; then
	PGBUN_TEST_PACKAGES+=(nodejs npm)
elif ! command -v npm >/dev/null 2>&1; then
	PGBUN_TEST_PACKAGES+=(npm)
fi

# The PostgreSQL major version pgbun is built and tested against here.
PGBUN_PG_MAJOR=${PGBUN_PG_MAJOR:-15}

# Print a step header (stdout, so it interleaves correctly with make's output).
pgbun_say() {
	printf '==> %s\n' "$*"
}

# Print an error to stderr.
pgbun_warn() {
	printf 'pgbun: %s\n' "$*" >&2
}

# True when running as root.
pgbun_is_root() {
	[ "$(id -u)" -eq 0 ]
}

# Run a command as root: directly when we are root, else through sudo.
pgbun_as_root() {
	if pgbun_is_root; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo "$@"
	else
		pgbun_warn "need root for: $* (run as root or install sudo)"
		return 1
	fi
}

# Print the packages among the arguments that are not installed (one per line).
pgbun_missing_packages() {
	local p
	for p in "$@"; do
		if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
			printf '%s\n' "$p"
		fi
	done
}

# Install those of the given Debian packages that are missing. Runs apt-get
# update only when something is missing; noninteractive; sudo when not root.
pgbun_install_packages() {
	local missing
	if ! command -v dpkg-query >/dev/null 2>&1; then
		pgbun_warn "not a Debian system (no dpkg-query): install these yourself: $*"
		return 0
	fi
	mapfile -t missing < <(pgbun_missing_packages "$@")
	if [ "${#missing[@]}" -eq 0 ]; then
		return 0
	fi
	pgbun_say "installing Debian packages: ${missing[*]}"
	pgbun_as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q </dev/null || return 1
	pgbun_as_root env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null || return 1
}

# Print the pg_config to build and test with: $PG_CONFIG if set, else the
# PostgreSQL $PGBUN_PG_MAJOR one (Debian's /usr/bin/pg_config picks the newest
# server-dev installed, which may be another major version), else pg_config.
pgbun_pg_config() {
	local p=/usr/lib/postgresql/$PGBUN_PG_MAJOR/bin/pg_config
	if [ -n "${PG_CONFIG:-}" ]; then
		printf '%s\n' "$PG_CONFIG"
	elif [ -x "$p" ]; then
		printf '%s\n' "$p"
	else
		printf 'pg_config\n'
	fi
}

# Choose the unprivileged user that runs PostgreSQL servers and set PGBUN_USER to
# its name and PGBUN_AS_USER to a command prefix that runs a command as it
# (environment kept: PATH, PG_CONFIG, locale). Not root: ourselves, empty prefix.
# Root: `postgres` if it exists, else a system user `pgbun`, created here.
pgbun_setup_user() {
	PGBUN_AS_USER=()
	if ! pgbun_is_root; then
		PGBUN_USER=$(id -un)
		return 0
	fi
	if getent passwd postgres >/dev/null; then
		PGBUN_USER=postgres
	else
		PGBUN_USER=pgbun
		if ! getent passwd pgbun >/dev/null; then
			useradd --system --user-group --create-home --home-dir /var/lib/pgbun \
				--shell /bin/bash pgbun || return 1
		fi
	fi
	PGBUN_AS_USER=(runuser -u "$PGBUN_USER" --)
}

# Copy the source tree $1 into a fresh temporary directory owned by $PGBUN_USER (see
# pgbun_setup_user)
# and print its path. Build outputs come along (timestamps kept, so nothing is
# rebuilt); git metadata and old test output do not.
pgbun_stage_tree() {
	local src=$1 dst
	dst=$(mktemp -d "${TMPDIR:-/tmp}/pgbun-test.XXXXXX") || return 1
	tar -C "$src" -cf - --exclude=./.git --exclude=./tmp_check \
		--exclude=./tmp_check_regress --exclude=./results --exclude=./log \
		--exclude=./regression.diffs --exclude=./regression.out . |
		tar -C "$dst" -xpf - || return 1
	chown -R "$PGBUN_USER": "$dst" || return 1
	printf '%s\n' "$dst"
}

# Install the npm packages of a directory with a package.json and its
# package-lock.json (test/node for t/140, test/orm for t/360) with `npm ci`
# into $1/node_modules, unless they are there already for this lock file,
# Node.js version and npm options (a stamp file records them). Further
# arguments go to npm ci (test/orm: --ignore-scripts). npm's cache (~/.npm)
# keeps a reinstall cheap. Run it before pgbun_stage_tree, so that
# node_modules comes along.
pgbun_install_node_clients() {
	local dir=$1 stamp want
	shift
	stamp=$dir/node_modules/.pgbun-installed
	if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
		pgbun_warn "node or npm not found: install Debian's nodejs and npm"
		return 1
	fi
	want="$(cat "$dir/package.json" "$dir/package-lock.json" | sha256sum | cut -d' ' -f1) node $(node --version)${*:+ $*}"
	if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
		pgbun_say "npm packages in $dir/node_modules are up to date"
		return 0
	fi
	rm -f "$stamp"
	(cd "$dir" && npm ci --no-audit --no-fund --no-update-notifier --prefer-offline --loglevel=warn "$@" </dev/null) || return 1
	printf '%s\n' "$want" >"$stamp"
}

# Stop, by pid file and with pg_ctl, every PostgreSQL server still running out of
# a data directory under $1 (left behind by a test that was killed or crashed).
pgbun_stop_servers_under() {
	local root=$1 pidfile datadir pg_ctl
	pg_ctl="$("$(pgbun_pg_config)" --bindir 2>/dev/null)/pg_ctl"
	[ -d "$root" ] || return 0
	while IFS= read -r pidfile; do
		datadir=$(dirname "$pidfile")
		pgbun_warn "stopping a server left running in $datadir"
		"${PGBUN_AS_USER[@]}" "$pg_ctl" -D "$datadir" -m immediate -w stop >/dev/null 2>&1 || true
	done < <(find "$root" -name postmaster.pid -type f 2>/dev/null)
}
