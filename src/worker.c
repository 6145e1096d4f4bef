/*
 * worker.c - the pooler background worker: start-up, the event loop,
 * reload, shutdown.
 *
 * Every client/server socket lives in one epoll set (poll.c), which also
 * holds the latch and postmaster death (loop_wait.c); the latch is also
 * checked by reading it. A turn costs one epoll_wait: a wait (timed to the
 * janitor's next run) once the ready events were all handled, which returns
 * at once when more are ready; a poll when a pump yielded. A turn handles
 * the events of servers and of clients holding one before the rest
 * (holds_server). Each event is handled under PG_TRY: an ERROR closes the
 * one connection it came from and never reaches the postmaster as a crashed
 * worker (which would restart the whole cluster).
 */
#include "postgres.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "access/xact.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "postmaster/postmaster.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/pidfile.h"
#include "utils/timestamp.h"

#include "backend_sched.h"
#include "cancel.h"
#include "client_login.h"
#include "clock.h"
#include "compat.h"
#include "config.h"
#include "counters.h"
#include "console.h"
#include "control.h"
#include "dns.h"
#include "settings.h"
#include "target.h"
#include "auth_file.h"
#include "hba.h"
#include "kdf.h"
#include "listener.h"
#include "loop_wait.h"
#include "metrics.h"
#include "pooler.h"
#include "tls.h"
#include "worker.h"

#define JANITOR_INTERVAL_MS 250
#define EVENT_BATCH 256

WorkerState *W = NULL;

static WorkerState worker_state;
static volatile sig_atomic_t got_sigterm = false;
static MemoryContext scratch_context = NULL;

/* How often the janitor looks whether a smart shutdown has begun. */
#define SHUTDOWN_CHECK_MS 500
static TimestampTz next_shutdown_check = 0;

static void
handle_sigterm(SIGNAL_ARGS)
{
	int			save_errno = errno;

	got_sigterm = true;
	SetLatch(MyLatch);
	errno = save_errno;
}

/* Raise the soft fd limit to the hard one; say if max_client_conn cannot fit. */
static void
raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return;
	if (rl.rlim_cur < rl.rlim_max)
	{
		rl.rlim_cur = rl.rlim_max;
		(void) setrlimit(RLIMIT_NOFILE, &rl);
		(void) getrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur != RLIM_INFINITY &&
		(rlim_t) pgbun_cfg->max_client_conn + MaxConnections + 64 > rl.rlim_cur)
		ereport(LOG,
				(errmsg("pgbun: file descriptor limit %lu is below what pgbun.max_client_conn=%d needs (about %d)",
						(unsigned long) rl.rlim_cur, pgbun_cfg->max_client_conn,
						pgbun_cfg->max_client_conn + MaxConnections + 64),
				 errhint("Raise the hard limit (LimitNOFILE in the systemd unit, or ulimit -n) for the PostgreSQL server.")));
}

/*
 * Work out where server connections go: the local server's Unix socket by
 * default, or pgbun.server_host/server_port. An address or a socket
 * directory is taken at once; a host name is looked up by dns.c inside the
 * loop (c-ares), never here: until it answers, pools wait for it.
 */
