/*
 * shmem.c - pgbun's shared-memory segment (the contract is in shmem.h).
 *
 * _PG_init calls pgbun_shmem_register(), which chains shmem_request_hook (to
 * reserve the space) and shmem_startup_hook (to create or attach the segment
 * under AddinShmemInitLock). The segment is one block: the PgbunShared header,
 * then the variable part sized at server start from pgbun.max_client_conn and
 * max_connections:
 *
 *     int conn_next[n_conn_slots]          free list of connection slots
 *     int cancel_buckets[n_cancel_buckets] heads of the cancel-key chains
 *     int cancel_next[n_conn_slots]        chain links, one per slot
 *     PgbunConnSlot conns[n_conn_slots]
 *
 * Every function below the set-up code is called by the workers from their
 * event loop, so after start-up nothing here allocates or throws: the mutex
 * is held only for short, bounded work, and a slot that cannot be read
 * consistently is reported as free instead of raising an error.
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "miscadmin.h"
#include "port/pg_bitutils.h"
#include "storage/ipc.h"
#include "storage/shmem.h"
#include "utils/timestamp.h"

#include "clock.h"
#include "config.h"
#include "counters.h"
#include "settings.h"
#include "shmem.h"

/*
 * Markers in cancel_next[]: -1 ends a chain; NOT_IN_CANCEL_TABLE says the
 * slot is in no chain at all, so freeing a slot can tell whether it must be
 * unlinked first.
 */
#define NOT_IN_CANCEL_TABLE		(-2)

/* Give up reading a slot whose writer seems stuck after roughly this long. */
#define SLOT_READ_FAST_TRIES	1000
#define SLOT_READ_SLOW_TRIES	1000	/* each sleeps 1 ms */

PgbunShared *pgbun_shared = NULL;

/* Pointers into the variable part; set whenever the segment is attached. */
static int *conn_next = NULL;
static int *cancel_buckets = NULL;
static int *cancel_next = NULL;
static PgbunConnSlot *conns = NULL;

/* Sizes fixed when the space is requested, reused when it is created. */
static int	planned_conn_slots = 0;
static int	planned_client_slots = 0;
static int	planned_cancel_buckets = 0;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/*
 * Decide how many connection and cancel slots the segment holds.
 *
 * Clients: pgbun.max_client_conn as it is at server start (raising it later
 * needs a restart, as the GUC's description says). Servers: each server
 * connection to the local server is one of its backends, so there can never
 * be more of them than max_connections. Remote servers are bounded by the
 * pool sizes instead; if they ever outnumber this, slot allocation fails and
 * the worker refuses that one connection cleanly. The 16 spare slots cover
 * short overlaps, such as a server connection still closing while its
 * replacement logs in, so a server running at max_connections does not
 * make pgbun refuse connections it could serve a moment later.
 */
static void
plan_sizes(void)
{
	planned_client_slots = pgbun_max_client_conn;	/* postmaster start: shared memory size */
	planned_conn_slots = pgbun_max_client_conn + MaxConnections + 16;
	planned_cancel_buckets = (int) pg_nextpower2_32((uint32) planned_conn_slots * 2);
}

/* Bytes of the whole segment, header and variable part, for the planned sizes. */
static Size
segment_size(void)
{
	Size		size;

	size = MAXALIGN(sizeof(PgbunShared));
	size = add_size(size, MAXALIGN(mul_size(planned_conn_slots, sizeof(int))));
	size = add_size(size, MAXALIGN(mul_size(planned_cancel_buckets, sizeof(int))));
	size = add_size(size, MAXALIGN(mul_size(planned_conn_slots, sizeof(int))));
	size = add_size(size, mul_size(planned_conn_slots, sizeof(PgbunConnSlot)));
	return size;
}

