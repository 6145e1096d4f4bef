/*
 * control.c - KILL, RECONNECT, DISABLE / ENABLE, KILL_CLIENT and SHUTDOWN
 * across workers (control.h).
 *
 * A request edits PgbunShared's control fields under the mutex, bumps
 * control_generation and sets every worker's latch; each worker compares the
 * generation with the one it last applied (one atomic read per wake-up, none
 * per message), applies the whole state and records the generation in its
 * worker slot, which is what the console waits for. Rules are "before time
 * t", so applying them again, or late, does nothing new:
 *
 *  - KILL d: clients and servers of d connected before t are closed (the
 *    console also pauses d, as PgBouncer does, until RESUME).
 *  - RECONNECT d: the pool remembers t; its idle servers from before t close
 *    at once, the others when they are next released (pool_server_available).
 *  - DISABLE d: a flag read at each login (client_login.c).
 *  - KILL_CLIENT id: the console writes id into the connection slot's
 *    kill_id; the owning worker closes the client whose slot says so.
 *  - SHUTDOWN: a flag; every worker exits with 0, which the postmaster does
 *    not restart (worker.c).
 *
 * A per-database entry is reused once it holds nothing in force: not
 * disabled, and its times applied by every running worker.
 */
#include "postgres.h"

#include "utils/timestamp.h"

#include "clock.h"
#include "control.h"
#include "pooler.h"
#include "shmem.h"

/* The generation this worker has applied, and the KILL_CLIENT count it has seen. */
static uint64 control_seen = 0;
static uint64 kills_seen = 0;

/* This worker's copy of the per-database entries, taken under the mutex. */
static PgbunDbControl db_copy[PGBUN_MAX_DB_CONTROLS];

/* Lowest generation every running worker has applied. Caller holds the mutex. */
static uint64
min_applied(void)
{
	PgbunShared *sh = pgbun_shared;
	uint64		min = PG_UINT64_MAX;

	for (int i = 0; i < sh->n_workers; i++)
		if (pgbun_worker_running(&sh->workers[i]))
			min = Min(min, sh->workers[i].control_applied);
	return min;
}

/*
 * A database's entry, created when create (reusing one that holds nothing
 * in force when the table is full); NULL if absent or no room. Caller holds
 * the mutex.
 */
static PgbunDbControl *
db_entry(const char *database, bool create)
{
	PgbunShared *sh = pgbun_shared;
	PgbunDbControl *d = NULL;

	for (int i = 0; i < sh->n_db_controls; i++)
		if (strcmp(sh->db_controls[i].database, database) == 0)
			return &sh->db_controls[i];
	if (!create)
		return NULL;
	if (sh->n_db_controls < PGBUN_MAX_DB_CONTROLS)
		d = &sh->db_controls[sh->n_db_controls++];
	else
	{
		uint64		applied = min_applied();

		for (int i = 0; i < sh->n_db_controls && !d; i++)
			if (!sh->db_controls[i].disabled && sh->db_controls[i].set_gen <= applied)
				d = &sh->db_controls[i];
		if (!d)
			return NULL;
	}
	memset(d, 0, sizeof(PgbunDbControl));
	strlcpy(d->database, database, NAMEDATALEN);
	return d;
}

/* A new generation (caller holds the mutex); the entry changed, if any, records it. */
static uint64
next_generation(PgbunDbControl *d)
{
	uint64		gen = pg_atomic_add_fetch_u64(&pgbun_shared->control_generation, 1);

	if (d)
		d->set_gen = gen;
	return gen;
}

/* Set a "before now" time for one database or all; 0 when the table is full. */
static uint64
set_before(const char *database, bool kill)
{
	PgbunShared *sh = pgbun_shared;
	TimestampTz now = pgbun_clock_now();
	uint64		gen = 0;

	SpinLockAcquire(&sh->mutex);
	if (database == NULL)
	{
		if (kill)
			sh->kill_all_before = now;
		else
			sh->reconnect_all_before = now;
		gen = next_generation(NULL);
	}
	else
	{
		PgbunDbControl *d = db_entry(database, true);

		if (d)
		{
			if (kill)
				d->kill_before = now;
			else
				d->reconnect_before = now;
			gen = next_generation(d);
		}
	}
	SpinLockRelease(&sh->mutex);
	if (gen)
		pgbun_wake_workers(~UINT64CONST(0));
	return gen;
}

