/*
 * stats_read.c - copies of the shared segment's pool and connection state for
 * the SQL views and the admin console (stats_read.h): both faces of one
 * number come from one reader here.
 */
#include "postgres.h"

#include "cancel.h"
#include "config.h"
#include "config_parse.h"
#include "control.h"
#include "counters.h"
#include "settings.h"
#include "stats_read.h"

/*
 * The names of a pool slot, or NULL if the slot is not in use. Read without
 * the mutex: a slot is released only when no worker uses it
 * (pool_idle_timeout), so a reader racing with a release and reuse can at
 * worst mislabel that one row once.
 */
const PgbunPoolSlot *
stats_pool_in_use(int idx)
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

/* One pass over the connection slots, each copied with the changecount protocol. */
void
stats_count_gauges(PoolGauges *gauges)
{
	memset(gauges, 0, sizeof(PoolGauges) * PGBUN_MAX_POOLS);
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
			if (c.state == CL_ACTIVE)
				g->cl_active++;
			else if (stats_client_waits(c.state))
				g->cl_waiting++;
			else if (c.state == CL_ACTIVE_CANCEL)
				g->cl_active_cancel_req++;
			else if (c.state == CL_WAITING_CANCEL)
				g->cl_waiting_cancel_req++;
			/* CL_LOGIN: not logged in yet, not counted */
			if (stats_client_waits(c.state) && c.wait_start != 0 &&
				(g->oldest_wait == 0 || c.wait_start < g->oldest_wait))
				g->oldest_wait = c.wait_start;
		}
		else if (c.kind == CONN_SERVER)
		{
			g->sv_active_cancel += cancel_holds_count(i, c.id);
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
				case SV_BEING_CANCELED:
					g->sv_being_canceled++;
					break;
				case SV_LOGIN:
					g->sv_login++;
					break;
				default:
					break;
			}
		}
	}
}

int
stats_sum_by_database(DbStats *dbs)
{
	int			ndbs = 0;

	for (int p = 0; p < PGBUN_MAX_POOLS; p++)
	{
		const PgbunPoolSlot *pool = stats_pool_in_use(p);
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
			memset(d, 0, sizeof(DbStats));
			strlcpy(d->database, pool->database, NAMEDATALEN);
		}
		counters_sum_stats(p, &d->sum);
	}
	return ndbs;
}

uint64
stats_seconds(TimestampTz now)
{
	if (now > pgbun_shared->stats_start)
		return Max((uint64) ((now - pgbun_shared->stats_start) / USECS_PER_SEC), (uint64) 1);
	return 1;
}

void
stats_split_wait(TimestampTz now, TimestampTz since, int32 *secs, int32 *usecs)
{
	int64		wait = 0;

	if (since != 0 && now > since)
		wait = now - since;
	*secs = (int32) Min(wait / USECS_PER_SEC, (int64) PG_INT32_MAX);
	*usecs = (int32) (wait % USECS_PER_SEC);
}

const char *
stats_conn_state_name(int kind, int state)
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
			case CL_WAITING_CANCEL:
				return "waiting_cancel_req";
			case CL_ACTIVE_CANCEL:
				return "active_cancel_req";
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
			case SV_BEING_CANCELED:
				return "being_canceled";
		}
	}
	return "unknown";
}

bool
stats_read_conn(int idx, PgbunConnSlot *c, uint64 *link_id)
{
	pgbun_conn_slot_read(idx, c);
	*link_id = 0;
	if (c->kind == CONN_FREE)
		return false;
	/* the copy's text fields come from shared memory: make sure they end */
	c->addr[PGBUN_ADDR_LEN - 1] = '\0';
	c->local_addr[PGBUN_ADDR_LEN - 1] = '\0';
	c->application_name[NAMEDATALEN - 1] = '\0';
	c->tls[sizeof(c->tls) - 1] = '\0';
	if (c->peer >= 0 && c->peer < pgbun_shared->n_conn_slots)
	{
		PgbunConnSlot peer;

		pgbun_conn_slot_read(c->peer, &peer);
		/* the peer may have gone (and its slot been reused) while we looked */
		if (peer.kind != CONN_FREE && peer.kind != c->kind)
			*link_id = peer.id;
	}
	return true;
}

int
stats_pool_names(bool users, const char **names, int max)
{
	int			n = 0;

	for (int p = 0; p < PGBUN_MAX_POOLS && n < max; p++)
	{
		const PgbunPoolSlot *pool = stats_pool_in_use(p);
		const char *name;
		bool		seen = false;

		if (!pool)
			continue;
		name = users ? pool->user : pool->database;
		for (int i = 0; i < n && !seen; i++)
			seen = strcmp(names[i], name) == 0;
		if (!seen)
			names[n++] = name;
	}
	return n;
}

