/*
 * settings.h - the pooler's settings in force: one immutable snapshot.
 *
 * The pgbun.* GUC variables (config.c) are only the backing storage
 * PostgreSQL writes into at a reload. The worker reads its settings from
 * pgbun_cfg, a snapshot built from those variables at worker start and at
 * each reload, checked as a whole (settings_check: cross-field rules,
 * files, address syntax) and swapped in together with the pgbun.databases
 * and pgbun.users snapshots it holds. A reload that fails any check, or
 * where PostgreSQL refused one pgbun.* value, is refused whole: the log
 * names the setting and the reason and every setting stays as it was.
 * Strings are copied into the snapshot, never pointing into GUC storage.
 *
 * Nothing keeps a pointer into a snapshot across a loop turn (targets copy
 * their entries, listener.c and dns.c copy what they compare), so the old
 * snapshot is freed once a reload has relinked the pools.
 *
 * Read at postmaster start only, and so left as plain GUC variables:
 * pgbun.workers (PGC_POSTMASTER), and pgbun.max_client_conn for the shared
 * memory size (shmem.c) -- the worker's per-connection limit uses the
 * snapshot.
 *
 * settings_check.c is pure C (unit-tested); settings.c builds and swaps.
 */
#ifndef PGBUN_SETTINGS_H
#define PGBUN_SETTINGS_H

#include "config.h"

/* One pgbun.* setting's value as text, as SHOW CONFIG shows it. */
typedef struct SettingText
{
	const char *name;			/* "pgbun.port" */
	const char *value;
} SettingText;

typedef struct PgbunSettings
{
	uint64		generation;		/* bumped by every snapshot swapped in */

	/* listening (listener.c, metrics.c, websocket.c, http_sql.c) */
	const char *listen_addresses;
	int			port;
	const char *unix_socket_directories;
	int			metrics_port;
	const char *metrics_listen_addresses;
	bool		websocket;
	const char *websocket_path;
	const char *websocket_allowed_origins;
	int			websocket_max_frame_size;
	bool		http_sql;		/* http_sql.c */
	int			http_sql_max_request_size;
	int			http_sql_max_response_size;

	/* pools (pool.c) */
	int			pool_mode;		/* PoolMode */
	int			default_pool_size;
	int			min_pool_size;
	int			max_client_conn;
	int			max_db_connections;
	int			max_user_connections;

	/* servers (server.c, health.c, dns.c, target.c) */
	const char *server_reset_query;
	const char *server_host;
	int			server_port;
	int			dns_max_ttl;	/* ms */
	int			dns_timeout;	/* ms */
	const char *dns_servers;
	int			server_connect_timeout; /* ms */
	int			server_login_retry; /* ms */
	int			server_login_retry_max; /* ms */
	int			server_check_delay; /* ms */
	const char *server_check_query;
	int			server_idle_timeout;	/* ms */
	int			server_lifetime;	/* ms */

	/* clients (client.c, client_login.c) */
	int			client_login_timeout;	/* ms */
	int			client_idle_timeout;	/* ms */
	int			pool_idle_timeout;	/* ms */
	int			query_wait_timeout; /* ms */
	int			max_packet_size;	/* bytes */
	int			query_timeout;	/* ms */
	int			idle_transaction_timeout;	/* ms */
	const char *track_extra_parameters;
	const char *ignore_startup_parameters;
	int			notify_queue_size;	/* bytes */
	int			max_prepared_statements;
	int			max_prepared_statement_memory;	/* kB */

	/* authentication (client_login.c, hba.c, auth_file.c) */
	int			auth_type;		/* AuthType */
	const char *hba_file;
	const char *auth_file;
	const char *ident_file;
	int			auth_failure_delay; /* ms */
	const char *auth_user;		/* auth_query.c */
	const char *auth_query;

	/* TLS (tls.c) */
	int			client_tls_sslmode; /* TlsMode */
	const char *client_tls_cert_file;
	const char *client_tls_key_file;
	const char *client_tls_ca_file;
	const char *client_tls_protocols;
	const char *client_tls_ciphers;
	int			server_tls_sslmode; /* TlsMode */
	const char *server_tls_cert_file;
	const char *server_tls_key_file;
	const char *server_tls_ca_file;
	const char *server_tls_protocols;
	const char *server_tls_ciphers;

	/* logging and sockets (log.c, sockopt.c) */
	bool		log_connections;
	bool		log_disconnections;
	bool		log_pooler_errors;
	int			stats_period;	/* s, 0: off */
	bool		tcp_keepalive;
	bool		server_sched_batch;	/* local backends as SCHED_BATCH (backend_sched.c) */
	int			tcp_keepidle;	/* s, 0: the OS default */
	int			tcp_keepintvl;	/* s, 0: the OS default */
	int			tcp_keepcnt;	/* 0: the OS default */
	int			tcp_user_timeout;	/* ms, 0: the OS default */
	int			tcp_defer_accept;	/* s, 0: off (listeners) */

	/* the per-database and per-user entries (config.h) */
	const ConfigDatabases *databases;	/* NULL: none */
	const OverrideList *users;	/* NULL: none */

	/* every pgbun.* setting as text (SHOW CONFIG) */
	int			n_shown;
	const SettingText *shown;
} PgbunSettings;

/*
 * The snapshot in force: the one accessor for settings. Set in the worker
 * at start and by each accepted reload; in a backend by settings_refresh().
 */
extern const PgbunSettings *pgbun_cfg;

#ifdef PGBUN_UNIT_TEST
/* Unit tests: pgbun_cfg points here (the built-in defaults the tests need). */
extern PgbunSettings pgbun_unit_settings;
#endif

/*
 * Worker: build a snapshot from the GUC variables, check it and the
 * configuration files' pgbun.* lines, and swap it in. at_start: there is
 * no snapshot yet, a failing one is used with a WARNING (as before). Returns
 * false when a reload is refused (the log says why; nothing changed).
 */
extern bool settings_reload(bool at_start);
/* Worker: free the snapshot a reload replaced (once the pools are relinked). */
extern void settings_release_old(void);
/* Backend (SQL functions): make pgbun_cfg reflect this process's GUCs. */
extern void settings_refresh(void);
/* SHOW CONFIG: the value in force of a pgbun.* setting; false if it has none. */
extern bool settings_shown(const char *name, char *buf, int len);

#endif							/* PGBUN_SETTINGS_H */
