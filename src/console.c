/*
 * console.c - PgBouncer's admin console as a virtual backend in the worker.
 *
 * A client of the database "pgbouncer" (or "pgbun") authenticates like any
 * other, against the server's own roles; members of pg_monitor (and
 * superusers) may SHOW, superusers and members of pgbun_admin may also run
 * the commands. Its queries never reach a server: each one is answered here,
 * from the shared segment (stats_read.c), with PgBouncer's column names and
 * types, so psql, exporters and runbooks work unchanged.
 *
 * Commands that act on clients and servers (KILL, RECONNECT, DISABLE /
 * ENABLE, KILL_CLIENT, SHUTDOWN) go through control.c's shared state; their
 * answer waits, like PAUSE's, until every worker has applied them
 * (console_tick).
 *
 * A result is built whole into a private buffer (bounded by
 * CONSOLE_MAX_RESULT) and streamed to the socket as it drains; the console
 * reads the client's next query only once the previous answer is out.
 */
#include "postgres.h"

#include <ctype.h>
#include <signal.h>

#include "catalog/pg_type_d.h"
#include "miscadmin.h"
#include "postmaster/postmaster.h"
#include "utils/guc_tables.h"
#include "utils/timestamp.h"

#include "clock.h"
#include "compat.h"
#include "config.h"
#include "config_parse.h"
#include "console.h"
#include "control.h"
#include "log.h"
#include "pooler.h"
#include "proto.h"
#include "sbuf.h"
#include "settings.h"
#include "shmem.h"
#include "stats_read.h"

/* Largest answer one console query may build (SHOW CLIENTS of every slot fits easily). */
#define CONSOLE_MAX_RESULT	(32 * 1024 * 1024)
/* Most columns of any SHOW. */
#define CONSOLE_MAX_COLS	32

/* The extension version the console reports (SHOW VERSION). */
#define PGBUN_VERSION_STRING "1.0"

typedef struct Console
{
	dlist_node	node;			/* on console_clients */
	Client	   *client;
	char		user[NAMEDATALEN];
	bool		may_show;
	bool		may_admin;
	bool		skip_to_sync;	/* extended-protocol message refused: ignore until Sync */
	uint64		pause_gen;		/* PAUSE waiting for this generation, 0 if none */
	uint64		control_gen;	/* a command waiting for this control generation (control.c), 0 if none */
	const char *control_tag;	/* ... and its CommandComplete tag */
	uint8	   *out;			/* the answer being sent */
	uint32		out_len;
	uint32		out_pos;
	uint32		out_cap;
	bool		out_failed;		/* the answer outgrew CONSOLE_MAX_RESULT or memory */
} Console;

/* Console clients, for console_tick (a PAUSE waits across loop turns). */
static dlist_head console_clients = DLIST_STATIC_INIT(console_clients);

bool
console_is_database(const char *database)
{
	return strcmp(database, "pgbouncer") == 0 || strcmp(database, "pgbun") == 0;
}

/* ---- the answer buffer ---- */

static void
out_bytes(Console *cs, const void *data, uint32 len)
{
	if (cs->out_failed)
		return;
	if (cs->out_len + (uint64) len > cs->out_cap)
	{
		uint64		want = Max((uint64) cs->out_cap * 2, (uint64) cs->out_len + len + 1024);
		uint8	   *grown;

		if (want > CONSOLE_MAX_RESULT)
			want = CONSOLE_MAX_RESULT;
		if (cs->out_len + (uint64) len > want || !(grown = realloc(cs->out, want)))
		{
			cs->out_failed = true;
			return;
		}
		cs->out = grown;
		cs->out_cap = (uint32) want;
	}
	memcpy(cs->out + cs->out_len, data, len);
	cs->out_len += len;
}

static void
out_int16(Console *cs, int v)
{
	uint8		b[2] = {(uint8) (v >> 8), (uint8) v};

	out_bytes(cs, b, 2);
}

static void
out_int32(Console *cs, int32 v)
{
	uint8		b[4] = {(uint8) (v >> 24), (uint8) (v >> 16), (uint8) (v >> 8), (uint8) v};

	out_bytes(cs, b, 4);
}

/* Begin a message; returns the offset of its length field for out_end_msg. */
static uint32
out_begin_msg(Console *cs, char type)
{
	uint32		at;

	out_bytes(cs, &type, 1);
	at = cs->out_len;
	out_int32(cs, 0);
	return at;
}

static void
out_end_msg(Console *cs, uint32 at)
{
	uint32		len = cs->out_len - at;

	if (cs->out_failed)
		return;
	cs->out[at] = (uint8) (len >> 24);
	cs->out[at + 1] = (uint8) (len >> 16);
	cs->out[at + 2] = (uint8) (len >> 8);
	cs->out[at + 3] = (uint8) len;
}

/* A message built by proto.c into a small stack buffer (errors, ReadyForQuery). */
static void
out_proto(Console *cs, ProtoBuf *pb)
{
	if (pb->overflow)
		cs->out_failed = true;
	else
		out_bytes(cs, pb->data, (uint32) pb->len);
}

static void
out_error(Console *cs, const char *sqlstate, const char *msg)
{
	uint8		buf[1024];
	ProtoBuf	pb;

	proto_buf_init(&pb, buf, sizeof(buf));
	proto_put_error(&pb, false, sqlstate, msg, NULL, NULL);
	out_proto(cs, &pb);
}

static void
out_notice(Console *cs, const char *msg)
{
	uint8		buf[1024];
	ProtoBuf	pb;

	proto_buf_init(&pb, buf, sizeof(buf));
	proto_put_notice(&pb, "00000", msg);
	out_proto(cs, &pb);
}

static void
out_ready(Console *cs)
{
	uint8		buf[8];
	ProtoBuf	pb;

	proto_buf_init(&pb, buf, sizeof(buf));
	proto_put_ready(&pb, 'I');
	out_proto(cs, &pb);
}

static void
out_complete(Console *cs, const char *tag)
{
	uint32		at = out_begin_msg(cs, 'C');

	out_bytes(cs, tag, strlen(tag) + 1);
	out_end_msg(cs, at);
}

/* ---- rows: a column list, then rows of text values ---- */

typedef struct Column
{
	const char *name;
	char		type;			/* 's' text, 'i' int4, 'q' int8, 'N' numeric, 'T' timestamp as text */
} Column;

typedef struct Rows
{
	Console    *cs;
	int			ncols;
	const Column *cols;
	int			nrows;
	/* the row being filled */
	int			filled;
	uint32		row_at;
} Rows;

