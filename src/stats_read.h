/*
 * stats_read.h - reading the shared segment for the two faces that show it:
 * the SQL views (admin.c) and the admin console (console.c).
 *
 * Nothing here allocates or throws: callers pass arrays sized by the
 * segment's limits, and every read is a copy (changecount protocol for
 * connection slots), so a reader never blocks a worker.
 */
#ifndef PGBUN_STATS_READ_H
#define PGBUN_STATS_READ_H

#include "postgres.h"

#include "counters.h"
#include "shmem.h"

/* Gauges of one pool, counted from the connection slots. */
typedef struct PoolGauges
{
	int			cl_active;
	int			cl_waiting;
	int			cl_active_cancel_req;	/* CancelRequest connections: cancel on its way */
	int			cl_waiting_cancel_req;	/* ... cancel not sent yet */
	int			sv_active;
	int			sv_active_cancel;	/* cancel connections open to its servers */
	int			sv_idle;
	int			sv_used;
	int			sv_tested;
	int			sv_being_canceled;	/* held until a CancelRequest sent for it is done */
	int			sv_login;
	TimestampTz oldest_wait;	/* 0 when no client waits */
} PoolGauges;

/* The pools' cumulative counters summed per database. */
typedef struct DbStats
{
	char		database[NAMEDATALEN];
	PoolStatsSum sum;		/* its pools' */
} DbStats;

/* The pool slot idx if it is in use, else NULL (see stats_read.c on races). */
extern const PgbunPoolSlot *stats_pool_in_use(int idx);

/* Count every pool's gauges: gauges[PGBUN_MAX_POOLS], zeroed here. */
extern void stats_count_gauges(PoolGauges *gauges);

/*
 * Sum the counters of the pools in use per database into dbs[PGBUN_MAX_POOLS];
 * returns how many databases.
 */
extern int	stats_sum_by_database(DbStats *dbs);

/* Whole seconds the counters have run (at least 1), for per-second averages. */
extern uint64 stats_seconds(TimestampTz now);

/* Is this a client state in which the client waits for a server? */
static inline bool
stats_client_waits(int state)
{
	return state == CL_WAITING || state == CL_WAITING_LOGIN;
}

/* Split a wait into whole seconds and the remaining microseconds. */
extern void stats_split_wait(TimestampTz now, TimestampTz since, int32 *secs, int32 *usecs);

/* The view name of a client or server state ("active", "idle", ...). */
extern const char *stats_conn_state_name(int kind, int state);

/*
 * Copy connection slot idx with its text fields terminated; false when the
 * slot is free. *link_id gets the linked connection's id (0 if none).
 */
extern bool stats_read_conn(int idx, PgbunConnSlot *c, uint64 *link_id);

/*
 * One row of SHOW DATABASES / pgbun.databases: a database some pool uses,
 * with the settings that apply to it and its connections over all pools.
 */
typedef struct DatabaseRow
{
	char		name[NAMEDATALEN];
	const char *host;			/* its entry's host list, else pgbun.server_host; NULL: the local Unix socket */
	int			port;			/* its entry's (first) port, else pgbun.server_port (0: the local server's port) */
	const char *database;		/* the server database: its entry's dbname, else the name */
	const char *force_user;		/* its entry's user, NULL: none */
	const char *pool_mode;		/* its entry's pool_mode, NULL: per pool (see pools) */
	const char *load_balance_hosts; /* its entry's, for a host list; NULL: none */
	int			pool_size;
	int			min_pool_size;
	int			server_lifetime;	/* seconds */
	int			max_connections;	/* pgbun.max_db_connections, 0: no limit */
	int			current_connections;	/* server connections */
	int			current_client_connections; /* clients of its pools */
	bool		paused;
	bool		disabled;		/* console DISABLE */
} DatabaseRow;

/* Databases in use, and disabled ones without a pool. */
#define STATS_MAX_DATABASES (PGBUN_MAX_POOLS + PGBUN_MAX_DB_CONTROLS)

/* Fill rows[STATS_MAX_DATABASES], one per database; returns how many. */
extern int	stats_read_databases(DatabaseRow *rows);

/* Distinct database (users false) or user names of the pools in use. */
extern int	stats_pool_names(bool users, const char **names, int max);

/* Clients and server connections of a database or user name, over all pools. */
extern void stats_count_conns(bool users, const char *name, int *clients, int *servers);

/* SHOW LISTS / pgbun.lists: PgBouncer's list names, in its order. */
#define STATS_LISTS 14
typedef struct ListRow
{
	const char *list;
	int			items;
} ListRow;

/* Fill rows[STATS_LISTS]; returns STATS_LISTS. */
extern int	stats_read_lists(ListRow *rows);

/* a / b, 0 when b is 0 (averages). */
static inline uint64
stats_div(uint64 a, uint64 b)
{
	return b == 0 ? 0 : a / b;
}

#endif							/* PGBUN_STATS_READ_H */
