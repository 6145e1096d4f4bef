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

#include "config.h"
#include "shmem.h"

PG_FUNCTION_INFO_V1(pgbun_pools_1_0);
PG_FUNCTION_INFO_V1(pgbun_stats_1_0);
PG_FUNCTION_INFO_V1(pgbun_clients_1_0);
PG_FUNCTION_INFO_V1(pgbun_servers_1_0);
PG_FUNCTION_INFO_V1(pgbun_pause_1_0);
PG_FUNCTION_INFO_V1(pgbun_resume_1_0);

#define POOLS_COLS		12
#define STATS_COLS		18
#define CONNS_COLS		19

/* How often a waiting pause() looks again even without a broadcast (ms). */
#define PAUSE_POLL_MS	100

/* Gauges of one pool, counted from the connection slots. */
typedef struct PoolGauges
{
	int			cl_active;
	int			cl_waiting;
	int			sv_active;
	int			sv_idle;
	int			sv_used;
	int			sv_tested;
	int			sv_login;
	TimestampTz oldest_wait;	/* 0 when no client waits */
} PoolGauges;

/* Per-database sums for the stats view. */
typedef struct DbStats
{
	char		database[NAMEDATALEN];
	uint64		xact_count;
	uint64		query_count;
	uint64		bytes_received;
	uint64		bytes_sent;
	uint64		xact_time_us;
	uint64		query_time_us;
	uint64		wait_time_us;
	uint64		client_parse_count;
	uint64		server_parse_count;
	uint64		bind_count;
} DbStats;

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

/*
 * Is this worker slot's process alive? Besides the published pid we check
 * that the published latch (the worker's MyLatch, part of its PGPROC) is
 * still owned by that pid: a worker that exited without clearing its slot
 * has disowned its latch, so pause() never waits for a worker that is gone.
 * Caller holds the mutex.
 */
static bool
worker_running(const PgbunWorkerSlot *w)
{
	return w->pid != 0 && w->latch != NULL && w->latch->owner_pid == w->pid;
}

/*
 * Wake every running worker so it applies the current pause generation.
 * Latches are collected under the mutex and set after it is released.
 */
static void
wake_workers(void)
{
	PgbunShared *sh = pgbun_shared;
	Latch	   *latches[PGBUN_MAX_WORKERS];
	int			n = 0;

	SpinLockAcquire(&sh->mutex);
	for (int i = 0; i < sh->n_workers; i++)
	{
		if (worker_running(&sh->workers[i]))
			latches[n++] = sh->workers[i].latch;
	}
	SpinLockRelease(&sh->mutex);

	for (int i = 0; i < n; i++)
		SetLatch(latches[i]);
}