/* Point the static array pointers at the variable part of an attached segment. */
static void
locate_variable_part(void)
{
	char	   *p = (char *) pgbun_shared;
	int			nconn = pgbun_shared->n_conn_slots;
	int			nbuckets = pgbun_shared->n_cancel_buckets;

	p += MAXALIGN(sizeof(PgbunShared));
	conn_next = (int *) p;
	p += MAXALIGN(sizeof(int) * nconn);
	cancel_buckets = (int *) p;
	p += MAXALIGN(sizeof(int) * nbuckets);
	cancel_next = (int *) p;
	p += MAXALIGN(sizeof(int) * nconn);
	conns = (PgbunConnSlot *) p;
}

/* Fill a freshly created segment: every connection slot free, every chain empty. */
static void
init_segment(void)
{
	PgbunShared *sh = pgbun_shared;

	memset(sh, 0, sizeof(PgbunShared));
	SpinLockInit(&sh->mutex);
	sh->n_workers = Min(pgbun_workers, PGBUN_MAX_WORKERS);
	ConditionVariableInit(&sh->pause_cv);
	pg_atomic_init_u32(&sh->client_count, 0);
	pg_atomic_init_u32(&sh->n_starving, 0);
	pg_atomic_init_u64(&sh->next_conn_id, 1);
	pg_atomic_init_u64(&sh->control_generation, 0);
	for (int i = 0; i < PGBUN_MAX_POOLS; i++)
		pg_atomic_init_u64(&sh->welcomes[i].generation, 0);
	for (int i = 0; i < PGBUN_MAX_WORKERS; i++)
		pg_atomic_init_u32(&sh->workers[i].cancels_done, 0);
	sh->clock_anchor = pgbun_clock_anchor();
	sh->stats_start = pgbun_clock_now();
	sh->n_conn_slots = planned_conn_slots;
	sh->n_client_slots = planned_client_slots;
	sh->n_cancel_buckets = planned_cancel_buckets;

	locate_variable_part();

	for (int i = 0; i < sh->n_conn_slots; i++)
	{
		memset(&conns[i], 0, sizeof(PgbunConnSlot));
		pg_atomic_init_u64(&conns[i].cancel_holds, 0);
		conns[i].kind = CONN_FREE;
		conns[i].pool = -1;
		conns[i].peer = -1;
		conn_next[i] = (i + 1 < sh->n_conn_slots) ? i + 1 : -1;
		cancel_next[i] = NOT_IN_CANCEL_TABLE;
	}
	sh->free_conn_head = sh->n_conn_slots > 0 ? 0 : -1;

	for (int b = 0; b < sh->n_cancel_buckets; b++)
		cancel_buckets[b] = -1;
}

/* shmem_request_hook: reserve the segment's space (PostgreSQL 15 asks here). */
static void
pgbun_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();

	plan_sizes();
	RequestAddinShmemSpace(segment_size());
	RequestAddinShmemSpace(counters_shmem_size());
}

/*
 * shmem_startup_hook: create the segment in the postmaster (again after a
 * crash restart, which starts every counter afresh), or attach to it.
 */
static void
pgbun_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	pgbun_shared = NULL;
	conn_next = cancel_buckets = cancel_next = NULL;
	conns = NULL;

	/* A process that did not see the request (EXEC_BACKEND) plans the same way. */
	if (planned_conn_slots == 0)
		plan_sizes();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	pgbun_shared = ShmemInitStruct("pgbun", segment_size(), &found);
	if (!found)
		init_segment();
	else
		locate_variable_part();
	counters_shmem_init();
	LWLockRelease(AddinShmemInitLock);
}

void
pgbun_shmem_register(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = pgbun_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = pgbun_shmem_startup;
}

bool
pgbun_shmem_attached(void)
{
	return pgbun_shared != NULL;
}

PgbunConnSlot *
pgbun_conn_slot(int idx)
{
	Assert(idx >= 0 && idx < pgbun_shared->n_conn_slots);
	return &conns[idx];
}

/*
 * Open a write to a slot, closing one left open by a writer that died
 * mid-write: the count is made odd whatever it was, and slot_write_end()
 * makes it even again. Only for writes that replace the whole slot (alloc,
 * free), where a half-written predecessor does not matter.
 */
static inline void
slot_write_begin_whole(PgbunConnSlot *s)
{
	if ((s->changecount & 1) == 0)
		s->changecount++;
	pg_write_barrier();
}

