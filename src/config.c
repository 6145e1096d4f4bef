/*
 * config.c - the pgbun.* GUCs: definitions, defaults, check hooks.
 *
 * Names and defaults follow PgBouncer where it has the setting, so a
 * pgbouncer.ini translates line by line. Everything but pgbun.workers is
 * PGC_SIGHUP: pg_reload_conf() changes it for the live pools (worker.c
 * applies the difference after ProcessConfigFile). Check hooks refuse bad
 * values at reload with a clear message so the old value stays in force.
 */
#include "postgres.h"

#include <limits.h>

#include "utils/guc.h"

#include "config.h"

char	   *pgbun_listen_addresses = NULL;
int			pgbun_port = 6432;
char	   *pgbun_unix_socket_directories = NULL;
int			pgbun_workers = 1;
int			pgbun_pool_mode = POOL_MODE_SESSION;
int			pgbun_auth_type = AUTH_TYPE_SCRAM;
int			pgbun_default_pool_size = 20;
int			pgbun_min_pool_size = 0;
int			pgbun_max_client_conn = 100;
int			pgbun_max_db_connections = 0;
int			pgbun_max_user_connections = 0;
char	   *pgbun_server_reset_query = NULL;
char	   *pgbun_server_host = NULL;
int			pgbun_server_port = 0;
int			pgbun_server_connect_timeout = 15000;
int			pgbun_server_login_retry = 15000;
int			pgbun_server_idle_timeout = 600000;
int			pgbun_server_lifetime = 3600000;
int			pgbun_client_login_timeout = 60000;
int			pgbun_client_idle_timeout = 0;
int			pgbun_query_wait_timeout = 120000;
int			pgbun_max_packet_size = INT_MAX;
bool		pgbun_log_connections = true;
bool		pgbun_log_disconnections = true;

static const struct config_enum_entry pool_mode_options[] = {
	{"session", POOL_MODE_SESSION, false},
	{"transaction", POOL_MODE_TRANSACTION, false},
	{"statement", POOL_MODE_STATEMENT, false},
	{NULL, 0, false}
};

static const struct config_enum_entry auth_type_options[] = {
	{"scram-sha-256", AUTH_TYPE_SCRAM, false},
	{"md5", AUTH_TYPE_MD5, false},
	{"trust", AUTH_TYPE_TRUST, false},
	{NULL, 0, false}
};

const char *
pool_mode_name(int mode)
{
	switch (mode)
	{
		case POOL_MODE_SESSION:
			return "session";
		case POOL_MODE_TRANSACTION:
			return "transaction";
		case POOL_MODE_STATEMENT:
			return "statement";
	}
	return "unknown";
}

/* Only session pooling exists so far: refuse the others instead of pretending. */
static bool
check_pool_mode(int *newval, void **extra, GucSource source)
{
	if (*newval != POOL_MODE_SESSION)
	{
		GUC_check_errmsg("pgbun: pool_mode \"%s\" is not supported by this version of pgbun",
						 pool_mode_name(*newval));
		GUC_check_errhint("Use pgbun.pool_mode = session.");
		return false;
	}
	return true;
}

/* A reset query is sent as one simple Query: it must not be huge or contain NUL tricks. */
static bool
check_reset_query(char **newval, void **extra, GucSource source)
{
	if (*newval && strlen(*newval) > 4096)
	{
		GUC_check_errmsg("pgbun: server_reset_query is longer than 4096 bytes");
		return false;
	}
	return true;
}

