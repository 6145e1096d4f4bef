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
/* CancelRequests still in flight for the server of this slot; call after publishing it unlinked. */
extern uint32 cancel_in_flight(int slot);
extern void cancel_on_event(void *obj, uint32 events);
extern void cancel_close_all(void);
extern void cancel_janitor(void);

#endif							/* PGBUN_CANCEL_H */