static inline void
slot_write_end(PgbunConnSlot *s)
{
	pg_write_barrier();
	s->changecount++;
}

/* Zero everything after the change counter. */
static inline void
slot_clear(PgbunConnSlot *s)
{
	memset((char *) s + offsetof(PgbunConnSlot, kind), 0,
		   sizeof(PgbunConnSlot) - offsetof(PgbunConnSlot, kind));
	s->pool = -1;
	s->peer = -1;
}

/* Bucket of a cancel pid. */
static inline int
cancel_bucket(uint32 pid)
{
	return (int) (hash_bytes_uint32(pid) & (uint32) (pgbun_shared->n_cancel_buckets - 1));
}

/* Unlink a slot from one chain if it is there; true when it was. Caller holds the mutex. */
static bool
cancel_unlink_from_bucket(int bucket, int slot_idx)
{
	int		   *link = &cancel_buckets[bucket];

	while (*link >= 0)
	{
		if (*link == slot_idx)
		{
			*link = cancel_next[slot_idx];
			cancel_next[slot_idx] = NOT_IN_CANCEL_TABLE;
			return true;
		}
		link = &cancel_next[*link];
	}
	return false;
}

/*
 * Take a slot out of the cancel table, looking first in the bucket of the
 * pid it was registered with. Should that pid be wrong (the slot's
 * cancel_pid was changed behind the table's back) every bucket is searched,
 * since a slot left in a chain after it is freed would corrupt the chain
 * when the slot is registered again. Caller holds the mutex.
 */
static void
cancel_unlink_locked(int slot_idx, uint32 pid)
{
	if (cancel_next[slot_idx] == NOT_IN_CANCEL_TABLE)
		return;
	if (cancel_unlink_from_bucket(cancel_bucket(pid), slot_idx))
		return;
	for (int b = 0; b < pgbun_shared->n_cancel_buckets; b++)
	{
		if (cancel_unlink_from_bucket(b, slot_idx))
			return;
	}
	cancel_next[slot_idx] = NOT_IN_CANCEL_TABLE;	/* can't happen: in no chain */
}

/*
 * Take a free connection slot for a new connection of the given kind owned by
 * the given worker. The slot comes back published with a fresh id, no pool
 * and no peer, everything else zero. -1 when every slot is in use.
 */
int
pgbun_conn_slot_alloc(ConnKind kind, int worker)
{
	PgbunShared *sh = pgbun_shared;
	PgbunConnSlot *s;
	int			idx;

	SpinLockAcquire(&sh->mutex);
	idx = sh->free_conn_head;
	if (idx >= 0)
	{
		sh->free_conn_head = conn_next[idx];
		conn_next[idx] = -1;
	}
	SpinLockRelease(&sh->mutex);

	if (idx < 0)
		return -1;

	/* The slot is ours now; readers may still look, so use the write protocol. */
	s = &conns[idx];
	slot_write_begin_whole(s);
	slot_clear(s);
	s->kind = (uint8) kind;
	s->worker = (int16) worker;
	s->id = pg_atomic_fetch_add_u64(&sh->next_conn_id, 1);
	/* a cancel still in flight for the slot's last connection no longer matches */
	pg_atomic_write_u64(&s->cancel_holds, (s->id & PG_UINT32_MAX) << 32);
	slot_write_end(s);

	return idx;
}

/*
 * Give a slot back: publish it as CONN_FREE, drop its cancel-table entry if
 * it still has one, and put it on the free list. The caller must not be
 * inside its own PGBUN_SLOT_WRITE_BEGIN/END on this slot.
 */
void
pgbun_conn_slot_free(int idx)
{
	PgbunShared *sh = pgbun_shared;
	PgbunConnSlot *s;
	uint32		cancel_pid;

	if (idx < 0 || idx >= sh->n_conn_slots)
		return;

	s = &conns[idx];
	cancel_pid = s->cancel_pid;

	slot_write_begin_whole(s);
	slot_clear(s);
	s->kind = CONN_FREE;
	slot_write_end(s);

	SpinLockAcquire(&sh->mutex);
	cancel_unlink_locked(idx, cancel_pid);
	conn_next[idx] = sh->free_conn_head;
	sh->free_conn_head = idx;
	SpinLockRelease(&sh->mutex);
}

