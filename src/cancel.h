/*
 * cancel.h - forwarding CancelRequests to the server a client is linked to.
 *
 * Clients only ever see keys pgbun made up. A CancelRequest is looked up in
 * the shared cancel table (so it works whichever worker receives it); if the
 * client is linked to a server at that moment, a fresh non-blocking
 * connection carries the server's real key to it. Otherwise nothing happens,
 * exactly as a wrong key does on PostgreSQL.
 */
#ifndef PGBUN_CANCEL_H
#define PGBUN_CANCEL_H

#include "postgres.h"

#include <sys/socket.h>

extern void cancel_forward(uint32 pid, uint32 key);
/* Send a CancelRequest for (pid, key) to a server address on a fresh connection. */
extern void cancel_send(const struct sockaddr_storage *addr, socklen_t addrlen, uint32 pid, uint32 key);
extern void cancel_on_event(void *obj, uint32 events);
extern void cancel_close_all(void);
extern void cancel_janitor(void);

#endif							/* PGBUN_CANCEL_H */
