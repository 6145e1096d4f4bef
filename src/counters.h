/*
 * counters.h - per-pool counters: the cumulative stats (PgBouncer's SHOW
 * STATS: transactions, queries, bytes, times), latency histograms (query,
 * transaction, wait for a server), errors by SQLSTATE class (from servers
 * and made by pgbun), client and server logins.
 *
 * They live in their own shared-memory block, reset when a pool slot is
 * handed to a new pool. What changes on every query (stats, histograms) is
 * kept per worker, in cache lines only that worker writes: a plain add, no
 * locked instruction and no line bouncing between workers; readers (the SQL
 * views, the console, metrics.c, the stats log line) sum the workers. The
 * rare events (errors, logins) are shared atomics.
 */
#ifndef PGBUN_COUNTERS_H
#define PGBUN_COUNTERS_H

#include "postgres.h"

#include "port/atomics.h"

#include "shmem.h"

typedef enum HistKind
{
	HIST_QUERY = 0,				/* query: request to ReadyForQuery */
	HIST_XACT,					/* transaction: first request to ReadyForQuery 'I' */
	HIST_WAIT,					/* a client's wait for a server */
	HIST_KINDS
} HistKind;

/* Finite bucket bounds, microseconds (100 us .. 10 s); one more bucket is +Inf. */
#define HIST_BUCKETS 16
extern const uint64 hist_bounds_us[HIST_BUCKETS];
extern const char *const hist_bounds_text[HIST_BUCKETS];	/* the same in seconds, as "le" labels */

/* SQLSTATE classes counted one by one; anything else counts as "other". */
#define ERR_CLASSES 44
extern const char *const err_class_names[ERR_CLASSES];	/* two characters, last "other" */

typedef struct PoolCounters
{
	pg_atomic_uint64 server_errors[ERR_CLASSES];	/* ErrorResponses servers sent to clients */
	pg_atomic_uint64 pooler_errors[ERR_CLASSES];	/* ErrorResponses pgbun made */
	pg_atomic_uint64 logins;	/* clients logged in */
	pg_atomic_uint64 login_failures;	/* clients refused at login */
	pg_atomic_uint64 server_logins;
	pg_atomic_uint64 server_login_failures;
} PoolCounters;

/*
 * One worker's counters of one pool slot: written by that worker only
 * (counters_add), read by anyone (each value is read whole). Times in
 * microseconds. The histogram's count is the sum of its buckets, its sum
 * the matching time counter.
 */
typedef struct PoolStats
{
	pg_atomic_uint64 assign_count;	/* servers linked to clients */
	pg_atomic_uint64 xact_count;
	pg_atomic_uint64 query_count;
	pg_atomic_uint64 bytes_received;	/* from clients */
	pg_atomic_uint64 bytes_sent;	/* to clients */
	pg_atomic_uint64 xact_time_us;
	pg_atomic_uint64 query_time_us;
	pg_atomic_uint64 wait_time_us;
	/* named prepared statements in transaction/statement pools (prepared.c) */
	pg_atomic_uint64 client_parse_count;	/* named Parse messages from clients */
	pg_atomic_uint64 server_parse_count;	/* Parse messages pgbun sent to servers */
	pg_atomic_uint64 bind_count;	/* Bind messages of named statements */
	pg_atomic_uint64 hist[HIST_KINDS][HIST_BUCKETS + 1];
} PoolStats;

/* A pool's stats summed over the workers. */
typedef struct PoolStatsSum
{
	uint64		assign_count;
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
} PoolStatsSum;

typedef struct CountersShared
{
	/* clients refused before they had a pool (unknown database, bad password ...) */
	PoolCounters nopool;
	/* the server host: last successful and failed server login (TimestampTz) */
	pg_atomic_uint64 host_last_ok;
	pg_atomic_uint64 host_last_failure;
	PoolCounters pools[PGBUN_MAX_POOLS];
	int			n_workers;		/* PoolStats blocks that follow */
	/* then, cache-line aligned: PoolStats [n_workers][PGBUN_MAX_POOLS] */
} CountersShared;

extern CountersShared *pgbun_counters;

/* This worker's PoolStats, indexed by pool slot; NULL outside pgbun's workers. */
extern PoolStats *counters_mine;

/* Make the calling worker the writer of its own block (at worker start). */
extern void counters_attach_worker(int worker_id);

/* Add to one of this worker's counters: it is their only writer. */
static inline void
counters_add(pg_atomic_uint64 *counter, uint64 n)
{
	pg_atomic_write_u64(counter, pg_atomic_read_u64(counter) + n);
}

/* POOL_STAT_ADD(pool->slot, query_count, 1): count into this worker's stats of a pool slot. */
#define POOL_STAT_ADD(pool_slot, field, n) \
	do { \
		int			pool_stat_slot_ = (pool_slot); \
		if (counters_mine && pool_stat_slot_ >= 0 && pool_stat_slot_ < PGBUN_MAX_POOLS) \
			counters_add(&counters_mine[pool_stat_slot_].field, (uint64) (n)); \
	} while (0)

/* Add a pool slot's stats, every worker's, to *out. */
extern void counters_sum_stats(int pool_slot, PoolStatsSum *out);

extern Size counters_shmem_size(void);
extern void counters_shmem_init(void);
/* A pool slot starts over (pgbun_pool_slot_acquire, under the mutex). */
extern void counters_reset(int pool_slot);

/* The bucket a duration falls in (HIST_BUCKETS: +Inf). */
static inline int
hist_bucket(int64 us)
{
	int			b = 0;

	while (b < HIST_BUCKETS && (uint64) Max(us, 0) > hist_bounds_us[b])
		b++;
	return b;
}

/* Count one duration into a pool's histogram (this worker's part of it). */
static inline void
counters_observe(int pool_slot, HistKind kind, int64 us)
{
	POOL_STAT_ADD(pool_slot, hist[kind][hist_bucket(us)], 1);
}

/* The counters of a pool slot, or of clients without a pool for -1. */
extern PoolCounters *counters_of(int pool_slot);
/* The class index of a SQLSTATE (its first two characters); NULL: "other". */
extern int	err_class_index(const char *sqlstate);

/*
 * A server's ErrorResponse on its way to a client: msg is the message from
 * its type byte, avail the bytes of it at hand (the code field comes early).
 */
extern void counters_note_server_error(int pool_slot, const uint8 *msg, uint32 avail);
/* An ErrorResponse pgbun made for a client (pool_slot -1: no pool yet). */
extern void counters_note_pooler_error(int pool_slot, const char *sqlstate);
/* A client logged in to a pool. */
extern void counters_note_login(int pool_slot);
/* A client was refused at login: counted under its pool if one exists for the names. */
extern void counters_note_login_failure(const char *database, const char *user);
/* A server login finished (ok) or failed. */
extern void counters_note_server_login(int pool_slot, bool ok, TimestampTz now);

/* A histogram copied out: buckets (not cumulative) and their total. */
typedef struct HistCopy
{
	uint64		bucket[HIST_BUCKETS + 1];
	uint64		count;
} HistCopy;

/* A pool slot's histogram, every worker's summed. */
extern void counters_read_hist(int pool_slot, HistKind kind, HistCopy *out);
/*
 * The q-quantile (0..1) of a histogram in seconds, interpolated linearly
 * inside its bucket as Prometheus' histogram_quantile does; -1 when empty.
 * Values in the +Inf bucket report the largest finite bound.
 */
extern double hist_quantile(const HistCopy *h, double q);

#endif							/* PGBUN_COUNTERS_H */