static void
rows_begin(Rows *r, Console *cs, const Column *cols, int ncols)
{
	uint32		at = out_begin_msg(cs, 'T');

	r->cs = cs;
	r->cols = cols;
	r->ncols = ncols;
	r->nrows = 0;
	r->filled = 0;
	out_int16(cs, ncols);
	for (int i = 0; i < ncols; i++)
	{
		Oid			type = TEXTOID;
		int			size = -1;

		switch (cols[i].type)
		{
			case 'i':
				type = INT4OID;
				size = 4;
				break;
			case 'q':
				type = INT8OID;
				size = 8;
				break;
			case 'N':
				type = NUMERICOID;
				break;
			default:
				break;
		}
		out_bytes(cs, cols[i].name, strlen(cols[i].name) + 1);
		out_int32(cs, 0);		/* table oid */
		out_int16(cs, 0);		/* column number */
		out_int32(cs, (int32) type);
		out_int16(cs, size);
		out_int32(cs, -1);		/* type modifier */
		out_int16(cs, 0);		/* text format */
	}
	out_end_msg(cs, at);
}

/* Next value of the current row; NULL is SQL NULL. A row ends by itself after ncols values. */
static void
rows_put(Rows *r, const char *value)
{
	if (r->filled == 0)
	{
		r->row_at = out_begin_msg(r->cs, 'D');
		out_int16(r->cs, r->ncols);
	}
	if (value == NULL)
		out_int32(r->cs, -1);
	else
	{
		uint32		len = strlen(value);

		out_int32(r->cs, (int32) len);
		out_bytes(r->cs, value, len);
	}
	if (++r->filled == r->ncols)
	{
		out_end_msg(r->cs, r->row_at);
		r->filled = 0;
		r->nrows++;
	}
}

static void
rows_put_int(Rows *r, int64 v)
{
	char		buf[32];

	snprintf(buf, sizeof(buf), INT64_FORMAT, v);
	rows_put(r, buf);
}

static void
rows_put_uint(Rows *r, uint64 v)
{
	char		buf[32];

	snprintf(buf, sizeof(buf), UINT64_FORMAT, v);
	rows_put(r, buf);
}

/* A timestamp as PgBouncer shows it ("2026-12-01 10:07:13 UTC"); NULL when unset. */
static void
rows_put_time(Rows *r, TimestampTz ts)
{
	char		buf[64];
	pg_time_t	t;
	struct pg_tm *tm;

	if (ts == 0)
	{
		rows_put(r, NULL);
		return;
	}
	t = timestamptz_to_time_t(pgbun_clock_to_wall(ts));
	tm = pg_gmtime(&t);
	if (!tm)
	{
		rows_put(r, NULL);
		return;
	}
	pg_strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S UTC", tm);
	rows_put(r, buf);
}

static void
rows_end(Rows *r, const char *tag)
{
	out_complete(r->cs, tag);
}

#define lengthof_cols(c) ((int) lengthof(c))

/* ---- SHOW ---- */

static void
show_pools(Console *cs)
{
	static const Column cols[] = {
		{"database", 's'}, {"user", 's'}, {"cl_active", 'i'}, {"cl_waiting", 'i'},
		{"cl_active_cancel_req", 'i'}, {"cl_waiting_cancel_req", 'i'}, {"sv_active", 'i'},
		{"sv_active_cancel", 'i'}, {"sv_being_canceled", 'i'}, {"sv_idle", 'i'},
		{"sv_used", 'i'}, {"sv_tested", 'i'}, {"sv_login", 'i'}, {"maxwait", 'i'},
		{"maxwait_us", 'i'}, {"pool_mode", 's'}, {"load_balance_hosts", 's'},
	};
	PoolGauges *gauges = palloc(sizeof(PoolGauges) * PGBUN_MAX_POOLS);
	TimestampTz now = pgbun_clock_now();
	Rows		r;

	stats_count_gauges(gauges);
	rows_begin(&r, cs, cols, lengthof_cols(cols));
	for (int p = 0; p < PGBUN_MAX_POOLS; p++)
	{
		const PgbunPoolSlot *pool = stats_pool_in_use(p);
		PoolGauges *g = &gauges[p];
		int32		secs;
		int32		usecs;

		if (!pool)
			continue;
		stats_split_wait(now, g->oldest_wait, &secs, &usecs);
		rows_put(&r, pool->database);
		rows_put(&r, pool->user);
		rows_put_int(&r, g->cl_active);
		rows_put_int(&r, g->cl_waiting);
		rows_put_int(&r, g->cl_active_cancel_req);
		rows_put_int(&r, g->cl_waiting_cancel_req);
		rows_put_int(&r, g->sv_active);
		rows_put_int(&r, g->sv_active_cancel);
		rows_put_int(&r, g->sv_being_canceled);
		rows_put_int(&r, g->sv_idle);
		rows_put_int(&r, g->sv_used);
		rows_put_int(&r, g->sv_tested);
		rows_put_int(&r, g->sv_login);
		rows_put_int(&r, secs);
		rows_put_int(&r, usecs);
		rows_put(&r, pool_mode_name(pool->pool_mode));
		rows_put(&r, NULL);		/* one server address per pool so far */
	}
	pfree(gauges);
	rows_end(&r, "SHOW");
}

/* SHOW STATS, STATS_TOTALS, STATS_AVERAGES: which columns. */
typedef enum StatsKind
{
	STATS_ALL,
	STATS_TOTALS,
	STATS_AVERAGES,
} StatsKind;

/* The per-database counters in PgBouncer's order. */
static void
put_counters(Rows *r, const DbStats *d, uint64 div)
{
	rows_put_uint(r, d->sum.assign_count / div);
	rows_put_uint(r, d->sum.xact_count / div);
	rows_put_uint(r, d->sum.query_count / div);
	rows_put_uint(r, d->sum.bytes_received / div);
	rows_put_uint(r, d->sum.bytes_sent / div);
}

