/*
 * counters.c - the per-pool stats, histogram, error and login counters in
 * their own shared-memory block (counters.h), and their sums over workers.
 */
#include "postgres.h"

#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"

#include "config.h"
#include "counters.h"

CountersShared *pgbun_counters = NULL;
PoolStats  *counters_mine = NULL;

const uint64 hist_bounds_us[HIST_BUCKETS] = {
	100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000,
	100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000
};

const char *const hist_bounds_text[HIST_BUCKETS] = {
	"0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05",
	"0.1", "0.25", "0.5", "1", "2.5", "5", "10"
};

/* PostgreSQL's SQLSTATE classes (Appendix A of its documentation). */
const char *const err_class_names[ERR_CLASSES] = {
	"00", "01", "02", "03", "08", "09", "0A", "0B", "0F", "0L", "0P", "0Z",
	"20", "21", "22", "23", "24", "25", "26", "27", "28", "2B", "2D", "2F",
	"34", "38", "39", "3B", "3D", "3F", "40", "42", "44", "53", "54", "55",
	"57", "58", "72", "F0", "HV", "P0", "XX", "other"
};

Size
counters_shmem_size(void)
{
	/* pgbun.workers is fixed at server start: one PoolStats block per worker */
	return add_size(CACHELINEALIGN(sizeof(CountersShared)) + PG_CACHE_LINE_SIZE,
					mul_size(mul_size(Max(pgbun_workers, 1), PGBUN_MAX_POOLS), sizeof(PoolStats)));
}

/* Worker w's PoolStats array. */
static PoolStats *
stats_block(int w)
{
	return (PoolStats *) CACHELINEALIGN((char *) pgbun_counters + sizeof(CountersShared)) +
		(Size) w * PGBUN_MAX_POOLS;
}

static void
stats_zero(PoolStats *st)
{
	pg_atomic_uint64 *a = (pg_atomic_uint64 *) st;

	for (int i = 0; i < (int) (sizeof(PoolStats) / sizeof(pg_atomic_uint64)); i++)
		pg_atomic_init_u64(&a[i], 0);
}

void
counters_attach_worker(int worker_id)
{
	counters_mine = (pgbun_counters && worker_id >= 0 && worker_id < pgbun_counters->n_workers) ?
		stats_block(worker_id) : NULL;
}

static void
pool_counters_init(PoolCounters *pc)
{
	pg_atomic_uint64 *a = (pg_atomic_uint64 *) pc;

	for (int i = 0; i < (int) (sizeof(PoolCounters) / sizeof(pg_atomic_uint64)); i++)
		pg_atomic_init_u64(&a[i], 0);
}

/* From the shmem startup hook, under AddinShmemInitLock. */
void
counters_shmem_init(void)
{
	bool		found;

	pgbun_counters = ShmemInitStruct("pgbun counters", counters_shmem_size(), &found);
	if (found)
		return;
	pool_counters_init(&pgbun_counters->nopool);
	pg_atomic_init_u64(&pgbun_counters->host_last_ok, 0);
	pg_atomic_init_u64(&pgbun_counters->host_last_failure, 0);
	for (int i = 0; i < PGBUN_MAX_POOLS; i++)
		pool_counters_init(&pgbun_counters->pools[i]);
	pgbun_counters->n_workers = Max(pgbun_workers, 1);
	for (int w = 0; w < pgbun_counters->n_workers; w++)
		for (int i = 0; i < PGBUN_MAX_POOLS; i++)
			stats_zero(&stats_block(w)[i]);
}

void
counters_reset(int pool_slot)
{
	pg_atomic_uint64 *a;

	if (!pgbun_counters || pool_slot < 0 || pool_slot >= PGBUN_MAX_POOLS)
		return;
	a = (pg_atomic_uint64 *) &pgbun_counters->pools[pool_slot];
	for (int i = 0; i < (int) (sizeof(PoolCounters) / sizeof(pg_atomic_uint64)); i++)
		pg_atomic_write_u64(&a[i], 0);
	/* no worker writes a slot's stats while it is being handed out */
	for (int w = 0; w < pgbun_counters->n_workers; w++)
		stats_zero(&stats_block(w)[pool_slot]);
}

void
counters_sum_stats(int pool_slot, PoolStatsSum *out)
{
	if (!pgbun_counters || pool_slot < 0 || pool_slot >= PGBUN_MAX_POOLS)
		return;
	for (int w = 0; w < pgbun_counters->n_workers; w++)
	{
		PoolStats  *st = &stats_block(w)[pool_slot];

		out->assign_count += pg_atomic_read_u64(&st->assign_count);
		out->xact_count += pg_atomic_read_u64(&st->xact_count);
		out->query_count += pg_atomic_read_u64(&st->query_count);
		out->bytes_received += pg_atomic_read_u64(&st->bytes_received);
		out->bytes_sent += pg_atomic_read_u64(&st->bytes_sent);
		out->xact_time_us += pg_atomic_read_u64(&st->xact_time_us);
		out->query_time_us += pg_atomic_read_u64(&st->query_time_us);
		out->wait_time_us += pg_atomic_read_u64(&st->wait_time_us);
		out->client_parse_count += pg_atomic_read_u64(&st->client_parse_count);
		out->server_parse_count += pg_atomic_read_u64(&st->server_parse_count);
		out->bind_count += pg_atomic_read_u64(&st->bind_count);
	}
}

