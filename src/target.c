/*
 * target.c - per-worker Targets built from the pgbun.databases snapshot, and
 * host selection (the contract is in target.h).
 *
 * Selection follows libpq's multi-host rules where they fit a pool: the
 * candidates are the hosts whose role fits target_session_attrs and those
 * never connected to yet (its login tells the role; a server on the wrong
 * kind of host is closed at once and the next host tried); when there is
 * none, a host known not to fit but whose role was not reported for
 * pgbun.server_check_delay is tried again (it may have been promoted); a host
 * that is down is skipped until its retry is due. Among the fitting hosts
 * load_balance_hosts decides: the first in the list (disable), round-robin,
 * random, or the one with the fewest server connections over all workers
 * (least-conn).
 */
#include "postgres.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/un.h>

#include "common/hashfn.h"
#include "common/pg_prng.h"
#include "postmaster/postmaster.h"

#include "config.h"
#include "dns.h"
#include "health.h"
#include "pooler.h"
#include "settings.h"
#include "target.h"

static Target default_target;
static Target *targets = NULL;	/* one per routed entry, malloc'd */
static int	n_targets = 0;
static uint64 built_generation = 0;
static bool built = false;

/* Fill a host's address: a socket directory, a numeric address, or a name from /etc/hosts. */
static void
host_resolve(TargetHost *h)
{
	h->addr_len = 0;
	h->dns = -1;
	if (h->name[0] == '/')
	{
		struct sockaddr_un *sun = (struct sockaddr_un *) &h->addr;

		memset(&h->addr, 0, sizeof(h->addr));
		sun->sun_family = AF_UNIX;
		snprintf(sun->sun_path, sizeof(sun->sun_path), "%s/.s.PGSQL.%d", h->name, h->port);
		h->addr_len = sizeof(struct sockaddr_un);
		strlcpy(h->addr_text, sun->sun_path, sizeof(h->addr_text));
		return;
	}
	else
	{
		struct addrinfo hints;
		struct addrinfo *res = NULL;
		char		portstr[16];

		memset(&hints, 0, sizeof(hints));
		hints.ai_socktype = SOCK_STREAM;
		hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
		snprintf(portstr, sizeof(portstr), "%d", h->port);
		if (getaddrinfo(h->name, portstr, &hints, &res) == 0 && res &&
			res->ai_addrlen <= sizeof(h->addr))
		{
			memcpy(&h->addr, res->ai_addr, res->ai_addrlen);
			h->addr_len = res->ai_addrlen;
		}
		if (res)
			freeaddrinfo(res);
		if (h->addr_len == 0)
		{
			/* a name: c-ares from the loop (dns.c); no address until it answers */
			h->dns = dns_name_register(h->name, h->port);
			if (h->dns < 0)
				ereport(LOG, (errmsg("pgbun: too many host names in pgbun.databases; \"%s\" is not used",
									 h->name)));
			else
				(void) dns_name_address(h->dns, &h->addr, &h->addr_len);
		}
		snprintf(h->addr_text, sizeof(h->addr_text), "%s", h->name);
	}
}

/* Build one target from an entry that routes its database. */
static void
target_build(Target *t, const DbEntry *e)
{
	int			default_port = pgbun_cfg->server_port > 0 ? pgbun_cfg->server_port : PostPortNumber;

	memset(t, 0, sizeof(*t));
	t->entry = *e;
	{
		/* the route: everything that decides where and as whom a server connects */
		uint64		h = hash_bytes_extended((const unsigned char *) e->name, strlen(e->name), 1);

		h = hash_combine64(h, hash_bytes_extended((const unsigned char *) e->host, strlen(e->host), 2));
		h = hash_combine64(h, hash_bytes_extended((const unsigned char *) e->ports, sizeof(e->ports), 3));
		h = hash_combine64(h, hash_bytes_extended((const unsigned char *) e->dbname, strlen(e->dbname), 4));
		h = hash_combine64(h, hash_bytes_extended((const unsigned char *) e->user, strlen(e->user), 5));
		h = hash_combine64(h, hash_bytes_extended((const unsigned char *) e->password, strlen(e->password), 6));
		t->route_id = h ? h : 1;
	}
	if (e->host[0] == '\0')
	{
		/* no host list: pgbun.server_host, with this entry's dbname / user */
		t->is_default = true;
		t->n_hosts = 1;
		t->hosts[0].hslot = -1;
		t->hosts[0].dns = -1;
		return;
	}
	t->health = true;
	{
		const char *h = e->host;

		while (*h && t->n_hosts < CONFIG_MAX_HOSTS)
		{
			size_t		n = strcspn(h, ",");
			size_t		lead = 0;
			TargetHost *th = &t->hosts[t->n_hosts];

			while (lead < n && h[lead] == ' ')
				lead++;
			snprintf(th->name, sizeof(th->name), "%.*s", (int) (n - lead), h + lead);
			for (int k = strlen(th->name) - 1; k >= 0 && th->name[k] == ' '; k--)
				th->name[k] = '\0';
			th->port = e->ports[t->n_hosts] > 0 ? e->ports[t->n_hosts] : default_port;
			host_resolve(th);
			th->hslot = health_host_slot(th->name, th->port, th->addr_text);
			t->n_hosts++;
			h += n;
			if (*h == ',')
				h++;
		}
	}
}

