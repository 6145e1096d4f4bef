/*
 * config.c - the pgbun.* GUCs: definitions, defaults, check hooks.
 *
 * Names and defaults follow PgBouncer where it has the setting, so a
 * pgbouncer.ini translates line by line. Everything but pgbun.workers is
 * PGC_SIGHUP: pg_reload_conf() changes it for the live pools (worker.c
 * applies the difference after ProcessConfigFile). Check hooks refuse bad
 * values at reload with a clear message; settings.c then refuses the whole
 * reload, so the old snapshot of every setting stays in force.
 *
 * The variables here are the GUCs' storage; everything else reads the
 * snapshot pgbun_cfg (settings.h), as do the helpers below.
 */
#include "postgres.h"

#include <limits.h>
#include <sched.h>
#include <unistd.h>

#include "utils/guc.h"

#include "compat.h"
#include "config.h"
#include "config_parse.h"
#include "metrics.h"
#include "notify.h"
#include "params.h"
#include "settings.h"
#include "tls.h"
#include "websocket.h"
#include "http_sql.h"

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
int			pgbun_dns_max_ttl = 15000;
int			pgbun_dns_timeout = 15000;
char	   *pgbun_dns_servers = NULL;
int			pgbun_server_connect_timeout = 15000;
int			pgbun_server_login_retry = 15000;
int			pgbun_server_login_retry_max = 60000;
int			pgbun_server_check_delay = 30000;
char	   *pgbun_server_check_query = NULL;
int			pgbun_server_idle_timeout = 600000;
int			pgbun_server_lifetime = 3600000;
int			pgbun_client_login_timeout = 60000;
int			pgbun_client_idle_timeout = 0;
int			pgbun_pool_idle_timeout = 3600000;
int			pgbun_query_wait_timeout = 120000;
int			pgbun_query_timeout = 0;
int			pgbun_idle_transaction_timeout = 0;
char	   *pgbun_databases = NULL;
char	   *pgbun_users = NULL;
char	   *pgbun_track_extra_parameters = NULL;
char	   *pgbun_hba_file = NULL;
char	   *pgbun_auth_file = NULL;
char	   *pgbun_auth_user = NULL;
char	   *pgbun_auth_query = NULL;
char	   *pgbun_ident_file = NULL;
int			pgbun_auth_failure_delay = 0;
char	   *pgbun_ignore_startup_parameters = NULL;
int			pgbun_max_prepared_statements = 200;
int			pgbun_debug_clock_offset = 0;
int			pgbun_max_prepared_statement_memory = 65536;	/* kB */
int			pgbun_client_tls_sslmode = TLS_MODE_PREFER;
char	   *pgbun_client_tls_cert_file = NULL;
char	   *pgbun_client_tls_key_file = NULL;
char	   *pgbun_client_tls_ca_file = NULL;
char	   *pgbun_client_tls_protocols = NULL;
char	   *pgbun_client_tls_ciphers = NULL;
int			pgbun_server_tls_sslmode = TLS_MODE_PREFER;
char	   *pgbun_server_tls_cert_file = NULL;
char	   *pgbun_server_tls_key_file = NULL;
char	   *pgbun_server_tls_ca_file = NULL;
char	   *pgbun_server_tls_protocols = NULL;
char	   *pgbun_server_tls_ciphers = NULL;

/* Parsed pgbun.users (set by the assign hook; the snapshot copies it). */
static OverrideList *user_overrides = NULL;
int			pgbun_max_packet_size = INT_MAX;
bool		pgbun_log_connections = true;
bool		pgbun_log_disconnections = true;
bool		pgbun_tcp_keepalive = true;
bool		pgbun_server_sched_batch = true;
int			pgbun_tcp_keepidle = 0;
int			pgbun_tcp_keepintvl = 0;
int			pgbun_tcp_keepcnt = 0;
int			pgbun_tcp_user_timeout = 0;
int			pgbun_tcp_defer_accept = 45;

static const struct config_enum_entry pool_mode_options[] = {
	{"session", POOL_MODE_SESSION, false},
	{"transaction", POOL_MODE_TRANSACTION, false},
	{"statement", POOL_MODE_STATEMENT, false},
	{NULL, 0, false}
};

