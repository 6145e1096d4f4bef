/*
 * poll.h - the inner readiness set every client/server socket lives in.
 *
 * Linux epoll today; the interface is small so kqueue can follow. Sockets are
 * registered once, edge-triggered for both directions, and never re-armed per
 * message: the owners read/write until EAGAIN. Plain client sockets (from
 * accept) and plain server connections (after login) ask for write events
 * only while a write is stuck (sbuf_out_on_demand). Listeners are level-triggered
 * so an accept burst can be spread over several loop turns.
 */
#ifndef PGBUN_POLL_H
#define PGBUN_POLL_H

#include <stdbool.h>
#include <stdint.h>

/* Every object registered carries this header first; data.ptr points at it. */
typedef enum IoKind
{
	IO_LISTENER = 1,
	IO_CLIENT,
	IO_SERVER,
	IO_CANCEL,
	IO_DNS,						/* a socket of the DNS resolver (dns.c) */
	IO_KDF,						/* kdf.c's eventfd: password checks finished */
	IO_HTTP,					/* the metrics port: listener or connection (metrics.c) */
	IO_WAKE,					/* the latch's signalfd or postmaster death (loop_wait.c) */
} IoKind;

typedef struct IoObj
{
	IoKind		kind;
} IoObj;

#define PEV_IN		0x1
#define PEV_OUT	0x2
#define PEV_HUP	0x4			/* error or hang-up: the owner reads to find out which */

typedef struct PollEvent
{
	IoObj	   *obj;
	uint32_t	events;
} PollEvent;

/* Returns the epoll fd, or -1 with errno set. */
extern int	poll_init(void);
extern void poll_close(void);
extern int	poll_fd(void);
/* Register a connection socket (edge-triggered IN|OUT). 0 or -1/errno. */
extern int	poll_add_conn(int fd, IoObj *obj);
/* ... edge-triggered IN only: write events come with poll_conn_watch_out. */
extern int	poll_add_conn_in(int fd, IoObj *obj);
/*
 * A registered connection: with or without write events (on: after a write
 * hit EAGAIN; edge-triggered, so one comes at once if there is room now).
 */
extern int	poll_conn_watch_out(int fd, IoObj *obj, bool on);
/* Register a listening socket (level-triggered IN). */
extern int	poll_add_listener(int fd, IoObj *obj);
extern void poll_remove(int fd);
/*
 * Watch a socket level-triggered for PEV_IN and/or PEV_OUT (a library's
 * socket such as c-ares', which says what it waits for); called again for
 * the same fd it changes the interest. 0 or -1/errno.
 */
extern int	poll_watch(int fd, IoObj *obj, uint32_t pev, int modify);
/* Fetch ready events without blocking (timeout_ms 0) or with a timeout. */
extern int	poll_wait(PollEvent *events, int max, int timeout_ms);
/*
 * Reorder a batch of at most 256 events (what poll_wait returns) so that
 * those whose object first() picks come before the rest, each part in its
 * original order. Returns how many come first.
 */
extern int	poll_events_first(PollEvent *events, int n, bool (*first) (const IoObj *obj));

#endif							/* PGBUN_POLL_H */
