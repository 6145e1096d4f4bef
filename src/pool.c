/*
 * pool.c - pools keyed by (database, user): handing servers to waiting
 * clients, growing within the limits, pause, and the periodic janitor.
 *
 * Limits are shared by all workers: a server is counted in the pool's shared
 * slot (pg_atomic) before it is opened, and per-database / per-user totals
 * are summed over the shared pool slots, so N workers never open more than
 * one worker would.
 */
#include "postgres.h"

#include "storage/condition_variable.h"
#include "utils/timestamp.h"

#include "cancel.h"
#include "config.h"
#include "client_login.h"
#include "pooler.h"
#include "server_login.h"

static uint64 pause_seen_generation = 0;

Pool *
pool_get(const char *database, const char *user)
{
	dlist_iter	it;
	Pool	   *pool;
	int			slot;

	dlist_foreach(it, &W->pools)
	{
		pool = dlist_container(Pool, node, it.cur);
		if (strcmp(pool->database, database) == 0 && strcmp(pool->user, user) == 0)
			return pool;
	}
	slot = pgbun_pool_slot_get(database, user);
	if (slot < 0)
		return NULL;
	pool = calloc(1, sizeof(Pool));
	if (!pool)
		return NULL;
	pool->slot = slot;
	strlcpy(pool->database, database, sizeof(pool->database));
	strlcpy(pool->user, user, sizeof(pool->user));
	dlist_init(&pool->active_clients);
	dlist_init(&pool->waiting_clients);
	dlist_init(&pool->waitlogin_clients);
	dlist_init(&pool->login_servers);
	dlist_init(&pool->idle_servers);
	dlist_init(&pool->active_servers);
	dlist_init(&pool->used_servers);
	pool->paused = pgbun_db_paused(database);
	pool_reconfigure(pool);
	dlist_push_tail(&W->pools, &pool->node);
	return pool;
}

/*
 * Resolve the pool's mode and size from the settings (at creation and on
 * reload). A new mode applies to new links only: a link keeps the mode it
 * was made with (Server.link_mode), so a reload never turns a session
 * client's server over to others, nor pins a transaction client's.
 */
void
pool_reconfigure(Pool *pool)
{
	pool->mode = config_pool_mode(pool->database, pool->user);
	pool->size = config_pool_size(pool->database);
	pgbun_shared->pools[pool->slot].pool_mode = pool->mode;
}

/* Sum of shared server counts over pools matching database or user. */
static uint32
shared_server_total(const char *database, const char *user)
{
	uint32		total = 0;

	for (int i = 0; i < PGBUN_MAX_POOLS; i++)
	{
		PgbunPoolSlot *ps = &pgbun_shared->pools[i];

		if (!ps->in_use)
			continue;
		if ((database && strcmp(ps->database, database) == 0) ||
			(user && strcmp(ps->user, user) == 0))
			total += pg_atomic_read_u32(&ps->server_count);
	}
	return total;
}

/*
 * Reserve room for one more server connection in the shared counters.
 * true: counted (the caller must open it or give the count back).
 */
static bool
pool_reserve_server(Pool *pool)
{
	PgbunPoolSlot *ps = &pgbun_shared->pools[pool->slot];
	uint32		prev;

	if (pool->last_login_failure &&
		W->now - pool->last_login_failure < (int64) pgbun_server_login_retry * 1000)
		return false;
	prev = pg_atomic_fetch_add_u32(&ps->server_count, 1);
	if (prev >= (uint32) pool->size ||
		(pgbun_max_db_connections > 0 &&
		 shared_server_total(pool->database, NULL) > (uint32) pgbun_max_db_connections) ||
		(pgbun_max_user_connections > 0 &&
		 shared_server_total(NULL, pool->user) > (uint32) pgbun_max_user_connections))
	{
		pg_atomic_fetch_sub_u32(&ps->server_count, 1);
		return false;
	}
	return true;
}

bool
pool_can_open_server(Pool *pool)
{
	PgbunPoolSlot *ps = &pgbun_shared->pools[pool->slot];

	return pg_atomic_read_u32(&ps->server_count) < (uint32) pool->size;
}

static bool
pool_open_server(Pool *pool)
{
	if (W->shutting_down || !pool_reserve_server(pool))
		return false;
	if (!server_launch(pool))
	{
		/* server_launch closes through server_close, which gives the count back */
		return false;
	}
	return true;
}