static void
resolve_server_target(void)
{
	const char *host = pgbun_cfg->server_host;
	int			port = pgbun_cfg->server_port > 0 ? pgbun_cfg->server_port : PostPortNumber;
	char		dir[MAXPGPATH] = "";

	dns_configure();
	W->server_port = port;
	if (!host || host[0] == '\0')
	{
		/* the first of the server's own socket directories */
		const char *dirs = Unix_socket_directories ? Unix_socket_directories : "";
		size_t		len = strcspn(dirs, ",");

		while (*dirs == ' ')
		{
			dirs++;
			len = strcspn(dirs, ",");
		}
		if (len > 0 && len < sizeof(dir))
		{
			memcpy(dir, dirs, len);
			dir[len] = '\0';
			while (len > 0 && dir[len - 1] == ' ')
				dir[--len] = '\0';
		}
		else
			host = "127.0.0.1";
	}
	else if (host[0] == '/')
		strlcpy(dir, host, sizeof(dir));

	if (dir[0])
	{
		struct sockaddr_un *sun = (struct sockaddr_un *) &W->server_addr;

		dns_forget_server();
		memset(&W->server_addr, 0, sizeof(W->server_addr));
		sun->sun_family = AF_UNIX;
		snprintf(sun->sun_path, sizeof(sun->sun_path), "%s/.s.PGSQL.%d", dir, port);
		W->server_addr_len = sizeof(struct sockaddr_un);
		strlcpy(W->server_addr_text, sun->sun_path, sizeof(W->server_addr_text));
		W->server_port = 0;
		return;
	}
	else
	{
		struct addrinfo hints;
		struct addrinfo *res = NULL;
		char		portstr[16];
		int			rc;

		/* a numeric address never asks DNS */
		memset(&hints, 0, sizeof(hints));
		hints.ai_socktype = SOCK_STREAM;
		hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
		snprintf(portstr, sizeof(portstr), "%d", port);
		rc = getaddrinfo(host, portstr, &hints, &res);
		if (rc != 0 || !res)
		{
			/* a name: c-ares, from the loop */
			dns_resolve_server(host, port);
			return;
		}
		dns_forget_server();
		memcpy(&W->server_addr, res->ai_addr, res->ai_addrlen);
		W->server_addr_len = res->ai_addrlen;
		strlcpy(W->server_addr_text, host, sizeof(W->server_addr_text));
		freeaddrinfo(res);
	}
}

/*
 * Slots a previous incarnation of this worker left behind (it exited without
 * a cluster restart) still count toward the shared limits: give them back.
 */
static void
reclaim_predecessor_slots(void)
{
	for (int i = 0; i < pgbun_shared->n_conn_slots; i++)
	{
		PgbunConnSlot copy;

		pgbun_conn_slot_read(i, &copy);
		if (copy.kind == CONN_FREE || copy.worker != W->id)
			continue;
		if (copy.kind == CONN_SERVER && copy.pool >= 0)
			pg_atomic_fetch_sub_u32(&pgbun_shared->pools[copy.pool].server_count, 1);
		else if (copy.kind == CONN_CLIENT)
			pg_atomic_fetch_sub_u32(&pgbun_shared->client_count, 1);
	}
	pgbun_conn_slots_release_worker(W->id);
	pgbun_starving_release_worker(W->id);
	pgbun_pool_slots_release_worker(W->id);
}

static void
worker_slot_clear(int code, Datum arg)
{
	SpinLockAcquire(&pgbun_shared->mutex);
	pgbun_shared->workers[W->id].pid = 0;
	pgbun_shared->workers[W->id].latch = NULL;
	SpinLockRelease(&pgbun_shared->mutex);
	ConditionVariableBroadcast(&pgbun_shared->pause_cv);
}

/*
 * Run fn under an error boundary: an ERROR is logged with what was being
 * done, any transaction it left open is aborted (releasing its locks) and
 * the worker goes on. For work that no single connection can be blamed for.
 */
/* After a caught ERROR: report it, clear it, end any transaction, back to the loop's context. */
static void
recover_from_error(MemoryContext oldcxt)
{
	MemoryContextSwitchTo(oldcxt);
	EmitErrorReport();
	FlushErrorState();
	AbortOutOfAnyTransaction();
	MemoryContextSwitchTo(oldcxt);
}

static bool
guarded(void (*fn) (void), const char *what)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	volatile bool ok = true;

	PG_TRY();
	{
		fn();
	}
	PG_CATCH();
	{
		recover_from_error(oldcxt);
		ereport(LOG, (errmsg("pgbun: error during %s; worker %d goes on", what, W->id)));
		ok = false;
	}
	PG_END_TRY();
	return ok;
}

static void
process_interrupts(void)
{
	CHECK_FOR_INTERRUPTS();
}

/*
 * Absorb what other processes asked of this one by signal: ProcSignalBarriers
 * (DROP DATABASE, DROP TABLESPACE, ALTER DATABASE SET TABLESPACE wait until
 * every process has absorbed theirs), pg_log_backend_memory_contexts(). The
 * signals set the latch (PostgreSQL's own SIGUSR1 handler, which pgbun
 * keeps), so an idle worker wakes up for them. A query cancel
 * (pg_cancel_backend on the worker) has no query to cancel here: it is
 * dropped, or it would fail the next login's catalog look-up. Called on
 * every loop turn: without a pending interrupt it is two loads.
 */
static void
absorb_interrupts(void)
{
	if (QueryCancelPending)
		QueryCancelPending = false;
	if (INTERRUPTS_PENDING_CONDITION())
		(void) guarded(process_interrupts, "interrupt processing");
}

