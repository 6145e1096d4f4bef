/*
 * admin.c - the SQL-callable functions of the pgbun schema: the set-returning
 * functions behind the pools, stats, clients and servers views, and the
 * pause()/resume() commands.
 *
 * Everything is read from the shared segment (shmem.h). Gauges are derived
 * from one pass over the connection slots, each copied with the changecount
 * protocol, so the views never block a worker. Pause is declarative: the
 * functions edit the paused set, bump pause_generation, wake the workers and
 * (pause only) wait on pause_cv until every running worker has applied the
 * generation and drained its paused pools.
 *
 * Version 1.2 adds pgbun.databases and pgbun.lists (the console's SHOW
 * DATABASES and SHOW LISTS, from the same readers in stats_read.c) and
 * pgbun.latency (percentiles from the histograms of counters.c).
 *
 * Entry points carry the extension version they were written for
 * (pgbun_pools_1_0, ...): when a later version changes a function's columns
 * it gets a new entry point and the old SQL definition keeps working.
 */
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/condition_variable.h"
#include "storage/latch.h"
#include "storage/spin.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"
#include "utils/wait_event.h"

#include "clock.h"
#include "config.h"
#include "counters.h"
#include "settings.h"
#include "shmem.h"
#include "stats_read.h"

PG_FUNCTION_INFO_V1(pgbun_pools_1_0);
PG_FUNCTION_INFO_V1(pgbun_stats_1_0);
PG_FUNCTION_INFO_V1(pgbun_clients_1_0);
PG_FUNCTION_INFO_V1(pgbun_servers_1_0);
PG_FUNCTION_INFO_V1(pgbun_pause_1_0);
PG_FUNCTION_INFO_V1(pgbun_resume_1_0);
PG_FUNCTION_INFO_V1(pgbun_databases_1_2);
PG_FUNCTION_INFO_V1(pgbun_lists_1_2);
PG_FUNCTION_INFO_V1(pgbun_latency_1_2);

#define POOLS_COLS		12
#define STATS_COLS		18
#define CONNS_COLS		19
#define CONNS_HOST_COLS 2		/* 1.3: target, host (pgbun_servers_1_3) */
#define DATABASES_COLS	17
#define LATENCY_COLS	(2 + HIST_KINDS * 4)

/* How often a waiting pause() looks again even without a broadcast (ms). */
#define PAUSE_POLL_MS	100

/* Refuse to run when the library was not preloaded (no segment to read). */
static void
require_shmem(void)
{
	if (!pgbun_shmem_attached())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pgbun: pgbun is not loaded through shared_preload_libraries"),
				 errhint("Add pgbun to shared_preload_libraries in postgresql.conf and restart the server.")));
}

/* ERROR unless at least one pooler worker runs (pause/resume need someone to act). */
static void
require_worker(void)
{
	PgbunShared *sh = pgbun_shared;
	bool		any = false;

	SpinLockAcquire(&sh->mutex);
	for (int i = 0; i < sh->n_workers && !any; i++)
		any = pgbun_worker_running(&sh->workers[i]);
	SpinLockRelease(&sh->mutex);

	if (!any && pgbun_workers == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pgbun: no pooler worker is running"),
				 errhint("pgbun.workers = 0 turns the pooler off; set it to 1 or more and restart the server.")));
	if (!any)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pgbun: no pooler worker is running"),
				 errhint("pgbun.workers is %d, but no worker is up: they may be starting or restarting; see the server log.",
						 pgbun_workers)));
}

/*
 * pgbun.pools: one row per pool in use, with gauges counted from one pass
 * over the connection slots. Connections are counted first and pools listed
 * after, so every pool a connection points at is already in use when the
 * pools are listed.
 */
typedef enum PoolsColumns
{
	POOLS_1_0,					/* up to pool_mode */
	POOLS_1_4,					/* + sv_being_canceled */
	POOLS_1_5,					/* + cl_active_cancel_req, cl_waiting_cancel_req, sv_active_cancel */
} PoolsColumns;