static int
count_list(dlist_head *h)
{
	dlist_iter	it;
	int			n = 0;

	dlist_foreach(it, h)
		n++;
	return n;
}

/*
 * Give idle servers to waiting clients (FIFO), and open new ones while there
 * are more waiters than logins in progress and the limits allow. Runs only
 * from pool_run_kicks: linking pumps the client, whose close may free a
 * server again, which only queues the pool (no recursion per waiter).
 */
static void
pool_kick_now(Pool *pool)
{
	int			logins;

	if (W->shutting_down)
		return;
	/* clients waiting for the pool's very first server login */
	if (!dlist_is_empty(&pool->waitlogin_clients) && dlist_is_empty(&pool->login_servers) &&
		!pool->welcome)
	{
		if (!pool_open_server(pool) && pool->login_error &&
			pool->last_login_failure && pool->n_servers == 0)
			pool_server_login_failed(pool, pool->login_error, pool->login_error_len);
	}
	if (pool->paused)
		return;
	while (!dlist_is_empty(&pool->waiting_clients) && !dlist_is_empty(&pool->idle_servers))
	{
		Client	   *c = dlist_container(Client, node, dlist_head_node(&pool->waiting_clients));
		Server	   *s = dlist_container(Server, node, dlist_head_node(&pool->idle_servers));

		server_link(s, c);
	}
	/*
	 * More servers for the waiters that logins in progress will not cover.
	 * Only while the pool can grow: with a full pool and a thousand waiters,
	 * counting the lists on every request would cost more than the request.
	 */
	if (!dlist_is_empty(&pool->waiting_clients) &&
		pg_atomic_read_u32(&pgbun_shared->pools[pool->slot].server_count) < (uint32) pool->size)
	{
		int			waiting = count_list(&pool->waiting_clients);

		logins = count_list(&pool->login_servers);
		while (waiting > logins && pool_open_server(pool))
			logins++;
	}
}

void
pool_kick_waiting(Pool *pool)
{
	if (pool->kick_queued || W->shutting_down)
		return;
	pool->kick_queued = true;
	dlist_push_tail(&W->kick_pools, &pool->kick_node);
}

/* Pools kicked per call; the rest wait for the next turn (the loop does not sleep then). */
#define KICKS_PER_TURN 256

bool
pool_run_kicks(void)
{
	for (int i = 0; i < KICKS_PER_TURN && !dlist_is_empty(&W->kick_pools); i++)
	{
		Pool	   *pool = dlist_container(Pool, kick_node, dlist_pop_head_node(&W->kick_pools));

		pool->kick_queued = false;
		pool_kick_now(pool);
	}
	return dlist_is_empty(&W->kick_pools);
}

/*
 * The release policy of transaction and statement mode: a linked server goes
 * back to the pool as soon as it is at rest (server_at_rest: the tracker owes
 * nothing, no COPY or skip, every extended-protocol message synced, the
 * transaction idle, no pooler query running), every byte of its answers is
 * written to the client, and the client is not in the middle of a message
 * still streaming to it. A session link is never released here. Called
 * after every pump of either side. true: released.
 */
bool
pool_release_if_at_rest(Server *s)
{
	Client	   *c = s->link;

	if (s->closed || !c || s->link_mode == POOL_MODE_SESSION)
		return false;
	if (!server_at_rest(s))
		return false;
	if (sbuf_has_pending_forward(&s->sb) || sbuf_has_pending_forward(&c->sb))
		return false;
	server_return_to_pool(s);
	return true;
}

/* A client needs a server for its next message. */
void
pool_request_server(Pool *pool, Client *c)
{
	if (c->state != CL_WAITING)
	{
		c->wait_start = W->now;
		client_set_state(c, CL_WAITING);
	}
	pool_kick_waiting(pool);
}

/* A server finished login or reset: park it, and queue the pool if someone waits. */
void
pool_server_available(Pool *pool, Server *s)
{
	Client	   *c;

	s->last_used = W->now;
	/* clients that were waiting for this pool's first login get their welcome */
	while (!dlist_is_empty(&pool->waitlogin_clients) && pool->welcome)
	{
		c = dlist_container(Client, node, dlist_head_node(&pool->waitlogin_clients));
		client_login_finished(c);
		/* whatever it sent meanwhile is read next turn, after this server is placed */
		if (!c->closed && !c->in_busy)
		{
			c->in_busy = true;
			dlist_push_tail(&W->busy_clients, &c->busy_node);
		}
	}
	/* a waiter gets it at the end of the turn: never link from inside a release or close */
	server_set_state(s, SV_IDLE);
	if (!pool->paused && !dlist_is_empty(&pool->waiting_clients))
		pool_kick_waiting(pool);
	if (pool->paused)
		pool_apply_pause();
}

