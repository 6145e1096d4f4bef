/*
 * settings.c - builds pgbun's settings snapshot (settings.h) from the GUC
 * variables, checks it as a whole and swaps it in.
 *
 * This file and config.c are the only readers of the pgbun.* GUC
 * variables. A reload is all or nothing: PostgreSQL applies each GUC on its
 * own (a value it refuses keeps its old value while the others change), so
 * after ProcessConfigFile the worker checks every pgbun.* line of the
 * configuration files again, then the snapshot's cross-field rules
 * (settings_check.c); any refusal keeps the whole previous snapshot --
 * pools, listeners, TLS, targets -- and the log names the setting and why.
 */
#include "postgres.h"

#include "miscadmin.h"
#include "utils/guc.h"
#include "utils/guc_tables.h"
#include "utils/memutils.h"

#include "compat.h"
#include "config.h"
#include "log.h"
#include "metrics.h"
#include "notify.h"
#include "params.h"
#include "settings.h"
#include "settings_check.h"
#include "websocket.h"
#include "http_sql.h"

static MemoryContext current_cxt = NULL;	/* owns pgbun_cfg */
static MemoryContext replaced_cxt = NULL;	/* the snapshot a reload replaced */
static uint64 settings_generation = 0;

/* A GUC's current value as text (as the console's SHOW CONFIG prints it). */
static char *
guc_value_text(struct config_generic *g)
{
	char		buf[64];

	switch (g->vartype)
	{
		case PGC_BOOL:
			return pstrdup(*((struct config_bool *) g)->variable ? "on" : "off");
		case PGC_INT:
			snprintf(buf, sizeof(buf), "%d", *((struct config_int *) g)->variable);
			return pstrdup(buf);
		case PGC_REAL:
			snprintf(buf, sizeof(buf), "%g", *((struct config_real *) g)->variable);
			return pstrdup(buf);
		case PGC_STRING:
			{
				const char *v = *((struct config_string *) g)->variable;

				return pstrdup(v ? v : "");
			}
		case PGC_ENUM:
			{
				struct config_enum *e = (struct config_enum *) g;

				for (const struct config_enum_entry *o = e->options; o && o->name; o++)
					if (o->val == *e->variable && !o->hidden)
						return pstrdup(o->name);
				return pstrdup("");
			}
	}
	return pstrdup("");
}

/* A copy owned by the snapshot; never NULL. */
static const char *
snap_strdup(const char *s)
{
	return pstrdup(s ? s : "");
}

