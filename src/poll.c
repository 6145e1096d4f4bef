/*
 * poll.c - epoll implementation of poll.h.
 */
#include "postgres.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "poll.h"

#define POLL_BATCH 256

static int	epoll_fd = -1;

int
poll_init(void)
{
	epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	return epoll_fd;
}

void
poll_close(void)
{
	if (epoll_fd >= 0)
		close(epoll_fd);
	epoll_fd = -1;
}

int
poll_fd(void)
{
	return epoll_fd;
}

static int
poll_add(int fd, IoObj *obj, uint32_t events)
{
	struct epoll_event ev;

	ev.events = events;
	ev.data.ptr = obj;
	return epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &ev);
}

int
poll_add_conn(int fd, IoObj *obj)
{
	return poll_add(fd, obj, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET);
}

int
poll_add_conn_in(int fd, IoObj *obj)
{
	return poll_add(fd, obj, EPOLLIN | EPOLLRDHUP | EPOLLET);
}

int
poll_conn_watch_out(int fd, IoObj *obj, bool on)
{
	struct epoll_event ev;

	ev.events = EPOLLIN | EPOLLRDHUP | EPOLLET | (on ? EPOLLOUT : 0);
	ev.data.ptr = obj;
	return epoll_ctl(epoll_fd, EPOLL_CTL_MOD, fd, &ev);
}

int
poll_add_listener(int fd, IoObj *obj)
{
	return poll_add(fd, obj, EPOLLIN);
}

int
poll_watch(int fd, IoObj *obj, uint32_t pev, int modify)
{
	struct epoll_event ev;

	ev.events = ((pev & PEV_IN) ? EPOLLIN : 0) | ((pev & PEV_OUT) ? EPOLLOUT : 0);
	ev.data.ptr = obj;
	return epoll_ctl(epoll_fd, modify ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev);
}

void
poll_remove(int fd)
{
	/* Closing the fd removes it too; explicit removal keeps stale events out of this turn. */
	(void) epoll_ctl(epoll_fd, EPOLL_CTL_DEL, fd, NULL);
}

int
poll_wait(PollEvent *events, int max, int timeout_ms)
{
	struct epoll_event raw[POLL_BATCH];
	int			n;

	if (max > POLL_BATCH)
		max = POLL_BATCH;
	n = epoll_wait(epoll_fd, raw, max, timeout_ms);
	if (n < 0)
		return (errno == EINTR) ? 0 : -1;
	for (int i = 0; i < n; i++)
	{
		uint32_t	e = raw[i].events;

		events[i].obj = raw[i].data.ptr;
		events[i].events = ((e & EPOLLIN) ? PEV_IN : 0) |
			((e & EPOLLOUT) ? PEV_OUT : 0) |
			((e & (EPOLLERR | EPOLLHUP | EPOLLRDHUP)) ? PEV_HUP : 0);
	}
	return n;
}

int
poll_events_first(PollEvent *events, int n, bool (*first) (const IoObj *obj))
{
	PollEvent	later[POLL_BATCH];
	int			nfirst = 0;
	int			nlater = 0;

	if (n > POLL_BATCH)
		n = POLL_BATCH;			/* poll_wait never returns more */
	for (int i = 0; i < n; i++)
	{
		if (first(events[i].obj))
			events[nfirst++] = events[i];	/* nfirst <= i: nothing unread is overwritten */
		else
			later[nlater++] = events[i];
	}
	memcpy(events + nfirst, later, nlater * sizeof(PollEvent));
	return nfirst;
}
