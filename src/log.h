/*
 * log.h - pgbun's log lines: a human message, then stable key=value fields
 * (event, client, database, user, pool, server, sqlstate, duration), so that
 * grep, the server's csvlog and jsonlog (which also get the SQLSTATE as the
 * line's error code) and log shippers can all read them.
 *
 *   pgbun: client closed: client_idle_timeout event=client_close client=10.0.0.7:51234
 *     database=app user=alice pool=app/alice sqlstate=08P01 duration=12.500000
 *
 * A value with a space, a quote or '=' is written in double quotes with
 * backslash escapes; duration is in seconds. Fields without a value are left
 * out. Also the periodic per-pool stats line (pgbun.stats_period).
 */
#ifndef PGBUN_LOG_H
#define PGBUN_LOG_H

#include "postgres.h"

#include "datatype/timestamp.h"

struct Client;
struct Server;

typedef struct LogFields
{
	const char *event;			/* a stable word: client_login, client_close, ... */
	const char *client;			/* the client's address "host:port" */
	const char *database;
	const char *user;
	const char *server;			/* where the server connection goes */
	int			server_pid;		/* its backend's pid, 0 if none */
	const char *sqlstate;
	int64		duration_us;	/* -1: none */
} LogFields;

extern bool pgbun_log_pooler_errors;
extern int	pgbun_stats_period;	/* s, 0: off */

/* Log one line at elevel with the fields after the message. */
extern void pgbun_log(int elevel, const LogFields *f, const char *fmt,...) pg_attribute_printf(3, 4);

/*
 * Log about a client: its address, database and user (of its pool, or the
 * names it asked for at login), its linked server, and the time since it
 * connected as the duration.
 */
extern void pgbun_log_client(int elevel, struct Client *c, const char *event, const char *sqlstate,
							 const char *fmt,...) pg_attribute_printf(5, 6);

/* Janitor of worker 0: one stats line per pool every pgbun.stats_period. */
extern void log_stats_tick(TimestampTz now);

/* Append " key=value" (quoted as needed) to buf[size] at *len, truncating safely. */
extern void log_append_field(char *buf, size_t size, size_t *len, const char *key, const char *value);

#endif							/* PGBUN_LOG_H */