static void
pools_srf(FunctionCallInfo fcinfo, PoolsColumns version)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	PoolGauges *gauges;
	TimestampTz now;

	require_shmem();
	InitMaterializedSRF(fcinfo, 0);

	gauges = palloc(sizeof(PoolGauges) * PGBUN_MAX_POOLS);
	stats_count_gauges(gauges);

	now = pgbun_clock_now();
	for (int p = 0; p < PGBUN_MAX_POOLS; p++)
	{
		const PgbunPoolSlot *pool = stats_pool_in_use(p);
		PoolGauges *g = &gauges[p];
		Datum		values[POOLS_COLS + 4];
		bool		nulls[POOLS_COLS + 4];
		int32		maxwait;
		int32		maxwait_us;
		int			col = 0;

		if (pool == NULL)
			continue;

		memset(nulls, 0, sizeof(nulls));
		stats_split_wait(now, g->oldest_wait, &maxwait, &maxwait_us);

		values[col++] = CStringGetTextDatum(pool->database);
		values[col++] = CStringGetTextDatum(pool->user);
		values[col++] = Int32GetDatum(g->cl_active);
		values[col++] = Int32GetDatum(g->cl_waiting);
		values[col++] = Int32GetDatum(g->sv_active);
		values[col++] = Int32GetDatum(g->sv_idle);
		values[col++] = Int32GetDatum(g->sv_used);
		values[col++] = Int32GetDatum(g->sv_tested);
		values[col++] = Int32GetDatum(g->sv_login);
		values[col++] = Int32GetDatum(maxwait);
		values[col++] = Int32GetDatum(maxwait_us);
		values[col++] = CStringGetTextDatum(pool_mode_name(pool->pool_mode));
		if (version >= POOLS_1_4)
			values[col++] = Int32GetDatum(g->sv_being_canceled);
		if (version >= POOLS_1_5)
		{
			values[col++] = Int32GetDatum(g->cl_active_cancel_req);
			values[col++] = Int32GetDatum(g->cl_waiting_cancel_req);
			values[col++] = Int32GetDatum(g->sv_active_cancel);
		}
		Assert(col == POOLS_COLS + (version >= POOLS_1_5 ? 4 : version >= POOLS_1_4 ? 1 : 0));

		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}

	pfree(gauges);
}

Datum
pgbun_pools_1_0(PG_FUNCTION_ARGS)
{
	pools_srf(fcinfo, POOLS_1_0);
	return (Datum) 0;
}

/* pgbun.pools from 1.4: with sv_being_canceled */
PG_FUNCTION_INFO_V1(pgbun_pools_1_4);
Datum
pgbun_pools_1_4(PG_FUNCTION_ARGS)
{
	pools_srf(fcinfo, POOLS_1_4);
	return (Datum) 0;
}

/* pgbun.pools from 1.5: with the cancels on their way */
PG_FUNCTION_INFO_V1(pgbun_pools_1_5);
Datum
pgbun_pools_1_5(PG_FUNCTION_ARGS)
{
	pools_srf(fcinfo, POOLS_1_5);
	return (Datum) 0;
}

/* A uint64 counter as a bigint, clamped (it would take centuries to get there). */
static inline Datum
counter_datum(uint64 v)
{
	return Int64GetDatum((int64) Min(v, (uint64) PG_INT64_MAX));
}

/*
 * pgbun.stats: the pools' cumulative counters summed per database. The
 * totals count since the shared segment was created (server start or crash
 * restart). Averages, as documented on the view: avg_xact_time and
 * avg_query_time per transaction / query, avg_wait_time per query, and
 * avg_xact_count, avg_query_count, avg_recv, avg_sent per second since the
 * counters started (at least one second).
 */