/*
 * Has the postmaster begun a shutdown? It writes "stopping" into line
 * LOCK_FILE_LINE_PM_STATUS of postmaster.pid as soon as it gets any of the
 * three shutdown requests, before it signals anyone: the only sign of a
 * smart shutdown a background worker gets, and how a SIGTERM from
 * pg_ctl stop tells itself apart from pg_terminate_backend(). A small
 * file read, done at most every SHUTDOWN_CHECK_MS and at SIGTERM.
 */
static bool
postmaster_stopping(void)
{
	char		path[MAXPGPATH];
	char		buf[2048];
	const char *line = buf;
	ssize_t		len;
	int			fd;

	snprintf(path, sizeof(path), "%s/postmaster.pid", DataDir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	len = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (len <= 0)
		return false;
	buf[len] = '\0';
	for (int i = 1; i < LOCK_FILE_LINE_PM_STATUS; i++)
	{
		line = strchr(line, '\n');
		if (!line)
			return false;
		line++;
	}
	return strncmp(line, PM_STATUS_STOPPING, strlen(PM_STATUS_STOPPING)) == 0;
}

/*
 * Smart shutdown: the postmaster waits for every client backend to end
 * before it stops background workers, and pgbun's server connections are
 * such backends. So, as PostgreSQL does for its own sessions: no new
 * clients (the listeners close), clients connected go on until they leave,
 * and server connections nobody uses close (min_pool_size is not kept up),
 * so that the last client's departure lets the shutdown finish.
 */
static void
drain_for_smart_shutdown(void)
{
	dlist_iter	it;

	if (!W->draining)
	{
		W->draining = true;
		listeners_close();
		metrics_close();
		ereport(LOG, (errmsg("pgbun: the server is shutting down: worker %d accepts no new clients and closes idle server connections; connected clients go on until they disconnect",
							 W->id)));
	}
	dlist_foreach(it, &W->pools)
	{
		Pool	   *pool = dlist_container(Pool, node, it.cur);

		/* nobody waits for them: a waiter would have been given one at the turn's end */
		if (!dlist_is_empty(&pool->waiting_clients))
			continue;
		while (!dlist_is_empty(&pool->idle_servers))
			server_close(dlist_container(Server, node, dlist_head_node(&pool->idle_servers)),
						 "server shutdown");
	}
}

/* Periodic maintenance: timeouts, min_pool_size, paused listeners, shutdown watch. */
static void
run_janitor(void)
{
	pool_janitor();
	listeners_resume_due();
	metrics_janitor();
	if (W->draining || W->now >= next_shutdown_check)
	{
		next_shutdown_check = W->now + SHUTDOWN_CHECK_MS * 1000;
		if (W->draining || postmaster_stopping())
			drain_for_smart_shutdown();
	}
}

static void
free_closed(void)
{
	dlist_mutable_iter it;

	dlist_foreach_modify(it, &W->closed_clients)
	{
		Client	   *c = dlist_container(Client, node, it.cur);

		dlist_delete(&c->node);
		client_free(c);
	}
	dlist_foreach_modify(it, &W->closed_servers)
	{
		Server	   *s = dlist_container(Server, node, it.cur);

		dlist_delete(&s->node);
		server_free(s);
	}
}

static void
kdf_exit(int code, Datum arg)
{
	kdf_stop();
}

/*
 * The kdf.c threads, started and their eventfd watched at first use (a
 * client's password check, a server login's key derivation). false when
 * they cannot run: the caller works inline or refuses.
 */
bool
worker_kdf_ready(void)
{
	static IoObj kdf_io = {IO_KDF};
	static bool registered = false;
	int			fd;

	if (registered)
		return true;
	fd = kdf_start();
	if (fd < 0 || poll_add_conn(fd, &kdf_io) < 0)
		return false;
	/* before exit() runs OpenSSL's own cleanup under a thread's feet */
	on_proc_exit(kdf_exit, (Datum) 0);
	registered = true;
	return true;
}

/* Handle one readiness event; an ERROR closes only the connection involved. */
static void
dispatch(IoObj *obj, uint32 events)
{
	MemoryContext oldcxt = CurrentMemoryContext;

	PG_TRY();
	{
		switch (obj->kind)
		{
			case IO_LISTENER:
				listener_on_event(obj);
				break;
			case IO_CLIENT:
				if (events & (PEV_IN | PEV_HUP))
					sbuf_ready_to_read(&((Client *) obj)->sb, (events & PEV_HUP) != 0);
				client_on_event((Client *) obj, events);
				break;
			case IO_SERVER:
				if (events & (PEV_IN | PEV_HUP))
					sbuf_ready_to_read(&((Server *) obj)->sb, (events & PEV_HUP) != 0);
				server_on_event((Server *) obj, events);
				break;
			case IO_CANCEL:
				cancel_on_event(obj, events);
				break;
			case IO_DNS:
				dns_on_event(obj, events);
				break;
			case IO_KDF:
				(void) kdf_collect();
				break;
			case IO_HTTP:
				metrics_on_event(obj, events);
				break;
			case IO_WAKE:
				loop_wait_event(obj);
				break;
		}
	}
	PG_CATCH();
	{
		recover_from_error(oldcxt);
		if (obj->kind == IO_CLIENT)
			client_close((Client *) obj, "XX000", "internal error in the pooler");
		else if (obj->kind == IO_SERVER)
			server_close((Server *) obj, "internal error in the pooler");
	}
	PG_END_TRY();
}

/*
 * A connection whose events keep a server waiting until they are handled?
 * Until a server's answer or its client's next statement is forwarded, that
 * server (and the locks of its transaction) waits, while a client without a
 * server at most joins a pool's queue; so a turn handles these first.
 */
static bool
holds_server(const IoObj *obj)
{
	return obj->kind == IO_SERVER ||
		(obj->kind == IO_CLIENT && ((const Client *) obj)->link != NULL);
}

/*
 * Hand servers to the waiters of pools queued this turn (pool_kick_waiting).
 * An ERROR here cannot be pinned on one connection: log it and go on.
 * Returns true when nothing is left queued.
 */
static bool
run_kicks(void)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	volatile bool done = true;

	PG_TRY();
	{
		done = pool_run_kicks();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(oldcxt);
		EmitErrorReport();
		FlushErrorState();
		done = false;
	}
	PG_END_TRY();
	return done;
}