static void
show_stats(Console *cs, StatsKind kind)
{
	static const Column all[] = {
		{"database", 's'}, {"total_server_assignment_count", 'N'}, {"total_xact_count", 'N'},
		{"total_query_count", 'N'}, {"total_received", 'N'}, {"total_sent", 'N'},
		{"total_xact_time", 'N'}, {"total_query_time", 'N'}, {"total_wait_time", 'N'},
		{"total_client_parse_count", 'N'}, {"total_server_parse_count", 'N'},
		{"total_bind_count", 'N'}, {"avg_server_assignment_count", 'N'},
		{"avg_xact_count", 'N'}, {"avg_query_count", 'N'}, {"avg_recv", 'N'},
		{"avg_sent", 'N'}, {"avg_xact_time", 'N'}, {"avg_query_time", 'N'},
		{"avg_wait_time", 'N'}, {"avg_client_parse_count", 'N'},
		{"avg_server_parse_count", 'N'}, {"avg_bind_count", 'N'},
		/* PgBouncer before 1.8 called total_query_count this; older exporters read it */
		{"total_requests", 'N'},
	};
	static const Column totals[] = {
		{"database", 's'}, {"server_assignment_count", 'N'}, {"xact_count", 'N'},
		{"query_count", 'N'}, {"bytes_received", 'N'}, {"bytes_sent", 'N'},
		{"xact_time", 'N'}, {"query_time", 'N'}, {"wait_time", 'N'},
		{"client_parse_count", 'N'}, {"server_parse_count", 'N'}, {"bind_count", 'N'},
	};
	static const Column averages[] = {
		{"database", 's'}, {"server_assignment_count", 'N'}, {"xact_count", 'N'},
		{"query_count", 'N'}, {"bytes_received", 'N'}, {"bytes_sent", 'N'},
		{"xact_time", 'N'}, {"query_time", 'N'}, {"wait_time", 'N'},
		{"avg_client_parse_count", 'N'}, {"avg_server_parse_count", 'N'},
		{"avg_bind_count", 'N'},
	};
	DbStats    *dbs = palloc(sizeof(DbStats) * PGBUN_MAX_POOLS);
	int			ndbs = stats_sum_by_database(dbs);
	uint64		secs = stats_seconds(pgbun_clock_now());
	Rows		r;

	if (kind == STATS_ALL)
		rows_begin(&r, cs, all, lengthof_cols(all));
	else if (kind == STATS_TOTALS)
		rows_begin(&r, cs, totals, lengthof_cols(totals));
	else
		rows_begin(&r, cs, averages, lengthof_cols(averages));
	for (int i = 0; i < ndbs; i++)
	{
		const DbStats *d = &dbs[i];

		rows_put(&r, d->database);
		if (kind != STATS_AVERAGES)
		{
			put_counters(&r, d, 1);
			rows_put_uint(&r, d->sum.xact_time_us);
			rows_put_uint(&r, d->sum.query_time_us);
			rows_put_uint(&r, d->sum.wait_time_us);
			rows_put_uint(&r, d->sum.client_parse_count);
			rows_put_uint(&r, d->sum.server_parse_count);
			rows_put_uint(&r, d->sum.bind_count);
		}
		if (kind != STATS_TOTALS)
		{
			/* as the pgbun.stats view: rates per second since start, times per xact/query */
			put_counters(&r, d, secs);
			rows_put_uint(&r, stats_div(d->sum.xact_time_us, d->sum.xact_count));
			rows_put_uint(&r, stats_div(d->sum.query_time_us, d->sum.query_count));
			rows_put_uint(&r, stats_div(d->sum.wait_time_us, d->sum.query_count));
			rows_put_uint(&r, d->sum.client_parse_count / secs);
			rows_put_uint(&r, d->sum.server_parse_count / secs);
			rows_put_uint(&r, d->sum.bind_count / secs);
		}
		if (kind == STATS_ALL)
			rows_put_uint(&r, d->sum.query_count);
	}
	pfree(dbs);
	rows_end(&r, "SHOW");
}

/* SHOW TOTALS: the stats of every database summed, as name/value rows. */
static void
show_totals(Console *cs)
{
	static const Column cols[] = {{"name", 's'}, {"value", 'N'}};
	static const char *const names[] = {
		"server_assignment_count", "xact_count", "query_count", "received", "sent",
		"xact_time", "query_time", "wait_time", "client_parse_count",
		"server_parse_count", "bind_count",
	};
	DbStats    *dbs = palloc(sizeof(DbStats) * PGBUN_MAX_POOLS);
	int			ndbs = stats_sum_by_database(dbs);
	uint64		secs = stats_seconds(pgbun_clock_now());
	uint64		sum[lengthof(names)];
	Rows		r;

	memset(sum, 0, sizeof(sum));
	for (int i = 0; i < ndbs; i++)
	{
		const DbStats *d = &dbs[i];
		const uint64 v[lengthof(names)] = {
			d->sum.assign_count, d->sum.xact_count, d->sum.query_count, d->sum.bytes_received, d->sum.bytes_sent,
			d->sum.xact_time_us, d->sum.query_time_us, d->sum.wait_time_us, d->sum.client_parse_count,
			d->sum.server_parse_count, d->sum.bind_count,
		};

		for (int k = 0; k < (int) lengthof(names); k++)
			sum[k] += v[k];
	}
	rows_begin(&r, cs, cols, lengthof_cols(cols));
	for (int k = 0; k < (int) lengthof(names); k++)
	{
		char		name[64];

		snprintf(name, sizeof(name), "total_%s", names[k]);
		rows_put(&r, name);
		rows_put_uint(&r, sum[k]);
	}
	for (int k = 0; k < (int) lengthof(names); k++)
	{
		char		name[64];
		uint64		avg;

		/* times are per transaction / query (wait per query), the rest per second */
		if (k == 5)
			avg = stats_div(sum[5], sum[1]);
		else if (k == 6 || k == 7)
			avg = stats_div(sum[k], sum[2]);
		else
			avg = sum[k] / secs;
		snprintf(name, sizeof(name), "avg_%s", names[k]);
		rows_put(&r, name);
		rows_put_uint(&r, avg);
	}
	pfree(dbs);
	rows_end(&r, "SHOW");
}

/* Which connections SHOW CLIENTS / SERVERS / SOCKETS lists. */
#define CONNS_CLIENTS	0x1
#define CONNS_SERVERS	0x2