Datum
pgbun_stats_1_0(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	DbStats    *dbs;
	int			ndbs = 0;
	uint64		secs;
	TimestampTz now;

	require_shmem();
	InitMaterializedSRF(fcinfo, 0);

	dbs = palloc(sizeof(DbStats) * PGBUN_MAX_POOLS);
	ndbs = stats_sum_by_database(dbs);
	now = pgbun_clock_now();
	secs = stats_seconds(now);

	for (int j = 0; j < ndbs; j++)
	{
		DbStats    *d = &dbs[j];
		Datum		values[STATS_COLS];
		bool		nulls[STATS_COLS];
		int			col = 0;

		memset(nulls, 0, sizeof(nulls));
		values[col++] = CStringGetTextDatum(d->database);
		values[col++] = counter_datum(d->sum.xact_count);
		values[col++] = counter_datum(d->sum.query_count);
		values[col++] = counter_datum(d->sum.bytes_received);
		values[col++] = counter_datum(d->sum.bytes_sent);
		values[col++] = counter_datum(d->sum.xact_time_us);
		values[col++] = counter_datum(d->sum.query_time_us);
		values[col++] = counter_datum(d->sum.wait_time_us);
		values[col++] = counter_datum(d->sum.client_parse_count);
		values[col++] = counter_datum(d->sum.server_parse_count);
		values[col++] = counter_datum(d->sum.bind_count);
		values[col++] = counter_datum(d->sum.xact_count / secs);
		values[col++] = counter_datum(d->sum.query_count / secs);
		values[col++] = counter_datum(d->sum.bytes_received / secs);
		values[col++] = counter_datum(d->sum.bytes_sent / secs);
		values[col++] = counter_datum(stats_div(d->sum.xact_time_us, d->sum.xact_count));
		values[col++] = counter_datum(stats_div(d->sum.query_time_us, d->sum.query_count));
		values[col++] = counter_datum(stats_div(d->sum.wait_time_us, d->sum.query_count));
		Assert(col == STATS_COLS);

		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}

	pfree(dbs);
	return (Datum) 0;
}

/* A connection id as the ptr/link text: lower-case hex. */
static Datum
conn_id_datum(uint64 id)
{
	char		buf[32];

	snprintf(buf, sizeof(buf), "%" INT64_MODIFIER "x", id);
	return CStringGetTextDatum(buf);
}

/* A timestamp column: NULL while unset. */
static inline void
put_timestamp(Datum *value, bool *isnull, TimestampTz ts)
{
	*isnull = (ts == 0);
	*value = TimestampTzGetDatum(pgbun_clock_to_wall(ts));
}

/*
 * Rows for pgbun.clients or pgbun.servers: one per connection slot of the
 * given kind. user and database come from the connection's pool (NULL before
 * login); link is the id of the linked connection, NULL when unlinked or
 * when the peer went away while we looked.
 */
static void
conns_srf(FunctionCallInfo fcinfo, ConnKind kind, bool with_host)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TimestampTz now;

	require_shmem();
	InitMaterializedSRF(fcinfo, 0);

	now = pgbun_clock_now();
	for (int i = 0; i < pgbun_shared->n_conn_slots; i++)
	{
		PgbunConnSlot c;
		const PgbunPoolSlot *pool;
		Datum		values[CONNS_COLS + CONNS_HOST_COLS];
		bool		nulls[CONNS_COLS + CONNS_HOST_COLS];
		int32		wait = 0;
		int32		wait_us = 0;
		uint64		link_id;
		int			col = 0;

		if (!stats_read_conn(i, &c, &link_id) || c.kind != kind)
			continue;

		memset(nulls, 0, sizeof(nulls));
		pool = stats_pool_in_use(c.pool);
		if (kind == CONN_CLIENT && stats_client_waits(c.state))
			stats_split_wait(now, c.wait_start, &wait, &wait_us);

		values[col++] = CStringGetTextDatum(kind == CONN_CLIENT ? "C" : "S");
		if (pool)
		{
			values[col++] = CStringGetTextDatum(pool->user);
			values[col++] = CStringGetTextDatum(pool->database);
		}
		else
		{
			nulls[col++] = true;
			nulls[col++] = true;
		}
		values[col++] = CStringGetTextDatum(stats_conn_state_name(kind, c.state));
		values[col++] = CStringGetTextDatum(c.addr);
		values[col++] = Int32GetDatum(c.port);
		values[col++] = CStringGetTextDatum(c.local_addr);
		values[col++] = Int32GetDatum(c.local_port);
		put_timestamp(&values[col], &nulls[col], c.connect_time);
		col++;
		put_timestamp(&values[col], &nulls[col], c.request_time);
		col++;
		values[col++] = Int32GetDatum(wait);
		values[col++] = Int32GetDatum(wait_us);
		values[col++] = Int32GetDatum(0);	/* close_needed */
		values[col++] = conn_id_datum(c.id);
		if (link_id != 0)
			values[col] = conn_id_datum(link_id);
		nulls[col] = (link_id == 0);
		col++;
		values[col++] = Int32GetDatum((int32) c.cancel_pid);
		values[col++] = CStringGetTextDatum(c.tls);
		values[col++] = CStringGetTextDatum(c.application_name);
		values[col++] = Int32GetDatum(c.worker);
		Assert(col == CONNS_COLS);
		if (with_host)
		{
			/* the pgbun.databases entry and host list member it is on (NULL: the default target) */
			if (c.target[0])
				values[col] = CStringGetTextDatum(c.target);
			nulls[col] = c.target[0] == '\0';
			col++;
			if (c.host_slot >= 0 && c.host_slot < PGBUN_MAX_HOSTS)
				values[col] = CStringGetTextDatum(pgbun_shared->hosts[c.host_slot].host);
			nulls[col] = !(c.host_slot >= 0 && c.host_slot < PGBUN_MAX_HOSTS);
			col++;
		}

		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
}

