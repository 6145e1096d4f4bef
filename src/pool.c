/*
 * pool.c - pools keyed by (database, user): handing servers to waiting
 * clients, growing within the limits, pause, and the periodic janitor.
 *
 * Limits are shared by all workers: a server is counted in the pool's shared
 * slot (pg_atomic) before it is opened, and per-database / per-user totals
 * are summed over the shared pool slots, so N workers never open more than
 * one worker would. Servers are shared too: a pool whose waiters find no
 * room marks itself starving in shared memory, and other workers give up
 * idle servers they do not need, or busy ones beyond their fair share
 * (pool_share_servers, pool_should_yield).
 */
#include "postgres.h"

#include <limits.h>

#include "port/pg_bitutils.h"
#include "storage/condition_variable.h"
#include "utils/timestamp.h"

#include "cancel.h"
#include "config.h"
#include "control.h"
#include "counters.h"
#include "client_login.h"
#include "dns.h"
#include "notify.h"
#include "params.h"
#include "pooler.h"
#include "prepared.h"
#include "session.h"
#include "server_login.h"
#include "auth_query.h"
#include "health.h"
#include "settings.h"
#include "target.h"

static uint64 pause_seen_generation = 0;

static int	pool_free_empty(int idle_ms);

static bool
expired(TimestampTz since, int timeout_ms)
{
	return timeout_ms > 0 && since > 0 && W->now - since >= (int64) timeout_ms * 1000;
}

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
		{
			pool->empty_since = 0;
			return pool;
		}
	}
	slot = pgbun_pool_slot_acquire(database, user, W->id);
	/* the table is full: this worker's empty pools make room, however young */
	if (slot < 0 && pool_free_empty(0) > 0)
		slot = pgbun_pool_slot_acquire(database, user, W->id);
	if (slot < 0)
		return NULL;
	pool = calloc(1, sizeof(Pool));
	if (!pool)
	{
		pgbun_pool_slot_release(slot, W->id);
		return NULL;
	}
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
	pool->server_lifetime = config_server_lifetime(pool->database);
	pool->target = target_for_database(pool->database);
	{
		dlist_mutable_iter it;

		/* idle servers of a route a reload changed go now; linked ones when released */
		dlist_foreach_modify(it, &pool->idle_servers)
		{
			Server	   *s = dlist_container(Server, node, it.cur);

			if (target_route_changed(pool->target, s->route_id))
				server_close(s, "pgbun.databases changed where this database's servers go");
		}
	}
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
 * true: counted (the caller must open it or give the count back). false:
 * *full tells whether a limit (pool size, max_db/user_connections) said no,
 * as opposed to server_login_retry.
 */