static void
show_conns(Console *cs, int which)
{
	static const Column cols[] = {
		{"type", 's'}, {"user", 's'}, {"database", 's'}, {"replication", 's'},
		{"state", 's'}, {"addr", 's'}, {"port", 'i'}, {"local_addr", 's'},
		{"local_port", 'i'}, {"connect_time", 'T'}, {"request_time", 'T'},
		{"wait", 'i'}, {"wait_us", 'i'}, {"close_needed", 'i'}, {"ptr", 's'},
		{"link", 's'}, {"remote_pid", 'i'}, {"tls", 's'}, {"application_name", 's'},
		{"prepared_statements", 'i'}, {"id", 'i'},
	};
	TimestampTz now = pgbun_clock_now();
	Rows		r;

	rows_begin(&r, cs, cols, lengthof_cols(cols));
	for (int i = 0; i < pgbun_shared->n_conn_slots; i++)
	{
		PgbunConnSlot c;
		uint64		link;
		const PgbunPoolSlot *pool;
		char		hex[32];
		int32		wait = 0;
		int32		wait_us = 0;

		if (!stats_read_conn(i, &c, &link))
			continue;
		if (!((c.kind == CONN_CLIENT && (which & CONNS_CLIENTS)) ||
			  (c.kind == CONN_SERVER && (which & CONNS_SERVERS))))
			continue;
		pool = stats_pool_in_use(c.pool);
		if (c.kind == CONN_CLIENT && stats_client_waits(c.state))
			stats_split_wait(now, c.wait_start, &wait, &wait_us);
		rows_put(&r, c.kind == CONN_CLIENT ? "C" : "S");
		rows_put(&r, pool ? pool->user : NULL);
		rows_put(&r, pool ? pool->database : NULL);
		rows_put(&r, "none");	/* pgbun pools no replication connections */
		rows_put(&r, stats_conn_state_name(c.kind, c.state));
		rows_put(&r, c.addr);
		rows_put_int(&r, c.port);
		rows_put(&r, c.local_addr);
		rows_put_int(&r, c.local_port);
		rows_put_time(&r, c.connect_time);
		rows_put_time(&r, c.request_time);
		rows_put_int(&r, wait);
		rows_put_int(&r, wait_us);
		rows_put_int(&r, 0);	/* close_needed: pgbun closes at once */
		snprintf(hex, sizeof(hex), "%" INT64_MODIFIER "x", c.id);
		rows_put(&r, hex);
		if (link)
			snprintf(hex, sizeof(hex), "%" INT64_MODIFIER "x", link);
		else
			hex[0] = '\0';
		rows_put(&r, hex);
		rows_put_int(&r, (int32) c.cancel_pid);
		rows_put(&r, c.tls);
		rows_put(&r, c.application_name);
		rows_put(&r, NULL);		/* not kept per connection (see pgbun.stats) */
		rows_put_uint(&r, c.id);
	}
	rows_end(&r, "SHOW");
}

static void
show_databases(Console *cs)
{
	static const Column cols[] = {
		{"name", 's'}, {"host", 's'}, {"port", 'i'}, {"database", 's'},
		{"force_user", 's'}, {"pool_size", 'i'}, {"min_pool_size", 'i'},
		{"reserve_pool_size", 'i'}, {"server_lifetime", 'i'}, {"pool_mode", 's'},
		{"load_balance_hosts", 's'}, {"max_connections", 'i'},
		{"current_connections", 'i'}, {"max_client_connections", 'i'},
		{"current_client_connections", 'i'}, {"paused", 'i'}, {"disabled", 'i'},
		/* PgBouncer before 1.24 called reserve_pool_size this; older exporters read it */
		{"reserve_pool", 'i'},
	};
	DatabaseRow *dbs = palloc(sizeof(DatabaseRow) * STATS_MAX_DATABASES);
	int			n = stats_read_databases(dbs);
	Rows		r;

	rows_begin(&r, cs, cols, lengthof_cols(cols));
	for (int i = 0; i < n; i++)
	{
		const DatabaseRow *d = &dbs[i];

		rows_put(&r, d->name);
		/* NULL host: the local server's Unix socket */
		rows_put(&r, d->host);
		rows_put_int(&r, d->port);
		rows_put(&r, d->database);
		rows_put(&r, d->force_user);
		rows_put_int(&r, d->pool_size);
		rows_put_int(&r, d->min_pool_size);
		rows_put_int(&r, 0);	/* no reserve pool */
		rows_put_int(&r, d->server_lifetime);
		rows_put(&r, d->pool_mode);	/* NULL: per pool, see SHOW POOLS */
		rows_put(&r, d->load_balance_hosts);
		rows_put_int(&r, d->max_connections);
		rows_put_int(&r, d->current_connections);
		rows_put_int(&r, 0);	/* no per-database client limit */
		rows_put_int(&r, d->current_client_connections);
		rows_put_int(&r, d->paused ? 1 : 0);
		rows_put_int(&r, d->disabled ? 1 : 0);
		rows_put_int(&r, 0);
	}
	pfree(dbs);
	rows_end(&r, "SHOW");
}

static void
show_users(Console *cs)
{
	static const Column cols[] = {
		{"name", 's'}, {"pool_size", 's'}, {"reserve_pool_size", 's'}, {"pool_mode", 's'},
		{"max_user_connections", 'i'}, {"current_connections", 'i'},
		{"max_user_client_connections", 'i'}, {"current_client_connections", 'i'},
	};
	const char **names = palloc(sizeof(char *) * PGBUN_MAX_POOLS);
	int			n = stats_pool_names(true, names, PGBUN_MAX_POOLS);
	Rows		r;

	rows_begin(&r, cs, cols, lengthof_cols(cols));
	for (int i = 0; i < n; i++)
	{
		int			clients;
		int			servers;

		stats_count_conns(true, names[i], &clients, &servers);
		rows_put(&r, names[i]);
		rows_put(&r, "");		/* no per-user pool size: the database's applies */
		rows_put(&r, "");
		rows_put(&r, NULL);
		rows_put_int(&r, pgbun_cfg->max_user_connections);
		rows_put_int(&r, servers);
		rows_put_int(&r, 0);
		rows_put_int(&r, clients);
	}
	pfree(names);
	rows_end(&r, "SHOW");
}

/* A GUC's value as text, read from its variable (no catalog access, cannot throw). */
static void
guc_text(struct config_generic *g, bool boot, char *buf, int len)
{
	switch (g->vartype)
	{
		case PGC_BOOL:
			{
				struct config_bool *b = (struct config_bool *) g;

				strlcpy(buf, (boot ? b->boot_val : *b->variable) ? "on" : "off", len);
				break;
			}
		case PGC_INT:
			{
				struct config_int *i = (struct config_int *) g;

				snprintf(buf, len, "%d", boot ? i->boot_val : *i->variable);
				break;
			}
		case PGC_REAL:
			{
				struct config_real *r = (struct config_real *) g;

				snprintf(buf, len, "%g", boot ? r->boot_val : *r->variable);
				break;
			}
		case PGC_STRING:
			{
				struct config_string *s = (struct config_string *) g;
				const char *v = boot ? s->boot_val : *s->variable;

				strlcpy(buf, v ? v : "", len);
				break;
			}
		case PGC_ENUM:
			{
				struct config_enum *e = (struct config_enum *) g;
				int			v = boot ? e->boot_val : *e->variable;

				buf[0] = '\0';
				for (const struct config_enum_entry *o = e->options; o && o->name; o++)
				{
					if (o->val == v && !o->hidden)
					{
						strlcpy(buf, o->name, len);
						break;
					}
				}
				break;
			}
	}
}

