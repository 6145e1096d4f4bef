/*
 * config.h - pgbun's settings: the pgbun.* GUC variables and helpers that
 * turn them into what the worker uses.
 *
 * GUCs are defined in config.c (called from _PG_init). Time settings are
 * stored in milliseconds (GUC_UNIT_MS) so '15s' and '500ms' both work;
 * 0 disables a timeout, as in PgBouncer.
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
extern char *pgbun_ident_file;
extern int	pgbun_auth_failure_delay;	/* ms */
extern char *pgbun_ignore_startup_parameters;
extern int	pgbun_max_prepared_statements;
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

/* Define every pgbun.* GUC and reserve the prefix. Only from _PG_init. */
extern void pgbun_define_gucs(void);

extern const char *pool_mode_name(int mode);

/* Pool mode / size for a (database, user) pool: per-user, then per-database overrides, then the default. */
extern int	config_pool_mode(const char *database, const char *user);
extern int	config_pool_size(const char *database);
/* pgbun.ignore_startup_parameters names this startup parameter. */
extern bool config_ignores_startup_param(const char *name);

#endif							/* PGBUN_CONFIG_H */