/* ERROR unless at least one pooler worker runs (pause/resume need someone to act). */
static void
require_worker(void)
{
	PgbunShared *sh = pgbun_shared;
	bool		any = false;

	SpinLockAcquire(&sh->mutex);
	for (int i = 0; i < sh->n_workers && !any; i++)
		any = worker_running(&sh->workers[i]);
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

/* Split a wait in microseconds into seconds and the remaining microseconds. */
static void
split_wait(TimestampTz now, TimestampTz since, int32 *secs, int32 *usecs)
{
	int64		wait = 0;

	if (since != 0 && now > since)
		wait = now - since;
	*secs = (int32) Min(wait / USECS_PER_SEC, (int64) PG_INT32_MAX);
	*usecs = (int32) (wait % USECS_PER_SEC);
}

/* Is this a client state in which the client waits for a server? */
static inline bool
client_waits(int state)
{
	return state == CL_WAITING || state == CL_WAITING_LOGIN;
}

/*
 * The names of a pool slot, or NULL if the slot is not in use. Read without
 * the mutex: a slot is released only when no worker uses it
 * (pool_idle_timeout), so a view racing with a release and reuse can at
 * worst mislabel that one row once.
 */
static const PgbunPoolSlot *
pool_in_use(int idx)
{
	const PgbunPoolSlot *p;

	if (idx < 0 || idx >= PGBUN_MAX_POOLS)
		return NULL;
	p = &pgbun_shared->pools[idx];
	if (!p->in_use)
		return NULL;
	pg_read_barrier();
	return p;
}

/*
 * pgbun.pools: one row per pool in use, with gauges counted from one pass
 * over the connection slots. Connections are counted first and pools listed
 * after, so every pool a connection points at is already in use when the
 * pools are listed.
 */
Datum
pgbun_pools_1_0(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	PoolGauges *gauges;
	TimestampTz now;

	require_shmem();
	InitMaterializedSRF(fcinfo, 0);

	gauges = palloc0(sizeof(PoolGauges) * PGBUN_MAX_POOLS);
	for (int i = 0; i < pgbun_shared->n_conn_slots; i++)
	{
		PgbunConnSlot c;
		PoolGauges *g;

		pgbun_conn_slot_read(i, &c);
		if (c.kind == CONN_FREE || c.pool < 0 || c.pool >= PGBUN_MAX_POOLS)
			continue;
		g = &gauges[c.pool];

		if (c.kind == CONN_CLIENT)
		{
			switch (c.state)
			{
				case CL_ACTIVE:
					g->cl_active++;
					break;
				case CL_WAITING:
				case CL_WAITING_LOGIN:
					g->cl_waiting++;
					break;
				default:
					/* CL_LOGIN: not logged in yet, not counted */
					break;
			}
			if (client_waits(c.state) && c.wait_start != 0 &&
				(g->oldest_wait == 0 || c.wait_start < g->oldest_wait))
				g->oldest_wait = c.wait_start;
		}
		else if (c.kind == CONN_SERVER)
		{
			switch (c.state)
			{
				case SV_ACTIVE:
					g->sv_active++;
					break;
				case SV_IDLE:
					g->sv_idle++;
					break;
				case SV_USED:
					g->sv_used++;
					break;
				case SV_TESTED:
					g->sv_tested++;
					break;
				case SV_LOGIN:
					g->sv_login++;
					break;
				default:
					break;
			}
		}
	}

	now = GetCurrentTimestamp();
	for (int p = 0; p < PGBUN_MAX_POOLS; p++)
	{
		const PgbunPoolSlot *pool = pool_in_use(p);
		PoolGauges *g = &gauges[p];
		Datum		values[POOLS_COLS];
		bool		nulls[POOLS_COLS];
		int32		maxwait;
		int32		maxwait_us;
		int			col = 0;

		if (pool == NULL)
			continue;

		memset(nulls, 0, sizeof(nulls));
		split_wait(now, g->oldest_wait, &maxwait, &maxwait_us);

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
		Assert(col == POOLS_COLS);

		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}

	pfree(gauges);
	return (Datum) 0;
}

/* A uint64 counter as a bigint, clamped (it would take centuries to get there). */
static inline Datum
counter_datum(uint64 v)
{
	return Int64GetDatum((int64) Min(v, (uint64) PG_INT64_MAX));
}

/* a / b for the averages, 0 when b is 0. */
static inline uint64
safe_div(uint64 a, uint64 b)
{
	return b == 0 ? 0 : a / b;
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

	dbs = palloc0(sizeof(DbStats) * PGBUN_MAX_POOLS);
	for (int p = 0; p < PGBUN_MAX_POOLS; p++)
	{
		PgbunPoolSlot *pool = (PgbunPoolSlot *) pool_in_use(p);
		DbStats    *d = NULL;

		if (pool == NULL)
			continue;
		for (int j = 0; j < ndbs; j++)
		{
			if (strcmp(dbs[j].database, pool->database) == 0)
			{
				d = &dbs[j];
				break;
			}
		}
		if (d == NULL)
		{
			d = &dbs[ndbs++];
			strlcpy(d->database, pool->database, NAMEDATALEN);
		}
		d->xact_count += pg_atomic_read_u64(&pool->xact_count);
		d->query_count += pg_atomic_read_u64(&pool->query_count);
		d->bytes_received += pg_atomic_read_u64(&pool->bytes_received);
		d->bytes_sent += pg_atomic_read_u64(&pool->bytes_sent);
		d->xact_time_us += pg_atomic_read_u64(&pool->xact_time_us);
		d->query_time_us += pg_atomic_read_u64(&pool->query_time_us);
		d->wait_time_us += pg_atomic_read_u64(&pool->wait_time_us);
		d->client_parse_count += pg_atomic_read_u64(&pool->client_parse_count);
		d->server_parse_count += pg_atomic_read_u64(&pool->server_parse_count);
		d->bind_count += pg_atomic_read_u64(&pool->bind_count);
	}

	now = GetCurrentTimestamp();
	secs = 1;
	if (now > pgbun_shared->stats_start)
		secs = Max((uint64) ((now - pgbun_shared->stats_start) / USECS_PER_SEC), (uint64) 1);

	for (int j = 0; j < ndbs; j++)
	{
		DbStats    *d = &dbs[j];
		Datum		values[STATS_COLS];
		bool		nulls[STATS_COLS];
		int			col = 0;

		memset(nulls, 0, sizeof(nulls));
		values[col++] = CStringGetTextDatum(d->database);
		values[col++] = counter_datum(d->xact_count);
		values[col++] = counter_datum(d->query_count);
		values[col++] = counter_datum(d->bytes_received);
		values[col++] = counter_datum(d->bytes_sent);
		values[col++] = counter_datum(d->xact_time_us);
		values[col++] = counter_datum(d->query_time_us);
		values[col++] = counter_datum(d->wait_time_us);
		values[col++] = counter_datum(d->client_parse_count);
		values[col++] = counter_datum(d->server_parse_count);
		values[col++] = counter_datum(d->bind_count);
		values[col++] = counter_datum(d->xact_count / secs);
		values[col++] = counter_datum(d->query_count / secs);
		values[col++] = counter_datum(d->bytes_received / secs);
		values[col++] = counter_datum(d->bytes_sent / secs);
		values[col++] = counter_datum(safe_div(d->xact_time_us, d->xact_count));
		values[col++] = counter_datum(safe_div(d->query_time_us, d->query_count));
		values[col++] = counter_datum(safe_div(d->wait_time_us, d->query_count));
		Assert(col == STATS_COLS);

		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}

	pfree(dbs);
	return (Datum) 0;
}

/* The view name of a client or server state. */
static const char *
conn_state_name(int kind, int state)
{
	if (kind == CONN_CLIENT)
	{
		switch (state)
		{
			case CL_LOGIN:
				return "login";
			case CL_WAITING_LOGIN:
				return "waiting_login";
			case CL_ACTIVE:
				return "active";
			case CL_WAITING:
				return "waiting";
		}
	}
	else
	{
		switch (state)
		{
			case SV_LOGIN:
				return "login";
			case SV_IDLE:
				return "idle";
			case SV_ACTIVE:
				return "active";
			case SV_USED:
				return "used";
			case SV_TESTED:
				return "tested";
		}
	}
	return "unknown";
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
	*value = TimestampTzGetDatum(ts);
}

/*
 * Rows for pgbun.clients or pgbun.servers: one per connection slot of the
 * given kind. user and database come from the connection's pool (NULL before
 * login); link is the id of the linked connection, NULL when unlinked or
 * when the peer went away while we looked.
 */
static void
conns_srf(FunctionCallInfo fcinfo, ConnKind kind)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TimestampTz now;

	require_shmem();
	InitMaterializedSRF(fcinfo, 0);

	now = GetCurrentTimestamp();
	for (int i = 0; i < pgbun_shared->n_conn_slots; i++)
	{
		PgbunConnSlot c;
		const PgbunPoolSlot *pool;
		Datum		values[CONNS_COLS];
		bool		nulls[CONNS_COLS];
		int32		wait = 0;
		int32		wait_us = 0;
		int			col = 0;

		pgbun_conn_slot_read(i, &c);
		if (c.kind != kind)
			continue;

		/* the copy's text fields come from shared memory: make sure they end */
		c.addr[PGBUN_ADDR_LEN - 1] = '\0';
		c.local_addr[PGBUN_ADDR_LEN - 1] = '\0';
		c.application_name[NAMEDATALEN - 1] = '\0';

		memset(nulls, 0, sizeof(nulls));
		pool = pool_in_use(c.pool);
		if (kind == CONN_CLIENT && client_waits(c.state))
			split_wait(now, c.wait_start, &wait, &wait_us);

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
		values[col++] = CStringGetTextDatum(conn_state_name(kind, c.state));
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
		nulls[col] = true;
		if (c.peer >= 0 && c.peer < pgbun_shared->n_conn_slots)
		{
			PgbunConnSlot peer;

			pgbun_conn_slot_read(c.peer, &peer);
			if (peer.kind != CONN_FREE && peer.kind != kind)
			{
				values[col] = conn_id_datum(peer.id);
				nulls[col] = false;
			}
		}
		col++;
		values[col++] = Int32GetDatum((int32) c.cancel_pid);
		values[col++] = CStringGetTextDatum(c.tls);
		values[col++] = CStringGetTextDatum(c.application_name);
		values[col++] = Int32GetDatum(c.worker);
		Assert(col == CONNS_COLS);

		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
}

/* pgbun.clients */
Datum
pgbun_clients_1_0(PG_FUNCTION_ARGS)
{
	conns_srf(fcinfo, CONN_CLIENT);
	return (Datum) 0;
}

/* pgbun.servers */
Datum
pgbun_servers_1_0(PG_FUNCTION_ARGS)
{
	conns_srf(fcinfo, CONN_SERVER);
	return (Datum) 0;
}

/* Have all running workers applied generation gen and drained their paused pools? */
static bool
pause_done(uint64 gen)
{
	PgbunShared *sh = pgbun_shared;
	bool		done = true;

	SpinLockAcquire(&sh->mutex);
	for (int i = 0; i < sh->n_workers; i++)
	{
		PgbunWorkerSlot *w = &sh->workers[i];

		if (!worker_running(w))
			continue;
		if (w->pause_applied < gen || !w->pause_drained)
		{
			done = false;
			break;
		}
	}
	SpinLockRelease(&sh->mutex);

	return done;
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

	SpinLockAcquire(&sh->mutex);
	if (all)
		sh->pause_all = true;
	else
	{
		bool		present = false;

		for (int i = 0; i < sh->n_paused_dbs && !present; i++)
			present = strcmp(sh->paused_dbs[i], dbname) == 0;
		if (!present)
		{
			if (sh->n_paused_dbs >= PGBUN_MAX_PAUSED_DBS)
				full = true;
			else
				strlcpy(sh->paused_dbs[sh->n_paused_dbs++], dbname, NAMEDATALEN);
		}
	}
	if (!full)
		sh->pause_generation++;
	gen = sh->pause_generation;
	SpinLockRelease(&sh->mutex);

	if (full)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("pgbun: cannot pause database \"%s\": %d databases are paused already",
						dbname, PGBUN_MAX_PAUSED_DBS),
				 errhint("Resume some databases, or pause everything with pgbun.pause().")));

	wake_workers();

	ConditionVariablePrepareToSleep(&sh->pause_cv);
	while (!pause_done(gen))
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
	PgbunShared *sh;
	char		dbname[NAMEDATALEN];
	bool		all = PG_ARGISNULL(0);

	require_shmem();
	require_worker();
	sh = pgbun_shared;

	if (!all)
		strlcpy(dbname, text_to_cstring(PG_GETARG_TEXT_PP(0)), NAMEDATALEN);

	SpinLockAcquire(&sh->mutex);
	if (all)
	{
		sh->pause_all = false;
		sh->n_paused_dbs = 0;
	}
	else
	{
		for (int i = 0; i < sh->n_paused_dbs; i++)
		{
			if (strcmp(sh->paused_dbs[i], dbname) == 0)
			{
				sh->n_paused_dbs--;
				if (i != sh->n_paused_dbs)
					memcpy(sh->paused_dbs[i], sh->paused_dbs[sh->n_paused_dbs], NAMEDATALEN);
				break;
			}
		}
	}
	sh->pause_generation++;
	SpinLockRelease(&sh->mutex);

	wake_workers();

	PG_RETURN_VOID();
}