/* SHOW CONFIG: every pgbun.* setting, named without the prefix as in PgBouncer. */
static void
show_config(Console *cs)
{
	static const Column cols[] = {
		{"key", 's'}, {"value", 's'}, {"default", 's'}, {"changeable", 's'},
	};
	int			n;
	struct config_generic **vars = pgbun_guc_variables(&n);
	Rows		r;

	rows_begin(&r, cs, cols, lengthof_cols(cols));
	for (int i = 0; i < n; i++)
	{
		struct config_generic *g = vars[i];
		char		value[1024];
		char		def[1024];

		if (strncmp(g->name, "pgbun.", 6) != 0 || (g->flags & GUC_CUSTOM_PLACEHOLDER))
			continue;
		if (!settings_shown(g->name, value, sizeof(value)))	/* the value in force */
			guc_text(g, false, value, sizeof(value));
		guc_text(g, true, def, sizeof(def));
		rows_put(&r, g->name + 6);
		rows_put(&r, value);
		rows_put(&r, def);
		rows_put(&r, g->context == PGC_POSTMASTER ? "no" : "yes");
	}
	rows_end(&r, "SHOW");
}

/* SHOW LISTS: counts over all workers (connection slots are shared). */
static void
show_lists(Console *cs)
{
	static const Column cols[] = {{"list", 's'}, {"items", 'i'}};
	ListRow		lists[STATS_LISTS];
	int			n = stats_read_lists(lists);
	Rows		r;

	rows_begin(&r, cs, cols, lengthof_cols(cols));
	for (int i = 0; i < n; i++)
	{
		rows_put(&r, lists[i].list);
		rows_put_int(&r, lists[i].items);
	}
	rows_end(&r, "SHOW");
}

/* SHOW MEM: this worker's own objects (each worker has its own). */
static void
show_mem(Console *cs)
{
	static const Column cols[] = {
		{"name", 's'}, {"size", 'i'}, {"used", 'i'}, {"free", 'i'}, {"memtotal", 'i'},
	};
	int			bufs = sbuf_buffers_in_use();
	int			pools = 0;
	dlist_iter	it;
	Rows		r;

	dlist_foreach(it, &W->pools)
		pools++;
	rows_begin(&r, cs, cols, lengthof_cols(cols));
	rows_put(&r, "client");
	rows_put_int(&r, sizeof(Client));
	rows_put_int(&r, W->n_clients);
	rows_put_int(&r, 0);
	rows_put_int(&r, (int64) W->n_clients * sizeof(Client));
	rows_put(&r, "pool");
	rows_put_int(&r, sizeof(Pool));
	rows_put_int(&r, pools);
	rows_put_int(&r, 0);
	rows_put_int(&r, (int64) pools * sizeof(Pool));
	rows_put(&r, "iobuf");
	rows_put_int(&r, SBUF_SIZE);
	rows_put_int(&r, bufs);
	rows_put_int(&r, 0);
	rows_put_int(&r, (int64) bufs * SBUF_SIZE);
	rows_end(&r, "SHOW");
}

static void
show_version(Console *cs)
{
	static const Column cols[] = {{"version", 's'}};
	Rows		r;

	rows_begin(&r, cs, cols, 1);
	rows_put(&r, "pgbun " PGBUN_VERSION_STRING " (PgBouncer 1.25 compatible console) on PostgreSQL " PG_VERSION);
	rows_end(&r, "SHOW");
}

static void
show_state(Console *cs)
{
	static const Column cols[] = {{"key", 's'}, {"value", 's'}};
	bool		all;
	Rows		r;

	SpinLockAcquire(&pgbun_shared->mutex);
	all = pgbun_shared->pause_all;
	SpinLockRelease(&pgbun_shared->mutex);
	rows_begin(&r, cs, cols, lengthof_cols(cols));
	rows_put(&r, "active");
	rows_put(&r, all ? "no" : "yes");
	rows_put(&r, "paused");
	rows_put(&r, all ? "yes" : "no");
	rows_put(&r, "suspended");
	rows_put(&r, "no");
	rows_end(&r, "SHOW");
}

/* SHOW DNS_HOSTS: the server host name and where it points now (this worker's resolver). */
static void
show_dns_hosts(Console *cs)
{
	static const Column cols[] = {{"hostname", 's'}, {"ttl", 'q'}, {"addrs", 's'}};
	Rows		r;

	rows_begin(&r, cs, cols, lengthof_cols(cols));
	if (pgbun_cfg->server_host && pgbun_cfg->server_host[0] && pgbun_cfg->server_host[0] != '/' &&
		W->server_addr_len > 0)
	{
		rows_put(&r, pgbun_cfg->server_host);
		rows_put_int(&r, pgbun_cfg->dns_max_ttl / 1000);
		rows_put(&r, W->server_addr_text);
	}
	rows_end(&r, "SHOW");
}

/*
 * SHOW HOSTS (pgbun's own): each host of each pgbun.databases host list,
 * with its role and health from the shared host slots, as the view
 * pgbun.hosts shows them.
 */
static void
show_hosts(Console *cs)
{
	static const Column cols[] = {
		{"database", 's'}, {"host", 's'}, {"port", 'i'}, {"target_session_attrs", 's'},
		{"role", 's'}, {"state", 's'}, {"lag_ms", 'i'}, {"last_check", 'T'},
		{"failures", 'i'}, {"next_retry", 'T'}, {"last_error", 's'}, {"servers", 'i'},
	};
	const ConfigDatabases *cfg = config_databases();
	int			default_port = pgbun_cfg->server_port > 0 ? pgbun_cfg->server_port : PostPortNumber;
	Rows		r;

	rows_begin(&r, cs, cols, lengthof_cols(cols));
	for (int i = 0; cfg && i < cfg->n; i++)
	{
		const DbEntry *e = &cfg->items[i];
		const char *h = e->host;

		for (int k = 0; e->routed && *h && k < CONFIG_MAX_HOSTS; k++)
		{
			size_t		n = strcspn(h, ",");
			size_t		lead = 0;
			char		name[PGBUN_HOST_NAME_LEN];
			int			port = e->ports[k] > 0 ? e->ports[k] : default_port;
			const PgbunHostSlot *hs = NULL;

			while (lead < n && h[lead] == ' ')
				lead++;
			snprintf(name, sizeof(name), "%.*s", (int) (n - lead), h + lead);
			for (int z = strlen(name) - 1; z >= 0 && name[z] == ' '; z--)
				name[z] = '\0';
			for (int sl = 0; sl < PGBUN_MAX_HOSTS && !hs; sl++)
				if (pgbun_shared->hosts[sl].in_use && pgbun_shared->hosts[sl].port == port &&
					strcmp(pgbun_shared->hosts[sl].host, name) == 0)
					hs = &pgbun_shared->hosts[sl];
			rows_put(&r, e->name);
			rows_put(&r, name);
			rows_put_int(&r, port);
			rows_put(&r, tsa_name(e->tsa));
			rows_put(&r, !hs || hs->role == HOST_ROLE_UNKNOWN ? "unknown" :
					 hs->role == HOST_ROLE_PRIMARY ? "primary" : "standby");
			rows_put(&r, !hs || hs->state == HOST_UP ? "up" : hs->state == HOST_DOWN ? "down" : "checking");
			if (hs && hs->lag_ms >= 0)
				rows_put_int(&r, hs->lag_ms);
			else
				rows_put(&r, NULL);
			rows_put_time(&r, hs ? hs->last_check : 0);
			rows_put_int(&r, hs ? hs->failures : 0);
			rows_put_time(&r, hs && hs->state != HOST_UP ? hs->next_retry : 0);
			rows_put(&r, hs && hs->last_error[0] ? hs->last_error : NULL);
			rows_put_int(&r, hs ? (int) pg_atomic_read_u32(&((PgbunHostSlot *) hs)->n_servers) : 0);
			h += n;
			if (*h == ',')
				h++;
		}
	}
	rows_end(&r, "SHOW");
}