/*
 * Free every slot owned by one worker number. A worker calls this when it
 * starts, so slots left behind by a predecessor that exited without cleaning
 * up (and so never restarted the cluster) are not leaked. Only the owner of
 * a worker number may call it.
 */
void
pgbun_conn_slots_release_worker(int worker)
{
	for (int i = 0; i < pgbun_shared->n_conn_slots; i++)
	{
		if (conns[i].kind != CONN_FREE && conns[i].worker == worker)
			pgbun_conn_slot_free(i);
	}
}

void
pgbun_conn_slot_set_tls(int idx, const char *version)
{
	PgbunConnSlot *s;

	if (idx < 0)
		return;
	s = pgbun_conn_slot(idx);
	PGBUN_SLOT_WRITE_BEGIN(s);
	strlcpy(s->tls, version, sizeof(s->tls));
	PGBUN_SLOT_WRITE_END(s);
}

/*
 * Copy a slot consistently, PgBackendStatus style: read the change count,
 * copy, read it again; retry while it was odd (a write in progress) or
 * moved. Writes are a handful of stores, so a retry is rare. false after
 * SLOT_READ_FAST_TRIES spins without a consistent copy: the writer is off
 * the CPU mid-write, or died mid-write. Never sleeps, so the workers' event
 * loop can use it (cancel.c tries again later instead of waiting).
 */
bool
pgbun_conn_slot_try_read(int idx, PgbunConnSlot *copy)
{
	volatile PgbunConnSlot *s = &conns[idx];

	for (int tries = 0; tries < SLOT_READ_FAST_TRIES; tries++)
	{
		uint32		before;
		uint32		after;

		before = s->changecount;
		pg_read_barrier();
		memcpy(copy, (const void *) s, sizeof(PgbunConnSlot));
		pg_read_barrier();
		after = s->changecount;

		if (before == after && (before & 1) == 0)
			return true;
		pg_spin_delay();
	}
	return false;
}

/*
 * pgbun_conn_slot_try_read, and should that fail, keep trying: ordinary
 * backends (the views) sleep 1 ms between tries and check for interrupts.
 * The workers never sleep here. Should the writer have died mid-write the
 * count stays odd forever: after about a second of retries (at once in a
 * worker) the copy is reported as CONN_FREE.
 */
void
pgbun_conn_slot_read(int idx, PgbunConnSlot *copy)
{
	if (pgbun_conn_slot_try_read(idx, copy))
		return;
	for (int tries = 0; !IsBackgroundWorker && tries < SLOT_READ_SLOW_TRIES; tries++)
	{
		CHECK_FOR_INTERRUPTS();
		pg_usleep(1000L);
		if (pgbun_conn_slot_try_read(idx, copy))
			return;
	}

	/* Unreadable: present it as free so callers skip it. */
	memset(copy, 0, sizeof(PgbunConnSlot));
	copy->kind = CONN_FREE;
	copy->pool = -1;
	copy->peer = -1;
}

/* Do a pool slot's names match? Both sides are NUL-terminated within NAMEDATALEN. */
static inline bool
pool_matches(const PgbunPoolSlot *p, const char *database, const char *user)
{
	return strncmp(p->database, database, NAMEDATALEN - 1) == 0 &&
		strncmp(p->user, user, NAMEDATALEN - 1) == 0;
}

/*
 * Find the pool slot of (database, user), creating it if there is none, and
 * mark the worker as one of its users. Names longer than NAMEDATALEN - 1
 * bytes are truncated, as PostgreSQL truncates them in a startup packet.
 * A worker calls this once per pool it creates, so it simply takes the
 * mutex: slots are released (pgbun_pool_slot_release), and only under the
 * mutex is in_use with its names stable. -1 when the table is full.
 */
