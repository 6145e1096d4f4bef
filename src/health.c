/*
 * health.c - host role, health and backoff in the shared host slots, and the
 * periodic check of idle server connections (the contract is in health.h).
 *
 * The check: an idle server of a target with a host list that has not been
 * checked for pgbun.server_check_delay runs pgbun.server_check_query (the
 * empty query by default) as one of the pooler's hidden queries, in the
 * SV_TESTED state like a reset, so no client gets it meanwhile. Its answer
 * carries any ParameterStatus the server owes (in_hot_standby after a
 * promotion). For a target with max_replica_lag the check is a query that
 * returns the replay lag instead, and its one DataRow is read here.
 */
#include "postgres.h"

#include "common/pg_prng.h"
#include "utils/timestamp.h"

#include "config.h"
#include "health.h"
#include "params.h"
#include "pooler.h"
#include "proto.h"
#include "settings.h"
#include "target.h"

/*
 * Replay lag in ms on a standby: 0 when everything received is replayed
 * (an idle primary makes the replay timestamp old without any lag), else the
 * age of the last replayed transaction. 0 on a primary. Schema-qualified:
 * nothing on the search_path can stand in for these functions.
 */
static const char lag_sql[] =
"SELECT CASE WHEN NOT pg_catalog.pg_is_in_recovery() THEN 0"
" WHEN pg_catalog.pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_catalog.pg_last_wal_replay_lsn() THEN 0"
" ELSE COALESCE((EXTRACT(epoch FROM pg_catalog.clock_timestamp() - pg_catalog.pg_last_xact_replay_timestamp()) * 1000)::pg_catalog.int8, 0) END";

const char *
health_check_sql(bool want_lag)
{
	if (want_lag)
		return lag_sql;
	return pgbun_cfg->server_check_query ? pgbun_cfg->server_check_query : "";
}

int
health_host_slot(const char *host, int port, const char *addr_text)
{
	int			free_slot = -1;
	int			found = -1;

	SpinLockAcquire(&pgbun_shared->mutex);
	for (int i = 0; i < PGBUN_MAX_HOSTS; i++)
	{
		PgbunHostSlot *hs = &pgbun_shared->hosts[i];

		if (!hs->in_use)
		{
			if (free_slot < 0)
				free_slot = i;
			continue;
		}
		if (hs->port == port && strcmp(hs->host, host) == 0)
		{
			found = i;
			break;
		}
	}
	if (found < 0 && free_slot >= 0)
	{
		PgbunHostSlot *hs = &pgbun_shared->hosts[free_slot];

		memset(hs, 0, sizeof(*hs));
		hs->in_use = true;
		strlcpy(hs->host, host, sizeof(hs->host));
		hs->port = port;
		strlcpy(hs->addr, addr_text, sizeof(hs->addr));
		hs->lag_ms = -1;
		pg_atomic_init_u32(&hs->n_servers, 0);
		found = free_slot;
	}
	SpinLockRelease(&pgbun_shared->mutex);
	if (found < 0)
		ereport(LOG, (errmsg("pgbun: more than %d hosts in pgbun.databases; \"%s\" has no shared health state",
							 PGBUN_MAX_HOSTS, host)));
	return found;
}

bool
health_host_usable(int hslot, bool claim)
{
	PgbunHostSlot *hs = &pgbun_shared->hosts[hslot];
	bool		ok;

	if (hs->state == HOST_UP)
		return true;
	SpinLockAcquire(&pgbun_shared->mutex);
	switch (hs->state)
	{
		case HOST_UP:
			ok = true;
			break;
		case HOST_DOWN:
			ok = W->now >= hs->next_retry;
			if (ok && claim)
			{
				hs->state = HOST_CHECKING;
				hs->checking_since = W->now;
			}
			break;
		default:
			/* a deciding attempt that never came back (its worker died) expires */
			ok = W->now - hs->checking_since > (int64) Max(pgbun_cfg->server_connect_timeout, 1000) * 1000;
			if (ok && claim)
				hs->checking_since = W->now;
			break;
	}
	SpinLockRelease(&pgbun_shared->mutex);
	return ok;
}

void
health_host_failed(int hslot, const char *why)
{
	PgbunHostSlot *hs;
	int64		delay;
	int			failures;

	if (hslot < 0)
		return;
	hs = &pgbun_shared->hosts[hslot];
	SpinLockAcquire(&pgbun_shared->mutex);
	failures = ++hs->failures;
	delay = Max(pgbun_cfg->server_login_retry, 1);
	for (int i = 1; i < failures && delay < pgbun_cfg->server_login_retry_max; i++)
		delay *= 2;
	if (pgbun_cfg->server_login_retry_max > 0)
		delay = Min(delay, Max(pgbun_cfg->server_login_retry_max, pgbun_cfg->server_login_retry));
	/* jitter: 75-100 % of the wait, so hosts and workers do not retry in step */
	delay = delay * 3 / 4 + (int64) pg_prng_uint64_range(&pg_global_prng_state, 0, delay / 4);
	hs->state = HOST_DOWN;
	hs->next_retry = W->now + delay * 1000;
	hs->last_check = W->now;
	strlcpy(hs->last_error, why ? why : "", sizeof(hs->last_error));
	SpinLockRelease(&pgbun_shared->mutex);
	ereport(LOG, (errmsg("pgbun: host %s port %d is down (%s); next try in %.1f s (failure %d)",
						 hs->host, hs->port, why ? why : "?", delay / 1000.0, failures)));
}