uint64
control_kill_database(const char *database)
{
	return set_before(database, true);
}

uint64
control_reconnect_database(const char *database)
{
	return set_before(database, false);
}

uint64
control_set_disabled(const char *database, bool disabled)
{
	PgbunShared *sh = pgbun_shared;
	PgbunDbControl *d;
	uint64		gen = 0;

	SpinLockAcquire(&sh->mutex);
	d = db_entry(database, disabled);
	if (d)
		d->disabled = disabled;
	if (d || !disabled)
		gen = next_generation(d);	/* ENABLE of a database never disabled: nothing to do */
	SpinLockRelease(&sh->mutex);
	if (gen)
		pgbun_wake_workers(~UINT64CONST(0));
	return gen;
}

uint64
control_kill_client(uint64 conn_id)
{
	PgbunShared *sh = pgbun_shared;
	uint64		gen = 0;

	for (int i = 0; i < sh->n_conn_slots && gen == 0; i++)
	{
		PgbunConnSlot copy;

		if (!pgbun_conn_slot_try_read(i, &copy) || copy.kind != CONN_CLIENT || copy.id != conn_id)
			continue;
		/*
		 * Check again under the mutex (which orders it before the workers'
		 * reads): if the slot was freed and reused meanwhile its id differs,
		 * and a kill_id that is no live connection's id closes nobody.
		 */
		SpinLockAcquire(&sh->mutex);
		if (pgbun_conn_slot(i)->id == conn_id)
		{
			pgbun_conn_slot(i)->kill_id = conn_id;
			sh->kills_requested++;
			gen = next_generation(NULL);
		}
		SpinLockRelease(&sh->mutex);
		if (gen == 0)
			break;				/* it has just gone */
	}
	if (gen)
		pgbun_wake_workers(~UINT64CONST(0));
	return gen;
}

void
control_request_shutdown(void)
{
	SpinLockAcquire(&pgbun_shared->mutex);
	pgbun_shared->shutdown_requested = true;
	(void) next_generation(NULL);
	SpinLockRelease(&pgbun_shared->mutex);
	pgbun_wake_workers(~UINT64CONST(0));
}

bool
control_done(uint64 gen)
{
	bool		done;

	SpinLockAcquire(&pgbun_shared->mutex);
	done = min_applied() >= gen;
	SpinLockRelease(&pgbun_shared->mutex);
	return done;
}

bool
control_db_disabled(const char *database)
{
	PgbunDbControl *d;
	bool		disabled;

	SpinLockAcquire(&pgbun_shared->mutex);
	d = db_entry(database, false);
	disabled = d && d->disabled;
	SpinLockRelease(&pgbun_shared->mutex);
	return disabled;
}

int
control_disabled_names(char (*names)[NAMEDATALEN], int max)
{
	PgbunShared *sh = pgbun_shared;
	int			n = 0;

	SpinLockAcquire(&sh->mutex);
	for (int i = 0; i < sh->n_db_controls && n < max; i++)
		if (sh->db_controls[i].disabled)
			strlcpy(names[n++], sh->db_controls[i].database, NAMEDATALEN);
	SpinLockRelease(&sh->mutex);
	return n;
}

bool
control_server_outdated(const Server *s)
{
	return s->pool && s->connect_time < s->pool->reconnect_before;
}

/*
 * Close a pool's clients (all states) connected before t, then its servers
 * made before t. Clients first, so that they get the KILL's error rather than
 * "server connection lost". Closing a linked client releases its server,
 * which may move clients waiting for the pool's first login onto the active
 * list (appended, after t): iterating with dlist_foreach_modify stays valid.
 */