static void
show_help(Console *cs)
{
	out_notice(cs, "Console usage\n"
			   "\tSHOW HELP|CONFIG|DATABASES|POOLS|CLIENTS|SERVERS|USERS|VERSION\n"
			   "\tSHOW STATS|STATS_TOTALS|STATS_AVERAGES|TOTALS|LISTS|MEM|STATE|SOCKETS|DNS_HOSTS|HOSTS\n"
			   "\tPAUSE [<db>]\n"
			   "\tRESUME [<db>]\n"
			   "\tDISABLE <db>\n"
			   "\tENABLE <db>\n"
			   "\tRECONNECT [<db>]\n"
			   "\tKILL [<db>]\n"
			   "\tKILL_CLIENT <id>\n"
			   "\tRELOAD\n"
			   "\tSHUTDOWN");
	out_complete(cs, "SHOW");
}

typedef struct ShowEntry
{
	const char *word;
	void		(*fn) (Console *cs);
} ShowEntry;

static void show_stats_all(Console *cs) { show_stats(cs, STATS_ALL); }
static void show_stats_totals(Console *cs) { show_stats(cs, STATS_TOTALS); }
static void show_stats_averages(Console *cs) { show_stats(cs, STATS_AVERAGES); }
static void show_clients(Console *cs) { show_conns(cs, CONNS_CLIENTS); }
static void show_servers(Console *cs) { show_conns(cs, CONNS_SERVERS); }
static void show_sockets(Console *cs) { show_conns(cs, CONNS_CLIENTS | CONNS_SERVERS); }

static const ShowEntry show_table[] = {
	{"clients", show_clients},
	{"config", show_config},
	{"databases", show_databases},
	{"dns_hosts", show_dns_hosts},
	{"help", show_help},
	{"hosts", show_hosts},
	{"lists", show_lists},
	{"mem", show_mem},
	{"pools", show_pools},
	{"servers", show_servers},
	{"sockets", show_sockets},
	{"state", show_state},
	{"stats", show_stats_all},
	{"stats_averages", show_stats_averages},
	{"stats_totals", show_stats_totals},
	{"totals", show_totals},
	{"users", show_users},
	{"version", show_version},
};

/* ---- commands ---- */

/* PAUSE [db]: the answer waits until no client of a paused pool holds a server (console_tick). */
static void
cmd_pause(Console *cs, const char *arg)
{
	uint64		gen = pgbun_pause_set_add(arg[0] ? arg : NULL);

	if (gen == 0)
	{
		out_error(cs, "54000", "pgbun: too many databases are paused already");
		return;
	}
	cs->pause_gen = gen;
}

static void
cmd_resume(Console *cs, const char *arg)
{
	pgbun_pause_set_remove(arg[0] ? arg : NULL);
	out_complete(cs, "RESUME");
}

/* RELOAD: what pg_reload_conf() does (the postmaster re-reads the files, then every process). */
static void
cmd_reload(Console *cs, const char *arg)
{
	if (kill(PostmasterPid, SIGHUP) != 0)
	{
		out_error(cs, "58000", "pgbun: could not signal the postmaster to reload");
		return;
	}
	out_complete(cs, "RELOAD");
}

/*
 * The commands below act on every worker through control.c: the answer
 * waits (console_tick) until each running worker has applied the request,
 * so its effect is in place when the client reads CommandComplete.
 */
static void
wait_control(Console *cs, uint64 gen, const char *tag)
{
	if (gen == 0)
	{
		out_error(cs, "54000", "pgbun: too many databases have console commands in force (at most 64 disabled)");
		return;
	}
	cs->control_gen = gen;
	cs->control_tag = tag;
}

/* Refuse the console's own database names as a command's target; true if refused. */
static bool
refuse_console_db(Console *cs, const char *arg, const char *what)
{
	char		msg[256];

	if (!console_is_database(arg))
		return false;
	snprintf(msg, sizeof(msg), "pgbun: cannot %s the admin console database \"%s\"", what, arg);
	out_error(cs, "42809", msg);
	return true;
}

/*
 * KILL [db]: as PgBouncer, pause the database (or everything) and close its
 * clients and servers at once; new clients wait until RESUME.
 */
static void
cmd_kill(Console *cs, const char *arg)
{
	if (refuse_console_db(cs, arg, "kill"))
		return;
	if (pgbun_pause_set_add(arg[0] ? arg : NULL) == 0)
	{
		out_error(cs, "54000", "pgbun: too many databases are paused already");
		return;
	}
	wait_control(cs, control_kill_database(arg[0] ? arg : NULL), "KILL");
}

/* KILL_CLIENT id: close one client, by the id column of SHOW CLIENTS. */
static void
cmd_kill_client(Console *cs, const char *arg)
{
	char		msg[256];
	char	   *end;
	uint64		id;
	uint64		gen;

	errno = 0;
	id = strtou64(arg, &end, 10);
	if (!arg[0] || *end != '\0' || errno != 0 || id == 0 || !isdigit((unsigned char) arg[0]))
	{
		snprintf(msg, sizeof(msg), "pgbun: invalid client id \"%s\": KILL_CLIENT takes the id column of SHOW CLIENTS", arg);
		out_error(cs, "22023", msg);
		return;
	}
	gen = control_kill_client(id);
	if (gen == 0)
	{
		snprintf(msg, sizeof(msg), "pgbun: client " UINT64_FORMAT " not found", id);
		out_error(cs, "42704", msg);
		return;
	}
	wait_control(cs, gen, "KILL_CLIENT");
}

/*
 * RECONNECT [db]: each server connection is closed instead of reused: idle
 * ones at once, the others when their client releases them.
 */
static void
cmd_reconnect(Console *cs, const char *arg)
{
	if (refuse_console_db(cs, arg, "reconnect"))
		return;
	wait_control(cs, control_reconnect_database(arg[0] ? arg : NULL), "RECONNECT");
}