/* pgbun.clients */
Datum
pgbun_clients_1_0(PG_FUNCTION_ARGS)
{
	conns_srf(fcinfo, CONN_CLIENT, false);
	return (Datum) 0;
}

/* pgbun.servers */
Datum
pgbun_servers_1_0(PG_FUNCTION_ARGS)
{
	conns_srf(fcinfo, CONN_SERVER, false);
	return (Datum) 0;
}

/* pgbun.servers from 1.3: with the target and host of each connection */
PG_FUNCTION_INFO_V1(pgbun_servers_1_3);
Datum
pgbun_servers_1_3(PG_FUNCTION_ARGS)
{
	conns_srf(fcinfo, CONN_SERVER, true);
	return (Datum) 0;
}

/*
 * pgbun.pause(database): pause one database, or everything when NULL, and
 * wait until no client of a paused pool holds a server. Pausing what is
 * already paused just waits again. The wait is a condition-variable sleep
 * that also looks every PAUSE_POLL_MS, so a worker that exits is noticed; it
 * honours statement_timeout and query cancel, and if interrupted the pause
 * stays in force (undo it with resume()).
 */
Datum
pgbun_pause_1_0(PG_FUNCTION_ARGS)
{
	PgbunShared *sh;
	char		dbname[NAMEDATALEN];
	bool		all = PG_ARGISNULL(0);
	bool		full = false;
	uint64		gen;

	require_shmem();
	require_worker();
	sh = pgbun_shared;

	if (!all)
		strlcpy(dbname, text_to_cstring(PG_GETARG_TEXT_PP(0)), NAMEDATALEN);

	gen = pgbun_pause_set_add(all ? NULL : dbname);
	full = (gen == 0);

	if (full)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("pgbun: cannot pause database \"%s\": %d databases are paused already",
						dbname, PGBUN_MAX_PAUSED_DBS),
				 errhint("Resume some databases, or pause everything with pgbun.pause().")));

	ConditionVariablePrepareToSleep(&sh->pause_cv);
	while (!pgbun_pause_done(gen))
	{
		(void) ConditionVariableTimedSleep(&sh->pause_cv, PAUSE_POLL_MS, PG_WAIT_EXTENSION);
		CHECK_FOR_INTERRUPTS();
	}
	ConditionVariableCancelSleep();

	PG_RETURN_VOID();
}

/*
 * pgbun.resume(database): resume one database, or with NULL everything
 * (pause_all and every named database). Resuming a database that is not
 * paused does nothing; resume(db) does not lift a pause of everything.
 * Returns at once: workers pick the change up when woken.
 */
Datum
pgbun_resume_1_0(PG_FUNCTION_ARGS)
{
	char		dbname[NAMEDATALEN];
	bool		all = PG_ARGISNULL(0);

	require_shmem();
	require_worker();

	if (!all)
		strlcpy(dbname, text_to_cstring(PG_GETARG_TEXT_PP(0)), NAMEDATALEN);

	pgbun_pause_set_remove(all ? NULL : dbname);

	PG_RETURN_VOID();
}

/*
 * pgbun.databases: SHOW DATABASES as a view, one row per database a pool
 * uses; the same reader as the console's, so the same values.
 */