static void
kill_pool(Pool *pool, TimestampTz t)
{
	dlist_head *clists[] = {&pool->waitlogin_clients, &pool->waiting_clients, &pool->active_clients};
	dlist_head *slists[] = {&pool->login_servers, &pool->idle_servers, &pool->active_servers,
	&pool->used_servers};

	for (int i = 0; i < lengthof(clists); i++)
	{
		dlist_mutable_iter it;

		dlist_foreach_modify(it, clists[i])
		{
			Client	   *c = dlist_container(Client, node, it.cur);

			if (c->connect_time < t)
				client_close(c, "57P01", "terminating connection due to administrator command (KILL %s)",
							 pool->database);
		}
	}
	/* the CancelRequests for its clients (their cancels go on) */
	{
		dlist_mutable_iter it;

		dlist_foreach_modify(it, &W->cancel_clients)
		{
			Client	   *c = dlist_container(Client, node, it.cur);

			if (c->cancel_pool == pool->slot && c->connect_time < t)
				client_close(c, NULL, "KILL %s", pool->database);
		}
	}
	for (int i = 0; i < lengthof(slists); i++)
	{
		dlist_mutable_iter it;

		dlist_foreach_modify(it, slists[i])
		{
			Server	   *s = dlist_container(Server, node, it.cur);

			if (s->connect_time < t)
				server_close(s, "KILL on the admin console");
		}
	}
}

/* Remember t for later releases and close the pool's idle servers made before it. */
static void
reconnect_pool(Pool *pool, TimestampTz t)
{
	dlist_mutable_iter it;

	if (t <= pool->reconnect_before)
		return;
	pool->reconnect_before = t;
	dlist_foreach_modify(it, &pool->idle_servers)
	{
		Server	   *s = dlist_container(Server, node, it.cur);

		if (s->connect_time < t)
			server_close(s, "RECONNECT on the admin console");
	}
}

/* Close the clients of list h that KILL_CLIENT named (their slot's kill_id is their id). */
static void
kill_clients_in(dlist_head *h)
{
	dlist_mutable_iter it;

	dlist_foreach_modify(it, h)
	{
		Client	   *c = dlist_container(Client, node, it.cur);
		PgbunConnSlot *slot;

		if (c->closed || c->slot < 0)
			continue;
		slot = pgbun_conn_slot(c->slot);
		if (slot->kill_id == slot->id)
			client_close(c, "57P01", "terminating connection due to administrator command (KILL_CLIENT)");
	}
}

bool
control_apply(void)
{
	PgbunShared *sh = pgbun_shared;
	uint64		gen = pg_atomic_read_u64(&sh->control_generation);
	TimestampTz kill_all;
	TimestampTz reconnect_all;
	uint64		kills;
	int			ndb;
	bool		shutdown;
	dlist_iter	it;

	if (gen == control_seen)
		return false;

	/* the mutex orders these reads after the writes of the generation we read */
	SpinLockAcquire(&sh->mutex);
	kill_all = sh->kill_all_before;
	reconnect_all = sh->reconnect_all_before;
	kills = sh->kills_requested;
	shutdown = sh->shutdown_requested;
	ndb = sh->n_db_controls;
	memcpy(db_copy, sh->db_controls, sizeof(PgbunDbControl) * ndb);
	SpinLockRelease(&sh->mutex);
	if (shutdown)
		return true;			/* the worker exits; its generation need not be reported */

	dlist_foreach(it, &W->pools)
	{
		Pool	   *pool = dlist_container(Pool, node, it.cur);
		TimestampTz kill_t = kill_all;
		TimestampTz reconnect_t = reconnect_all;

		for (int i = 0; i < ndb; i++)
			if (strcmp(db_copy[i].database, pool->database) == 0)
			{
				kill_t = Max(kill_t, db_copy[i].kill_before);
				reconnect_t = Max(reconnect_t, db_copy[i].reconnect_before);
			}
		if (kill_t > 0)
			kill_pool(pool, kill_t);
		if (reconnect_t > 0)
			reconnect_pool(pool, reconnect_t);
	}
	if (kills != kills_seen)
	{
		kills_seen = kills;
		kill_clients_in(&W->login_clients);
		kill_clients_in(&W->console_clients);
		kill_clients_in(&W->cancel_clients);
		dlist_foreach(it, &W->pools)
		{
			Pool	   *pool = dlist_container(Pool, node, it.cur);

			kill_clients_in(&pool->waitlogin_clients);
			kill_clients_in(&pool->waiting_clients);
			kill_clients_in(&pool->active_clients);
		}
	}

	control_seen = gen;
	SpinLockAcquire(&sh->mutex);
	sh->workers[W->id].control_applied = gen;
	SpinLockRelease(&sh->mutex);
	return false;
}