/* Build a snapshot in a context of its own from the GUC variables. */
static PgbunSettings *
settings_build(MemoryContext *cxt_out)
{
	MemoryContext cxt = AllocSetContextCreate(TopMemoryContext, "pgbun settings",
											  ALLOCSET_SMALL_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	PgbunSettings *s = palloc0(sizeof(PgbunSettings));
	const ConfigDatabases *dbs = config_guc_databases();
	const OverrideList *users = config_guc_users();
	struct config_generic **vars;
	int			n_vars;
	SettingText *shown;

	s->listen_addresses = snap_strdup(pgbun_listen_addresses);
	s->port = pgbun_port;
	s->unix_socket_directories = snap_strdup(pgbun_unix_socket_directories);
	s->metrics_port = pgbun_metrics_port;
	s->metrics_listen_addresses = snap_strdup(pgbun_metrics_listen_addresses);
	s->websocket = pgbun_websocket;
	s->websocket_path = snap_strdup(pgbun_websocket_path);
	s->websocket_allowed_origins = snap_strdup(pgbun_websocket_allowed_origins);
	s->websocket_max_frame_size = pgbun_websocket_max_frame_size;
	s->http_sql = pgbun_http_sql;
	s->http_sql_max_request_size = pgbun_http_sql_max_request_size;
	s->http_sql_max_response_size = pgbun_http_sql_max_response_size;

	s->pool_mode = pgbun_pool_mode;
	s->default_pool_size = pgbun_default_pool_size;
	s->min_pool_size = pgbun_min_pool_size;
	s->max_client_conn = pgbun_max_client_conn;
	s->max_db_connections = pgbun_max_db_connections;
	s->max_user_connections = pgbun_max_user_connections;

	s->server_reset_query = snap_strdup(pgbun_server_reset_query);
	s->server_host = snap_strdup(pgbun_server_host);
	s->server_port = pgbun_server_port;
	s->dns_max_ttl = pgbun_dns_max_ttl;
	s->dns_timeout = pgbun_dns_timeout;
	s->dns_servers = snap_strdup(pgbun_dns_servers);
	s->server_connect_timeout = pgbun_server_connect_timeout;
	s->server_login_retry = pgbun_server_login_retry;
	s->server_login_retry_max = pgbun_server_login_retry_max;
	s->server_check_delay = pgbun_server_check_delay;
	s->server_check_query = snap_strdup(pgbun_server_check_query);
	s->server_idle_timeout = pgbun_server_idle_timeout;
	s->server_lifetime = pgbun_server_lifetime;

	s->client_login_timeout = pgbun_client_login_timeout;
	s->client_idle_timeout = pgbun_client_idle_timeout;
	s->pool_idle_timeout = pgbun_pool_idle_timeout;
	s->query_wait_timeout = pgbun_query_wait_timeout;
	s->max_packet_size = pgbun_max_packet_size;
	s->query_timeout = pgbun_query_timeout;
	s->idle_transaction_timeout = pgbun_idle_transaction_timeout;
	s->track_extra_parameters = snap_strdup(pgbun_track_extra_parameters);
	s->ignore_startup_parameters = snap_strdup(pgbun_ignore_startup_parameters);
	s->notify_queue_size = pgbun_notify_queue_size;
	s->max_prepared_statements = pgbun_max_prepared_statements;
	s->max_prepared_statement_memory = pgbun_max_prepared_statement_memory;

	s->auth_type = pgbun_auth_type;
	s->hba_file = snap_strdup(pgbun_hba_file);
	s->auth_file = snap_strdup(pgbun_auth_file);
	s->ident_file = snap_strdup(pgbun_ident_file);
	s->auth_failure_delay = pgbun_auth_failure_delay;
	s->auth_user = snap_strdup(pgbun_auth_user);
	s->auth_query = snap_strdup(pgbun_auth_query);

	s->client_tls_sslmode = pgbun_client_tls_sslmode;
	s->client_tls_cert_file = snap_strdup(pgbun_client_tls_cert_file);
	s->client_tls_key_file = snap_strdup(pgbun_client_tls_key_file);
	s->client_tls_ca_file = snap_strdup(pgbun_client_tls_ca_file);
	s->client_tls_protocols = snap_strdup(pgbun_client_tls_protocols);
	s->client_tls_ciphers = snap_strdup(pgbun_client_tls_ciphers);
	s->server_tls_sslmode = pgbun_server_tls_sslmode;
	s->server_tls_cert_file = snap_strdup(pgbun_server_tls_cert_file);
	s->server_tls_key_file = snap_strdup(pgbun_server_tls_key_file);
	s->server_tls_ca_file = snap_strdup(pgbun_server_tls_ca_file);
	s->server_tls_protocols = snap_strdup(pgbun_server_tls_protocols);
	s->server_tls_ciphers = snap_strdup(pgbun_server_tls_ciphers);

	s->log_connections = pgbun_log_connections;
	s->log_disconnections = pgbun_log_disconnections;
	s->log_pooler_errors = pgbun_log_pooler_errors;
	s->stats_period = pgbun_stats_period;
	s->tcp_keepalive = pgbun_tcp_keepalive;
	s->server_sched_batch = pgbun_server_sched_batch;
	s->tcp_keepidle = pgbun_tcp_keepidle;
	s->tcp_keepintvl = pgbun_tcp_keepintvl;
	s->tcp_keepcnt = pgbun_tcp_keepcnt;
	s->tcp_user_timeout = pgbun_tcp_user_timeout;
	s->tcp_defer_accept = pgbun_tcp_defer_accept;

	/* the GUC-level parsed lists belong to PostgreSQL: copy them */
	if (dbs)
	{
		Size		sz = offsetof(ConfigDatabases, items) + dbs->n * sizeof(DbEntry);
		ConfigDatabases *copy = palloc(Max(sz, sizeof(ConfigDatabases)));

		memcpy(copy, dbs, sz);
		s->databases = copy;
	}
	if (users)
	{
		Size		sz = offsetof(OverrideList, items) + users->n * sizeof(PoolOverride);
		OverrideList *copy = palloc(Max(sz, sizeof(OverrideList)));

		memcpy(copy, users, sz);
		s->users = copy;
	}

	vars = pgbun_guc_variables(&n_vars);
	shown = palloc0(sizeof(SettingText) * Max(n_vars, 1));
	for (int i = 0; i < n_vars; i++)
	{
		struct config_generic *g = vars[i];

		if (strncmp(g->name, "pgbun.", 6) != 0 || (g->flags & GUC_CUSTOM_PLACEHOLDER))
			continue;
		shown[s->n_shown].name = pstrdup(g->name);
		shown[s->n_shown].value = guc_value_text(g);
		s->n_shown++;
	}
	s->shown = shown;

	MemoryContextSwitchTo(old);
	*cxt_out = cxt;
	return s;
}

/* The GUC named name (any case), or NULL. */
static struct config_generic *
find_guc(const char *name)
{
	int			n;
	struct config_generic **vars = pgbun_guc_variables(&n);

	for (int i = 0; i < n; i++)
		if (pg_strcasecmp(vars[i]->name, name) == 0)
			return vars[i];
	return NULL;
}

/*
 * Every pgbun.* line of the configuration files (postgresql.conf with its
 * includes, then postgresql.auto.conf; the last line of a name wins, as in
 * ProcessConfigFile) would be accepted by PostgreSQL. ProcessConfigFile
 * logs a refused value only in the postmaster and keeps going with the
 * others; here a refusal refuses the reload. False with errbuf naming the
 * setting and the reason.
 */
static bool
config_files_ok(char *errbuf, int errlen)
{
	ConfigVariable *head = NULL;
	ConfigVariable *tail = NULL;
	volatile bool ok = true;
	MemoryContext cxt = CurrentMemoryContext;

	if (!ParseConfigFile(ConfigFileName, true, NULL, 0, 0, DEBUG2, &head, &tail) ||
		(DataDir && !ParseConfigFile(PG_AUTOCONF_FILENAME, false, NULL, 0, 0, DEBUG2, &head, &tail)))
	{
		snprintf(errbuf, errlen, "a configuration file has a syntax error (PostgreSQL applied nothing of it)");
		FreeConfigVariables(head);
		return false;
	}
	for (ConfigVariable *v = head; ok && v; v = v->next)
	{
		struct config_generic *g;
		bool		later = false;

		if (pg_strncasecmp(v->name, "pgbun.", 6) != 0 || v->ignore)
			continue;
		for (ConfigVariable *w = v->next; w && !later; w = w->next)
			later = pg_strcasecmp(w->name, v->name) == 0;
		if (later)
			continue;
		g = find_guc(v->name);
		if (g && g->context == PGC_POSTMASTER)
			continue;			/* a restart applies it; ProcessConfigFile says so */
		PG_TRY();
		{
			/* changeVal = false: only parse and check, as the reload did */
			(void) set_config_option(v->name, v->value, PGC_SIGHUP, PGC_S_FILE,
									 GUC_ACTION_SET, false, ERROR, false);
		}
		PG_CATCH();
		{
			ErrorData  *ed;

			MemoryContextSwitchTo(cxt);
			ed = CopyErrorData();
			FlushErrorState();
			/* the detail, when there is one: the message may echo a value (a password) */
			snprintf(errbuf, errlen, "%s: %s", v->name,
					 ed->detail ? ed->detail : ed->message ? ed->message : "refused");
			FreeErrorData(ed);
			ok = false;
		}
		PG_END_TRY();
	}
	FreeConfigVariables(head);
	return ok;
}

/* Make s the snapshot in force and apply what lives outside it. */
static void
settings_install(PgbunSettings *s, MemoryContext cxt)
{
	s->generation = ++settings_generation;
	if (replaced_cxt)
		MemoryContextDelete(replaced_cxt);
	replaced_cxt = current_cxt;
	current_cxt = cxt;
	pgbun_cfg = s;
	/* the tracked parameter list: checked by its GUC's check hook, applied with the rest */
	(void) params_set_extra(s->track_extra_parameters, true);
}

bool
settings_reload(bool at_start)
{
	char		err[1024];
	MemoryContext cxt;
	PgbunSettings *s;

	if (!at_start && !config_files_ok(err, sizeof(err)))
	{
		ereport(LOG,
				(errmsg("pgbun: configuration reload refused: %s", err),
				 errdetail("Every pgbun setting stays as it was before the reload.")));
		return false;
	}
	s = settings_build(&cxt);
	if (!settings_check(s, err, sizeof(err)))
	{
		if (!at_start)
		{
			ereport(LOG,
					(errmsg("pgbun: configuration reload refused: %s", err),
					 errdetail("Every pgbun setting stays as it was before the reload.")));
			MemoryContextDelete(cxt);
			return false;
		}
		ereport(WARNING,
				(errmsg("pgbun: invalid configuration: %s", err),
				 errdetail("pgbun starts with it; a reload with it would be refused.")));
	}
	settings_install(s, cxt);
	return true;
}

void
settings_release_old(void)
{
	if (replaced_cxt)
		MemoryContextDelete(replaced_cxt);
	replaced_cxt = NULL;
}

/*
 * A backend's SQL functions (views) read the same accessor: rebuild it from
 * this backend's GUCs, keeping the previous one when the new one fails the
 * checks (a first one is used regardless: the views only show it).
 */
void
settings_refresh(void)
{
	char		err[1024];
	MemoryContext cxt;
	PgbunSettings *s = settings_build(&cxt);

	if (pgbun_cfg && !settings_check(s, err, sizeof(err)))
	{
		MemoryContextDelete(cxt);
		return;
	}
	s->generation = ++settings_generation;
	if (current_cxt)
		MemoryContextDelete(current_cxt);
	current_cxt = cxt;
	pgbun_cfg = s;
}

bool
settings_shown(const char *name, char *buf, int len)
{
	for (int i = 0; pgbun_cfg && i < pgbun_cfg->n_shown; i++)
	{
		if (strcmp(pgbun_cfg->shown[i].name, name) == 0)
		{
			strlcpy(buf, pgbun_cfg->shown[i].value, len);
			return true;
		}
	}
	return false;
}