PoolCounters *
counters_of(int pool_slot)
{
	if (!pgbun_counters)
		return NULL;
	if (pool_slot < 0 || pool_slot >= PGBUN_MAX_POOLS)
		return &pgbun_counters->nopool;
	return &pgbun_counters->pools[pool_slot];
}

int
err_class_index(const char *sqlstate)
{
	if (sqlstate && sqlstate[0] && sqlstate[1])
	{
		for (int i = 0; i < ERR_CLASSES - 1; i++)
			if (err_class_names[i][0] == sqlstate[0] && err_class_names[i][1] == sqlstate[1])
				return i;
	}
	return ERR_CLASSES - 1;
}

void
counters_note_server_error(int pool_slot, const uint8 *msg, uint32 avail)
{
	PoolCounters *pc = counters_of(pool_slot);
	char		code[3] = "";
	const uint8 *body = msg + 5;	/* type byte and length */
	uint32		i = 0;

	if (!pc)
		return;
	avail = avail > 5 ? avail - 5 : 0;
	/* fields: a type byte and a NUL-terminated string each; look for 'C' */
	while (i < avail && body[i] != 0)
	{
		uint8		type = body[i++];
		uint32		start = i;

		while (i < avail && body[i] != 0)
			i++;
		if (type == 'C' && i - start >= 2)
		{
			code[0] = (char) body[start];
			code[1] = (char) body[start + 1];
			code[2] = '\0';
			break;
		}
		i++;
	}
	pg_atomic_fetch_add_u64(&pc->server_errors[err_class_index(code)], 1);
}

void
counters_note_pooler_error(int pool_slot, const char *sqlstate)
{
	PoolCounters *pc = counters_of(pool_slot);

	if (pc)
		pg_atomic_fetch_add_u64(&pc->pooler_errors[err_class_index(sqlstate)], 1);
}

void
counters_note_login(int pool_slot)
{
	PoolCounters *pc = counters_of(pool_slot);

	if (pc)
		pg_atomic_fetch_add_u64(&pc->logins, 1);
}

/*
 * The pool of (database, user), found without the mutex as the readers do; a
 * failed login never creates one, so the names an attacker sends cannot grow
 * the label set.
 */
void
counters_note_login_failure(const char *database, const char *user)
{
	int			slot = -1;

	if (!pgbun_counters || !pgbun_shared)
		return;
	if (database && user)
	{
		for (int i = 0; i < PGBUN_MAX_POOLS; i++)
		{
			PgbunPoolSlot *p = &pgbun_shared->pools[i];

			if (p->in_use && strcmp(p->database, database) == 0 && strcmp(p->user, user) == 0)
			{
				slot = i;
				break;
			}
		}
	}
	pg_atomic_fetch_add_u64(&counters_of(slot)->login_failures, 1);
}

void
counters_note_server_login(int pool_slot, bool ok, TimestampTz now)
{
	PoolCounters *pc = counters_of(pool_slot);

	if (!pc)
		return;
	if (ok)
	{
		pg_atomic_fetch_add_u64(&pc->server_logins, 1);
		pg_atomic_write_u64(&pgbun_counters->host_last_ok, (uint64) now);
	}
	else
	{
		pg_atomic_fetch_add_u64(&pc->server_login_failures, 1);
		pg_atomic_write_u64(&pgbun_counters->host_last_failure, (uint64) now);
	}
}

void
counters_read_hist(int pool_slot, HistKind kind, HistCopy *out)
{
	memset(out, 0, sizeof(*out));
	if (!pgbun_counters || pool_slot < 0 || pool_slot >= PGBUN_MAX_POOLS)
		return;
	for (int w = 0; w < pgbun_counters->n_workers; w++)
	{
		PoolStats  *st = &stats_block(w)[pool_slot];

		for (int b = 0; b <= HIST_BUCKETS; b++)
		{
			uint64		n = pg_atomic_read_u64(&st->hist[kind][b]);

			out->bucket[b] += n;
			out->count += n;
		}
	}
}

double
hist_quantile(const HistCopy *h, double q)
{
	double		rank;
	uint64		below = 0;

	if (h->count == 0)
		return -1;
	rank = q * (double) h->count;
	for (int b = 0; b <= HIST_BUCKETS; b++)
	{
		if (h->bucket[b] > 0 && (double) (below + h->bucket[b]) >= rank)
		{
			double		lo = b == 0 ? 0 : (double) hist_bounds_us[b - 1];
			double		hi;

			if (b == HIST_BUCKETS)
				return (double) hist_bounds_us[HIST_BUCKETS - 1] / 1e6;
			hi = (double) hist_bounds_us[b];
			return (lo + (hi - lo) * ((rank - (double) below) / (double) h->bucket[b])) / 1e6;
		}
		below += h->bucket[b];
	}
	return (double) hist_bounds_us[HIST_BUCKETS - 1] / 1e6;
}