/* DISABLE db / ENABLE db: refuse or accept again new clients of a database. */
static void
cmd_disable_enable(Console *cs, const char *arg, bool disable)
{
	if (!arg[0])
		out_error(cs, "42601", disable ? "pgbun: DISABLE requires a database name" :
				  "pgbun: ENABLE requires a database name");
	else if (!refuse_console_db(cs, arg, disable ? "disable" : "enable"))
		wait_control(cs, control_set_disabled(arg, disable), disable ? "DISABLE" : "ENABLE");
}

static void
cmd_disable(Console *cs, const char *arg)
{
	cmd_disable_enable(cs, arg, true);
}

static void
cmd_enable(Console *cs, const char *arg)
{
	cmd_disable_enable(cs, arg, false);
}

/*
 * SHUTDOWN: every pgbun worker closes its clients and exits, not to be
 * started again until the server restarts; the server itself goes on.
 * PgBouncer's WAIT_FOR_CLIENTS / WAIT_FOR_SERVERS variants are not offered.
 */
static void
cmd_shutdown(Console *cs, const char *arg)
{
	if (arg[0])
	{
		char		msg[256];
		bool		variant = strcmp(arg, "wait_for_clients") == 0 || strcmp(arg, "wait_for_servers") == 0;

		if (variant)
			snprintf(msg, sizeof(msg), "pgbun: SHUTDOWN %s is not supported; use PAUSE, then SHUTDOWN", arg);
		else
			snprintf(msg, sizeof(msg), "pgbun: SHUTDOWN takes no argument (got \"%s\")", arg);
		out_error(cs, variant ? "0A000" : "42601", msg);
		return;
	}
	control_request_shutdown();
	out_complete(cs, "SHUTDOWN");
}

typedef struct CommandEntry
{
	const char *word;
	bool		takes_arg;
	void		(*fn) (Console *cs, const char *arg);
} CommandEntry;

static const CommandEntry command_table[] = {
	{"disable", true, cmd_disable},
	{"enable", true, cmd_enable},
	{"kill", true, cmd_kill},
	{"kill_client", true, cmd_kill_client},
	{"pause", true, cmd_pause},
	{"reconnect", true, cmd_reconnect},
	{"reload", false, cmd_reload},
	{"resume", true, cmd_resume},
	{"shutdown", true, cmd_shutdown},
};

/* Copy the next word of *p (letters, digits, _ or a "quoted" name) into out; false if none. */
static bool
next_word(const char **p, char *out, int len)
{
	const char *s = *p;
	int			n = 0;

	while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
		s++;
	if (*s == '"')
	{
		for (s++; *s && *s != '"'; s++)
			if (n < len - 1)
				out[n++] = *s;
		if (*s == '"')
			s++;
	}
	else
	{
		for (; *s && *s != ' ' && *s != '\t' && *s != '\n' && *s != '\r' && *s != ';'; s++)
			if (n < len - 1)
				out[n++] = pg_ascii_tolower((unsigned char) *s);
	}
	out[n] = '\0';
	*p = s;
	return n > 0;
}

/* Nothing but white space and semicolons left? */
static bool
at_end(const char *p)
{
	for (; *p; p++)
		if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r' && *p != ';')
			return false;
	return true;
}

/* Run one simple query. The answer (and the ReadyForQuery, unless a PAUSE waits) goes to cs->out. */
static void
run_query(Console *cs, const char *sql)
{
	char		word[NAMEDATALEN];
	char		arg[NAMEDATALEN];
	char		msg[256];
	const char *p = sql;

	if (!next_word(&p, word, sizeof(word)))
	{
		/* an empty query: EmptyQueryResponse, as PostgreSQL */
		uint32		at = out_begin_msg(cs, 'I');

		out_end_msg(cs, at);
		out_ready(cs);
		return;
	}
	if (strcmp(word, "show") == 0 || strcmp(word, "select") == 0)
	{
		/* PgBouncer takes "SELECT x" as "SHOW x" too */
		if (!next_word(&p, arg, sizeof(arg)))
			strlcpy(arg, "help", sizeof(arg));
		if (!at_end(p))
			out_error(cs, "42601", "pgbun: SHOW takes one word; try SHOW HELP");
		else
		{
			const ShowEntry *e = NULL;

			for (int i = 0; i < (int) lengthof(show_table) && !e; i++)
				if (strcmp(show_table[i].word, arg) == 0)
					e = &show_table[i];
			if (!e)
			{
				snprintf(msg, sizeof(msg), "pgbun: unknown SHOW item \"%s\"; try SHOW HELP", arg);
				out_error(cs, "42601", msg);
			}
			else
				e->fn(cs);
		}
		out_ready(cs);
		return;
	}
	for (int i = 0; i < (int) lengthof(command_table); i++)
	{
		const CommandEntry *e = &command_table[i];

		if (strcmp(e->word, word) != 0)
			continue;
		if (!cs->may_admin)
			out_error(cs, "42501", "pgbun: permission denied for console command: superuser or a member of pgbun_admin only");
		else
		{
			arg[0] = '\0';
			if (e->takes_arg)
				(void) next_word(&p, arg, sizeof(arg));
			if (!at_end(p))
			{
				snprintf(msg, sizeof(msg), "pgbun: too many arguments to %s", word);
				out_error(cs, "42601", msg);
			}
			else
			{
				/* as PgBouncer, every command that runs is logged, with who ran it */
				pgbun_log_client(LOG, cs->client, "console_command", NULL, "pgbun: console command %s%s%s by user %s",
								 word, arg[0] ? " " : "", arg, cs->user);
				e->fn(cs, arg);
			}
		}
		if (cs->pause_gen == 0 && cs->control_gen == 0)
			out_ready(cs);
		return;
	}
	snprintf(msg, sizeof(msg), "pgbun: unknown console command \"%s\"; try SHOW HELP", word);
	out_error(cs, "42601", msg);
	out_ready(cs);
}

/* ---- I/O ---- */

/* Send as much of the answer as the socket takes. false: the client was closed. */
static bool
console_drain(Client *c)
{
	Console    *cs = c->console;
	bool		flushed_empty = false;

	while (cs->out_pos < cs->out_len)
	{
		uint32		n = Min(cs->out_len - cs->out_pos, (uint32) (SBUF_SIZE / 2));

		if (sbuf_queue(&c->sb, cs->out + cs->out_pos, n))
		{
			cs->out_pos += n;
			flushed_empty = false;
			continue;
		}
		if (flushed_empty)
		{
			client_close(c, "53200", "out of memory for the console's answer");
			return false;
		}
		switch (sbuf_flush_out(&c->sb))
		{
			case -1:
				client_close(c, NULL, "write to console client failed");
				return false;
			case 0:
				return true;	/* the writable edge resumes it */
			default:
				flushed_empty = true;
		}
	}
	if (cs->out)
	{
		free(cs->out);
		cs->out = NULL;
		cs->out_len = cs->out_pos = cs->out_cap = 0;
	}
	if (sbuf_flush_out(&c->sb) < 0)
	{
		client_close(c, NULL, "write to console client failed");
		return false;
	}
	return true;
}

