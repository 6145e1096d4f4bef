/*
 * dns.c - c-ares in the worker's event loop (the contract is in dns.h).
 *
 * One resolver channel per worker. c-ares tells us through its socket-state
 * callback which sockets it has and whether it waits to read or write; each
 * becomes a level-triggered IO_DNS entry in the inner epoll set (a fixed
 * table, so a stale event for a closed socket never touches freed memory),
 * and readiness goes to ares_process_fd(). The janitor calls it with no
 * socket for c-ares' own retry timers, and enforces pgbun.dns_timeout as a
 * bound on the whole lookup (ares_cancel), since c-ares' timeout is per try.
 *
 * Only the server target is looked up here, one lookup at a time; a lookup
 * made stale by a reload (another host) is recognised by its generation and
 * ignored. c-ares allocates with malloc and never throws; results are
 * copied into the WorkerState and freed at once.
 */
#include "postgres.h"

#include <ares.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "utils/timestamp.h"

#include "config.h"
#include "dns.h"
#include "pooler.h"
#include "settings.h"

/* c-ares rarely has more than a socket or two per server it asks. */
#define DNS_MAX_SOCKS 16

typedef struct DnsSock
{
	IoObj		io;				/* IO_DNS; first member */
	int			fd;				/* -1: free entry */
	bool		watched;		/* in the epoll set */
} DnsSock;

static DnsSock socks[DNS_MAX_SOCKS];

static bool library_ready = false;
static bool have_channel = false;
static ares_channel channel;
static char *channel_servers = NULL;	/* settings the channel was made with */
static int	channel_timeout = -1;

/* The server host being resolved; NULL when the target is not a name. */
static char *target_host = NULL;
static int	target_port = 0;
static TimestampTz resolved_at = 0;	/* 0: no address for target_host yet */

static bool lookup_running = false;
static bool lookup_deferred = false;	/* wanted before the event loop existed */
static bool lookup_timed_out = false;
static TimestampTz lookup_start = 0;
static uint64 generation = 0;

/*
 * Host names of pgbun.databases host lists (target.c), each looked up on its
 * own, like the server target: at first use, again every dns_max_ttl, and
 * when a failed one is needed again (at most once a second). A lookup's
 * callback carries the entry's index and generation, so an answer for an
 * entry reused meanwhile is dropped.
 */
#define DNS_MAX_NAMES 64

typedef struct DnsName
{
	char	   *name;			/* NULL: free */
	int			port;
	struct sockaddr_storage addr;
	socklen_t	addr_len;		/* 0: no address yet */
	TimestampTz resolved_at;	/* last answer (or failed refresh) */
	TimestampTz started;		/* last lookup start */
	bool		running;
	bool		failed;			/* the last lookup failed and there is no address */
	bool		used;			/* registered since the last dns_names_unmark (a target lists it) */
	uint32		gen;
} DnsName;

static DnsName names[DNS_MAX_NAMES];

static void name_lookup(int idx);

/* ---- sockets ---- */

static DnsSock *
sock_find(int fd)
{
	for (int i = 0; i < DNS_MAX_SOCKS; i++)
		if (socks[i].fd == fd)
			return &socks[i];
	return NULL;
}

/*
 * c-ares' socket-state callback: it opened a socket, wants other events
 * from it, or closed it (readable = writable = 0).
 */
static void
sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
	DnsSock    *d = sock_find(fd);
	uint32		pev = (readable ? PEV_IN : 0) | (writable ? PEV_OUT : 0);

	if (pev == 0)
	{
		if (d)
		{
			if (d->watched)
				poll_remove(fd);
			d->fd = -1;
			d->watched = false;
		}
		return;
	}
	if (!d)
	{
		d = sock_find(-1);
		if (!d)
		{
			/* cannot watch it: its query times out (janitor) instead */
			ereport(LOG, (errmsg("pgbun: too many DNS sockets; not watching one")));
			return;
		}
		d->io.kind = IO_DNS;
		d->fd = fd;
		d->watched = false;
	}
	if (poll_watch(fd, &d->io, pev, d->watched) == 0)
		d->watched = true;
	else
		ereport(LOG, (errmsg("pgbun: could not watch a DNS socket: %m")));
}

