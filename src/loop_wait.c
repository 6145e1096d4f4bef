/*
 * loop_wait.c - the worker's one blocking wait: an epoll_wait on the inner
 * set itself (poll.c), which also holds the latch and postmaster death.
 *
 * Why: waiting in a WaitEventSet that holds the inner epoll fd cost every
 * sleep three epoll_waits (the empty poll, the outer wait, the inner poll
 * for the events) and a nested wakeup (the inner set wakes the outer one).
 * Here a sleep is the one epoll_wait of its loop turn, and it returns the
 * events too.
 *
 * How the latch gets in: since PostgreSQL 15 a latch's owner that may be
 * sleeping is woken with SIGURG, which every process keeps blocked and
 * reads through a signalfd. This file makes a signalfd of its own for
 * SIGURG, in the inner set, and sets the latch's maybe_sleeping around the
 * wait as WaitEventSetWait does, so SetLatch from another process wakes the
 * worker. Signals to the worker itself (SIGHUP, SIGTERM, SIGUSR1 for
 * barriers and interrupts) run handlers that only set flags and the latch;
 * their wrappers here also send SIGURG to the worker, so one that comes
 * between the last check and the wait makes the wait return at once
 * instead of being slept through. Postmaster death: its watch pipe, also in
 * the set, turns readable.
 */
#include "postgres.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "miscadmin.h"
#include "pgstat.h"
#include "port/atomics.h"
#include "postmaster/interrupt.h"
#include "postmaster/postmaster.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/pmsignal.h"
#include "storage/procsignal.h"

#include "compat.h"
#include "loop_wait.h"

static IoObj wake_io = {IO_WAKE};
static IoObj pm_death_io = {IO_WAKE};
static int	wake_fd = -1;
static pqsigfunc sigterm_inner;

/* SIGURG to ourselves: blocked, so it only makes wake_fd readable */
static void
wake_self(void)
{
	int			save_errno = errno;

	(void) kill(MyProcPid, SIGURG);
	errno = save_errno;
}

static void
sighup_wrapper(SIGNAL_ARGS)
{
	SignalHandlerForConfigReload(postgres_signal_arg);
	wake_self();
}

static void
sigterm_wrapper(SIGNAL_ARGS)
{
	sigterm_inner(postgres_signal_arg);
	wake_self();
}

static void
sigusr1_wrapper(SIGNAL_ARGS)
{
	procsignal_sigusr1_handler(postgres_signal_arg);
	wake_self();
}

/*
 * Once the inner set exists: add SIGURG's signalfd and the postmaster watch
 * pipe to it, and install the signal handlers (the worker's SIGTERM
 * handler, PostgreSQL's for SIGHUP and SIGUSR1, each wrapped). FATAL if the
 * set cannot take them.
 */
void
loop_wait_init(pqsigfunc sigterm_handler)
{
	sigset_t	urg;

	sigemptyset(&urg);
	sigaddset(&urg, SIGURG);
	/* PostgreSQL blocks SIGURG already (latch.c); say so again for this fd's sake */
	sigprocmask(SIG_BLOCK, &urg, NULL);
	wake_fd = signalfd(-1, &urg, SFD_NONBLOCK | SFD_CLOEXEC);
	if (wake_fd < 0 || poll_watch(wake_fd, &wake_io, PEV_IN, 0) < 0)
		ereport(FATAL, (errmsg("pgbun: could not watch the latch: %m")));
	if (poll_watch(postmaster_alive_fds[POSTMASTER_FD_WATCH], &pm_death_io, PEV_IN, 0) < 0)
		ereport(FATAL, (errmsg("pgbun: could not watch the postmaster: %m")));

	sigterm_inner = sigterm_handler;
	pqsignal(SIGHUP, sighup_wrapper);
	pqsignal(SIGTERM, sigterm_wrapper);
	pqsignal(SIGUSR1, sigusr1_wrapper);
}

/*
 * Sleep until an event, the latch, a signal or timeout_ms; the events
 * fetched (0 if none). Returns at once if the latch is set.
 */
int
loop_wait(PollEvent *events, int max, long timeout_ms)
{
	int			n = 0;

	MyLatch->maybe_sleeping = true;
	pg_memory_barrier();		/* SetLatch sets is_set, then reads maybe_sleeping */
	if (!MyLatch->is_set && !InterruptPending && !ConfigReloadPending)
	{
		pgstat_report_wait_start(PG_WAIT_EXTENSION);
		n = poll_wait(events, max, (int) Min(timeout_ms, INT_MAX));
		pgstat_report_wait_end();
	}
	MyLatch->maybe_sleeping = false;
	return Max(n, 0);
}

/* An event of the latch's signalfd or the postmaster watch pipe. */
void
loop_wait_event(IoObj *obj)
{
	if (obj == &pm_death_io)
	{
		if (!PostmasterIsAlive())
			proc_exit(1);		/* as WL_EXIT_ON_PM_DEATH */
		return;
	}
	for (;;)
	{
		struct signalfd_siginfo info;

		if (read(wake_fd, &info, sizeof(info)) != sizeof(info))
			break;				/* drained (EAGAIN) */
	}
}