/* Resume clients whose pump yielded last turn (fairness cap). */
static void
run_busy_clients(void)
{
	dlist_head	todo;
	dlist_mutable_iter it;

	if (dlist_is_empty(&W->busy_clients))
		return;
	dlist_init(&todo);
	/* move the list aside: pumps below may re-queue */
	while (!dlist_is_empty(&W->busy_clients))
	{
		dlist_node *n = dlist_pop_head_node(&W->busy_clients);

		dlist_push_tail(&todo, n);
	}
	dlist_foreach_modify(it, &todo)
	{
		Client	   *c = dlist_container(Client, busy_node, it.cur);

		dlist_delete(&c->busy_node);
		c->in_busy = false;
		if (c->closed)
			continue;
		dispatch(&c->io, PEV_IN | PEV_OUT);
		if (!c->closed && c->link)
			dispatch(&c->link->io, PEV_IN);
	}
}

static void
apply_reload(void)
{
	dlist_iter	it;
	MemoryContext old = MemoryContextSwitchTo(scratch_context);

	ConfigReloadPending = false;
	ProcessConfigFile(PGC_SIGHUP);
	if (!settings_reload(false))
	{
		/* refused whole (the log says why): pools, listeners, TLS and targets stay as they are */
		MemoryContextSwitchTo(old);
		MemoryContextReset(scratch_context);
		return;
	}
	if (pgbun_cfg->auth_type == AUTH_TYPE_HBA)
		(void) hba_reload();	/* a bad file keeps the rules in force */
	auth_file_reload();			/* likewise: an unreadable file keeps the entries */
	if (!W->draining)			/* a smart shutdown closed them for good */
		listeners_reconfigure();
	metrics_reconfigure();
	resolve_server_target();
	target_rebuild();			/* a new pgbun.databases snapshot: new targets, pools relinked */
	tls_reload();				/* new connections use the new certificates; open ones keep theirs */
	backend_sched_reconfigure();
	MemoryContextSwitchTo(old);
	MemoryContextReset(scratch_context);

	/* new limits apply to live pools: nobody connected is dropped */
	dlist_foreach(it, &W->pools)
	{
		Pool	   *pool = dlist_container(Pool, node, it.cur);

		pool_reconfigure(pool);
		pool_kick_waiting(pool);
	}
	settings_release_old();		/* everything now points into the new snapshot */
}