void
health_host_role(int hslot, int role, bool read_only)
{
	PgbunHostSlot *hs;
	int			old;

	if (hslot < 0 || role == HOST_ROLE_UNKNOWN)
		return;
	hs = &pgbun_shared->hosts[hslot];
	SpinLockAcquire(&pgbun_shared->mutex);
	old = hs->role;
	hs->role = role;
	hs->read_only = read_only;
	hs->role_time = W->now;
	SpinLockRelease(&pgbun_shared->mutex);
	if (old != HOST_ROLE_UNKNOWN && old != role)
		ereport(LOG, (errmsg("pgbun: host %s port %d is now a %s", hs->host, hs->port,
							 role == HOST_ROLE_PRIMARY ? "primary" : "standby")));
}

void
health_host_login(int hslot, int role, bool read_only)
{
	PgbunHostSlot *hs;
	bool		was_down;

	if (hslot < 0)
		return;
	hs = &pgbun_shared->hosts[hslot];
	SpinLockAcquire(&pgbun_shared->mutex);
	was_down = hs->state != HOST_UP;
	hs->state = HOST_UP;
	hs->failures = 0;
	hs->next_retry = 0;
	hs->last_check = W->now;
	hs->last_error[0] = '\0';
	SpinLockRelease(&pgbun_shared->mutex);
	if (was_down)
		ereport(LOG, (errmsg("pgbun: host %s port %d is up again", hs->host, hs->port)));
	health_host_role(hslot, role, read_only);
}

void
health_host_lag(int hslot, int lag_ms)
{
	PgbunHostSlot *hs;

	if (hslot < 0)
		return;
	hs = &pgbun_shared->hosts[hslot];
	SpinLockAcquire(&pgbun_shared->mutex);
	hs->lag_ms = lag_ms;
	hs->lag_time = W->now;
	hs->last_check = W->now;
	SpinLockRelease(&pgbun_shared->mutex);
}

void
health_server_role(const Server *s, int *role, bool *read_only)
{
	const char *hs = params_get(s->params, s->params_len, "in_hot_standby");
	const char *ro = params_get(s->params, s->params_len, "default_transaction_read_only");

	/* PostgreSQL before 14 does not report in_hot_standby: the role stays unknown */
	*role = !hs ? HOST_ROLE_UNKNOWN : strcmp(hs, "on") == 0 ? HOST_ROLE_STANDBY : HOST_ROLE_PRIMARY;
	*read_only = ro && strcmp(ro, "on") == 0;
}

void
health_server_parameter(Server *s, const uint8 *msg, uint32 size)
{
	const char *name;
	int			role;
	bool		ro;

	if (s->hslot < 0 || size <= PROTO_HDR_LEN)
		return;
	name = (const char *) msg + PROTO_HDR_LEN;
	if (!memchr(name, '\0', size - PROTO_HDR_LEN))
		return;
	if (strcmp(name, "in_hot_standby") != 0 && strcmp(name, "default_transaction_read_only") != 0)
		return;
	/* session_parameter_status has stored the new value in s->params already */
	health_server_role(s, &role, &ro);
	health_host_role(s->hslot, role, ro);
}

void
health_check_row(Server *s, const uint8 *msg, uint32 size)
{
	ProtoReader r;
	int			ncols;
	int32		len;
	const uint8 *val;
	char		text[32];

	if (!s->lag_check || size <= PROTO_HDR_LEN)
		return;
	proto_reader_init(&r, msg + PROTO_HDR_LEN, size - PROTO_HDR_LEN);
	ncols = proto_read_int16(&r);
	if (r.error || ncols != 1)
		return;
	len = (int32) proto_read_int32(&r);
	if (r.error || len <= 0 || len >= (int32) sizeof(text))
		return;
	val = proto_read_bytes(&r, len);
	if (!val)
		return;
	memcpy(text, val, len);
	text[len] = '\0';
	health_host_lag(s->hslot, (int) Min(strtoll(text, NULL, 10), (long long) INT_MAX));
}

/* Run the check on an idle server (it goes back to the pool when answered). */
static void
check_server(Server *s)
{
	bool		want_lag = s->pool->target->entry.max_replica_lag > 0;

	s->last_check = W->now;
	s->lag_check = want_lag;
	server_set_state(s, SV_USED);
	s->hidden_error = false;
	if (!server_queue_query(s, health_check_sql(want_lag)) || sbuf_flush_out(&s->sb) < 0)
	{
		server_close(s, "could not send server_check_query");
		return;
	}
	server_set_state(s, SV_TESTED);
}

void
health_janitor(void)
{
	dlist_iter	it;

	dlist_foreach(it, &W->pools)
	{
		Pool	   *pool = dlist_container(Pool, node, it.cur);
		Target	   *t = pool->target;
		dlist_mutable_iter sit;

		if (!t || !t->health)
			continue;
		dlist_foreach_modify(sit, &pool->idle_servers)
		{
			Server	   *s = dlist_container(Server, node, sit.cur);
			/* a host whose role no longer fits (a promoted standby of a standby target) */
			if (target_role_mismatch(t, s->hslot))
			{
				server_close(s, "its host no longer has the role the database wants");
				continue;
			}
			if (W->now - Max(s->last_check, s->last_used) >= (int64) pgbun_cfg->server_check_delay * 1000)
				check_server(s);
		}
	}
}
