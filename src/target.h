/*
 * target.h - where a pool's server connections go.
 *
 * A Target is built, per worker, from one entry of the pgbun.databases
 * snapshot (config.h): its host list with ports and addresses, the server
 * database name, a forced user and password, target_session_attrs,
 * load_balance_hosts and max_replica_lag. Every pool points to one: the
 * target of its database's entry (or of "*"), else the default target, which
 * is pgbun.server_host / server_port exactly as before targets existed (its
 * one address is W->server_addr, looked up by dns.c). A reload builds the
 * targets anew from the new snapshot and relinks every pool before the old
 * ones are freed; server connections copy the address they use, so nothing
 * outlives its target by pointer.
 *
 * Host role and health are per (host, port) in shared memory (health.h), so
 * every worker and every target listing a host sees what any of them learnt.
 */
#ifndef PGBUN_TARGET_H
#define PGBUN_TARGET_H

#include "postgres.h"

#include <sys/socket.h>

#include "config.h"
#include "scram.h"
#include "shmem.h"

typedef struct TargetHost
{
	char		name[PGBUN_HOST_NAME_LEN];	/* as configured */
	int			port;
	struct sockaddr_storage addr;
	socklen_t	addr_len;		/* 0: no address (a name not in /etc/hosts) */
	char		addr_text[PGBUN_ADDR_LEN];
	int			dns;			/* dns.c name handle for a host name, -1: an address or socket */
	int			hslot;			/* shared host slot, -1: none (the table is full) */
} TargetHost;

typedef struct Target
{
	DbEntry		entry;			/* a copy of its pgbun.databases entry (name "" for the default) */
	bool		is_default;		/* the pgbun.server_host target: W->server_addr */
	bool		health;			/* a host list of its own: roles, health, backoff apply */
	int			n_hosts;
	TargetHost	hosts[CONFIG_MAX_HOSTS];
	uint32		rr;				/* round-robin position */
	uint64		route_id;		/* hash of where and as whom it connects; 0: the default target */
	ScramPasswordKeys pw_keys;	/* from the forced password */
} Target;

struct Pool;

/* Build this worker's targets from the snapshot in force (start, reload) and relink the pools. */
extern void target_rebuild(void);
/* The target a database's pools use. */
extern Target *target_for_database(const char *database);
/* The database has an entry that routes it (its name need not exist locally). */
extern bool target_database_routed(const char *database);

/*
 * Choose a host for a new server connection of the pool. Returns its index,
 * or -1 with *why saying why none can be used now (all down, none with the
 * role wanted). The default target always answers 0 (when W has an address).
 */
extern int	target_pick_host(Target *t, const char **why);
/*
 * Would this target use a server on that host now (role, lag, health)? For
 * idle servers about to be linked and servers that just logged in.
 */
extern bool target_accepts(const Target *t, int hslot);
/*
 * The host's role is known and does not fit the target (lag and health
 * aside): its servers are closed instead of reused (a failover).
 */
extern bool target_role_mismatch(const Target *t, int hslot);
/*
 * A server made for another route (a reload changed the entry's hosts,
 * dbname, user or password, or routed its database elsewhere) is not
 * handed on: it is closed once idle.
 */
static inline bool
target_route_changed(const Target *t, uint64 route_id)
{
	return t->route_id != route_id;
}

/* The database and user pgbun logs in to the server with. */
extern const char *target_server_dbname(const struct Pool *pool);
extern const char *target_server_user(const struct Pool *pool);

#endif							/* PGBUN_TARGET_H */