/* SHUTDOWN on the admin console (of any worker) was seen. */
static bool admin_shutdown_requested = false;

/* Apply KILL / RECONNECT / DISABLE / KILL_CLIENT / SHUTDOWN from the shared control state (control.c). */
static void
apply_control(void)
{
	if (control_apply())
		admin_shutdown_requested = true;
}

/*
 * SIGTERM: tell every client why, close servers politely, exit. In a server
 * shutdown exit 0 (the postmaster starts no workers then anyway). Any other
 * SIGTERM (pg_terminate_backend on the worker) exits 1, so that the
 * postmaster starts the worker again after bgw_restart_time and clients can
 * reconnect: only a real shutdown stops pgbun. SHUTDOWN on the admin
 * console does the same and exits 0: a background worker that exits 0 is
 * not started again until the server restarts, and it is no crash, so the
 * postmaster leaves every other process alone.
 */
static void
shutdown_worker(bool admin_shutdown)
{
	dlist_iter	it;
	bool		server_stopping = postmaster_stopping();
	const char *why = server_stopping ? "terminating connection due to server shutdown" :
		admin_shutdown ? "terminating connection due to administrator command (SHUTDOWN)" :
		"terminating connection due to administrator command";

	W->shutting_down = true;
	listeners_close();
	metrics_close();
	while (!dlist_is_empty(&W->login_clients))
		client_close(dlist_container(Client, node, dlist_head_node(&W->login_clients)),
					 "57P01", "%s", why);
	while (!dlist_is_empty(&W->console_clients))
		client_close(dlist_container(Client, node, dlist_head_node(&W->console_clients)),
					 "57P01", "%s", why);
	dlist_foreach(it, &W->pools)
	{
		Pool	   *pool = dlist_container(Pool, node, it.cur);
		dlist_head *clists[] = {&pool->waitlogin_clients, &pool->waiting_clients, &pool->active_clients};
		dlist_head *slists[] = {&pool->login_servers, &pool->idle_servers, &pool->active_servers,
		&pool->used_servers};

		for (int i = 0; i < lengthof(clists); i++)
			while (!dlist_is_empty(clists[i]))
				client_close(dlist_container(Client, node, dlist_head_node(clists[i])),
							 "57P01", "%s", why);
		for (int i = 0; i < lengthof(slists); i++)
			while (!dlist_is_empty(slists[i]))
				server_close(dlist_container(Server, node, dlist_head_node(slists[i])),
							 "server shutdown");
	}
	cancel_close_all();			/* ... and the CancelRequest connections waiting on them */
	free_closed();
	if (server_stopping)
	{
		ereport(LOG, (errmsg("pgbun: worker %d shut down", W->id)));
		proc_exit(0);
	}
	if (admin_shutdown)
	{
		/* exit 0: the postmaster does not start it again until the server restarts */
		ereport(LOG, (errmsg("pgbun: worker %d stopped by SHUTDOWN on the admin console", W->id)));
		proc_exit(0);
	}
	ereport(LOG, (errmsg("pgbun: worker %d terminated while the server is running; it starts again in %d s",
						 W->id, PGBUN_RESTART_SECONDS)));
	proc_exit(1);
}