int
pgbun_pool_slot_acquire(const char *database, const char *user, int worker)
{
	PgbunShared *sh = pgbun_shared;
	int			free_idx = -1;
	int			found = -1;

	SpinLockAcquire(&sh->mutex);
	for (int i = 0; i < PGBUN_MAX_POOLS; i++)
	{
		PgbunPoolSlot *p = &sh->pools[i];

		if (!p->in_use)
		{
			if (free_idx < 0)
				free_idx = i;
			continue;
		}
		if (pool_matches(p, database, user))
		{
			found = i;
			break;
		}
	}
	if (found < 0 && free_idx >= 0)
	{
		PgbunPoolSlot *p = &sh->pools[free_idx];

		memset(p, 0, sizeof(PgbunPoolSlot));
		strlcpy(p->database, database, NAMEDATALEN);
		strlcpy(p->user, user, NAMEDATALEN);
		p->pool_mode = pgbun_cfg->pool_mode;
		pg_atomic_init_u32(&p->server_count, 0);
		pg_atomic_init_u64(&p->starving, 0);
		counters_reset(free_idx);
		/* a former pool's parameters are not this one's */
		sh->welcomes[free_idx].len = 0;
		pg_atomic_write_u64(&sh->welcomes[free_idx].generation, 0);
		pg_write_barrier();		/* publish the names before in_use */
		p->in_use = true;
		found = free_idx;
	}
	if (found >= 0)
		sh->pools[found].worker_mask |= UINT64CONST(1) << worker;
	SpinLockRelease(&sh->mutex);

	return found;
}

/* Caller holds the mutex: drop a worker's use of a slot, freeing it when nobody is left. */
static void
pool_slot_release_locked(PgbunPoolSlot *p, int worker)
{
	p->worker_mask &= ~(UINT64CONST(1) << worker);
	/* a server still counted (another worker's, closing) keeps the slot */
	if (p->worker_mask == 0 && pg_atomic_read_u32(&p->server_count) == 0)
	{
		p->in_use = false;
		pg_write_barrier();
	}
}

void
pgbun_pool_slot_release(int idx, int worker)
{
	PgbunShared *sh = pgbun_shared;

	if (idx < 0 || idx >= PGBUN_MAX_POOLS)
		return;
	SpinLockAcquire(&sh->mutex);
	if (sh->pools[idx].in_use)
		pool_slot_release_locked(&sh->pools[idx], worker);
	SpinLockRelease(&sh->mutex);
}

uint64
pgbun_pool_welcome_publish(int idx, const char *data, uint16 len)
{
	PgbunShared *sh = pgbun_shared;
	PgbunPoolWelcome *w;
	uint64		gen;

	if (idx < 0 || idx >= PGBUN_MAX_POOLS)
		return 0;
	w = &sh->welcomes[idx];
	SpinLockAcquire(&sh->mutex);
	if (len > PGBUN_WELCOME_MAX)
		w->len = 0;				/* the older one would be outdated: share none */
	else
	{
		memcpy(w->data, data, len);
		w->len = len;
	}
	gen = pg_atomic_read_u64(&w->generation) + 1;
	pg_atomic_write_u64(&w->generation, gen);
	SpinLockRelease(&sh->mutex);
	return gen;
}

uint64
pgbun_pool_welcome_generation(int idx)
{
	if (idx < 0 || idx >= PGBUN_MAX_POOLS)
		return 0;
	return pg_atomic_read_u64(&pgbun_shared->welcomes[idx].generation);
}

uint16
pgbun_pool_welcome_read(int idx, char *buf, uint64 *gen)
{
	PgbunShared *sh = pgbun_shared;
	uint16		len;

	*gen = 0;
	if (idx < 0 || idx >= PGBUN_MAX_POOLS)
		return 0;
	SpinLockAcquire(&sh->mutex);
	len = sh->welcomes[idx].len;
	memcpy(buf, sh->welcomes[idx].data, len);
	*gen = pg_atomic_read_u64(&sh->welcomes[idx].generation);
	SpinLockRelease(&sh->mutex);
	return len;
}

