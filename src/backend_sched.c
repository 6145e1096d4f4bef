/*
 * backend_sched.c - run the local backends behind pgbun's server connections
 * under SCHED_BATCH (pgbun.server_sched_batch, on by default).
 *
 * Why: the worker's send of a query wakes the backend, and the kernel places
 * a synchronously woken task on the waker's CPU. A normal backend there
 * preempts the worker at once (wakeup preemption): the worker is switched out
 * in the middle of a batch of events and back in later, about one context
 * switch per four transactions at 50 clients. A SCHED_BATCH task never
 * preempts on wakeup; the backend runs on an idle CPU at once, or when the
 * worker blocks or its time slice ends. bench/ measured 8-20 % less worker
 * CPU per transaction and 7-18 % more tps on 2 cores. The cost: under full
 * CPU load a pooled backend's query may wait up to one scheduler slice
 * (about 3 ms) behind a CPU-bound task on its CPU; turn the setting off when
 * that matters more.
 *
 * Only a backend of this very cluster is touched: the server connection goes
 * to a Unix socket or a loopback address, and the pid of its BackendKeyData
 * is in this cluster's ProcArray (pids are unique on the machine, so that
 * pid is our backend). An unprivileged process may set SCHED_BATCH and
 * SCHED_OTHER for processes of its own user, which the backends are.
 */
#include "postgres.h"

#include <errno.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>

#include "storage/procarray.h"

#include "auth_query.h"
#include "backend_sched.h"
#include "notify.h"
#include "settings.h"
#include "worker.h"

static bool
address_is_local(const Server *s)
{
	const struct sockaddr *sa = (const struct sockaddr *) &s->addr;

	if (sa->sa_family == AF_UNIX)
		return true;
	if (sa->sa_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *) sa)->sin_addr.s_addr) >> 24) == 127;
	if (sa->sa_family == AF_INET6)
		return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *) sa)->sin6_addr);
	return false;
}

/* Set the backend's policy to what the setting asks; -1 for good on failure. */
static void
apply(Server *s)
{
	struct sched_param param = {0};
	bool		batch = pgbun_cfg->server_sched_batch;

	if (s->sched_batch < 0 || s->sched_batch == (batch ? 1 : 0))
		return;
	if (sched_setscheduler((pid_t) s->be_pid, batch ? SCHED_BATCH : SCHED_OTHER, &param) != 0)
	{
		/* a seccomp profile or a container may refuse it: run as the kernel had it */
		ereport(DEBUG1, (errmsg("pgbun: could not set the scheduling policy of backend %u: %m",
								s->be_pid)));
		s->sched_batch = -1;
		return;
	}
	s->sched_batch = batch ? 1 : 0;
}

/* After a server login (BackendKeyData seen): decide whether the backend is ours, then apply. */
void
backend_sched_login(Server *s)
{
	s->sched_batch = -1;
	if (s->be_pid == 0 || !address_is_local(s) || BackendPidGetProc((int) s->be_pid) == NULL)
		return;
	s->sched_batch = 0;			/* a new backend runs as SCHED_OTHER */
	apply(s);
}

static void
apply_list(dlist_head *list)
{
	dlist_iter	it;

	if (!list)
		return;
	dlist_foreach(it, list)
		apply(dlist_container(Server, node, it.cur));
}

/* A reload may have turned the setting over: every open local backend follows. */
void
backend_sched_reconfigure(void)
{
	dlist_iter	it;

	dlist_foreach(it, &W->pools)
	{
		Pool	   *pool = dlist_container(Pool, node, it.cur);

		apply_list(&pool->idle_servers);
		apply_list(&pool->active_servers);
		apply_list(&pool->used_servers);
		apply_list(notify_pool_servers(pool));	/* LISTEN/NOTIFY listeners: on no pool list */
	}
	auth_query_foreach_server_list(apply_list);	/* auth connections: on lists of their own */
}