void
stats_count_conns(bool users, const char *name, int *clients, int *servers)
{
	*clients = *servers = 0;
	for (int i = 0; i < pgbun_shared->n_conn_slots; i++)
	{
		PgbunConnSlot c;
		uint64		link;
		const PgbunPoolSlot *pool;

		if (!stats_read_conn(i, &c, &link) || !(pool = stats_pool_in_use(c.pool)))
			continue;
		if (strcmp(users ? pool->user : pool->database, name) != 0)
			continue;
		if (c.kind == CONN_CLIENT)
			(*clients)++;
		else
			(*servers)++;
	}
}

/*
 * The settings that apply to a database: its pgbun.databases entry (or "*"),
 * else the pgbun.* settings. The strings point into the snapshot in force.
 */
static void
database_settings(DatabaseRow *r)
{
	const DbEntry *e = config_database_entry(r->name);
	bool		routed = e && e->routed;

	r->host = (pgbun_cfg->server_host && pgbun_cfg->server_host[0]) ? pgbun_cfg->server_host : NULL;
	r->port = pgbun_cfg->server_port;
	if (routed && e->host[0])
	{
		r->host = e->host;
		r->load_balance_hosts = lb_name(e->lb);
	}
	if (routed && e->ports[0] > 0)
		r->port = e->ports[0];
	r->database = routed && e->dbname[0] ? e->dbname : r->name;
	r->force_user = routed && e->user[0] ? e->user : NULL;
	r->pool_mode = e && e->pool_mode >= 0 ? pool_mode_name(e->pool_mode) : NULL;
	r->pool_size = config_pool_size(r->name);
	r->min_pool_size = pgbun_cfg->min_pool_size;
	r->server_lifetime = config_server_lifetime(r->name) / 1000;
	r->max_connections = config_max_db_connections(r->name);
}

/*
 * The console's SHOW DATABASES and the view pgbun.databases both come from
 * here, so they cannot disagree. Settings are the GUC values of the calling
 * process: a worker and a backend see the same ones once both have reloaded.
 */
int
stats_read_databases(DatabaseRow *rows)
{
	const char *names[PGBUN_MAX_POOLS];
	int			n = stats_pool_names(false, names, PGBUN_MAX_POOLS);

	for (int i = 0; i < n; i++)
	{
		DatabaseRow *r = &rows[i];

		memset(r, 0, sizeof(*r));
		strlcpy(r->name, names[i], NAMEDATALEN);
		database_settings(r);
		stats_count_conns(false, r->name, &r->current_client_connections, &r->current_connections);
		r->paused = pgbun_db_paused(r->name);
		r->disabled = control_db_disabled(r->name);
	}
	/* a disabled database with no pool (nobody connected since) is listed all the same */
	{
		char		disabled[PGBUN_MAX_DB_CONTROLS][NAMEDATALEN];
		int			nd = control_disabled_names(disabled, PGBUN_MAX_DB_CONTROLS);
		int			in_use = n;

		for (int d = 0; d < nd; d++)
		{
			bool		listed = false;
			DatabaseRow *r;

			for (int i = 0; i < in_use && !listed; i++)
				listed = strcmp(rows[i].name, disabled[d]) == 0;
			if (listed)
				continue;
			r = &rows[n++];
			memset(r, 0, sizeof(*r));
			strlcpy(r->name, disabled[d], NAMEDATALEN);
			database_settings(r);
			r->paused = pgbun_db_paused(r->name);
			r->disabled = true;
		}
	}
	return n;
}

/* One pass over the connection slots; client and server connections share the slot table. */
int
stats_read_lists(ListRow *rows)
{
	const char *names[PGBUN_MAX_POOLS];
	int			pools = 0;
	int			clients = 0;
	int			login = 0;
	int			servers = 0;
	int			free_slots = 0;
	int			n = 0;

	for (int p = 0; p < PGBUN_MAX_POOLS; p++)
		if (stats_pool_in_use(p))
			pools++;
	for (int i = 0; i < pgbun_shared->n_conn_slots; i++)
	{
		PgbunConnSlot c;
		uint64		link;

		if (!stats_read_conn(i, &c, &link))
			free_slots++;
		else if (c.kind == CONN_CLIENT)
		{
			clients++;
			if (c.state == CL_LOGIN)
				login++;
		}
		else
			servers++;
	}
#define ROW(name, v) (rows[n].list = (name), rows[n].items = (v), n++)
	ROW("databases", stats_pool_names(false, names, PGBUN_MAX_POOLS));
	ROW("users", stats_pool_names(true, names, PGBUN_MAX_POOLS));
	ROW("peers", 0);
	ROW("pools", pools);
	ROW("peer_pools", 0);
	/* one table of slots for both kinds: both "free" rows show it */
	ROW("free_clients", free_slots);
	ROW("used_clients", clients);
	ROW("login_clients", login);
	ROW("free_servers", free_slots);
	ROW("used_servers", servers);
	/* one name (pgbun.server_host) is looked up at most; no zones */
	ROW("dns_names", (pgbun_cfg->server_host && pgbun_cfg->server_host[0] && pgbun_cfg->server_host[0] != '/') ? 1 : 0);
	ROW("dns_zones", 0);
	ROW("dns_queries", 0);
	ROW("dns_pending", 0);
#undef ROW
	Assert(n == STATS_LISTS);
	return n;
}