void
pgbun_pool_slots_release_worker(int worker)
{
	PgbunShared *sh = pgbun_shared;

	SpinLockAcquire(&sh->mutex);
	for (int i = 0; i < PGBUN_MAX_POOLS; i++)
		if (sh->pools[i].in_use && (sh->pools[i].worker_mask & (UINT64CONST(1) << worker)))
			pool_slot_release_locked(&sh->pools[i], worker);
	SpinLockRelease(&sh->mutex);
}

/*
 * Register a client's pooler-made cancel key for its slot. The key is also
 * stored in the slot (lookup compares against it); if the caller is in the
 * middle of its own write to the slot the fields become part of that write,
 * otherwise this publishes them with the write protocol. Registering again
 * replaces the previous entry.
 */
void
pgbun_cancel_register(int slot_idx, uint32 pid, uint32 key)
{
	PgbunShared *sh = pgbun_shared;
	PgbunConnSlot *s;
	uint32		old_pid;
	bool		own_write;
	int			b;

	if (slot_idx < 0 || slot_idx >= sh->n_conn_slots)
		return;

	s = &conns[slot_idx];
	old_pid = s->cancel_pid;
	own_write = (s->changecount & 1) == 0;
	if (own_write)
		PGBUN_SLOT_WRITE_BEGIN(s);
	s->cancel_pid = pid;
	s->cancel_key = key;
	if (own_write)
		PGBUN_SLOT_WRITE_END(s);

	b = cancel_bucket(pid);
	SpinLockAcquire(&sh->mutex);
	cancel_unlink_locked(slot_idx, old_pid);
	cancel_next[slot_idx] = cancel_buckets[b];
	cancel_buckets[b] = slot_idx;
	SpinLockRelease(&sh->mutex);
}

/*
 * Find the client slot a CancelRequest's (pid, key) belongs to: a hash
 * look-up, then both values must match a live client. -1 when none does.
 */
int
pgbun_cancel_lookup(uint32 pid, uint32 key)
{
	PgbunShared *sh = pgbun_shared;
	int			result = -1;

	SpinLockAcquire(&sh->mutex);
	for (int i = cancel_buckets[cancel_bucket(pid)]; i >= 0; i = cancel_next[i])
	{
		PgbunConnSlot *s = &conns[i];

		if (s->kind == CONN_CLIENT && s->cancel_pid == pid && s->cancel_key == key)
		{
			result = i;
			break;
		}
	}
	SpinLockRelease(&sh->mutex);

	return result;
}

/* Remove a client's cancel key (pid as registered). Absent entries are ignored. */
void
pgbun_cancel_unregister(int slot_idx, uint32 pid)
{
	PgbunShared *sh = pgbun_shared;

	if (slot_idx < 0 || slot_idx >= sh->n_conn_slots)
		return;

	SpinLockAcquire(&sh->mutex);
	cancel_unlink_locked(slot_idx, pid);
	SpinLockRelease(&sh->mutex);
}

/*
 * Set or clear one worker's starving bit in a pool slot. n_starving counts
 * the bits set, changed only by whoever flipped a bit (the atomic tells), so
 * it never drifts even if two calls race.
 */
void
pgbun_pool_set_starving(int pool_idx, int worker, bool starving)
{
	PgbunPoolSlot *p = &pgbun_shared->pools[pool_idx];
	uint64		bit = UINT64CONST(1) << worker;
	uint64		old;

	if (starving)
	{
		old = pg_atomic_fetch_or_u64(&p->starving, bit);
		if (!(old & bit))
			pg_atomic_fetch_add_u32(&pgbun_shared->n_starving, 1);
	}
	else
	{
		old = pg_atomic_fetch_and_u64(&p->starving, ~bit);
		if (old & bit)
			pg_atomic_fetch_sub_u32(&pgbun_shared->n_starving, 1);
	}
}

void
pgbun_starving_release_worker(int worker)
{
	for (int i = 0; i < PGBUN_MAX_POOLS; i++)
	{
		if (pgbun_shared->pools[i].in_use)
			pgbun_pool_set_starving(i, worker, false);
	}
}

