/*
 * cancel.h - forwarding CancelRequests to the server a client is linked to.
 *
 * Clients only ever see keys pgbun made up. A CancelRequest is looked up in
 * the shared cancel table (so it works whichever worker receives it); if the
 * client is linked to a server at that moment, a fresh non-blocking
 * connection carries the server's real key to it. Otherwise nothing happens,
 * exactly as a wrong key does on PostgreSQL. Until that connection ends, the
 * server is not given to another client (SV_BEING_CANCELED).
 */
#ifndef PGBUN_CANCEL_H
#define PGBUN_CANCEL_H

#include "postgres.h"

#include <sys/socket.h>

/* Give up on a cancel connection the server does not accept, or close, within this. */
#define CANCEL_TIMEOUT_MS 5000

extern void cancel_forward(uint32 pid, uint32 key);
/*
 * Send a CancelRequest for (pid, key) to a server address on a fresh
 * connection. hold_slot >= 0: a cancel_holds count the caller took on that
 * server slot (connection hold_id), given back when the server has closed
 * this connection or it failed.
 */
extern void cancel_send(const struct sockaddr_storage *addr, socklen_t addrlen, uint32 pid, uint32 key,
						int hold_slot, uint64 hold_id);
/* Count a cancel in flight for a server slot of this worker's (query_timeout); false: cannot. */
extern bool cancel_hold_own(int slot);
/* Whether a server may be handed on; call after publishing it unlinked. */
typedef enum CancelHold
{
	CANCEL_HOLD_NONE,			/* no cancel in flight: hand it on */
	CANCEL_HOLD_PENDING,		/* cancels in flight: wait (SV_BEING_CANCELED) */
	CANCEL_HOLD_UNSURE,			/* one was given up on and may still land: close it */
} CancelHold;
extern CancelHold cancel_hold_state(int slot);
extern void cancel_on_event(void *obj, uint32 events);
extern void cancel_close_all(void);
extern void cancel_janitor(void);
/* Try the cancels that could not go yet again; true: some still wait (poll again soon). */
extern bool cancel_retry(void);

#endif							/* PGBUN_CANCEL_H */