void
pgbun_worker_main(Datum main_arg)
{
	PollEvent	events[EVENT_BATCH];
	TimestampTz next_janitor = 0;
	long		sleep_ms = 0;	/* > 0: the last turn found nothing to do, block this turn */

	W = &worker_state;
	memset(W, 0, sizeof(*W));
	W->id = DatumGetInt32(main_arg);
	dlist_init(&W->pools);
	dlist_init(&W->login_clients);
	dlist_init(&W->cancel_clients);
	dlist_init(&W->console_clients);
	dlist_init(&W->closed_clients);
	dlist_init(&W->closed_servers);
	dlist_init(&W->busy_clients);
	dlist_init(&W->kick_pools);

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, handle_sigterm);	/* both wrapped by loop_wait_init() later */
	/* OpenSSL writes with write(), not send(MSG_NOSIGNAL): a vanished peer must not kill us */
	pqsignal(SIGPIPE, SIG_IGN);
	BackgroundWorkerUnblockSignals();
	/* shared catalogs only: enough for pg_authid and pg_database, pins no database */
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_appname("pgbun");

	scratch_context = AllocSetContextCreate(TopMemoryContext, "pgbun scratch", ALLOCSET_DEFAULT_SIZES);
	if (!pgbun_shmem_attached())
		ereport(FATAL, (errmsg("pgbun: shared memory is not set up")));
	counters_attach_worker(W->id);

	(void) settings_reload(true);	/* the snapshot every module reads from now on */
	raise_fd_limit();
	reclaim_predecessor_slots();
	resolve_server_target();
	target_rebuild();
	tls_reload();
	if (pgbun_cfg->auth_type == AUTH_TYPE_HBA)
		(void) hba_reload();
	auth_file_reload();

	if (poll_init() < 0)
		ereport(FATAL, (errmsg("pgbun: could not create epoll set: %m")));
	W->now = pgbun_clock_now();
	{
		MemoryContext old = MemoryContextSwitchTo(scratch_context);

		listeners_open();
		metrics_reconfigure();
		MemoryContextSwitchTo(old);
		MemoryContextReset(scratch_context);
	}

	loop_wait_init(handle_sigterm);

	SpinLockAcquire(&pgbun_shared->mutex);
	pgbun_shared->workers[W->id].pid = MyProcPid;
	pgbun_shared->workers[W->id].latch = MyLatch;
	SpinLockRelease(&pgbun_shared->mutex);
	before_shmem_exit(worker_slot_clear, (Datum) 0);
	pool_apply_pause();
	apply_control();			/* a SHUTDOWN while this worker was restarting still holds */
	if (admin_shutdown_requested)
		shutdown_worker(true);

	ereport(LOG, (errmsg("pgbun: worker %d started; server connections go to %s",
						 W->id, W->server_addr_text)));

	for (;;)
	{
		int			n;
		bool		kicks_done;
		bool		cancels_wait;

		/* loop_wait does not sleep with an interrupt pending: absorbing it after is soon enough */
		n = sleep_ms > 0 ? loop_wait(events, EVENT_BATCH, sleep_ms) : poll_wait(events, EVENT_BATCH, 0);
		absorb_interrupts();
		W->now = pgbun_clock_now();
		(void) poll_events_first(events, n, holds_server);
		for (int i = 0; i < n; i++)
			dispatch(events[i].obj, events[i].events);
		run_busy_clients();
		cancels_wait = cancel_retry();	/* one a server's SETs held back goes once they are done */
		kicks_done = run_kicks();
		console_tick();			/* a console PAUSE answers once it has taken effect */
		free_closed();

		if (got_sigterm)
			shutdown_worker(false);
		if (MyLatch->is_set)
		{
			ResetLatch(MyLatch);
			(void) guarded(pool_apply_pause, "pause handling");
			(void) guarded(pool_release_canceled, "cancel completion");
			(void) guarded(pool_share_servers, "server sharing");	/* another worker's clients may starve */
			(void) guarded(apply_control, "console commands");
			if (admin_shutdown_requested)
				shutdown_worker(true);
		}
		if (ConfigReloadPending)
			(void) guarded(apply_reload, "reload");

		W->now = pgbun_clock_now();
		if (W->now >= next_janitor)
		{
			(void) guarded(run_janitor, "janitor");
			free_closed();
			next_janitor = W->now + JANITOR_INTERVAL_MS * 1000;
		}
		/* the janitor, a reload or a resume may have queued pools */
		if (!dlist_is_empty(&W->kick_pools))
		{
			kicks_done = run_kicks();
			free_closed();
		}
		/* login look-ups commit before they return: nothing may hold a lock into the wait */
		if (IsTransactionState())
		{
			ereport(LOG, (errmsg("pgbun: a transaction was left open at the end of a loop turn; aborting it")));
			AbortOutOfAnyTransaction();
		}

		/*
		 * Every ready event was fetched and handled, nothing yielded: the
		 * next turn waits (loop_wait.c). An event that came meanwhile makes
		 * that wait return at once, so a turn costs one epoll_wait, not an
		 * empty poll and then the wait.
		 */
		sleep_ms = 0;
		if (n < EVENT_BATCH && dlist_is_empty(&W->busy_clients) && kicks_done)
			sleep_ms = cancels_wait ? 1 : Max((long) ((next_janitor - W->now) / 1000) + 1, 1);
	}
}