void
dns_on_event(void *obj, uint32 events)
{
	DnsSock    *d = obj;
	int			fd = d->fd;

	if (!have_channel || fd < 0)
		return;
	ares_process_fd(channel,
					(events & (PEV_IN | PEV_HUP)) ? fd : ARES_SOCKET_BAD,
					(events & PEV_OUT) ? fd : ARES_SOCKET_BAD);
}

/* ---- the resolver channel ---- */

static bool
settings_changed(void)
{
	const char *servers = pgbun_cfg->dns_servers ? pgbun_cfg->dns_servers : "";

	return !have_channel || channel_timeout != pgbun_cfg->dns_timeout ||
		strcmp(channel_servers ? channel_servers : "", servers) != 0;
}

static void start_lookup(void);

void
dns_configure(void)
{
	struct ares_options opts;
	int			rc;
	bool		restart = lookup_running || lookup_deferred;

	if (!settings_changed())
		return;
	if (!library_ready)
	{
		for (int i = 0; i < DNS_MAX_SOCKS; i++)
			socks[i].fd = -1;
		rc = ares_library_init(ARES_LIB_INIT_ALL);
		if (rc != ARES_SUCCESS)
		{
			ereport(WARNING, (errmsg("pgbun: could not initialise c-ares: %s", ares_strerror(rc))));
			return;
		}
		library_ready = true;
	}
	if (have_channel)
	{
		/* a lookup in flight belongs to the old channel: its callback is stale */
		generation++;
		lookup_running = false;
		ares_destroy(channel);
		have_channel = false;
	}

	memset(&opts, 0, sizeof(opts));
	opts.sock_state_cb = sock_state;
	opts.sock_state_cb_data = NULL;
	/* per try; the whole lookup is bounded by dns_timeout in the janitor */
	opts.timeout = Max(pgbun_cfg->dns_timeout / 3, 100);
	opts.tries = 3;
	rc = ares_init_options(&channel, &opts, ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
	if (rc != ARES_SUCCESS)
	{
		ereport(WARNING, (errmsg("pgbun: could not create a DNS resolver: %s", ares_strerror(rc))));
		return;
	}
	have_channel = true;
	channel_timeout = pgbun_cfg->dns_timeout;
	free(channel_servers);
	channel_servers = strdup(pgbun_cfg->dns_servers ? pgbun_cfg->dns_servers : "");
	if (pgbun_cfg->dns_servers && pgbun_cfg->dns_servers[0])
	{
		rc = ares_set_servers_ports_csv(channel, pgbun_cfg->dns_servers);
		if (rc != ARES_SUCCESS)
			ereport(WARNING,
					(errmsg("pgbun: invalid pgbun.dns_servers \"%s\": %s; using the servers of /etc/resolv.conf",
							pgbun_cfg->dns_servers, ares_strerror(rc)),
					 errhint("Give a comma-separated list of host[:port], e.g. '10.0.0.2,[2001:db8::53]:5353'.")));
	}
	if (restart && target_host)
		start_lookup();
	for (int i = 0; i < DNS_MAX_NAMES; i++)
		if (names[i].name && names[i].running)
		{
			names[i].running = false;	/* its callback belonged to the old channel */
			names[i].gen++;
			name_lookup(i);
		}
}

/* ---- looking up the server target ---- */

/*
 * Take the answer: the first address (c-ares sorts them as getaddrinfo
 * does). A failure fails the clients waiting for a first address, or keeps
 * the address in use when this was a refresh.
 */
static void
lookup_done(void *arg, int status, int timeouts, struct ares_addrinfo *result)
{
	uint64		gen = (uint64) (uintptr_t) arg;

	if (gen != generation || !target_host)
	{
		if (result)
			ares_freeaddrinfo(result);
		return;					/* superseded by a reload or a new channel */
	}
	lookup_running = false;
	if (status == ARES_SUCCESS && result && result->nodes &&
		result->nodes->ai_addrlen <= sizeof(W->server_addr))
	{
		struct ares_addrinfo_node *n = result->nodes;
		bool		changed = W->server_addr_len != n->ai_addrlen ||
			memcmp(&W->server_addr, n->ai_addr, n->ai_addrlen) != 0;

		memset(&W->server_addr, 0, sizeof(W->server_addr));
		memcpy(&W->server_addr, n->ai_addr, n->ai_addrlen);
		W->server_addr_len = n->ai_addrlen;
		resolved_at = W->now;
		ares_freeaddrinfo(result);
		if (changed)
		{
			char		text[NI_MAXHOST] = "?";

			getnameinfo((struct sockaddr *) &W->server_addr, W->server_addr_len,
						text, sizeof(text), NULL, 0, NI_NUMERICHOST);
			ereport(LOG, (errmsg("pgbun: server host \"%s\" resolved to %s", target_host, text)));
		}
		pool_target_resolved();
		return;
	}
	if (result)
		ares_freeaddrinfo(result);

	{
		const char *why = lookup_timed_out ? "timed out (pgbun.dns_timeout)" :
			(status == ARES_SUCCESS ? "no usable address" : ares_strerror(status));

		if (resolved_at > 0)
		{
			/* a refresh: the address we have is the best guess; try again after dns_max_ttl */
			ereport(LOG, (errmsg("pgbun: could not look up server host \"%s\" again: %s; keeping the address in use",
								 target_host, why)));
			resolved_at = W->now;
			return;
		}
		ereport(LOG, (errmsg("pgbun: could not resolve server host \"%s\": %s", target_host, why)));
		pool_target_unresolvable(target_host, why);
	}
}

static void
start_lookup(void)
{
	struct ares_addrinfo_hints hints;
	char		portstr[16];

	if (!target_host || lookup_running)
		return;
	if (poll_fd() < 0)
	{
		/* the worker is still starting: the first janitor turn starts it */
		lookup_deferred = true;
		return;
	}
	lookup_deferred = false;
	if (!have_channel)
	{
		ereport(LOG, (errmsg("pgbun: no DNS resolver to look up server host \"%s\"", target_host)));
		if (resolved_at == 0)
			pool_target_unresolvable(target_host, "no DNS resolver");
		return;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = IPPROTO_TCP;
	snprintf(portstr, sizeof(portstr), "%d", target_port);
	generation++;
	lookup_running = true;
	lookup_timed_out = false;
	lookup_start = W->now;
	/* may answer at once (e.g. from /etc/hosts), calling lookup_done before it returns */
	ares_getaddrinfo(channel, target_host, portstr, &hints, lookup_done, (void *) (uintptr_t) generation);
}

void
dns_resolve_server(const char *host, int port)
{
	if (target_host && strcmp(target_host, host) == 0 && target_port == port)
	{
		/* the same target (a reload): keep its address, look it up afresh */
		start_lookup();
		return;
	}
	free(target_host);
	target_host = strdup(host);
	target_port = port;
	resolved_at = 0;
	generation++;				/* a lookup still running was for the old target */
	lookup_running = false;
	W->server_addr_len = 0;		/* no connections until the answer */
	strlcpy(W->server_addr_text, host, sizeof(W->server_addr_text));
	W->server_port = port;
	if (!target_host)
	{
		ereport(LOG, (errmsg("pgbun: out of memory for the server host name")));
		return;
	}
	start_lookup();
}

void
dns_forget_server(void)
{
	free(target_host);
	target_host = NULL;
	resolved_at = 0;
	generation++;
	lookup_running = false;
	lookup_deferred = false;
}

void
dns_server_needed(void)
{
	if (target_host && resolved_at == 0)
		start_lookup();
}

void
dns_janitor(void)
{
	if (have_channel)
		ares_process_fd(channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);	/* its timers */
	if (lookup_deferred)
		start_lookup();
	if (lookup_running && W->now - lookup_start >= (int64) pgbun_cfg->dns_timeout * 1000)
	{
		/* c-ares' timeout is per try: this bounds the whole lookup */
		lookup_timed_out = true;
		ares_cancel(channel);	/* lookup_done runs with ARES_ECANCELLED */
		lookup_timed_out = false;
		lookup_running = false;
	}
	if (target_host && !lookup_running && resolved_at > 0 &&
		W->now - resolved_at >= (int64) pgbun_cfg->dns_max_ttl * 1000)
		start_lookup();
	for (int i = 0; i < DNS_MAX_NAMES; i++)
	{
		DnsName    *n = &names[i];

		if (!n->name)
			continue;
		if (n->running && W->now - n->started >= (int64) pgbun_cfg->dns_timeout * 1000)
		{
			/* bounded like the server target's; the answer, if it comes, is stale */
			n->running = false;
			n->gen++;
			n->resolved_at = W->now;
			if (n->addr_len == 0)
				n->failed = true;
			ereport(LOG, (errmsg("pgbun: looking up host \"%s\" timed out (pgbun.dns_timeout)", n->name)));
			pool_target_resolved();
		}
		else if (!n->running && (n->resolved_at == 0 ||
								 W->now - n->resolved_at >= (int64) pgbun_cfg->dns_max_ttl * 1000))
			name_lookup(i);
	}
}

/* ---- host names of pgbun.databases host lists ---- */

static void
name_done(void *arg, int status, int timeouts, struct ares_addrinfo *result)
{
	uint64		key = (uint64) (uintptr_t) arg;
	int			idx = (int) (key & 0xff);
	uint32		gen = (uint32) (key >> 8);
	DnsName    *n = idx < DNS_MAX_NAMES ? &names[idx] : NULL;

	if (!n || !n->name || n->gen != gen)
	{
		if (result)
			ares_freeaddrinfo(result);
		return;
	}
	n->running = false;
	n->resolved_at = W->now;
	if (status == ARES_SUCCESS && result && result->nodes &&
		result->nodes->ai_addrlen <= sizeof(n->addr))
	{
		bool		changed = n->addr_len != result->nodes->ai_addrlen ||
			memcmp(&n->addr, result->nodes->ai_addr, n->addr_len) != 0;

		memset(&n->addr, 0, sizeof(n->addr));
		memcpy(&n->addr, result->nodes->ai_addr, result->nodes->ai_addrlen);
		n->addr_len = result->nodes->ai_addrlen;
		n->failed = false;
		if (changed)
		{
			char		text[NI_MAXHOST] = "?";

			getnameinfo((struct sockaddr *) &n->addr, n->addr_len, text, sizeof(text), NULL, 0, NI_NUMERICHOST);
			ereport(LOG, (errmsg("pgbun: host \"%s\" resolved to %s", n->name, text)));
		}
	}
	else
	{
		ereport(LOG, (errmsg("pgbun: could not resolve host \"%s\": %s%s", n->name,
							 status == ARES_SUCCESS ? "no usable address" : ares_strerror(status),
							 n->addr_len > 0 ? "; keeping the address in use" : "")));
		if (n->addr_len == 0)
			n->failed = true;
	}
	if (result)
		ares_freeaddrinfo(result);
	pool_target_resolved();		/* waiters may have a host now, or fail at once */
}

static void
name_lookup(int idx)
{
	DnsName    *n = &names[idx];
	struct ares_addrinfo_hints hints;
	char		portstr[16];

	if (n->running || poll_fd() < 0)
		return;					/* before the loop runs: the first janitor turn starts it */
	if (!have_channel)
	{
		n->failed = n->addr_len == 0;
		n->resolved_at = W->now;
		return;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = IPPROTO_TCP;
	snprintf(portstr, sizeof(portstr), "%d", n->port);
	n->gen++;
	n->running = true;
	n->started = W->now;
	/* may answer at once (/etc/hosts), calling name_done before it returns */
	ares_getaddrinfo(channel, n->name, portstr, &hints, name_done,
					 (void *) (uintptr_t) (((uint64) n->gen << 8) | (uint64) idx));
}

int
dns_name_register(const char *name, int port)
{
	int			free_idx = -1;

	for (int i = 0; i < DNS_MAX_NAMES; i++)
	{
		if (!names[i].name)
		{
			if (free_idx < 0)
				free_idx = i;
			continue;
		}
		if (names[i].port == port && strcmp(names[i].name, name) == 0)
		{
			names[i].used = true;
			return i;
		}
	}
	if (free_idx < 0)
		return -1;
	memset(&names[free_idx], 0, offsetof(DnsName, gen));
	names[free_idx].name = strdup(name);
	if (!names[free_idx].name)
		return -1;
	names[free_idx].port = port;
	names[free_idx].used = true;
	name_lookup(free_idx);
	return free_idx;
}

void
dns_names_unmark(void)
{
	for (int i = 0; i < DNS_MAX_NAMES; i++)
		names[i].used = false;
}

void
dns_names_sweep(void)
{
	for (int i = 0; i < DNS_MAX_NAMES; i++)
	{
		DnsName    *n = &names[i];

		if (!n->name || n->used)
			continue;
		/* no target lists it any more: forget it (a lookup in flight is stale by its generation) */
		free(n->name);
		n->name = NULL;
		n->running = false;
		n->gen++;
	}
}

int
dns_name_address(int idx, struct sockaddr_storage *addr, socklen_t *len)
{
	DnsName    *n;

	if (idx < 0 || idx >= DNS_MAX_NAMES || !names[idx].name)
		return -1;
	n = &names[idx];
	if (n->addr_len > 0)
	{
		memcpy(addr, &n->addr, n->addr_len);
		*len = n->addr_len;
		return 1;
	}
	if (n->failed && !n->running && W->now - n->started >= 1000 * 1000)
		name_lookup(idx);		/* needed again: ask again, at most once a second */
	return (n->running || n->resolved_at == 0) ? 0 : -1;
}

/* ---- /etc/hosts for the listen addresses ---- */

/* Append one address of a family to the result arrays; false when full. */
static bool
hosts_add(int family, const void *addr, int port, struct sockaddr_storage *addrs,
		  socklen_t *lens, int *n, int max)
{
	if (*n >= max)
		return false;
	memset(&addrs[*n], 0, sizeof(addrs[*n]));
	if (family == AF_INET)
	{
		struct sockaddr_in *sin = (struct sockaddr_in *) &addrs[*n];

		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16) port);
		memcpy(&sin->sin_addr, addr, sizeof(sin->sin_addr));
		lens[*n] = sizeof(*sin);
	}
	else
	{
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *) &addrs[*n];

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16) port);
		memcpy(&sin6->sin6_addr, addr, sizeof(sin6->sin6_addr));
		lens[*n] = sizeof(*sin6);
	}
	(*n)++;
	return true;
}