static bool
console_busy(const Console *cs)
{
	return cs->out_pos < cs->out_len || cs->pause_gen != 0 || cs->control_gen != 0;
}

static PktAction
console_msg_handler(void *owner, const ProtoHeader *hdr, const uint8 *msg, uint32 avail)
{
	Client	   *c = owner;
	Console    *cs = c->console;
	uint32		size = proto_msg_size(hdr);

	if (console_busy(cs))
		return PKT_STOP;		/* one answer at a time */
	if (hdr->type == 'X')
		return PKT_CLOSE;
	if (avail < size)
		return PKT_NEED_FULL;	/* a console query longer than the buffer is an error */
	switch (hdr->type)
	{
		case 'Q':
			{
				const char *sql = (const char *) msg + PROTO_HDR_LEN;

				if (hdr->len <= 4 || msg[size - 1] != '\0')
				{
					c->sb.error = "malformed Query message";
					return PKT_CLOSE;
				}
				run_query(cs, sql);
				if (cs->out_failed)
				{
					/* the partial answer is dropped: the client gets one error instead */
					cs->out_len = cs->out_pos = 0;
					cs->out_failed = false;
					out_error(cs, "54000", "pgbun: the console's answer is too large");
					out_ready(cs);
				}
				return PKT_CONSUME_STOP;
			}
		case 'S':
			cs->skip_to_sync = false;
			out_ready(cs);
			return PKT_CONSUME_STOP;
		case 'H':
			return PKT_CONSUME;
		default:
			if (!cs->skip_to_sync)
			{
				/* Parse, Bind, ... and COPY data: refused once, then skipped until Sync */
				out_error(cs, "0A000", "pgbun: the admin console understands only simple queries");
				cs->skip_to_sync = true;
				return PKT_CONSUME_STOP;
			}
			return PKT_CONSUME;
	}
}

/* Read, answer and send until the client has nothing more or the socket is full. */
static void
console_work(Client *c)
{
	Console    *cs = c->console;

	for (int rounds = 0; rounds < 64; rounds++)
	{
		uint64		rd = 0;
		uint64		wr = 0;
		PumpResult	r;

		if (!console_drain(c) || c->closed)
			return;
		if (console_busy(cs))
			return;
		r = sbuf_pump(&c->sb, NULL, SBUF_SIZE, console_msg_handler, c, &rd, &wr);
		switch (r)
		{
			case PUMP_STOPPED:
				continue;		/* an answer to send */
			case PUMP_CLOSE:
				client_close(c, c->sb.error ? "08P01" : NULL, "%s",
							 c->sb.error ? c->sb.error : "client sent Terminate");
				return;
			case PUMP_EOF:
				client_close(c, NULL, "client disconnected");
				return;
			case PUMP_SRC_ERROR:
				client_close(c, "08P01", "%s", c->sb.error ? c->sb.error : "protocol error");
				return;
			default:
				(void) console_drain(c);
				return;
		}
	}
}

/* The events argument may be 0: "look at what is buffered" (client_pump_in). */
void
console_on_event(Client *c, uint32 events)
{
	if (c->closed || !c->console)
		return;
	if (events & (PEV_IN | PEV_HUP))
		sbuf_ready_to_read(&c->sb, (events & PEV_HUP) != 0);
	console_work(c);
}

void
console_tick(void)
{
	dlist_mutable_iter it;

	dlist_foreach_modify(it, &console_clients)
	{
		Console    *cs = dlist_container(Console, node, it.cur);
		Client	   *c = cs->client;

		if (c->closed)
			continue;
		if (cs->pause_gen != 0 && pgbun_pause_done(cs->pause_gen))
		{
			cs->pause_gen = 0;
			out_complete(cs, "PAUSE");
			out_ready(cs);
			console_work(c);
		}
		else if (cs->control_gen != 0 && control_done(cs->control_gen))
		{
			cs->control_gen = 0;
			out_complete(cs, cs->control_tag);
			out_ready(cs);
			console_work(c);
		}
	}
}

void
console_start(Client *c, const char *user, bool show, bool admin)
{
	static const char *const params[][2] = {
		{"server_version", PG_VERSION},
		{"server_encoding", "UTF8"},
		{"client_encoding", "UTF8"},
		{"DateStyle", "ISO, MDY"},
		{"IntervalStyle", "postgres"},
		{"TimeZone", "UTC"},
		{"integer_datetimes", "on"},
		{"standard_conforming_strings", "on"},
		{"application_name", ""},
	};
	Console    *cs;
	ProtoBuf	pb;

	if (!show)
	{
		client_close(c, "42501", "permission denied for the admin console: a member of pg_monitor (SHOW) or of pgbun_admin (commands) only");
		return;
	}
	/* the console writes as the socket takes it, from its own events */
	if (sbuf_out_always(&c->sb) < 0)
	{
		client_close(c, NULL, "could not watch socket: %m");
		return;
	}
	cs = calloc(1, sizeof(Console));
	if (!cs || !sbuf_out_begin(&c->sb, &pb))
	{
		free(cs);
		client_close(c, "53200", "out of memory");
		return;
	}
	cs->client = c;
	strlcpy(cs->user, user, NAMEDATALEN);
	cs->may_show = show;
	cs->may_admin = admin;
	c->console = cs;
	/* a key for BackendKeyData; a cancel of a console query has nothing to stop */
	pg_strong_random(&c->cancel_pid, sizeof(c->cancel_pid));
	pg_strong_random(&c->cancel_key, sizeof(c->cancel_key));
	c->cancel_pid &= 0x7FFFFFFF;
	proto_put_auth(&pb, PROTO_AUTH_OK, NULL, 0);
	for (int i = 0; i < (int) lengthof(params); i++)
		proto_put_parameter_status(&pb, params[i][0], params[i][1]);
	proto_put_backend_key(&pb, c->cancel_pid, c->cancel_key);
	proto_put_ready(&pb, 'I');
	if (pb.overflow)
	{
		client_close(c, "53200", "out of memory");
		return;
	}
	sbuf_out_commit(&c->sb, &pb);
	dlist_push_tail(&console_clients, &cs->node);
	client_set_state(c, CL_ACTIVE);
	if (pgbun_cfg->log_connections)
		ereport(LOG, (errmsg("pgbun: console login: user=%s%s", cs->user, admin ? " (admin)" : "")));
	/* called inside the login's pump of this client: its input is read later (client_pump_in) */
	(void) client_flush(c);
}

void
console_free(Client *c)
{
	if (!c->console)
		return;
	dlist_delete(&c->console->node);
	free(c->console->out);
	free(c->console);
	c->console = NULL;
}