void
target_rebuild(void)
{
	const ConfigDatabases *cfg = config_databases();
	uint64		gen = cfg ? cfg->generation : 0;
	Target	   *old = targets;
	Target	   *fresh = NULL;
	int			n = 0;
	dlist_iter	it;

	memset(&default_target, 0, sizeof(default_target));
	default_target.is_default = true;
	default_target.n_hosts = 1;
	default_target.hosts[0].hslot = -1;
	default_target.hosts[0].dns = -1;
	if (built && gen == built_generation)
	{
		/* the same snapshot: only the hosts' addresses may need refreshing (server_port) */
		for (int i = 0; i < n_targets; i++)
			for (int h = 0; h < targets[i].n_hosts; h++)
				if (targets[i].health)
					host_resolve(&targets[i].hosts[h]);
		return;
	}
	for (int i = 0; cfg && i < cfg->n; i++)
		if (cfg->items[i].routed)
			n++;
	dns_names_unmark();
	if (n > 0)
	{
		fresh = calloc(n, sizeof(Target));
		if (!fresh)
		{
			ereport(LOG, (errmsg("pgbun: out of memory for the targets of pgbun.databases; keeping the old ones")));
			for (int i = 0; i < n_targets; i++)
				for (int h = 0; h < targets[i].n_hosts; h++)
					if (targets[i].hosts[h].dns >= 0)
						(void) dns_name_register(targets[i].hosts[h].name, targets[i].hosts[h].port);
			return;
		}
		n = 0;
		for (int i = 0; i < cfg->n; i++)
			if (cfg->items[i].routed)
				target_build(&fresh[n++], &cfg->items[i]);
	}
	dns_names_sweep();
	targets = fresh;
	n_targets = n;
	built = true;
	built_generation = gen;
	/* every pool points into the new set before the old one goes */
	if (W)
	{
		dlist_foreach(it, &W->pools)
			pool_reconfigure(dlist_container(Pool, node, it.cur));
	}
	free(old);
}

Target *
target_for_database(const char *database)
{
	const DbEntry *e = config_database_entry(database);

	if (e && e->routed)
	{
		for (int i = 0; i < n_targets; i++)
			if (strcmp(targets[i].entry.name, e->name) == 0)
				return &targets[i];
	}
	return &default_target;
}

bool
target_database_routed(const char *database)
{
	const DbEntry *e = config_database_entry(database);

	return e && e->routed;
}

/* Does a host's role (as last reported) fit the target? (lag aside) */
static bool
role_fits(int tsa, int role, bool read_only, bool standby_pass)
{
	switch (tsa)
	{
		case TSA_ANY:
			return true;
		case TSA_READ_WRITE:
			return role == HOST_ROLE_PRIMARY && !read_only;
		case TSA_PRIMARY:
			return role == HOST_ROLE_PRIMARY;
		case TSA_READ_ONLY:
			return role == HOST_ROLE_STANDBY || (role == HOST_ROLE_PRIMARY && read_only);
		case TSA_STANDBY:
			return role == HOST_ROLE_STANDBY;
		case TSA_PREFER_STANDBY:
			return standby_pass ? role == HOST_ROLE_STANDBY : true;
	}
	return false;
}

/* A standby over max_replica_lag (measured within the last 3 check delays) is out of the read rotation. */
static bool
lag_ok(const Target *t, const PgbunHostSlot *hs)
{
	if (t->entry.max_replica_lag <= 0 || hs->role != HOST_ROLE_STANDBY || hs->lag_ms < 0)
		return true;
	if (W->now - hs->lag_time > (int64) pgbun_cfg->server_check_delay * 3 * 1000)
		return true;			/* stale: let it be tried; the next check decides again */
	return hs->lag_ms <= t->entry.max_replica_lag;
}

bool
target_accepts(const Target *t, int hslot)
{
	const PgbunHostSlot *hs;

	if (!t->health || hslot < 0)
		return true;
	hs = &pgbun_shared->hosts[hslot];
	if (hs->state == HOST_DOWN)
		return false;
	if (!role_fits(t->entry.tsa, hs->role, hs->read_only, false))
		return false;
	return lag_ok(t, hs);
}

bool
target_role_mismatch(const Target *t, int hslot)
{
	const PgbunHostSlot *hs;

	if (!t->health || hslot < 0)
		return false;
	hs = &pgbun_shared->hosts[hslot];
	return hs->role != HOST_ROLE_UNKNOWN && !role_fits(t->entry.tsa, hs->role, hs->read_only, false);
}