/*
 * Wake the workers of a mask that are running. Latches are collected under
 * the mutex (a worker clears its slot under it when it exits) and set after
 * it is released; a latch whose owner is not the published pid belongs to a
 * worker that is gone.
 */
void
pgbun_wake_workers(uint64 mask)
{
	PgbunShared *sh = pgbun_shared;
	Latch	   *latches[PGBUN_MAX_WORKERS];
	int			n = 0;

	if (mask == 0)
		return;
	SpinLockAcquire(&sh->mutex);
	for (int i = 0; i < sh->n_workers; i++)
	{
		PgbunWorkerSlot *w = &sh->workers[i];

		if ((mask & (UINT64CONST(1) << i)) &&
			w->pid != 0 && w->latch != NULL && w->latch->owner_pid == w->pid)
			latches[n++] = w->latch;
	}
	SpinLockRelease(&sh->mutex);

	for (int i = 0; i < n; i++)
		SetLatch(latches[i]);
}

/* Is this database paused right now: everything paused, or it by name? */
bool
pgbun_db_paused(const char *database)
{
	PgbunShared *sh = pgbun_shared;
	bool		paused;

	SpinLockAcquire(&sh->mutex);
	paused = sh->pause_all;
	for (int i = 0; !paused && i < sh->n_paused_dbs; i++)
	{
		if (strncmp(sh->paused_dbs[i], database, NAMEDATALEN - 1) == 0)
			paused = true;
	}
	SpinLockRelease(&sh->mutex);

	return paused;
}

/*
 * Add a database (or, with NULL, everything) to the paused set and bump the
 * pause generation; the workers converge on it when woken. Returns the
 * generation to wait for, or 0 when the set of named databases is full.
 */
uint64
pgbun_pause_set_add(const char *database)
{
	PgbunShared *sh = pgbun_shared;
	uint64		gen = 0;

	SpinLockAcquire(&sh->mutex);
	if (database == NULL)
		sh->pause_all = true;
	else
	{
		bool		present = false;

		for (int i = 0; i < sh->n_paused_dbs && !present; i++)
			present = strcmp(sh->paused_dbs[i], database) == 0;
		if (!present)
		{
			if (sh->n_paused_dbs >= PGBUN_MAX_PAUSED_DBS)
			{
				SpinLockRelease(&sh->mutex);
				return 0;
			}
			strlcpy(sh->paused_dbs[sh->n_paused_dbs++], database, NAMEDATALEN);
		}
	}
	gen = ++sh->pause_generation;
	SpinLockRelease(&sh->mutex);
	pgbun_wake_workers(~UINT64CONST(0));
	return gen;
}

/*
 * Take a database out of the paused set, or with NULL clear the whole set
 * (pause_all and every name); resuming one name does not lift pause_all.
 */
void
pgbun_pause_set_remove(const char *database)
{
	PgbunShared *sh = pgbun_shared;

	SpinLockAcquire(&sh->mutex);
	if (database == NULL)
	{
		sh->pause_all = false;
		sh->n_paused_dbs = 0;
	}
	else
	{
		for (int i = 0; i < sh->n_paused_dbs; i++)
		{
			if (strcmp(sh->paused_dbs[i], database) == 0)
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
	pgbun_wake_workers(~UINT64CONST(0));
}

/* Is the slot's worker alive (its published latch still owned by its pid)? Caller holds the mutex. */
bool
pgbun_worker_running(const PgbunWorkerSlot *w)
{
	return w->pid != 0 && w->latch != NULL && w->latch->owner_pid == w->pid;
}

/* Have all running workers applied pause generation gen and drained their paused pools? */
bool
pgbun_pause_done(uint64 gen)
{
	PgbunShared *sh = pgbun_shared;
	bool		done = true;

	SpinLockAcquire(&sh->mutex);
	for (int i = 0; i < sh->n_workers && done; i++)
	{
		PgbunWorkerSlot *w = &sh->workers[i];

		if (pgbun_worker_running(w) && (w->pause_applied < gen || !w->pause_drained))
			done = false;
	}
	SpinLockRelease(&sh->mutex);
	return done;
}