bool
pool_reserve_server(Pool *pool, bool *full)
{
	PgbunPoolSlot *ps = &pgbun_shared->pools[pool->slot];
	uint32		prev;
	int			max_db = config_max_db_connections(pool->database);

	*full = false;
	if (pool->last_login_failure &&
		W->now - pool->last_login_failure < (int64) pgbun_cfg->server_login_retry * 1000)
		return false;
	prev = pg_atomic_fetch_add_u32(&ps->server_count, 1);
	if (prev >= (uint32) pool->size ||
		(max_db > 0 && shared_server_total(pool->database, NULL) > (uint32) max_db) ||
		(pgbun_cfg->max_user_connections > 0 &&
		 shared_server_total(NULL, pool->user) > (uint32) pgbun_cfg->max_user_connections))
	{
		pg_atomic_fetch_sub_u32(&ps->server_count, 1);
		*full = true;
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

/*
 * No host of the pool's target can take a connection now (all down, none
 * with the role wanted): its waiting clients get 08006 at once rather than
 * at query_wait_timeout, unless a login in progress may still bring a
 * server (PgBouncer #93).
 */
static void
pool_target_unavailable(Pool *pool, const char *why)
{
	if (!dlist_is_empty(&pool->login_servers))
		return;
	while (!dlist_is_empty(&pool->waitlogin_clients))
		client_close(dlist_container(Client, node, dlist_head_node(&pool->waitlogin_clients)),
					 "08006", "no server available for database \"%s\": %s", pool->database, why);
	while (!dlist_is_empty(&pool->waiting_clients))
		client_close(dlist_container(Client, node, dlist_head_node(&pool->waiting_clients)),
					 "08006", "no server available for database \"%s\": %s", pool->database, why);
}

/* Open one more server if the limits allow; *full as in pool_reserve_server. */
static bool
pool_open_server(Pool *pool, bool *full)
{
	Target	   *t = pool->target;
	int			host = 0;

	*full = false;
	if (t->is_default && W->server_addr_len == 0)
	{
		/* server_host is a name not resolved yet: wait for it, as for a server */
		dns_server_needed();
		return false;
	}
	if (W->shutting_down || !pool_reserve_server(pool, full))
		return false;
	if (t->health)
	{
		const char *why;

		host = target_pick_host(t, &why);
		if (host < 0)
		{
			pg_atomic_fetch_sub_u32(&pgbun_shared->pools[pool->slot].server_count, 1);
			if (why)
				pool_target_unavailable(pool, why);
			return false;
		}
	}
	if (!server_launch(pool, host))
	{
		/* server_launch closes through server_close, which gives the count back */
		return false;
	}
	return true;
}

/*
 * The idle server a waiter gets: the most recently used whose host the
 * target takes now (role, lag); servers on a host left out stay idle, and
 * their checks tell when it is back. NULL: none.
 */
static Server *
pool_idle_server(Pool *pool)
{
	dlist_mutable_iter it;

	dlist_foreach_modify(it, &pool->idle_servers)
	{
		Server	   *s = dlist_container(Server, node, it.cur);

		if (target_route_changed(pool->target, s->route_id))
		{
			/* a reload sent the database elsewhere (or as another user) */
			server_close(s, "pgbun.databases changed where this database's servers go");
			continue;
		}
		if (!pool->target->health || target_accepts(pool->target, s->hslot))
			return s;
	}
	return NULL;
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
 * Publish whether this pool's waiters are stuck for want of room under the
 * limits; when it becomes so, wake the other workers so that one holding
 * the pool's servers idle gives one up (pool_share_servers). Set from
 * pool_kick_now; cleared there only when it opened a server and needs no
 * more (room came back: typically a server given up for it), otherwise by
 * the janitor (every JANITOR_INTERVAL_MS). Under load the waiting list
 * empties and fills all the time, and flipping a shared bit and waking
 * every worker with it on each request would cost more than the requests;
 * opening a server is rare and costly anyway. The janitor clears it and
 * kicks the pool, so a pool that still starves marks itself again and
 * wakes the others once per tick.
 */
static void
pool_set_starving(Pool *pool, bool starving)
{
	if (pool->starving == starving)
		return;
	pool->starving = starving;
	pgbun_pool_set_starving(pool->slot, W->id, starving);
	if (starving)
		pgbun_wake_workers(~(UINT64CONST(1) << W->id));
}

/*
 * This worker's fair share of a pool's servers while other workers' clients
 * starve for it: the pool size divided among the workers that want servers
 * (rounded up); INT_MAX while nobody else starves. One atomic read.
 */
static int
pool_fair_share(Pool *pool, uint64 *others)
{
	PgbunPoolSlot *ps = &pgbun_shared->pools[pool->slot];
	int			k;

	*others = pg_atomic_read_u64(&ps->starving) & ~(UINT64CONST(1) << W->id);
	if (*others == 0)
		return INT_MAX;
	k = pg_popcount64(*others);
	return (pool->size + k) / (k + 1);
}

/*
 * Should this worker give up a server of the pool although its own clients
 * wait for it? Yes when other workers' clients starve for the pool (it is
 * full) and this worker holds more than its fair share; else a busy worker
 * holding the whole pool would keep it forever. A worker at or below its
 * share keeps its servers (and one over it opens none, pool_kick_now), so
 * the split settles instead of servers going back and forth.
 */
static bool
pool_should_yield(Pool *pool, uint64 *others)
{
	int			share = pool_fair_share(pool, others);

	return share != INT_MAX && pool->n_servers > share &&
		pg_atomic_read_u32(&pgbun_shared->pools[pool->slot].server_count) >= (uint32) pool->size;
}

/* Clients that were waiting for the pool's first login get their welcome (once there is one). */
static void
welcome_waiting_logins(Pool *pool)
{
	while (!dlist_is_empty(&pool->waitlogin_clients) && pool->welcome)
	{
		Client	   *c = dlist_container(Client, node, dlist_head_node(&pool->waitlogin_clients));

		client_login_finished(c);
		/* whatever it sent meanwhile is read next turn, after any server is placed */
		if (!c->closed && !c->in_busy)
		{
			c->in_busy = true;
			dlist_push_tail(&W->busy_clients, &c->busy_node);
		}
	}
}

/*
 * Give idle servers to waiting clients (FIFO), and open new ones while there
 * are more waiters than logins in progress and the limits allow. Runs only
 * from pool_run_kicks: linking pumps the client, whose close may free a
 * server again, which only queues the pool (no recursion per waiter).
 * Waiters that a limit leaves without a server mark the pool starving.
 */
static void
pool_kick_now(Pool *pool)
{
	int			logins;
	bool		full = false;
	bool		starving = false;
	bool		opened = false;

	if (W->shutting_down)
		return;
	/*
	 * Clients waiting for the pool's very first server login: another
	 * worker's may have come meanwhile (the janitor kicks a starving pool),
	 * else this worker opens one.
	 */
	if (!dlist_is_empty(&pool->waitlogin_clients) && session_pool_welcome(pool))
		welcome_waiting_logins(pool);
	else if (!dlist_is_empty(&pool->waitlogin_clients) && dlist_is_empty(&pool->login_servers))
	{
		if (pool_open_server(pool, &full))
			opened = true;
		else if (full)
			starving = true;
		else if (pool->login_error && pool->last_login_failure && pool->n_servers == 0)
			pool_server_login_failed(pool, pool->login_error, pool->login_error_len);
	}
	if (!pool->paused)
	{
		Server	   *s;

		while (!dlist_is_empty(&pool->waiting_clients) && (s = pool_idle_server(pool)) != NULL)
		{
			Client	   *c = dlist_container(Client, node, dlist_head_node(&pool->waiting_clients));
			uint64		others;

			if (pool_should_yield(pool, &others))
			{
				ereport(DEBUG1, (errmsg("pgbun: worker %d gives a server of %s/%s to another worker (over its share)",
										W->id, pool->database, pool->user)));
				server_close(s, "given up for clients waiting on another worker");
				pgbun_wake_workers(others);
				continue;
			}
			server_link(s, c);
		}

		/*
		 * More servers for the waiters that logins in progress will not
		 * cover. Only while the pool can grow: with a full pool and a
		 * thousand waiters, counting the lists on every request would cost
		 * more than the request.
		 */
		if (!dlist_is_empty(&pool->waiting_clients))
		{
			if (pg_atomic_read_u32(&pgbun_shared->pools[pool->slot].server_count) < (uint32) pool->size)
			{
				int			waiting = count_list(&pool->waiting_clients);
				uint64		others;
				int			share = pool_fair_share(pool, &others);

				/* at its share, room is left to the other starving workers */
				logins = count_list(&pool->login_servers);
				while (waiting > logins && pool->n_servers < share && pool_open_server(pool, &full))
				{
					logins++;
					opened = true;
				}
				if (waiting > logins && (full || pool->n_servers >= share))
					starving = true;
			}
			else if (dlist_is_empty(&pool->login_servers))
				starving = true;
		}
	}
	if (starving)
		pool_set_starving(pool, true);
	else if (opened)
		pool_set_starving(pool, false);
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
	if (session_before_release(s))
		return false;			/* its values are restored first; the hidden answer asks again */
	server_return_to_pool(s);
	return true;
}

/*
 * A client needs a server for its next message and nobody is ahead of it:
 * link an idle one now, without the trip through the waiting list and the
 * end-of-turn kick (two state changes and a second pump). Only when
 * pool_kick_now would give it this same server: not paused, no waiters, the
 * server acceptable, the worker within its share. true: linked; the caller
 * pumps again, which sends the queued SETs with the client's message.
 */
bool
pool_link_idle_now(Pool *pool, Client *c)
{
	Server	   *s;
	uint64		others;

	if (pool->paused || W->shutting_down || !dlist_is_empty(&pool->waiting_clients))
		return false;
	s = pool_idle_server(pool);
	if (!s || pool_should_yield(pool, &others))
		return false;
	if (!server_attach(s, c))
		return false;
	counters_observe(pool->slot, HIST_WAIT, 0);
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

/*
 * Servers held back while CancelRequests for them were in flight whose last
 * one is done: released ones go back to the pool (pool_server_available),
 * or run their reset first; pgbun's own queries waiting in a server's
 * output (server_queue_query) go out.
 */
static void
release_canceled_servers(void)
{
	dlist_iter	pit;

	dlist_foreach(pit, &W->pools)
	{
		Pool	   *pool = dlist_container(Pool, node, pit.cur);
		dlist_iter	it;

		/* from the top after each: what it sets off may close or move others */
restart:
		dlist_foreach(it, &pool->used_servers)
		{
			Server	   *s = dlist_container(Server, node, it.cur);

			if ((s->state != SV_BEING_CANCELED && !s->sb.out_held) ||
				cancel_hold_state(s->slot) == CANCEL_HOLD_PENDING)
				continue;
			if (s->state == SV_BEING_CANCELED && !s->reset_due)
				pool_server_available(pool, s);
			else
				server_cancels_done(s);
			goto restart;
		}
		dlist_foreach(it, &pool->active_servers)
		{
			Server	   *s = dlist_container(Server, node, it.cur);

			if (s->sb.out_held && cancel_hold_state(s->slot) != CANCEL_HOLD_PENDING)
			{
				server_cancels_done(s);
				goto restart;
			}
		}
	}
}

/*
 * When another worker, or this one, said a last cancel is done (cancel.c).
 * The janitor looks as well, in case the word went to a former owner.
 */
void
pool_release_canceled(void)
{
	if (pg_atomic_exchange_u32(&pgbun_shared->workers[W->id].cancels_done, 0) != 0)
		release_canceled_servers();
}

/* A server finished login or reset: park it, and queue the pool if someone waits. */
void
pool_server_available(Pool *pool, Server *s)
{
	s->last_used = W->now;
	welcome_waiting_logins(pool);
	/* RECONNECT since it connected: closed instead of reused (server_close kicks the waiters) */
	if (control_server_outdated(s))
	{
		server_close(s, "RECONNECT on the admin console");
		return;
	}
	/* a waiter gets it at the end of the turn: never link from inside a release or close */
	server_set_state(s, SV_IDLE);
	/* published unlinked: a CancelRequest still on its way must not reach the next client's query */
	if (s->slot >= 0 && cancel_hold_state(s->slot) == CANCEL_HOLD_PENDING)
	{
		server_set_state(s, SV_BEING_CANCELED);
		return;
	}
	if (server_close_if_cancel_may_land(s))
		return;
	if (!pool->paused && !dlist_is_empty(&pool->waiting_clients))
		pool_kick_waiting(pool);
	if (pool->paused)
		pool_apply_pause();
}

/*
 * A malloc'd copy of the login error (a whole ErrorResponse message, len
 * bytes) to hand to waiting clients, or NULL when out of memory. The server's
 * own message is kept as it came when it is well-formed and has a proper
 * SQLSTATE and a message; anything else (an empty or unterminated body, no
 * 'C' or 'M' field: PgBouncer's CVE-2026-6666 was a NULL SQLSTATE) becomes
 * pgbun's own FATAL error with the server's SQLSTATE if it had a valid one,
 * else XX000, so clients never get an error they cannot use.
 */
static uint8 *
login_error_for_clients(const uint8 *err, uint32 len, uint32 *out_len)
{
	ProtoErrorFields f;
	bool		parsed = len >= PROTO_HDR_LEN &&
		proto_parse_error_fields(err + PROTO_HDR_LEN, len - PROTO_HDR_LEN, &f);
	char		text[300];
	uint8	   *copy;
	ProtoBuf	pb;

	if (parsed && proto_valid_sqlstate(f.sqlstate) && f.message)
	{
		copy = malloc(len);
		if (copy)
		{
			memcpy(copy, err, len);
			*out_len = len;
		}
		return copy;
	}
	if (!parsed)
		memset(&f, 0, sizeof(f));
	snprintf(text, sizeof(text), "pgbun: server login failed: %.200s",
			 !parsed ? "the server sent a malformed error message" :
			 f.message ? f.message : "the server sent an error without a message");
	copy = malloc(sizeof(text) + 64);
	if (!copy)
		return NULL;
	proto_buf_init(&pb, copy, sizeof(text) + 64);
	if (!proto_put_error(&pb, true, proto_valid_sqlstate(f.sqlstate) ? f.sqlstate : "XX000",
						 text, NULL, NULL))
	{
		free(copy);
		return NULL;
	}
	*out_len = (uint32) pb.len;
	return copy;
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

	counters_note_server_login(pool->slot, false, W->now);
	if (err && len > 0 && (!pool->login_error || pool->login_error != err))
	{
		uint32		copy_len = 0;
		uint8	   *copy = login_error_for_clients(err, len, &copy_len);

		if (copy)
		{
			free(pool->login_error);
			pool->login_error = copy;
			pool->login_error_len = copy_len;
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

/* ---- the server's address (dns.c) ---- */

/* The server host's address is known (again): waiters may get servers now. */
void
pool_target_resolved(void)
{
	dlist_iter	it;

	dlist_foreach(it, &W->pools)
	{
		Pool	   *pool = dlist_container(Pool, node, it.cur);

		if (!dlist_is_empty(&pool->waiting_clients) || !dlist_is_empty(&pool->waitlogin_clients))
			pool_kick_waiting(pool);
	}
}

/*
 * The server host could not be resolved and there is no address to use:
 * every client waiting for a server gets 08006 and is closed (new clients
 * start a new lookup).
 */
void
pool_target_unresolvable(const char *host, const char *reason)
{
	dlist_iter	it;

	dlist_foreach(it, &W->pools)
	{
		Pool	   *pool = dlist_container(Pool, node, it.cur);

		while (!dlist_is_empty(&pool->waitlogin_clients))
			client_close(dlist_container(Client, node, dlist_head_node(&pool->waitlogin_clients)),
						 "08006", "could not resolve server host \"%s\": %s", host, reason);
		while (!dlist_is_empty(&pool->waiting_clients))
			client_close(dlist_container(Client, node, dlist_head_node(&pool->waiting_clients)),
						 "08006", "could not resolve server host \"%s\": %s", host, reason);
	}
}

/* ---- sharing servers across workers ---- */

/* A server must have been idle this long before it is given away. */
#define SHARE_IDLE_MIN_MS 100
/* Starving pool slots looked at per call (the rest: next call). */
#define SHARE_MAX_STARVING 16

typedef struct StarvingPool
{
	int			slot;
	uint64		workers;		/* starving bits */
	uint32		count;			/* its server count */
	uint32		size;			/* its pool size */
	uint32		db_total;		/* servers of its database, all pools */
	uint32		user_total;		/* servers of its user, all pools */
} StarvingPool;

/* Would the limits let this starving pool open a server right now? */
static bool
starving_has_room(const StarvingPool *sp)
{
	return sp->count < sp->size &&
		(pgbun_cfg->max_db_connections <= 0 || sp->db_total < (uint32) pgbun_cfg->max_db_connections) &&
		(pgbun_cfg->max_user_connections <= 0 || sp->user_total < (uint32) pgbun_cfg->max_user_connections);
}

/*
 * Closing one of this pool's servers: the starving pool's view afterwards
 * (what the closed server counted against: its pool, its database, its user).
 */
static void
starving_after_close(StarvingPool *sp, Pool *donor)
{
	PgbunPoolSlot *ps = &pgbun_shared->pools[sp->slot];

	if (donor->slot == sp->slot)
		sp->count--;
	if (strcmp(ps->database, donor->database) == 0)
		sp->db_total--;
	if (strcmp(ps->user, donor->user) == 0)
		sp->user_total--;
}

/*
 * Clients of some pool wait on some worker and the limits leave no room to
 * open a server for them, while servers sit idle here (PgBouncer has one
 * process, so this never arises there): give such servers up. A pool gives
 * only what it does not need - it has no waiters of its own, the server has
 * been idle for SHARE_IDLE_MIN_MS - and only while the starving pool is
 * blocked by a limit this server counts against (its own pool's size, or
 * max_db_connections / max_user_connections shared with another pool). One
 * server per starving pool per call: once it has room again it takes it,
 * and if it still starves it says so again. The starving workers' latches
 * are set so they open their server at once. Also: our own starving pools
 * that have room again are kicked.
 *
 * Called when the latch is set and from the janitor; a shared counter makes
 * it one atomic read when no pool starves anywhere.
 */
void
pool_share_servers(void)
{
	StarvingPool starving[SHARE_MAX_STARVING];
	int			n = 0;
	uint64		wake = 0;
	dlist_iter	it;

	if (pg_atomic_read_u32(&pgbun_shared->n_starving) == 0 || W->shutting_down)
		return;

	/* ours first: room may have come back (another worker gave a server up) */
	dlist_foreach(it, &W->pools)
	{
		Pool	   *pool = dlist_container(Pool, node, it.cur);

		if (pool->starving)
			pool_kick_waiting(pool);
	}

	for (int i = 0; i < PGBUN_MAX_POOLS && n < SHARE_MAX_STARVING; i++)
	{
		PgbunPoolSlot *ps = &pgbun_shared->pools[i];
		StarvingPool *sp = &starving[n];

		if (!ps->in_use)
			continue;
		sp->workers = pg_atomic_read_u64(&ps->starving);
		if (sp->workers == 0)
			continue;
		sp->slot = i;
		sp->count = pg_atomic_read_u32(&ps->server_count);
		sp->size = (uint32) config_pool_size(ps->database);
		sp->db_total = pgbun_cfg->max_db_connections > 0 ? shared_server_total(ps->database, NULL) : 0;
		sp->user_total = pgbun_cfg->max_user_connections > 0 ? shared_server_total(NULL, ps->user) : 0;
		if (!starving_has_room(sp))
			n++;				/* blocked: a candidate for a server of ours */
	}
	if (n == 0)
		return;

	dlist_foreach(it, &W->pools)
	{
		Pool	   *pool = dlist_container(Pool, node, it.cur);
		Server	   *s;

		if (pool->starving || dlist_is_empty(&pool->idle_servers) ||
			!dlist_is_empty(&pool->waiting_clients) || !dlist_is_empty(&pool->waitlogin_clients))
			continue;
		/* the idle list is LIFO: the tail has been idle longest */
		s = dlist_container(Server, node, dlist_tail_node(&pool->idle_servers));
		if (W->now - s->last_used < (int64) SHARE_IDLE_MIN_MS * 1000)
			continue;
		for (int i = 0; i < n; i++)
		{
			StarvingPool after = starving[i];

			if (starving[i].workers == 0 || starving_has_room(&starving[i]))
				continue;		/* served by an earlier donation this call */
			starving_after_close(&after, pool);
			if (!starving_has_room(&after))
				continue;		/* this server does not count against what blocks it */
			ereport(DEBUG1, (errmsg("pgbun: worker %d gives an idle server of %s/%s to waiting clients of %s/%s",
									W->id, pool->database, pool->user,
									pgbun_shared->pools[starving[i].slot].database,
									pgbun_shared->pools[starving[i].slot].user)));
			server_close(s, "given up for clients waiting on another worker");
			/* every starving pool this server counted against sees the room */
			for (int j = 0; j < n; j++)
				starving_after_close(&starving[j], pool);
			wake |= starving[i].workers;
			break;
		}
	}
	if (wake & (UINT64CONST(1) << W->id))
	{
		/* one of our own pools waits on a limit this worker's other pool held */
		dlist_foreach(it, &W->pools)
		{
			Pool	   *pool = dlist_container(Pool, node, it.cur);

			if (pool->starving)
				pool_kick_waiting(pool);
		}
	}
	pgbun_wake_workers(wake & ~(UINT64CONST(1) << W->id));
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


static void
janitor_clients(void)
{
	dlist_mutable_iter it;

	dlist_foreach_modify(it, &W->login_clients)
	{
		Client	   *c = dlist_container(Client, node, it.cur);

		if (client_login_fail_due(c))
			continue;
		if (c->refuse && expired(c->connect_time, client_login_deadline_ms(c)))
			client_login_refuse(c); /* no first packet in time: the refusal all the same */
		else if (expired(c->connect_time, client_login_deadline_ms(c)))
			client_close(c, "08P01", "client_login_timeout: login not finished in time");
	}
}

/*
 * A client waiting for a server (for a query, or for its pool's first login)
 * past query_wait_timeout is closed. Returns whether it was.
 */
static bool
close_if_waited_too_long(Client *c)
{
	if (!expired(c->wait_start, pgbun_cfg->query_wait_timeout))
		return false;
	client_close(c, "57014", "query_wait_timeout: no server connection became free in time");
	return true;
}

static void
janitor_pool(Pool *pool)
{
	dlist_mutable_iter it;

	dlist_foreach_modify(it, &pool->waitlogin_clients)
	{
		Client	   *c = dlist_container(Client, node, it.cur);

		if (expired(c->connect_time, pgbun_cfg->client_login_timeout))
			client_close(c, "08P01", "client_login_timeout: server login not finished in time");
		else
			(void) close_if_waited_too_long(c);
	}
	/*
	 * Clients join the waiting list at its tail as they start to wait, and
	 * W->now never steps back (clock.h), so the first one that has not
	 * waited too long ends the walk: a tick costs the timeouts it finds,
	 * not the length of the queue.
	 */
	dlist_foreach_modify(it, &pool->waiting_clients)
	{
		if (!close_if_waited_too_long(dlist_container(Client, node, it.cur)))
			break;
	}
	if (pgbun_cfg->client_idle_timeout > 0)
	{
		dlist_foreach_modify(it, &pool->active_clients)
		{
			Client	   *c = dlist_container(Client, node, it.cur);

			if ((!c->link || !server_busy(c->link)) && expired(c->request_time, pgbun_cfg->client_idle_timeout))
				client_close(c, "08P01", "client_idle_timeout: client idle too long");
		}
	}
	dlist_foreach_modify(it, &pool->active_servers)
	{
		Server	   *s = dlist_container(Server, node, it.cur);

		if (s->link && !server_busy(s) && s->tx_status != 'I' &&
			expired(s->last_ready, pgbun_cfg->idle_transaction_timeout))
			client_close(s->link, "25P03", "idle_transaction_timeout: idle in transaction too long");
		/* not while pgbun's own SETs run first: the cancel would stop them, not the query */
		else if (server_busy(s) && !s->cancel_sent && s->hidden_rfq == 0 &&
				 expired(s->query_start, pgbun_cfg->query_timeout))
		{
			/* the line once it went: a full listen queue tries again at the next tick */
			if (server_cancel_query(s))
				ereport(LOG, (errmsg("pgbun: query_timeout: cancelling a query of %s/%s", pool->database, pool->user)));
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

		if (expired(s->connect_time, pgbun_cfg->server_connect_timeout))
		{
			ereport(LOG, (errmsg("pgbun: server_connect_timeout: login to %s took too long", s->addr_text)));
			server_login_host_failed(s, "server_connect_timeout");
			goto restart_logins;
		}
	}
	/*
	 * A reset (server_reset_query) or check that never answers must not hold
	 * the slot forever; a check of a long idle server starts at last_check.
	 */
	dlist_foreach_modify(it, &pool->used_servers)
	{
		Server	   *s = dlist_container(Server, node, it.cur);

		if (s->state == SV_BEING_CANCELED)
		{
			/* a cancel connection ends within its own timeout; this is the backstop */
			if (expired(s->last_used, 2 * CANCEL_TIMEOUT_MS))
			{
				ereport(LOG, (errmsg("pgbun: closing a server connection of %s/%s: a cancel request sent for it did not complete",
									 pool->database, pool->user)));
				server_close(s, "a cancel request sent for it did not complete");
			}
		}
		else if (expired(Max(s->last_used, s->last_check), pgbun_cfg->server_connect_timeout))
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

		if (expired(s->connect_time, pool->server_lifetime))
			server_close(s, "server_lifetime reached");
		else if (expired(s->last_used, pgbun_cfg->server_idle_timeout) && total > (uint32) pgbun_cfg->min_pool_size)
			server_close(s, "server_idle_timeout reached");
	}
	/* keep min_pool_size warm, once we know how to log in as this role */
	if (pgbun_cfg->min_pool_size > 0 && !pool->paused && pool->welcome && !W->draining &&
		(pool->have_scram_keys || pool->md5_verifier || pgbun_cfg->auth_type == AUTH_TYPE_TRUST))
	{
		while (pg_atomic_read_u32(&pgbun_shared->pools[pool->slot].server_count) <
			   (uint32) Min(pgbun_cfg->min_pool_size, pool->size))
		{
			bool		full;

			if (!pool_open_server(pool, &full))
				break;
		}
	}
	/* the kick below marks it again if its waiters still find no room */
	pool_set_starving(pool, false);
	/* retry for waiters once server_login_retry has passed */
	if (!dlist_is_empty(&pool->waiting_clients) || !dlist_is_empty(&pool->waitlogin_clients))
		pool_kick_waiting(pool);
}

/* No client and no server connection of this worker uses the pool. */
static bool
pool_is_empty(Pool *pool)
{
	return pool->n_servers == 0 && !pool->kick_queued &&
		dlist_is_empty(&pool->active_clients) && dlist_is_empty(&pool->waiting_clients) &&
		dlist_is_empty(&pool->waitlogin_clients) && dlist_is_empty(&pool->login_servers) &&
		dlist_is_empty(&pool->idle_servers) && dlist_is_empty(&pool->active_servers) &&
		dlist_is_empty(&pool->used_servers);
}

/*
 * Free an empty pool: its memory, its statements' notes about it, and this
 * worker's use of its shared slot (the last worker frees the slot).
 */
static void
pool_free(Pool *pool)
{
	ereport(LOG, (errmsg("pgbun: worker %d: pool %s/%s freed (no clients, no servers)",
						 W->id, pool->database, pool->user)));
	dlist_delete(&pool->node);
	notify_pool_free(pool);
	prepared_pool_forget(pool);
	pool_set_starving(pool, false);	/* its bit must not outlive it in a reused slot */
	pgbun_pool_slot_release(pool->slot, W->id);
	params_snapshot_release(pool->welcome);
	free(pool->md5_verifier);
	if (pool->password)
	{
		explicit_bzero(pool->password, strlen(pool->password));
		free(pool->password);
	}
	free(pool->pw_keys);
	free(pool->login_error);
	free(pool);
}

/* Free the pools empty for at least idle_ms (0: every empty one). Returns how many. */
static int
pool_free_empty(int idle_ms)
{
	dlist_mutable_iter it;
	int			n = 0;

	dlist_foreach_modify(it, &W->pools)
	{
		Pool	   *pool = dlist_container(Pool, node, it.cur);

		if (!pool_is_empty(pool))
			pool->empty_since = 0;
		else if (pool->empty_since == 0 && idle_ms > 0)
			pool->empty_since = W->now;
		else if (idle_ms == 0 || expired(pool->empty_since, idle_ms))
		{
			pool_free(pool);
			n++;
		}
	}
	return n;
}

void
pool_janitor(void)
{
	dlist_iter	it;

	janitor_clients();
	dlist_foreach(it, &W->pools)
		janitor_pool(dlist_container(Pool, node, it.cur));
	if (pgbun_cfg->pool_idle_timeout > 0)
		(void) pool_free_empty(pgbun_cfg->pool_idle_timeout);
	notify_janitor();
	auth_query_janitor();
	cancel_janitor();
	release_canceled_servers();
	dns_janitor();
	health_janitor();
	pool_apply_pause();
	pool_share_servers();
}
