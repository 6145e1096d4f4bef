/*
 * config.h - pgbun's settings: the pgbun.* GUC variables and helpers that
 * turn them into what the worker uses.
 *
 * GUCs are defined in config.c (called from _PG_init). Time settings are
 * stored in milliseconds (GUC_UNIT_MS) so '15s' and '500ms' both work;
 * 0 disables a timeout, as in PgBouncer.
 *
 * The pgbun_* variables below are only the GUCs' backing storage: code
 * reads the settings snapshot pgbun_cfg (settings.h), built from them at
 * worker start and at each accepted reload. Only config.c and settings.c
 * read these, plus the postmaster-start readers of pgbun_workers and
 * pgbun_max_client_conn (shared memory sizing, worker registration).
 */
#ifndef PGBUN_CONFIG_H
#define PGBUN_CONFIG_H

typedef enum PoolMode
{
	POOL_MODE_SESSION = 0,
	POOL_MODE_TRANSACTION,
	POOL_MODE_STATEMENT,
} PoolMode;

typedef enum AuthType
{
	AUTH_TYPE_SCRAM = 0,		/* scram-sha-256 (md5 verifiers refused, as PostgreSQL) */
	AUTH_TYPE_MD5,				/* md5, or SCRAM when the role has a SCRAM verifier */
	AUTH_TYPE_TRUST,
	AUTH_TYPE_HBA,				/* per connection, from pgbun.hba_file (hba.c) */
} AuthType;

extern char *pgbun_listen_addresses;
extern int	pgbun_port;
extern char *pgbun_unix_socket_directories;
extern int	pgbun_workers;

/* pgbun.workers = -1: one per CPU, at most PGBUN_WORKERS_AUTO_MAX (config.c) */
#define PGBUN_WORKERS_AUTO		(-1)
#define PGBUN_WORKERS_AUTO_MAX	4

extern int	pgbun_pool_mode;
extern int	pgbun_auth_type;
extern int	pgbun_default_pool_size;
extern int	pgbun_min_pool_size;
extern int	pgbun_max_client_conn;
extern int	pgbun_max_db_connections;
extern int	pgbun_max_user_connections;
extern char *pgbun_server_reset_query;
extern char *pgbun_server_host;
extern int	pgbun_server_port;
extern int	pgbun_dns_max_ttl;		/* ms */
extern int	pgbun_dns_timeout;		/* ms */
extern char *pgbun_dns_servers;
extern int	pgbun_server_connect_timeout;	/* ms */
extern int	pgbun_server_login_retry;	/* ms */
extern int	pgbun_server_login_retry_max;	/* ms */
extern int	pgbun_server_check_delay;	/* ms */
extern char *pgbun_server_check_query;
extern int	pgbun_server_idle_timeout;	/* ms */
extern int	pgbun_server_lifetime;		/* ms */
extern int	pgbun_client_login_timeout; /* ms */
extern int	pgbun_client_idle_timeout;	/* ms */
extern int	pgbun_pool_idle_timeout;	/* ms */
extern int	pgbun_query_wait_timeout;	/* ms */
extern int	pgbun_max_packet_size;		/* bytes */
extern int	pgbun_query_timeout;		/* ms */
extern int	pgbun_idle_transaction_timeout; /* ms */
extern char *pgbun_databases;
extern char *pgbun_users;
extern char *pgbun_track_extra_parameters;
extern char *pgbun_hba_file;
extern char *pgbun_auth_file;
extern char *pgbun_auth_user;
extern char *pgbun_auth_query;
extern char *pgbun_ident_file;
extern int	pgbun_auth_failure_delay;	/* ms */
extern char *pgbun_ignore_startup_parameters;
extern int	pgbun_max_prepared_statements;
extern int	pgbun_debug_clock_offset;
extern int	pgbun_max_prepared_statement_memory;	/* kB */
extern int	pgbun_client_tls_sslmode;	/* TlsMode (tls.h) */
extern char *pgbun_client_tls_cert_file;
extern char *pgbun_client_tls_key_file;
extern char *pgbun_client_tls_ca_file;
extern char *pgbun_client_tls_protocols;
extern char *pgbun_client_tls_ciphers;
extern int	pgbun_server_tls_sslmode;	/* TlsMode (tls.h) */
extern char *pgbun_server_tls_cert_file;
extern char *pgbun_server_tls_key_file;
extern char *pgbun_server_tls_ca_file;
extern char *pgbun_server_tls_protocols;
extern char *pgbun_server_tls_ciphers;
extern bool pgbun_log_connections;
extern bool pgbun_log_disconnections;
extern bool pgbun_tcp_keepalive;
extern bool pgbun_server_sched_batch;
extern int	pgbun_tcp_keepidle;		/* s, 0: the OS default */
extern int	pgbun_tcp_keepintvl;	/* s, 0: the OS default */
extern int	pgbun_tcp_keepcnt;		/* 0: the OS default */
extern int	pgbun_tcp_user_timeout; /* ms, 0: the OS default */
extern int	pgbun_tcp_defer_accept; /* s, 0: off */

/*
 * Apply pgbun.tcp_keepalive and friends to a connected socket: tcp is false
 * for a Unix socket, which is left alone (sockopt.c).
 */