/*
 * The server refused a login (err is its ErrorResponse, or NULL). Clients
 * still waiting for this pool's first login get that error; logged-in
 * clients waiting for a server fail too when the pool has nothing left.
 */
void
pool_server_login_failed(Pool *pool, const uint8 *err, uint32 len)
{
	bool		throttle = true;

	if (err && len > 0 && (!pool->login_error || pool->login_error != err))
	{
		uint8	   *copy = malloc(len);

		if (copy)
		{
			memcpy(copy, err, len);
			free(pool->login_error);
			pool->login_error = copy;
			pool->login_error_len = len;
		}
	}
	if (err)
	{
		ProtoErrorFields f;

		/* "too many clients": keep clients waiting for servers that come back */
		if (proto_parse_error_fields(err + PROTO_HDR_LEN, len - PROTO_HDR_LEN, &f) &&
			f.sqlstate && strcmp(f.sqlstate, "53300") == 0 && pool->n_servers > 1)
			throttle = false;
	}
	if (throttle)
		pool->last_login_failure = W->now;

	while (!dlist_is_empty(&pool->waitlogin_clients))
	{
		Client	   *c = dlist_container(Client, node, dlist_head_node(&pool->waitlogin_clients));

		if (pool->login_error)
		{
			/* pass the server's own words on */
			if (sbuf_queue(&c->sb, pool->login_error, pool->login_error_len))
				(void) sbuf_flush_out(&c->sb);
			client_close(c, NULL, "server login failed");
		}
		else
			client_close(c, "08006", "could not log in to the server");
	}
	/* pool->n_servers still counts the failing connection (closed by the caller) */
	if (pool->n_servers <= 1 && throttle)
	{
		while (!dlist_is_empty(&pool->waiting_clients))
		{
			Client	   *c = dlist_container(Client, node, dlist_head_node(&pool->waiting_clients));

			client_close(c, "08006", "could not log in to the server");
		}
	}
}

/* ---- pause ---- */

/*
 * Apply the shared pause set to this worker's pools and report to pause()
 * callers whether every paused pool is drained (no server linked to a client).
 */
void
pool_apply_pause(void)
{
	dlist_iter	it;
	bool		drained = true;
	uint64		gen;
	bool		changed;

	SpinLockAcquire(&pgbun_shared->mutex);
	gen = pgbun_shared->pause_generation;
	SpinLockRelease(&pgbun_shared->mutex);
	changed = (gen != pause_seen_generation);
	pause_seen_generation = gen;

	dlist_foreach(it, &W->pools)
	{
		Pool	   *pool = dlist_container(Pool, node, it.cur);
		bool		was = pool->paused;

		pool->paused = pgbun_db_paused(pool->database);
		if (was && !pool->paused)
			pool_kick_waiting(pool);
		if (pool->paused && !dlist_is_empty(&pool->active_servers))
			drained = false;
	}

	SpinLockAcquire(&pgbun_shared->mutex);
	{
		PgbunWorkerSlot *ws = &pgbun_shared->workers[W->id];

		changed |= (ws->pause_drained != drained || ws->pause_applied != gen);
		ws->pause_applied = gen;
		ws->pause_drained = drained;
	}
	SpinLockRelease(&pgbun_shared->mutex);
	if (changed)
		ConditionVariableBroadcast(&pgbun_shared->pause_cv);
}

/* ---- janitor ---- */

static bool
expired(TimestampTz since, int timeout_ms)
{
	return timeout_ms > 0 && since > 0 && W->now - since >= (int64) timeout_ms * 1000;
}

static void
janitor_clients(void)
{
	dlist_mutable_iter it;

	dlist_foreach_modify(it, &W->login_clients)
	{
		Client	   *c = dlist_container(Client, node, it.cur);

		if (client_login_fail_due(c))
			continue;
		if (expired(c->connect_time, pgbun_client_login_timeout))
			client_close(c, "08P01", "client_login_timeout: login not finished in time");
	}
}

