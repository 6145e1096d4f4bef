/*
 * cancel.h - forwarding CancelRequests to the server a client is linked to.
 *
 * Clients only ever see keys pgbun made up. A CancelRequest is looked up in
 * the shared cancel table (so it works whichever worker receives it); if the
 * client is linked to a server at that moment, a fresh non-blocking
 * connection carries the server's real key to it. Otherwise nothing happens,
 * exactly as a wrong key does on PostgreSQL. Until that connection ends, the
 * server is not given to another client (SV_BEING_CANCELED), and the
 * client's own CancelRequest connection stays open: PostgreSQL closes it
 * only once the backend is signalled, and clients wait for that.
 */
#ifndef PGBUN_CANCEL_H
#define PGBUN_CANCEL_H

#include "postgres.h"

#include <sys/socket.h>

#include "shmem.h"

/* Give up on a cancel connection the server does not accept, or close, within this. */
#define CANCEL_TIMEOUT_MS 5000

struct Client;

/*
 * A CancelRequest for (pid, key) came on client connection req. true: req
 * now waits (CL_WAITING_CANCEL, CL_ACTIVE_CANCEL) and is closed once the
 * cancel is done, as PostgreSQL closes it only after signalling the
 * backend; false: there is nothing to wait for, the caller closes it.
 */
extern bool cancel_forward(uint32 pid, uint32 key, struct Client *req);
/* A client waiting on its CancelRequest is closing (client_close): forget it. */
extern void cancel_requester_gone(struct Client *req);
/*
 * Send a CancelRequest for (pid, key) to a server address on a fresh
 * connection. hold_slot >= 0: a cancel_holds count the caller took on that
 * server slot (connection hold_id), given back when the server has closed
 * this connection or it failed. req: the client connection that asked,
 * closed then (NULL for pgbun's own cancels).
 */
typedef enum CancelSend
{
	CANCEL_SEND_OK,				/* its connection is on its way */
	CANCEL_SEND_FAILED,			/* dropped (logged) */
	CANCEL_SEND_BUSY,			/* the server's listen queue is full: nothing sent, try again */
} CancelSend;
extern CancelSend cancel_send(const struct sockaddr_storage *addr, socklen_t addrlen, uint32 pid, uint32 key,
							  int hold_slot, uint64 hold_id, struct Client *req);
/* Count a cancel in flight for a server slot of this worker's (query_timeout); false: cannot. */
extern bool cancel_hold_own(int slot);
/* Whether a server may be handed on; call after publishing it unlinked. */
typedef enum CancelHold
{
	CANCEL_HOLD_NONE,			/* no cancel in flight: hand it on */
	CANCEL_HOLD_PENDING,		/* cancels in flight: wait (SV_BEING_CANCELED) */
	CANCEL_HOLD_UNSURE,			/* none in flight, but one was given up on and may still land: close it */
} CancelHold;
extern CancelHold cancel_hold_state(int slot);

/*
 * A server slot's cancel_holds word: the low 32 bits of the connection id
 * it counts for in the high half (a reused slot is never miscounted), the
 * cancels in flight in the low 31 bits, and HOLD_UNSURE.
 */
#define HOLD_ID(id) ((id) & PG_UINT32_MAX)
/* a cancel was sent that the server never said it took: it may land at any time */
#define HOLD_UNSURE UINT64CONST(0x80000000)
#define HOLD_COUNT(v) ((uint32) ((v) & UINT64CONST(0x7fffffff)))

/* Cancels in flight for server slot idx, which a copy said holds connection id (the views). */
static inline int
cancel_holds_count(int idx, uint64 id)
{
	uint64		v = pg_atomic_read_u64(&pgbun_conn_slot(idx)->cancel_holds);

	return (v >> 32) == HOLD_ID(id) ? (int) HOLD_COUNT(v) : 0;
}
extern void cancel_on_event(void *obj, uint32 events);
extern void cancel_close_all(void);
extern void cancel_janitor(void);
/* Try the cancels that could not go yet again; true: some still wait (poll again soon). */
extern bool cancel_retry(void);

#endif							/* PGBUN_CANCEL_H */