extern void config_set_keepalive(int fd, bool tcp);
/* Apply pgbun.tcp_defer_accept to a TCP listening socket (sockopt.c). */
extern void config_set_defer_accept(int fd);

/* Define every pgbun.* GUC and reserve the prefix. Only from _PG_init. */
extern void pgbun_define_gucs(void);

extern const char *pool_mode_name(int mode);

/* Pool mode / size for a (database, user) pool: per-user, then per-database overrides, then the default. */
extern int	config_pool_mode(const char *database, const char *user);
extern int	config_pool_size(const char *database);

/*
 * pgbun.auth_query's default (auth_query.c): schema-qualified, and NULL as
 * the verifier past VALID UNTIL (PgBouncer's CVE-2025-2291).
 */
#define PGBUN_AUTH_QUERY_DEFAULT \
	"SELECT rolname, CASE WHEN rolvaliduntil IS NULL OR rolvaliduntil > pg_catalog.now() " \
	"THEN rolpassword END FROM pg_catalog.pg_authid WHERE rolname = $1 AND rolcanlogin"

/*
 * One entry of pgbun.databases (or pgbun.users): PgBouncer's / libpq's keys.
 * A database entry with any of host, port, dbname, user, password,
 * target_session_attrs, load_balance_hosts or max_replica_lag "routes" the
 * database: its pools get their own Target (target.c). An entry with only
 * pool settings keeps the default target (pgbun.server_host), as before;
 * auth_user and auth_query do not route either (they say how its clients are
 * checked).
 */
#define CONFIG_MAX_HOSTS	16
#define CONFIG_HOSTS_LEN	1024
#define CONFIG_QUERY_LEN	1024

typedef enum TargetSessionAttrs
{
	TSA_ANY = 0,
	TSA_READ_WRITE,
	TSA_READ_ONLY,
	TSA_PRIMARY,
	TSA_STANDBY,
	TSA_PREFER_STANDBY,
} TargetSessionAttrs;

typedef enum LoadBalanceHosts
{
	LB_DISABLE = 0,
	LB_ROUND_ROBIN,
	LB_RANDOM,
	LB_LEAST_CONN,
} LoadBalanceHosts;

typedef struct DbEntry
{
	char		name[NAMEDATALEN];	/* "*": the fallback entry */
	int			pool_mode;		/* -1: not set */
	int			pool_size;		/* 0: not set */
	int			max_db_connections; /* -1: not set */
	int			server_lifetime;	/* ms, -1: not set */
	bool		routed;			/* has a target of its own (see above) */
	char		host[CONFIG_HOSTS_LEN];	/* comma list; "": pgbun.server_host */
	int			n_hosts;
	int			ports[CONFIG_MAX_HOSTS];	/* per host; 0: pgbun.server_port / the server's port */
	char		dbname[NAMEDATALEN];	/* "": the client's database name */
	char		user[NAMEDATALEN];	/* forced user, "": the client's */
	char		password[NAMEDATALEN * 2];	/* for the forced user, "": none */
	int			tsa;			/* TargetSessionAttrs */
	int			lb;				/* LoadBalanceHosts */
	int			max_replica_lag;	/* ms, 0: no limit */
	char		connect_query[CONFIG_QUERY_LEN];	/* "": none */
	char		auth_user[NAMEDATALEN];	/* auth_query runs as this role, "": pgbun.auth_user (auth_query.h) */
	char		auth_query[CONFIG_QUERY_LEN];	/* "": pgbun.auth_query */
} DbEntry;

/*
 * The parsed pgbun.databases in force: an immutable snapshot, replaced as a
 * whole by a reload that passed the check hook (a bad value is refused with
 * the entry and the reason, and the old snapshot stays).
 */
typedef struct ConfigDatabases
{
	uint64		generation;		/* bumped by every accepted value */
	int			n;
	DbEntry		items[FLEXIBLE_ARRAY_MEMBER];
} ConfigDatabases;

/* The pgbun.users entries (PgBouncer's [users]: pool_mode). */
typedef struct PoolOverride
{
	char		name[NAMEDATALEN];
	int			pool_mode;		/* -1: not set */
	int			pool_size;		/* 0: not set */
} PoolOverride;

typedef struct OverrideList
{
	int			n;
	PoolOverride items[FLEXIBLE_ARRAY_MEMBER];
} OverrideList;

/* The snapshot's (pgbun_cfg) databases; NULL: none. */
extern const ConfigDatabases *config_databases(void);
/* The GUCs' last accepted parsed values: only for the snapshot builder (settings.c). */
extern const ConfigDatabases *config_guc_databases(void);
extern const OverrideList *config_guc_users(void);
/* The entry for a database: its own, else "*", else NULL. */
extern const DbEntry *config_database_entry(const char *database);
/* Effective per-database limits (the entry's, else the setting's). */
extern int	config_max_db_connections(const char *database);
extern int	config_server_lifetime(const char *database);
/* pgbun.ignore_startup_parameters names this startup parameter. */
extern bool config_ignores_startup_param(const char *name);

#endif							/* PGBUN_CONFIG_H */