/* Is this host's role worth (re)learning by connecting: unknown, or not reported lately? */
static bool
role_stale(const PgbunHostSlot *hs)
{
	return hs->role == HOST_ROLE_UNKNOWN ||
		W->now - hs->role_time >= (int64) pgbun_cfg->server_check_delay * 1000;
}

/* Among candidate hosts (indexes), the one load_balance_hosts picks. */
static int
balance(Target *t, const int *cand, int n)
{
	switch (t->entry.lb)
	{
		case LB_ROUND_ROBIN:
			return cand[t->rr++ % n];
		case LB_RANDOM:
			return cand[pg_prng_uint64_range(&pg_global_prng_state, 0, n - 1)];
		case LB_LEAST_CONN:
			{
				int			best = cand[0];
				uint32		best_n = UINT32_MAX;

				for (int i = 0; i < n; i++)
				{
					int			hs = t->hosts[cand[i]].hslot;
					uint32		c = hs >= 0 ? pg_atomic_read_u32(&pgbun_shared->hosts[hs].n_servers) : 0;

					if (c < best_n)
					{
						best_n = c;
						best = cand[i];
					}
				}
				return best;
			}
		default:
			return cand[0];
	}
}

int
target_pick_host(Target *t, const char **why)
{
	int			fit[CONFIG_MAX_HOSTS];
	int			nfit = 0;
	int			probe = -1;
	bool		any_up = false;
	bool		any_addr = false;
	bool		pending = false;

	*why = NULL;
	if (!t->health)
		return 0;
	for (int pass = 0; pass < 2 && nfit == 0; pass++)
	{
		bool		standby_pass = (pass == 0);

		if (pass == 1 && t->entry.tsa != TSA_PREFER_STANDBY)
			break;
		for (int i = 0; i < t->n_hosts; i++)
		{
			TargetHost *h = &t->hosts[i];
			PgbunHostSlot *hs;

			if (h->dns >= 0)
			{
				/* the name's address in use (refreshed every dns_max_ttl) */
				int			r = dns_name_address(h->dns, &h->addr, &h->addr_len);

				if (r == 0)
					pending = true;
				if (r <= 0)
				{
					h->addr_len = 0;
					continue;
				}
			}
			if (h->addr_len == 0)
				continue;
			any_addr = true;
			if (h->hslot < 0)
			{
				fit[nfit++] = i;	/* no shared state: always usable */
				continue;
			}
			hs = &pgbun_shared->hosts[h->hslot];
			if (!health_host_usable(h->hslot, false))
				continue;
			any_up = true;
			/* never connected yet: in the rotation, its login tells (and a misfit is closed) */
			if (hs->role == HOST_ROLE_UNKNOWN ||
				(role_fits(t->entry.tsa, hs->role, hs->read_only, standby_pass) && lag_ok(t, hs)))
				fit[nfit++] = i;
			else if (probe < 0 && role_stale(hs))
				probe = i;
		}
	}
	if (nfit == 0 && probe < 0 && t->entry.tsa == TSA_PREFER_STANDBY)
	{
		/* nothing fits at all: any usable host */
		for (int i = 0; i < t->n_hosts && probe < 0; i++)
			if (t->hosts[i].addr_len > 0 &&
				(t->hosts[i].hslot < 0 || health_host_usable(t->hosts[i].hslot, false)))
				probe = i;
	}
	if (nfit > 0)
	{
		int			i = balance(t, fit, nfit);

		/* a due retry is claimed by the one attempt that decides it */
		if (t->hosts[i].hslot < 0 || health_host_usable(t->hosts[i].hslot, true))
			return i;
		return -1;				/* another worker claimed it this instant: try again next kick */
	}
	if (probe >= 0)
	{
		if (t->hosts[probe].hslot < 0 || health_host_usable(t->hosts[probe].hslot, true))
			return probe;
		return -1;
	}
	if (pending)
		return -1;				/* a first lookup is running: wait for its answer */
	if (!any_addr)
		*why = "no host of the list could be resolved";
	else if (!any_up)
		*why = "all hosts are down";
	else
		switch (t->entry.tsa)
		{
			case TSA_READ_WRITE:
				*why = "no host is a read-write primary";
				break;
			case TSA_PRIMARY:
				*why = "no host is a primary";
				break;
			case TSA_STANDBY:
				*why = "no host is a standby within max_replica_lag";
				break;
			case TSA_READ_ONLY:
				*why = "no host is read-only within max_replica_lag";
				break;
			default:
				*why = "no host is usable";
				break;
		}
	return -1;
}

const char *
target_server_dbname(const Pool *pool)
{
	const Target *t = pool->target;

	return (t && t->entry.dbname[0]) ? t->entry.dbname : pool->database;
}

const char *
target_server_user(const Pool *pool)
{
	const Target *t = pool->target;

	return (t && t->entry.user[0]) ? t->entry.user : pool->user;
}