Datum
pgbun_databases_1_2(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	DatabaseRow *dbs;
	int			n;

	require_shmem();
	InitMaterializedSRF(fcinfo, 0);

	dbs = palloc(sizeof(DatabaseRow) * STATS_MAX_DATABASES);
	settings_refresh();			/* the settings columns: this backend's view */
	n = stats_read_databases(dbs);
	for (int i = 0; i < n; i++)
	{
		const DatabaseRow *d = &dbs[i];
		Datum		values[DATABASES_COLS];
		bool		nulls[DATABASES_COLS];
		int			col = 0;

		memset(nulls, 0, sizeof(nulls));
		values[col++] = CStringGetTextDatum(d->name);
		if (d->host)
			values[col] = CStringGetTextDatum(d->host);
		nulls[col++] = d->host == NULL;
		values[col++] = Int32GetDatum(d->port);
		values[col++] = CStringGetTextDatum(d->database);
		if (d->force_user)
			values[col] = CStringGetTextDatum(d->force_user);
		nulls[col++] = d->force_user == NULL;
		values[col++] = Int32GetDatum(d->pool_size);
		values[col++] = Int32GetDatum(d->min_pool_size);
		values[col++] = Int32GetDatum(0);	/* reserve_pool_size: no reserve pool */
		values[col++] = Int32GetDatum(d->server_lifetime);
		/* pool_mode: the entry's; else per pool, see pgbun.pools */
		if (d->pool_mode)
			values[col] = CStringGetTextDatum(d->pool_mode);
		nulls[col++] = d->pool_mode == NULL;
		if (d->load_balance_hosts)
			values[col] = CStringGetTextDatum(d->load_balance_hosts);
		nulls[col++] = d->load_balance_hosts == NULL;
		values[col++] = Int32GetDatum(d->max_connections);
		values[col++] = Int32GetDatum(d->current_connections);
		values[col++] = Int32GetDatum(0);	/* max_client_connections: no limit */
		values[col++] = Int32GetDatum(d->current_client_connections);
		values[col++] = Int32GetDatum(d->paused ? 1 : 0);
		values[col++] = Int32GetDatum(d->disabled ? 1 : 0);
		Assert(col == DATABASES_COLS);

		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	pfree(dbs);
	return (Datum) 0;
}

/* pgbun.lists: SHOW LISTS as a view. */
Datum
pgbun_lists_1_2(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	ListRow		lists[STATS_LISTS];
	int			n;

	require_shmem();
	InitMaterializedSRF(fcinfo, 0);

	settings_refresh();			/* the settings columns: this backend's view */
	n = stats_read_lists(lists);
	for (int i = 0; i < n; i++)
	{
		Datum		values[2];
		bool		nulls[2] = {false, false};

		values[0] = CStringGetTextDatum(lists[i].list);
		values[1] = Int32GetDatum(lists[i].items);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/*
 * pgbun.latency: per pool, for query, transaction and wait time, the number
 * of observations and p50 / p95 / p99 in microseconds, interpolated inside
 * the histogram bucket as Prometheus' histogram_quantile() does (so an
 * estimate no finer than the buckets); NULL while a histogram is empty.
 */
Datum
pgbun_latency_1_2(PG_FUNCTION_ARGS)
{
	static const double qs[3] = {0.5, 0.95, 0.99};
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	require_shmem();
	InitMaterializedSRF(fcinfo, 0);
	if (!pgbun_counters)
		return (Datum) 0;

	for (int p = 0; p < PGBUN_MAX_POOLS; p++)
	{
		const PgbunPoolSlot *pool = stats_pool_in_use(p);
		Datum		values[LATENCY_COLS];
		bool		nulls[LATENCY_COLS];
		int			col = 0;

		if (pool == NULL)
			continue;
		memset(nulls, 0, sizeof(nulls));
		values[col++] = CStringGetTextDatum(pool->database);
		values[col++] = CStringGetTextDatum(pool->user);
		/* column order: query, transaction, wait (HistKind order) */
		for (int k = 0; k < HIST_KINDS; k++)
		{
			HistCopy	h;

			counters_read_hist(p, (HistKind) k, &h);
			values[col++] = counter_datum(h.count);
			for (int q = 0; q < lengthof(qs); q++)
			{
				double		v = hist_quantile(&h, qs[q]);

				if (v < 0)
					nulls[col] = true;
				else
					values[col] = Float8GetDatum(v * 1e6);
				col++;
			}
		}
		Assert(col == LATENCY_COLS);

		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