static void
janitor_pool(Pool *pool)
{
	dlist_mutable_iter it;

	dlist_foreach_modify(it, &pool->waitlogin_clients)
	{
		Client	   *c = dlist_container(Client, node, it.cur);

		if (expired(c->connect_time, pgbun_client_login_timeout))
			client_close(c, "08P01", "client_login_timeout: server login not finished in time");
	}
	dlist_foreach_modify(it, &pool->waiting_clients)
	{
		Client	   *c = dlist_container(Client, node, it.cur);

		if (expired(c->wait_start, pgbun_query_wait_timeout))
			client_close(c, "57014", "query_wait_timeout: no server connection became free in time");
	}
	if (pgbun_client_idle_timeout > 0)
	{
		dlist_foreach_modify(it, &pool->active_clients)
		{
			Client	   *c = dlist_container(Client, node, it.cur);

			if ((!c->link || !server_busy(c->link)) && expired(c->request_time, pgbun_client_idle_timeout))
				client_close(c, "08P01", "client_idle_timeout: client idle too long");
		}
	}
	dlist_foreach_modify(it, &pool->active_servers)
	{
		Server	   *s = dlist_container(Server, node, it.cur);

		if (s->link && !server_busy(s) && s->tx_status != 'I' &&
			expired(s->last_ready, pgbun_idle_transaction_timeout))
			client_close(s->link, "25P03", "idle_transaction_timeout: idle in transaction too long");
		else if (server_busy(s) && !s->cancel_sent && expired(s->query_start, pgbun_query_timeout))
		{
			ereport(LOG, (errmsg("pgbun: query_timeout: cancelling a query of %s/%s", pool->database, pool->user)));
			server_cancel_query(s);
		}
	}
	/*
	 * pool_server_login_failed closes clients, which may move other servers
	 * off this list: after a timeout, start over instead of trusting the
	 * saved next node.
	 */
restart_logins:
	dlist_foreach_modify(it, &pool->login_servers)
	{
		Server	   *s = dlist_container(Server, node, it.cur);

		if (expired(s->connect_time, pgbun_server_connect_timeout))
		{
			ereport(LOG, (errmsg("pgbun: server_connect_timeout: login to %s took too long", W->server_addr_text)));
			pool->last_login_failure = W->now;
			pool_server_login_failed(pool, NULL, 0);
			server_close(s, "server_connect_timeout");
			goto restart_logins;
		}
	}
	/* a reset (server_reset_query) that never answers must not hold the slot forever */
	dlist_foreach_modify(it, &pool->used_servers)
	{
		Server	   *s = dlist_container(Server, node, it.cur);

		if (expired(s->last_used, pgbun_server_connect_timeout))
		{
			ereport(LOG, (errmsg("pgbun: server_reset_query of %s/%s not answered within server_connect_timeout; closing the connection",
								 pool->database, pool->user)));
			server_close(s, "server_reset_query timed out");
		}
	}
	/* oldest idle servers are at the tail (idle list is LIFO) */
	dlist_foreach_modify(it, &pool->idle_servers)
	{
		Server	   *s = dlist_container(Server, node, it.cur);
		uint32		total = pg_atomic_read_u32(&pgbun_shared->pools[pool->slot].server_count);

		if (expired(s->connect_time, pgbun_server_lifetime))
			server_close(s, "server_lifetime reached");
		else if (expired(s->last_used, pgbun_server_idle_timeout) && total > (uint32) pgbun_min_pool_size)
			server_close(s, "server_idle_timeout reached");
	}
	/* keep min_pool_size warm, once we know how to log in as this role */
	if (pgbun_min_pool_size > 0 && !pool->paused && pool->welcome &&
		(pool->have_scram_keys || pool->md5_verifier || pgbun_auth_type == AUTH_TYPE_TRUST))
	{
		while (pg_atomic_read_u32(&pgbun_shared->pools[pool->slot].server_count) <
			   (uint32) Min(pgbun_min_pool_size, pool->size))
		{
			if (!pool_open_server(pool))
				break;
		}
	}
	/* retry for waiters once server_login_retry has passed */
	if (!dlist_is_empty(&pool->waiting_clients) || !dlist_is_empty(&pool->waitlogin_clients))
		pool_kick_waiting(pool);
}

void
pool_janitor(void)
{
	dlist_iter	it;

	janitor_clients();
	dlist_foreach(it, &W->pools)
		janitor_pool(dlist_container(Pool, node, it.cur));
	cancel_janitor();
	pool_apply_pause();
}