static int
parse_pool_mode(const char *value)
{
	for (int i = 0; pool_mode_options[i].name; i++)
		if (pg_strcasecmp(pool_mode_options[i].name, value) == 0)
			return pool_mode_options[i].val;
	return -1;
}

/* PgBouncer's sslmode names (tls.h TlsMode). */
static const struct config_enum_entry tls_mode_options[] = {
	{"disable", TLS_MODE_DISABLE, false},
	{"allow", TLS_MODE_ALLOW, false},
	{"prefer", TLS_MODE_PREFER, false},
	{"require", TLS_MODE_REQUIRE, false},
	{"verify-ca", TLS_MODE_VERIFY_CA, false},
	{"verify-full", TLS_MODE_VERIFY_FULL, false},
	{NULL, 0, false}
};

static const struct config_enum_entry auth_type_options[] = {
	{"scram-sha-256", AUTH_TYPE_SCRAM, false},
	{"md5", AUTH_TYPE_MD5, false},
	{"trust", AUTH_TYPE_TRUST, false},
	{"hba", AUTH_TYPE_HBA, false},
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

/* The check query is sent as one simple Query, like the reset query. */
static bool
check_check_query(char **newval, void **extra, GucSource source)
{
	if (*newval && strlen(*newval) > 4096)
	{
		GUC_check_errmsg("pgbun: server_check_query is longer than 4096 bytes");
		return false;
	}
	return true;
}

/*
 * Parse "name = key=value key=value; name2 = ..." (PgBouncer's [databases]
 * and [users] lines, one GUC each). allow_size: pool_size is accepted.
 * Returns a guc_malloc'd list, or NULL with a GUC error set.
 */
static OverrideList *
parse_overrides(const char *value, bool allow_size)
{
	char	   *copy = pstrdup(value ? value : "");
	char	   *entry;
	char	   *save = NULL;
	int			max = 1;
	OverrideList *list;

	for (const char *p = copy; *p; p++)
		if (*p == ';')
			max++;
	list = pgbun_guc_malloc(offsetof(OverrideList, items) + max * sizeof(PoolOverride));
	if (!list)
		return NULL;
	list->n = 0;
	for (entry = strtok_r(copy, ";", &save); entry; entry = strtok_r(NULL, ";", &save))
	{
		char	   *eq = strchr(entry, '=');
		char	   *name = entry;
		char	   *opts;
		char	   *tok;
		char	   *save2 = NULL;
		PoolOverride *o;

		while (*name == ' ' || *name == '\t' || *name == '\n')
			name++;
		if (*name == '\0')
			continue;
		if (!eq)
		{
			GUC_check_errdetail("pgbun: entry \"%s\" has no \"=\"; expected \"name = key=value ...\".", name);
			goto fail;
		}
		*eq = '\0';
		opts = eq + 1;
		for (char *e = eq - 1; e >= name && (*e == ' ' || *e == '\t'); e--)
			*e = '\0';
		if (*name == '\0' || strlen(name) >= NAMEDATALEN)
		{
			GUC_check_errdetail("pgbun: empty or too long name in \"%s\".", value);
			goto fail;
		}
		o = &list->items[list->n++];
		strlcpy(o->name, name, sizeof(o->name));
		o->pool_mode = -1;
		o->pool_size = 0;
		for (tok = strtok_r(opts, " \t\n", &save2); tok; tok = strtok_r(NULL, " \t\n", &save2))
		{
			char	   *kv = strchr(tok, '=');

			if (!kv)
			{
				GUC_check_errdetail("pgbun: \"%s\" for \"%s\" is not key=value.", tok, o->name);
				goto fail;
			}
			*kv++ = '\0';
			if (strcmp(tok, "pool_mode") == 0)
			{
				o->pool_mode = parse_pool_mode(kv);
				if (o->pool_mode < 0)
				{
					GUC_check_errdetail("pgbun: invalid pool_mode \"%s\" for \"%s\".", kv, o->name);
					goto fail;
				}
			}
			else if (strcmp(tok, "pool_size") == 0 && allow_size)
			{
				char	   *end;
				long		v = strtol(kv, &end, 10);

				if (*end != '\0' || v < 1 || v > 10000)
				{
					GUC_check_errdetail("pgbun: invalid pool_size \"%s\" for \"%s\".", kv, o->name);
					goto fail;
				}
				o->pool_size = (int) v;
			}
			else
			{
				GUC_check_errdetail("pgbun: unknown setting \"%s\" for \"%s\" (supported: pool_mode%s).",
									tok, o->name, allow_size ? ", pool_size" : "");
				goto fail;
			}
		}
	}
	pfree(copy);
	return list;

fail:
	pfree(copy);
	pgbun_guc_free(list);
	return NULL;
}

/* client_tls_protocols / server_tls_protocols: refused at reload when unknown. */
static bool
check_tls_protocols(char **newval, void **extra, GucSource source)
{
	int			lo;
	int			hi;

	if (!tls_parse_protocols(*newval, &lo, &hi))
	{
		GUC_check_errdetail("pgbun: expected \"secure\" (TLS 1.2 and 1.3), \"all\", \"legacy\" or a comma-separated list of tlsv1.0, tlsv1.1, tlsv1.2, tlsv1.3.");
		return false;
	}
	return true;
}

static ConfigDatabases *database_config = NULL;
static uint64 database_generation = 0;

static bool
check_auth_user(char **newval, void **extra, GucSource source)
{
	if (*newval && strlen(*newval) >= NAMEDATALEN)
	{
		GUC_check_errdetail("A role name is shorter than %d bytes.", NAMEDATALEN);
		return false;
	}
	return true;
}

/* The query must bind the user name as $1 (never pasted in) and fit one Parse (auth_query.c). */
static bool
check_auth_query(char **newval, void **extra, GucSource source)
{
	const char *why = *newval ? config_auth_query_invalid(*newval) : " (empty)";

	if (why)
	{
		GUC_check_errdetail("pgbun.auth_query cannot be used%s.", why);
		return false;
	}
	return true;
}

static bool
check_databases(char **newval, void **extra, GucSource source)
{
	char		err[512];
	ConfigDatabases *list = config_parse_databases(*newval, err, sizeof(err));
	ConfigDatabases *g;
	Size		sz;

	if (!list)
	{
		GUC_check_errdetail("pgbun: %s.", err);
		return false;
	}
	sz = offsetof(ConfigDatabases, items) + Max(list->n, 1) * sizeof(DbEntry);
	g = pgbun_guc_malloc(sz);
	if (!g)
	{
		free(list);
		return false;
	}
	memcpy(g, list, offsetof(ConfigDatabases, items) + list->n * sizeof(DbEntry));
	free(list);
	*extra = g;
	return true;
}

static void
assign_databases(const char *newval, void *extra)
{
	database_config = extra;
	if (database_config)
		database_config->generation = ++database_generation;
}

const ConfigDatabases *
config_guc_databases(void)
{
	return database_config;
}

const OverrideList *
config_guc_users(void)
{
	return user_overrides;
}

const ConfigDatabases *
config_databases(void)
{
	return pgbun_cfg ? pgbun_cfg->databases : NULL;
}

const DbEntry *
config_database_entry(const char *database)
{
	const ConfigDatabases *dbs = config_databases();
	const DbEntry *star = NULL;

	for (int i = 0; dbs && i < dbs->n; i++)
	{
		if (strcmp(dbs->items[i].name, database) == 0)
			return &dbs->items[i];
		if (strcmp(dbs->items[i].name, "*") == 0)
			star = &dbs->items[i];
	}
	return star;
}

int
config_max_db_connections(const char *database)
{
	const DbEntry *e = config_database_entry(database);

	return (e && e->max_db_connections >= 0) ? e->max_db_connections : pgbun_cfg->max_db_connections;
}

int
config_server_lifetime(const char *database)
{
	const DbEntry *e = config_database_entry(database);

	return (e && e->server_lifetime >= 0) ? e->server_lifetime : pgbun_cfg->server_lifetime;
}

static bool
check_users(char **newval, void **extra, GucSource source)
{
	OverrideList *list = parse_overrides(*newval, false);

	*extra = list;
	return list != NULL;
}

static void
assign_users(const char *newval, void *extra)
{
	user_overrides = extra;
}

static const PoolOverride *
find_override(const OverrideList *list, const char *name)
{
	for (int i = 0; list && i < list->n; i++)
		if (strcmp(list->items[i].name, name) == 0)
			return &list->items[i];
	return NULL;
}

int
config_pool_mode(const char *database, const char *user)
{
	const PoolOverride *u = find_override(pgbun_cfg->users, user);
	const DbEntry *d = config_database_entry(database);

	if (u && u->pool_mode >= 0)
		return u->pool_mode;
	if (d && d->pool_mode >= 0)
		return d->pool_mode;
	return pgbun_cfg->pool_mode;
}

static bool
check_track_extra(char **newval, void **extra, GucSource source)
{
	if (params_set_extra(*newval ? *newval : "", false) < 0)
	{
		GUC_check_errdetail("pgbun: expected at most %d comma-separated parameter names (letters, digits, _ and .), each shorter than %d bytes.",
							PARAMS_MAX_EXTRA, PARAMS_NAME_MAX);
		return false;
	}
	return true;
}

bool
config_ignores_startup_param(const char *name)
{
	const char *p = pgbun_cfg->ignore_startup_parameters;
	size_t		len = strlen(name);

	while (p && *p)
	{
		size_t		n;

		p += strspn(p, ", \t");
		n = strcspn(p, ", \t");
		if (n == len && n > 0 && pg_strncasecmp(p, name, n) == 0)
			return true;
		p += n;
	}
	return false;
}

int
config_pool_size(const char *database)
{
	const DbEntry *d = config_database_entry(database);

	return (d && d->pool_size > 0) ? d->pool_size : pgbun_cfg->default_pool_size;
}

/*
 * pgbun.workers = -1: one worker per CPU the postmaster may run on, at most
 * PGBUN_WORKERS_AUTO_MAX. One worker passes every message of its clients in
 * series, so on a busy server the backends may wait for it while a core
 * idles; more workers use that core, at some CPU per transaction (README,
 * Several workers). Past a few, more workers only split each pool's servers
 * into more shares. The value is set back into the GUC so that SHOW
 * pgbun.workers tells what runs.
 */
static void
resolve_auto_workers(void)
{
	cpu_set_t	cpus;
	long		n = 0;
	char		buf[16];

	if (pgbun_workers != PGBUN_WORKERS_AUTO)
		return;
	if (sched_getaffinity(0, sizeof(cpus), &cpus) == 0)
		n = CPU_COUNT(&cpus);
	if (n <= 0)
		n = sysconf(_SC_NPROCESSORS_ONLN);
	n = Max(1, Min(n, PGBUN_WORKERS_AUTO_MAX));
	snprintf(buf, sizeof(buf), "%ld", n);
	/* -1 comes from a file or ALTER SYSTEM (the default is 1): override it */
	SetConfigOption("pgbun.workers", buf, PGC_POSTMASTER, PGC_S_OVERRIDE);
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
	DefineCustomIntVariable("pgbun.workers", "Number of pooler background workers (-1: one per CPU, at most 4; 0: pooler off, SQL functions only).",
							NULL, &pgbun_workers, 1, PGBUN_WORKERS_AUTO, 64,
							PGC_POSTMASTER, 0, NULL, NULL, NULL);
	resolve_auto_workers();
	DefineCustomEnumVariable("pgbun.pool_mode", "When a server connection goes back to the pool.",
							 NULL, &pgbun_pool_mode, POOL_MODE_SESSION, pool_mode_options,
							 PGC_SIGHUP, 0, NULL, NULL, NULL);
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
	DefineCustomIntVariable("pgbun.dns_max_ttl",
							"How long a resolved pgbun.server_host address is used before it is looked up again.",
							NULL, &pgbun_dns_max_ttl, 15000, 1000, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("pgbun.dns_timeout",
							"Longest a DNS lookup of pgbun.server_host may take before it counts as failed.",
							NULL, &pgbun_dns_timeout, 15000, 100, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomStringVariable("pgbun.dns_servers",
							   "DNS servers pgbun asks, as host[:port] list (empty: those of /etc/resolv.conf).",
							   NULL, &pgbun_dns_servers, "",
							   PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("pgbun.server_connect_timeout", "Longest a server connection may take to connect and log in.",
							NULL, &pgbun_server_connect_timeout, 15000, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("pgbun.server_login_retry", "Wait after a failed server login before trying again.",
							NULL, &pgbun_server_login_retry, 15000, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("pgbun.notify_queue_size",
							"Most bytes of notifications queued for one client that does not read them (transaction and statement mode); over it the client is closed.",
							NULL, &pgbun_notify_queue_size, 1024 * 1024, 16384, INT_MAX / 2,
							PGC_SIGHUP, GUC_UNIT_BYTE, NULL, NULL, NULL);
	DefineCustomIntVariable("pgbun.server_login_retry_max",
							"Longest wait before a host that keeps failing is tried again (the wait doubles from server_login_retry, with jitter).",
							NULL, &pgbun_server_login_retry_max, 60000, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("pgbun.server_check_delay",
							"Idle server connections of a database with a host list are checked this often (role, replica lag).",
							NULL, &pgbun_server_check_delay, 30000, 100, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomStringVariable("pgbun.server_check_query",
							   "Query the check runs on idle server connections (empty: an empty query).",
							   NULL, &pgbun_server_check_query, "",
							   PGC_SIGHUP, 0, check_check_query, NULL, NULL);
	DefineCustomIntVariable("pgbun.server_idle_timeout", "Close server connections idle longer than this (0: never).",
							NULL, &pgbun_server_idle_timeout, 600000, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("pgbun.server_lifetime", "Close server connections older than this once released (0: never).",
							NULL, &pgbun_server_lifetime, 3600000, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("pgbun.client_login_timeout", "Close clients that do not finish logging in within this time.",
							NULL, &pgbun_client_login_timeout, 60000, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("pgbun.pool_idle_timeout", "Free a pool that has had no clients and no server connections for this long (0: never).",
							"Its shared slot (and its statistics) are released, so more distinct (database, user) pairs than the slot table holds can be used over time.",
							&pgbun_pool_idle_timeout, 3600000, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("pgbun.client_idle_timeout", "Close clients idle longer than this (0: never).",
							NULL, &pgbun_client_idle_timeout, 0, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("pgbun.query_wait_timeout", "Longest a query may wait for a server connection (0: forever).",
							NULL, &pgbun_query_wait_timeout, 120000, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("pgbun.query_timeout", "Cancel queries running longer than this (0: never).",
							NULL, &pgbun_query_timeout, 0, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("pgbun.idle_transaction_timeout", "Close clients idle inside a transaction longer than this (0: never).",
							NULL, &pgbun_idle_transaction_timeout, 0, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomStringVariable("pgbun.databases",
							   "Per-database settings: \"name = pool_mode=transaction pool_size=10; other = ...\".",
							   NULL, &pgbun_databases, "",
							   PGC_SIGHUP, 0, check_databases, assign_databases, NULL);
	DefineCustomStringVariable("pgbun.users",
							   "Per-user settings: \"name = pool_mode=session; other = ...\".",
							   NULL, &pgbun_users, "",
							   PGC_SIGHUP, 0, check_users, assign_users, NULL);
	DefineCustomIntVariable("pgbun.auth_failure_delay",
							"Delay before a failed login is answered, doubled per further failure from the same address within a minute (0: none).",
							NULL, &pgbun_auth_failure_delay, 0, 0, 10000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomStringVariable("pgbun.hba_file",
							   "Access rules in pg_hba.conf format for auth_type = hba (empty: the server's own hba_file).",
							   NULL, &pgbun_hba_file, "",
							   PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("pgbun.auth_file",
							   "Roles the local server does not have, in PgBouncer's userlist.txt format (empty: none).",
							   NULL, &pgbun_auth_file, "",
							   PGC_SIGHUP, 0, NULL, NULL, NULL);
	/* auth_user + auth_query for targets whose roles the local server lacks (auth_query.c) */
	DefineCustomStringVariable("pgbun.auth_user",
							   "Role that runs pgbun.auth_query on the target of every pgbun.databases entry with a host list and no auth_user of its own (empty: none).",
							   NULL, &pgbun_auth_user, "",
							   PGC_SIGHUP, 0, check_auth_user, NULL, NULL);
	DefineCustomStringVariable("pgbun.auth_query",
							   "Query that returns (name, verifier) of the role $1 on a target, for databases with an auth_user.",
							   "It must return NULL as the verifier when the password has expired (VALID UNTIL).",
							   &pgbun_auth_query, PGBUN_AUTH_QUERY_DEFAULT,
							   PGC_SIGHUP, 0, check_auth_query, NULL, NULL);
	DefineCustomStringVariable("pgbun.ident_file",
							   "User name maps in pg_ident.conf format for map= on hba cert/peer lines (empty: the server's own ident_file).",
							   NULL, &pgbun_ident_file, "",
							   PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("pgbun.track_extra_parameters",
							   "More startup parameters that follow a client across server connections (comma-separated).",
							   NULL, &pgbun_track_extra_parameters, "",
							   PGC_SIGHUP, 0, check_track_extra, NULL, NULL);	/* applied with the snapshot (settings.c) */
	DefineCustomStringVariable("pgbun.ignore_startup_parameters",
							   "Startup parameters accepted from clients and ignored (comma-separated).",
							   NULL, &pgbun_ignore_startup_parameters, "",
							   PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("pgbun.max_prepared_statement_memory",
							"Memory per worker for the named prepared statements clients hold in transaction and statement pools.",
							"Query texts and names; a Parse that does not fit gets 53200 and the client stays connected.",
							&pgbun_max_prepared_statement_memory, 65536, 64, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_KB, NULL, NULL, NULL);
	DefineCustomIntVariable("pgbun.debug_clock_offset",
							"Developer setting: seconds added to pgbun's reading of the wall clock, so tests can step it.",
							"pgbun's timeouts run on its steady clock and do not move; the times the views show do.",
							&pgbun_debug_clock_offset, 0, -86400 * 365, 86400 * 365,
							PGC_SIGHUP, GUC_UNIT_S | GUC_NOT_IN_SAMPLE, NULL, NULL, NULL);
	DefineCustomIntVariable("pgbun.max_prepared_statements",
							"Named prepared statements kept per server connection in transaction/statement pooling (0: refuse named statements there).",
							NULL, &pgbun_max_prepared_statements, 200, 0, 100000,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomEnumVariable("pgbun.client_tls_sslmode",
							 "TLS for clients: disable, allow, prefer, require, verify-ca, verify-full (as PgBouncer).",
							 "prefer offers TLS when a certificate is available (pgbun's own or the server's with ssl = on).",
							 &pgbun_client_tls_sslmode, TLS_MODE_PREFER, tls_mode_options,
							 PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("pgbun.client_tls_cert_file",
							   "Certificate pgbun shows clients (empty with an empty key file: the server's ssl_cert_file when ssl = on).",
							   NULL, &pgbun_client_tls_cert_file, "",
							   PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("pgbun.client_tls_key_file",
							   "Private key of pgbun.client_tls_cert_file.",
							   NULL, &pgbun_client_tls_key_file, "",
							   PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("pgbun.client_tls_ca_file",
							   "Root certificates that client certificates are checked against (verify-ca, verify-full).",
							   NULL, &pgbun_client_tls_ca_file, "",
							   PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("pgbun.client_tls_protocols",
							   "TLS versions allowed for clients: secure (TLS 1.2 and 1.3), all, or a list such as tlsv1.2,tlsv1.3.",
							   NULL, &pgbun_client_tls_protocols, "secure",
							   PGC_SIGHUP, 0, check_tls_protocols, NULL, NULL);
	DefineCustomStringVariable("pgbun.client_tls_ciphers",
							   "OpenSSL cipher list for clients up to TLS 1.2 (default: OpenSSL's).",
							   NULL, &pgbun_client_tls_ciphers, "default",
							   PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomEnumVariable("pgbun.server_tls_sslmode",
							 "TLS for pgbun's TCP server connections: disable, allow, prefer, require, verify-ca, verify-full.",
							 NULL, &pgbun_server_tls_sslmode, TLS_MODE_PREFER, tls_mode_options,
							 PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("pgbun.server_tls_ca_file",
							   "Root certificates the server's certificate is checked against (verify-ca, verify-full; empty: the system's).",
							   NULL, &pgbun_server_tls_ca_file, "",
							   PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("pgbun.server_tls_cert_file",
							   "Client certificate pgbun shows servers (optional).",
							   NULL, &pgbun_server_tls_cert_file, "",
							   PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("pgbun.server_tls_key_file",
							   "Private key of pgbun.server_tls_cert_file.",
							   NULL, &pgbun_server_tls_key_file, "",
							   PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("pgbun.server_tls_protocols",
							   "TLS versions allowed for server connections (as client_tls_protocols).",
							   NULL, &pgbun_server_tls_protocols, "secure",
							   PGC_SIGHUP, 0, check_tls_protocols, NULL, NULL);
	DefineCustomStringVariable("pgbun.server_tls_ciphers",
							   "OpenSSL cipher list for server connections up to TLS 1.2 (default: OpenSSL's).",
							   NULL, &pgbun_server_tls_ciphers, "default",
							   PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("pgbun.max_packet_size", "Largest protocol message pgbun accepts from a client.",
							NULL, &pgbun_max_packet_size, INT_MAX, 1024, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_BYTE, NULL, NULL, NULL);
	DefineCustomBoolVariable("pgbun.log_connections", "Log each successful client login.",
							 NULL, &pgbun_log_connections, true,
							 PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomBoolVariable("pgbun.log_disconnections", "Log each client disconnection with its reason.",
							 NULL, &pgbun_log_disconnections, true,
							 PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomBoolVariable("pgbun.server_sched_batch",
							 "Run the local backends behind pgbun's server connections as SCHED_BATCH.",
							 "A woken backend then does not preempt the pooler; it runs when the pooler blocks or its time slice ends.",
							 &pgbun_server_sched_batch, true,
							 PGC_SIGHUP, 0, NULL, NULL, NULL);
	/* PgBouncer's names and meaning: 0 leaves the operating system's value */
	DefineCustomBoolVariable("pgbun.tcp_keepalive", "TCP keepalives on client and server TCP connections.",
							 NULL, &pgbun_tcp_keepalive, true,
							 PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("pgbun.tcp_keepidle", "Idle time before the first TCP keepalive probe (0: the OS default).",
							NULL, &pgbun_tcp_keepidle, 0, 0, 32767,
							PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomIntVariable("pgbun.tcp_keepintvl", "Time between TCP keepalive probes (0: the OS default).",
							NULL, &pgbun_tcp_keepintvl, 0, 0, 32767,
							PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomIntVariable("pgbun.tcp_keepcnt", "Unanswered TCP keepalive probes before the connection is dropped (0: the OS default).",
							NULL, &pgbun_tcp_keepcnt, 0, 0, 127,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("pgbun.tcp_user_timeout", "Longest sent data may stay unacknowledged before the connection is dropped (TCP_USER_TIMEOUT; 0: the OS default).",
							NULL, &pgbun_tcp_user_timeout, 0, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("pgbun.tcp_defer_accept", "Longest a TCP connection may wait for its first bytes before it is accepted (TCP_DEFER_ACCEPT; 0: accept at once).",
							"A client speaks first, so its connection is handed to pgbun with its first packet: one wakeup fewer per login.",
							&pgbun_tcp_defer_accept, 45, 0, 3600,
							PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);

	metrics_define_gucs();		/* pgbun.metrics_*, stats_period, log_pooler_errors */
	websocket_define_gucs();	/* pgbun.websocket* */
	http_sql_define_gucs();		/* pgbun.http_sql* */
	MarkGUCPrefixReserved("pgbun");
}