void
pgbun_define_gucs(void)
{
	DefineCustomStringVariable("pgbun.listen_addresses",
							   "Addresses pgbun listens on (comma-separated; '*' for all, '' for Unix socket only).",
							   NULL, &pgbun_listen_addresses, "localhost",
							   PGC_SIGHUP, GUC_LIST_INPUT, NULL, NULL, NULL);
	DefineCustomIntVariable("pgbun.port", "TCP port (and Unix socket name) pgbun listens on.",
							NULL, &pgbun_port, 6432, 1, 65535,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("pgbun.unix_socket_directories",
							   "Directories for pgbun's Unix socket; empty means the server's unix_socket_directories.",
							   NULL, &pgbun_unix_socket_directories, "",
							   PGC_SIGHUP, GUC_LIST_INPUT, NULL, NULL, NULL);
	DefineCustomIntVariable("pgbun.workers", "Number of pooler background workers (0: pooler off, SQL functions only).",
							NULL, &pgbun_workers, 1, 0, 64,
							PGC_POSTMASTER, 0, NULL, NULL, NULL);
	DefineCustomEnumVariable("pgbun.pool_mode", "When a server connection goes back to the pool.",
							 NULL, &pgbun_pool_mode, POOL_MODE_SESSION, pool_mode_options,
							 PGC_SIGHUP, 0, check_pool_mode, NULL, NULL);
	DefineCustomEnumVariable("pgbun.auth_type", "How clients authenticate to pgbun.",
							 "scram-sha-256 and md5 check the role's verifier in pg_authid.",
							 &pgbun_auth_type, AUTH_TYPE_SCRAM, auth_type_options,
							 PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("pgbun.default_pool_size", "Server connections per (database, user) pool.",
							NULL, &pgbun_default_pool_size, 20, 1, 10000,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("pgbun.min_pool_size", "Server connections kept open per pool even when idle.",
							NULL, &pgbun_min_pool_size, 0, 0, 10000,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("pgbun.max_client_conn", "Most client connections pgbun accepts (all workers).",
							"Raising it above the value at server start needs a restart (shared memory is sized by it).",
							&pgbun_max_client_conn, 100, 1, 1000000,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("pgbun.max_db_connections", "Most server connections per database (0: no limit).",
							NULL, &pgbun_max_db_connections, 0, 0, 100000,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("pgbun.max_user_connections", "Most server connections per user (0: no limit).",
							NULL, &pgbun_max_user_connections, 0, 0, 100000,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("pgbun.server_reset_query", "Query run on a server connection when a client releases it.",
							   NULL, &pgbun_server_reset_query, "DISCARD ALL",
							   PGC_SIGHUP, 0, check_reset_query, NULL, NULL);
	DefineCustomStringVariable("pgbun.server_host",
							   "Where pgbun's server connections go: empty for the local server's Unix socket, else a host name, address or socket directory.",
							   NULL, &pgbun_server_host, "",
							   PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("pgbun.server_port", "Port of the server pgbun connects to (0: the local server's port).",
							NULL, &pgbun_server_port, 0, 0, 65535,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("pgbun.server_connect_timeout", "Longest a server connection may take to connect and log in.",
							NULL, &pgbun_server_connect_timeout, 15000, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("pgbun.server_login_retry", "Wait after a failed server login before trying again.",
							NULL, &pgbun_server_login_retry, 15000, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("pgbun.server_idle_timeout", "Close server connections idle longer than this (0: never).",
							NULL, &pgbun_server_idle_timeout, 600000, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("pgbun.server_lifetime", "Close server connections older than this once released (0: never).",
							NULL, &pgbun_server_lifetime, 3600000, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("pgbun.client_login_timeout", "Close clients that do not finish logging in within this time.",
							NULL, &pgbun_client_login_timeout, 60000, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("pgbun.client_idle_timeout", "Close clients idle longer than this (0: never).",
							NULL, &pgbun_client_idle_timeout, 0, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("pgbun.query_wait_timeout", "Longest a query may wait for a server connection (0: forever).",
							NULL, &pgbun_query_wait_timeout, 120000, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("pgbun.max_packet_size", "Largest protocol message pgbun accepts from a client.",
							NULL, &pgbun_max_packet_size, INT_MAX, 1024, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_BYTE, NULL, NULL, NULL);
	DefineCustomBoolVariable("pgbun.log_connections", "Log each successful client login.",
							 NULL, &pgbun_log_connections, true,
							 PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomBoolVariable("pgbun.log_disconnections", "Log each client disconnection with its reason.",
							 NULL, &pgbun_log_disconnections, true,
							 PGC_SIGHUP, 0, NULL, NULL, NULL);

	MarkGUCPrefixReserved("pgbun");
}