int
dns_hosts_lookup(const char *name, int port, struct sockaddr_storage *addrs,
				 socklen_t *lens, int max)
{
	static const int families[] = {AF_INET, AF_INET6};
	int			n = 0;

	if (have_channel)
	{
		for (int f = 0; f < lengthof(families); f++)
		{
			struct hostent *he = NULL;

			if (ares_gethostbyname_file(channel, name, families[f], &he) != ARES_SUCCESS || !he)
				continue;
			for (char **a = he->h_addr_list; a && *a; a++)
			{
				bool		dup = false;

				/* /etc/hosts may list an address twice */
				for (int i = 0; i < n; i++)
				{
					if (addrs[i].ss_family != families[f])
						continue;
					if (families[f] == AF_INET ?
						memcmp(&((struct sockaddr_in *) &addrs[i])->sin_addr, *a, sizeof(struct in_addr)) == 0 :
						memcmp(&((struct sockaddr_in6 *) &addrs[i])->sin6_addr, *a, sizeof(struct in6_addr)) == 0)
						dup = true;
				}
				if (!dup && !hosts_add(families[f], *a, port, addrs, lens, &n, max))
					break;
			}
			ares_free_hostent(he);
		}
	}
	if (n == 0 && pg_strcasecmp(name, "localhost") == 0)
	{
		struct in_addr lo = {htonl(INADDR_LOOPBACK)};

		(void) hosts_add(AF_INET, &lo, port, addrs, lens, &n, max);
	}
	return n;
}
